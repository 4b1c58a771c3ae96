"""Each epoch's shuffled batches for :func:`tfsoftmax.training.train_sgd`.

Epoch ``e`` of ``N`` samples in batches of ``b`` (``K = ⌊N/b⌋`` full ones)::

    π_e  = rng.permutation(N)                     drawn in epoch order on the caller's thread
    full = π_e[:K·b] viewed as (K, b)             batch i = X[full[i]], gathered in the loop
    tail = π_e[K·b:]                              the last N mod b samples (kept, as np.split does)

With ``rng = np.random.default_rng(seed)`` these are exactly the batches of
:func:`tfsoftmax.reference.generate_batch_indices`, so the NumPy reference and
the trainer, given the same seed, see the same batches.

Only the permutation travels (:class:`EpochOrders`, ``4N`` bytes per epoch):
``X`` and ``Y`` stay one ``(N, ·)`` tensor each and the compiled loop gathers
batch ``i``'s ``b`` rows itself (:func:`indexed_chunks`). Measured on MNIST
(2-core CPU): as fast as slicing a pre-gathered ``(K, b, features)`` epoch,
without the two gathered copies of ``X`` that cost ~580 MB of peak memory;
gathering the whole epoch inside XLA instead is 2.6–4.2× slower.
:class:`ShuffledEpochs` still materialises each epoch (``X[π_e]``), for
callers that want the batches themselves.

:func:`indexed_chunks` trains one epoch, ``chunk`` full batches per call of
the compiled loop, then the partial batch; batch ``i`` of the epoch is global
step ``s₀ + i`` and gets the rate ``η_{s₀+i}``.
"""

import numpy as np

from tfsoftmax._tf import tf

__all__ = ["EpochOrders", "ShuffledEpochs", "indexed_chunks", "skip_epochs"]


class EpochOrders:
    """Each epoch's permutation as ``(full, tail)`` int32 tensors: ``full`` the
    ``(K, b)`` sample indices of the full batches, ``tail`` the last ``N mod b``.

    :meth:`rng_after` gives the generator as it was right after epoch ``e``'s
    draw, for checkpoints.

    Args:
        num_samples: ``N``.
        rng: the ``np.random.Generator`` drawing the permutations (advanced here).
        batch_size: ``b``.
        epochs: the epoch numbers, in order (an iterable).
    """

    def __init__(self, num_samples, rng, batch_size, epochs):
        self._num_samples, self._rng = int(num_samples), rng
        self._num_full = self._num_samples // batch_size
        # With no full batch (batch_size > N, even ≥ 2**63) the (0, b) tensor
        # only needs a shape TensorFlow can hold: b = N changes nothing else.
        self._batch_size = batch_size if self._num_full else self._num_samples
        self._epochs = iter(epochs)
        self._states = {}
        # Indices fit int32 (smaller, and XLA's gather prefers it) below 2**31 samples.
        self._index_dtype = np.int32 if self._num_samples < 2**31 else np.int64

    def next(self):
        """``(full, tail)`` of the next epoch."""
        epoch = next(self._epochs)
        order = self._rng.permutation(self._num_samples).astype(self._index_dtype)
        self._states[epoch] = self._rng.bit_generator.state
        cut = self._num_full * self._batch_size
        full = tf.constant(order[:cut].reshape(self._num_full, self._batch_size))
        return full, tf.constant(order[cut:])

    def rng_after(self, epoch):
        """A generator in the state right after epoch ``epoch``'s permutation."""
        generator = np.random.Generator(type(self._rng.bit_generator)())
        generator.bit_generator.state = self._states.pop(epoch)
        return generator

    def close(self):
        """Nothing to stop (the interface of :class:`ShuffledEpochs`)."""


class ShuffledEpochs(EpochOrders):
    """The ``(full_x, full_y, tail_x, tail_y)`` of each of ``epochs``: the epoch's
    batches gathered, ``X[π_e]`` viewed as ``(K, b, features)`` and the tail.

    Args:
        features: ``(N, features)`` tensor.
        targets: ``(N, classes)`` tensor.
        rng, batch_size, epochs: as :class:`EpochOrders`.
    """

    def __init__(self, features, targets, rng, batch_size, epochs):
        super().__init__(int(features.shape[0]), rng, batch_size, epochs)
        self._features, self._targets = features, targets

    def next(self):
        """``(full_x, full_y, tail_x, tail_y)`` of the next epoch."""
        full, tail = super().next()
        return (
            tf.gather(self._features, full),
            tf.gather(self._targets, full),
            tf.gather(self._features, tail),
            tf.gather(self._targets, tail),
        )


def skip_epochs(rng, num_samples, count):
    """Advance ``rng`` past ``count`` epochs' permutations (a run resumed at a later
    epoch by ``keras.callbacks.BackupAndRestore`` then sees the batches it would
    have seen)."""
    for _ in range(count):
        rng.permutation(num_samples)


def _call_rates(rate, first_step, start, stop, num_full):
    """The rates of one compiled call over batches ``[start, stop)``: a float64
    scalar for a constant rate, else the ``(num_full,)`` vector holding
    ``η_{s₀+i}`` at ``i`` in ``[start, stop)``."""
    if rate.is_constant:
        return tf.constant(rate.value, tf.float64)
    vector = np.zeros(num_full)
    vector[start:stop] = rate.rates(first_step + start, stop - start)
    return tf.constant(vector)


def indexed_chunks(engine, data, order, rate, first_step, chunk, before_chunk=None):
    """Train one epoch of ``data = (x, y)`` (``(N, ·)`` tensors) in the batch
    order ``order = (full, tail)`` (from :meth:`EpochOrders.next`).

    Yields ``(losses, correct, samples)`` per engine call: the call's batch
    losses (float64, before each update), correct count and sample count;
    ``before_chunk(i)`` is called before the call that starts at batch ``i``.
    A float rate goes to the compiled loop as a scalar; a schedule as the
    ``(batches,)`` vector of the call's rates. Closing the generator ends the
    epoch early. The compiled loop gathers each batch's rows of
    ``x`` and ``y`` itself (``run_batches(..., order=full)``), the partial
    batch's rows are gathered here for one ``train_step``.
    """
    (x, y), (full, tail) = data, order
    num_full, batch_size = int(full.shape[0]), int(full.shape[1])
    for start in range(0, num_full, chunk):
        stop = min(start + chunk, num_full)
        if before_chunk is not None:
            before_chunk(start)
        rates = _call_rates(rate, first_step, start, stop, num_full)
        losses, hits = engine.run_batches(
            x, y, tf.constant(start), tf.constant(stop), rates, order=full
        )
        yield losses.numpy()[start:stop], int(hits), (stop - start) * batch_size
    if int(tail.shape[0]):
        if before_chunk is not None:
            before_chunk(num_full)
        rates = tf.constant(rate.at(first_step + num_full), tf.float64)
        loss, hits = engine.train_step(tf.gather(x, tail), tf.gather(y, tail), rates)
        yield np.array([float(loss)]), int(hits), int(tail.shape[0])
