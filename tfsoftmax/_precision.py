"""The dtypes the custom ops accept, how they are checked, and how half precision is computed.

Every op of :mod:`tfsoftmax.ops` accepts float16, bfloat16, float32 and float64
(:data:`SUPPORTED_DTYPES`). The softmax and the cross-entropy compute
float16/bfloat16 in float32 and cast the result back (:func:`in_float32`)::

    op(x)  ->  cast(op(cast(x, float32)), x.dtype)      for x in float16 or bfloat16

The cross-entropy clamps probabilities below at :func:`probability_floor`, the
smallest positive normal number of the input dtype, ``finfo(dtype).tiny``.

Dtype errors are :class:`DTypeError`, a ``TypeError`` (and, for callers who
caught the ``ValueError`` a bad ``dtype=`` argument used to raise, also a
``ValueError``). Integer inputs are never cast silently: an integer ``x`` with
a float ``w`` would turn 0-255 pixels into logits of hundreds
(:func:`as_floating_tensor`).
"""

import ml_dtypes

from tfsoftmax._tf import tf

__all__ = [
    "HALF_DTYPES",
    "SUPPORTED_DTYPES",
    "DTypeError",
    "as_floating_tensor",
    "check_dtype",
    "in_float32",
    "probability_floor",
]

#: The floating dtypes every op accepts.
SUPPORTED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

#: The dtypes computed in float32.
HALF_DTYPES = (tf.float16, tf.bfloat16)


class DTypeError(TypeError, ValueError):
    """A tensor or a ``dtype=`` argument with a dtype tfsoftmax does not accept.

    A ``TypeError``; also a ``ValueError`` so that code catching the
    ``ValueError`` a non-floating ``dtype=`` argument raised before keeps working.
    """


def check_dtype(name, tensor):
    """:class:`DTypeError` naming ``name`` unless ``tensor``'s dtype is supported."""
    if tensor.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise DTypeError(f"{name} must have dtype {names}; got {tensor.dtype.name}")


def as_floating_tensor(name, value, dtype_hint=None):
    """``value`` as a floating tensor, never by casting integers.

    A tensor, variable or array keeps its own dtype, which must be one of
    :data:`SUPPORTED_DTYPES` (else :class:`DTypeError`: integer pixels are
    refused, not cast). Python numbers and nested lists of them take
    ``dtype_hint`` when they are floats (converted from the Python floats
    directly, so float64 keeps every bit); Python integers are refused like
    integer arrays.
    """
    tensor = tf.convert_to_tensor(value)
    check_dtype(name, tensor)
    if dtype_hint is not None and tensor.dtype != dtype_hint and not hasattr(value, "dtype"):
        tensor = tf.convert_to_tensor(value, dtype=dtype_hint)  # Python floats: w's dtype
    return tensor


def in_float32(op, dtype, *tensors):
    """``op(*tensors)``; for a float16/bfloat16 ``dtype`` computed in float32 and cast back.

    The floating tensors are cast to float32 (others, such as a boolean mask,
    pass unchanged), ``op`` runs there and its result is cast back to
    ``dtype``; through the casts the gradients come back in the input dtypes
    too. Any other ``dtype`` runs ``op`` unchanged.
    """
    if dtype in HALF_DTYPES:
        tensors = (tf.cast(t, tf.float32) if t.dtype.is_floating else t for t in tensors)
        return tf.cast(op(*tensors), dtype)
    return op(*tensors)


def probability_floor(dtype):
    """The smallest probability the cross-entropy uses: ``finfo(dtype).tiny``.

    The smallest positive *normal* number of ``dtype`` (float16: 2**-14 = 6.1e-5;
    bfloat16 and float32: 2**-126 = 1.2e-38; float64: 2**-1022 = 2.2e-308). Its
    reciprocal, the largest ``|dL/dyhat|`` per unit of upstream gradient and per
    sample, is finite in that dtype (16384, 8.5e37, 8.5e37, 4.5e307), whereas a
    subnormal ``yhat`` would make ``1/yhat`` overflow to inf.
    """
    return float(ml_dtypes.finfo(tf.as_dtype(dtype).as_numpy_dtype).tiny)
