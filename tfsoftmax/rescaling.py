"""Models that scale their own input: uint8 images trained as they are stored.

MNIST's pixels are uint8 (0–255). The notebook min-max scales them once,
``x ← (x − xmin) / (xmax − xmin)`` in float32 (``xmin = 0``, ``xmax = 255`` on
the training set), which makes the data four times larger. A model whose first
layer does that scaling can instead be fed the uint8 array: the scaling runs
per batch, inside the compiled step, on the rows it needs.

* :class:`MinMaxRescaling` — a ``keras.layers.Rescaling`` computing exactly
  :func:`tfsoftmax.preprocessing.minmax_scale`'s float32 result,
  ``fl32((x − min) / (max − min))``, without a division per pixel: it
  computes ``(x − min) · (1 / (max − min))`` in float64 and rounds once to
  the layer's dtype. For integer ``x``, ``min`` and ``max`` (``max − min < 2²⁴``)
  that is bit-identical to the float32 division: ``q = (x − min)/(max − min)``
  is never a float32 rounding midpoint and lies at least ``2⁻²⁵/(max − min)``
  (relative) away from one, far more than float64's error of ``2⁻⁵²``. So a
  uint8 run trains on the very numbers the float32 run trains on. (A Keras
  ``Rescaling(1/255)`` multiplies in float32 by ``fl32(1/255)``: up to one ulp
  away, the same to the eye, not to the bit.) A float64 layer divides.
* :func:`scales_its_input` — whether a model begins with a rescaling layer:
  its first layer (after the ``keras.Input``) is a ``keras.layers.Rescaling``
  (this one or Keras' own, with any scale), looking into a nested model. Such a
  model is given integer images as they are; any other model refuses integer
  features (:func:`tfsoftmax.validation.reject_integer_features`), unless it
  declares integer token ids (:func:`tfsoftmax.model_io.takes_integer_input`).
  The rule looks at the layers, not at the input dtype: a ``keras.Input`` of
  dtype uint8 says what the model is fed, not that it scales it.
"""

import math

import numpy as np

from tfsoftmax._tf import keras

__all__ = ["MinMaxRescaling", "check_integer_images", "scales_its_input"]


@keras.saving.register_keras_serializable(package="tfsoftmax")
class MinMaxRescaling(keras.layers.Rescaling):
    """``(x − minimum) / (maximum − minimum)`` in the layer's dtype (module docstring).

    Args:
        minimum: the value mapped to 0 (the training set's minimum; MNIST: 0).
        maximum: the value mapped to 1 (MNIST: 255); ``maximum > minimum``,
            both finite.
        **kwargs: Keras layer arguments (``name``, ``dtype``).

    ``scale`` and ``offset`` (Keras' ``x · scale + offset``) describe the
    same affine map.
    """

    def __init__(self, minimum=0.0, maximum=255.0, **kwargs):
        minimum, maximum = float(minimum), float(maximum)
        if not (math.isfinite(minimum) and math.isfinite(maximum) and maximum > minimum):
            raise ValueError(
                f"MinMaxRescaling needs finite minimum < maximum, got {minimum} and {maximum}"
            )
        width = maximum - minimum
        super().__init__(scale=1.0 / width, offset=-minimum / width, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def call(self, inputs):
        ops, dtype = keras.ops, self.compute_dtype
        if dtype == "float64":
            values = ops.cast(inputs, dtype)
            if self.minimum:
                values = values - self.minimum
            return values / (self.maximum - self.minimum)
        values = ops.cast(inputs, "float64")
        if self.minimum:
            values = values - self.minimum
        return ops.cast(values * (1.0 / (self.maximum - self.minimum)), dtype)

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        return {**config, "minimum": self.minimum, "maximum": self.maximum}


def _first_layer(model):
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers:
        return None
    first = layers[0]
    return _first_layer(first) if isinstance(first, keras.Model) else first


def scales_its_input(model):
    """Whether ``model``'s first layer is a ``keras.layers.Rescaling`` (module docstring)."""
    if not isinstance(model, keras.Model):
        return False
    try:
        first = _first_layer(model)
    except (AttributeError, TypeError):  # a subclassed model without a layer list
        return False
    return isinstance(first, keras.layers.Rescaling)


def check_integer_images(x, name="x"):
    """A non-empty 2-D integer array ``(samples, pixels)``, kept as it is (no copy)."""
    array = np.asarray(x)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer pixels here, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, pixels), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); there is nothing to train on")
    return array
