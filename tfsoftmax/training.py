"""The notebook's mini-batch SGD loop, hand-written and compiled.

For every epoch ``e`` and every batch ``B`` of a fresh shuffle::

    L_B = loss(Y_B, model(X_B))              # recorded before the update
    w  ← w − lr · ∂L_B/∂w                    # for every trainable variable w
    loss_e = (1 / #batches) · Σ_B L_B         # the notebook's epoch loss

How it is made fast (see DESIGN.md for the measurements): the shuffle is done
once per epoch *outside* compiled code (``tf.gather`` with the permutation,
one epoch ahead on a second thread, overlapping the compiled loop — see
:class:`_ShuffledEpochs`), the full batches are viewed as one
``(batches, batch, features)`` tensor, and
the whole batch loop runs inside a single ``tf.function`` compiled with XLA;
batch ``i`` is a dynamic slice of that tensor, never a gather inside the loop.
A last partial batch (``num_samples % batch_size`` samples) is kept, as
``np.split`` keeps it, and trained by a second compiled step. The compiled
functions are cached per model, so calling :func:`train_sgd` again with the
same shapes reuses them, as ``model.fit`` does.

Batch order: the epoch's permutation is ``rng.permutation(num_samples)`` with
``rng = np.random.default_rng(seed)`` — exactly what
:func:`tfsoftmax.reference.generate_batch_indices` draws — so the NumPy
reference and this trainer, given the same seed, see the same batches.
"""

import concurrent.futures
import math
import time
import weakref

import numpy as np

from tfsoftmax._loops import batch_loop, count_correct
from tfsoftmax._tf import keras, tf
from tfsoftmax.checkpointing import RunCheckpointer, run_fingerprint
from tfsoftmax.distribute import DistributedTraining, strategy_scope, worker_checkpoint_dir
from tfsoftmax.history import History
from tfsoftmax.validation import (
    check_features,
    check_fits_dtype,
    check_labels,
    check_learning_rate,
    check_positive_int,
    check_seed,
)

# Progress-bar updates per epoch when verbose=1 (each is one compiled call).
PROGRESS_UPDATES_PER_EPOCH = 10
# Samples per call when evaluating validation data.
EVALUATION_CHUNK = 10_000


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the weights were rolled back."""


class _CompiledTraining:
    """The compiled batch loop, single step and evaluation of one model + loss."""

    def __init__(self, model, loss_fn, jit_compile):
        self.loss_fn = loss_fn
        variables = model.trainable_variables

        def train_step(xb, yb, learning_rate):
            with tf.GradientTape() as tape:
                probabilities = model(xb, training=True)
                loss = loss_fn(yb, probabilities)
                objective = tf.add_n([loss, *model.losses]) if model.losses else loss
            gradients = tape.gradient(objective, variables)
            for variable, gradient in zip(variables, gradients, strict=True):
                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient)
            return tf.cast(loss, tf.float64), count_correct(yb, probabilities)

        def evaluate(x, y):
            probabilities = model(x, training=False)
            loss = tf.cast(loss_fn(y, probabilities), tf.float64)
            return loss, count_correct(y, probabilities)

        self.run_batches = tf.function(batch_loop(train_step), jit_compile=jit_compile)
        self.train_step = tf.function(train_step, jit_compile=jit_compile)
        self.evaluate = tf.function(evaluate, reduce_retracing=True)


# model -> {(loss id, jit_compile, strategy id): (loss, strategy, _CompiledTraining)}
_COMPILED = weakref.WeakKeyDictionary()


def _compiled_for(model, loss_fn, jit_compile, strategy=None):
    """The cached engine: ``_CompiledTraining``, or with a ``strategy`` the
    data-parallel :class:`tfsoftmax.distribute.DistributedTraining`."""
    per_model = _COMPILED.setdefault(model, {})
    key = (id(loss_fn), bool(jit_compile), id(strategy))
    cached = per_model.get(key)
    if cached is None or cached[0] is not loss_fn or cached[1] is not strategy:
        if strategy is None:
            engine = _CompiledTraining(model, loss_fn, jit_compile)
        else:
            engine = DistributedTraining(strategy, model, loss_fn, jit_compile)
        cached = (loss_fn, strategy, engine)
        per_model[key] = cached
    return cached[2]


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


class _ShuffledEpochs:
    """Each epoch's shuffled batches, gathered one epoch ahead on a second thread.

    Epoch ``e``'s order is ``rng.permutation(num_samples)``, drawn on the calling
    thread in epoch order (so the batches are exactly the reference's). The
    gather of the next epoch's ``(batches, batch, features)`` tensor runs in a
    background thread while the compiled loop of the current one — which keeps
    a single core busy — runs on the other: TensorFlow releases the GIL in both.
    Because the next permutation is drawn early, :meth:`rng_after` gives the
    generator as it was right after epoch ``e``'s draw, for checkpoints.
    """

    def __init__(self, features, targets, rng, batch_size, epochs):
        self._features, self._targets, self._rng = features, targets, rng
        self._num_samples = int(features.shape[0])
        self._num_full = self._num_samples // batch_size
        self._batch_size = batch_size
        self._epochs = iter(epochs)
        self._states = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "tfsoftmax-shuffle")
        self._pending = self._submit()

    def _submit(self):
        epoch = next(self._epochs, None)
        if epoch is None:
            return None
        order = self._rng.permutation(self._num_samples)
        self._states[epoch] = self._rng.bit_generator.state
        return self._pool.submit(self._gather, tf.constant(order))

    def _gather(self, order):
        cut = self._num_full * self._batch_size
        shuffled_x = tf.gather(self._features, order)
        shuffled_y = tf.gather(self._targets, order)
        batches = (self._num_full, self._batch_size)
        return (
            tf.reshape(shuffled_x[:cut], (*batches, self._features.shape[1])),
            tf.reshape(shuffled_y[:cut], (*batches, self._targets.shape[1])),
            shuffled_x[cut:],
            shuffled_y[cut:],
        )

    def next(self):
        """``(full_x, full_y, tail_x, tail_y)`` of the next epoch."""
        batches = self._pending.result()
        self._pending = self._submit()
        return batches

    def rng_after(self, epoch):
        """A generator in the state right after epoch ``epoch``'s permutation."""
        generator = np.random.Generator(type(self._rng.bit_generator)())
        generator.bit_generator.state = self._states.pop(epoch)
        return generator

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Progress:
    """Keras' Progbar for ``verbose=1``, one line per epoch for ``verbose=2``."""

    def __init__(self, verbose, epochs, steps):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.bar = None

    def start_epoch(self, epoch):
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
            self.bar = keras.utils.Progbar(self.steps, unit_name="batch")

    def update(self, done, loss):
        if self.bar is not None:
            self.bar.update(done, values=[("loss", loss)], finalize=False)

    def end_epoch(self, epoch, logs, seconds):
        text = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
        if self.bar is not None:
            self.bar.update(self.steps, values=[(k, v) for k, v in logs.items()], finalize=True)
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {text}")


def train_sgd(
    model,
    x,
    y,
    *,
    epochs=20,
    batch_size=200,
    learning_rate=0.01,
    seed=0,
    loss=None,
    validation_data=None,
    verbose=1,
    callbacks=None,
    checkpoint_dir=None,
    keep_checkpoints=3,
    jit_compile=True,
    strategy=None,
):
    """Train ``model`` with plain mini-batch SGD over shuffled batches.

    ``w ← w − learning_rate · ∇w L_B`` for every trainable variable and every
    batch ``B`` of a fresh permutation per epoch (see the module docstring).
    No Keras optimizer is involved; the loss's gradient is whatever the loss
    and the model's layers define (tfsoftmax's custom gradients, or autodiff).

    Args:
        model: a ``keras.Model`` mapping ``(batch, features)`` to
            ``(batch, classes)`` probabilities — the notebook's
            ``BiasTrickDense(10)`` + ``JacobianSoftmax``, a deeper model, or
            Keras built-ins. Built on first use if needed.
        x: ``(samples, features)`` floating-point features (scaled; integer
            image arrays are rejected).
        y: ``(samples, classes)`` one-hot labels, or ``(samples,)`` integer
            class indices.
        epochs: number of passes over the data (≥ 1).
        batch_size: samples per batch (≥ 1); a last partial batch is kept.
        learning_rate: the SGD step size, finite and > 0.
        seed: seeds the shuffling generator ``np.random.default_rng(seed)``.
        loss: ``loss(y_true, y_pred) -> scalar`` mean batch loss; defaults to
            :class:`tfsoftmax.losses.CategoricalCrossentropy`.
        validation_data: optional ``(x_val, y_val)``, evaluated after every
            epoch as ``val_loss`` and ``val_accuracy``.
        verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        callbacks: Keras callbacks; they get ``on_epoch_end(epoch, logs)``,
            and ``model.stop_training = True`` ends training early.
        checkpoint_dir: optional folder for checkpoint and resume
            (:mod:`tfsoftmax.checkpointing`). After every epoch the model's
            variables, the epoch counter, the history so far and the
            shuffling generator's state are saved together as one
            ``tf.train.Checkpoint``. If the folder already holds checkpoints of
            this run, training continues after the last completed epoch (a
            finished run returns its history without training) and ends with
            exactly the weights and history of an uninterrupted run; an
            unreadable newest checkpoint is skipped with a warning for the one
            before it. Checkpoints of a run with a different batch size,
            learning rate, seed, data, model or loss are refused
            (:class:`tfsoftmax.checkpointing.CheckpointMismatchError`, a
            ``ValueError``). ``epochs`` may grow between calls.
        keep_checkpoints: how many of the newest checkpoints to keep (≥ 1).
        jit_compile: compile the batch loop with XLA (the fast path).
        strategy: optional ``tf.distribute.Strategy`` (``MirroredStrategy``,
            ``MultiWorkerMirroredStrategy``, ...) for data-parallel training;
            the model must be created inside ``strategy.scope()``. Each global
            batch is split across the replicas, gradients are summed across
            them, and the update and reported loss equal the single-device
            ones on the same global batch (see :mod:`tfsoftmax.distribute`).
            On a multi-worker run every worker calls ``train_sgd`` with the
            same data and seed. ``None``: one device, the XLA fast path.

    Returns:
        A :class:`tfsoftmax.history.History`.

    Raises:
        ValueError: a bad argument, before anything is changed.
        TrainingDivergedError: the loss became NaN or inf; the weights are
            restored to the end of the last good epoch (and no checkpoint is
            written for the diverged one).

    Determinism: the same call (same ``seed``, data, initial weights and
    settings) gives bit-identical weights and history in separate processes
    on the same machine, TensorFlow build and thread settings — measured in
    float32 and float64, with and without XLA, and checked by
    ``tests/test_determinism.py``. No ``tf.config.experimental.
    enable_op_determinism()`` is needed: the batch order comes from NumPy,
    and XLA's CPU kernels and oneDNN are deterministic for a fixed thread
    count. Changing the intra-op thread count (float64 XLA matmuls split
    differently) or ``TF_ENABLE_ONEDNN_OPTS`` (validation metrics) changes the
    last bits; so does another CPU or TensorFlow version.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_learning_rate(learning_rate)
    seed = check_seed(seed)
    keep_checkpoints = check_positive_int("keep_checkpoints", keep_checkpoints)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    x = check_features(x)
    with strategy_scope(strategy):
        dtype, num_classes = _model_io(model, x)
    loss_fn = _resolve_loss(loss, dtype)
    y = check_labels(y, x.shape[0], num_classes)
    largest = (float(tf.as_dtype(dtype).max), tf.as_dtype(dtype).name)
    x = check_fits_dtype(x, *largest)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, list | tuple) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        x_val = check_features(validation_data[0], "validation_data[0]")
        if x_val.shape[1] != x.shape[1]:
            raise ValueError(
                f"validation_data[0] has {x_val.shape[1]} features but x has {x.shape[1]}"
            )
        y_val = check_labels(validation_data[1], x_val.shape[0], num_classes, "validation_data[1]")
        check_fits_dtype(x_val, *largest, "validation_data[0]")
        validation = (tf.constant(x_val, dtype), tf.constant(y_val, dtype))
    checkpointer = snapshot = None
    if checkpoint_dir is not None:
        fingerprint = run_fingerprint(
            model, loss_fn, x, y, batch_size=batch_size, learning_rate=learning_rate, seed=seed
        )
        if strategy is not None:
            checkpoint_dir = worker_checkpoint_dir(strategy, checkpoint_dir)
        checkpointer = RunCheckpointer(checkpoint_dir, model, fingerprint, keep_checkpoints)
        snapshot = checkpointer.latest()  # read in full and checked; nothing changed yet
        if snapshot is not None and snapshot.completed_epochs > epochs:
            raise ValueError(
                f"epochs={epochs}, but the run in checkpoint_dir {checkpoint_dir!r} has already "
                f"done {snapshot.completed_epochs}; pass epochs >= {snapshot.completed_epochs}"
            )

    num_samples = x.shape[0]
    num_full, remainder = divmod(num_samples, batch_size)
    steps = num_full + (1 if remainder else 0)
    features = tf.constant(x, dtype)
    targets = tf.constant(y, dtype)
    compiled = _compiled_for(model, loss_fn, jit_compile, strategy)
    rng = np.random.default_rng(seed)
    lr = tf.constant(learning_rate, tf.float64)
    updates = PROGRESS_UPDATES_PER_EPOCH if verbose == 1 else 1
    chunk = max(1, math.ceil(num_full / updates))

    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "steps": steps,
        "samples": num_samples,
        "dtype": str(dtype),
    }
    history = History(params)
    first_epoch = 0
    if snapshot is not None:
        first_epoch = checkpointer.resume(snapshot, history, rng, verbose)
        if first_epoch >= epochs or snapshot.state["stopped"]:
            return history
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=False, add_progbar=False, model=model, **params
    )
    progress = _Progress(verbose, epochs, steps)
    model.stop_training = False
    callback_list.on_train_begin()
    shuffled = _ShuffledEpochs(features, targets, rng, batch_size, range(first_epoch, epochs))
    logs = {}
    try:
        for epoch in range(first_epoch, epochs):
            started = time.perf_counter()
            callback_list.on_epoch_begin(epoch)
            progress.start_epoch(epoch)
            batch_losses, correct = _train_epoch(
                model, compiled, shuffled.next(), steps, chunk, lr, epoch, progress
            )
            logs = {"loss": float(np.mean(batch_losses)), "accuracy": correct / num_samples}
            if validation is not None:
                logs["val_loss"], logs["val_accuracy"] = _evaluate(compiled, *validation)
            seconds = time.perf_counter() - started
            history.record(epoch, logs, seconds)
            progress.end_epoch(epoch, logs, seconds)
            callback_list.on_epoch_end(epoch, logs)
            if checkpointer is not None:  # after a good epoch only: never a diverged one
                checkpointer.save(
                    epoch + 1, history, shuffled.rng_after(epoch), stopped=model.stop_training
                )
            if model.stop_training:
                break
    finally:
        shuffled.close()
    callback_list.on_train_end(logs)
    return history


def _train_epoch(model, compiled, batches, steps, chunk, lr, epoch, progress):
    """One epoch over ``batches`` (from :class:`_ShuffledEpochs`); returns the
    per-batch losses and the number of correct predictions. The full batches
    go through the compiled loop ``chunk`` at a time (one call when there is
    no progress bar), the partial one through the compiled single step. On a
    non-finite loss the weights go back to their values at the epoch's start."""
    full_x, full_y, tail_x, tail_y = batches
    num_full = int(full_x.shape[0])
    good_weights = [variable.numpy() for variable in model.trainable_variables]
    batch_losses = np.zeros(steps)
    correct = 0
    for start in range(0, num_full, chunk):
        stop = min(start + chunk, num_full)
        losses, hits = compiled.run_batches(
            full_x, full_y, tf.constant(start), tf.constant(stop), lr
        )
        batch_losses[start:stop] = losses.numpy()[start:stop]
        correct += int(hits)
        _check_finite(batch_losses, start, stop, epoch, model, good_weights)
        progress.update(stop, float(np.mean(batch_losses[:stop])))
    if num_full < steps:
        loss_value, hits = compiled.train_step(tail_x, tail_y, lr)
        batch_losses[num_full] = float(loss_value)
        correct += int(hits)
        _check_finite(batch_losses, num_full, steps, epoch, model, good_weights)
    return batch_losses, correct


def _check_finite(batch_losses, start, stop, epoch, model, good_weights):
    window = batch_losses[start:stop]
    if np.all(np.isfinite(window)):
        return
    first = start + int(np.argmin(np.isfinite(window)))
    for variable, value in zip(model.trainable_variables, good_weights, strict=True):
        variable.assign(value)
    raise TrainingDivergedError(
        f"training diverged: the loss became {batch_losses[first]} at epoch {epoch + 1}, "
        f"batch {first + 1}; the weights were restored to their values at the start of "
        f"epoch {epoch + 1}. Lower the learning rate."
    )


def _evaluate(compiled, x, y):
    """Mean loss over samples and accuracy, in chunks of ``EVALUATION_CHUNK``."""
    total_loss, correct, count = 0.0, 0, int(x.shape[0])
    for start in range(0, count, EVALUATION_CHUNK):
        stop = min(start + EVALUATION_CHUNK, count)
        loss, hits = compiled.evaluate(x[start:stop], y[start:stop])
        total_loss += float(loss) * (stop - start)
        correct += int(hits)
    return total_loss / count, correct / count


def evaluate(model, x, y, *, loss=None):
    """``(mean loss, accuracy)`` of ``model`` on ``(x, y)``, checked like training data."""
    x = check_features(x)
    dtype, num_classes = _model_io(model, x)
    loss_fn = _resolve_loss(loss, dtype)
    y = check_labels(y, x.shape[0], num_classes)
    compiled = _compiled_for(model, loss_fn, True)
    return _evaluate(compiled, tf.constant(x, dtype), tf.constant(y, dtype))
