"""JacobianSoftmax and ops.jacobian_softmax with masks and over several axes.

Values against ``keras.layers.Softmax``; gradients (float64, both methods)
against autodiff of ``keras.layers.Softmax`` and against finite differences of
our own op (:func:`tfsoftmax.testing.assert_gradients`); the timestep mask of
a sequence model passed on to the loss, which then skips the padded steps
exactly as with ``keras.layers.Activation("softmax")``.
"""

import numpy as np
import pytest

from tfsoftmax import ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.testing import assert_gradients

METHODS = ops.SOFTMAX_METHODS
RNG = np.random.default_rng(2024)
Z3 = RNG.normal(size=(3, 4, 5))  # float64 logits

# (axis, mask) pairs: position masks of every broadcasting kind, and several axes.
CASES = {
    "full mask": (-1, RNG.random((3, 4, 5)) > 0.4),
    "fully masked rows": (
        -1,
        np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]], bool),
    ),
    "float mask (1, 1, 5)": (-1, np.array([[[0.9, 0.2, 1.0, 0.0, 0.7]]])),
    "mask (5,)": (-1, np.array([True, False, True, True, False])),
    "axis 1, mask (4, 1)": (1, np.array([[1], [0], [1], [1]], bool)),
    "axes (1, 2)": ((1, 2), None),
    "axes (0, 2) with mask": ((2, 0), RNG.random((3, 1, 5)) > 0.3),
    "all three axes": ((0, 1, 2), None),
}


def keras_softmax(z, axis, mask):
    layer = keras.layers.Softmax(axis=axis, dtype="float64")
    return layer(z) if mask is None else layer(z, mask=tf.constant(mask))


def ours(z, axis, mask, method):
    return ops.jacobian_softmax(z, method, axis=axis, mask=mask)


def jacobian(fn, z):
    """The full Jacobian ``d fn(z) / d z`` (``tape.jacobian``, traced once), ``(out, in)``."""

    @tf.function
    def full_jacobian(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            out = fn(z)
        return tape.jacobian(out, z)

    return full_jacobian(tf.constant(z)).numpy().reshape(z.size, z.size)


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_values_are_keras_softmax(case, method):
    axis, mask = CASES[case]
    expected = keras_softmax(Z3, axis, mask).numpy()
    np.testing.assert_allclose(ours(Z3, axis, mask, method), expected, rtol=1e-14, atol=1e-16)
    layer = JacobianSoftmax(axis=axis, method=method, dtype="float64")
    actual = layer(Z3) if mask is None else layer(Z3, mask=mask)
    np.testing.assert_allclose(actual, expected, rtol=1e-14, atol=1e-16)


def test_masked_positions_are_zero_and_a_fully_masked_row_is_all_zeros():
    _, mask = CASES["fully masked rows"]
    a = JacobianSoftmax(dtype="float64")(Z3, mask=mask).numpy()
    assert np.all(a[:, ~mask] == 0.0)
    np.testing.assert_array_equal(a[:, 1], 0.0)  # the fully masked row
    np.testing.assert_allclose(a[:, [0, 2, 3]].sum(axis=-1), 1.0, rtol=1e-15)


def test_several_axes_normalise_each_group_together():
    a = JacobianSoftmax(axis=(0, 2), dtype="float64")(Z3).numpy()
    np.testing.assert_allclose(a.sum(axis=(0, 2)), np.ones(4), rtol=1e-14)
    group = Z3[:, 1, :]
    np.testing.assert_allclose(a[:, 1, :], np.exp(group) / np.exp(group).sum(), rtol=1e-14)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_gradients_match_keras_autodiff_and_finite_differences(case, method):
    axis, mask = CASES[case]
    # Every one-hot upstream gradient (the full Jacobian) against autodiff of
    # keras.layers.Softmax, and random ones against float64 finite differences.
    result = assert_gradients(
        lambda z: ours(z, axis, mask, method),
        Z3,
        reference=lambda z: keras_softmax(z, axis, mask),
        dtypes=("float64",),
        upstream="basis",
    )
    assert {e.check for e in result.entries} == {"forward", "reference", "finite_diff"}
    if mask is not None:  # masked logits get no gradient, masked outputs pass none back
        ours_j = jacobian(lambda z: ours(z, axis, mask, method), Z3)
        keep = np.broadcast_to(np.asarray(mask) > 0.5, Z3.shape).ravel()
        assert np.all(ours_j[:, ~keep] == 0.0) and np.all(ours_j[~keep, :] == 0.0)


@pytest.mark.parametrize("method", METHODS)
def test_masked_jacobian_is_diag_a_minus_a_a_transposed(method):
    z = RNG.normal(size=(1, 6))
    mask = np.array([[1, 0, 1, 1, 0, 1]], bool)
    a = ours(z, -1, mask, method).numpy()[0]
    np.testing.assert_allclose(
        jacobian(lambda z: ours(z, -1, mask, method), z), np.diag(a) - np.outer(a, a), atol=1e-16
    )


def test_half_precision_with_a_mask_keeps_its_dtype_and_zeros():
    z = tf.constant(Z3, tf.float16)
    _, mask = CASES["full mask"]
    for method in METHODS:
        a = ops.jacobian_softmax(z, method, mask=mask)
        assert a.dtype == tf.float16
        assert np.all(a.numpy()[~mask] == 0.0)
        np.testing.assert_allclose(a, keras_softmax(Z3, -1, mask), atol=1e-3)


def test_op_rejects_bad_axes_and_masks():
    with pytest.raises(ValueError, match="out of range"):
        ops.jacobian_softmax(Z3, axis=(0, 3))
    with pytest.raises(ValueError, match="same axis twice"):
        ops.jacobian_softmax(Z3, axis=(2, -1))
    with pytest.raises(ValueError, match="non-empty tuple of integers"):
        ops.jacobian_softmax(Z3, axis=())
    with pytest.raises(ValueError, match="broadcastable"):
        ops.jacobian_softmax(Z3, mask=np.ones((3, 4, 2), bool))
    with pytest.raises(ValueError, match="must not have more dimensions"):
        ops.jacobian_softmax(Z3, mask=np.ones((1, 3, 4, 5), bool))


# --------------------------------------------------------------------------- timestep masks
def test_a_timestep_mask_is_passed_on_not_applied():
    mask = tf.constant([[True, True, False, False], [True, False, False, False], [True] * 4])
    layer = JacobianSoftmax(dtype="float64")
    a = layer(Z3, mask=mask)
    np.testing.assert_allclose(a, tf.nn.softmax(Z3), rtol=1e-14)
    assert layer.supports_masking
    np.testing.assert_array_equal(layer.compute_mask(Z3, mask), mask)


def _sequence_model(head, mask_zero=True):
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(20, 8, mask_zero=mask_zero, dtype="float64"),
            BiasTrickDense(5, dtype="float64"),
            head,
        ]
    )


def _padded_batch():
    rng = np.random.default_rng(3)
    tokens = rng.integers(1, 20, size=(16, 6))
    lengths = rng.integers(2, 7, size=16)
    tokens[np.arange(6) >= lengths[:, None]] = 0  # padding at the end
    labels = np.eye(5)[rng.integers(0, 5, size=(16, 6))]
    return tokens, labels


@pytest.mark.parametrize("method", METHODS)
def test_sequence_model_loss_skips_padding_like_keras_activation_softmax(method):
    tokens, labels = _padded_batch()
    ours_model = _sequence_model(JacobianSoftmax(method=method, dtype="float64"))
    keras_model = _sequence_model(keras.layers.Activation("softmax", dtype="float64"))
    keras_model.set_weights(ours_model.get_weights())
    for model in (ours_model, keras_model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.5), loss=CategoricalCrossentropy(dtype="float64")
        )
    loss_ours = ours_model.evaluate(tokens, labels, batch_size=16, verbose=0)
    loss_keras = keras_model.evaluate(tokens, labels, batch_size=16, verbose=0)
    np.testing.assert_allclose(loss_ours, loss_keras, rtol=1e-13)

    # Without the mask the padded steps count, and the loss is another number.
    unmasked = _sequence_model(keras.layers.Activation("softmax", dtype="float64"), mask_zero=False)
    unmasked.set_weights(ours_model.get_weights())
    unmasked.compile(loss=CategoricalCrossentropy(dtype="float64"))
    assert abs(unmasked.evaluate(tokens, labels, verbose=0) - loss_keras) > 1e-3

    history_ours = ours_model.fit(tokens, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
    history_keras = keras_model.fit(
        tokens, labels, batch_size=8, epochs=3, shuffle=False, verbose=0
    )
    np.testing.assert_allclose(
        history_ours.history["loss"], history_keras.history["loss"], rtol=1e-12
    )
    for w_ours, w_keras in zip(ours_model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_allclose(w_ours, w_keras, rtol=1e-11, atol=1e-14)


def _weighted_sum_gradient(method, axis, mask):
    z = tf.constant(Z3)
    weights = tf.constant(np.arange(Z3.size, dtype=float).reshape(Z3.shape))
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(weights * ops.jacobian_softmax(z, method, axis=axis, mask=mask))
    return tape.gradient(loss, z)


def test_the_jacobian_method_builds_the_group_jacobian_and_respects_the_limit(monkeypatch):
    calls = []
    real = ops._explicit_jacobian_product
    monkeypatch.setattr(
        ops, "_explicit_jacobian_product", lambda a, g: calls.append(a.shape) or real(a, g)
    )
    _, mask = CASES["axes (0, 2) with mask"]
    expected = _weighted_sum_gradient("vjp", (0, 2), mask)
    assert calls == []
    np.testing.assert_allclose(
        _weighted_sum_gradient("jacobian", (0, 2), mask), expected, rtol=1e-13
    )
    assert calls == [tf.TensorShape([4, 15])]  # 4 groups of 3 x 5 entries: 15 x 15 Jacobians
    monkeypatch.setattr(ops, "JACOBIAN_MAX_ELEMENTS", 4 * 15 * 15 - 1)
    with pytest.warns(UserWarning, match="JACOBIAN_MAX_ELEMENTS"):
        fallback = _weighted_sum_gradient("jacobian", (0, 2), mask)
    assert len(calls) == 1
    np.testing.assert_allclose(fallback, expected, rtol=1e-13)
