"""Each epoch's shuffled batches for :func:`tfsoftmax.training.train_sgd`, one epoch ahead.

Epoch ``e`` of ``N`` samples in batches of ``b`` (``K = ⌊N/b⌋`` full ones)::

    π_e = rng.permutation(N)                      drawn in epoch order on the caller's thread
    X_e = X[π_e],  Y_e = Y[π_e]                   tf.gather, once per epoch
    full = X_e[:K·b] viewed as (K, b, features)   batch i = full[i], a slice, never a gather
    tail = X_e[K·b:]                              the last N mod b samples (kept, as np.split does)

With ``rng = np.random.default_rng(seed)`` these are exactly the batches of
:func:`tfsoftmax.reference.generate_batch_indices`, so the NumPy reference and
the trainer, given the same seed, see the same batches.

The gather of epoch ``e + 1`` runs on a second thread while the compiled loop
of epoch ``e`` — which keeps a single core busy — runs on the caller's:
TensorFlow releases the GIL in both.

:func:`array_chunks` trains one such epoch, ``chunk`` full batches per call
of the compiled loop, then the partial batch; batch ``i`` of the epoch is
global step ``s₀ + i`` and gets the rate ``η_{s₀+i}``.
"""

import concurrent.futures

import numpy as np

from tfsoftmax._tf import tf

__all__ = ["ShuffledEpochs", "array_chunks", "skip_epochs"]


class ShuffledEpochs:
    """The ``(full_x, full_y, tail_x, tail_y)`` of each of ``epochs``, gathered one ahead.

    Because the next permutation is drawn early, :meth:`rng_after` gives the
    generator as it was right after epoch ``e``'s draw, for checkpoints.

    Args:
        features: ``(N, features)`` tensor.
        targets: ``(N, classes)`` tensor.
        rng: the ``np.random.Generator`` drawing the permutations (advanced here).
        batch_size: ``b``.
        epochs: the epoch numbers, in order (an iterable).
    """

    def __init__(self, features, targets, rng, batch_size, epochs):
        self._features, self._targets, self._rng = features, targets, rng
        self._num_samples = int(features.shape[0])
        self._num_full = self._num_samples // batch_size
        # With no full batch (batch_size > N, even ≥ 2**63) the (0, b, ·) tensor
        # only needs a shape TensorFlow can hold: b = N changes nothing else.
        self._batch_size = batch_size if self._num_full else self._num_samples
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
        """Stop the gathering thread (a pending gather is cancelled or awaited)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def skip_epochs(rng, num_samples, count):
    """Advance ``rng`` past ``count`` epochs' permutations (a run resumed at a later
    epoch by ``keras.callbacks.BackupAndRestore`` then sees the batches it would
    have seen)."""
    for _ in range(count):
        rng.permutation(num_samples)


def array_chunks(engine, batches, rate, first_step, chunk, before_chunk=None):
    """Train one epoch of ``batches`` (from :meth:`ShuffledEpochs.next`).

    Yields ``(losses, correct, samples)`` per engine call: the call's batch
    losses (float64, before each update), correct count and sample count;
    ``before_chunk(i)`` is called before the call that starts at batch ``i``.
    A float rate goes to the compiled loop as a scalar; a schedule as the
    ``(batches,)`` vector of the call's rates. Closing the generator ends the
    epoch early.
    """
    full_x, full_y, tail_x, tail_y = batches
    num_full, batch_size = int(full_x.shape[0]), int(full_x.shape[1])
    for start in range(0, num_full, chunk):
        stop = min(start + chunk, num_full)
        if before_chunk is not None:
            before_chunk(start)
        if rate.is_constant:
            rates = tf.constant(rate.value, tf.float64)
        else:
            vector = np.zeros(num_full)
            vector[start:stop] = rate.rates(first_step + start, stop - start)
            rates = tf.constant(vector)
        losses, hits = engine.run_batches(
            full_x, full_y, tf.constant(start), tf.constant(stop), rates
        )
        yield losses.numpy()[start:stop], int(hits), (stop - start) * batch_size
    tail = int(tail_x.shape[0])
    if tail:
        if before_chunk is not None:
            before_chunk(num_full)
        rates = tf.constant(rate.at(first_step + num_full), tf.float64)
        loss, hits = engine.train_step(tail_x, tail_y, rates)
        yield np.array([float(loss)]), int(hits), tail
