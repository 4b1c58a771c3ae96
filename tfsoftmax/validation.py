"""Input checks, in one place: the trainer, the comparison, the reference, the figures.

Every public entry point validates its arguments *before* it touches any
state, so a bad call leaves weights, checkpoints and files exactly as they
were. Each check raises :class:`ValueError` with a message that names the
argument and says what was expected, and returns the checked value (converted
where that is the point: an ``int``, a ``float``, a NumPy array or dtype). The
checks are NumPy-only and run once per call (never per step).

* numbers and names: :func:`check_positive_int`, :func:`check_learning_rate`,
  :func:`check_seed`, :func:`check_choice`, :func:`check_float_dtype`;
* arrays: :func:`check_features` (batch-major training features; one sweep,
  :func:`inspect_features`),
  :func:`check_matrix` (any finite 2-D array), :func:`check_finite`,
  :func:`check_fits_dtype`, :func:`is_one_hot`;
* labels: :func:`check_labels` (one-hot or integer training labels),
  :func:`check_class_indices`, :func:`check_label_pair`;
* what the figures plot: :func:`check_losses`, :func:`check_images`
  (``(N, 784)`` or ``(N, 28, 28)``), :func:`check_bias_trick_weights`
  (``(units, 784 + 1)``).
"""

import math
import numbers
import warnings

import numpy as np

__all__ = [
    "IMAGE_SIDE",
    "check_bias_trick_weights",
    "check_choice",
    "check_class_indices",
    "check_features",
    "check_finite",
    "check_fits_dtype",
    "check_float_dtype",
    "check_images",
    "check_label_pair",
    "check_labels",
    "check_learning_rate",
    "check_learning_rate_in_dtype",
    "check_losses",
    "check_matrix",
    "check_positive_int",
    "check_rng",
    "check_seed",
    "inspect_features",
    "is_one_hot",
    "reject_integer_features",
]

#: Side of an MNIST image, in pixels.
IMAGE_SIDE = 28


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


def check_learning_rate_in_dtype(value, cast, dtype_name, name="learning_rate"):
    """``value`` (already checked by :func:`check_learning_rate`) stays a usable
    step in the model's dtype: ``cast`` — ``value`` as that dtype holds it — is
    finite and > 0. ``1e39`` is inf in float32, ``1e5`` in float16, and
    ``1e-8`` is 0 in float16: refused before training, not found after it."""
    if not math.isfinite(cast):
        raise ValueError(
            f"{name} {value:g} overflows {dtype_name}, the model's dtype (it becomes {cast}); "
            f"use a smaller {name}"
        )
    if cast <= 0:
        raise ValueError(
            f"{name} {value:g} underflows {dtype_name}, the model's dtype (it becomes 0); "
            f"use a larger {name}"
        )
    return value


def check_choice(name, value, choices):
    """``value`` is one of ``choices`` (strings): ``name must be one of a, b, got 'c'``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_float_dtype(dtype, name="dtype"):
    """A floating-point NumPy dtype (float16, float32, float64, ...), as ``np.dtype``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise ValueError(f"{name} must be a floating-point dtype, got {dtype!r}") from error
    if not np.issubdtype(resolved, np.floating):
        raise ValueError(f"{name} must be a floating-point dtype (float32, float64), got {dtype!r}")
    return resolved


def check_finite(name, array):
    """No NaN or inf anywhere in ``array``: ``name contains NaN or inf``."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def reject_integer_features(name, array):
    """Integer pixels (MNIST's uint8, 0-255) are refused: scale them first, as the notebook does."""
    if array.dtype.kind in "biu":
        raise ValueError(
            f"{name} has integer dtype {array.dtype}; expected floating-point features. "
            "Scale images to [0, 1] first (tfsoftmax.datasets.preprocess does the "
            "notebook's min-max scaling)."
        )
    return array


def check_matrix(name, array, rows=None, cols=None, why_rows="", why_cols=""):
    """A non-empty, finite, real 2-D array with ``rows`` rows and ``cols`` columns if given.

    ``why_rows``/``why_cols`` end the message of a count that does not match
    (``" (one per sample in X)"``). Used by the features-major reference.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (features-major), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name} has {array.shape[0]} rows but {rows} are expected{why_rows}")
    if cols is not None and array.shape[1] != cols:
        raise ValueError(f"{name} has {array.shape[1]} columns but {cols} are expected{why_cols}")
    return check_finite(name, array)


def is_one_hot(labels, axis):
    """Whether every slice of ``labels`` along ``axis`` is 0/1 with exactly one 1."""
    return bool(np.isin(labels, (0, 1)).all() and (labels.sum(axis=axis) == 1).all())


def check_features(x, name="x"):
    """A non-empty 2-D floating-point array with only finite values.

    Integer image arrays (such as MNIST's uint8 pixels, 0–255) are rejected
    rather than trained on silently at the wrong scale: scale them first, as
    the notebook does (``tfsoftmax.datasets.preprocess``).
    """
    array, _, _, warning = inspect_features(x, name)
    if warning is not None:
        warnings.warn(warning, UserWarning, stacklevel=3)
    return array


def inspect_features(x, name="x"):
    """:func:`check_features`' checks in one sweep over the data; returns
    ``(array, low, high, warning)``: the array, its smallest and largest value,
    and the unscaled-pixels warning's text (or None), not yet issued.

    One sweep: the array is read in blocks of about a megabyte, each block's
    ``min`` and ``max`` taken while it is in cache. NaN propagates through both
    and ``±inf`` shows in one of them, so the values are all finite exactly
    when ``low`` and ``high`` are.
    """
    array = reject_integer_features(name, np.asarray(x))
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); there is nothing to train on")
    low, high = _blockwise(array, np.min, min), _blockwise(array, np.max, max)
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    warning = None
    if low >= 0 and 1 < high <= 255 and _all_whole(array):
        warning = (
            f"{name} looks like unscaled 0-255 pixel values (whole numbers up to "
            f"{high:g}); the notebook trains on pixels scaled to [0, 1] "
            "(tfsoftmax.datasets.preprocess). Scale them, or ignore this if the "
            "features really are counts."
        )
    return array, low, high, warning


#: Elements per block of :func:`_blocks` (a megabyte of float32).
_BLOCK_ELEMENTS = 1 << 18


def _blocks(array):
    """Row blocks of a 2-D array, about :data:`_BLOCK_ELEMENTS` elements each."""
    rows = max(1, _BLOCK_ELEMENTS // array.shape[1])
    for start in range(0, array.shape[0], rows):
        yield array[start : start + rows]


def _blockwise(array, reduce, combine):
    """``combine`` of ``reduce`` over the blocks, as a Python float (NaN kept)."""
    values = [float(reduce(block)) for block in _blocks(array)]
    if any(math.isnan(value) for value in values):
        return math.nan
    return combine(values)


def _all_whole(array):
    """Every value a whole number (stops at the first block that is not)."""
    return all(bool(np.all(np.round(block) == block)) for block in _blocks(array))


def check_fits_dtype(array, limit, dtype_name, name="x", largest=None):
    """Every value of ``array`` stays finite when cast to a dtype whose largest
    finite value is ``limit`` (float16: 65504). ``largest``: ``max |array|``
    when already known (no pass over the data then)."""
    if float(np.finfo(array.dtype).max) <= float(limit):  # Python floats: no cast to array.dtype
        return array
    if largest is None:
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


def check_rng(rng, name="rng"):
    """``np.random.default_rng(rng)`` for a generator, bit generator, seed
    sequence, ``None`` or a seed ``≥ 0``; anything else is a ``ValueError`` naming ``name``."""
    if not isinstance(rng, np.random.Generator | np.random.BitGenerator | np.random.SeedSequence):
        check_seed(rng, name)
    return np.random.default_rng(rng)


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
    if not is_one_hot(labels, axis=1):
        raise ValueError(f"{name} is not one-hot: every row must hold a single 1 and zeros")
    return labels


# --------------------------------------------------------------------------- for the figures
def check_losses(losses, name="losses"):
    """A non-empty 1-D sequence of finite numbers (one loss per epoch), as float64."""
    try:
        values = np.asarray(losses, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a sequence of numbers ({error})") from error
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per epoch), got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} is empty: nothing to plot")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{name} has non-finite values (NaN or inf) at epoch(s) {(bad + 1).tolist()[:10]}; "
            "the run diverged or was interrupted"
        )
    return values


def check_class_indices(labels, name, num_classes=None):
    """1-D integer class indices (whole-number floats accepted), as int64; each
    in ``[0, num_classes)`` when ``num_classes`` is given."""
    values = np.asarray(labels)
    if values.ndim != 1:
        hint = " (one-hot? pass np.argmax(labels, axis=-1))" if values.ndim == 2 else ""
        raise ValueError(f"{name} must be 1-D class indices, got shape {values.shape}{hint}")
    as_int = None
    if values.size == 0 or values.dtype.kind in "iu":
        as_int = values.astype(np.int64)
    elif values.dtype.kind == "f" and np.all(np.isfinite(values)):
        as_int = values.astype(np.int64)
        as_int = as_int if np.all(as_int == values) else None
    if as_int is None:
        raise ValueError(f"{name} must hold integer class indices, got dtype {values.dtype}")
    outside = as_int.size and (as_int.min() < 0 or as_int.max() >= (num_classes or 0))
    if num_classes is not None and outside:
        raise ValueError(
            f"{name} has labels outside [0, {num_classes}): min {as_int.min()}, max {as_int.max()}"
        )
    return as_int


def check_label_pair(y_true, y_pred):
    """Two non-empty class-index arrays of the same length, as int64."""
    y_true = check_class_indices(y_true, "y_true")
    y_pred = check_class_indices(y_pred, "y_pred")
    if y_true.size == 0:
        raise ValueError("y_true is empty: no samples")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}"
        )
    return y_true, y_pred


def check_images(images, count, side=IMAGE_SIDE):
    """``count`` finite batch-major images ``(N, side**2)`` or ``(N, side, side)``, as
    ``(N, side, side)`` float64."""
    pixels = side * side
    try:
        values = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"images must be a numeric array ({error})") from error
    if values.ndim == 2 and values.shape[1] == pixels:
        values = values.reshape(-1, side, side)
    elif not (values.ndim == 3 and values.shape[1:] == (side, side)):
        hint = ""
        if values.ndim == 2 and values.shape[0] == pixels:
            hint = f" (features-major {pixels} x N? pass images.T)"
        raise ValueError(
            f"images must have shape (N, {pixels}) or (N, {side}, {side}), got {values.shape}{hint}"
        )
    if values.shape[0] != count:
        raise ValueError(f"images holds {values.shape[0]} images but y_true has {count} labels")
    return check_finite("images", values)


def check_bias_trick_weights(weights, inputs=IMAGE_SIDE * IMAGE_SIDE):
    """Finite weights ``(units, inputs + 1)``, bias in the last column, as float64."""
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"weights must be a numeric array ({error})") from error
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != inputs + 1:
        raise ValueError(
            f"weights must have shape (units, {inputs} + 1) with the bias in the last "
            f"column, got {values.shape}"
        )
    return check_finite("weights", values)
