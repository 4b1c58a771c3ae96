"""What ``BiasTrickDense`` takes from ``keras.layers.Dense``, and what it refuses.

Dense's regularizers and constraints act on its ``(inputs, units)`` kernel
``K`` and its bias ``b``; on the bias-trick kernel ``W = [Kᵀ, b]`` they act
on the same views::

    regularizer(W) = kernel_regularizer(W[:, :-1]ᵀ) + bias_regularizer(W[:, -1])
    constraint(W)  = [kernel_constraint(W[:, :-1]ᵀ)ᵀ, bias_constraint(W[:, -1])]

(a missing regularizer contributes 0, a missing constraint leaves its part
alone). What a one-kernel, hand-differentiated layer cannot offer —
``use_bias=False``, LoRA, quantization — is refused by
:func:`check_dense_only_arguments` with a message naming ``keras.layers.Dense``.
"""

from tfsoftmax._tf import tf

__all__ = [
    "DenseLayoutConstraint",
    "DenseLayoutRegularizer",
    "check_dense_only_arguments",
    "dense_only_error",
]


class DenseLayoutRegularizer:
    """``kernel_regularizer(W[:, :-1]ᵀ) + bias_regularizer(W[:, -1])`` for a bias-trick ``W``."""

    def __init__(self, kernel_regularizer, bias_regularizer):
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer

    def __call__(self, w):
        w = tf.convert_to_tensor(w)
        total = 0.0
        if self.kernel_regularizer is not None:
            total += self.kernel_regularizer(tf.transpose(w[:, :-1]))
        if self.bias_regularizer is not None:
            total += self.bias_regularizer(w[:, -1])
        return total


class DenseLayoutConstraint:
    """``[kernel_constraint(W[:, :-1]ᵀ)ᵀ, bias_constraint(W[:, -1])]`` for a bias-trick ``W``."""

    def __init__(self, kernel_constraint, bias_constraint):
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint

    def __call__(self, w):
        w = tf.convert_to_tensor(w)
        kernel, bias = w[:, :-1], w[:, -1]
        if self.kernel_constraint is not None:
            kernel = tf.transpose(
                tf.convert_to_tensor(self.kernel_constraint(tf.transpose(kernel)))
            )
        if self.bias_constraint is not None:
            bias = tf.convert_to_tensor(self.bias_constraint(bias))
        return tf.concat([kernel, bias[:, None]], axis=1)


_WHY = {
    "use_bias": "the bias trick *is* the bias (the kernel's last column); for a layer "
    "without a bias use keras.layers.Dense(units, use_bias=False)",
    "lora": "LoRA adds low-rank kernels the hand-derived gradient dW = Gᵀ [x, 1] does not "
    "cover; use keras.layers.Dense(units, lora_rank=...) (tfsoftmax.layers.from_bias_trick "
    "copies the weights over)",
    "quantization": "the bias-trick op computes in floating point and has no quantized "
    "kernel; use keras.layers.Dense (tfsoftmax.layers.from_bias_trick copies the weights "
    "over) and quantize that",
}


def dense_only_error(feature, detail, error=ValueError):
    """The error for a ``keras.layers.Dense`` feature ``BiasTrickDense`` deliberately lacks."""
    return error(f"BiasTrickDense does not support {detail}: {_WHY[feature]}.")


def check_dense_only_arguments(use_bias, lora_rank, lora_alpha, quantization_config):
    """``ValueError`` for Dense's arguments that have no bias-trick counterpart."""
    if use_bias is not True:
        raise dense_only_error("use_bias", f"use_bias={use_bias!r}")
    if lora_rank is not None or lora_alpha is not None:
        raise dense_only_error("lora", f"LoRA (lora_rank={lora_rank!r}, lora_alpha={lora_alpha!r})")
    if quantization_config is not None:
        raise dense_only_error("quantization", "quantization (quantization_config)")
