"""The dtypes the custom ops accept, and how half precision is computed.

Every op of :mod:`tfsoftmax.ops` accepts float16, bfloat16, float32 and float64
(:data:`SUPPORTED_DTYPES`). The softmax and the cross-entropy compute
float16/bfloat16 in float32 and cast the result back (:func:`in_float32`)::

    op(x)  ->  cast(op(cast(x, float32)), x.dtype)      for x in float16 or bfloat16

The cross-entropy clamps probabilities below at :func:`probability_floor`, the
smallest positive normal number of the input dtype, ``finfo(dtype).tiny``.
"""

import ml_dtypes

from tfsoftmax._tf import tf

__all__ = ["HALF_DTYPES", "SUPPORTED_DTYPES", "check_dtype", "in_float32", "probability_floor"]

#: The floating dtypes every op accepts.
SUPPORTED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

#: The dtypes computed in float32.
HALF_DTYPES = (tf.float16, tf.bfloat16)


def check_dtype(name, tensor):
    """``TypeError`` naming ``name`` unless ``tensor``'s dtype is in :data:`SUPPORTED_DTYPES`."""
    if tensor.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise TypeError(f"{name} must have dtype {names}; got {tensor.dtype.name}")


def in_float32(op, dtype, *tensors):
    """``op(*tensors)``; for a float16/bfloat16 ``dtype`` computed in float32 and cast back.

    The tensors are cast to float32, ``op`` runs there and its result is cast
    back to ``dtype``; through the casts the gradients come back in the input
    dtypes too. Any other ``dtype`` runs ``op`` unchanged.
    """
    if dtype in HALF_DTYPES:
        return tf.cast(op(*(tf.cast(tensor, tf.float32) for tensor in tensors)), dtype)
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
