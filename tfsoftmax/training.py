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
:data:`EVALUATION_CHUNK`), a checkpoint after every good epoch.

Divergence: an epoch is good when every batch loss ``L_B`` (checked after
every compiled call), every weight (``∧ isfinite(w)`` after the epoch's last
update, on the NumPy copy that is the next epoch's restore point: no extra
device call) and the validation loss are finite. Otherwise
the weights go back to their values at the start of the epoch — the last
finite ones, also those of the last checkpoint — and
:class:`TrainingDivergedError` is raised; nothing of the diverged epoch is
recorded or saved.
"""

import time

import numpy as np

from tfsoftmax import constants
from tfsoftmax._tf import keras, tf
from tfsoftmax.divergence import TrainingDivergedError, first_non_finite, non_finite_names
from tfsoftmax.epochs import ShuffledEpochs
from tfsoftmax.run_setup import check_callbacks, set_up_run

__all__ = ["EVALUATION_CHUNK", "TrainingDivergedError", "train_sgd"]

#: Samples per call when evaluating validation data.
EVALUATION_CHUNK = 10_000


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
        ValueError: a bad argument, before anything is changed (a learning
            rate that overflows the model's dtype, weights that are already
            NaN or inf, ``checkpoint_dir=""`` included).
        TrainingDivergedError: a batch loss, a weight or the validation loss
            became NaN or inf; the weights are restored to the end of the
            last good epoch (and no checkpoint is written for the diverged one).
        tfsoftmax.atomic.OutputError: ``checkpoint_dir`` cannot be created or
            written (checked before the first epoch), or a checkpoint write
            failed (disk full); the checkpoints written before are intact.
        tfsoftmax.run_lock.CheckpointInUseError: another run holds
            ``checkpoint_dir``.

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
    callbacks = check_callbacks(callbacks)
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
    try:
        if not run.finished:
            _train_epochs(model, run, callbacks)
    finally:
        if run.checkpointer is not None:
            run.checkpointer.close()
    return run.history


def _train_epochs(model, run, callbacks):
    """The epoch loop of :func:`train_sgd`, from ``run.first_epoch``."""
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=False, add_progbar=False, model=model, **run.history.params
    )
    model.stop_training = False
    callback_list.on_train_begin()
    remaining = range(run.first_epoch, run.epochs)
    shuffled = ShuffledEpochs(run.features, run.targets, run.rng, run.batch_size, remaining)
    logs, good_weights = {}, None
    try:
        for epoch in remaining:
            started = time.perf_counter()
            callback_list.on_epoch_begin(epoch)
            run.progress.start_epoch(epoch)
            logs, weights = _train_epoch(model, run, shuffled.next(), epoch, good_weights)
            seconds = time.perf_counter() - started
            run.history.record(epoch, logs, seconds)
            run.progress.end_epoch(epoch, logs, seconds)
            callback_list.on_epoch_end(epoch, logs)
            if run.checkpointer is not None:  # after a good epoch only: never a diverged one
                rng = shuffled.rng_after(epoch)
                run.checkpointer.save(epoch + 1, run.history, rng, stopped=model.stop_training)
            if model.stop_training:
                break
            # The checked end-of-epoch copy is the next restore point, unless a
            # callback ran: it may have changed the weights (as a checkpoint saw them).
            good_weights = None if callbacks else weights
    finally:
        shuffled.close()
    callback_list.on_train_end(logs)


def _train_epoch(model, run, batches, epoch, good_weights=None):
    """One epoch over ``batches`` (from :class:`tfsoftmax.epochs.ShuffledEpochs`);
    returns its logs (loss, accuracy, validation metrics) and NumPy copies of
    ``model.variables`` after it, checked finite. The full batches go through
    the compiled loop ``run.chunk`` at a time (one call when there is no
    progress bar), the partial one through the compiled single step. On a
    non-finite loss or weight the weights go back to their values at the
    epoch's start (``good_weights``, copied here when None) and
    :class:`TrainingDivergedError` is raised."""
    full_x, full_y, tail_x, tail_y = batches
    num_full = int(full_x.shape[0])
    if good_weights is None:
        good_weights = [variable.numpy() for variable in model.variables]
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
    weights = [variable.numpy() for variable in model.variables]
    if non_finite_names(weights, range(len(weights))):
        _diverged(model, good_weights, epoch, f"the weights became NaN or inf in epoch {epoch + 1}")
    logs = {"loss": float(np.mean(batch_losses)), "accuracy": correct / run.num_samples}
    if run.validation is not None:
        logs["val_loss"], logs["val_accuracy"] = _evaluate(run.engine, *run.validation)
        if not np.isfinite(logs["val_loss"]):
            where = f"the validation loss became {logs['val_loss']} after epoch {epoch + 1}"
            _diverged(model, good_weights, epoch, where)
    return logs, weights


def _check_finite(batch_losses, start, stop, epoch, model, good_weights):
    """Raise :class:`TrainingDivergedError` if a loss in ``[start, stop)`` is not
    finite, after restoring ``good_weights``."""
    first = first_non_finite(batch_losses[start:stop])
    if first is not None:
        first += start
        where = f"the loss became {batch_losses[first]} at epoch {epoch + 1}, batch {first + 1}"
        _diverged(model, good_weights, epoch, where)


def _diverged(model, good_weights, epoch, where):
    """Restore ``good_weights`` (the epoch's start) and raise TrainingDivergedError."""
    for variable, value in zip(model.variables, good_weights, strict=True):
        variable.assign(value)
    raise TrainingDivergedError(
        f"training diverged: {where}; the weights were restored to their values at the "
        f"start of epoch {epoch + 1}. Lower the learning rate."
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
