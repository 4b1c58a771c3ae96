"""In-memory ``x``, ``y`` of :func:`tfsoftmax.training.train_sgd`: checked, converted, cached.

Three kinds of features, by model (:mod:`tfsoftmax.model_io`, :mod:`tfsoftmax.rescaling`):

* ``"float"`` — ``(N, features)`` floating point, finite
  (:func:`tfsoftmax.validation.inspect_features`: one sweep giving
  ``min``, ``max``, finiteness and the unscaled-pixels warning), and
  ``max |x| ≤`` the model dtype's largest value; stored in the model's dtype;
* ``"images"`` — integer pixels for a model that scales its input
  (:func:`tfsoftmax.rescaling.scales_its_input`); stored as they are (uint8
  stays uint8: a quarter of float32's memory), scaled per batch by the model;
* ``"tokens"`` — integer token ids ``≥ 0`` for a model whose input is integer;
  stored in the input's integer dtype.

Labels: one-hot ``(N, classes)`` or class indices, stored one-hot in the
model's dtype. Every check and conversion is cached per array
(:func:`tfsoftmax.input_cache.cached`): a second call on the same, unchanged
arrays reads them from the cache, and only re-issues the warning.
"""

import warnings

import numpy as np

from tfsoftmax import input_cache
from tfsoftmax._tf import tf
from tfsoftmax.alignment import aligned_empty, is_aligned
from tfsoftmax.model_io import check_token_ids, input_dtype, takes_integer_input
from tfsoftmax.rescaling import check_integer_images, scales_its_input
from tfsoftmax.validation import (
    check_fits_dtype,
    check_labels,
    inspect_features,
)

__all__ = [
    "CheckedFeatures",
    "checked_features",
    "features_tensor",
    "labels_tensor",
    "tensor_of",
    "aligned",
    "shares_memory_with_tensor",
]


class CheckedFeatures:
    """Features that passed their kind's checks: ``array``, ``kind`` (module
    docstring), and for ``"float"`` the ``largest`` ``|value|`` and the
    ``warning`` to issue (or None)."""

    __slots__ = ("array", "kind", "largest", "warning")

    def __init__(self, array, kind, largest=None, warning=None):
        self.array, self.kind, self.largest, self.warning = array, kind, largest, warning

    @property
    def shape(self):
        return self.array.shape


def _kind(model, array):
    integer_input = takes_integer_input(model)  # also: model must be a keras.Model
    if array.dtype.kind in "biu":
        if scales_its_input(model):
            return "images"
        if integer_input and array.dtype.kind in "iu":
            return "tokens"
    return "float"


def _check(array, kind, name):
    """``(largest, warning)`` of ``array``, checked as ``kind``; never the array
    itself (the cache must not keep it alive)."""
    if kind == "images":
        check_integer_images(array, name)
        return None, None
    if kind == "tokens":
        check_token_ids(array, name)
        return None, None
    _, low, high, warning = inspect_features(array, name)
    return max(-low, high), warning


def checked_features(model, x, name="x", kind=None):
    """``x`` checked for ``model`` (its kind found unless given): a
    :class:`CheckedFeatures`, the unscaled-pixels warning issued. Raises
    ValueError naming ``name``."""
    array = x if isinstance(x, np.ndarray) else np.asarray(x)
    if kind is None:
        kind = _kind(model, array)
    largest, warning = input_cache.cached(
        array if array is x else None, ("checked", kind, name), lambda _: _check(array, kind, name)
    )
    if warning is not None:
        warnings.warn(warning, UserWarning, stacklevel=3)
    return CheckedFeatures(array, kind, largest, warning)


def features_tensor(model, checked, dtype, name="x"):
    """The tensor ``model`` is fed for ``checked`` features: floats in ``dtype``
    (checked to fit it), images in their own dtype, token ids in the input's.
    A copy, cached with the array — or the array itself when it can be
    (:func:`tensor_of`; not cached then, since the tensor keeps the array alive)."""
    array = checked.array
    if checked.kind == "images":
        target = tf.as_dtype(array.dtype)
    elif checked.kind == "tokens":
        target = input_dtype(model) or tf.int32
    else:
        target = tf.as_dtype(dtype)
        check_fits = lambda: check_fits_dtype(  # noqa: E731
            array, float(target.max), target.name, name, largest=checked.largest
        )
    if shares_memory_with_tensor(array, target):
        return tensor_of(array, target)  # no check to do: the dtype is the array's
    if checked.kind == "float":

        def convert(_):
            check_fits()
            return tensor_of(array, target)

    else:

        def convert(_):
            return tensor_of(array, target)

    return input_cache.cached(array, ("tensor", checked.kind, target.name), convert)


def labels_tensor(y, num_samples, num_classes, dtype, name="y"):
    """``y`` checked (:func:`tfsoftmax.validation.check_labels`) and one-hot in ``dtype``."""
    dtype = tf.as_dtype(dtype)
    array = y if isinstance(y, np.ndarray) else None

    def convert(value):
        one_hot = check_labels(value if value is not None else y, num_samples, num_classes, name)
        return tensor_of(one_hot, dtype)

    key = ("labels", num_samples, num_classes, dtype.name)
    return input_cache.cached(array, key, convert)


def shares_memory_with_tensor(array, dtype):
    """Whether :func:`tensor_of` gives ``array`` to TensorFlow without a copy: it
    already has the ``dtype``, is C-contiguous, writeable (NumPy's DLPack export
    refuses read-only arrays) and starts at a multiple of 64
    bytes (``tfsoftmax.array_inputs.aligned`` makes such arrays)."""
    target = np.dtype(tf.as_dtype(dtype).as_numpy_dtype)
    return (
        array.dtype == target
        and target.kind in "biuf"
        and array.flags.c_contiguous
        and array.flags.writeable
        and is_aligned(array)
    )


def aligned(array, dtype=None):
    """A copy of ``array`` (as ``dtype``) that :func:`tensor_of` can use without
    copying again: C-contiguous, starting at a multiple of 64 bytes
    (:mod:`tfsoftmax.alignment`).
    Hold training data in such an array and ``train_sgd`` adds no copy of it."""
    array = np.asarray(array)
    result = aligned_empty(array.shape, np.dtype(dtype or array.dtype))
    np.copyto(result, array, casting="unsafe")
    return result


def tensor_of(array, dtype):
    """``array`` as a ``dtype`` tensor, in one copy (and cast) of the data.

    ``tf.constant`` of a large array was measured to hold two copies (+359 MB
    for MNIST's float32 features, and as much at the peak). Here the values are
    copied (and cast, rounding as ``tf.cast`` and ``tf.constant`` do) once,
    into an aligned NumPy buffer the tensor then takes over without a copy
    (DLPack): +188 MB. An array that already is such a buffer
    (:func:`shares_memory_with_tensor`) is not copied at all: the tensor is a
    view of it, and sees later writes to it. Dtypes DLPack cannot carry
    (bfloat16) go through ``tf.constant``.
    """
    dtype = tf.as_dtype(dtype)
    target = np.dtype(dtype.as_numpy_dtype)
    if shares_memory_with_tensor(array, dtype):  # the tensor is a view of the array
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    if target.kind not in "biuf":
        return tf.constant(array, dtype)
    buffer = aligned_empty(array.shape, target)
    np.copyto(buffer, array, casting="unsafe")
    return tf.experimental.dlpack.from_dlpack(buffer.__dlpack__())
