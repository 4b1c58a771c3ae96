"""Floors that are the task's own: what no SGD epoch over ``X (N, d)`` can beat here.

* **Read floor**: every epoch reads ``X`` at least once, in its dtype. Measured:
  the faster of two full passes, each the median of 5: an XLA-compiled
  reduction (``Σ_ij X_ij`` for floats, ``max_ij X_ij`` for integers, ``X``
  already a TensorFlow tensor) and NumPy's SIMD ``X.max()`` (XLA's integer
  reductions are slower than the read itself).
* **Matmul floor**: every step multiplies twice, the forward ``Z = X_B Wᵀ``
  and the weight gradient ``dW = Gᵀ X_B``, each ``2 b d k`` FLOPs, so an
  epoch needs ``4 N d k`` FLOPs. The rate is measured for that shape: ``n``
  steps on one cache-resident batch ``X_b (b, d)`` in one XLA loop::

      Z = X_b Wᵀ;   dW = Zᵀ X_b;   W ← W − 10⁻⁹ dW        (each step needs the last)
      rate = 4 b d k n / seconds

  and ``matmul floor = 4 N d k / rate``.
* ``task floor = max(read floor, matmul floor)``; a row's ``floor fraction``
  is ``task floor / its median epoch``.
"""

import statistics
import time

import numpy as np

__all__ = ["gemm_rate", "read_seconds", "task_floors"]


def read_seconds(x, repeats=5):
    """Seconds of one full pass over ``x`` in its dtype: the faster of XLA and NumPy."""
    from tfsoftmax._tf import tf

    tensor = tf.constant(x)

    @tf.function(jit_compile=True)
    def total(values):
        if values.dtype.is_integer:
            return tf.reduce_max(values)
        return tf.reduce_sum(values)

    total(tensor).numpy()  # compile
    return min(
        _median_seconds(lambda: total(tensor).numpy(), repeats), _median_seconds(x.max, repeats)
    )


def _median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def gemm_rate(batch, features, classes, dtype="float32", repeats=5, target_seconds=0.05, seed=0):
    """FLOP/s of the step's two products, ``(b, d) x (d, k)`` and ``(k, b) x (b, d)``."""
    from tfsoftmax._tf import tf

    rng = np.random.default_rng(seed)
    xb = tf.constant(rng.random((batch, features)), dtype)
    w = tf.constant(rng.standard_normal((classes, features)) * 0.01, dtype)

    @tf.function(jit_compile=True)
    def steps(xb, w, n):
        def body(i, w):
            z = tf.matmul(xb, w, transpose_b=True)
            return i + 1, w - tf.cast(1e-9, w.dtype) * tf.matmul(z, xb, transpose_a=True)

        return tf.while_loop(lambda i, w: i < n, body, (tf.constant(0), w))[1]

    steps(xb, w, tf.constant(1)).numpy()  # compile
    started = time.perf_counter()
    steps(xb, w, tf.constant(20)).numpy()
    count = int(min(1e6, max(20, target_seconds / max(time.perf_counter() - started, 1e-7) * 20)))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        steps(xb, w, tf.constant(count)).numpy()
        times.append(time.perf_counter() - started)
    return 4 * batch * features * classes * count / statistics.median(times)


def task_floors(x, classes, batch_size, dtype="float32", x_uint8=None):
    """The floors of one epoch over ``x`` (and over its uint8 twin ``x_uint8``), as a dict."""
    samples, features = x.shape
    rate = gemm_rate(min(batch_size, samples), features, classes, dtype)
    flops = 4 * samples * features * classes
    floors = {
        "read_seconds": read_seconds(np.asarray(x, dtype)),
        "read_bytes": int(samples * features * np.dtype(dtype).itemsize),
        "gemm_flops_per_second": rate,
        "matmul_flops_per_epoch": flops,
        "matmul_seconds": flops / rate,
    }
    floors["task_floor_seconds"] = max(floors["read_seconds"], floors["matmul_seconds"])
    if x_uint8 is not None:
        floors["read_seconds_uint8"] = read_seconds(x_uint8)
        floors["task_floor_seconds_uint8"] = max(
            floors["read_seconds_uint8"], floors["matmul_seconds"]
        )
    return floors
