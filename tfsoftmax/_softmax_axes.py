"""The layout around the last-axis softmax: several axes, and Keras' masked softmax.

**Several axes.** A softmax over the axes ``A`` normalises each group of
entries that share their indices outside ``A``::

    a[i] = exp(z[i]) / Σ_{j: j agrees with i outside A} exp(z[j])

which is the last-axis softmax of ``z`` with the axes of ``A`` moved to the
end (in increasing order) and flattened into one axis of ``Π_{d∈A} n_d``
entries (:func:`over_axes`). Transposing and reshaping are linear
permutations of the entries, so the gradient passes through them unchanged
and the per-group Jacobian is ``J = diag(a) − a aᵀ`` over the flattened group.

**A mask** ``m`` (Keras' ``keras.layers.Softmax`` semantics, :func:`keep_mask`):
``m`` has at most the rank of ``z`` and broadcasts against it from the right
(each of its dimensions 1 or equal to ``z``'s); non-boolean masks keep the
entries ``> 0.5``. The masked softmax (:func:`masked_softmax`) sets masked
logits to ``−1e9``, takes the softmax, and sets masked outputs to 0::

    a_i = [m_i] exp(z_i) / Σ_j [m_j] exp(z_j)         (0 for a fully masked group)
"""

import numpy as np

from tfsoftmax._tf import tf

__all__ = [
    "LARGE_NEGATIVE",
    "check_axis_argument",
    "keep_mask",
    "masked_softmax",
    "over_axes",
    "softmax_axes",
]

#: What masked logits are replaced by, as ``keras.layers.Softmax`` does (its
#: float32/float64 value; the op computes half precision in float32).
LARGE_NEGATIVE = -1e9


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_axis_argument(who, axis):
    """``axis`` as an int or a tuple of ints, or ``ValueError`` naming ``who``."""
    if _is_integer(axis):
        return int(axis)
    if isinstance(axis, (tuple, list)) and axis and all(_is_integer(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise ValueError(
        f"{who}: `axis` must be an integer or a non-empty tuple of integers, got axis={axis!r}"
    )


def softmax_axes(who, axis, rank):
    """The axes as a sorted tuple of non-negative ints; ``None`` when it is just the last axis.

    ``ValueError`` for an axis out of range for ``rank`` or one named twice.
    With an unknown ``rank`` only ``-1`` (the last axis) is accepted.
    """
    axes = check_axis_argument(who, axis)
    axes = (axes,) if isinstance(axes, int) else axes
    if rank is None:
        if set(axes) == {-1}:
            return None
        raise ValueError(f"{who}: axis={axis!r} needs inputs of known rank")
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"{who}: axis={axis!r} is out of range for inputs of rank {rank}")
    normalized = tuple(sorted(a % rank for a in axes))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{who}: axis={axis!r} names the same axis twice (rank {rank})")
    return None if normalized == (rank - 1,) else normalized


def keep_mask(who, mask, z):
    """The boolean "keep" mask, broadcast to ``z``'s shape, after Keras' checks.

    ``ValueError`` (the words of ``keras.layers.Softmax``) if ``mask`` has more
    dimensions than ``z`` or a dimension that is neither 1 nor ``z``'s.
    """
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank is not None and z.shape.rank is not None:
        if mask.shape.rank > z.shape.rank:
            raise ValueError(
                f"{who}: the `mask` must be broadcastable to `inputs` and must not have more "
                f"dimensions. Received: inputs.shape={z.shape}, mask.shape={mask.shape}"
            )
        for m_dim, z_dim in zip(mask.shape[::-1], z.shape[::-1], strict=False):
            if m_dim is not None and z_dim is not None and m_dim not in (1, z_dim):
                raise ValueError(
                    f"{who}: the `mask` must be broadcastable to `inputs`. Each mask "
                    "dimension must be 1 or match the corresponding input dimension. "
                    f"Received: inputs.shape={z.shape}, mask.shape={mask.shape}"
                )
    if mask.dtype != tf.bool:
        mask = tf.greater(mask, tf.cast(0.5, mask.dtype))
    keep = tf.broadcast_to(mask, tf.shape(z))
    keep.set_shape(z.shape)
    return keep


def masked_softmax(z, keep):
    """Softmax along the last axis of the entries where ``keep``; 0 elsewhere (also in full)."""
    a = tf.nn.softmax(tf.where(keep, z, tf.constant(LARGE_NEGATIVE, z.dtype)))
    return tf.where(keep, a, tf.zeros_like(a))


def over_axes(op, axes, z, *others):
    """``op(z, *others)`` with the axes ``axes`` of every tensor moved last and flattened.

    ``axes=None`` (just the last axis) calls ``op`` directly. The result is
    unflattened and the axes moved back, so it has ``z``'s shape.
    """
    if axes is None:
        return op(z, *others)
    rank = z.shape.rank
    perm = [d for d in range(rank) if d not in axes] + list(axes)
    moved = [tf.transpose(t, perm) for t in (z, *others)]
    shape = tf.shape(moved[0])
    group = tf.reduce_prod(shape[rank - len(axes) :], keepdims=True)
    flat = tf.concat([shape[: rank - len(axes)], group], axis=0)
    out = op(*(tf.reshape(t, flat) for t in moved))
    out = tf.transpose(tf.reshape(out, shape), np.argsort(perm).tolist())
    out.set_shape(z.shape)
    return out
