"""Checkpoint and resume for :func:`tfsoftmax.training.train_sgd`.

After every completed epoch one ``tf.train.Checkpoint`` is written, through a
``tf.train.CheckpointManager`` that keeps the last few (``ckpt-<epoch>``)::

    model_variables/<i>   every variable of the model (``model.variables``)
    epoch                 completed epochs (int64)
    run_state             JSON: the run's fingerprint, the history so far,
                          the shuffling generator's ``bit_generator.state``
                          and whether a callback stopped the run

All of it is one checkpoint, so weights, counter, history and generator are
always from the same epoch. TensorFlow writes a checkpoint into a temporary
folder and renames it into place, and the manager records it (atomically)
only after that; every tensor carries a CRC32C checksum that is verified when
it is read. On resume the newest recorded checkpoint is read in full into
NumPy, *without touching the model*; if it is unreadable (a crash while it was
written, a truncated or damaged file) a warning is issued and the previous one
is tried. The fingerprint is then compared with the current call's, and a
different run (batch size, learning rate, seed, data, model, loss) is refused
with a :class:`CheckpointMismatchError` naming what differs. Only then are the
variables assigned.
"""

import glob
import json
import math
import os
import re
import warnings
import zlib

import numpy as np

from tfsoftmax._tf import tf
from tfsoftmax.history import History

__all__ = ["CheckpointMismatchError", "RunCheckpointer", "Snapshot", "run_fingerprint"]

#: Version of the ``run_state`` layout; a checkpoint of another version is unreadable.
FORMAT = 1
CHECKPOINT_NAME = "ckpt"
_STATE_KEY = "run_state/.ATTRIBUTES/py_state"
_EPOCH_KEY = "epoch/.ATTRIBUTES/VARIABLE_VALUE"
_VARIABLE_KEY = "model_variables/{}/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointMismatchError(ValueError):
    """``checkpoint_dir`` holds a run with different settings; nothing was changed."""


class _RunState(tf.train.experimental.PythonState):
    """The Python side of a checkpoint, serialised as JSON at save time."""

    def __init__(self):
        self.value = {}

    def serialize(self):
        return json.dumps(self.value)

    def deserialize(self, string_value):
        self.value = json.loads(string_value)


class Snapshot:
    """One checkpoint read in full: ``values`` (NumPy, one per model variable)
    and ``state`` (``completed_epochs``, ``history``, ``rng_state``, ``stopped``,
    ``fingerprint``); ``path`` is the checkpoint's prefix."""

    def __init__(self, path, values, state):
        self.path, self.values, self.state = path, values, state

    @property
    def completed_epochs(self):
        return int(self.state["completed_epochs"])


# --------------------------------------------------------------------------- fingerprint
def _plain(value):
    """A JSON-comparable copy of a Keras config: objects become their type's name."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return _plain(value.item())
    return type(value).__qualname__


def _qualified_name(obj):
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe(obj):
    """Class and config (minus the auto-generated ``name``) of a layer or loss."""
    if not hasattr(obj, "get_config"):
        name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
        return {"class": f"{getattr(obj, '__module__', '?')}.{name}"}
    try:
        config = dict(obj.get_config())
    except (NotImplementedError, TypeError):
        config = {}
    config.pop("name", None)
    return {"class": _qualified_name(obj), "config": _plain(config)}


def _data_digest(x, labels, dtype):
    """CRC32 of the features (as the model's dtype) and of the class indices."""
    features = np.ascontiguousarray(x, dtype=tf.as_dtype(dtype).as_numpy_dtype)
    crc = zlib.crc32(features.view(np.uint8))  # bytes, whatever the dtype (bfloat16 too)
    crc = zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes(), crc)
    return f"{crc:08x}"


def run_fingerprint(model, loss_fn, x, y, *, batch_size, learning_rate, seed):
    """What must be equal for a checkpoint to continue this run.

    ``x`` and one-hot ``y`` are the validated training data. ``epochs`` is not
    part of it: a finished run can be continued for more epochs.
    """
    dtype = model.trainable_variables[0].dtype
    return {
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "seed": None if seed is None else int(seed),
        "samples": int(x.shape[0]),
        "features": int(x.shape[1]),
        "classes": int(y.shape[1]),
        "data": _data_digest(x, np.argmax(y, axis=1), dtype),
        "variables": [[list(v.shape), tf.as_dtype(v.dtype).name] for v in model.variables],
        "model": {
            "class": _qualified_name(model),
            "layers": [_describe(layer) for layer in model.layers],
        },
        "loss": _describe(loss_fn),
    }


def _first_difference(saved, current, path=""):
    """``(path, saved value, current value)`` of the first differing leaf, or None."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in list(saved) + [k for k in current if k not in saved]:
            if key not in saved or key not in current:
                return f"{path}.{key}".lstrip("."), saved.get(key, "—"), current.get(key, "—")
            found = _first_difference(saved[key], current[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, (a, b) in enumerate(zip(saved, current, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if saved == current else (path.lstrip("."), saved, current)


_WHAT = {
    "data": "the training data (x, y) differ",
    "variables": "the model's variables differ in shape or dtype",
    "model": "the model differs",
    "loss": "the loss differs",
}


def describe_mismatch(saved, current):
    """One line per differing key of two fingerprints, joined by ``"; "``."""
    parts = []
    for key in dict.fromkeys([*saved, *current]):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if key in _WHAT:
            where = _first_difference(a, b)
            detail = f" ({where[0] or key}: {where[1]!r} there, {where[2]!r} now)" if where else ""
            if key == "data":
                detail = ""
            parts.append(_WHAT[key] + detail)
        else:
            parts.append(f"{key} is {a!r} there but {b!r} now")
    return "; ".join(parts)


# --------------------------------------------------------------------------- checkpointer
def _number(path):
    match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", path)
    return int(match.group(1)) if match else -1


class RunCheckpointer:
    """Saves and restores one ``train_sgd`` run in ``directory``.

    Args:
        directory: the checkpoint folder; created on the first save.
        model: the model whose ``variables`` are saved and restored.
        fingerprint: :func:`run_fingerprint` of the current call.
        keep: how many checkpoints to keep (``max_to_keep``).
    """

    def __init__(self, directory, model, fingerprint, keep):
        directory = os.fspath(directory)
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(f"checkpoint_dir {directory!r} exists and is not a directory")
        self.directory = directory
        self.fingerprint = fingerprint
        self.variables = list(model.variables)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self._state = _RunState()
        self._checkpoint = tf.train.Checkpoint(
            model_variables=self.variables, epoch=self._epoch, run_state=self._state
        )
        self._keep = keep
        try:
            self._manager = self._new_manager()
        except ValueError as error:  # an empty or damaged "checkpoint" state file
            warnings.warn(
                f"checkpoint_dir {directory!r}: the CheckpointManager's state file is unreadable "
                f"({error}); looking for checkpoints by their file names",
                RuntimeWarning,
                stacklevel=3,
            )
            self._manager = None

    def _new_manager(self):
        return tf.train.CheckpointManager(
            self._checkpoint,
            self.directory,
            max_to_keep=self._keep,
            checkpoint_name=CHECKPOINT_NAME,
        )

    def candidates(self):
        """Checkpoint prefixes, newest first: the manager's record, else a folder scan."""
        recorded = list(self._manager.checkpoints) if self._manager is not None else []
        if not recorded:
            pattern = os.path.join(glob.escape(self.directory), f"{CHECKPOINT_NAME}-*.index")
            recorded = [path[: -len(".index")] for path in glob.glob(pattern)]
        return sorted(recorded, key=_number, reverse=True)

    def _read(self, path):
        reader = tf.train.load_checkpoint(path)
        state = json.loads(reader.get_tensor(_STATE_KEY))
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"not a tfsoftmax run checkpoint of format {FORMAT}")
        count = len(state["fingerprint"]["variables"])
        values = [reader.get_tensor(_VARIABLE_KEY.format(i)) for i in range(count)]
        epoch = int(reader.get_tensor(_EPOCH_KEY))
        if epoch != state["completed_epochs"]:
            raise ValueError(f"epoch counter {epoch} disagrees with the saved state")
        return Snapshot(path, values, state)

    def latest(self):
        """The newest readable checkpoint, checked against this run, or None.

        Nothing is changed: the caller continues from it with :meth:`resume`.

        Raises:
            CheckpointMismatchError: the newest readable checkpoint is from a
                run with different settings.
            ValueError: checkpoints exist but none of them is readable.
        """
        paths = self.candidates()
        errors = []
        for index, path in enumerate(paths):
            try:
                snapshot = self._read(path)
            except Exception as error:  # any failure to read means: unreadable
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                errors.append(f"{os.path.basename(path)}: {reason}")
                following = paths[index + 1] if index + 1 < len(paths) else None
                warnings.warn(
                    f"checkpoint {path} is unreadable ({reason}); "
                    + (f"falling back to {following}" if following else "no older checkpoint"),
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            self._check(snapshot)
            return snapshot
        if paths:
            raise ValueError(
                f"checkpoint_dir {self.directory!r} holds {len(paths)} checkpoint(s) and none "
                f"is readable ({'; '.join(errors)}); move them away to start a new run"
            )
        return None

    def _check(self, snapshot):
        saved = snapshot.state["fingerprint"]
        if saved != self.fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint_dir {self.directory!r} holds a different run "
                f"({os.path.basename(snapshot.path)}, {snapshot.completed_epochs} epoch(s) done): "
                f"{describe_mismatch(saved, self.fingerprint)}. Resume with the same settings, "
                "or use another checkpoint_dir to start a new run."
            )
        for variable, value in zip(self.variables, snapshot.values, strict=True):
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointMismatchError(
                    f"checkpoint {snapshot.path} holds shape {value.shape} for variable "
                    f"{getattr(variable, 'path', variable.name)} of shape {tuple(variable.shape)}"
                )

    def resume(self, snapshot, history, rng, verbose=0):
        """Continue the run saved in ``snapshot``: assign the model's variables,
        fill ``history`` with the epochs done and set ``rng`` to the saved
        state. Returns the number of completed epochs."""
        for variable, value in zip(self.variables, snapshot.values, strict=True):
            variable.assign(value)
        saved = History.from_dict(snapshot.state["history"])
        history.epoch, history.epoch_seconds = saved.epoch, saved.epoch_seconds
        history.history = saved.history
        rng.bit_generator.state = snapshot.state["rng_state"]
        if verbose:
            print(f"Resumed from {snapshot.path}: {snapshot.completed_epochs} epoch(s) done")
        return snapshot.completed_epochs

    def save(self, completed_epochs, history, rng, stopped):
        """Write one checkpoint after ``completed_epochs`` epochs; returns its path."""
        self._state.value = {
            "format": FORMAT,
            "completed_epochs": int(completed_epochs),
            "stopped": bool(stopped),
            "fingerprint": self.fingerprint,
            "history": history.to_dict(),
            "rng_state": rng.bit_generator.state,
        }
        self._epoch.assign(completed_epochs)
        if self._manager is None:  # keep the unreadable state file aside; start a new one
            state_file = os.path.join(self.directory, "checkpoint")
            if os.path.exists(state_file):
                os.replace(state_file, state_file + ".unreadable")
            self._manager = self._new_manager()
        return self._manager.save(checkpoint_number=completed_epochs)
