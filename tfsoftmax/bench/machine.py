"""The machine the benchmark runs on, and the process readied before anything is timed.

* :func:`describe_machine` -- CPUs, CPU model, Python, NumPy, TensorFlow and
  Keras versions, for the report;
* :func:`one_blas_thread` -- NumPy runs with one BLAS thread, its fastest
  setting here;
* :func:`warm_tensorflow` -- TensorFlow's once-per-process start is paid
  before the rows, so no row's warm-up epoch carries it.
"""

import contextlib
import os
import platform
import time

import numpy as np


def describe_machine():
    """CPUs, CPU model and library versions (``BenchResult.machine``)."""
    from tfsoftmax._tf import keras, tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def one_blas_thread():
    """A context limiting NumPy's BLAS to one thread, and what it did.

    With two OpenBLAS threads the reference's small matrix products (a
    ``(10, 785) x (785, 200)`` per step) spend their time in thread hand-offs
    and, once TensorFlow's thread pools are busy too, in contention: measured
    on the 2-core machine, 0.9-4 s per epoch instead of 0.1 s with one thread.
    The benchmark gives NumPy its best setting (``threadpoolctl``, a dev
    dependency; without it, whatever ``OPENBLAS_NUM_THREADS`` says).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        setting = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        return contextlib.nullcontext(), f"unchanged (OPENBLAS_NUM_THREADS={setting})"
    return threadpool_limits(limits=1, user_api="blas"), "1 (threadpoolctl)"


def warm_tensorflow(dtype):
    """Pay TensorFlow's once-per-process start (runtime, XLA, oneDNN) before any row.

    Otherwise the first TensorFlow row's warm-up epoch would carry it and its
    ``compile_s`` would be inflated. Returns the seconds it took.
    """
    from tfsoftmax._tf import keras, tf

    started = time.perf_counter()

    @tf.function(jit_compile=True)
    def tiny(x, w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = tf.reduce_sum(tf.nn.softmax(tf.matmul(x, w)))
        return tape.gradient(loss, w)

    tiny(tf.ones((4, 3), dtype), tf.ones((3, 2), dtype)).numpy()
    keras.layers.Dense(2, dtype=dtype)(np.ones((4, 3), dtype)).numpy()
    return time.perf_counter() - started
