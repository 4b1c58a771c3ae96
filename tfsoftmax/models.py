"""The notebook's classifier as a Keras model, built two ways from one weight matrix.

* ``"custom"`` — ``BiasTrickDense(units)`` → ``JacobianSoftmax(method)``, trained
  with tfsoftmax's ``CategoricalCrossentropy``: the hand-derived gradients.
* ``"keras"`` — ``keras.layers.Dense(units)`` → ``keras.layers.Softmax()``,
  trained with ``keras.losses.CategoricalCrossentropy``: TensorFlow's autodiff.

Both start from the same ``(units, inputs + 1)`` matrix ``W`` (bias in the last
column); the Keras one gets ``kernel = W[:, :-1].T`` and ``bias = W[:, -1]``.
"""

import numpy as np

from tfsoftmax._tf import keras
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax, from_bias_trick, to_bias_trick
from tfsoftmax.losses import CategoricalCrossentropy

__all__ = ["KINDS", "get_notebook_weights", "notebook_model", "set_notebook_weights"]

KINDS = ("custom", "keras")


def notebook_model(kind, initial_weights, *, dtype="float32", softmax_method="jacobian"):
    """``(model, loss)`` for ``kind`` in :data:`KINDS`, starting at ``initial_weights``."""
    weights = np.asarray(initial_weights)
    units, inputs = weights.shape[0], weights.shape[1] - 1
    if kind == "custom":
        dense = BiasTrickDense(units, dtype=dtype, name="dense")
        activation = JacobianSoftmax(method=softmax_method, dtype=dtype, name="softmax")
        loss = CategoricalCrossentropy(dtype=dtype)
    elif kind == "keras":
        dense = keras.layers.Dense(units, dtype=dtype, name="dense")
        activation = keras.layers.Softmax(dtype=dtype, name="softmax")
        loss = keras.losses.CategoricalCrossentropy(dtype=dtype)
    else:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    model = keras.Sequential(
        [keras.Input((inputs,), dtype=dtype), dense, activation], name=f"notebook_{kind}"
    )
    set_notebook_weights(model, weights)
    return model, loss


def get_notebook_weights(model):
    """The first layer's weights in the bias-trick layout ``(units, inputs + 1)``."""
    dense = model.layers[0]
    if isinstance(dense, BiasTrickDense):
        return dense.kernel.numpy().copy()
    kernel, bias = dense.get_weights()
    return to_bias_trick(kernel, bias)


def set_notebook_weights(model, weights):
    """Set the first layer's weights from the bias-trick layout ``(units, inputs + 1)``."""
    dense = model.layers[0]
    if isinstance(dense, BiasTrickDense):
        dense.kernel.assign(np.asarray(weights, dtype=dense.kernel.dtype))
    else:
        dense.set_weights([np.asarray(a) for a in from_bias_trick(weights)])
