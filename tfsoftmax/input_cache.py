"""Check and convert each distinct input array once: :func:`cached`.

:func:`tfsoftmax.training.train_sgd` checks its arrays (finite features,
one-hot labels, values that fit the model's dtype) and converts them to
tensors. On MNIST that is a few passes over 188 MB — as long as a training
epoch — on every call. This cache keeps each result for as long as the
array is alive and unchanged, so a second call on the same arrays skips both.

An entry for an array ``a`` holds

* a weak reference to ``a``: the entry is removed when ``a`` is freed, so the
  cache never keeps an array alive, and a new array at a reused address is
  never mistaken for it;
* ``a``'s layout: data address, shape, dtype and strides;
* a sample of ``a``'s values, copied: ``S = SAMPLE_SIZE`` elements spread
  evenly over the buffer, ``flat[k·s]`` for a stride ``s ≈ size / S`` chosen
  coprime to the row length (so the sample visits every column), and the last
  element;
* the results computed for ``a``, one per key (``("features",)``,
  ``("tensor", "float32")``, ...).

A lookup costs ``O(S)`` (well under a millisecond) and is a hit when the
object, its layout and its sample bytes are all the same; any difference
drops every result of that array, which is then checked and converted again.

What it detects: a different array (a new object, a copy, a view, a reshape,
``astype``, a resize), and any in-place write that changes a sampled element
— in particular every whole-array update (``x /= 255``, ``x[:] = other``,
``x.fill(v)``, ``np.copyto``), which changes nearly all of them. What it
misses: a write confined to elements outside the sample (one pixel of one
image). The old check and tensor are then used; call :func:`clear` after
such an edit, or pass a copy. A NaN slipped in that way still cannot train
silently: the trainer stops on the first non-finite loss.

Only NumPy arrays are cached (a list or a tensor is converted every time).
At most :data:`MAX_ARRAYS` arrays are held, the least recently used dropped
first; :func:`info` counts hits and misses.
"""

import collections
import dataclasses
import math
import threading
import weakref

import numpy as np

__all__ = ["MAX_ARRAYS", "SAMPLE_SIZE", "CacheInfo", "cached", "clear", "info"]

#: Arrays whose results are kept (a run uses up to four: x, y, x_val, y_val).
MAX_ARRAYS = 8

#: Elements of an array compared on every lookup.
SAMPLE_SIZE = 65_536


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """``hits``: results reused; ``misses``: results computed; ``arrays``: held now."""

    hits: int
    misses: int
    arrays: int


class _Entry:
    __slots__ = ("layout", "reference", "results", "sample")

    def __init__(self, reference, layout, sample):
        self.reference, self.layout, self.sample = reference, layout, sample
        self.results = {}


_entries = collections.OrderedDict()  # id(array) -> _Entry, least recently used first
_lock = threading.RLock()
_counts = {"hits": 0, "misses": 0}


def _layout(array):
    interface = array.__array_interface__
    return (interface["data"][0], array.shape, array.dtype.str, array.strides)


def _sample(array):
    """``SAMPLE_SIZE`` elements spread over ``array``, as bytes (module docstring)."""
    if array.size == 0:
        return b""
    if array.flags.c_contiguous or array.flags.f_contiguous:
        flat = array.reshape(-1, order="A")  # a view
    else:  # a strided view: sample each axis instead (no copy of the whole array)
        per_axis = max(2, math.ceil(SAMPLE_SIZE ** (1 / array.ndim)))
        steps = tuple(max(1, math.ceil(n / per_axis)) for n in array.shape)
        return array[tuple(slice(None, None, step) for step in steps)].tobytes()
    step = max(1, flat.size // SAMPLE_SIZE)
    row = array.shape[-1] if array.ndim > 1 else 1
    while step > 1 and math.gcd(step, row) != 1:
        step += 1
    return flat[::step].tobytes() + flat[-1:].tobytes()


def _forget(key):
    with _lock:
        _entries.pop(key, None)


def _entry_for(array):
    """The array's entry, made fresh when the array is new or has changed."""
    key = id(array)
    layout, sample = _layout(array), _sample(array)
    entry = _entries.get(key)
    if entry is not None and (
        entry.reference() is not array or entry.layout != layout or entry.sample != sample
    ):
        entry = None
    if entry is None:
        reference = weakref.ref(array, lambda _, key=key: _forget(key))
        entry = _Entry(reference, layout, sample)
        _entries[key] = entry
        while len(_entries) > MAX_ARRAYS:
            _entries.popitem(last=False)
    _entries.move_to_end(key)
    return entry


def cached(array, key, compute):
    """``compute(array)``, computed once per ``(array, key)`` while ``array`` is
    alive and unchanged (module docstring), then returned from the cache.

    ``key`` names what is computed (hashable), including every setting the
    result depends on. An exception in ``compute`` is raised and nothing is
    stored. Anything but a NumPy array is computed every time.
    """
    if not isinstance(array, np.ndarray):
        return compute(array)
    with _lock:
        entry = _entry_for(array)
        if key in entry.results:
            _counts["hits"] += 1
            return entry.results[key]
        _counts["misses"] += 1
    result = compute(array)
    with _lock:
        entry.results[key] = result
    return result


def clear():
    """Forget every result (after an edit the sample cannot see)."""
    with _lock:
        _entries.clear()


def info():
    """The :class:`CacheInfo` so far."""
    with _lock:
        return CacheInfo(_counts["hits"], _counts["misses"], len(_entries))
