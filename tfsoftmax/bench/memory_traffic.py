"""The floor an epoch cannot beat: the bytes it moves over the memory bandwidth.

**Bytes per epoch** of the ``train_sgd`` path: the shuffle gathers ``x`` and
``y`` (read + write), the compiled loop reads every batch once, and each step
reads the weights, reads the gradient and writes the weights (cache resident:
``W`` is 31 KB). The **memory bandwidth** is a NumPy copy of a 256 MB array
(read + write bytes over the median of 5 copies), so ``bytes / bandwidth`` is
the floor an epoch cannot beat (``BenchResult.epoch_floor_seconds``), and
``bandwidth_fraction`` says how close each row gets to it.
"""

import statistics
import time

import numpy as np


def bytes_per_epoch(samples, features, classes, batch_size, itemsize):
    """Memory traffic of one ``train_sgd`` epoch, by part (see the module docstring)."""
    data = samples * (features + classes) * itemsize
    steps = -(-samples // batch_size)
    weights = steps * 3 * classes * (features + 1) * itemsize
    return {
        "shuffle": 2 * data,
        "data_read": data,
        "weights": weights,
        "memory_total": 3 * data,
    }


def memory_bandwidth(megabytes=256, repeats=5):
    """Bytes per second of a NumPy copy (read + write) of a ``megabytes`` array."""
    source = np.ones(megabytes * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - started)
    return 2 * source.nbytes / statistics.median(times)
