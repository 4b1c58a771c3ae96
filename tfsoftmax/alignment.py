"""Arrays whose data starts at a multiple of 64 bytes, which TensorFlow can adopt without a copy.

TensorFlow takes a NumPy buffer over through DLPack only when its data
pointer is a multiple of :data:`ALIGNMENT` bytes (it aborts the process on a
misaligned one); NumPy's own allocations are 16-byte aligned. An array made
by :func:`aligned_empty` — ``ALIGNMENT − 1`` spare bytes, and a view that
starts at the first aligned address — is one TensorFlow can use as it is, so
``train_sgd`` adds no copy of the training data (see
:mod:`tfsoftmax.array_inputs`). NumPy only.

>>> import numpy as np
>>> a = aligned_empty((3, 5), np.dtype("float32"))
>>> a.__array_interface__["data"][0] % ALIGNMENT, a.shape, a.flags.c_contiguous
(0, (3, 5), True)
"""

import numpy as np

__all__ = ["ALIGNMENT", "aligned_empty", "is_aligned"]

#: Bytes: TensorFlow's CPU tensors must start at a multiple of this (Eigen's
#: widest vector); an op on a tensor that does not aborts the process.
ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts at a multiple of :data:`ALIGNMENT`."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, np.uint8)
    offset = -raw.__array_interface__["data"][0] % ALIGNMENT
    return raw[offset : offset + size].view(dtype).reshape(shape)


def is_aligned(array):
    """Whether ``array``'s data starts at a multiple of :data:`ALIGNMENT` bytes."""
    return array.__array_interface__["data"][0] % ALIGNMENT == 0
