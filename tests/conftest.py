"""Shared test settings: quiet TensorFlow, deterministic Hypothesis, the real MNIST loaded once."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# One BLAS thread: on 2 cores, OpenBLAS threads and TensorFlow's thread pools
# otherwise fight over the CPUs and NumPy tests slow down several-fold.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# --- Hypothesis: the same examples on every run unless asked otherwise ---------------

from hypothesis import settings  # noqa: E402

# "ci" (the default): derandomized -- each test's examples derive from the test
# itself, so a run passes or fails the same way every time, and nothing is
# read from or written to an example database. "thorough"
# (TFSOFTMAX_HYPOTHESIS=thorough): fresh random examples, ten times as many.
# Tests size their example counts as a fraction of the profile's max_examples
# (``settings().max_examples``), so both profiles scale them.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("thorough", derandomize=False, database=None, max_examples=1000)
settings.load_profile(os.environ.get("TFSOFTMAX_HYPOTHESIS", "ci"))


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


# --- every test starts from the same random state ----------------------------------


@pytest.fixture(autouse=True)
def _seeded_random_state():
    """Seed Python's, NumPy's global and (when loaded) TensorFlow's and Keras' generators.

    Tests draw their data from seeded ``np.random.default_rng(seed)``; this
    fixes what they do not seed themselves -- Keras' default initializers
    (``glorot_uniform`` without a seed), ``model.fit``'s shuffling -- so a
    test passes or fails the same way on every run. TensorFlow is not
    imported for tests that have not loaded it.
    """
    import random
    import sys

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(0)
    elif "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(0)
