"""tfsoftmax's own gradients through the public checker, with its derived tolerances.

Every op, layer and the loss passes ``check_gradients`` / ``check_layer_gradients``
in float32 and float64 with the default tolerances (``8 eps max(1, cond)``,
nothing tuned here), against autodiff of the built-in twins
(:mod:`tfsoftmax.autodiff`) and float64 finite differences; the layers in
eager, ``tf.function`` and XLA, and under ``mixed_float16``. And a buggy
layer is caught on the weight it gets wrong.
"""

import numpy as np
import pytest

from tfsoftmax import autodiff, ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.testing import LAYER_POLICIES, MODES, check_gradients, check_layer_gradients

RNG = np.random.default_rng(3)
X = RNG.uniform(0.0, 1.0, size=(8, 12))
W = 0.1 * RNG.normal(size=(10, 13))
Z = RNG.normal(size=(8, 10))
Y = np.eye(10)[RNG.integers(0, 10, 8)]
P = 0.5 * np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True) + 0.05  # probabilities >= 0.05


def test_bias_trick_dense_passes():
    result = check_gradients(ops.bias_trick_dense, X, W, reference=autodiff.dense)
    assert result, result
    assert {e.input for e in result.entries if e.check == "finite_diff"} == {"x", "w"}


@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_jacobian_softmax_passes(method):
    result = check_gradients(
        lambda z: ops.jacobian_softmax(z, method), 3.0 * Z, reference=autodiff.softmax
    )
    assert result, result


@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_masked_softmax_passes(method):
    keep = RNG.random(Z.shape) > 0.3
    keep[0] = False
    layer = keras.layers.Softmax(dtype="float64")
    result = check_gradients(
        lambda z: ops.jacobian_softmax(z, method, mask=keep),
        Z,
        reference=lambda z: tf.cast(layer(tf.cast(z, tf.float64), mask=keep), z.dtype),
    )
    assert result, result


def test_categorical_crossentropy_passes_for_both_arguments():
    result = check_gradients(
        ops.categorical_crossentropy, Y, P, reference=autodiff.categorical_crossentropy
    )
    assert result, result
    assert {e.input for e in result.entries if e.check == "reference"} == {"y_true", "y_pred"}


@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_the_chain_passes(method):
    def chain(x, w):
        return ops.categorical_crossentropy(
            Y, ops.jacobian_softmax(ops.bias_trick_dense(x, w), method)
        )

    def builtin(x, w):
        return autodiff.categorical_crossentropy(Y, autodiff.softmax(autodiff.dense(x, w)))

    assert check_gradients(chain, X, W, reference=builtin)


def test_the_keras_loss_passes():
    loss = CategoricalCrossentropy()
    result = check_gradients(
        lambda y_true, y_pred: loss(y_true, y_pred),
        Y,
        P,
        reference=autodiff.categorical_crossentropy,
    )
    assert result, result


def test_the_ops_pass_the_second_order_too():
    """Their gradient functions are TensorFlow ops of the inputs: differentiable, and right."""
    for fn, args, twin in (
        (ops.bias_trick_dense, (X[:4, :5], W[:3, :6]), autodiff.dense),
        (lambda z: ops.jacobian_softmax(z, "jacobian"), (Z[:4, :4],), autodiff.softmax),
        (lambda z: ops.jacobian_softmax(z, "vjp"), (Z[:4, :4],), autodiff.softmax),
        (ops.categorical_crossentropy, (Y[:4], P[:4]), autodiff.categorical_crossentropy),
    ):
        result = check_gradients(fn, *args, reference=twin, order=2)
        assert result, result
        assert {e.check for e in result.entries if e.order == 2} == {"finite_diff", "reference"}


# --------------------------------------------------------------------------- layers
def test_bias_trick_dense_layer_passes_every_policy_and_mode():
    result = check_layer_gradients(BiasTrickDense(7, kernel_initializer="notebook"), (5, 9))
    assert result, result
    cells = {(e.dtype, e.mode, e.input) for e in result.entries if e.check == "finite_diff"}
    weights = {e.input for e in result.entries} - {"inputs", "-"}
    assert len(weights) == 1 and next(iter(weights)).endswith("kernel")
    assert cells == {
        (policy, mode, name)
        for policy in LAYER_POLICIES
        for mode in MODES
        for name in ("inputs", *weights)
    }
    mixed = result.worst(dtype="mixed_float16", check="finite_diff")
    assert mixed.tolerance > 1e-3  # float16's eps = 2**-10 sets the bar


@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_jacobian_softmax_layer_passes(method):
    result = check_layer_gradients(JacobianSoftmax(method=method), (4, 6), modes=("eager", "xla"))
    assert result, result
    assert {e.input for e in result.entries if e.check == "finite_diff"} == {"inputs"}


class _WrongScale(keras.layers.Layer):
    """``y = x * exp(s)``; the gradient wrt ``s`` forgets to sum over the batch (uses the mean)."""

    def build(self, input_shape):
        self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="s")

    def call(self, x):
        return _wrong_scale(x, tf.cast(tf.convert_to_tensor(self.s), x.dtype))


@tf.custom_gradient
def _wrong_scale(x, s):
    y = x * tf.exp(s)
    return y, lambda g: (g * tf.exp(s), tf.reduce_mean(g * y, axis=0))


def test_a_wrong_layer_gradient_is_caught_on_its_weight_in_every_mode():
    result = check_layer_gradients(_WrongScale(), (6, 4), policies=("float64",))
    assert not result
    (weight,) = {e.input for e in result.failures}
    assert weight.split("/")[-1] == "s"
    assert {e.mode for e in result.failures} == set(MODES)
    assert {e.check for e in result.failures} == {"finite_diff"}
    assert all(e.ok for e in result.entries if e.input == "inputs")


class _Float64Only(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.dtype_policy.name == "mixed_float16":
            raise ValueError("this layer does not support mixed precision")

    def call(self, x):
        return tf.sin(x)


def test_a_policy_the_layer_refuses_is_skipped_not_failed():
    result = check_layer_gradients(_Float64Only(), (3, 2), modes=("eager",))
    skipped = [e for e in result.entries if e.status == "skipped"]
    assert [e.dtype for e in skipped] == ["mixed_float16"]
    assert "does not support mixed precision" in skipped[0].note
    assert result, result
