"""The notebook's mini-batch SGD loop, hand-written and compiled: :func:`train_sgd`.

For every epoch ``e`` and every batch ``B`` of a fresh shuffle::

    L_B = loss(Y_B, model(X_B))              # recorded before the update
    w  ← w − lr · ∂L_B/∂w                    # for every trainable variable w
    loss_e = (1 / #batches) · Σ_B L_B         # the notebook's epoch loss
    accuracy_e = (1 / N) · Σ_B correct_B      # each batch's predictions before its update

How it is made fast: the data stays one ``(samples, features)`` tensor on the
device, converted and checked once per array (:mod:`tfsoftmax.input_cache`:
a second call on the same, unchanged arrays skips both); per epoch only the
permutation goes in, as ``(batches, batch)`` indices
(:class:`tfsoftmax.epochs.EpochOrders`), and the whole batch loop runs
inside a single ``tf.function`` compiled with XLA
(:class:`tfsoftmax.engine.SingleDeviceEngine`) that gathers batch ``i``'s
rows itself. A last partial batch
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

Keras habits (``model.fit``'s): ``learning_rate`` may be a float, a
``keras.optimizers.schedules.LearningRateSchedule`` or a callable of the
global step (:mod:`tfsoftmax.learning_rate`); with callbacks,
``model.optimizer`` is, during the call, a small optimizer holding the rate
actually used and the step count, so ``LearningRateScheduler``,
``ReduceLROnPlateau``, ``TensorBoard`` and ``CSVLogger`` see and change the
real rate; the whole callback protocol is driven
(:mod:`tfsoftmax.callback_hooks`); ``loss`` is anything Keras accepts
(:mod:`tfsoftmax.loss_resolution`); ``x`` may be a ``tf.data.Dataset``
(:mod:`tfsoftmax.streaming`).

Divergence: an epoch is good when every batch loss ``L_B`` (checked after
every compiled call), every weight (``∧ isfinite(w)`` after the epoch's last
update, on the NumPy copy that is the next epoch's restore point: no extra
device call) and the validation loss are finite. Otherwise
the weights go back to their values at the start of the epoch — the last
finite ones, also those of the last checkpoint — and
:class:`TrainingDivergedError` is raised; nothing of the diverged epoch is
recorded or saved.
"""

import contextlib
import time

import numpy as np

from tfsoftmax import constants
from tfsoftmax.callback_hooks import backup_initial_epoch, make_callback_list
from tfsoftmax.divergence import TrainingDivergedError, first_non_finite, non_finite_names
from tfsoftmax.epochs import EpochOrders, indexed_chunks, skip_epochs
from tfsoftmax.evaluation import EVALUATION_CHUNK, evaluate
from tfsoftmax.learning_rate import TrainerOptimizer, attached_optimizer
from tfsoftmax.run_setup import check_callbacks, set_up_run
from tfsoftmax.streaming import DatasetEpochs, dataset_chunks

__all__ = ["EVALUATION_CHUNK", "TrainingDivergedError", "train_sgd"]


def train_sgd(
    model,
    x,
    y=None,
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
    steps_per_execution=1,
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
            image arrays are rejected), integer images such as uint8 pixels
            for a model that scales its input (its first layer is a
            ``keras.layers.Rescaling``, e.g. ``notebook_model(...,
            input_dtype="uint8")``; held as uint8, scaled per batch:
            :mod:`tfsoftmax.rescaling`), or integer token ids for a model whose
            input is integer (a ``keras.Input`` of an integer dtype, or an
            ``Embedding`` first); or a ``tf.data.Dataset`` of ``(x, y)``
            batches, iterated once per epoch in its own order
            (:mod:`tfsoftmax.streaming`; ``y``, ``batch_size`` and ``seed``
            then do not apply).
        y: ``(samples, classes)`` one-hot labels, or ``(samples,)`` integer
            class indices; None with a dataset.
        epochs: number of passes over the data (≥ 1).
        batch_size: samples per batch (≥ 1); a last partial batch is kept.
        learning_rate: the SGD step size: a finite float > 0, a
            ``keras.optimizers.schedules.LearningRateSchedule`` (called with
            the global step, 0 for the run's first batch, as an optimizer
            calls it) or a callable ``f(step)`` (or ``f()``) returning the
            rate (:mod:`tfsoftmax.learning_rate`). Rates of a schedule are
            computed on the host for each compiled call, never retracing it.
        seed: seeds the shuffling generator ``np.random.default_rng(seed)``.
        loss: anything ``model.compile(loss=...)`` takes — a
            ``keras.losses.Loss``, a name (``"categorical_crossentropy"``) or a
            function of per-sample losses, averaged over the batch as Keras
            does (:mod:`tfsoftmax.loss_resolution`); defaults to
            :class:`tfsoftmax.losses.CategoricalCrossentropy`.
        validation_data: optional ``(x_val, y_val)`` or a ``tf.data.Dataset``
            of ``(x, y)`` batches, evaluated after every epoch as ``val_loss``
            and ``val_accuracy``.
        verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        callbacks: Keras callbacks, driven as ``model.fit`` drives them
            (:mod:`tfsoftmax.callback_hooks`): ``on_train_begin/end``,
            ``on_epoch_begin/end`` (logs: ``loss``, ``accuracy``, ``val_*``
            and ``learning_rate``, the rate of the epoch's last update),
            ``on_test_begin/end`` and ``on_test_batch_*`` around validation,
            and ``on_train_batch_begin/end`` (logs: the epoch's running
            ``loss`` and ``accuracy``) — the batch hooks only when some
            callback overrides them, once every ``steps_per_execution``
            batches (then the epoch runs in compiled chunks of that many
            batches; otherwise in one call). ``params`` holds ``epochs``,
            ``steps`` and ``verbose``. ``model.stop_training = True`` ends
            training (after the current chunk). During the call
            ``model.optimizer`` is a
            :class:`tfsoftmax.learning_rate.TrainerOptimizer` holding the rate
            (callbacks may set it) and the global step; a compiled model's
            own optimizer is put back afterwards and never used. A
            ``BackupAndRestore`` callback resumes at the epoch it saved, with
            the batch order of an uninterrupted run. ``TerminateOnNaN`` sees
            a NaN batch loss, and then the run stops with
            :class:`TrainingDivergedError` as below.
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
            Not with a ``tf.data.Dataset`` (refused with a ``ValueError``).
        steps_per_execution: batches per compiled call between two calls of
            the callbacks' batch hooks (≥ 1; Keras' setting of that name).
            Used only when a callback listens to batches.

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
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        keep_checkpoints=keep_checkpoints,
        jit_compile=jit_compile,
        strategy=strategy,
        steps_per_execution=steps_per_execution,
    )
    try:
        if not run.finished:
            optimizer = None
            if callbacks:
                optimizer = TrainerOptimizer(run.rate, run.first_epoch * (run.steps or 0))
            with attached_optimizer(model, optimizer) if optimizer else contextlib.nullcontext():
                _train_epochs(model, run, callbacks, optimizer)
    finally:
        if run.checkpointer is not None:
            run.checkpointer.close()
    return run.history


def _train_epochs(model, run, callbacks, optimizer):
    """The epoch loop of :func:`train_sgd`, from ``run.first_epoch`` (or the epoch a
    ``BackupAndRestore`` callback restored)."""
    callback_list = make_callback_list(callbacks, model, run.params)
    model.stop_training = False
    callback_list.on_train_begin()
    remaining = range(_first_epoch(model, run, optimizer), run.epochs)
    if run.dataset is not None:
        epochs = DatasetEpochs(run.dataset)
    else:
        epochs = EpochOrders(run.num_samples, run.rng, run.batch_size, remaining)
    logs, good_weights = {}, None
    try:
        for epoch in remaining:
            started = time.perf_counter()
            callback_list.on_epoch_begin(epoch)
            run.progress.start_epoch(epoch)
            logs, weights = _train_epoch(
                model, run, epochs.next(), epoch, good_weights, callback_list, optimizer
            )
            seconds = time.perf_counter() - started
            run.history.record(epoch, logs, seconds)
            run.progress.end_epoch(epoch, logs, seconds)
            # The rate of the epoch's last update, as the optimizer reports it.
            callback_list.on_epoch_end(epoch, {**logs, "learning_rate": _last_rate(run)})
            if run.checkpointer is not None:  # after a good epoch only: never a diverged one
                rng = epochs.rng_after(epoch)
                run.checkpointer.save(epoch + 1, run.history, rng, stopped=model.stop_training)
            if model.stop_training:
                break
            # The checked end-of-epoch copy is the next restore point, unless a
            # callback ran: it may have changed the weights (as a checkpoint saw them).
            good_weights = None if callbacks else weights
    finally:
        epochs.close()
    callback_list.on_train_end(logs)


def _last_rate(run):
    """``η`` of the most recent update (of the first, before any)."""
    return run.rate.at(max(run.step - 1, 0))


def _first_epoch(model, run, optimizer):
    """``run.first_epoch``, or the later epoch a ``BackupAndRestore`` callback
    restored in ``on_train_begin``: the generator skips the epochs before it,
    and the global step starts at ``epoch · steps``."""
    first = run.first_epoch
    restored = backup_initial_epoch(model)
    if restored is not None and restored > first:
        if run.dataset is None:
            skip_epochs(run.rng, run.num_samples, restored - first)
        first = restored
    run.step = first * (run.steps or 0)
    if optimizer is not None:
        optimizer.step = run.step
    return first


class _Tally:
    """The batch losses, correct predictions and samples of an epoch so far."""

    def __init__(self, steps):
        self._losses = np.zeros(steps or 64)
        self.correct, self.samples, self.batches, self.total = 0, 0, 0, 0.0

    @property
    def losses(self):
        """The epoch's batch losses so far (a view)."""
        return self._losses[: self.batches]

    def add(self, losses, correct, samples):
        """Add one chunk; returns the index of its first batch."""
        begin, end = self.batches, self.batches + len(losses)
        if end > len(self._losses):  # a dataset of unknown length: grow
            self._losses = np.concatenate([self._losses, np.zeros(max(end, len(self._losses)))])
        self._losses[begin:end] = losses
        self.correct += correct
        self.samples += samples
        self.batches = end
        self.total += float(np.sum(losses))
        return begin

    def running_logs(self):
        """The epoch so far: ``loss`` (mean batch loss) and ``accuracy``."""
        return {"loss": self.total / self.batches, "accuracy": self.correct / self.samples}

    def epoch_logs(self):
        """``loss`` (the notebook's mean of the batch losses) and ``accuracy``."""
        return {"loss": float(np.mean(self.losses)), "accuracy": self.correct / self.samples}


def _train_epoch(model, run, batches, epoch, good_weights, callback_list, optimizer):
    """One epoch over ``batches`` (the epoch's shuffled arrays, or the dataset);
    returns its logs (loss, accuracy, validation metrics, and ``learning_rate``
    when the rate is a schedule) and NumPy copies of ``model.variables`` after
    it, checked finite. The batches go through the compiled engine
    ``run.chunk`` at a time (:func:`tfsoftmax.epochs.indexed_chunks`,
    :func:`tfsoftmax.streaming.dataset_chunks`), the batch hooks between two
    calls when ``run.batch_hooks``. On a non-finite loss or weight the weights
    go back to their values at the epoch's start (``good_weights``, copied
    here when None) and :class:`TrainingDivergedError` is raised."""
    if good_weights is None:
        good_weights = [variable.numpy() for variable in model.variables]
    hooks = callback_list if run.batch_hooks else None
    before = hooks.on_train_batch_begin if hooks is not None else None
    if run.dataset is None:
        data = (run.features, run.targets)
        chunks = indexed_chunks(run.engine, data, batches, run.rate, run.step, run.chunk, before)
    else:
        chunks = dataset_chunks(run.engine, batches, run.rate, run.step, run.chunk, before)
    tally = _Tally(run.steps)
    try:
        for losses, hits, samples in chunks:
            begin = tally.add(losses, hits, samples)
            run.step += len(losses)
            if optimizer is not None:
                optimizer.step = run.step
            if hooks is not None:
                hooks.on_train_batch_end(tally.batches - 1, tally.running_logs())
            _check_finite(tally.losses, begin, tally.batches, epoch, model, good_weights)
            run.progress.update(tally.batches, tally.running_logs()["loss"])
            if model.stop_training:
                break
    finally:
        chunks.close()
    weights = [variable.numpy() for variable in model.variables]
    if non_finite_names(weights, range(len(weights))):
        _diverged(model, good_weights, epoch, f"the weights became NaN or inf in epoch {epoch + 1}")
    logs = tally.epoch_logs()
    if not run.rate.is_constant:
        logs["learning_rate"] = _last_rate(run)
    if run.validation is not None:
        logs["val_loss"], logs["val_accuracy"] = evaluate(run.engine, run.validation, callback_list)
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
