"""The SGD step alone: custom ops against the built-ins, without the trainer around them.

:func:`step_ratio` times the SGD step alone (the same XLA-compiled batch loop
as ``train_sgd``, on pre-sliced batches, no shuffle) for the custom ops and
the built-ins, interleaved; the regression test (custom-op step <= 1.5x the
built-in step) uses it.
"""

import statistics
import time

import numpy as np

from tfsoftmax import reference
from tfsoftmax.validation import check_positive_int


def step_ratio(
    x, y, *, batch_size=200, steps=50, repeats=7, method="jacobian", dtype="float32", seed=0
):
    """Seconds per SGD step of the custom ops and of the built-ins, and their ratio.

    Both models start from the same weights and run ``steps`` steps over the
    same pre-sliced batches in one XLA call (the loop ``train_sgd`` compiles,
    minus the shuffle and bookkeeping, so only the ops differ); calls alternate
    custom/built-in, ``repeats`` times, the first call of each excluded
    (compilation). ``ratio`` is the median of the back-to-back pairs' ratios.
    """
    from tfsoftmax._tf import tf
    from tfsoftmax.models import notebook_model

    batch_size = check_positive_int("batch_size", batch_size)
    steps = min(check_positive_int("steps", steps), x.shape[0] // batch_size)
    if steps < 1:
        raise ValueError(f"need at least one full batch of {batch_size} samples")
    count = steps * batch_size
    xb = tf.constant(np.reshape(np.asarray(x[:count], dtype), (steps, batch_size, -1)))
    yb = tf.constant(np.reshape(np.asarray(y[:count], dtype), (steps, batch_size, -1)))
    weights = reference.Dense(
        xb.shape[-1], yb.shape[-1], rng=np.random.default_rng(seed), dtype=dtype
    ).weights
    lr = tf.constant(0.01, tf.float64)
    loops = {}
    for kind in ("custom", "builtin"):
        model, loss = notebook_model(
            "custom" if kind == "custom" else "keras", weights, dtype=dtype, softmax_method=method
        )
        loops[kind] = _sgd_batch_loop(model, loss)
        loops[kind](xb, yb, lr).numpy()  # compile
    times = {"custom": [], "builtin": []}
    ratios = []
    for repeat in range(repeats):
        order = ("custom", "builtin") if repeat % 2 == 0 else ("builtin", "custom")
        pair = {}
        for kind in order:
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
    """train_sgd's compiled batch loop, without its bookkeeping: XLA, batch ``i`` = ``xb[i]``.

    (Not :func:`tfsoftmax._loops.batch_loop`: that one also records every
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
