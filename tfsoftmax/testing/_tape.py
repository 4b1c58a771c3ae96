"""Vector-Jacobian products by TensorFlow's tape, in eager, ``tf.function`` and XLA.

For ``y = f(x_1, ..., x_n)`` (outputs ``y_1, ..., y_m``, the floating ones of
``tf.nest.flatten(f(...))``) and an upstream gradient ``u = (u_1, ..., u_m)``,
the tape returns for each input

    V_k(u) = sum_j J_jk^T u_j,        J_jk = d y_j / d x_k,

one backward pass per ``u`` (a persistent tape: one forward pass for all of
them). ``None`` (no path from ``x_k`` to the outputs) is kept, so the caller
can say "no gradient". The second order differentiates
``psi = sum_k <V_k(u), w_k>`` once more:

    d psi / d x_l = sum_k (d V_k(u) / d x_l)^T w_k      (a Hessian-vector product),

with nested tapes. Modes: ``"eager"``; ``"function"`` (``tf.function``) and
``"xla"`` (``tf.function(jit_compile=True)``) trace the whole backward pass,
so the gradient is checked as it runs compiled.
"""

import contextlib

import numpy as np

from tfsoftmax._tf import tf

__all__ = [
    "MODES",
    "floating_outputs",
    "make_forward",
    "make_hvp",
    "make_vjp",
    "output_names",
    "quiet_retracing",
]

MODES = ("eager", "function", "xla")


def floating_outputs(result):
    """The floating-point tensors of ``tf.nest.flatten(result)``, dense."""
    flat = [tf.convert_to_tensor(t) for t in tf.nest.flatten(result)]
    return [t for t in flat if t.dtype.is_floating]


def output_names(result):
    """``["output"]`` for one tensor, else ``output[i]`` / ``output['key']`` (floating only)."""
    if tf.is_tensor(result) or isinstance(result, np.ndarray):
        return ["output"]
    if isinstance(result, dict):
        keys = sorted(result)  # tf.nest's order
        items = [(repr(k), result[k]) for k in keys]
    else:
        items = [(str(i), value) for i, value in enumerate(tf.nest.flatten(result))]
    return [
        f"output[{key}]"
        for key, value in items
        if tf.as_dtype(tf.convert_to_tensor(value).dtype).is_floating
    ]


@contextlib.contextmanager
def quiet_retracing():
    """Silence TensorFlow's "excessive retracing" warning: each check traces afresh on purpose."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _dense(gradient):
    return None if gradient is None else tf.convert_to_tensor(gradient)


def _like(upstream, outputs):
    """The upstream gradients cast to their outputs' dtypes."""
    return [tf.cast(u, o.dtype) for u, o in zip(upstream, outputs, strict=True)]


def _compile(compute, mode):
    if mode == "eager":
        return compute
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return tf.function(compute, jit_compile=(mode == "xla"), reduce_retracing=True)


def make_vjp(fn, mode="eager"):
    """``vjps(inputs, upstreams) -> (outputs, [[V_k(u) or None for k] for u])``."""

    def compute(inputs, upstreams):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs)
            outputs = floating_outputs(fn(*inputs))
        grads = [
            [_dense(g) for g in tape.gradient(outputs, inputs, output_gradients=_like(u, outputs))]
            for u in upstreams
        ]
        return outputs, grads

    return _compile(compute, mode)


def make_hvp(fn, mode="eager"):
    """``hvp(inputs, u, w) -> [d<V(u), w>/dx_l or None for l]`` (nested tapes)."""

    def compute(inputs, upstream, weights):
        with tf.GradientTape() as outer:
            outer.watch(inputs)
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                outputs = floating_outputs(fn(*inputs))
            grads = inner.gradient(outputs, inputs, output_gradients=_like(upstream, outputs))
            terms = [
                tf.reduce_sum(tf.cast(_dense(g), w.dtype) * w)
                for g, w in zip(grads, weights, strict=True)
                if g is not None
            ]
            psi = tf.add_n(terms) if terms else None
        if psi is None:
            return [None] * len(inputs)
        return [_dense(g) for g in outer.gradient(psi, inputs)]

    return _compile(compute, mode)


def make_forward(fn):
    """``forward(arrays) -> (outputs as float64 arrays, eps of the outputs' dtypes)``."""
    from tfsoftmax.testing._tolerances import dtype_eps

    def forward(arrays):
        outputs = floating_outputs(fn(*[tf.constant(a, tf.float64) for a in arrays]))
        eps = max((dtype_eps(o.dtype) for o in outputs), default=0.0)
        return [np.asarray(o.numpy(), np.float64) for o in outputs], eps

    return forward
