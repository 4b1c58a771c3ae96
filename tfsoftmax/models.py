"""The notebook's classifier as a Keras model, built two ways from one weight matrix.

* ``"custom"`` — ``BiasTrickDense(units)`` → ``JacobianSoftmax(method)``, trained
  with tfsoftmax's ``CategoricalCrossentropy``: the hand-derived gradients.
* ``"keras"`` — ``keras.layers.Dense(units)`` → ``keras.layers.Softmax()``,
  trained with ``keras.losses.CategoricalCrossentropy``: TensorFlow's autodiff.

Both start from the same ``(units, inputs + 1)`` matrix ``W`` (bias in the last
column); the Keras one gets ``kernel = W[:, :-1].T`` and ``bias = W[:, -1]``.

``input_dtype="uint8"`` gives the same model for raw pixels: a
``keras.Input`` of that dtype, then
:class:`tfsoftmax.rescaling.MinMaxRescaling` ``(0, 255)`` — the notebook's
min-max scaling with MNIST's training minimum and maximum, bit-identical to
:func:`tfsoftmax.datasets.preprocess`'s float32 — so
:func:`tfsoftmax.training.train_sgd` and ``model.fit`` train on the uint8
images as they are stored (a quarter of the memory) with the float32 run's numbers.
"""

import numpy as np

from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax, from_bias_trick, to_bias_trick
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.rescaling import MinMaxRescaling

__all__ = ["KINDS", "get_notebook_weights", "notebook_model", "set_notebook_weights"]

KINDS = ("custom", "keras")


def _scaling_layers(input_dtype, dtype):
    """``[]`` for float inputs; for an integer ``input_dtype``, the pixel scaling."""
    if input_dtype is None:
        return []
    try:
        integer = tf.as_dtype(input_dtype).is_integer
    except TypeError:
        integer = False
    if not integer:
        raise ValueError(
            f"input_dtype must be None (float inputs) or an integer dtype such as 'uint8', "
            f"got {input_dtype!r}"
        )
    return [MinMaxRescaling(0, 255, dtype=dtype, name="rescaling")]


def notebook_model(
    kind, initial_weights, *, dtype="float32", softmax_method="jacobian", input_dtype=None
):
    """``(model, loss)`` for ``kind`` in :data:`KINDS`, starting at ``initial_weights``.

    ``input_dtype``: None (inputs in ``dtype``, scaled beforehand) or an integer
    dtype such as ``"uint8"``: the model then takes raw 0–255 pixels of that
    dtype and scales them itself (module docstring).
    """
    scaling = _scaling_layers(input_dtype, dtype)
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
        [keras.Input((inputs,), dtype=input_dtype or dtype), *scaling, dense, activation],
        name=f"notebook_{kind}",
    )
    set_notebook_weights(model, weights)
    return model, loss


def _dense_layer(model):
    """The first layer with weights (after a rescaling layer, if any)."""
    return next(layer for layer in model.layers if layer.weights)


def get_notebook_weights(model):
    """The dense layer's weights in the bias-trick layout ``(units, inputs + 1)``."""
    dense = _dense_layer(model)
    if isinstance(dense, BiasTrickDense):
        return dense.kernel.numpy().copy()
    kernel, bias = dense.get_weights()
    return to_bias_trick(kernel, bias)


def set_notebook_weights(model, weights):
    """Set the dense layer's weights from the bias-trick layout ``(units, inputs + 1)``."""
    dense = _dense_layer(model)
    if isinstance(dense, BiasTrickDense):
        dense.kernel.assign(np.asarray(weights, dtype=dense.kernel.dtype))
    else:
        dense.set_weights([np.asarray(a) for a in from_bias_trick(weights)])
