"""tfsoftmax.ops: gradients checked, not trusted.

Every custom gradient is compared with (1) finite differences
(:func:`tfsoftmax.testing.assert_gradients`, float64), (2) plain autodiff of the
same formula written with TensorFlow built-ins (the same checker), (3) Keras'
own Dense + softmax + CategoricalCrossentropy and (4) the NumPy reference's
hand-written backward pass.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfsoftmax import autodiff, ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.testing import assert_gradients

DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
METHODS = ops.SOFTMAX_METHODS
TOL = {tf.float64: 1e-10, tf.float32: 1e-5}


# --------------------------------------------------------------------------- helpers
def _problem(seed, batch=6, inputs=5, units=4, dtype=tf.float64, weight_scale=0.5):
    """x (batch, inputs), W (units, inputs + 1), one-hot y (batch, units)."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, inputs)), dtype)
    w = tf.constant(weight_scale * rng.normal(size=(units, inputs + 1)), dtype)
    y = tf.one_hot(rng.integers(0, units, batch), units, dtype=dtype)
    return x, w, y


def _grads(fn, *args):
    """Values of ``fn(*args)`` and its gradients wrt every argument."""
    with tf.GradientTape() as tape:
        tape.watch(args)
        out = fn(*args)
    return out, tape.gradient(out, args)


def _weighted(fn, upstream):
    """A scalar ``sum(fn(...) * upstream)``: its gradient feeds ``upstream`` into ``fn``."""
    return lambda *args: tf.reduce_sum(fn(*args) * upstream)


def _chain(method):
    return lambda x, w, y: ops.categorical_crossentropy(
        y, ops.jacobian_softmax(ops.bias_trick_dense(x, w), method)
    )


def _finite(t):
    return bool(np.isfinite(tf.cast(t, tf.float64).numpy()).all())


# --------------------------------------------------------------------------- finite differences
def _assert_matches_finite_differences(fn, *args):
    """The public checker, finite differences only (no reference): float64, derived bars."""
    result = assert_gradients(fn, *args, dtypes=("float64",))
    assert {e.check for e in result.entries} == {"finite_diff"}
    assert len({e.input for e in result.entries}) == len(args)  # every input is checked


def test_bias_trick_dense_matches_finite_differences():
    x, w, _ = _problem(0)
    _assert_matches_finite_differences(ops.bias_trick_dense, x, w)


@pytest.mark.parametrize("method", METHODS)
def test_jacobian_softmax_matches_finite_differences(method):
    z = tf.constant(2.0 * np.random.default_rng(1).normal(size=(4, 5)))
    _assert_matches_finite_differences(lambda z: ops.jacobian_softmax(z, method), z)


def test_categorical_crossentropy_matches_finite_differences():
    rng = np.random.default_rng(2)
    y_true = tf.constant(rng.random((4, 5)))  # soft targets: dL/dy_true is checked too
    y_pred = tf.constant(rng.uniform(0.05, 1.0, (4, 5)))
    _assert_matches_finite_differences(ops.categorical_crossentropy, y_true, y_pred)


@pytest.mark.parametrize("method", METHODS)
def test_chain_matches_finite_differences(method):
    x, w, y = _problem(3)
    _assert_matches_finite_differences(lambda x, w: _chain(method)(x, w, y), x, w)


# --------------------------------------------------------------------------- built-in autodiff
def _assert_equals_autodiff(fn, twin, *args):
    """Values and VJPs against autodiff of the built-in twin: the public checker, derived bars."""
    result = assert_gradients(fn, *args, reference=twin, dtypes=(args[0].dtype.name,))
    assert {"forward", "reference", "finite_diff"} == {e.check for e in result.entries}
    assert len({e.input for e in result.entries} - {"-"}) == len(args)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_bias_trick_dense_equals_builtin_autodiff(dtype):
    x, w, _ = _problem(4, dtype=dtype)
    _assert_equals_autodiff(ops.bias_trick_dense, autodiff.dense, x, w)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4), (7,)])
def test_jacobian_softmax_equals_builtin_autodiff(dtype, method, shape):
    z = tf.constant(3.0 * np.random.default_rng(6).normal(size=shape), dtype)
    _assert_equals_autodiff(lambda z: ops.jacobian_softmax(z, method), autodiff.softmax, z)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
def test_categorical_crossentropy_equals_builtin_autodiff(dtype, shape):
    rng = np.random.default_rng(7)
    y_true = tf.constant(rng.random(shape), dtype)
    y_pred = tf.constant(rng.uniform(0.01, 1.0, shape), dtype)
    assert ops.categorical_crossentropy(y_true, y_pred).shape == ()
    _assert_equals_autodiff(
        ops.categorical_crossentropy, autodiff.categorical_crossentropy, y_true, y_pred
    )


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("method", METHODS)
def test_chain_equals_builtin_autodiff(dtype, method):
    def builtin(x, w, y):
        return autodiff.categorical_crossentropy(y, autodiff.softmax(autodiff.dense(x, w)))

    x, w, y = _problem(8, dtype=dtype)
    _assert_equals_autodiff(_chain(method), builtin, x, w, y)


# --------------------------------------------------------------------------- Keras built-ins
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("keras_path", ["logits", "probabilities"])
def test_chain_equals_keras_dense_softmax_cce(dtype, method, keras_path):
    x, w, y = _problem(9, batch=8, inputs=6, units=5, dtype=dtype)
    dense = keras.layers.Dense(5, dtype=dtype.name)
    dense.build((None, 6))
    dense.set_weights(
        [w[:, :-1].numpy().T, w[:, -1].numpy()]
    )  # kernel = W[:, :-1]^T, bias = W[:, -1]
    loss_fn = keras.losses.CategoricalCrossentropy(dtype=dtype.name)

    with tf.GradientTape(persistent=True) as tape:
        z_keras = dense(x)
        tape.watch(z_keras)
        a_keras = keras.activations.softmax(z_keras)
        # Keras' softmax tags its output with the logits and its CCE then takes
        # the fused softmax-cross-entropy-from-logits path; an untagged copy
        # (tf.identity, eager) makes it clip to [1e-7, 1 - 1e-7] and renormalise
        # the probabilities instead. Test both paths.
        assert hasattr(a_keras, "_keras_logits")
        if keras_path == "probabilities":
            a_keras = tf.identity(a_keras)
            assert not hasattr(a_keras, "_keras_logits")
        keras_loss = loss_fn(y, a_keras)
    keras_kernel_grad, keras_bias_grad = tape.gradient(keras_loss, [dense.kernel, dense.bias])
    keras_z_grad = tape.gradient(keras_loss, z_keras)
    keras_w_grad = tf.concat([tf.transpose(keras_kernel_grad), keras_bias_grad[:, None]], axis=1)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(w)
        z = ops.bias_trick_dense(x, w)
        tape.watch(z)
        loss = ops.categorical_crossentropy(y, ops.jacobian_softmax(z, method))
    w_grad, z_grad = tape.gradient(loss, w), tape.gradient(loss, z)

    # Clipping must not bite, or the two losses differ by design.
    probabilities = tf.nn.softmax(z).numpy()
    assert probabilities.min() > 1e-7 and probabilities.max() < 1 - 1e-7
    # Keras renormalises yhat, so its gradient wrt yhat itself differs from
    # ours (-y/yhat/b) by a constant per sample; the softmax Jacobian cancels
    # any constant (J 1 = a - a (a . 1) = 0). So compare the gradients wrt the
    # logits and the weights, never wrt yhat.
    tol = TOL[dtype]
    np.testing.assert_allclose(z, z_keras, rtol=tol, atol=tol)
    np.testing.assert_allclose(loss, keras_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(z_grad, keras_z_grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(w_grad, keras_w_grad, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- NumPy reference
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ref_method", ["loop", "vectorized"])
def test_chain_equals_numpy_reference_backward(method, ref_method):
    from tfsoftmax import reference

    x, w, y = _problem(10, batch=7, inputs=6, units=4)
    learning_rate = 0.01
    # The reference is features-major: X is (features, batch), Y (classes, batch).
    dense = reference.Dense.from_weights(w.numpy(), method=ref_method)
    softmax = reference.Softmax(ref_method)
    Z = dense.forward(x.numpy().T)
    A = softmax.forward(Z)
    ref_loss = reference.cce(y.numpy().T, A)
    dZ = softmax.backward(reference.cce_gradient(y.numpy().T, A))
    dX = dense.backward(dZ, learning_rate)  # per-sample columns dL_i/dx_i

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, w])
        z = ops.bias_trick_dense(x, w)
        tape.watch(z)
        a = ops.jacobian_softmax(z, method)
        loss = ops.categorical_crossentropy(y, a)
    w_grad, x_grad, z_grad = (tape.gradient(loss, t) for t in (w, x, z))
    b = x.shape[0]

    np.testing.assert_allclose(z.numpy().T, Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.numpy().T, A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-12)
    # The reference divides by b inside Dense.backward; ours carries 1/b from
    # the loss. Both are the gradient of the mean loss, and give the same update.
    np.testing.assert_allclose(w_grad, dense.weights_gradient, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(w - learning_rate * w_grad, dense.weights, rtol=1e-12, atol=1e-12)
    # The reference's per-sample gradients are b times the mean loss's.
    np.testing.assert_allclose(b * z_grad.numpy().T, dZ, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b * x_grad.numpy().T, dX, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------- softmax methods, memory limit
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_softmax_methods_agree(dtype):
    rng = np.random.default_rng(11)
    z = tf.constant(4.0 * rng.normal(size=(9, 7)), dtype)
    upstream = tf.constant(rng.normal(size=(9, 7)), dtype)
    (jac_out, (jac_grad,)), (vjp_out, (vjp_grad,)) = (
        _grads(_weighted(lambda z, m=m: ops.jacobian_softmax(z, m), upstream), z) for m in METHODS
    )
    tol = {tf.float64: 1e-14, tf.float32: 1e-6}[dtype]
    np.testing.assert_allclose(jac_out, vjp_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(jac_grad, vjp_grad, rtol=tol, atol=tol)


def test_unknown_softmax_method_names_it_and_the_choices():
    assert ops.SOFTMAX_METHODS == ("jacobian", "vjp")
    with pytest.raises(ValueError, match=r"'jacobain'.*\('jacobian', 'vjp'\)"):
        ops.jacobian_softmax(tf.zeros((2, 3)), "jacobain")
    with pytest.raises(ValueError, match="None"):
        ops.jacobian_softmax(tf.zeros((2, 3)), None)


@pytest.fixture
def explicit_calls(monkeypatch):
    """Count calls of the explicit-Jacobian product."""
    calls = []
    real = ops._explicit_jacobian_product

    def spy(a, g):
        calls.append(a.shape)
        return real(a, g)

    monkeypatch.setattr(ops, "_explicit_jacobian_product", spy)
    return calls


def test_jacobian_limit_falls_back_to_vjp_with_a_warning(monkeypatch, explicit_calls):
    z = tf.constant(np.random.default_rng(12).normal(size=(4, 5)))
    upstream = tf.constant(np.random.default_rng(13).normal(size=(4, 5)))
    expected = _grads(_weighted(lambda z: ops.jacobian_softmax(z, "vjp"), upstream), z)[1][0]
    assert ops.JACOBIAN_MAX_ELEMENTS == 2**25

    monkeypatch.setattr(ops, "JACOBIAN_MAX_ELEMENTS", 4 * 5 * 5)  # exactly fits: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = _grads(_weighted(lambda z: ops.jacobian_softmax(z, "jacobian"), upstream), z)[1][0]
    assert len(explicit_calls) == 1
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=1e-14)

    monkeypatch.setattr(ops, "JACOBIAN_MAX_ELEMENTS", 4 * 5 * 5 - 1)  # one too many: fall back
    with pytest.warns(UserWarning, match="JACOBIAN_MAX_ELEMENTS = 99 .*vjp"):
        grad = _grads(_weighted(lambda z: ops.jacobian_softmax(z, "jacobian"), upstream), z)[1][0]
    assert len(explicit_calls) == 1  # not called again
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=1e-14)


def test_jacobian_limit_warns_once_per_trace(monkeypatch):
    monkeypatch.setattr(ops, "JACOBIAN_MAX_ELEMENTS", 10)

    @tf.function
    def grad(z):
        return _grads(lambda z: tf.reduce_sum(ops.jacobian_softmax(z) ** 2), z)[1][0]

    z = tf.ones((3, 4))
    with pytest.warns(UserWarning) as record:
        grad(z)
        grad(z + 1)  # same trace: no new warning
    assert len([r for r in record if "JACOBIAN_MAX_ELEMENTS" in str(r.message)]) == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_jacobian_limit_with_batch_known_only_at_run_time(monkeypatch, jit_compile):
    # The explicit branch is marked (+1000) so the gradient shows which branch ran.
    monkeypatch.setattr(ops, "JACOBIAN_MAX_ELEMENTS", 5 * 3 * 3)  # 5 samples of k = 3 fit
    real = ops._explicit_jacobian_product
    monkeypatch.setattr(ops, "_explicit_jacobian_product", lambda a, g: real(a, g) + 1000.0)

    @tf.function(jit_compile=jit_compile, input_signature=[tf.TensorSpec([None, 3], tf.float64)])
    def grad(z):
        return _grads(lambda z: tf.reduce_sum(ops.jacobian_softmax(z) * z), z)[1][0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the size is unknown at trace time: no warning
        small, large = grad(tf.ones((5, 3), tf.float64)), grad(tf.ones((6, 3), tf.float64))
    np.testing.assert_allclose(small, np.full((5, 3), 1000 + 1 / 3))  # explicit Jacobian
    np.testing.assert_allclose(large, np.full((6, 3), 1 / 3))  # vjp fallback


# --------------------------------------------------------------------------- argument checks
def test_bias_trick_dense_rejects_bad_shapes_and_dtypes():
    x, w, _ = _problem(14)  # x (6, 5), w (4, 6)
    with pytest.raises(ValueError, match="rank 2.*flatten"):
        ops.bias_trick_dense(tf.reshape(x, (2, 3, 5)), w)
    with pytest.raises(ValueError, match="rank 2"):
        ops.bias_trick_dense(x, tf.reshape(w, (4, 6, 1)))
    with pytest.raises(ValueError, match="inputs \\+ 1 = 6 columns"):
        ops.bias_trick_dense(x, w[:, :-1])
    with pytest.raises(TypeError, match="same dtype"):
        ops.bias_trick_dense(tf.cast(x, tf.float32), w)
    with pytest.raises(TypeError, match="int32"):
        ops.bias_trick_dense(tf.ones((2, 3), tf.int32), tf.ones((1, 4), tf.int32))


def test_bias_trick_dense_checks_unknown_shapes_at_run_time():
    spec = tf.TensorSpec(None, tf.float64)

    @tf.function(input_signature=[spec, spec])
    def dense(x, w):
        return ops.bias_trick_dense(x, w)

    x, w, _ = _problem(15)
    np.testing.assert_allclose(dense(x, w), autodiff.dense(x, w), rtol=1e-12)
    with pytest.raises(tf.errors.InvalidArgumentError, match="inputs \\+ 1 columns"):
        dense(x, w[:, :-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="x must be rank 2"):
        dense(tf.reshape(x, (2, 3, 5)), w)


def test_softmax_and_cce_reject_bad_arguments():
    with pytest.raises(ValueError, match="rank >= 1"):
        ops.jacobian_softmax(tf.constant(1.0))
    with pytest.raises(TypeError, match="int32"):
        ops.jacobian_softmax(tf.ones((2, 3), tf.int32))
    with pytest.raises(ValueError, match="same shape"):
        ops.categorical_crossentropy(tf.ones((2, 3)), tf.ones((2, 4)))
    with pytest.raises(ValueError, match="rank >= 1"):
        ops.categorical_crossentropy(1.0, tf.constant(1.0))


def test_cce_of_an_empty_batch_is_zero():
    loss, grads = _grads(ops.categorical_crossentropy, tf.zeros((0, 3)), tf.zeros((0, 3)))
    assert float(loss) == 0.0
    assert [g.shape for g in grads] == [(0, 3), (0, 3)]


# --------------------------------------------------------------------------- variables
def test_variables_as_arguments_eager_and_in_tf_function():
    x, w, y = _problem(16)
    variable = tf.Variable(w)
    expected = _grads(_chain("jacobian"), x, w, y)[1][1]

    def grad():
        with tf.GradientTape() as tape:
            loss = _chain("jacobian")(x, variable, y)
        return tape.gradient(loss, variable)

    np.testing.assert_allclose(grad(), expected, rtol=1e-12)
    np.testing.assert_allclose(tf.function(grad)(), expected, rtol=1e-12)
    np.testing.assert_allclose(tf.function(grad, jit_compile=True)(), expected, rtol=1e-12)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("method", METHODS)
def test_every_dtype_returns_its_dtype_and_finite_gradients(dtype, method):
    x, w, y = _problem(17, dtype=dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, w])
        z = ops.bias_trick_dense(x, w)
        tape.watch(z)
        a = ops.jacobian_softmax(z, method)
        tape.watch(a)
        loss = ops.categorical_crossentropy(y, a)
    assert z.dtype == a.dtype == loss.dtype == dtype
    assert loss.shape == ()
    grads = tape.gradient(loss, [x, w, z, a])
    assert all(g.dtype == dtype and _finite(g) for g in grads)
    # Half precision is close to the float64 answer, not a different one.
    ref_loss, (_, ref_w_grad, _) = _grads(
        _chain(method), *(tf.cast(t, tf.float64) for t in (x, w, y))
    )
    tol = {tf.float16: 1e-2, tf.bfloat16: 5e-2}.get(dtype, 1e-5)
    np.testing.assert_allclose(tf.cast(loss, tf.float64), ref_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(tf.cast(grads[1], tf.float64), ref_w_grad, rtol=tol, atol=tol)


def _assert_within_one_ulp(actual, exact, dtype):
    """``|actual - exact| <= eps(dtype) * |exact|`` (+1e-7 for values near 0)."""
    eps = np.finfo(np.float16).eps if dtype == tf.float16 else 2.0**-7  # bfloat16: 8-bit mantissa
    exact = np.asarray(exact, np.float64)
    error = np.abs(tf.cast(actual, tf.float64).numpy() - exact) / (eps * np.abs(exact) + 1e-7)
    assert error.max() <= 1.0, error.max()


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=lambda d: d.name)
@pytest.mark.parametrize("method", METHODS)
def test_half_precision_softmax_and_cce_are_computed_in_float32(dtype, method):
    # Computed in float32 and rounded once, outputs and gradients are within one
    # ulp of the exact (float64) answer for the same half-precision inputs;
    # computed natively in half precision the gradients are off by hundreds.
    rng = np.random.default_rng(19)
    z = tf.cast(3.0 * rng.normal(size=(64, 20)), dtype)
    upstream = tf.cast(rng.normal(size=(64, 20)), dtype)
    z64, upstream64 = tf.cast(z, tf.float64), tf.cast(upstream, tf.float64)
    _assert_within_one_ulp(ops.jacobian_softmax(z, method), autodiff.softmax(z64), dtype)
    z_grad = _grads(_weighted(lambda z: ops.jacobian_softmax(z, method), upstream), z)[1][0]
    exact_z_grad = _grads(_weighted(autodiff.softmax, upstream64), z64)[1][0]
    _assert_within_one_ulp(z_grad, exact_z_grad, dtype)

    y_true = tf.cast(rng.random((60, 20)), dtype)
    y_pred = tf.cast(rng.uniform(0.01, 1.0, (60, 20)), dtype)
    loss, grads = _grads(ops.categorical_crossentropy, y_true, y_pred)
    exact_loss, exact_grads = _grads(
        autodiff.categorical_crossentropy, *(tf.cast(t, tf.float64) for t in (y_true, y_pred))
    )
    _assert_within_one_ulp(loss, exact_loss, dtype)
    for mine, exact in zip(grads, exact_grads, strict=True):
        _assert_within_one_ulp(mine, exact, dtype)


# --------------------------------------------------------------------------- graph mode, XLA
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("method", METHODS)
def test_graph_and_xla_with_unknown_batch_equal_eager(dtype, method):
    def loss_and_grads(x, w, y):
        loss, (x_grad, w_grad, _) = _grads(_chain(method), x, w, y)
        return loss, x_grad, w_grad

    signature = [
        tf.TensorSpec([None, 5], dtype),
        tf.TensorSpec([4, 6], dtype),
        tf.TensorSpec([None, 4], dtype),
    ]
    graph = tf.function(loss_and_grads, input_signature=signature)
    xla = tf.function(loss_and_grads, input_signature=signature, jit_compile=True)
    tol = {tf.float64: 1e-12, tf.float32: 1e-5, tf.float16: 1e-2, tf.bfloat16: 5e-2}[dtype]
    for batch in (3, 8):  # one trace, two batch sizes
        x, w, y = _problem(18 + batch, batch=batch, dtype=dtype)
        eager = loss_and_grads(x, w, y)
        for compiled in (graph, xla):
            for mine, theirs in zip(compiled(x, w, y), eager, strict=True):
                assert mine.dtype == dtype and mine.shape == theirs.shape
                np.testing.assert_allclose(
                    tf.cast(mine, tf.float64), tf.cast(theirs, tf.float64), rtol=tol, atol=tol
                )
    assert graph.experimental_get_tracing_count() == 1


# ------------------------------------------------------------- y_hat = 0: never NaN or inf
def test_probability_floor_is_the_smallest_normal_number():
    assert ops.probability_floor(tf.float16) == 2.0**-14
    assert ops.probability_floor(tf.bfloat16) == 2.0**-126
    assert ops.probability_floor(tf.float32) == 2.0**-126
    assert ops.probability_floor(tf.float64) == 2.0**-1022


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_cce_at_zero_probability_is_clamped_not_nan(dtype):
    y_true = tf.constant([[1.0, 0.0], [0.0, 1.0]], dtype)
    y_pred = tf.constant([[0.0, 1.0], [0.0, 1.0]], dtype)  # sample 0 certain and wrong
    loss, (true_grad, pred_grad) = _grads(ops.categorical_crossentropy, y_true, y_pred)
    floor = ops.probability_floor(dtype)
    # Sample 0 contributes -log(floor), both 0 * log 0 entries contribute 0; b = 2.
    np.testing.assert_allclose(float(loss), -np.log(floor) / 2, rtol=1e-2)
    np.testing.assert_allclose(
        tf.cast(pred_grad, tf.float64), [[-1 / floor / 2, 0.0], [0.0, -0.5]], rtol=1e-2
    )
    np.testing.assert_allclose(
        tf.cast(true_grad, tf.float64),
        [[-np.log(floor) / 2, -0.0], [-np.log(floor) / 2, -0.0]],
        rtol=1e-2,
    )
    assert _finite(loss) and _finite(pred_grad) and _finite(true_grad)


def _assert_finite_at_extreme_logits(logits, labels, dtype, method):
    """Loss and gradients wrt y_pred, logits and the dense weights are all finite."""
    z0 = tf.constant(logits, dtype)
    y = tf.one_hot(labels, logits.shape[-1], dtype=dtype)
    batch = logits.shape[0]
    # The logits come out of a dense layer: x = I, W = [z0^T, 0] gives z = z0.
    x = tf.eye(batch, dtype=dtype)
    w = tf.concat([tf.transpose(z0), tf.zeros((logits.shape[1], 1), dtype)], axis=1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(w)
        z = ops.bias_trick_dense(x, w)
        tape.watch(z)
        a = ops.jacobian_softmax(z, method)
        tape.watch(a)
        loss = ops.categorical_crossentropy(y, a)
    grads = tape.gradient(loss, [a, z, w])
    assert _finite(loss) and _finite(a), (loss, a)
    for g in grads:
        assert g.dtype == dtype and _finite(g), g
    # Softmax still sums to 1 per row, so the logit gradient is (a - y)/b where the
    # true class keeps a probability above the floor, damped (not flipped) below.
    z_grad = tf.cast(grads[1], tf.float64).numpy()
    assert np.all(np.sign(z_grad[y.numpy() == 1]) <= 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("method", METHODS)
def test_no_nan_or_inf_at_logits_of_plus_minus_1e4(dtype, method):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0], [1e4, 1e4, -1e4]])
    # Labels on the smallest logit: true-class probabilities are exactly 0.
    _assert_finite_at_extreme_logits(logits, [1, 0, 2, 2], dtype, method)


# 40 examples in the ci profile (tests/conftest.py), 400 in the thorough one.
@settings(max_examples=settings().max_examples * 2 // 5, deadline=None)
@given(
    batch=st.integers(1, 6),
    classes=st.integers(2, 9),
    dtype=st.sampled_from(DTYPES),
    method=st.sampled_from(METHODS),
    scale=st.sampled_from([1.0, 30.0, 100.0, 1e3, 1e4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_no_nan_or_inf(batch, classes, dtype, method, scale, seed):
    rng = np.random.default_rng(seed)
    logits = np.clip(scale * rng.normal(size=(batch, classes)), -1e4, 1e4)
    _assert_finite_at_extreme_logits(logits, rng.integers(0, classes, batch), dtype, method)


# ------------------------------------------------------- float32: bars from eps, not guessed
#: float32's machine epsilon, 2**-23: the spacing of float32 numbers at 1.
EPS32 = float(np.finfo(np.float32).eps)
#: Allowed difference, in units of ``EPS32 * scale``, between the op and its autodiff twin.
FLOAT32_ULPS = 2


def _f64(t):
    return np.asarray(tf.cast(t, tf.float64))


def _assert_float32_bar(what, ours, theirs, scale):
    """``|ours - theirs| <= FLOAT32_ULPS * eps * scale`` entry by entry.

    ``scale`` is each entry's *rounding scale*: the sum of the absolute values
    of the terms that make it up, ``sum_j |t_j|``, evaluated in float64 from
    the float32 inputs. Rounding a computed sum (or product) perturbs it by at
    most a few ``eps * sum_j |t_j|`` -- a few ulps of the entry times its
    condition ``sum_j |t_j| / |sum_j t_j|`` -- whatever the summation order, so
    two correct float32 implementations agree to that (measured: at most
    1.35 ``eps * scale`` over these cases, the chain's ``dL/dW``).

    The bar is only useful if a small relative error shows: an entry without
    cancellation (``|value| >= scale / 2``) must exist. There a relative error
    of 1e-6, 8 float32 ulps of the value, is at least 4 ``eps * scale``, over
    the bar even after the 1.35 of honest rounding.
    """
    ours, theirs, scale = _f64(ours), _f64(theirs), np.asarray(scale, np.float64)
    error = np.abs(ours - theirs)
    worst = float(np.max(error / np.where(scale > 0, EPS32 * scale, np.inf), initial=0.0))
    assert np.all(error <= FLOAT32_ULPS * EPS32 * scale), f"{what}: {worst:.2f} eps * scale"
    assert np.max(np.abs(theirs) / np.where(scale > 0, scale, np.inf)) >= 0.5, what


def _float32_problem(seed=31, batch=6, inputs=5, units=4):
    x, w, y = _problem(seed, batch, inputs, units, dtype=tf.float32)
    upstream = tf.constant(np.random.default_rng(seed + 1).normal(size=(batch, units)), tf.float32)
    return x, w, y, upstream


def _softmax_grad_scale(a, g):
    """Rounding scale of ``a * (g - <a, g>)``: ``a * (|g| + <a, |g|>)``."""
    a, g = _f64(a), np.abs(_f64(g))
    return a * (g + np.sum(a * g, axis=-1, keepdims=True))


def test_float32_dense_within_two_ulps_of_autodiff():
    x, w, _, upstream = _float32_problem()
    ours, (our_dx, our_dw) = _grads(_weighted(ops.bias_trick_dense, upstream), x, w)
    _, (dx, dw) = _grads(_weighted(autodiff.dense, upstream), x, w)
    ax, aw, ag = np.abs(_f64(x)), np.abs(_f64(w)), np.abs(_f64(upstream))
    ones = np.ones((ax.shape[0], 1))
    _assert_float32_bar(
        "z", ops.bias_trick_dense(x, w), autodiff.dense(x, w), ax @ aw[:, :-1].T + aw[:, -1]
    )
    _assert_float32_bar("dL/dx", our_dx, dx, ag @ aw[:, :-1])
    _assert_float32_bar("dL/dW", our_dw, dw, ag.T @ np.hstack([ax, ones]))


@pytest.mark.parametrize("method", METHODS)
def test_float32_softmax_within_two_ulps_of_autodiff(method):
    rng = np.random.default_rng(32)
    z = tf.constant(rng.normal(size=(8, 7)), tf.float32)
    upstream = tf.constant(rng.normal(size=(8, 7)), tf.float32)
    ours, (our_dz,) = _grads(_weighted(lambda z: ops.jacobian_softmax(z, method), upstream), z)
    _, (dz,) = _grads(_weighted(autodiff.softmax, upstream), z)
    a = autodiff.softmax(z)
    # Both sides evaluate the same tf.nn.softmax: one ulp of each entry either way.
    _assert_float32_bar("a", ops.jacobian_softmax(z, method), a, _f64(a))
    _assert_float32_bar("dL/dz", our_dz, dz, _softmax_grad_scale(a, upstream))


def test_float32_cce_within_two_ulps_of_autodiff():
    rng = np.random.default_rng(33)
    y_true = tf.constant(rng.random((6, 5)), tf.float32)  # soft targets: dL/dy_true too
    y_pred = tf.constant(rng.uniform(0.05, 1.0, (6, 5)), tf.float32)
    ours, (our_dy, our_dp) = _grads(ops.categorical_crossentropy, y_true, y_pred)
    theirs, (dy, dp) = _grads(autodiff.categorical_crossentropy, y_true, y_pred)
    y, p, b = _f64(y_true), _f64(y_pred), 6
    # log is correctly rounded to about an ulp of its result, like * and /.
    _assert_float32_bar("L", ours, theirs, np.sum(y * np.abs(np.log(p))) / b)
    _assert_float32_bar("dL/dy_pred", our_dp, dp, y / p / b)
    _assert_float32_bar("dL/dy_true", our_dy, dy, np.abs(np.log(p)) / b)


@pytest.mark.parametrize("method", METHODS)
def test_float32_chain_within_two_ulps_of_autodiff(method):
    x, w, y, _ = _float32_problem(seed=34)
    ours, (our_dx, our_dw, _) = _grads(_chain(method), x, w, y)
    theirs, (dx, dw, _) = _grads(
        lambda x, w, y: autodiff.categorical_crossentropy(
            y, autodiff.softmax(autodiff.dense(x, w))
        ),
        x,
        w,
        y,
    )
    a = _f64(autodiff.softmax(autodiff.dense(x, w)))
    yy, ax, aw, b = _f64(y), np.abs(_f64(x)), np.abs(_f64(w)), x.shape[0]
    # dL/dz = J^T g with g = -y / a / b; its rounding scale carries on into dW and dx.
    # Both sides compute z and a with the same kernels (matmul, tf.nn.softmax), so
    # the loss differs only by the rounding of the sum of y log a.
    g_scale = _softmax_grad_scale(a, yy / a / b)
    ones = np.ones((b, 1))
    _assert_float32_bar("L", ours, theirs, np.sum(yy * np.abs(np.log(a))) / b)
    _assert_float32_bar("dL/dW", our_dw, dw, g_scale.T @ np.hstack([ax, ones]))
    _assert_float32_bar("dL/dx", our_dx, dx, g_scale @ aw[:, :-1])
