"""What the benchmark measures besides the rows' epochs, and the machine it runs on.

* **Machine** (:func:`describe_machine`); before anything is timed,
  :func:`warm_tensorflow` and :func:`one_blas_thread` (NumPy's fastest setting).
* **Peak memory** (:class:`PeakMemory`, from :mod:`tfsoftmax.rss`): the
  process's peak resident set size during a call and its rise over the
  resident size at the call's start.
* **Memory traffic** of one ``train_sgd`` epoch over ``N`` samples of ``d``
  features and ``k`` classes, batch ``B``, ``s`` bytes per element
  (:func:`bytes_per_epoch`)::

      data         = N (d + k) s
      gather       = 2 data                        (each batch's rows of x, y gathered
                                                    inside the compiled loop: read + write)
      data_read    = data                          (every gathered batch read once)
      weights      = ceil(N / B) * 3 k (d + 1) s   (read W, read dW, write W; cache-resident)
      memory_total = 3 data

  **Bandwidth** (:func:`memory_bandwidth`) = ``2 bytes / median copy time`` of
  a NumPy copy of a 256 MB array; ``memory_total / bandwidth`` is the
  ``epoch_floor_seconds`` of this way of training. The batch buffer is small
  (627 KB for MNIST's batch of 200) and mostly stays in cache, so only the
  gather's read of ``data`` must come from memory: the *task's* floor (read
  ``x`` once) is in :mod:`tfsoftmax.bench.floors`.
* **Micro-benchmark** (:func:`micro_benchmark`): forward + backward of one
  softmax op, ``n`` passes in one XLA call, each pass feeding its gradient into
  the next input (``z <- z - 1e-3 dz``, so nothing is hoisted), the ops
  interleaved, median seconds per pass; the explicit Jacobians take
  ``B k^2 s`` bytes, and above :data:`tfsoftmax.ops.JACOBIAN_MAX_ELEMENTS`
  elements ``"jacobian"`` falls back to ``"vjp"``.
* **Step ratio** (:func:`step_ratio`): the SGD step alone, custom ops against
  built-ins in the same XLA batch loop on pre-sliced batches; ``ratio =
  median_r(t_custom,r / t_builtin,r)`` over back-to-back pairs.
* **Accuracy** (:func:`accuracy_check`): test accuracy of the NumPy reference
  and of the custom ops after the same epochs from the same weights;
  ``difference = custom - numpy``.
* **Command-line run** (:func:`time_cli_train`, from :mod:`tfsoftmax.bench.calls`):
  wall time of ``python -m tfsoftmax train`` in a fresh process, start-up included.
"""

import contextlib
import os
import platform
import statistics
import time
import warnings

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench.calls import time_cli_train
from tfsoftmax.constants import BATCH_SIZE, LEARNING_RATE
from tfsoftmax.rss import PeakMemory
from tfsoftmax.validation import check_positive_int

__all__ = [
    "MICRO_SHAPES",
    "PeakMemory",
    "accuracy_check",
    "bytes_per_epoch",
    "describe_machine",
    "memory_bandwidth",
    "micro_benchmark",
    "one_blas_thread",
    "step_ratio",
    "time_cli_train",
    "warm_tensorflow",
]

#: ``(batch, classes)`` of the op-level micro-benchmark.
MICRO_SHAPES = ((200, 10), (4096, 10), (1024, 1000))
MICRO_OPS = ("jacobian", "vjp", "tf.nn.softmax")


def describe_machine():
    """CPUs, CPU model and library versions (``BenchResult.machine``)."""
    from tfsoftmax._tf import keras, tf

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        models = (line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        cpu = next(models, cpu)
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def one_blas_thread():
    """A context limiting NumPy's BLAS to one thread, and a description of what it did.

    With two OpenBLAS threads the reference's ``(10, 785) x (785, 200)``
    products spend their time in hand-offs and contention with TensorFlow's
    pools (0.9-4 s per epoch instead of 0.1 s on 2 cores). Needs
    ``threadpoolctl`` (a dev dependency); else ``OPENBLAS_NUM_THREADS`` rules.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        setting = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        return contextlib.nullcontext(), f"unchanged (OPENBLAS_NUM_THREADS={setting})"
    return threadpool_limits(limits=1, user_api="blas"), "1 (threadpoolctl)"


def warm_tensorflow(dtype):
    """Pay TensorFlow's once-per-process start (runtime, XLA, oneDNN); returns its seconds.

    Otherwise the first TensorFlow row's warm-up would carry it and its
    ``compile_s`` would be inflated.
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


def bytes_per_epoch(samples, features, classes, batch_size, itemsize):
    """Memory traffic of one ``train_sgd`` epoch, by part (formulas in the module docstring)."""
    data = samples * (features + classes) * itemsize
    steps = -(-samples // batch_size)
    return {
        "gather": 2 * data,
        "data_read": data,
        "weights": steps * 3 * classes * (features + 1) * itemsize,
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


def micro_benchmark(shapes=MICRO_SHAPES, dtype="float32", repeats=5, target_seconds=0.05, seed=0):
    """Forward + backward of ``jacobian_softmax`` (both methods) vs ``tf.nn.softmax``.

    One dict per shape and op: median seconds per forward + backward, ratio to
    ``tf.nn.softmax``, passes per call, the explicit Jacobians' bytes, a note.
    """
    from tfsoftmax import ops
    from tfsoftmax._tf import tf

    functions = {
        "jacobian": lambda t: ops.jacobian_softmax(t, "jacobian"),
        "vjp": lambda t: ops.jacobian_softmax(t, "vjp"),
        "tf.nn.softmax": tf.nn.softmax,
    }
    loops = {name: _forward_backward_loop(tf, fn) for name, fn in functions.items()}
    rng = np.random.default_rng(seed)
    results = []
    for batch, classes in shapes:
        z, g = (tf.constant(rng.standard_normal((batch, classes)), dtype) for _ in range(2))
        times = _time_interleaved(tf, loops, z, g, repeats, target_seconds)
        elements = batch * classes * classes
        note = "explicit Jacobian"
        if elements > ops.JACOBIAN_MAX_ELEMENTS:
            note = f"falls back to vjp (> {ops.JACOBIAN_MAX_ELEMENTS} elements)"
        for name, (seconds, count) in times.items():
            jacobian = name == "jacobian"
            results.append(
                {
                    "batch": batch,
                    "classes": classes,
                    "op": name,
                    "seconds": seconds,
                    "ratio_to_builtin": seconds / times["tf.nn.softmax"][0],
                    "iterations_per_call": count,
                    "jacobian_bytes": elements * np.dtype(dtype).itemsize if jacobian else None,
                    "note": note if jacobian else "",
                }
            )
    return results


def _time_interleaved(tf, loops, z, g, repeats, target_seconds):
    """``{name: (median seconds per pass, passes per call)}``, the loops' order rotating."""
    counts = {}
    for name, loop in loops.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the "jacobian" fallback warning, at trace time
            loop(z, g, tf.constant(1)).numpy()
        started = time.perf_counter()
        loop(z, g, tf.constant(10)).numpy()
        per_call = max((time.perf_counter() - started) / 10, 1e-7)
        counts[name] = int(min(100_000, max(10, target_seconds / per_call)))
    names = list(loops)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            loops[name](z, g, tf.constant(counts[name])).numpy()
            times[name].append((time.perf_counter() - started) / counts[name])
    return {name: (statistics.median(times[name]), counts[name]) for name in names}


def _forward_backward_loop(tf, fn):
    """``n`` forward + backward passes of ``fn`` in one XLA call, each feeding the next."""

    @tf.function(jit_compile=True)
    def run(z, g, n):
        def body(i, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                a = fn(z)
            dz = tape.gradient(a, z, output_gradients=g)
            return i + 1, z - tf.cast(1e-3, z.dtype) * dz

        return tf.while_loop(lambda i, z: i < n, body, (tf.constant(0), z))[1]

    return run


def step_ratio(
    x, y, *, batch_size=BATCH_SIZE, steps=50, repeats=7, method="jacobian", dtype="float32", seed=0
):
    """Seconds per SGD step of the custom ops and of the built-ins, and their ratio.

    Both models start from the same weights and run ``steps`` steps over the
    same pre-sliced batches in one XLA call (the loop ``train_sgd`` compiles,
    minus the shuffle and bookkeeping, so only the ops differ); calls alternate
    custom/built-in ``repeats`` times after one compiling call each. ``ratio``
    is the median of the back-to-back pairs' ratios.
    """
    from tfsoftmax._tf import tf
    from tfsoftmax.models import notebook_model

    batch_size = check_positive_int("batch_size", batch_size)
    steps = min(check_positive_int("steps", steps), x.shape[0] // batch_size)
    if steps < 1:
        raise ValueError(f"need at least one full batch of {batch_size} samples")
    xb, yb = (
        tf.constant(np.reshape(np.asarray(a[: steps * batch_size], dtype), (steps, batch_size, -1)))
        for a in (x, y)
    )
    weights = reference.Dense(
        xb.shape[-1], yb.shape[-1], rng=np.random.default_rng(seed), dtype=dtype
    ).weights
    lr = tf.constant(LEARNING_RATE, tf.float64)
    loops = {}
    for kind, implementation in (("custom", "custom"), ("builtin", "keras")):
        model, loss = notebook_model(implementation, weights, dtype=dtype, softmax_method=method)
        loops[kind] = _sgd_batch_loop(model, loss)
        loops[kind](xb, yb, lr).numpy()  # compile
    times, ratios = {"custom": [], "builtin": []}, []
    for repeat in range(repeats):
        pair = {}
        for kind in ("custom", "builtin") if repeat % 2 == 0 else ("builtin", "custom"):
            started = time.perf_counter()
            loops[kind](xb, yb, lr).numpy()
            pair[kind] = (time.perf_counter() - started) / steps
            times[kind].append(pair[kind])
        ratios.append(pair["custom"] / pair["builtin"])
    return {
        "custom_seconds": statistics.median(times["custom"]),
        "builtin_seconds": statistics.median(times["builtin"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "steps": steps,
        "repeats": repeats,
        "batch_size": batch_size,
        "method": method,
    }


def _sgd_batch_loop(model, loss_fn):
    """train_sgd's compiled batch loop without its bookkeeping: XLA, batch ``i`` = ``xb[i]``.

    (Not :func:`tfsoftmax.engine.batch_loop`: that one also records every
    batch's loss and counts correct predictions, which would be timed here.)
    """
    from tfsoftmax._tf import tf

    variables = model.trainable_variables

    @tf.function(jit_compile=True)
    def run(xb, yb, learning_rate):
        total = tf.zeros((), tf.float64)
        i = tf.constant(0)
        while i < tf.shape(xb)[0]:
            with tf.GradientTape() as tape:
                loss = loss_fn(yb[i], model(xb[i], training=True))
            for variable, gradient in zip(variables, tape.gradient(loss, variables), strict=True):
                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient)
            total += tf.cast(loss, tf.float64)
            i += 1
        return total

    return run


def accuracy_check(data, weights, settings, epochs):
    """Test accuracy of the reference and of ``custom-jacobian`` after ``epochs`` epochs.

    ``data`` is batch-major, ``weights`` the shared initial ``(classes,
    features + 1)`` matrix, ``settings`` gives ``batch_size``,
    ``learning_rate``, ``seed`` and ``dtype``.
    """
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    sgd = {k: settings[k] for k in ("batch_size", "learning_rate", "seed")}
    dense, _ = reference.train(
        data.x_train.T, data.y_train.T, epochs=epochs, initial_weights=weights, **sgd
    )
    numpy_accuracy = reference.accuracy(dense, data.x_test.T, data.labels_test)
    model, loss = notebook_model("custom", weights, dtype=settings["dtype"])
    train_sgd(model, data.x_train, data.y_train, epochs=epochs, loss=loss, verbose=0, **sgd)
    probabilities = model(np.asarray(data.x_test, settings["dtype"]), training=False).numpy()
    custom_accuracy = float(np.mean(np.argmax(probabilities, axis=1) == data.labels_test))
    return {
        "epochs": epochs,
        "numpy": numpy_accuracy,
        "custom": custom_accuracy,
        "difference": custom_accuracy - numpy_accuracy,
    }
