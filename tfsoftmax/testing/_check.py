"""``check_gradients`` and ``assert_gradients``: the driver (the math: the package docstring)."""

import dataclasses
import inspect

import numpy as np

from tfsoftmax._tf import tf
from tfsoftmax.testing._compare import (
    finite_difference_entries,
    forward_entry,
    reference_entries,
)
from tfsoftmax.testing._finite_differences import (
    DEFAULT_STEP,
    directional_derivative,
    random_direction,
)
from tfsoftmax.testing._probes import draw_upstreams, float64_inputs, problem_at
from tfsoftmax.testing._result import CheckEntry, GradientCheckError, GradientCheckResult
from tfsoftmax.testing._tape import MODES, make_forward, make_vjp, quiet_retracing
from tfsoftmax.testing._tolerances import condition_number, default_rtol

__all__ = [
    "Settings",
    "assert_gradients",
    "check_at_dtype",
    "check_gradients",
    "resolve_input_names",
]

CHECKS = ("forward", "reference", "numpy", "finite_diff")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options of a check, validated once (see :func:`check_gradients`)."""

    rtol: object = None  # None, a number, or {check: number}
    atol: float = 0.0
    upstream: object = "random"
    eps: float = DEFAULT_STEP
    order: int = 1
    modes: tuple = ("eager",)
    num_upstreams: int = 2
    num_directions: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order!r}")
        bad_modes = [m for m in self.modes if m not in MODES]
        if not self.modes or bad_modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {self.modes!r}")
        for name in ("num_upstreams", "num_directions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps (the finite-difference step) must be positive, got {self.eps!r}")
        if isinstance(self.rtol, dict) and set(self.rtol) - set(CHECKS):
            raise ValueError(f"rtol keys must be among {CHECKS}, got {sorted(self.rtol)}")
        if not (np.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"atol must be a non-negative number, got {self.atol!r}")

    def rtol_for(self, check, eps, kappa):
        given = self.rtol.get(check) if isinstance(self.rtol, dict) else self.rtol
        return default_rtol(eps, kappa) if given is None else float(given)

    def method(self):
        kind = self.upstream if isinstance(self.upstream, str) else "given"
        return (
            f"method: VJPs V(u) for {kind} upstream gradients u ({self.num_upstreams} random "
            f"per output label); finite differences of <u, f(x + t d)> in float64 "
            f"(Richardson, step {self.eps:g} x input scale) along {self.num_directions} random "
            "directions d per input and u.\nerror: vs a reference max|V - V_ref| / max|V_ref|; "
            "vs finite differences |<V, d> - D| / max(scale ||V||, |D|). tolerance: "
            "8 eps max(1, cond) unless given, plus the finite difference's error bound."
        )


def resolve_input_names(fn, count, names=None):
    """``names``, else ``fn``'s positional parameter names, else ``input 0``, ``input 1``, ..."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != count:
            raise ValueError(f"input_names has {len(names)} names for {count} inputs")
        return names
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    positional = [
        p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) >= count and len(set(positional[:count])) == count:
        return positional[:count]
    return [f"input {i}" for i in range(count)]


def _float64_vjp(fn):
    """``evaluate(points + u) -> outputs + [V_k]`` in float64: for condition numbers."""
    vjp = make_vjp(fn)

    def evaluate(arrays, n):
        xs = [tf.constant(a, tf.float64) for a in arrays[:n]]
        us = [tf.constant(a, tf.float64) for a in arrays[n:]]
        outputs, (grads,) = vjp(xs, [us])
        return [o.numpy() for o in outputs] + [None if g is None else g.numpy() for g in grads]

    return evaluate


def condition_numbers(fn, problem, rng):
    """``(kappa of the outputs, [kappa of V_k])`` at the problem's point, in float64."""
    n, m = len(problem.points), len(problem.shapes)
    upstream = next(u for u in problem.upstreams if u.random)
    evaluate = _float64_vjp(fn)
    try:
        kappas = condition_number(
            lambda arrays: evaluate(arrays, n), problem.points + upstream.arrays, rng
        )
    except (tf.errors.OpError, TypeError, ValueError):  # no float64 version: no measurement
        return 1.0, [1.0] * n
    return max(kappas[:m]), kappas[m:]


def finite_differences(fn, problem, settings, rng):
    """``{(p, k): [(d, D, bound)]}`` for every random upstream ``p`` and input ``k``."""
    forward = make_forward(fn)
    found = {}
    for p, upstream in enumerate(problem.upstreams):
        if not upstream.random:
            continue
        for k, point in enumerate(problem.points):
            found[(p, k)] = []
            for _ in range(settings.num_directions):
                direction = random_direction(rng, point)

                def phi(t, k=k, direction=direction, upstream=upstream):
                    arrays = list(problem.points)
                    arrays[k] = problem.points[k] + t * direction
                    outputs, eps = forward(arrays)
                    terms = [u * o for u, o in zip(upstream.arrays, outputs, strict=True)]
                    return (
                        sum(float(np.sum(t)) for t in terms),
                        sum(float(np.sum(np.abs(t))) for t in terms),
                        eps,
                    )

                found[(p, k)].append((direction, *directional_derivative(phi, settings.eps)))
    return found


def _reference_sides(problem, reference, numpy_vjp):
    """``{check: (forward outputs or None, [[R_k(u)] per u])}`` of the references given."""
    sides = {}
    upstreams = [problem.upstream_tensors(u) for u in problem.upstreams]
    if reference is not None:
        outputs, grads = make_vjp(reference)(problem.tensors, upstreams)
        grads = [
            [
                g if g is not None else tf.zeros_like(x)
                for g, x in zip(row, problem.tensors, strict=True)
            ]
            for row in grads
        ]
        sides["reference"] = ([o.numpy() for o in outputs], grads)
    if numpy_vjp is not None:
        values = [t.numpy() for t in problem.tensors]
        rows = []
        for u in upstreams:
            given = [a.numpy() for a in u]
            row = list(numpy_vjp(given[0] if len(given) == 1 else given, *values))
            if len(row) > len(values):
                raise ValueError(
                    f"numpy_vjp returned {len(row)} gradients for {len(values)} inputs"
                )
            rows.append(row + [None] * (len(values) - len(row)))
        sides["numpy"] = (None, rows)
    return sides


def _mode_entries(fn, problem, mode, settings, sides, differences, kappas):
    """Every first-order entry of one mode (a failure to run is an entry too)."""
    kappa_out, kappa_in = kappas
    rtols = {
        check: [settings.rtol_for(check, problem.eps, k) for k in kappa_in] for check in CHECKS
    }
    upstreams = [problem.upstream_tensors(u) for u in problem.upstreams]
    try:
        with quiet_retracing():
            outputs, grads = make_vjp(fn, mode)(problem.tensors, upstreams)
    except Exception as error:  # a mode that cannot run (XLA, tracing) is reported, not raised
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:160]}"
        return [
            CheckEntry(
                problem.label, mode, 1, "-", "all", "run", np.inf, 0.0, status="FAIL", note=message
            )
        ]
    grads = [[None if g is None else g.numpy() for g in row] for row in grads]
    entries = []
    for check, (expected_outputs, expected) in sides.items():
        if expected_outputs is not None:
            rtol = settings.rtol_for("forward", problem.eps, kappa_out)
            entries.append(forward_entry(problem, mode, outputs, expected_outputs, rtol, kappa_out))
        expected = [[None if g is None else np.asarray(g) for g in row] for row in expected]
        entries += reference_entries(
            problem, mode, 1, grads, expected, check, rtols[check], kappa_in, settings.atol
        )
    entries += finite_difference_entries(
        problem, mode, 1, grads, differences, rtols["finite_diff"], kappa_in, settings.atol
    )
    return entries


def check_at_dtype(fn, arrays, names, dtype, label, settings, reference=None, numpy_vjp=None):
    """Every entry of one dtype: the problem, its probes, each mode, the second order."""
    from tfsoftmax.testing._second_order import second_order_entries

    problem = problem_at(fn, arrays, names, dtype, label)
    rng = np.random.default_rng(settings.seed)
    problem.upstreams = draw_upstreams(problem, settings.upstream, settings.num_upstreams, rng)
    kappas = condition_numbers(reference if reference is not None else fn, problem, rng)
    differences = finite_differences(fn, problem, settings, rng)
    sides = _reference_sides(problem, reference, numpy_vjp)
    entries = []
    for mode in settings.modes:
        entries += _mode_entries(fn, problem, mode, settings, sides, differences, kappas)
    if settings.order == 2:
        entries += second_order_entries(fn, problem, settings, reference, rng)
    return entries


def check_gradients(
    fn,
    *inputs,
    reference=None,
    numpy_vjp=None,
    dtypes=("float32", "float64"),
    rtol=None,
    atol=0.0,
    upstream="random",
    eps=None,
    order=1,
    modes=("eager",),
    num_upstreams=2,
    num_directions=2,
    seed=0,
    input_names=None,
):
    """Check the gradient of ``fn(*inputs)`` with respect to every input; returns a result.

    See :mod:`tfsoftmax.testing` for the method, its cost and detection power.

    Args:
        fn: any TensorFlow-differentiable callable of the inputs (a
            ``tf.custom_gradient`` op, a Keras layer or model, a ``tf.function``)
            returning a tensor or a nest of tensors (non-floating ones ignored).
        *inputs: the point, floating-point arrays or tensors (every one is
            differentiated; close over the others).
        reference: optional plain TensorFlow function with the same forward;
            its autodiff VJPs are compared (check ``reference``), and its
            forward too (``forward``).
        numpy_vjp: optional ``numpy_vjp(u, *inputs) -> [dx_k or None, ...]``
            (``u`` an array, or a list with several outputs), check ``numpy``.
        dtypes: the dtypes the inputs are cast to, one check each.
        rtol: ``None`` (derived: ``8 eps max(1, cond)``), a number, or
            ``{check: number}`` for ``forward``/``reference``/``numpy``/``finite_diff``.
        atol: an absolute tolerance added to every check.
        upstream: ``"random"``, ``"basis"`` (the full Jacobian) or a list of
            upstream gradients.
        eps: the finite-difference step relative to each input's scale
            (default ``2**-12``).
        order: 2 checks the gradient of the gradient too (eager mode).
        modes: any of ``"eager"``, ``"function"`` (``tf.function``), ``"xla"``.
        num_upstreams, num_directions: the random probes (see the docstring).
        seed: draws the probes.
        input_names: names for the table (default: ``fn``'s parameter names).

    Returns:
        A :class:`GradientCheckResult`: ``bool(result)``, ``str(result)`` (the table).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not inputs:
        raise ValueError("check_gradients needs at least one input to differentiate")
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    settings = Settings(
        rtol,
        float(atol),
        upstream,
        DEFAULT_STEP if eps is None else float(eps),
        order,
        tuple(modes),
        num_upstreams,
        num_directions,
        seed,
    )
    names = resolve_input_names(fn, len(inputs), input_names)
    arrays = float64_inputs(inputs, names)
    entries = []
    for dtype in dtypes:
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise ValueError(f"dtypes must be floating-point, got {dtype.name}")
        entries += check_at_dtype(
            fn, arrays, names, dtype, dtype.name, settings, reference, numpy_vjp
        )
    return GradientCheckResult(entries, settings.method())


def assert_gradients(fn, *inputs, **options):
    """:func:`check_gradients`, raising :class:`GradientCheckError` (with the table) on failure.

    Returns the result when it passes, so a test can look further.
    """
    result = check_gradients(fn, *inputs, **options)
    if not result:
        raise GradientCheckError(result)
    return result
