"""One guarded import of TensorFlow and Keras for every TensorFlow part of tfsoftmax.

TensorFlow is an *extra* (``cpu``, ``gpu`` or ``tf``) so that CPU and GPU users
each get the right build. Importing a TensorFlow part without it fails here,
with a message that names the extra to install, instead of a bare
``ModuleNotFoundError`` from deep inside the package.

Keras 3 runs on several backends; tfsoftmax's ops are TensorFlow ops, so the
backend must be ``tensorflow``. It is selected here unless the user already
chose one, and a different choice is reported clearly.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_INSTALL_HINT = (
    "tfsoftmax's TensorFlow parts need TensorFlow, which is installed through an extra: "
    "pip install 'tfsoftmax[cpu]' (CPU only), 'tfsoftmax[gpu]' (NVIDIA GPU, Linux) "
    "or 'tfsoftmax[tf]' (the default tensorflow build)."
)

try:
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(f"{_INSTALL_HINT} (import failed: {error})") from error

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover
    raise ImportError(
        "tfsoftmax needs Keras' TensorFlow backend, but KERAS_BACKEND is "
        f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

__all__ = ["tf", "keras"]
