"""tfsoftmax: a hand-derived softmax classifier as real TensorFlow and Keras software.

The NumPy parts (:mod:`tfsoftmax.reference`, :mod:`tfsoftmax.datasets`) import
without TensorFlow. The TensorFlow parts are
importable when TensorFlow is installed; the layers and loss are registered
with Keras on ``import tfsoftmax``; a missing TensorFlow is reported with the
extra to install when a TensorFlow part is used (see :mod:`tfsoftmax._tf`).
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# Register tfsoftmax's layers, initializer and loss with Keras, so that
# ``keras.models.load_model("m.keras")`` works after a plain ``import tfsoftmax``
# (their @register_keras_serializable decorators run on import). This costs
# TensorFlow's import time; without TensorFlow the NumPy parts still import,
# and the TensorFlow parts say which extra to install when they are used.
# (An import hook that waits for ``import keras`` was tried: TensorFlow imports
# Keras half-way through its own initialisation, so the hook cannot register.)
if importlib.util.find_spec("tensorflow") is not None:
    try:
        from tfsoftmax import layers as _layers  # noqa: F401
        from tfsoftmax import losses as _losses  # noqa: F401
    except ImportError:  # pragma: no cover - a broken TensorFlow install
        pass

# Public name -> module that defines it. Resolved on first attribute access.
_LAZY_EXPORTS = {
    "bias_trick_dense": "tfsoftmax.ops",
    "jacobian_softmax": "tfsoftmax.ops",
    "categorical_crossentropy": "tfsoftmax.ops",
    "BiasTrickDense": "tfsoftmax.layers",
    "JacobianSoftmax": "tfsoftmax.layers",
    "NotebookInitializer": "tfsoftmax.layers",
    "to_bias_trick": "tfsoftmax.layers",
    "from_bias_trick": "tfsoftmax.layers",
    "CategoricalCrossentropy": "tfsoftmax.losses",
    "train_sgd": "tfsoftmax.training",
    "History": "tfsoftmax.training",
    "load_mnist": "tfsoftmax.datasets",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name):
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tfsoftmax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
