"""Gradient check: every custom gradient against three independent derivations.

For each op -- :func:`~tfsoftmax.ops.bias_trick_dense`,
:func:`~tfsoftmax.ops.jacobian_softmax` with each method, plain, under a mask
(``jacobian_softmax+mask``: about 70 % of positions kept, one sample fully
masked, one not at all) and over the axes :data:`SOFTMAX_AXES` of
``(batch, 2, classes)`` logits (``jacobian_softmax+axes``),
:func:`~tfsoftmax.ops.categorical_crossentropy`, and the whole chain
dense -> softmax -> CCE -- and each dtype (float32, float64), the full Jacobian
``J[i, j] = d out_i / d in_j`` the custom gradient defines (one backward pass
per output element, upstream gradient one-hot) is compared with

1. **autodiff** -- TensorFlow's gradient of the same formula written with
   built-ins (:mod:`tfsoftmax.autodiff`): ``x W[:, :-1]^T + W[:, -1]``,
   ``tf.nn.softmax``, ``-mean_i sum_k y_ik log yhat_ik``; for the masked and
   multi-axis softmax, ``keras.layers.Softmax`` with the same mask or axes;
2. **finite differences** -- ``tf.test.compute_gradient``'s central
   differences ``(f(x + d e_j) - f(x - d e_j)) / 2d`` of the custom op itself,
   in the checked dtype, with ``d`` from :data:`FD_DELTA`;
3. **reference** -- the NumPy reference's hand-written backward
   (:mod:`tfsoftmax.reference`, features-major: inputs and gradients are
   transposed at this boundary). Its conventions are mapped, not assumed:
   ``Softmax.backward`` and ``cce_gradient`` are per sample (``dL_i/d.``, no
   ``1/b``), so the CCE gradient is divided by the batch size ``b`` here;
   ``Dense.backward`` stores ``(1/b) G [X; 1]^T``, the gradient of the *mean*
   loss when ``G`` holds per-sample columns, so for a plain upstream gradient
   ``G`` (the op's VJP) its weight gradient is multiplied by ``b``, while its
   input gradient ``W[:, :-1]^T G`` is not scaled. The ``"jacobian"`` softmax
   is compared with the reference's per-sample loop (the notebook's explicit
   Jacobian), ``"vjp"`` with its vectorized backward. The masked and
   multi-axis softmax are reduced to the plain reference softmax
   (:mod:`tfsoftmax.gradcheck_reference`).

A replacement ``jacobian_softmax`` (``custom_ops``) that takes no ``mask=`` or
``axis=`` fails those rows (every error ``inf``).

Every gradient is taken with respect to every differentiable input: ``x`` and
``W`` (dense, chain), ``z`` (softmax), ``y_pred`` and ``y_true`` (CCE; the
reference has no ``y_true`` gradient, so that comparison covers ``y_pred``).
Besides the Jacobian's rows (one-hot upstream gradients ``u``) each side also
back-propagates one random ``u ~ N(0, 1)``: a VJP that is not linear in ``u``
(``u * u`` equals ``u`` on one-hot vectors) is caught too. The finite-difference
side of that row is ``u @ J_numeric``.

The error is the max-norm relative error ``max|V - V_other| / max|V_other|``
over those VJP rows ``V`` (relative to the largest entry of the side it is
compared with, as :func:`tfsoftmax.compare.max_differences` measures; an
element-wise ratio blows up wherever an entry is near zero), the worst over
the inputs. Tolerances are in :data:`TOLERANCES`:

* float64 -- 1e-10 against autodiff and the reference (a few ulps of
  reordered sums; measured <= 1e-15), 1e-6 against finite differences with
  step ``d = 2**-17``: truncation ``~ d**2 f''' / 6`` (for ``-log yhat``,
  ``d**2 / (3 yhat**2)`` relative) and rounding ``~ eps |f| / d`` both stay
  near 1e-9 (measured <= 7.5e-9 over seeds 0-3);
* float32 -- ``6 eps = 7.2e-7`` against autodiff and the reference
  (``eps = 2**-23``, :data:`FLOAT32_EPS`). Each side rounds each VJP entry to
  about ``eps * s``, with ``s`` the sum of the absolute values of the terms
  summed into it; the error is relative to the largest entry, so the bound is
  ``2 eps max(s) / max|V|``: twice the rounding times the condition
  ``max(s) / max|V|``, a small number for these inputs (no largest entry is a
  cancellation); 6 eps allows a condition of 3. Measured <= 5.2 eps (the masked ``vjp``
  row against the reference, seed 1; <= 3.3 eps elsewhere) over seeds 0-3. A
  relative error of 1e-6 in an op's output or gradient is 8 eps and fails
  (``tests/test_gradcheck.py``). And
  **1e-2 against finite differences** with step
  ``d = 2**-8``: the rounding error of a float32 difference quotient,
  ``~ ulp(f) / 2d`` (3e-5 for a loss near 2.3), is ~1.5e-3 of the chain's
  small weight gradients, and the truncation error of ``-log yhat`` at
  ``yhat >= 0.05`` is up to 2e-3 (measured <= 2e-3 over seeds 0-3). A wrong
  gradient is off by O(1).

The inputs keep the notebook's ranges: pixels uniform in [0, 1], weights
``0.1 N(0, 1)``, logits ``N(0, 1)``, and CCE probabilities ``>= 1/(2 classes)``.

Example::

    rows = run_gradcheck(seed=0)
    print(format_table(rows))
    assert all(row.ok for row in rows)
"""

import dataclasses
import json

import numpy as np

from tfsoftmax.atomic import write_text
from tfsoftmax.constants import COMPARISON_DTYPES
from tfsoftmax.gradcheck_cases import SOFTMAX_AXES, gradcheck_cases, gradcheck_problem

__all__ = [
    "CHECKS",
    "DTYPES",
    "FD_DELTA",
    "FLOAT32_EPS",
    "OP_NAMES",
    "SOFTMAX_AXES",
    "TOLERANCES",
    "GradcheckRow",
    "format_table",
    "max_relative_error",
    "run_gradcheck",
    "to_json",
]

#: The dtypes checked (an alias of :data:`tfsoftmax.constants.COMPARISON_DTYPES`).
DTYPES = COMPARISON_DTYPES

#: float32's machine epsilon, ``2**-23``: the float32 bars are multiples of it.
FLOAT32_EPS = 2.0**-23

#: Largest allowed error per check and dtype (see the module docstring).
TOLERANCES = {
    "float64": {"autodiff": 1e-10, "finite_diff": 1e-6, "reference": 1e-10},
    "float32": {"autodiff": 6 * FLOAT32_EPS, "finite_diff": 1e-2, "reference": 6 * FLOAT32_EPS},
}

#: Finite-difference step per dtype (exactly representable powers of two).
FD_DELTA = {"float64": 2.0**-17, "float32": 2.0**-8}

CHECKS = ("autodiff", "finite_diff", "reference")

OP_NAMES = ("bias_trick_dense", "jacobian_softmax", "categorical_crossentropy")


@dataclasses.dataclass(frozen=True)
class GradcheckRow:
    """One op, softmax method and dtype: the error of each check and the verdict."""

    op: str
    method: str  # the softmax method, "-" where there is none
    dtype: str
    autodiff: float
    finite_diff: float
    reference: float
    tolerances: dict

    @property
    def ok(self):
        return all(getattr(self, check) <= self.tolerances[check] for check in CHECKS)

    @property
    def failed_checks(self):
        return [check for check in CHECKS if not getattr(self, check) <= self.tolerances[check]]

    def to_dict(self):
        return {**dataclasses.asdict(self), "ok": self.ok}


def max_relative_error(actual, expected):
    """``max|actual - expected| / max|expected|`` (the absolute error if ``expected`` is 0).

    NaN anywhere gives ``inf``, so it never passes a tolerance.
    """
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"Jacobian shapes differ: {actual.shape} vs {expected.shape}")
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        return float("inf")
    error = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return error / scale if scale > 0 else error


# --------------------------------------------------------------------------- Jacobians
def _upstreams(out_shape, rng):
    """Upstream gradients ``U`` ``(out_size + 1, out_size)``: every one-hot, then one random.

    The one-hot rows give the full Jacobian; the random row checks the VJP is
    linear in its upstream gradient (``g * g`` equals ``g`` on one-hot vectors).
    """
    size = int(np.prod(out_shape))
    return np.vstack([np.eye(size), rng.standard_normal((1, size))])


def _tape_vjps(tf, fn, inputs, upstreams):
    """``[U @ J_k for each input k]`` of ``fn(*inputs)``: one backward pass per row of ``U``."""
    inputs = [tf.constant(value) for value in inputs]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        out = fn(*inputs)
    rows = [[] for _ in inputs]
    for upstream in upstreams:
        grads = tape.gradient(
            out, inputs, output_gradients=tf.constant(upstream.reshape(out.shape), out.dtype)
        )
        for row, grad, value in zip(rows, grads, inputs, strict=True):
            # No gradient (the output does not depend on the input) is a zero row.
            row.append(np.zeros(int(np.prod(value.shape))) if grad is None else np.ravel(grad))
    del tape
    return [np.stack(row) for row in rows]


def _finite_difference_vjps(tf, fn, inputs, upstreams, delta):
    """``U @ J_numeric``, ``J_numeric`` from ``tf.test.compute_gradient``'s central differences."""
    inputs = [tf.constant(v) for v in inputs]
    _, numeric = tf.test.compute_gradient(fn, inputs, delta=delta)
    return [upstreams @ np.asarray(j, np.float64) for j in numeric]


def _reference_vjps(vjp, upstreams, out_shape):
    """Stack the reference's ``vjp(u)`` (batch-major, like the TF side) for each row ``u``."""
    rows = None
    for upstream in upstreams:
        grads = vjp(upstream.reshape(out_shape))
        if rows is None:
            rows = [[] for _ in grads]
        for row, grad in zip(rows, grads, strict=True):
            row.append(np.asarray(grad, np.float64).ravel())
    return [np.stack(row) for row in rows]


# --------------------------------------------------------------------------- the checks
def _worst(vjps, expected):
    """The largest error over the inputs both sides have gradients for."""
    return max(max_relative_error(a, b) for a, b in zip(vjps, expected, strict=False))


def run_gradcheck(
    seed=0, batch=8, features=12, classes=10, dtypes=COMPARISON_DTYPES, custom_ops=None
):
    """Check every custom gradient; returns a list of :class:`GradcheckRow`.

    Args:
        seed: draws the inputs (pixels in [0, 1], weights ``0.1 N(0, 1)``,
            one-hot labels, logits ``N(0, 1)``).
        batch, features, classes: the problem's size (small: the Jacobians
            are built one backward pass per output element).
        dtypes: any of ``"float32"``, ``"float64"``.
        custom_ops: optional ``{name: function}`` overriding ops in
            :data:`OP_NAMES` (the default is :mod:`tfsoftmax.ops`' own,
            looked up at call time) -- the hook that lets a test prove a wrong
            gradient is caught.
    """
    from tfsoftmax import ops
    from tfsoftmax._tf import tf
    from tfsoftmax.validation import check_positive_int

    for name, value in (("batch", batch), ("features", features), ("classes", classes)):
        check_positive_int(name, value)
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    for dtype in dtypes:
        if dtype not in COMPARISON_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(COMPARISON_DTYPES)}, got {dtype!r}")
    custom = {name: getattr(ops, name) for name in OP_NAMES}
    unknown = set(custom_ops or {}) - set(OP_NAMES)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; expected names from {OP_NAMES}")
    custom.update(custom_ops or {})

    rows = []
    for dtype in dtypes:
        data = gradcheck_problem(seed, batch, features, classes, dtype)
        rng = np.random.default_rng([seed, 1])
        for op, method, custom_fn, builtin_fn, inputs, shape, ref in gradcheck_cases(custom, data):
            upstreams = _upstreams(shape, rng)
            if custom_fn is None:
                rows.append(GradcheckRow(op, method, dtype, *[np.inf] * 3, dict(TOLERANCES[dtype])))
                continue
            vjps = _tape_vjps(tf, custom_fn, inputs, upstreams)
            fd = _finite_difference_vjps(tf, custom_fn, inputs, upstreams, FD_DELTA[dtype])
            rows.append(
                GradcheckRow(
                    op=op,
                    method=method,
                    dtype=dtype,
                    autodiff=_worst(vjps, _tape_vjps(tf, builtin_fn, inputs, upstreams)),
                    finite_diff=_worst(vjps, fd),
                    reference=_worst(vjps, _reference_vjps(ref, upstreams, shape)),
                    tolerances=dict(TOLERANCES[dtype]),
                )
            )
    return rows


def format_table(rows):
    """The rows as a plain-text table, with the tolerances under it."""
    header = (
        f"{'op':<26}{'method':<10}{'dtype':<9}{'vs autodiff':>13}{'vs finite-diff':>16}"
        f"{'vs reference':>14}  ok"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.op:<26}{row.method:<10}{row.dtype:<9}{row.autodiff:>13.2e}"
            f"{row.finite_diff:>16.2e}{row.reference:>14.2e}  "
            + ("yes" if row.ok else "NO (" + ", ".join(row.failed_checks) + ")")
        )
    lines.append("")
    lines.append(
        "error = max|V - V_other| / max|V_other| over the VJPs of every one-hot and one "
        "random upstream gradient (the full Jacobian and more)."
    )
    for dtype, t in TOLERANCES.items():
        lines.append(
            f"tolerance {dtype}: autodiff {t['autodiff']:g}, finite-diff {t['finite_diff']:g} "
            f"(step 2**{int(np.log2(FD_DELTA[dtype]))}), reference {t['reference']:g}"
        )
    failed = sum(not row.ok for row in rows)
    lines.append(
        f"all {len(rows)} rows within tolerance"
        if not failed
        else f"{failed} of {len(rows)} rows OVER TOLERANCE"
    )
    return "\n".join(lines)


def to_json(rows, path, settings=None):
    """Write ``{"settings", "rows", "ok"}`` as JSON; returns the path."""
    payload = {
        "settings": settings or {},
        "tolerances": TOLERANCES,
        "finite_difference_step": FD_DELTA,
        "rows": [row.to_dict() for row in rows],
        "ok": all(row.ok for row in rows),
    }
    return write_text(path, json.dumps(payload, indent=2) + "\n")
