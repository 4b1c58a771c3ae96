"""Do the custom ops run, and give the right numbers, on every device? (``tfsoftmax info``)

For every logical device ``d`` and every custom op ``f`` of :mod:`tfsoftmax.ops`,
with its built-in twin ``f°`` of :mod:`tfsoftmax.autodiff` (same formula,
gradient by TensorFlow's autodiff), on tiny fixed inputs ``x (4, 5)``,
``W (3, 6)`` and one-hot ``y (4, 3)``, under ``tf.device(d)``::

    v = f(x, W, y),  v° = f°(x, W, y)
    J = Σ_j j · v_j,  J° = Σ_j j · v°_j          distinct weights: every entry counts
    error = max(max|v − v°|, max|∂J/∂W − ∂J°/∂W|)

and the op passes when ``error ≤ 1e-4`` (``1e-10`` in float64) and the
gradient was computed on ``d`` itself. ``∂J/∂W`` goes through the op's
``tf.custom_gradient`` backward pass; the softmax and the loss are reached
through ``z = dense°(x, W)``, so their backward passes are chained with the
dense one's autodiff.
"""

from tfsoftmax import autodiff
from tfsoftmax._tf import tf

__all__ = ["check_ops_on_devices"]


def _op_checks():
    """``name -> fn(x, w, y) -> (op value, twin value)``, differentiable in ``w``."""
    from tfsoftmax import ops

    def dense(x, w, y):
        return ops.bias_trick_dense(x, w), autodiff.dense(x, w)

    def softmax(method):
        def check(x, w, y):
            z = autodiff.dense(x, w)
            return ops.jacobian_softmax(z, method=method), autodiff.softmax(z)

        return check

    def cce(x, w, y):
        p = autodiff.softmax(autodiff.dense(x, w))
        return ops.categorical_crossentropy(y, p), autodiff.categorical_crossentropy(y, p)

    return {
        "bias_trick_dense": dense,
        "jacobian_softmax[jacobian]": softmax("jacobian"),
        "jacobian_softmax[vjp]": softmax("vjp"),
        "categorical_crossentropy": cce,
    }


def _largest_difference(device_name, check, dtype):
    """``error`` of the module docstring for one op on one device; raises
    ``RuntimeError`` if the gradient was computed elsewhere."""
    with tf.device(device_name):
        x = tf.random.stateless_normal((4, 5), (1, 2), dtype=dtype)
        w = tf.Variable(tf.random.stateless_normal((3, 6), (3, 4), dtype=dtype))
        y = tf.one_hot([0, 1, 2, 1], 3, dtype=dtype)
        with tf.GradientTape(persistent=True) as tape:
            value, expected = check(x, w, y)
            weights = tf.cast(tf.range(tf.size(value)), dtype)
            objective = tf.reduce_sum(tf.reshape(value, [-1]) * weights)
            reference = tf.reduce_sum(tf.reshape(expected, [-1]) * weights)
        gradient = tape.gradient(objective, w)
        expected_gradient = tape.gradient(reference, w)
    placed = tf.DeviceSpec.from_string(gradient.device)
    wanted = tf.DeviceSpec.from_string(device_name)
    if (placed.device_type, placed.device_index) != (wanted.device_type, wanted.device_index):
        raise RuntimeError(f"ran on {gradient.device}")
    return max(
        float(tf.reduce_max(tf.abs(value - expected))),
        float(tf.reduce_max(tf.abs(gradient - expected_gradient))),
    )


def check_ops_on_devices(device_types=("CPU", "GPU"), dtype="float32"):
    """Run a tiny forward + backward of every custom op on every logical device.

    For each device of ``device_types`` and each op, the check of the module
    docstring: the op's value and its gradient with respect to the weights are
    compared with the autodiff twin's, and must have been computed on that device.

    Returns:
        A list of ``(device name, op name, ok, detail)``; ``detail`` is the
        largest difference or the error.
    """
    results = []
    checks = _op_checks()
    tolerance = 1e-4 if tf.as_dtype(dtype) != tf.float64 else 1e-10
    for kind in device_types:
        for device in tf.config.list_logical_devices(kind):
            for name, check in checks.items():
                try:
                    error = _largest_difference(device.name, check, dtype)
                    ok = error <= tolerance
                    results.append((device.name, name, ok, f"max |diff| {error:.1e}"))
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    results.append((device.name, name, False, f"{type(error).__name__}: {error}"))
    return results
