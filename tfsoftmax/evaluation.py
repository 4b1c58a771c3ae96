"""Validation after each epoch of :func:`tfsoftmax.training.train_sgd`, as ``fit`` evaluates.

No update; ``training=False``. Over pieces ``c`` of ``n_c`` samples (in-memory
data: :data:`EVALUATION_CHUNK` samples at a time; a dataset: its batches)::

    val_loss     = Σ_c n_c · loss_c / Σ_c n_c        the mean loss over samples
    val_accuracy = Σ_c correct_c / Σ_c n_c

with the callbacks' ``on_test_begin``, ``on_test_batch_begin/end`` (one pair
per piece, logs: the running ``loss`` and ``accuracy``) and ``on_test_end``
(logs: ``loss``, ``accuracy``).
"""

__all__ = ["EVALUATION_CHUNK", "evaluate", "evaluation_batches"]

#: Samples per call when evaluating in-memory validation data.
EVALUATION_CHUNK = 10_000


def evaluation_batches(validation):
    """The validation data in pieces: :data:`EVALUATION_CHUNK` samples of the
    ``(x, y)`` tensors at a time, or the dataset's batches."""
    if not isinstance(validation, tuple):
        yield from validation
        return
    x, y = validation
    for start in range(0, int(x.shape[0]), EVALUATION_CHUNK):
        yield x[start : start + EVALUATION_CHUNK], y[start : start + EVALUATION_CHUNK]


def evaluate(engine, validation, callback_list):
    """``(Σ_pieces n_c · loss_c / n, correct / n)``: the mean loss over samples and
    the accuracy of ``validation`` (``(x, y)`` tensors or a dataset), between
    ``on_test_begin`` and ``on_test_end`` of ``callback_list`` (one
    ``on_test_batch_*`` pair per piece)."""
    callback_list.on_test_begin()
    total_loss, correct, count = 0.0, 0, 0
    for index, (x, y) in enumerate(evaluation_batches(validation)):
        callback_list.on_test_batch_begin(index)
        loss, hits = engine.evaluate(x, y)
        rows = int(x.shape[0])
        total_loss += float(loss) * rows
        correct += int(hits)
        count += rows
        logs = {"loss": total_loss / count, "accuracy": correct / count}
        callback_list.on_test_batch_end(index, logs)
    if count == 0:
        raise ValueError("validation_data is empty: there is nothing to evaluate")
    callback_list.on_test_end({"loss": total_loss / count, "accuracy": correct / count})
    return total_loss / count, correct / count
