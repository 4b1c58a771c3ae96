"""The notebook's three formulas written with TensorFlow built-ins: the autodiff twins.

Each custom-gradient op of :mod:`tfsoftmax.ops` is checked against the same
forward written here with plain built-ins, whose gradient TensorFlow derives
by itself (autodiff). This module is the one place those twins are written;
the gradient check, the device check and the tests all use it::

    z = x W[:, :-1]^T + W[:, -1]              dense(x, w)
    a = softmax(z)                            softmax(z)          (tf.nn.softmax)
    L_i = -Σ_k y_ik log a_ik                  per_sample_categorical_crossentropy(y, a)
    L = (1/b) Σ_i L_i                         categorical_crossentropy(y, a)

No floor or clipping: these are the textbook formulas, for probabilities
away from 0.
"""

from tfsoftmax._tf import tf

__all__ = [
    "categorical_crossentropy",
    "dense",
    "per_sample_categorical_crossentropy",
    "softmax",
]


def dense(x, w):
    """``x W[:, :-1]^T + W[:, -1]``: the bias-trick product, ``(batch, units)``."""
    return tf.matmul(x, w[:, :-1], transpose_b=True) + w[:, -1]


def softmax(z, axis=-1):
    """``exp(z) / Σ exp(z)`` along ``axis``: TensorFlow's ``tf.nn.softmax``."""
    return tf.nn.softmax(z, axis=axis)


def per_sample_categorical_crossentropy(y, p):
    """``-Σ_k y_k log p_k`` along the last axis, one value per sample."""
    return -tf.reduce_sum(y * tf.math.log(p), axis=-1)


def categorical_crossentropy(y, p):
    """The batch mean of :func:`per_sample_categorical_crossentropy`, a scalar."""
    return tf.reduce_mean(per_sample_categorical_crossentropy(y, p))
