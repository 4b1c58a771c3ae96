"""The notebook's mini-batch SGD loop, hand-written and compiled: :func:`train_sgd`.

For every epoch ``e`` and every batch ``B`` of a fresh shuffle::

    L_B = loss(Y_B, model(X_B))              # recorded before the update
    w  ← w − lr · ∂L_B/∂w                    # for every trainable variable w
    loss_e = (1 / #batches) · Σ_B L_B         # the notebook's epoch loss
    accuracy_e = (1 / N) · Σ_B correct_B      # each batch's predictions before its update

How it is made fast: the shuffle is done once per epoch *outside* compiled
code (``tf.gather`` with the permutation, one epoch ahead on a second thread,
overlapping the compiled loop — :class:`tfsoftmax.epochs.ShuffledEpochs`), the
full batches are viewed as one ``(batches, batch, features)`` tensor, and the
whole batch loop runs inside a single ``tf.function`` compiled with XLA
(:class:`tfsoftmax.engine.SingleDeviceEngine`); batch ``i`` is a dynamic slice
of that tensor, never a gather inside the loop. A last partial batch
(``num_samples % batch_size`` samples) is kept, as ``np.split`` keeps it, and
trained by a second compiled step. The compiled functions are cached per
model (:func:`tfsoftmax.engine.compiled_engine`), so calling :func:`train_sgd`
again with the same shapes reuses them, as ``model.fit`` does. With a
``strategy`` the same loop drives :class:`tfsoftmax.engine.DataParallelEngine`.

Batch order: the epoch's permutation is ``rng.permutation(num_samples)`` with
``rng = np.random.default_rng(seed)`` — exactly what
:func:`tfsoftmax.reference.generate_batch_indices` draws — so the NumPy
reference and this trainer, given the same seed, see the same batches.

A run is set up first (:func:`tfsoftmax.run_setup.set_up_run`: every argument
checked before anything changes, a checkpoint to resume read and checked),
then the loop runs epoch by epoch: callbacks, progress, validation
(``val_loss``, ``val_accuracy`` on ``validation_data``, in chunks of
:data:`EVALUATION_CHUNK`), a checkpoint after every good epoch. A non-finite
batch loss rolls the weights back to the start of its epoch and raises
:class:`TrainingDivergedError`.
"""

import time

import numpy as np

from tfsoftmax import constants
from tfsoftmax._tf import keras, tf
from tfsoftmax.epochs import ShuffledEpochs
from tfsoftmax.run_setup import set_up_run

__all__ = ["EVALUATION_CHUNK", "TrainingDivergedError", "train_sgd"]

#: Samples per call when evaluating validation data.
EVALUATION_CHUNK = 10_000


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the weights were rolled back."""


def train_sgd(
    model,
    x,
    y,
    *,
    epochs=constants.EPOCHS,
    batch_size=constants.BATCH_SIZE,
    learning_rate=constants.LEARNING_RATE,
    seed=constants.SEED,
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
            ones on the same global batch (see :mod:`tfsoftmax.engine`).
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
    run = set_up_run(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        loss=loss,
        validation_data=validation_data,
        verbose=verbose,
        checkpoint_dir=checkpoint_dir,
        keep_checkpoints=keep_checkpoints,
        jit_compile=jit_compile,
        strategy=strategy,
    )
    if run.finished:
        return run.history
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=False, add_progbar=False, model=model, **run.history.params
    )
    model.stop_training = False
    callback_list.on_train_begin()
    remaining = range(run.first_epoch, run.epochs)
    shuffled = ShuffledEpochs(run.features, run.targets, run.rng, run.batch_size, remaining)
    logs = {}
    try:
        for epoch in remaining:
            started = time.perf_counter()
            callback_list.on_epoch_begin(epoch)
            run.progress.start_epoch(epoch)
            batch_losses, correct = _train_epoch(model, run, shuffled.next(), epoch)
            logs = {"loss": float(np.mean(batch_losses)), "accuracy": correct / run.num_samples}
            if run.validation is not None:
                logs["val_loss"], logs["val_accuracy"] = _evaluate(run.engine, *run.validation)
            seconds = time.perf_counter() - started
            run.history.record(epoch, logs, seconds)
            run.progress.end_epoch(epoch, logs, seconds)
            callback_list.on_epoch_end(epoch, logs)
            if run.checkpointer is not None:  # after a good epoch only: never a diverged one
                rng = shuffled.rng_after(epoch)
                run.checkpointer.save(epoch + 1, run.history, rng, stopped=model.stop_training)
            if model.stop_training:
                break
    finally:
        shuffled.close()
    callback_list.on_train_end(logs)
    return run.history


def _train_epoch(model, run, batches, epoch):
    """One epoch over ``batches`` (from :class:`tfsoftmax.epochs.ShuffledEpochs`);
    returns the per-batch losses and the number of correct predictions. The full
    batches go through the compiled loop ``run.chunk`` at a time (one call when
    there is no progress bar), the partial one through the compiled single step.
    On a non-finite loss the weights go back to their values at the epoch's start."""
    full_x, full_y, tail_x, tail_y = batches
    num_full = int(full_x.shape[0])
    good_weights = [variable.numpy() for variable in model.trainable_variables]
    batch_losses = np.zeros(run.steps)
    correct = 0
    lr = run.learning_rate
    for start in range(0, num_full, run.chunk):
        stop = min(start + run.chunk, num_full)
        losses, hits = run.engine.run_batches(
            full_x, full_y, tf.constant(start), tf.constant(stop), lr
        )
        batch_losses[start:stop] = losses.numpy()[start:stop]
        correct += int(hits)
        _check_finite(batch_losses, start, stop, epoch, model, good_weights)
        run.progress.update(stop, float(np.mean(batch_losses[:stop])))
    if num_full < run.steps:
        loss_value, hits = run.engine.train_step(tail_x, tail_y, lr)
        batch_losses[num_full] = float(loss_value)
        correct += int(hits)
        _check_finite(batch_losses, num_full, run.steps, epoch, model, good_weights)
    return batch_losses, correct


def _check_finite(batch_losses, start, stop, epoch, model, good_weights):
    """Raise :class:`TrainingDivergedError` if a loss in ``[start, stop)`` is not
    finite, after restoring ``good_weights``."""
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


def _evaluate(engine, x, y):
    """``(Σ_chunks n_c · loss_c / n, correct / n)``: the mean loss over samples and
    the accuracy, in chunks of :data:`EVALUATION_CHUNK` samples."""
    total_loss, correct, count = 0.0, 0, int(x.shape[0])
    for start in range(0, count, EVALUATION_CHUNK):
        stop = min(start + EVALUATION_CHUNK, count)
        loss, hits = engine.evaluate(x[start:stop], y[start:stop])
        total_loss += float(loss) * (stop - start)
        correct += int(hits)
    return total_loss / count, correct / count
