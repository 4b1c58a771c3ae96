"""Everything :func:`tfsoftmax.training.train_sgd` checks and builds before its first epoch.

In this order, so that a bad argument raises ``ValueError`` before anything
(the model's weights, a checkpoint folder) is changed:

1. the settings: ``epochs, batch_size, keep_checkpoints ≥ 1``, a finite
   ``learning_rate > 0``, a valid ``seed``, ``verbose ∈ {0, 1, 2}``
   (``callbacks`` are checked by :func:`check_callbacks` just before);
2. the model: built on ``x``'s width if needed (inside the strategy's scope),
   with trainable variables of one dtype, all finite, and one
   ``(batch, classes)`` output; the learning rate finite and non-zero in that
   dtype (``1e39`` is inf in float32, ``1e5`` in float16);
3. the loss: ``loss``, or :class:`tfsoftmax.losses.CategoricalCrossentropy`
   computing in the model's dtype;
4. the data: ``x (N, features)`` floating point and finite in the model's
   dtype, ``y`` one-hot ``(N, classes)`` or class indices, the same for
   ``validation_data``;
5. the checkpoints: the folder checked, created and locked
   (:class:`tfsoftmax.checkpointing.RunCheckpointer`), the newest checkpoint
   of this run (same fingerprint) read and validated in full;
6. the engine (:func:`tfsoftmax.engine.compiled_engine`), and only then a resume
   assigns the checkpoint's weights, history and generator state.

If a step after the folder was locked fails, the folder is released again.

The epoch has ``steps = ⌈N / batch_size⌉`` batches, ``⌊N / batch_size⌋`` of
them full.
"""

import dataclasses

import numpy as np

from tfsoftmax._tf import keras, tf
from tfsoftmax.checkpointing import RunCheckpointer, run_fingerprint
from tfsoftmax.distribute import strategy_scope, worker_checkpoint_dir
from tfsoftmax.divergence import non_finite_names
from tfsoftmax.engine import compiled_engine
from tfsoftmax.history import History
from tfsoftmax.progress import Progress
from tfsoftmax.validation import (
    check_features,
    check_fits_dtype,
    check_labels,
    check_learning_rate,
    check_learning_rate_in_dtype,
    check_positive_int,
    check_seed,
)

__all__ = ["TrainingRun", "check_callbacks", "set_up_run"]


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


def _checked_settings(epochs, batch_size, learning_rate, seed, keep_checkpoints, verbose):
    """The numeric settings, checked (step 1 of the module docstring)."""
    checked = (
        check_positive_int("epochs", epochs),
        check_positive_int("batch_size", batch_size),
        check_learning_rate(learning_rate),
        check_seed(seed),
        check_positive_int("keep_checkpoints", keep_checkpoints),
    )
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    return checked


# dtype name -> the default loss for models whose variables have that dtype.
_DEFAULT_LOSSES = {}


def _resolve_loss(loss, dtype):
    """``loss``, or tfsoftmax's CCE computing in the model's variable ``dtype``.

    A Keras loss computes in its own dtype (``floatx()`` unless told), so the
    default for a float64 model must be a float64 loss, not a float32 one.
    """
    if loss is None:
        name = tf.as_dtype(dtype).name
        if name not in _DEFAULT_LOSSES:
            from tfsoftmax.losses import CategoricalCrossentropy

            _DEFAULT_LOSSES[name] = CategoricalCrossentropy(dtype=name)
        return _DEFAULT_LOSSES[name]
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if not callable(loss):
        raise ValueError(f"loss must be a callable loss(y_true, y_pred) or None, got {loss!r}")
    return loss


def _model_io(model, x):
    """Build ``model`` on ``x``'s width if needed; return (variable dtype, classes)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not model.built or not model.trainable_variables:
        model(x[:1])
    if not model.trainable_variables:
        raise ValueError("model has no trainable variables: there is nothing to train")
    names = [getattr(v, "path", v.name) for v in model.variables]
    bad = non_finite_names([v.numpy() for v in model.variables], names)
    if bad:
        raise ValueError(f"the model's weights hold NaN or inf ({', '.join(bad[:3])})")
    dtype = model.trainable_variables[0].dtype
    output_shape = model.compute_output_shape((None, x.shape[1]))
    if (
        isinstance(output_shape, list | tuple)
        and output_shape
        and isinstance(output_shape[0], tuple | list)
    ):
        raise ValueError("model must have a single output of class probabilities")
    if len(output_shape) != 2 or output_shape[-1] is None:
        raise ValueError(
            f"model must output (batch, classes) probabilities, its output shape is "
            f"{tuple(output_shape)}"
        )
    return dtype, int(output_shape[-1])


def _validation_tensors(validation_data, x, num_classes, dtype):
    """``validation_data`` checked like the training data, as ``dtype`` tensors."""
    if not isinstance(validation_data, list | tuple) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (x_val, y_val)")
    x_val = check_features(validation_data[0], "validation_data[0]")
    if x_val.shape[1] != x.shape[1]:
        raise ValueError(f"validation_data[0] has {x_val.shape[1]} features but x has {x.shape[1]}")
    y_val = check_labels(validation_data[1], x_val.shape[0], num_classes, "validation_data[1]")
    check_fits_dtype(x_val, *_largest(dtype), "validation_data[0]")
    return tf.constant(x_val, dtype), tf.constant(y_val, dtype)


def _largest(dtype):
    """``(largest finite value, name)`` of ``dtype``."""
    return float(tf.as_dtype(dtype).max), tf.as_dtype(dtype).name


def _learning_rate_in(learning_rate, dtype):
    """``learning_rate`` as the model's ``dtype`` holds it: finite and > 0, or ValueError."""
    cast = float(tf.cast(tf.constant(learning_rate, tf.float64), dtype))
    return check_learning_rate_in_dtype(learning_rate, cast, tf.as_dtype(dtype).name)


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
    tensors of the model's dtype, the engine, the shuffling generator, the
    history, the progress display and the checkpoints. ``first_epoch`` is where
    the loop starts (after a resume), ``finished`` that a resumed run has
    nothing left to do; ``chunk`` full batches go into one engine call."""

    engine: object
    features: tf.Tensor
    targets: tf.Tensor
    validation: tuple | None
    learning_rate: tf.Tensor
    rng: np.random.Generator
    epochs: int
    batch_size: int
    num_samples: int
    steps: int
    chunk: int
    history: History
    progress: Progress
    checkpointer: RunCheckpointer | None
    first_epoch: int = 0
    finished: bool = False


def set_up_run(
    model,
    x,
    y,
    *,
    epochs,
    batch_size,
    learning_rate,
    seed,
    loss,
    validation_data,
    verbose,
    checkpoint_dir,
    keep_checkpoints,
    jit_compile,
    strategy,
):
    """:func:`tfsoftmax.training.train_sgd`'s arguments checked — a ``ValueError``
    before anything is changed — and the run built; resumed from
    ``checkpoint_dir`` if it holds a checkpoint of this run."""
    epochs, batch_size, learning_rate, seed, keep_checkpoints = _checked_settings(
        epochs, batch_size, learning_rate, seed, keep_checkpoints, verbose
    )
    x = check_features(x)
    with strategy_scope(strategy):
        dtype, num_classes = _model_io(model, x)
    _learning_rate_in(learning_rate, dtype)
    loss_fn = _resolve_loss(loss, dtype)
    y = check_labels(y, x.shape[0], num_classes)
    x = check_fits_dtype(x, *_largest(dtype))
    validation = None
    if validation_data is not None:
        validation = _validation_tensors(validation_data, x, num_classes, dtype)
    checkpointer = snapshot = None
    if checkpoint_dir is not None:
        fingerprint = run_fingerprint(
            model,
            loss_fn,
            x,
            y,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            validation=validation,
            jit_compile=jit_compile,
            replicas=1 if strategy is None else strategy.num_replicas_in_sync,
        )
        checkpointer, snapshot = _open_checkpoints(
            checkpoint_dir, keep_checkpoints, strategy, model, fingerprint, epochs
        )
    settings = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    try:
        run = _build_run(x, y, dtype, validation, checkpointer, verbose, settings)
        run.engine = compiled_engine(model, loss_fn, jit_compile, strategy)
        if snapshot is not None:
            run.first_epoch = checkpointer.resume(snapshot, run.history, run.rng, verbose)
            run.finished = run.first_epoch >= epochs or snapshot.state["stopped"]
    except BaseException:
        if checkpointer is not None:
            checkpointer.close()
        raise
    return run


def _build_run(x, y, dtype, validation, checkpointer, verbose, settings):
    """The :class:`TrainingRun` of checked ``x``, ``y`` and ``settings`` (epochs,
    batch_size, learning_rate, seed), its engine still to be set."""
    epochs, batch_size = settings["epochs"], settings["batch_size"]
    num_samples = x.shape[0]
    num_full, remainder = divmod(num_samples, batch_size)
    steps = num_full + (1 if remainder else 0)
    progress = Progress(verbose, epochs, steps)
    return TrainingRun(
        features=tf.constant(x, dtype),
        targets=tf.constant(y, dtype),
        engine=None,
        validation=validation,
        learning_rate=tf.constant(settings["learning_rate"], tf.float64),
        rng=np.random.default_rng(settings["seed"]),
        epochs=epochs,
        batch_size=batch_size,
        num_samples=num_samples,
        steps=steps,
        chunk=progress.batches_per_call(num_full),
        history=History({**settings, "steps": steps, "samples": num_samples, "dtype": str(dtype)}),
        progress=progress,
        checkpointer=checkpointer,
    )
