"""Keras' callback protocol for :func:`tfsoftmax.training.train_sgd`, as ``model.fit`` drives it.

What the callbacks get, in order::

    on_train_begin
      on_epoch_begin(e)
        on_train_batch_begin(i)            only when a callback listens (below), once per
        on_train_batch_end(j, logs)        compiled call of batches i..j; logs: the epoch's
                                           running "loss" (mean of its batch losses so far)
                                           and "accuracy"
        on_test_begin                      around validation, as fit's evaluate does:
          on_test_batch_begin/end(k, logs) one per evaluated chunk
        on_test_end(logs)                  logs: "loss", "accuracy" of the validation data
      on_epoch_end(e, logs)                logs: loss, accuracy, val_*, learning_rate
    on_train_end(logs)

``params`` are fit's (``epochs``, ``steps``, ``verbose``) plus the run's
settings. The epoch's batches run in compiled chunks; a chunk is cut only
where a callback needs to see it (Keras' ``steps_per_execution``): when some
callback overrides ``on_train_batch_begin``/``on_train_batch_end`` (or the
legacy ``on_batch_*``) — found as Keras' own ``CallbackList`` finds it, by
the ``_is_default`` mark of the base class's methods — the hooks run every
``steps_per_execution`` batches; otherwise an epoch is one compiled call.
A callback whose batch hooks do nothing in its configuration
(``ModelCheckpoint``/``BackupAndRestore`` with ``save_freq="epoch"``,
``TensorBoard`` with ``update_freq="epoch"`` and no profiling or
steps-per-second) does not count as listening.
"""

from tfsoftmax._tf import keras

__all__ = [
    "BATCH_HOOKS",
    "backup_initial_epoch",
    "has_progress_bar",
    "make_callback_list",
    "wants_batch_hooks",
]

#: The methods whose override makes the epoch run in chunks of ``steps_per_execution``.
BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


def _epoch_only(callback):
    """Whether ``callback``'s batch hooks are no-ops in its configuration."""
    if isinstance(callback, keras.callbacks.ModelCheckpoint | keras.callbacks.BackupAndRestore):
        return callback.save_freq == "epoch"
    if isinstance(callback, keras.callbacks.TensorBoard):
        profiling = getattr(callback, "_should_trace", True)
        return (
            callback.update_freq == "epoch"
            and not callback.write_steps_per_second
            and not profiling
        )
    return False


def _listens_to_batches(callback):
    overridden = any(
        not getattr(getattr(callback, hook), "_is_default", False) for hook in BATCH_HOOKS
    )
    return overridden and not _epoch_only(callback)


def wants_batch_hooks(callbacks):
    """Whether any of ``callbacks`` (a list or None) needs ``on_train_batch_*`` calls."""
    return any(_listens_to_batches(callback) for callback in callbacks or ())


def has_progress_bar(callbacks):
    """Whether ``callbacks`` holds a ``keras.callbacks.ProgbarLogger`` (it replaces ours)."""
    return any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks or ())


def make_callback_list(callbacks, model, params):
    """Keras' ``CallbackList`` over ``callbacks`` with ``params`` (no History or
    progress bar added: ``train_sgd`` has its own)."""
    return keras.callbacks.CallbackList(
        callbacks, add_history=False, add_progbar=False, model=model, **params
    )


def backup_initial_epoch(model):
    """The epoch a ``BackupAndRestore`` callback restored in ``on_train_begin``
    (``model._initial_epoch``, as ``fit`` reads it), or None; read once and cleared."""
    epoch = getattr(model, "_initial_epoch", None)
    if epoch is not None:
        model._initial_epoch = None
    return None if epoch is None else int(epoch)
