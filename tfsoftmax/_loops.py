"""Pieces shared by the single-device and the distributed training engines."""

from tfsoftmax._tf import tf


def count_correct(y, probabilities):
    """How many rows' argmax of ``probabilities`` is the one-hot ``y``'s class (int64)."""
    hits = tf.equal(tf.argmax(probabilities, axis=-1), tf.argmax(y, axis=-1))
    return tf.reduce_sum(tf.cast(hits, tf.int64))


def batch_loop(train_step):
    """``run_batches(xb, yb, start, stop, lr)``: ``train_step`` on ``xb[i], yb[i]``
    for ``start <= i < stop``, returning each batch's loss (float64, at index
    ``i`` of a ``(batches,)`` vector, zeros elsewhere) and the correct count.
    Meant to be wrapped in one ``tf.function`` (with XLA where it can)."""

    def run_batches(xb, yb, start, stop, learning_rate):
        # A plain while loop, not ``for i in tf.range(start, stop)``: the latter
        # gives XLA a ``maximum_iterations`` it must treat as a compile-time
        # constant, so every new (start, stop) pair would recompile.
        batch_losses = tf.zeros([tf.shape(xb)[0]], tf.float64)
        correct = tf.constant(0, tf.int64)
        i = start
        while i < stop:
            loss, hits = train_step(xb[i], yb[i], learning_rate)
            batch_losses = tf.tensor_scatter_nd_update(batch_losses, [[i]], [loss])
            correct += hits
            i += 1
        return batch_losses, correct

    return run_batches
