"""What :func:`tfsoftmax.training.train_sgd` needs to know about a model: its dtype,
its number of classes and what its input is.

* The output must be one ``(batch, classes)`` tensor of probabilities. It is
  read from ``model.compute_output_shape((None, features))``; a model that
  does not implement it (a subclassed ``keras.Model``, as ``fit`` trains
  them) is called once on the first sample and its output's shape is used.
* The input is floating point, unless the model says it takes integers: a
  ``keras.Input`` of an integer dtype, or an ``Embedding`` as its first
  layer. Such a model trains on integer token ids (``(samples, length)``),
  every other model refuses integer features (scale images first).
"""

import numpy as np

from tfsoftmax._tf import keras, tf
from tfsoftmax.divergence import non_finite_names

__all__ = ["check_token_ids", "input_dtype", "model_dtype_and_classes", "takes_integer_input"]


def input_dtype(model):
    """The dtype of the model's declared input (``keras.Input``), or None."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return tf.as_dtype(inputs[0].dtype)


def takes_integer_input(model):
    """Whether ``model`` takes integer features: an integer ``keras.Input``, or an
    ``Embedding`` first (module docstring)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    declared = input_dtype(model)
    if declared is not None:
        return declared.is_integer
    layers = model.layers
    return bool(layers) and isinstance(layers[0], keras.layers.Embedding)


def check_token_ids(x, name="x"):
    """A non-empty 2-D integer array ``(samples, length)`` of token ids ≥ 0."""
    array = np.asarray(x)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids for this model, got {array.dtype}")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (samples, length) array, {array.shape}")
    if array.min() < 0:
        raise ValueError(f"{name} holds negative token ids (min {array.min()})")
    return array


def _output_shape(model, sample):
    """The model's output shape for ``(None, *sample.shape[1:])`` inputs."""
    try:
        return model.compute_output_shape((None, *sample.shape[1:]))
    except NotImplementedError:
        output = model(sample)
        if isinstance(output, list | tuple | dict):
            return [tuple(part.shape) for part in _parts(output)]
        return (None, *tuple(output.shape)[1:])


def _parts(output):
    return list(output.values()) if isinstance(output, dict) else list(output)


def model_dtype_and_classes(model, sample):
    """Build ``model`` on ``sample`` (one batch of features) if needed; return
    ``(variable dtype, classes)``.

    Raises:
        ValueError: not a Keras model, no trainable variables, NaN or inf
            weights, or an output that is not one ``(batch, classes)`` tensor.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    if not model.built or not model.trainable_variables:
        model(sample)
    if not model.trainable_variables:
        raise ValueError("model has no trainable variables: there is nothing to train")
    names = [getattr(v, "path", v.name) for v in model.variables]
    bad = non_finite_names([v.numpy() for v in model.variables], names)
    if bad:
        raise ValueError(f"the model's weights hold NaN or inf ({', '.join(bad[:3])})")
    output_shape = _output_shape(model, sample)
    if (
        isinstance(output_shape, list | tuple)
        and output_shape
        and isinstance(output_shape[0], tuple | list)
    ):
        raise ValueError("model must have a single output of class probabilities")
    if len(output_shape) != 2 or output_shape[-1] is None:
        raise ValueError(
            f"model must output (batch, classes) probabilities, its output shape is "
            f"{tuple(output_shape)}"
        )
    return model.trainable_variables[0].dtype, int(output_shape[-1])
