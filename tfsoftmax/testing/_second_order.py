"""Second order: the gradient of the gradient, against finite differences of the gradient.

With ``V_k(x, u)`` the first-order VJP of the function under test (its own
gradient function, as TensorFlow runs it) and a random ``w = (w_1, ..., w_n)``
in input space, the scalar

    psi(x) = sum_k <V_k(x, u), w_k>

has the gradient ``d psi / d x_l = sum_k (d V_k / d x_l)^T w_k`` -- a VJP of
the VJP, i.e. a Hessian-vector product when ``f`` is a scalar loss -- which
TensorFlow computes with nested tapes (``_tape.make_hvp``). It is checked
exactly like the first order: against the float64 finite differences of
``psi`` along random directions ``d`` of each input ``x_l``,

    <d psi / d x_l, d>  ~  (psi(x + h d) - psi(x - h d)) / 2h   (Richardson, as first order),

where ``psi`` is evaluated with the first-order gradient function in float64,
and against the reference's second derivative when a reference is given.
This checks that the gradient function is itself differentiated correctly
(consistency of the second derivative with the first); whether the first
derivative is right is the first-order check's job.

*Unsupported.* A ``tf.custom_gradient`` whose gradient function is not
differentiable (NumPy inside, ``tf.py_function``, ``tf.stop_gradient`` of
what it needs) gives TensorFlow no second derivative: the nested tape
raises, or returns ``None`` for every input. Both are reported as
``unsupported`` (not a pass), unless the finite differences show that the
second derivative is zero anyway (a function linear in each input), where
``None`` is right and the entries pass with a note. Second order runs in
eager mode only.
"""

from dataclasses import replace

import numpy as np

from tfsoftmax._tf import tf
from tfsoftmax.testing._compare import finite_difference_entries, reference_entries
from tfsoftmax.testing._finite_differences import directional_derivative, random_direction
from tfsoftmax.testing._probes import round_to
from tfsoftmax.testing._result import CheckEntry
from tfsoftmax.testing._tape import make_hvp, make_vjp
from tfsoftmax.testing._tolerances import condition_number, dtype_eps

__all__ = ["second_order_entries"]


def _psi(fn, problem, upstream, weights):
    """``phi(arrays) -> (psi, sum of |terms|, eps)`` from the first-order VJP in float64."""
    vjp = make_vjp(fn)

    def evaluate(arrays):
        xs = [tf.constant(a, tf.float64) for a in arrays]
        us = [tf.constant(a, tf.float64) for a in upstream.arrays]
        _, (grads,) = vjp(xs, [us])
        present = [(g, w) for g, w in zip(grads, weights, strict=True) if g is not None]
        terms = [np.asarray(g.numpy(), np.float64) * w for g, w in present]
        eps = max((dtype_eps(g.dtype) for g, _ in present), default=0.0)
        return (
            sum(float(np.sum(t)) for t in terms),
            sum(float(np.sum(np.abs(t))) for t in terms),
            eps,
        )

    return evaluate


def _differences(fn, problem, p, upstream, weights, settings, rng):
    """``{(p, l): [(d, D, bound)]}``: finite differences of ``psi`` along each input."""
    evaluate = _psi(fn, problem, upstream, weights)
    found = {}
    for i, point in enumerate(problem.points):
        found[(p, i)] = []
        for _ in range(settings.num_directions):
            direction = random_direction(rng, point)

            def phi(t, i=i, direction=direction):
                arrays = list(problem.points)
                arrays[i] = problem.points[i] + t * direction
                return evaluate(arrays)

            found[(p, i)].append((direction, *directional_derivative(phi, settings.eps)))
    return found


def _hvp_values(fn, problem, upstream, weights):
    """The second-order VJP of ``fn`` in the problem's dtype, as NumPy (``None`` kept)."""
    w = [tf.constant(x, problem.dtype) for x in weights]
    hvp = make_hvp(fn)(problem.tensors, problem.upstream_tensors(upstream), w)
    return [None if g is None else np.asarray(g.numpy(), np.float64) for g in hvp]


def _kappas(fn, problem, upstream, weights, rng):
    """Condition numbers of the second-order VJP per input (float64; 1 if it cannot run)."""
    n, m = len(problem.points), len(upstream.arrays)

    def evaluate(arrays):
        xs = [tf.constant(a, tf.float64) for a in arrays[:n]]
        us = [tf.constant(a, tf.float64) for a in arrays[n : n + m]]
        ws = [tf.constant(a, tf.float64) for a in arrays[n + m :]]
        return [None if g is None else g.numpy() for g in make_hvp(fn)(xs, us, ws)]

    try:
        return condition_number(evaluate, problem.points + upstream.arrays + weights, rng)
    except Exception:  # no second derivative, or no float64: no measurement
        return [1.0] * n


def _unsupported(problem, upstream, note):
    return [
        CheckEntry(
            problem.label,
            "eager",
            2,
            name,
            upstream.label,
            "finite_diff",
            np.inf,
            0.0,
            status="unsupported",
            note=note,
        )
        for name in problem.names
    ]


def _probe(fn, problem, p, settings, reference, rng):
    """One random upstream gradient ``p``: ``(hvp, differences, expected, kappas)``.

    Raises ``_Unsupported`` when TensorFlow cannot differentiate the gradient function.
    """
    upstream = problem.upstreams[p]
    weights = [round_to(random_direction(rng, x), problem.dtype) for x in problem.points]
    differences = _differences(fn, problem, p, upstream, weights, settings, rng)
    try:
        hvp = _hvp_values(fn, problem, upstream, weights)
    except Exception as error:  # TensorFlow could not differentiate the gradient function
        first = (str(error).strip().splitlines() or [""])[0][:120]
        note = f"second derivative unsupported: {type(error).__name__}: {first}"
        raise _Unsupported(note) from error
    kappas = _kappas(reference if reference is not None else fn, problem, upstream, weights, rng)
    expected = None
    if reference is not None and any(g is not None for g in hvp):
        expected = _hvp_values(reference, problem, upstream, weights)
    return hvp, differences, expected, kappas


class _Unsupported(Exception):
    pass


def _unsupported(problem, labels, note):
    return [
        CheckEntry(
            problem.label,
            "eager",
            2,
            name,
            label,
            "finite_diff",
            np.inf,
            0.0,
            status="unsupported",
            note=note,
        )
        for label in labels
        for name in problem.names
    ]


def second_order_entries(fn, problem, settings, reference, rng):
    """Every second-order entry, over the random upstream gradients of all outputs together."""
    probes = [p for p, u in enumerate(problem.upstreams) if u.random]
    joint = [p for p in probes if problem.upstreams[p].label in ("all", problem.out_names[0])]
    chosen = (joint or probes)[: settings.num_upstreams]
    labels = list(dict.fromkeys(problem.upstreams[p].label for p in chosen))
    n = len(problem.points)
    rows = [[None] * n for _ in problem.upstreams]
    expected = [[None] * n for _ in problem.upstreams]
    differences, kappas = {}, [1.0] * n
    try:
        for p in chosen:
            rows[p], found, expected_p, kappas_p = _probe(fn, problem, p, settings, reference, rng)
            differences.update(found)
            expected[p] = expected_p or [None] * n
            kappas = [max(a, b) for a, b in zip(kappas, kappas_p, strict=True)]
    except _Unsupported as unsupported:
        return _unsupported(problem, labels, str(unsupported))
    rtols = {
        c: [settings.rtol_for(c, problem.eps, k) for k in kappas]
        for c in ("finite_diff", "reference")
    }
    entries = finite_difference_entries(
        problem, "eager", 2, rows, differences, rtols["finite_diff"], kappas, settings.atol
    )
    if all(g is None for p in chosen for g in rows[p]):
        if not all(entry.ok for entry in entries):
            return _unsupported(
                problem,
                labels,
                "second derivative unsupported: TensorFlow "
                "returned None (the gradient function is not differentiable)",
            )
        return [
            replace(e, note="no second-order path; finite differences agree it is 0")
            for e in entries
        ]
    return entries + reference_entries(
        problem, "eager", 2, rows, expected, "reference", rtols["reference"], kappas, settings.atol
    )
