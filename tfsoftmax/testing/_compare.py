"""Turning probes into table entries: the gradient under test against each other side.

For each input ``k`` and each upstream label (an output, or ``all``), the
cell's error is the worst over its probes:

* against a reference VJP ``R`` (autodiff of ``reference``, or the NumPy
  VJP): ``max_u max|V_k(u) - R_k(u)| / max_u max|R_k(u)|`` over the cell's
  upstream gradients ``u`` (relative to the largest entry of them all, as if
  the VJPs were the rows of one matrix: with ``upstream="basis"`` the
  Jacobian); it passes when that ``max|V - R| <= atol + rtol max|R|``;
* against finite differences: with ``D`` the float64 derivative of
  ``<u, f(x + t d)>`` along ``d`` (``d`` moving ``x_k`` only; error bound
  ``b``), ``|<V_k(u), d> - D| / m`` with ``m = max(s_k ||V_k(u)||_2, |D|)``
  (``s_k`` the input's scale, so ``m`` is the typical size of ``<V, d>``); it
  passes when ``|<V, d> - D| <= rtol m + b + atol sum|d|``.

A gradient TensorFlow returns as ``None`` (no path from the input) counts as
zeros, and the entry says so.
"""

import numpy as np

from tfsoftmax.testing._finite_differences import input_scale
from tfsoftmax.testing._result import CheckEntry
from tfsoftmax.testing._tolerances import relative_max_error

__all__ = ["finite_difference_entries", "forward_entry", "reference_entries"]


def _values(gradient, like):
    """A gradient as float64 NumPy (zeros of ``like``'s shape when it is ``None``)."""
    if gradient is None:
        return np.zeros(np.shape(like))
    return np.asarray(gradient, np.float64)


def _labels(problem):
    """Upstream labels in order of first appearance."""
    return list(dict.fromkeys(u.label for u in problem.upstreams))


def _worst(cells):
    """The ``(error, tolerance)`` pair a cell reports: of the failing probes the one with
    the largest error (the size of the bug), else the one closest to its tolerance."""
    failing = [cell for cell in cells if not cell[0] <= cell[1]]
    if failing:
        return max(failing, key=lambda c: c[0] if np.isfinite(c[0]) else np.inf)
    return max(cells, key=lambda c: c[0] / c[1] if c[1] > 0 else (np.inf if c[0] > 0 else 0))


def _entry(problem, mode, order, k, label, check, cells, kappa, missing):
    error, tolerance = _worst(cells)
    return CheckEntry(
        dtype=problem.label,
        mode=mode,
        order=order,
        input=problem.names[k],
        output=label,
        check=check,
        error=float(error),
        tolerance=float(tolerance),
        kappa=float(kappa),
        note="no gradient (None)" if missing else "",
    )


def _stacked_error(pairs):
    """``max|V - R| / max|R|`` over every probe of a cell, and that scale (NaN/inf: inf)."""
    gap = scale = 0.0
    for actual, wanted in pairs:
        if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(wanted))):
            return np.inf, 1.0
        if wanted.size:
            gap = max(gap, float(np.max(np.abs(actual - wanted))))
            scale = max(scale, float(np.max(np.abs(wanted))))
    return (gap / scale if scale > 0 else gap), scale


def reference_entries(problem, mode, order, grads, expected, check, rtols, kappas, atol):
    """One entry per (input, label): ``grads[p][k]`` against ``expected[p][k]``.

    The error is relative to the largest entry over all the cell's probes
    (with ``upstream="basis"``: the largest entry of the Jacobian), as if the
    VJPs were the rows of one matrix. ``expected[p][k] is None`` for every
    ``p`` skips input ``k`` (a NumPy reference without that input's gradient).
    """
    entries = []
    for k, point in enumerate(problem.points):
        if all(expected[p][k] is None for p in range(len(grads))):
            continue
        for label in _labels(problem):
            probes = [
                p
                for p, upstream in enumerate(problem.upstreams)
                if upstream.label == label and expected[p][k] is not None
            ]
            if not probes:
                continue
            missing = any(grads[p][k] is None for p in probes)
            pairs = [(_values(grads[p][k], point), _values(expected[p][k], point)) for p in probes]
            error, scale = _stacked_error(pairs)
            tolerance = rtols[k] + (atol / scale if scale > 0 else atol)
            cells = [(error, tolerance)]
            entries.append(_entry(problem, mode, order, k, label, check, cells, kappas[k], missing))
    return entries


def forward_entry(problem, mode, outputs, expected, rtol, kappa):
    """The function's outputs against the reference's (the same forward is a premise)."""
    error = max(
        relative_max_error(np.asarray(o, np.float64), np.asarray(e, np.float64))
        for o, e in zip(outputs, expected, strict=True)
    )
    return CheckEntry(problem.label, mode, 0, "-", "all", "forward", error, rtol, kappa)


def finite_difference_entries(problem, mode, order, grads, differences, rtols, kappas, atol):
    """One entry per (input, label): ``<V_k(u), d>`` against the finite differences.

    ``differences[(p, k)]`` lists ``(d, D, bound)`` for random upstream ``p``.
    """
    entries = []
    for k, point in enumerate(problem.points):
        scale = input_scale(point)
        for label in _labels(problem):
            cells, missing = [], False
            for p, upstream in enumerate(problem.upstreams):
                if upstream.label != label or (p, k) not in differences:
                    continue
                missing |= grads[p][k] is None
                v = _values(grads[p][k], point)
                for direction, derivative, bound in differences[(p, k)]:
                    size = max(scale * float(np.linalg.norm(v)), abs(derivative))
                    size = size if size > 0 else 1.0
                    gap = abs(float(np.sum(v * direction)) - derivative)
                    allowed = rtols[k] + (bound + atol * float(np.sum(np.abs(direction)))) / size
                    cells.append((gap / size if np.isfinite(gap) else np.inf, allowed))
            if cells:
                entries.append(
                    _entry(problem, mode, order, k, label, "finite_diff", cells, kappas[k], missing)
                )
    return entries
