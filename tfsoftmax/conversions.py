"""Exact converters between ``keras.layers.Dense``'s ``(kernel, bias)`` and a bias-trick kernel.

``W = [Kᵀ, b]``: Dense's kernel ``K`` is ``(inputs, units)`` and its bias ``b``
``(units,)``; the bias-trick kernel ``W`` is ``(units, inputs + 1)`` with
``W[:, :-1] = Kᵀ`` and ``W[:, -1] = b``. Both directions copy, bit for bit.
Exported again by :mod:`tfsoftmax.layers`.
"""

import numpy as np

__all__ = ["from_bias_trick", "to_bias_trick"]


def _as_numpy(value, name):
    try:
        return np.asarray(value)
    except Exception as error:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from error


def to_bias_trick(kernel, bias):
    """Pack a ``keras.layers.Dense`` ``(kernel, bias)`` into one bias-trick kernel.

    Args:
        kernel: Dense's kernel, shape ``(inputs, units)`` (NumPy array, tensor
            or variable).
        bias: Dense's bias, shape ``(units,)``.

    Returns:
        NumPy array ``W`` of shape ``(units, inputs + 1)`` with
        ``W[:, :-1] = kernel.T`` and ``W[:, -1] = bias`` — a copy, exact to the bit.

    Example:

    >>> from tfsoftmax.layers import BiasTrickDense
    >>> from tfsoftmax._tf import keras
    >>> dense = keras.layers.Dense(10); dense.build((None, 784))
    >>> w = to_bias_trick(*dense.get_weights())
    >>> layer = BiasTrickDense(10); layer.build((None, 784)); layer.set_weights([w])
    """
    kernel = _as_numpy(kernel, "kernel")
    bias = _as_numpy(bias, "bias")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (inputs, units), got shape {kernel.shape}")
    if bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"bias must have shape (units,) = ({kernel.shape[1]},) to match kernel "
            f"{kernel.shape}, got shape {bias.shape}"
        )
    return np.concatenate([kernel.T, bias[:, None]], axis=1)


def from_bias_trick(w):
    """Split a bias-trick kernel into ``keras.layers.Dense``'s ``(kernel, bias)``.

    Args:
        w: Bias-trick kernel of shape ``(units, inputs + 1)`` (NumPy array,
            tensor or variable).

    Returns:
        ``(kernel, bias)`` NumPy arrays: ``kernel = W[:, :-1].T`` of shape
        ``(inputs, units)`` and ``bias = W[:, -1]`` of shape ``(units,)``,
        exact copies, ready for ``dense.set_weights([kernel, bias])``.
    """
    w = _as_numpy(w, "w")
    if w.ndim != 2 or w.shape[1] < 2:
        raise ValueError(
            f"w must be a bias-trick kernel of shape (units, inputs + 1) with inputs >= 1, "
            f"got shape {w.shape}"
        )
    return np.ascontiguousarray(w[:, :-1].T), w[:, -1].copy()
