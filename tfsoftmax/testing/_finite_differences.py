"""Directional derivatives by central finite differences in float64, with an error bound.

For a scalar ``phi(t)`` (``<u, f(x + t d)>`` for the first order, ``<w, V(x + t d, u)>``
for the second) the central differences with steps ``h`` and ``2h``,

    D(h)  = (phi(h)  - phi(-h))  / 2h   = phi'(0) + h**2 phi'''/6 + O(h**4)
    D(2h) = (phi(2h) - phi(-2h)) / 4h   = phi'(0) + 4 h**2 phi'''/6 + O(h**4),

are combined by Richardson extrapolation, ``D = (4 D(h) - D(2h)) / 3 = phi'(0) + O(h**4)``.
The error bound returned with ``D`` is deliberately generous:

    bound = |D(h) - D(2h)|  +  4 eps_f S / h,

the first term three times the estimated truncation error of ``D(h)`` itself
(``D``'s is ``O(h**4)``, far smaller), the second the rounding error of the
differences: each ``phi`` is a sum whose terms have absolute sum ``S``
(``sum |u| |f|``), computed to about ``eps_f S`` in the output's dtype
(``eps_f = 2**-52`` when the function computes in float64; larger, and so
an honest weaker check, when it casts to a lower precision).

The step is ``h = eps`` times the direction ``d``, whose entries are
``N(0, 1)`` times the root mean square of the input (1 for an all-zero
input), so the step is relative to the input's scale. Default
``eps = 2**-12`` (:data:`DEFAULT_STEP`): with Richardson the truncation
error ``~h**4`` and the rounding error ``~eps_f / h`` balance near
``eps_f ** (1/5)``; ``2**-12`` errs on the small side, which keeps the four
points close to ``x`` (fewer kinks crossed, probabilities stay positive).
"""

import numpy as np

__all__ = ["DEFAULT_STEP", "directional_derivative", "input_scale", "random_direction"]

#: The default finite-difference step, relative to each input's scale.
DEFAULT_STEP = 2.0**-12


def input_scale(array):
    """Root mean square of ``array``; 1 when it is all zeros or empty."""
    array = np.asarray(array, np.float64)
    rms = float(np.sqrt(np.mean(array**2))) if array.size else 0.0
    return rms if rms > 0 and np.isfinite(rms) else 1.0


def random_direction(rng, array):
    """A direction ``d ~ N(0, 1) * input_scale(array)`` of ``array``'s shape."""
    return rng.standard_normal(np.shape(array)) * input_scale(array)


def directional_derivative(phi, step):
    """``(D, bound)``: Richardson-extrapolated ``phi'(0)`` and its error bound.

    ``phi(t) -> (value, magnitude, eps_f)``: the scalar, the absolute sum of
    its terms and the epsilon of the dtype it was computed in.
    """
    values, magnitude, eps_f = {}, 0.0, 0.0
    for t in (step, -step, 2 * step, -2 * step):
        values[t], size, eps_t = phi(t)
        magnitude, eps_f = max(magnitude, size), max(eps_f, eps_t)
    d1 = (values[step] - values[-step]) / (2 * step)
    d2 = (values[2 * step] - values[-2 * step]) / (4 * step)
    derivative = (4 * d1 - d2) / 3
    bound = abs(d1 - d2) + 4 * eps_f * magnitude / step
    if not (np.isfinite(derivative) and np.isfinite(bound)):
        return float("nan"), float("inf")
    return float(derivative), float(bound)
