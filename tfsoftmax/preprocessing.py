"""The notebook's preprocessing of MNIST, in NumPy only.

Min-max scaling by the *training* set's min and max (applied to both sets),
flattening 28×28 → 784 and one-hot labels — in the batch-major layout Keras
uses (``x`` is samples × features) or the features-major layout of the notebook
and :mod:`tfsoftmax.reference` (``x`` is features × samples).

Example::

    from tfsoftmax.datasets import load_mnist
    from tfsoftmax.preprocessing import preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="features-major",
                      dtype="float64")
    data.x_train.shape, data.y_train.shape  # (784, 60000), (10, 60000)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tfsoftmax.alignment import aligned_empty
from tfsoftmax.validation import check_float_dtype, check_positive_int

__all__ = [
    "LAYOUTS",
    "Preprocessed",
    "first_samples",
    "flatten",
    "minmax_scale",
    "one_hot",
    "preprocess",
]

LAYOUTS = ("batch-major", "features-major")


def minmax_scale(x, *, xmin=None, xmax=None, dtype="float32") -> np.ndarray:
    """``(x - xmin) / (xmax - xmin)`` as a new ``dtype`` array, as the notebook scales
    (64-byte aligned: :mod:`tfsoftmax.alignment`).

    ``xmin``/``xmax`` default to ``x``'s own min and max; pass the *training*
    set's to scale a test set the same way (test values may then fall outside
    [0, 1] — that is the notebook's behaviour, kept).

    Raises:
        ValueError: ``x`` is empty, or ``xmax == xmin`` (a constant image set:
            the scale is undefined), or ``xmax < xmin``.
    """
    dtype = check_float_dtype(dtype)
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError("cannot min-max scale an empty array")
    lo = x.min() if xmin is None else xmin
    hi = x.max() if xmax is None else xmax
    if hi == lo:
        raise ValueError(
            f"cannot min-max scale: min == max == {lo} (a constant image set), "
            "so (x - min) / (max - min) divides by zero"
        )
    if hi < lo:
        raise ValueError(f"cannot min-max scale: max {hi} < min {lo}")
    # A copy (astype's rounding), 64-byte aligned so train_sgd can use it uncopied.
    out = aligned_empty(x.shape, dtype)
    np.copyto(out, x, casting="unsafe")
    out -= dtype.type(lo)
    out /= dtype.type(hi) - dtype.type(lo)
    return out


def flatten(x) -> np.ndarray:
    """``(N, 28, 28)`` → ``(N, 784)``: each image's pixels in row-major order
    (the notebook's order: pixel ``(i, j)`` is feature ``28 i + j``)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"flatten needs a batch of images (N, …), got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def one_hot(labels, num_classes: int = 10, dtype="float32") -> np.ndarray:
    """Integer labels ``(N,)`` → one-hot ``(N, num_classes)`` (batch-major).

    Float labels are accepted only if every value is a whole number.

    Raises:
        ValueError: labels not 1-D, not integers, or outside ``[0, num_classes)``.
    """
    dtype = check_float_dtype(dtype)
    num_classes = check_positive_int("num_classes", num_classes)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            bad = labels[~whole][0]
            raise ValueError(f"labels must be integers, got the non-integer value {bad}")
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        bad = labels[outside][0]
        raise ValueError(
            f"label {bad} is out of range: labels must lie in [0, {num_classes}) "
            f"(num_classes={num_classes}); {int(outside.sum())} label(s) outside"
        )
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels.astype(np.intp)] = 1
    return out


@dataclass(frozen=True)
class Preprocessed:
    """MNIST after the notebook's preprocessing (see :func:`preprocess`).

    Batch-major: ``x_* (N, 784)``, ``y_* (N, 10)``. Features-major: ``x_*
    (784, N)``, ``y_* (10, N)``. ``labels_*`` are the integer labels ``(N,)``
    (int64) for accuracy and confusion matrices; ``xmin``/``xmax`` are the
    training set's, used for both sets.
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    labels_train: np.ndarray = field(repr=False)
    labels_test: np.ndarray = field(repr=False)
    layout: str
    xmin: float
    xmax: float

    def __repr__(self):
        return (
            f"Preprocessed(layout={self.layout!r}, dtype={self.x_train.dtype}, "
            f"x_train={self.x_train.shape}, y_train={self.y_train.shape}, "
            f"x_test={self.x_test.shape}, y_test={self.y_test.shape}, "
            f"xmin={self.xmin}, xmax={self.xmax})"
        )


def preprocess(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    layout: str = "batch-major",
    dtype="float32",
    num_classes: int = 10,
) -> Preprocessed:
    """The notebook's preprocessing: flatten, min-max scale, one-hot.

    Both sets are scaled with the **training** set's min and max,
    ``(x - xmin) / (xmax - xmin)``. ``layout="batch-major"`` gives ``x (N, 784)``
    and ``y (N, 10)`` (Keras); ``"features-major"`` gives their transposes
    ``x (784, N)``, ``y (10, N)`` (the notebook, :mod:`tfsoftmax.reference`), as
    C-contiguous arrays. The transpose is taken on the uint8 pixels, before
    the conversion to floats, so only one float array per set is allocated.

    Raises:
        ValueError: an unknown layout, a non-float dtype, image and label counts
            that differ, train and test images of different shapes, a constant
            training set, or labels that are not integers in ``[0, num_classes)``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    dtype = check_float_dtype(dtype)
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    labels_train, labels_test = np.asarray(y_train), np.asarray(y_test)
    for name, x, y in (("train", x_train, labels_train), ("test", x_test, labels_test)):
        if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}: need images (N, …) and labels (N,), got {x.shape} and {y.shape}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"train and test images differ in shape: {x_train.shape[1:]} vs {x_test.shape[1:]}"
        )
    if x_train.size == 0:
        raise ValueError("the training set is empty")
    xmin, xmax = x_train.min(), x_train.max()
    y_train_1h = one_hot(labels_train, num_classes, dtype)
    y_test_1h = one_hot(labels_test, num_classes, dtype)
    flat_train, flat_test = flatten(x_train), flatten(x_test)
    if layout == "features-major":
        flat_train, flat_test = (
            np.ascontiguousarray(flat_train.T),
            np.ascontiguousarray(flat_test.T),
        )
        y_train_1h, y_test_1h = (
            np.ascontiguousarray(y_train_1h.T),
            np.ascontiguousarray(y_test_1h.T),
        )
    scaled_train = minmax_scale(flat_train, xmin=xmin, xmax=xmax, dtype=dtype)
    scaled_test = (
        minmax_scale(flat_test, xmin=xmin, xmax=xmax, dtype=dtype)
        if flat_test.size
        else flat_test.astype(dtype)
    )
    return Preprocessed(
        x_train=scaled_train,
        y_train=y_train_1h,
        x_test=scaled_test,
        y_test=y_test_1h,
        labels_train=labels_train.astype(np.int64),
        labels_test=labels_test.astype(np.int64),
        layout=layout,
        xmin=float(xmin),
        xmax=float(xmax),
    )


def first_samples(data, count=None, dtype=None):
    """``data`` with only its first ``count`` training samples, contiguous, as ``dtype``.

    ``count=None`` keeps every training sample; ``dtype=None`` keeps the dtype.
    The test set is kept whole (converted to ``dtype`` too). Used to run a
    comparison or a benchmark on a prefix of MNIST in a chosen precision.
    """
    total = data.x_train.shape[0] if data.layout == "batch-major" else data.x_train.shape[1]
    count = total if count is None else min(check_positive_int("count", count), total)
    dtype = data.x_train.dtype if dtype is None else check_float_dtype(dtype)
    rows = np.s_[:count] if data.layout == "batch-major" else np.s_[:, :count]
    return replace(
        data,
        x_train=np.ascontiguousarray(data.x_train[rows], dtype),
        y_train=np.ascontiguousarray(data.y_train[rows], dtype),
        labels_train=data.labels_train[:count],
        x_test=np.ascontiguousarray(data.x_test, dtype),
        y_test=np.ascontiguousarray(data.y_test, dtype),
    )
