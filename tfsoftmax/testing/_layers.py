"""``check_layer_gradients``: a Keras layer's gradients w.r.t. its inputs and every weight.

The layer ``y = L(x; w_1, ..., w_r)`` becomes the function
``f(x, w_1, ..., w_r) = L.stateless_call([w_1, ..., w_r], state, x)`` of its
input and its trainable weights (Keras 3's stateless call: the weights are
arguments, so the tape sees them as inputs; non-trainable state is held
fixed), and :func:`~tfsoftmax.testing.check_gradients` checks it. One twin
of the layer is built per dtype policy from ``get_config()`` with the
original's weights, so every policy is checked at the same point:

* ``float32`` and ``float64`` -- inputs and weights in that dtype;
* ``mixed_float16`` -- float32 inputs and weights (the variables' dtype),
  computation in float16; the tolerance follows float16's ``eps = 2**-10``
  (the largest epsilon among the inputs and outputs). A layer whose config
  or call refuses a policy gets one ``skipped`` entry for it (not a failure).

Finite differences always use a float64 twin, whatever the policy. Modes:
eager, ``tf.function`` and XLA (``jit_compile=True``), each tracing the whole
backward pass. The cost is that of ``check_gradients`` per policy and mode,
plus one trace (and one XLA compilation) per policy.
"""

import numpy as np

from tfsoftmax._tf import keras, tf
from tfsoftmax.testing._check import Settings, check_at_dtype
from tfsoftmax.testing._finite_differences import DEFAULT_STEP
from tfsoftmax.testing._result import CheckEntry, GradientCheckError, GradientCheckResult
from tfsoftmax.testing._tape import MODES

__all__ = ["LAYER_POLICIES", "assert_layer_gradients", "check_layer_gradients"]

#: The dtype policies checked by default.
LAYER_POLICIES = ("float32", "float64", "mixed_float16")

_INPUT_DTYPE = {"float32": tf.float32, "float64": tf.float64, "mixed_float16": tf.float32}


def _twin(layer, policy, x, values):
    """A copy of ``layer`` under ``policy``, built on ``x``'s shape, holding ``values``."""
    twin = type(layer).from_config({**layer.get_config(), "dtype": policy})
    twin(tf.zeros(x.shape, twin.compute_dtype))
    if len(twin.trainable_variables) != len(values):
        raise ValueError(f"the {policy} copy has a different number of weights")
    for variable, value in zip(twin.trainable_variables, values, strict=True):
        variable.assign(tf.cast(value, variable.dtype))
    for variable, source in zip(
        twin.non_trainable_variables, layer.non_trainable_variables, strict=True
    ):
        variable.assign(tf.cast(source, variable.dtype))
    return twin


def _root_message(error):
    """The first line of the innermost cause of ``error`` (Keras wraps config errors)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def _as_function(twins):
    """``f(x, *weights)``: the twin for the inputs' dtype, called statelessly."""

    def layer_function(x, *weights):
        twin = twins[x.dtype.name]
        x = tf.cast(x, twin.compute_dtype)  # Keras' input autocast (stateless_call skips it)
        state = [v.value for v in twin.non_trainable_variables]
        weights = [
            tf.cast(w, v.dtype) for w, v in zip(weights, twin.trainable_variables, strict=True)
        ]
        outputs, _ = twin.stateless_call(list(weights), state, x)
        return outputs

    return layer_function


def _built(layer, input_shape, inputs, seed):
    """The layer built, and the point ``x`` (given, or ``N(0, 1)`` of ``input_shape``)."""
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"layer must be a Keras layer, got {type(layer).__name__}")
    if inputs is None:
        shape = tuple(input_shape) if input_shape is not None else ()
        if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise ValueError(
                "input_shape must be a fully known shape with the batch size, e.g. (8, 784); "
                f"got {input_shape!r}"
            )
        inputs = np.random.default_rng([seed, 7]).standard_normal(shape)
    x = np.asarray(tf.cast(tf.convert_to_tensor(inputs), tf.float64))
    if not layer.built:
        layer(tf.constant(x, layer.compute_dtype))
    return x


def check_layer_gradients(
    layer,
    input_shape=None,
    *,
    inputs=None,
    policies=LAYER_POLICIES,
    modes=MODES,
    order=1,
    seed=0,
    **options,
):
    """Check ``layer``'s gradients w.r.t. its inputs and every trainable weight.

    Args:
        layer: a Keras layer (built or not; built on ``input_shape`` if not).
        input_shape: the full input shape, batch included, e.g. ``(8, 784)``;
            the inputs are ``N(0, 1)`` (or pass ``inputs=``).
        policies: dtype policies to check (see the module docstring).
        modes: ``"eager"``, ``"function"``, ``"xla"``.
        order: 2 also checks the second order (eager mode).
        **options: the options of :func:`~tfsoftmax.testing.check_gradients`
            (``rtol``, ``atol``, ``upstream``, ``eps``, ``num_upstreams``, ...).

    Returns:
        A :class:`~tfsoftmax.testing.GradientCheckResult`, one group per policy.
    """
    x = _built(layer, input_shape, inputs, seed)
    values = [np.asarray(v.numpy(), np.float64) for v in layer.trainable_variables]
    names = ["inputs"] + [getattr(v, "path", v.name) for v in layer.trainable_variables]
    settings = Settings(
        options.pop("rtol", None),
        float(options.pop("atol", 0.0)),
        options.pop("upstream", "random"),
        float(options.pop("eps", DEFAULT_STEP)),
        order,
        tuple(modes),
        options.pop("num_upstreams", 2),
        options.pop("num_directions", 2),
        seed,
    )
    if options:
        raise TypeError(f"unknown options: {sorted(options)}")
    float64_twin = _twin(layer, "float64", x, values)
    entries = []
    for policy in policies:
        if policy not in _INPUT_DTYPE:
            raise ValueError(f"policies must be among {tuple(_INPUT_DTYPE)}, got {policy!r}")
        try:
            twin = float64_twin if policy == "float64" else _twin(layer, policy, x, values)
        except (TypeError, ValueError, NotImplementedError) as error:
            reason = _root_message(error)
            entries.append(
                CheckEntry(
                    policy,
                    "-",
                    1,
                    "-",
                    "-",
                    "build",
                    0.0,
                    0.0,
                    status="skipped",
                    note=f"policy not supported: {reason}",
                )
            )
            continue
        dtype = _INPUT_DTYPE[policy]
        fn = _as_function({dtype.name: twin, "float64": float64_twin})
        entries += check_at_dtype(fn, [x, *values], names, dtype, policy, settings)
    return GradientCheckResult(entries, settings.method())


def assert_layer_gradients(layer, input_shape=None, **options):
    """:func:`check_layer_gradients`, raising :class:`GradientCheckError` on failure."""
    result = check_layer_gradients(layer, input_shape, **options)
    if not result:
        raise GradientCheckError(result)
    return result
