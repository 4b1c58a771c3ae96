"""BiasTrickDense next to keras.layers.Dense: activation=, bias_* arguments, sparse
input, what it refuses on purpose, and the integer-input policy of ops, layers and loss."""

import warnings

import numpy as np
import pytest

from tfsoftmax import ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax, from_bias_trick, to_bias_trick
from tfsoftmax.losses import CategoricalCrossentropy


def twins(units, inputs, seed=0, dtype="float64", **kwargs):
    """A built BiasTrickDense and a keras.layers.Dense with the same weights and arguments."""
    ours = BiasTrickDense(units, dtype=dtype, **kwargs)
    theirs = keras.layers.Dense(units, dtype=dtype, **kwargs)
    ours.build((None, inputs))
    theirs.build((None, inputs))
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(units, inputs + 1))
    ours.set_weights([w])
    theirs.set_weights(list(from_bias_trick(w)))
    return ours, theirs


# --------------------------------------------------------------------------- activation=
@pytest.mark.parametrize("activation", ["relu", "softmax", "gelu", keras.activations.tanh])
def test_activation_is_applied_after_the_product_like_dense(activation):
    ours, theirs = twins(4, 6, activation=activation)
    x = np.random.default_rng(1).normal(size=(5, 6))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-13, atol=1e-15)
    config = ours.get_config()
    assert config["activation"] == keras.activations.serialize(keras.activations.get(activation))
    clone = BiasTrickDense.from_config(config)
    assert clone.get_config() == config


def test_bias_arguments_act_on_the_bias_column_like_dense():
    kwargs = dict(
        bias_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(0.1),
        bias_regularizer=keras.regularizers.L1(0.3),
        bias_constraint=keras.constraints.NonNeg(),
    )
    ours, theirs = twins(3, 5, **kwargs)
    np.testing.assert_allclose(sum(ours.losses), sum(theirs.losses), rtol=1e-13)
    w = ours.kernel.numpy()
    constrained = ours.kernel.constraint(w).numpy()
    np.testing.assert_array_equal(constrained[:, :-1], w[:, :-1])
    np.testing.assert_array_equal(constrained[:, -1], np.maximum(w[:, -1], 0.0))
    fresh = BiasTrickDense(3, bias_initializer="ones")
    fresh.build((None, 5))
    np.testing.assert_array_equal(fresh.kernel.numpy()[:, -1], 1.0)
    with pytest.raises(ValueError, match="leave bias_initializer unset"):
        BiasTrickDense(3, kernel_initializer="notebook", bias_initializer="ones")


# --------------------------------------------------------------------------- sparse input
def _sparse(shape, density=0.3, seed=2):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=shape) * (rng.random(shape) < density)
    return tf.sparse.from_dense(dense), dense


def test_sparse_input_matches_dense_values_and_gradients():
    ours, theirs = twins(4, 7, activation="tanh")
    x, dense_x = _sparse((6, 7))
    upstream = tf.constant(np.random.default_rng(3).normal(size=(6, 4)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x.values)
        out_ours, out_theirs = ours(x), theirs(x)
        loss_ours = tf.reduce_sum(upstream * out_ours)
        loss_theirs = tf.reduce_sum(upstream * out_theirs)
    np.testing.assert_allclose(out_ours, out_theirs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out_ours, ours(dense_x), rtol=1e-12, atol=1e-14)
    g_kernel, g_bias = tape.gradient(loss_theirs, [theirs.kernel, theirs.bias])
    np.testing.assert_allclose(
        tape.gradient(loss_ours, ours.kernel),
        to_bias_trick(tf.convert_to_tensor(g_kernel), g_bias),
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(
        tape.gradient(loss_ours, x.values), tape.gradient(loss_theirs, x.values), rtol=1e-12
    )


def test_sparse_input_of_rank_three_and_in_a_compiled_model():
    x, dense_x = _sparse((2, 3, 5))
    layer = BiasTrickDense(4, dtype="float64")
    np.testing.assert_allclose(layer(x), layer(dense_x), rtol=1e-13, atol=1e-15)
    op_in_function = tf.function(lambda x: ops.bias_trick_dense(x, layer.kernel))
    flat, flat_dense = _sparse((6, 5))
    np.testing.assert_allclose(
        op_in_function(flat), ops.bias_trick_dense(flat_dense, layer.kernel), rtol=1e-13
    )
    with pytest.raises(ValueError, match="sparse x of rank 2"):
        ops.bias_trick_dense(x, layer.kernel)


# --------------------------------------------------------------------------- refused on purpose
@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"use_bias": False}, "bias trick \\*is\\* the bias.*keras.layers.Dense"),
        ({"lora_rank": 4}, "LoRA.*keras.layers.Dense"),
        ({"quantization_config": object()}, "quantization.*keras.layers.Dense"),
        ({"dtype": "int8_from_float32"}, "quantization.*keras.layers.Dense"),
    ],
)
def test_what_dense_has_and_this_layer_lacks_is_refused_naming_dense(kwargs, words):
    with pytest.raises(ValueError, match=words):
        BiasTrickDense(3, **kwargs)


def test_enable_lora_and_quantize_are_refused_and_model_quantize_skips_the_layer():
    layer = BiasTrickDense(3)
    layer.build((None, 4))
    with pytest.raises(NotImplementedError, match="LoRA.*keras.layers.Dense"):
        layer.enable_lora(2)
    with pytest.raises(NotImplementedError, match="quantize.*keras.layers.Dense"):
        layer.quantize("int8")
    model = keras.Sequential([keras.Input((4,)), BiasTrickDense(3)])
    before = model.get_weights()[0].copy()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.quantize("int8")
    assert any("keras.layers.Dense" in str(w.message) for w in record)
    np.testing.assert_array_equal(model.get_weights()[0], before)


# --------------------------------------------------------------------------- integer inputs
def test_integer_inputs_are_refused_by_ops_layers_and_loss_with_type_error():
    w = tf.zeros((3, 5))
    pixels = np.full((2, 4), 255, np.uint8)
    for x in (pixels, pixels.astype(np.int64), [[255, 0, 1, 2]]):
        with pytest.raises(TypeError, match="x must have dtype .*; got (uint8|int64|int32)"):
            ops.bias_trick_dense(x, w)
    with pytest.raises(TypeError, match="needs floating-point inputs, got dtype uint8"):
        BiasTrickDense(3)(pixels)
    with pytest.raises(TypeError, match="needs floating-point inputs, got dtype int64"):
        JacobianSoftmax()(pixels.astype(np.int64))
    with pytest.raises(
        TypeError, match="y_pred must be floating-point probabilities, got dtype int64"
    ):
        CategoricalCrossentropy()(np.eye(2), np.eye(2, dtype=np.int64))
    # Python floats take w's dtype, exactly (no float32 round trip).
    z = ops.bias_trick_dense([[0.1, 0.2, 0.3, 0.4]], tf.ones((1, 5), tf.float64))
    assert z.dtype == tf.float64 and float(z[0, 0]) == 0.1 + 0.2 + 0.3 + 0.4 + 1.0
    # y_true may be integer one-hot labels.
    assert np.isclose(
        float(CategoricalCrossentropy()(np.eye(2, dtype=int), np.full((2, 2), 0.5))), np.log(2)
    )


def test_dtype_errors_are_type_errors_also_when_constructing():
    for make in (
        lambda: BiasTrickDense(3, dtype="int32"),
        lambda: JacobianSoftmax(dtype="uint8"),
        lambda: CategoricalCrossentropy(dtype="int32"),
    ):
        with pytest.raises(TypeError, match="`dtype` must be float"):
            make()


def test_a_keras_model_casts_uint8_to_its_input_dtype_as_with_keras_dense():
    """Documented decision: a model casts to its keras.Input dtype before any layer runs."""
    pixels = np.random.default_rng(4).integers(0, 256, size=(3, 4)).astype(np.uint8)
    ours = keras.Sequential([keras.Input((4,)), BiasTrickDense(2)])
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    theirs.set_weights(list(from_bias_trick(ours.get_weights()[0])))
    np.testing.assert_allclose(
        ours.predict(pixels, verbose=0), ours.predict(pixels.astype("float32"), verbose=0)
    )
    np.testing.assert_allclose(
        ours.predict(pixels, verbose=0), theirs.predict(pixels, verbose=0), rtol=1e-5
    )
