"""The idiomatic JAX epoch, the benchmark's ``jax-scan`` row (when ``jax`` is importable).

The same task as ``train_sgd`` -- plain SGD on the bias-trick softmax
regression, same initial weights, same batch order -- written the way JAX
users write it: one ``jax.jit``-compiled epoch, ``lax.scan`` over the epoch's
``(K, b)`` index batches, each batch gathered inside the step, the gradient
from ``jax.value_and_grad``::

    π_e  = rng.permutation(N)                  rng = np.random.default_rng(seed), one draw per epoch
    idx  = π_e[:K b] as (K, b)                 K = ⌊N / b⌋; the N mod b left over: one more step
    step(W, i):  X_i = X[idx_i],  Y_i = Y[idx_i]
                 Z = X_i W[:, :-1]ᵀ + W[:, -1]
                 L = -(1/b) Σ Y_i ⊙ log_softmax(Z)
                 W ← W - η ∇_W L               (L recorded before the update)
    loss_e = mean of the epoch's batch losses

so its loss curve is ``train_sgd``'s to float rounding (``tests/test_bench_rows.py``).
float64 needs JAX's ``jax_enable_x64``, switched on here for that dtype.
"""

import importlib.util
import time

import numpy as np

__all__ = ["JaxTrainer", "available"]


def available():
    """Is ``jax`` importable (without importing it)?"""
    return importlib.util.find_spec("jax") is not None


class JaxTrainer:
    """SGD on ``(x, y)`` from ``weights`` ``(classes, features + 1)``; :meth:`epochs` trains.

    ``x`` and ``y`` go to the device once, here; ``weights`` carries over
    from call to call, as a Keras model's do.
    """

    def __init__(self, x, y, weights, *, batch_size, learning_rate, dtype="float32"):
        import jax

        if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.x = jax.device_put(np.asarray(x, dtype))
        self.y = jax.device_put(np.asarray(y, dtype))
        self.weights = jax.device_put(np.asarray(weights, dtype))
        self.batch_size = int(batch_size)
        self.learning_rate = np.asarray(learning_rate, dtype)
        self._epoch, self._step = _compiled_functions(jax)

    def epochs(self, count, seed):
        """``count`` epochs with ``default_rng(seed)``; ``(epoch losses, epoch seconds)``."""
        rng = np.random.default_rng(seed)
        samples = int(self.x.shape[0])
        full = samples // self.batch_size * self.batch_size
        losses, seconds = [], []
        for _ in range(count):
            started = time.perf_counter()
            order = rng.permutation(samples).astype(np.int32)
            batch_losses = []
            if full:
                indices = order[:full].reshape(-1, self.batch_size)
                self.weights, scanned = self._epoch(
                    self.weights, self.x, self.y, indices, self.learning_rate
                )
                batch_losses.append(np.asarray(scanned))
            if full < samples:
                self.weights, tail = self._step(
                    self.weights, self.x, self.y, order[full:], self.learning_rate
                )
                batch_losses.append(np.asarray(tail).reshape(1))
            self.weights.block_until_ready()
            losses.append(float(np.mean(np.concatenate(batch_losses))))
            seconds.append(time.perf_counter() - started)
        return losses, seconds

    def predict(self, x):
        """Softmax probabilities ``(samples, classes)`` for ``x`` at the current weights."""
        w = np.asarray(self.weights)
        z = np.asarray(x, w.dtype) @ w[:, :-1].T + w[:, -1]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def numpy_weights(self):
        return np.asarray(self.weights)


def _compiled_functions(jax):
    """``(epoch, step)``: the jitted ``lax.scan`` epoch and the jitted single step."""
    jnp = jax.numpy

    def batch_loss(w, xb, yb):
        z = xb @ w[:, :-1].T + w[:, -1]
        return -jnp.sum(yb * jax.nn.log_softmax(z)) / xb.shape[0]

    loss_and_gradient = jax.value_and_grad(batch_loss)

    def step(w, x, y, index, learning_rate):
        loss, gradient = loss_and_gradient(w, x[index], y[index])
        return w - learning_rate * gradient, loss

    @jax.jit
    def epoch(w, x, y, indices, learning_rate):
        return jax.lax.scan(lambda w, index: step(w, x, y, index, learning_rate), w, indices)

    return epoch, jax.jit(step)
