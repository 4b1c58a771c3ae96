"""Models that scale their own input: uint8 images trained as they are stored.

MNIST's pixels are uint8 (0–255). The notebook min-max scales them once,
``x ← (x − xmin) / (xmax − xmin)`` in float32 (``xmin = 0``, ``xmax = 255`` on
the training set), which makes the data four times larger. A model whose first
layer does that scaling can instead be fed the uint8 array: the scaling runs
per batch, inside the compiled step, on the rows it needs.

* :class:`MinMaxRescaling` — a ``keras.layers.Rescaling`` computing exactly
  :func:`tfsoftmax.preprocessing.minmax_scale`'s result: the same operations in
  the same dtype, ``(cast(x) − cast(min)) / (cast(max) − cast(min))``, each
  correctly rounded, so a uint8 run trains on the very numbers the float32 run
  trains on, bit for bit. One detail makes that hold inside XLA: its algebraic
  simplifier turns a division by a *constant* into a multiplication by the
  rounded reciprocal, which for MNIST's ``x / 255`` is one ulp off for 126 of
  the 256 pixel values. The divisor is therefore read from a variable (a
  non-trainable ``tf.Variable`` the layer holds outside Keras' weight
  tracking, rebuilt from ``minimum`` and ``maximum`` on loading), which XLA
  cannot fold, and the division stays an IEEE division. (A Keras
  ``Rescaling(1/255)`` multiplies by ``fl32(1/255)``: the same to the eye, not
  to the bit.) Measured inside the compiled SGD loop on a 2-core CPU, gathering
  a uint8 batch and scaling it this way takes 43–55 µs per MNIST batch of 200,
  against 64–90 µs for gathering the float32 batch, and 58–88 µs for the same
  scaling computed in float64 and rounded once.
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

from tfsoftmax._tf import keras, tf

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
        self._divisor(self.compute_dtype)

    def call(self, inputs):
        dtype = self.compute_dtype
        values = tf.cast(inputs, dtype)
        if self.minimum:
            values = values - tf.constant(self.minimum, dtype)
        return values / self._divisor(dtype)

    def _divisor(self, dtype):
        """``cast(max) − cast(min)`` in ``dtype``, read from a variable (module docstring).

        One variable per compute dtype, made eagerly (``tf.init_scope``, so
        also when first needed inside a ``tf.function``) and kept out of Keras'
        and TensorFlow's tracking (``object.__setattr__``): it is not a weight,
        it is not saved, and a loaded layer rebuilds it from its config. The
        layer's own compute dtype gets its variable in ``__init__``, under the
        distribution strategy's scope the model is built in.
        """
        divisors = self.__dict__.get("_tfsoftmax_divisors")
        if divisors is None:
            divisors = {}
            object.__setattr__(self, "_tfsoftmax_divisors", divisors)
        if dtype not in divisors:
            with tf.init_scope():
                width = tf.constant(self.maximum, dtype) - tf.constant(self.minimum, dtype)
                divisors[dtype] = tf.Variable(width, trainable=False, name="minmax_divisor")
        return divisors[dtype]

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        return {**config, "minimum": self.minimum, "maximum": self.maximum}

    @classmethod
    def from_config(cls, config):
        """The layer of :meth:`get_config` (``Rescaling.from_config`` expects a
        ``scale``, which this config does not hold: ``minimum`` and ``maximum`` define it)."""
        return cls(**config)


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
