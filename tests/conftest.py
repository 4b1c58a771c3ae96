"""Shared test settings: quiet TensorFlow, and the real MNIST loaded once."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# One BLAS thread: on 2 cores, OpenBLAS threads and TensorFlow's thread pools
# otherwise fight over the CPUs and NumPy tests slow down several-fold.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# --- the real MNIST, loaded once per test session (tfsoftmax.datasets) ------------

import pytest  # noqa: E402


def _read_only(*arrays):
    """Session data is shared by every test: make accidental in-place edits fail loudly."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


@pytest.fixture(scope="session")
def mnist():
    """``((x_train, y_train), (x_test, y_test))`` exactly as
    ``keras.datasets.mnist.load_data()`` returns them (uint8), from
    :func:`tfsoftmax.datasets.load_mnist` — offline, verified by checksum.
    The arrays are read-only; copy before modifying."""
    from tfsoftmax.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    _read_only(x_train, y_train, x_test, y_test)
    return (x_train, y_train), (x_test, y_test)


def _preprocessed(mnist, layout, dtype):
    from tfsoftmax.datasets import preprocess

    (x_train, y_train), (x_test, y_test) = mnist
    data = preprocess(x_train, y_train, x_test, y_test, layout=layout, dtype=dtype)
    _read_only(data.x_train, data.y_train, data.x_test, data.y_test)
    _read_only(data.labels_train, data.labels_test)
    return data


@pytest.fixture(scope="session")
def mnist_features_major(mnist):
    """The notebook's preprocessing in its own layout, for the NumPy reference:
    a :class:`tfsoftmax.datasets.Preprocessed` with float64 ``x_* (784, N)`` in
    [0, 1] (train min/max), one-hot ``y_* (10, N)``, integer ``labels_* (N,)``."""
    return _preprocessed(mnist, "features-major", "float64")


@pytest.fixture(scope="session")
def mnist_batch_major(mnist):
    """The same preprocessing in Keras' layout, for TensorFlow: float32
    ``x_* (N, 784)``, one-hot ``y_* (N, 10)``, integer ``labels_* (N,)``."""
    return _preprocessed(mnist, "batch-major", "float32")
