"""Check anyone's gradients: ``tf.custom_gradient`` ops, Keras layers, models.

``check_gradients(fn, *inputs, reference=None, ...)`` checks the gradient
TensorFlow computes for ``y = fn(x_1, ..., x_n)`` with respect to every
input, in each dtype; ``check_layer_gradients(layer, input_shape)`` does it
for a Keras layer's input and every trainable weight, in eager,
``tf.function`` and XLA, for the float32, float64 and mixed_float16 policies.
``assert_gradients`` / ``assert_layer_gradients`` are the one-line pytest
helpers: they raise :class:`GradientCheckError` (an ``AssertionError``) whose
message is the table. ``str(result)`` is the table; ``bool(result)`` (or
``result.passed``) the verdict.

What is compared -- vector-Jacobian products, never full Jacobians
----------------------------------------------------------------------
What a gradient function computes is the VJP ``V_k(u) = J_k^T u`` for an
upstream gradient ``u`` (``J_k = dy / dx_k``). For random ``u ~ N(0, I)``
(``num_upstreams`` of them, and as many per output when there are several,
so an error is attributed to its output), the VJP under test is compared:

1. with the autodiff VJP of ``reference`` (a plain TensorFlow function with
   the same forward, whose forward is compared too), entry by entry:
   ``max|V - V_ref| / max|V_ref|``, the maxima over the VJPs of all ``u``
   (relative to the largest entry: an element-wise ratio blows up near 0);
2. with **central finite differences in float64**: for random directions
   ``d`` of one input at a time (``num_directions`` per input and ``u``),

       <V_k(u), d>  =  d/dt <u, f(x + t d)> at t = 0,

   the right side by Richardson-extrapolated central differences with an
   error bound (:mod:`tfsoftmax.testing._finite_differences`); the error is
   ``|<V, d> - D| / max(s ||V||_2, |D|)``, ``s`` the input's scale;
3. with an optional NumPy VJP, ``numpy_vjp(u, *inputs)``, like 1.

With ``upstream="basis"`` every one-hot ``u`` is added (the full Jacobian, one
backward pass per output entry) for small problems.

**Detection power.** Let ``e = V_k(u) - V_k^true(u)`` be the error of one
VJP. Comparisons 1 and 3 see ``e`` entirely. For 2, ``<e, d>`` with
``d ~ N(0, s^2 I)`` is ``N(0, s^2 ||e||^2)``: the measured error is
``|z| ||e|| / ||V||`` with ``z ~ N(0, 1)`` -- the relative error of the
gradient times ``|z|``. Any wrong gradient (``e != 0``) is therefore detected
with probability 1 as the tolerance goes to 0; at tolerance ``tau`` a
relative error ``r`` is missed only if ``|z| < tau / r`` in every one of the
``k = num_upstreams x num_directions`` probes, probability at most
``(0.8 tau / r)^k`` (``P(|z| < c) <= 0.8 c``): with the default ``k = 4``, an
error ten times the tolerance is missed with probability below ``5e-5``.
Likewise ``e = E u`` is nonzero with probability 1 for a random ``u`` when the
VJP's error matrix ``E`` is nonzero, and a VJP not linear in ``u`` is caught
because ``u`` is not one-hot.

**Tolerances** (:mod:`tfsoftmax.testing._tolerances`): ``8 eps max(1, cond)``,
``eps`` the dtype's machine epsilon and ``cond`` the componentwise condition
number of the result, measured by perturbing every input entry (and ``u``) by
a relative ``2**-20`` in float64; against finite differences, plus their error
bound. Override with ``rtol=`` (a number, or one per check) and ``atol=``.

**Cost.** Per dtype and mode: ``P`` backward passes of ``fn`` (and of the
reference), ``P = num_upstreams x (1 + m)`` with ``m`` outputs (``m > 1``),
plus ``4 x num_directions x n`` float64 forward passes per random ``u``
(``n`` inputs) -- linear in the number of inputs and outputs, and independent
of their sizes beyond the cost of one pass (a full Jacobian needs one pass per
entry). ``order=2`` adds, per ``u``, one double-backward pass and
``4 x num_directions x n`` first-order passes (:mod:`tfsoftmax.testing._second_order`).

Example: a user's own op, with a deliberate bug::

    import tensorflow as tf
    from tfsoftmax.testing import assert_gradients, check_gradients

    @tf.custom_gradient
    def swish(x):
        s = tf.sigmoid(x)
        return x * s, lambda g: g * s             # forgets x s (1 - s)

    result = check_gradients(swish, tf.random.normal((4, 3)), reference=lambda x: x * tf.sigmoid(x))
    assert not result                             # the table names input 'x' and the error
"""

from tfsoftmax.testing._check import assert_gradients, check_gradients
from tfsoftmax.testing._layers import (
    LAYER_POLICIES,
    assert_layer_gradients,
    check_layer_gradients,
)
from tfsoftmax.testing._result import CheckEntry, GradientCheckError, GradientCheckResult
from tfsoftmax.testing._tape import MODES
from tfsoftmax.testing._tolerances import relative_max_error

__all__ = [
    "LAYER_POLICIES",
    "MODES",
    "CheckEntry",
    "GradientCheckError",
    "GradientCheckResult",
    "assert_gradients",
    "assert_layer_gradients",
    "check_gradients",
    "check_layer_gradients",
    "relative_max_error",
]
