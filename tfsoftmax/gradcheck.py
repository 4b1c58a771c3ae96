"""``tfsoftmax gradcheck``: every custom gradient, checked with :mod:`tfsoftmax.testing`.

For each op -- :func:`~tfsoftmax.ops.bias_trick_dense`,
:func:`~tfsoftmax.ops.jacobian_softmax` with each method, plain, under a mask
(``jacobian_softmax+mask``: about 70 % of positions kept, one sample fully
masked, one not at all) and over the axes :data:`SOFTMAX_AXES` of
``(batch, 2, classes)`` logits (``jacobian_softmax+axes``),
:func:`~tfsoftmax.ops.categorical_crossentropy`, and the whole chain
dense -> softmax -> CCE -- and each dtype (float32, float64), one call of the
public checker :func:`tfsoftmax.testing.check_gradients` with
``upstream="basis"`` compares the VJPs ``V(u) = J^T u`` of the custom
gradient, for every one-hot ``u`` (the full Jacobian ``J[i, j] = d out_i / d
in_j``, row by row) and two random ``u ~ N(0, 1)`` (a VJP that is not linear
in ``u`` -- ``u * u`` equals ``u`` on one-hot vectors -- is caught too), with

1. **autodiff** -- TensorFlow's gradient of the same formula written with
   built-ins (:mod:`tfsoftmax.autodiff`): ``x W[:, :-1]^T + W[:, -1]``,
   ``tf.nn.softmax``, ``-mean_i sum_k y_ik log yhat_ik``; for the masked and
   multi-axis softmax, ``keras.layers.Softmax`` with the same mask or axes
   (the checker's ``reference=``; the forward values are compared too);
2. **finite differences** -- of the custom op itself, in float64: for each
   random ``u`` and two random directions ``d`` of each input, the
   directional derivative ``<V(u), d>`` against Richardson-extrapolated
   central differences of ``<u, f(x + t d)>`` (step :data:`FD_DELTA` times
   the input's scale); the error is ``|<V, d> - D| / max(s ||V||, |D|)``
   (see :mod:`tfsoftmax.testing`);
3. **reference** -- the NumPy reference's hand-written backward
   (:mod:`tfsoftmax.reference`, features-major: inputs and gradients are
   transposed at this boundary; the checker's ``numpy_vjp=``). Its
   conventions are mapped, not assumed: ``Softmax.backward`` and
   ``cce_gradient`` are per sample (``dL_i/d.``, no ``1/b``), so the CCE
   gradient is divided by the batch size ``b`` here; ``Dense.backward`` stores
   ``(1/b) G [X; 1]^T``, the gradient of the *mean* loss when ``G`` holds
   per-sample columns, so for a plain upstream gradient ``G`` (the op's VJP)
   its weight gradient is multiplied by ``b``, while its input gradient
   ``W[:, :-1]^T G`` is not scaled. The ``"jacobian"`` softmax is compared
   with the reference's per-sample loop (the notebook's explicit Jacobian),
   ``"vjp"`` with its vectorized backward. The masked and multi-axis softmax
   are reduced to the plain reference softmax
   (:mod:`tfsoftmax.gradcheck_reference`).

A replacement ``jacobian_softmax`` (``custom_ops``) that takes no ``mask=`` or
``axis=`` fails those rows (every error ``inf``).

Every gradient is taken with respect to every differentiable input: ``x`` and
``W`` (dense, chain), ``z`` (softmax), ``y_pred`` and ``y_true`` (CCE; the
reference has no ``y_true`` gradient, so that comparison covers ``y_pred``).
Each row's error per check is the worst over the inputs (and, for autodiff,
the forward values) of the checker's entries: against autodiff and the
reference the max-norm relative error ``max|V - V_other| / max|V_other|`` over
all the VJP rows together (relative to the largest entry, as
:func:`tfsoftmax.compare.max_differences` measures; an element-wise ratio
blows up wherever an entry is near zero).

Tolerances (:data:`TOLERANCES`, passed to the checker as ``rtol=``: these ops'
measured bars, tighter than its generic ``8 eps max(1, cond)``):

* float64 -- 1e-10 against autodiff and the reference (a few ulps of
  reordered sums; measured <= 8.4e-16 over seeds 0-5), 1e-6 against finite
  differences (measured <= 3.1e-11 over seeds 0-5, step ``2**-12``; the
  checker adds the differences' own error bound, below 1e-9 here);
* float32 -- ``6 eps = 7.2e-7`` against autodiff and the reference
  (``eps = 2**-23``, :data:`FLOAT32_EPS`). Each side rounds each VJP entry to
  about ``eps * s``, with ``s`` the sum of the absolute values of the terms
  summed into it; the error is relative to the largest entry, so the bound is
  ``2 eps max(s) / max|V|``: twice the rounding times the condition
  ``max(s) / max|V|``, a small number for these inputs (no largest entry is a
  cancellation); 6 eps allows a condition of 3. Measured <= 3.2 eps (the
  multi-axis softmax against autodiff, seed 2; <= 2.4 eps against the
  reference) over seeds 0-5. A relative error of 1e-6 in an op's output or
  gradient is 8 eps and fails (``tests/test_gradcheck.py``). And **1e-4
  against finite differences**: they are taken in float64 (the op run on
  float64 inputs), so the error is the float32 gradient's own rounding
  (measured <= 2.8e-7 over seeds 0-5), far below it; a wrong gradient is off
  by O(1).

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
    "float32": {"autodiff": 6 * FLOAT32_EPS, "finite_diff": 1e-4, "reference": 6 * FLOAT32_EPS},
}

#: Finite-difference step per dtype, relative to each input's scale (the
#: differences are taken in float64 for both, so the step is the same).
FD_DELTA = {"float64": 2.0**-12, "float32": 2.0**-12}

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

    NaN anywhere gives ``inf``, so it never passes a tolerance. The checker's
    own metric, :func:`tfsoftmax.testing.relative_max_error`.
    """
    from tfsoftmax.testing import relative_max_error

    return relative_max_error(actual, expected)


# --------------------------------------------------------------------------- the checks
#: The checker's check names behind each column of the table.
_COLUMN_CHECKS = {
    "autodiff": ("forward", "reference"),
    "finite_diff": ("finite_diff",),
    "reference": ("numpy",),
}


def _worst(result, column):
    """The largest error of ``column``'s checks over every input (and output) of ``result``."""
    errors = [e.error for e in result.entries if e.check in _COLUMN_CHECKS[column]]
    failed = [e for e in result.entries if e.check == "run"]
    return float("inf") if failed or not errors else max(errors)


def _check_case(custom_fn, builtin_fn, inputs, reference_vjp, dtype, seed):
    """One case checked by :func:`tfsoftmax.testing.check_gradients`; the row's three errors."""
    from tfsoftmax.testing import check_gradients

    t = TOLERANCES[dtype]
    result = check_gradients(
        custom_fn,
        *inputs,
        reference=builtin_fn,
        numpy_vjp=lambda u, *values: reference_vjp(u),
        dtypes=(dtype,),
        rtol={
            "forward": t["autodiff"],
            "reference": t["autodiff"],
            "finite_diff": t["finite_diff"],
            "numpy": t["reference"],
        },
        upstream="basis",
        eps=FD_DELTA[dtype],
        seed=seed,
    )
    return [_worst(result, column) for column in CHECKS]


def _validated_ops(custom_ops, batch, features, classes, dtypes):
    """The ops to check (``tfsoftmax.ops``' own unless replaced), after checking the arguments."""
    from tfsoftmax import ops
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
    return custom


def run_gradcheck(
    seed=0, batch=8, features=12, classes=10, dtypes=COMPARISON_DTYPES, custom_ops=None
):
    """Check every custom gradient; returns a list of :class:`GradcheckRow`.

    Args:
        seed: draws the inputs (pixels in [0, 1], weights ``0.1 N(0, 1)``,
            one-hot labels, logits ``N(0, 1)``) and the checker's random probes.
        batch, features, classes: the problem's size (small: the Jacobians
            are built one backward pass per output element).
        dtypes: any of ``"float32"``, ``"float64"``.
        custom_ops: optional ``{name: function}`` overriding ops in
            :data:`OP_NAMES` (the default is :mod:`tfsoftmax.ops`' own,
            looked up at call time) -- the hook that lets a test prove a wrong
            gradient is caught.
    """
    custom = _validated_ops(custom_ops, batch, features, classes, dtypes)
    rows = []
    for dtype in dtypes:
        data = gradcheck_problem(seed, batch, features, classes, dtype)
        for op, method, custom_fn, builtin_fn, inputs, _, ref in gradcheck_cases(custom, data):
            errors = (
                [np.inf] * 3
                if custom_fn is None
                else _check_case(custom_fn, builtin_fn, inputs, ref, dtype, seed)
            )
            rows.append(GradcheckRow(op, method, dtype, *errors, dict(TOLERANCES[dtype])))
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
        "error = max|V - V_other| / max|V_other| over the VJPs of every one-hot and two "
        "random upstream gradients (the full Jacobian and more); finite differences in float64 "
        "along two random directions per input and random u (tfsoftmax.testing)."
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
