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
folder and renames it into place, and the manager records it (atomically:
``checkpoint.tmp<hex>``, then a rename) only after that; every tensor carries
a CRC32C checksum that is verified when it is read. A checkpoint holding a NaN
or inf is never written.

Opening a folder (:class:`RunCheckpointer`): ``""`` or a file is a
``ValueError``; the folder is created if needed and checked by writing a probe
the size of one checkpoint (:class:`tfsoftmax.atomic.OutputError` naming the
reason if that fails: read-only, not a directory, disk full); then the run
takes the folder's lock (:mod:`tfsoftmax.run_lock`: one run per folder) and
removes what killed runs left (:data:`ORPHAN_PATTERNS`).

On resume the newest recorded checkpoint is read in full into NumPy and
validated — format, counter, history (every metric one value per epoch),
generator state, every value finite and of the variable's shape — *without
touching the model*; if any of it fails (a crash while it was written, a
truncated, damaged or crafted file) a warning is issued and the previous one
is tried. The fingerprint (:mod:`tfsoftmax.fingerprint`) is then compared
with the current call's, and a different run is refused with a
:class:`CheckpointMismatchError` naming what differs. Only then are the
variables assigned.
"""

import contextlib
import glob
import json
import os
import re
import shutil
import warnings

import numpy as np

from tfsoftmax._tf import tf
from tfsoftmax.atomic import check_writable_directory, output_errors
from tfsoftmax.divergence import TrainingDivergedError, non_finite_names
from tfsoftmax.fingerprint import describe_mismatch, run_fingerprint
from tfsoftmax.history import History
from tfsoftmax.run_lock import DirectoryLock

__all__ = [
    "ORPHAN_PATTERNS",
    "CheckpointMismatchError",
    "RunCheckpointer",
    "Snapshot",
    "remove_orphans",
    "run_fingerprint",
]

#: Version of the ``run_state`` layout; a checkpoint of another version is unreadable.
FORMAT = 1
CHECKPOINT_NAME = "ckpt"
#: What a run killed while saving leaves behind: TensorFlow's temporary
#: checkpoint folder and the manager's temporary state file.
ORPHAN_PATTERNS = (f"{CHECKPOINT_NAME}-*_temp", "checkpoint.tmp*")
_STATE_KEY = "run_state/.ATTRIBUTES/py_state"
_EPOCH_KEY = "epoch/.ATTRIBUTES/VARIABLE_VALUE"
_VARIABLE_KEY = "model_variables/{}/.ATTRIBUTES/VARIABLE_VALUE"
#: The largest probe written to check that a checkpoint fits on the disk.
_LARGEST_PROBE = 64 * 2**20


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


# --------------------------------------------------------------------------- checkpointer
def _number(path):
    match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", path)
    return int(match.group(1)) if match else -1


def remove_orphans(directory):
    """Delete the temporary files and folders of killed saves in ``directory``
    (:data:`ORPHAN_PATTERNS`); returns their names. Only safe while holding the
    folder's lock: a running save's temporary files look the same."""
    removed = []
    for pattern in ORPHAN_PATTERNS:
        for path in glob.glob(os.path.join(glob.escape(directory), pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            removed.append(os.path.basename(path))
    return removed


def _checked_state(state):
    """``state`` (a checkpoint's ``run_state``) complete and consistent, or ValueError."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"not a tfsoftmax run checkpoint of format {FORMAT}")
    missing = {"completed_epochs", "stopped", "fingerprint", "history", "rng_state"} - set(state)
    if missing:
        raise ValueError(f"its run state lacks {', '.join(sorted(missing))}")
    epochs = state["completed_epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"completed_epochs is {epochs!r}")
    fingerprint = state["fingerprint"]
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("variables"), list):
        raise ValueError("its fingerprint does not list the model's variables")
    history = History.from_dict(state["history"])  # ValueError if ragged or malformed
    if len(history.epoch) != epochs:
        raise ValueError(f"its history has {len(history.epoch)} epochs, not {epochs}")
    bit_generator = np.random.default_rng().bit_generator
    try:
        bit_generator.state = state["rng_state"]
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"its generator state is unusable ({error})") from None
    return state


class RunCheckpointer:
    """Saves and restores one ``train_sgd`` run in ``directory``, holding its lock.

    Args:
        directory: the checkpoint folder; created if missing.
        model: the model whose ``variables`` are saved and restored.
        fingerprint: :func:`run_fingerprint` of the current call.
        keep: how many checkpoints to keep (``max_to_keep``).

    Raises:
        ValueError: ``directory`` is ``""`` or an existing file.
        tfsoftmax.atomic.OutputError: the folder cannot be created or written.
        tfsoftmax.run_lock.CheckpointInUseError: another run holds the folder.

    Call :meth:`close` when the run ends (it releases the lock, and removes
    the folder again if this run created it and saved nothing).
    """

    def __init__(self, directory, model, fingerprint, keep):
        directory = os.fspath(directory)
        if not directory:
            raise ValueError("checkpoint_dir is empty; pass a folder (use '.' for the current one)")
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(f"checkpoint_dir {directory!r} exists and is not a directory")
        self.directory = directory
        self.fingerprint = fingerprint
        self.variables = list(model.variables)
        self._created = not os.path.isdir(directory)
        self._saved = False
        size = sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in self.variables)
        check_writable_directory(directory, "checkpoint_dir", size=min(size, _LARGEST_PROBE))
        with output_errors(f"checkpoint_dir {directory!r}"):
            os.makedirs(directory, exist_ok=True)
            self._lock = DirectoryLock(directory)
        try:
            with output_errors(f"checkpoint_dir {directory!r}"):
                self._lock.acquire()
                remove_orphans(directory)
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
            self._state = _RunState()
            self._checkpoint = tf.train.Checkpoint(
                model_variables=self.variables, epoch=self._epoch, run_state=self._state
            )
            self._keep = keep
            self._manager = self._open_manager()
        except BaseException:
            self.close()
            raise

    def _open_manager(self):
        """The CheckpointManager, or None when the ``checkpoint`` state file is unreadable."""
        state_file = os.path.join(self.directory, "checkpoint")
        try:
            if os.path.lexists(state_file) and not os.path.isfile(state_file):
                raise ValueError(f"{state_file} is not a file")  # TensorFlow would ignore it
            return self._new_manager()
        except (ValueError, tf.errors.OpError) as error:  # emptied, damaged, a folder...
            reason = str(getattr(error, "message", error)).strip().splitlines()[:1]
            warnings.warn(
                f"checkpoint_dir {self.directory!r}: the CheckpointManager's state file is "
                f"unreadable ({reason[0] if reason else type(error).__name__}); looking for "
                "checkpoints by their file names",
                RuntimeWarning,
                stacklevel=4,
            )
            return None

    def _new_manager(self):
        return tf.train.CheckpointManager(
            self._checkpoint,
            self.directory,
            max_to_keep=self._keep,
            checkpoint_name=CHECKPOINT_NAME,
        )

    def close(self):
        """Release the folder: temporary files of a failed save removed, the lock
        dropped, and the folder removed if this run created it and saved nothing."""
        lock = getattr(self, "_lock", None)
        if lock is not None and lock.held:
            remove_orphans(self.directory)
            lock.release()
        if self._created and not self._saved:
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)

    def candidates(self):
        """Checkpoint prefixes, newest first: the manager's record, else a folder scan."""
        recorded = list(self._manager.checkpoints) if self._manager is not None else []
        if not recorded:
            pattern = os.path.join(glob.escape(self.directory), f"{CHECKPOINT_NAME}-*.index")
            recorded = [path[: -len(".index")] for path in glob.glob(pattern)]
        return sorted(recorded, key=_number, reverse=True)

    def _read(self, path):
        """The checkpoint at ``path`` read and validated in full, or an exception."""
        reader = tf.train.load_checkpoint(path)
        state = _checked_state(json.loads(reader.get_tensor(_STATE_KEY)))
        count = len(state["fingerprint"]["variables"])
        values = [reader.get_tensor(_VARIABLE_KEY.format(i)) for i in range(count)]
        epoch = int(reader.get_tensor(_EPOCH_KEY))
        if epoch != state["completed_epochs"]:
            raise ValueError(f"epoch counter {epoch} disagrees with the saved state")
        bad = non_finite_names(values, [f"variable {i}" for i in range(len(values))])
        if bad:
            raise ValueError(f"{', '.join(bad)} hold NaN or inf")
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
        """Continue the run saved in ``snapshot`` (validated by :meth:`latest`):
        assign the model's variables, fill ``history`` with the epochs done and
        set ``rng`` to the saved state. Returns the number of completed epochs."""
        saved = History.from_dict(snapshot.state["history"])
        rng.bit_generator.state = snapshot.state["rng_state"]
        for variable, value in zip(self.variables, snapshot.values, strict=True):
            variable.assign(value)
        history.epoch, history.epoch_seconds = saved.epoch, saved.epoch_seconds
        history.history = saved.history
        if verbose:
            print(f"Resumed from {snapshot.path}: {snapshot.completed_epochs} epoch(s) done")
        return snapshot.completed_epochs

    def save(self, completed_epochs, history, rng, stopped):
        """Write one checkpoint after ``completed_epochs`` epochs; returns its path.

        Raises:
            TrainingDivergedError: a variable holds NaN or inf (nothing written).
            tfsoftmax.atomic.OutputError: the write failed (disk full, ...);
                the checkpoints written before are untouched.
        """
        names = [getattr(v, "path", v.name) for v in self.variables]
        bad = non_finite_names([v.numpy() for v in self.variables], names)
        if bad:
            raise TrainingDivergedError(
                f"not saving checkpoint {completed_epochs}: {', '.join(bad)} hold NaN or inf"
            )
        self._state.value = {
            "format": FORMAT,
            "completed_epochs": int(completed_epochs),
            "stopped": bool(stopped),
            "fingerprint": self.fingerprint,
            "history": history.to_dict(),
            "rng_state": rng.bit_generator.state,
        }
        self._epoch.assign(completed_epochs)
        where = f"checkpoint {CHECKPOINT_NAME}-{completed_epochs} in {self.directory!r}"
        with output_errors(where, also=(tf.errors.OpError,)):
            if self._manager is None:  # keep the unreadable state file aside; start a new one
                state_file = os.path.join(self.directory, "checkpoint")
                if os.path.lexists(state_file):
                    os.replace(state_file, state_file + ".unreadable")
                self._manager = self._new_manager()
            path = self._manager.save(checkpoint_number=completed_epochs)
        self._saved = True
        return path
