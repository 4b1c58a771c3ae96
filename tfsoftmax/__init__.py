"""tfsoftmax: a hand-derived softmax classifier as real TensorFlow and Keras software.

The NumPy parts (:mod:`tfsoftmax.reference`, :mod:`tfsoftmax.datasets`) import
without TensorFlow. The TensorFlow parts (ops, layers, losses, the trainer) are
imported lazily on first use, so ``import tfsoftmax`` stays cheap and a missing
TensorFlow is reported with the extra to install (see :mod:`tfsoftmax._tf`).
"""

import importlib

__version__ = "0.1.0"

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
