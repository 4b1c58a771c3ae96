"""The op-level micro-benchmark: forward + backward of one softmax op, alone.

It runs forward + backward of ``jacobian_softmax`` (both methods) and
``tf.nn.softmax`` for each ``(batch, classes)`` in an XLA-compiled loop (``n``
iterations in one call, each iteration feeding its gradient into the next input
so nothing is hoisted), interleaved, median over repeats; with the bytes the
explicit Jacobians take (``batch * classes**2`` elements) and whether they
exceed :data:`tfsoftmax.ops.JACOBIAN_MAX_ELEMENTS` (then ``"jacobian"`` falls
back to ``"vjp"``).
"""

import statistics
import time
import warnings

import numpy as np

#: ``(batch, classes)`` of the op-level micro-benchmark.
MICRO_SHAPES = ((200, 10), (4096, 10), (1024, 1000))


def micro_benchmark(shapes=MICRO_SHAPES, dtype="float32", repeats=5, target_seconds=0.05, seed=0):
    """Forward + backward of ``jacobian_softmax`` (both methods) vs ``tf.nn.softmax``.

    Returns one dict per shape and op: median seconds per forward + backward,
    ratio to ``tf.nn.softmax``, the explicit Jacobians' bytes, a note.
    """
    from tfsoftmax import ops
    from tfsoftmax._tf import tf

    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(seed)
    results = []
    for batch, classes in shapes:
        z = tf.constant(rng.standard_normal((batch, classes)), dtype)
        g = tf.constant(rng.standard_normal((batch, classes)), dtype)
        functions = {
            "jacobian": lambda t: ops.jacobian_softmax(t, "jacobian"),
            "vjp": lambda t: ops.jacobian_softmax(t, "vjp"),
            "tf.nn.softmax": tf.nn.softmax,
        }
        loops, counts = {}, {}
        for name, fn in functions.items():
            loops[name] = _forward_backward_loop(tf, fn)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the "jacobian" fallback warning, at trace time
                loops[name](z, g, tf.constant(1)).numpy()
            started = time.perf_counter()
            loops[name](z, g, tf.constant(10)).numpy()
            per_call = max((time.perf_counter() - started) / 10, 1e-7)
            counts[name] = int(min(100_000, max(10, target_seconds / per_call)))
        times = {name: [] for name in functions}
        for repeat in range(repeats):
            order = list(functions)[repeat % 3 :] + list(functions)[: repeat % 3]
            for name in order:
                n = tf.constant(counts[name])
                started = time.perf_counter()
                loops[name](z, g, n).numpy()
                times[name].append((time.perf_counter() - started) / counts[name])
        builtin = statistics.median(times["tf.nn.softmax"])
        jacobian_elements = batch * classes * classes
        fits = jacobian_elements <= ops.JACOBIAN_MAX_ELEMENTS
        for name in functions:
            note = ""
            if name == "jacobian":
                note = (
                    "explicit Jacobian"
                    if fits
                    else f"falls back to vjp (> {ops.JACOBIAN_MAX_ELEMENTS} elements)"
                )
            results.append(
                {
                    "batch": batch,
                    "classes": classes,
                    "op": name,
                    "seconds": statistics.median(times[name]),
                    "ratio_to_builtin": statistics.median(times[name]) / builtin,
                    "iterations_per_call": counts[name],
                    "jacobian_bytes": jacobian_elements * itemsize if name == "jacobian" else None,
                    "note": note,
                }
            )
    return results


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
