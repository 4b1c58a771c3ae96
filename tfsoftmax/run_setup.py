"""Everything :func:`tfsoftmax.training.train_sgd` checks and builds before its first epoch.

In this order, so that a bad argument raises ``ValueError`` before anything
(the model's weights, a checkpoint folder) is changed:

1. the settings: ``epochs, batch_size, keep_checkpoints, steps_per_execution
   ≥ 1``, the learning rate (:class:`tfsoftmax.learning_rate.LearningRate`: a
   finite float > 0, a schedule or a callable), a valid ``seed``,
   ``verbose ∈ {0, 1, 2}`` (``callbacks`` are checked by
   :func:`check_callbacks` just before);
2. the model (:mod:`tfsoftmax.model_io`): built on the first sample if
   needed (inside the strategy's scope), with trainable variables of one
   dtype, all finite, and one ``(batch, classes)`` output; a float learning
   rate finite and non-zero in that dtype (``1e39`` is inf in float32,
   ``1e5`` in float16);
3. the loss (:func:`tfsoftmax.loss_resolution.resolve_loss`): any loss Keras
   accepts, or tfsoftmax's CCE computing in the model's dtype;
4. the data (:mod:`tfsoftmax.array_inputs`): ``x (N, features)`` floating
   point and finite in the model's dtype (integer images for a model that
   scales its input, integer token ids for a model whose input is integer),
   ``y`` one-hot ``(N, classes)`` or class indices, the same for
   ``validation_data``, each checked and converted once per array
   (:mod:`tfsoftmax.input_cache`); or a ``tf.data.Dataset`` of ``(x, y)``
   batches (:mod:`tfsoftmax.streaming`: its structure, not its values);
5. the checkpoints: the folder checked, created and locked
   (:class:`tfsoftmax.checkpointing.RunCheckpointer`), the newest checkpoint
   of this run (same fingerprint) read and validated in full;
6. the engine (:func:`tfsoftmax.engine.compiled_engine`), and only then a resume
   assigns the checkpoint's weights, history and generator state.

If a step after the folder was locked fails, the folder is released again.

The epoch has ``steps = ⌈N / batch_size⌉`` batches, ``⌊N / batch_size⌋`` of
them full (a dataset: its cardinality, None when unknown). The batches run
in compiled chunks of ``chunk`` batches: ``steps_per_execution`` when a
callback listens to batches (:mod:`tfsoftmax.callback_hooks`), otherwise as
few as the progress display allows (one per epoch without a bar).
"""

import dataclasses

import numpy as np

from tfsoftmax import streaming
from tfsoftmax._tf import keras, tf
from tfsoftmax.array_inputs import checked_features, features_tensor, labels_tensor
from tfsoftmax.callback_hooks import has_progress_bar, wants_batch_hooks
from tfsoftmax.checkpointing import RunCheckpointer, run_fingerprint
from tfsoftmax.distribute import strategy_scope, worker_checkpoint_dir
from tfsoftmax.engine import compiled_engine
from tfsoftmax.history import History
from tfsoftmax.learning_rate import LearningRate
from tfsoftmax.loss_resolution import resolve_loss
from tfsoftmax.model_io import input_dtype, model_dtype_and_classes, takes_integer_input
from tfsoftmax.progress import Progress
from tfsoftmax.rescaling import scales_its_input
from tfsoftmax.validation import (
    check_learning_rate_in_dtype,
    check_positive_int,
    check_seed,
    reject_integer_features,
)

__all__ = ["DATASET_CHUNK", "TrainingRun", "check_callbacks", "set_up_run"]

#: Steps between two read-backs of the batch losses when training from a
#: dataset and no callback listens to batches.
DATASET_CHUNK = 64


def check_callbacks(callbacks):
    """``None``, or a list or tuple of ``keras.callbacks.Callback``; returned as a list."""
    if callbacks is None:
        return None
    if not isinstance(callbacks, list | tuple) or not all(
        isinstance(callback, keras.callbacks.Callback) for callback in callbacks
    ):
        raise ValueError(
            f"callbacks must be a list of keras.callbacks.Callback or None, got {callbacks!r}"
        )
    return list(callbacks)


def _checked_settings(settings, verbose):
    """The numeric settings, checked (step 1 of the module docstring)."""
    for name in ("epochs", "batch_size", "keep_checkpoints", "steps_per_execution"):
        settings[name] = check_positive_int(name, settings[name])
    settings["seed"] = check_seed(settings["seed"])
    settings["rate"] = LearningRate(settings.pop("learning_rate"))
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    return settings


def _validation_tensors(model, validation_data, features, kind, num_classes, dtype):
    """``validation_data`` checked like the training ``features`` (a tensor of
    ``kind``, or a prepared dataset), as tensors of the same kind (or a
    prepared dataset)."""
    x_spec = features.element_spec[0] if streaming.is_dataset(features) else features
    width = x_spec.shape[1]
    if streaming.is_dataset(validation_data):
        streaming.check_dataset(validation_data, "validation_data")
        return streaming.prepared(
            validation_data, x_spec.dtype, dtype, num_classes, "validation_data"
        )
    if not isinstance(validation_data, list | tuple) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (x_val, y_val) or a tf.data.Dataset")
    if kind is None:  # a dataset's features: integer images or token ids, or floats
        kind = "float"
        if x_spec.dtype.is_integer:
            kind = "images" if scales_its_input(model) else "tokens"
    x_val = checked_features(model, validation_data[0], "validation_data[0]", kind)
    if width is not None and x_val.shape[1] != width:
        raise ValueError(f"validation_data[0] has {x_val.shape[1]} features but x has {width}")
    y_val = labels_tensor(
        validation_data[1], x_val.shape[0], num_classes, dtype, "validation_data[1]"
    )
    return features_tensor(model, x_val, dtype, "validation_data[0]"), y_val


def _learning_rate_in(rate, dtype):
    """A float rate as the model's ``dtype`` holds it: finite and > 0, or ValueError."""
    if rate.value is None:
        return
    cast = float(tf.cast(tf.constant(rate.value, tf.float64), dtype))
    check_learning_rate_in_dtype(rate.value, cast, tf.as_dtype(dtype).name)


def _open_checkpoints(checkpoint_dir, keep, strategy, model, fingerprint, epochs):
    """The run's :class:`RunCheckpointer` (the folder locked) and its newest
    checkpoint (or ``None``), read in full and checked; nothing is changed yet.
    On an error the folder is released again."""
    if strategy is not None:
        checkpoint_dir = worker_checkpoint_dir(strategy, checkpoint_dir)
    checkpointer = RunCheckpointer(checkpoint_dir, model, fingerprint, keep)
    try:
        snapshot = checkpointer.latest()
        if snapshot is not None and snapshot.completed_epochs > epochs:
            raise ValueError(
                f"epochs={epochs}, but the run in checkpoint_dir {checkpoint_dir!r} has already "
                f"done {snapshot.completed_epochs}; pass epochs >= {snapshot.completed_epochs}"
            )
    except BaseException:
        checkpointer.close()
        raise
    return checkpointer, snapshot


@dataclasses.dataclass
class TrainingRun:
    """One :func:`tfsoftmax.training.train_sgd` call, set up: the checked data as
    tensors of the model's dtype (or the prepared dataset), the engine, the
    learning rate, the shuffling generator, the history, the progress display
    and the checkpoints. ``first_epoch`` is where the loop starts (after a
    resume), ``finished`` that a resumed run has nothing left to do; ``chunk``
    full batches go into one engine call, and the callbacks' batch hooks run
    between two calls when ``batch_hooks``."""

    engine: object
    features: object
    targets: object
    validation: object
    rate: LearningRate
    rng: np.random.Generator
    epochs: int
    batch_size: int
    num_samples: int | None
    steps: int | None
    chunk: int
    batch_hooks: bool
    verbose: int
    history: History
    progress: Progress
    checkpointer: RunCheckpointer | None
    first_epoch: int = 0
    finished: bool = False
    step: int = 0  # the global step: updates done so far in the run

    @property
    def dataset(self):
        """The prepared ``tf.data.Dataset``, or None for in-memory arrays."""
        return self.features if streaming.is_dataset(self.features) else None

    @property
    def params(self):
        """What the callbacks get as ``params``: fit's ``epochs``, ``steps``,
        ``verbose``, and the run's settings."""
        return {**self.history.params, "verbose": self.verbose}


def set_up_run(model, x, y, *, loss, validation_data, verbose, callbacks, strategy, **settings):
    """:func:`tfsoftmax.training.train_sgd`'s arguments checked — a ``ValueError``
    before anything is changed — and the run built; resumed from
    ``checkpoint_dir`` if it holds a checkpoint of this run.

    ``settings``: ``epochs, batch_size, learning_rate, seed, checkpoint_dir,
    keep_checkpoints, jit_compile, steps_per_execution``.
    """
    settings = _checked_settings(dict(settings), verbose)
    if settings["checkpoint_dir"] is not None and any(
        isinstance(callback, keras.callbacks.BackupAndRestore) for callback in callbacks or ()
    ):
        raise ValueError(
            "checkpoint_dir and a BackupAndRestore callback both resume a run; use one of them"
        )
    if streaming.is_dataset(x):
        streaming.check_dataset(
            x, y=y, strategy=strategy, checkpoint_dir=settings["checkpoint_dir"]
        )
        sample, kind = streaming.first_features(x)[:1], None
        if not (takes_integer_input(model) or scales_its_input(model)):
            reject_integer_features("x (the dataset's features)", sample)
    else:
        x = checked_features(model, x)
        sample, kind = x.array[:1], x.kind
    with strategy_scope(strategy):
        dtype, num_classes = model_dtype_and_classes(model, sample)
    _learning_rate_in(settings["rate"], dtype)
    loss_fn = resolve_loss(loss, dtype)
    if streaming.is_dataset(x):
        x_dtype = (input_dtype(model) or tf.int32) if sample.dtype.kind in "iu" else dtype
        features, targets = streaming.prepared(x, x_dtype, dtype, num_classes), None
    else:
        targets = labels_tensor(y, x.shape[0], num_classes, dtype)
        features = features_tensor(model, x, dtype)
    validation = None
    if validation_data is not None:
        validation = _validation_tensors(model, validation_data, features, kind, num_classes, dtype)
    checkpointer = snapshot = None
    if settings["checkpoint_dir"] is not None:
        checkpointer, snapshot = _checkpoints(
            model, loss_fn, x.array, targets, validation, strategy, settings
        )
    try:
        run = _build_run(features, targets, dtype, validation, checkpointer, verbose, settings)
        run.batch_hooks = wants_batch_hooks(callbacks)
        run.chunk = _chunk(run, settings["steps_per_execution"])
        if has_progress_bar(callbacks):  # Keras' ProgbarLogger replaces ours
            run.progress = Progress(0, run.epochs, run.steps)
        run.engine = compiled_engine(model, loss_fn, settings["jit_compile"], strategy)
        if snapshot is not None:
            run.first_epoch = checkpointer.resume(snapshot, run.history, run.rng, verbose)
            run.finished = run.first_epoch >= run.epochs or snapshot.state["stopped"]
    except BaseException:
        if checkpointer is not None:
            checkpointer.close()
        raise
    return run


def _checkpoints(model, loss_fn, x, y, validation, strategy, settings):
    """The checkpointer and snapshot of ``settings["checkpoint_dir"]`` (step 5)."""
    rate = settings["rate"]
    fingerprint = run_fingerprint(
        model,
        loss_fn,
        x,
        y,
        batch_size=settings["batch_size"],
        learning_rate=rate.value if rate.value is not None else 0.0,
        seed=settings["seed"],
        validation=validation,
        jit_compile=settings["jit_compile"],
        replicas=1 if strategy is None else strategy.num_replicas_in_sync,
    )
    fingerprint["learning_rate"] = rate.describe()
    return _open_checkpoints(
        settings["checkpoint_dir"],
        settings["keep_checkpoints"],
        strategy,
        model,
        fingerprint,
        settings["epochs"],
    )


def _chunk(run, steps_per_execution):
    """Full batches per engine call (module docstring)."""
    if run.batch_hooks:
        return steps_per_execution
    if run.dataset is not None:
        return DATASET_CHUNK
    return run.progress.batches_per_call(run.num_samples // run.batch_size)


def _build_run(features, targets, dtype, validation, checkpointer, verbose, settings):
    """The :class:`TrainingRun` of checked ``features`` (a tensor or a prepared
    dataset), ``targets`` (one-hot tensor or None) and ``settings``; its engine,
    chunk and batch hooks still to be set."""
    epochs, batch_size, rate = settings["epochs"], settings["batch_size"], settings["rate"]
    if streaming.is_dataset(features):
        cardinality = int(features.cardinality())
        steps = cardinality if cardinality >= 0 else None
        num_samples = None
    else:
        num_samples = int(features.shape[0])
        num_full, remainder = divmod(num_samples, batch_size)
        steps = num_full + (1 if remainder else 0)
    progress = Progress(verbose, epochs, steps)
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": rate.describe(),
        "seed": settings["seed"],
        "steps": steps,
        "samples": num_samples,
        "dtype": str(dtype),
    }
    return TrainingRun(
        features=features,
        targets=targets,
        engine=None,
        validation=validation,
        rate=rate,
        rng=np.random.default_rng(settings["seed"]),
        epochs=epochs,
        batch_size=batch_size,
        num_samples=num_samples,
        steps=steps,
        chunk=1,
        batch_hooks=False,
        verbose=verbose,
        history=History(params),
        progress=progress,
        checkpointer=checkpointer,
    )
