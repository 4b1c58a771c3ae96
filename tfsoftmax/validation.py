"""Input checks shared by the trainer, the comparison and the CLI.

Every public entry point validates its arguments *before* it touches any
state, so a bad call leaves weights, checkpoints and files exactly as they
were. Each check raises :class:`ValueError` with a message that names the
argument and says what was expected. The checks are NumPy-only and run once
per call (never per step).
"""

import math
import numbers
import warnings

import numpy as np


def check_positive_int(name, value):
    """``value`` is an integer ≥ 1 (``bool`` is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (≥ 1), got {value}")
    return int(value)


def check_learning_rate(value, name="learning_rate"):
    """A finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def check_features(x, name="x"):
    """A non-empty 2-D floating-point array with only finite values.

    Integer image arrays (such as MNIST's uint8 pixels, 0–255) are rejected
    rather than trained on silently at the wrong scale: scale them first, as
    the notebook does (``tfsoftmax.datasets.preprocess``).
    """
    array = np.asarray(x)
    if array.dtype.kind in "biu":
        raise ValueError(
            f"{name} has integer dtype {array.dtype}; expected floating-point features. "
            "Scale images to [0, 1] first (tfsoftmax.datasets.preprocess does the "
            "notebook's min-max scaling)."
        )
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); there is nothing to train on")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    if _looks_like_unscaled_pixels(array):
        warnings.warn(
            f"{name} looks like unscaled 0-255 pixel values (whole numbers up to "
            f"{array.max():g}); the notebook trains on pixels scaled to [0, 1] "
            "(tfsoftmax.datasets.preprocess). Scale them, or ignore this if the "
            "features really are counts.",
            UserWarning,
            stacklevel=3,
        )
    return array


def _looks_like_unscaled_pixels(array):
    """Floats that are all whole numbers in [0, 255] with a maximum above 1."""
    low, high = array.min(), array.max()
    if not (low >= 0 and 1 < high <= 255):
        return False
    return bool(np.all(np.round(array) == array))


def check_fits_dtype(array, limit, dtype_name, name="x"):
    """Every value of ``array`` stays finite when cast to a dtype whose largest
    finite value is ``limit`` (float16: 65504)."""
    if np.finfo(array.dtype).max <= limit:
        return array
    largest = float(np.max(np.abs(array)))
    if largest > limit:
        raise ValueError(
            f"{name} holds values up to {largest:g}, beyond the largest {dtype_name} "
            f"({limit:g}), the model's dtype; they would become inf. Scale the features."
        )
    return array


def check_seed(seed, name="seed"):
    """``None`` or an integer ≥ 0, as ``np.random.default_rng`` takes."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def check_labels(y, num_samples, num_classes, name="y"):
    """One-hot ``(num_samples, num_classes)`` labels, or integer class indices.

    Integer labels of shape ``(num_samples,)`` in ``[0, num_classes)`` are
    one-hot encoded; a 2-D array must be one-hot already (every row 0/1 with
    exactly one 1). Returns the one-hot array.
    """
    labels = np.asarray(y)
    if labels.ndim == 1 and labels.dtype.kind in "iu":
        if labels.shape[0] != num_samples:
            raise ValueError(f"{name} has {labels.shape[0]} labels but x has {num_samples} samples")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} has labels outside [0, {num_classes}): "
                f"min {labels.min()}, max {labels.max()}"
            )
        return np.eye(num_classes, dtype=np.float32)[labels]
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be one-hot (samples, classes) or integer labels (samples,), "
            f"got shape {labels.shape} and dtype {labels.dtype}"
        )
    if labels.shape[0] != num_samples:
        raise ValueError(f"{name} has {labels.shape[0]} rows but x has {num_samples} samples")
    if labels.shape[1] != num_classes:
        raise ValueError(
            f"{name} has {labels.shape[1]} classes but the model outputs {num_classes}"
        )
    is_binary = np.all((labels == 0) | (labels == 1))
    if not is_binary or not np.all(labels.sum(axis=1) == 1):
        raise ValueError(f"{name} is not one-hot: every row must hold a single 1 and zeros")
    return labels
