"""Check your own gradients with tfsoftmax.testing: a user's custom ops, one buggy, one right.

Two hand-written ``tf.custom_gradient`` ops that have nothing to do with
tfsoftmax -- ``swish(x) = x sigmoid(x)`` and a row-wise ``logsumexp`` -- each
in a deliberately wrong and a correct version, and a small Keras layer of
your own. The check compares each gradient with autodiff of the plain
formula and with float64 finite differences, and prints a table naming the
input, the check and the size of the error. Run it::

    python examples/check_your_gradients.py

It exits 0 when every wrong gradient is caught and every right one passes.
"""

import keras
import numpy as np
import tensorflow as tf

import tfsoftmax  # noqa: F401  (selects Keras' TensorFlow backend)
from tfsoftmax.testing import assert_gradients, check_gradients, check_layer_gradients


# --------------------------------------------------------------------------- swish
@tf.custom_gradient
def swish_wrong(x):
    s = tf.sigmoid(x)
    return x * s, lambda g: g * s  # forgets the x s (1 - s) term


@tf.custom_gradient
def swish(x):
    s = tf.sigmoid(x)
    return x * s, lambda g: g * (s + x * s * (1 - s))  # d/dx x s = s + x s (1 - s)


def swish_reference(x):
    return x * tf.sigmoid(x)


# --------------------------------------------------------------------------- logsumexp
@tf.custom_gradient
def logsumexp_wrong(z):
    out = tf.reduce_logsumexp(z, axis=-1)
    # Divides by the batch size as if the output were a batch mean: wrong.
    return out, lambda g: g[:, None] * tf.nn.softmax(z) / tf.cast(tf.shape(z)[0], z.dtype)


@tf.custom_gradient
def logsumexp(z):
    out = tf.reduce_logsumexp(z, axis=-1)
    return out, lambda g: g[:, None] * tf.nn.softmax(z)  # d lse / dz = softmax(z)


def logsumexp_reference(z):
    return tf.math.log(tf.reduce_sum(tf.exp(z), axis=-1))


# --------------------------------------------------------------------------- a Keras layer
class Scale(keras.layers.Layer):
    """``y = x * exp(log_scale)`` with a hand-written gradient for both."""

    def build(self, input_shape):
        self.log_scale = self.add_weight(shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        log_scale = tf.cast(tf.convert_to_tensor(self.log_scale), x.dtype)
        return _scale(x, log_scale)


@tf.custom_gradient
def _scale(x, log_scale):
    y = x * tf.exp(log_scale)
    return y, lambda g: (g * tf.exp(log_scale), tf.reduce_sum(g * y, axis=0))


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))

    wrong = check_gradients(swish_wrong, x, reference=swish_reference)
    print("swish, wrong gradient:\n", wrong, "\n", sep="")
    assert not wrong and wrong.worst(check="reference").error > 0.1

    assert_gradients(swish, x, reference=swish_reference)  # raises GradientCheckError if wrong
    assert_gradients(swish, x, order=2)  # the gradient of the gradient, too
    print("swish: correct in float32 and float64, first and second order\n")

    wrong = check_gradients(logsumexp_wrong, x, reference=logsumexp_reference)
    print("logsumexp, wrong gradient:\n", wrong.summary(), "\n", sep="")
    assert not wrong
    assert_gradients(logsumexp, x, reference=logsumexp_reference)
    print("logsumexp: correct\n")

    result = check_layer_gradients(Scale(), (6, 5), modes=("eager", "xla"))
    print("Scale layer:", result.summary())
    assert result


if __name__ == "__main__":
    main()
