"""Default tolerances: derived from the dtype's epsilon and a measured condition number.

A computation in a floating-point dtype with unit roundoff ``eps`` (float16
``2**-10``, float32 ``2**-23``, float64 ``2**-52``) that is *backward stable*
returns the exact result for inputs perturbed by a relative ``O(eps)``. Its
error is therefore about ``kappa * eps`` relative, where ``kappa`` is the
componentwise condition number of the result: how much it moves, relative to
its size, when each input entry moves by a relative ``delta``,

    kappa = max|V(x (1 + delta r), u (1 + delta r')) - V(x, u)|  /  (delta max|V(x, u)|),

``r``, ``r'`` random signs (:func:`condition_number`, evaluated once per
dtype in float64 with ``delta = 2**-20``, with the reference when there is
one, else with the function itself). A sum of ``n`` well-scaled terms has
``kappa`` near 1; a result that is a cancellation (a softmax backward with a
nearly constant upstream gradient, ``g - <a, g>``) has a large ``kappa``, and
its tolerance grows with it.

Two implementations of the same gradient, each rounding to about
``kappa * eps``, differ by up to about ``2 kappa eps``; the default relative
tolerance is ``SAFETY * eps * max(1, kappa)`` (:func:`default_rtol`), with
``SAFETY = 8``: four times that, because one random perturbation
underestimates the worst rounding pattern of a long sum by a small factor.
float32: ``9.5e-7 kappa``; float64: ``1.8e-15 kappa``.

The finite-difference side is always evaluated in float64 (when the function
computes in float64 for float64 inputs) and comes with its own error bound
(:mod:`tfsoftmax.testing._finite_differences`), added to this tolerance.
"""

import numpy as np

__all__ = [
    "CONDITION_DELTA",
    "SAFETY",
    "condition_number",
    "default_rtol",
    "dtype_eps",
    "relative_max_error",
]

#: The factor between the default tolerance and ``eps * kappa``.
SAFETY = 8.0

#: The relative perturbation the condition number is measured with (float64).
CONDITION_DELTA = 2.0**-20


def dtype_eps(dtype):
    """Machine epsilon of a floating dtype name or object (float16, bfloat16, float32, float64)."""
    name = getattr(dtype, "name", str(dtype))
    if name == "bfloat16":
        return 2.0**-7
    return float(np.finfo(np.dtype(name)).eps)


def default_rtol(eps, kappa):
    """``SAFETY * eps * max(1, kappa)``: see the module docstring."""
    return SAFETY * eps * max(1.0, float(kappa))


def relative_max_error(actual, expected):
    """``max|actual - expected| / max|expected|`` (absolute when ``expected`` is all 0).

    NaN or inf on either side gives ``inf``, so it never passes a tolerance.
    Relative to the largest entry, not entry by entry: an element-wise ratio
    blows up wherever an entry is near zero.
    """
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        return float("inf")
    if not actual.size:
        return 0.0
    error = float(np.max(np.abs(actual - expected)))
    scale = float(np.max(np.abs(expected)))
    return error / scale if scale > 0 else error


def condition_number(evaluate, arrays, rng):
    """``kappa`` of each result of ``evaluate`` under relative perturbations of ``arrays``.

    ``evaluate(arrays) -> list of arrays (or None)`` runs in float64. Returns one
    ``kappa`` per result (1 where it cannot be measured: a zero or missing
    result). Every entry of every array is multiplied by ``1 + delta r``,
    ``r`` in ``{-1, 1}``.
    """
    base = evaluate(arrays)
    moved = [
        a * (1.0 + CONDITION_DELTA * rng.choice([-1.0, 1.0], size=np.shape(a))) for a in arrays
    ]
    perturbed = evaluate(moved)
    kappas = []
    for before, after in zip(base, perturbed, strict=True):
        if before is None or after is None:
            kappas.append(1.0)
            continue
        change = relative_max_error(after, before)
        scale = float(np.max(np.abs(before))) if np.size(before) else 0.0
        finite = np.isfinite(change) and scale > 0
        kappas.append(max(1.0, change / CONDITION_DELTA) if finite else 1.0)
    return kappas
