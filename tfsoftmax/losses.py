"""The notebook's categorical cross-entropy as a Keras 3 loss.

:class:`CategoricalCrossentropy` returns one loss per sample, ``-Σ_k y_k log ŷ_k``,
through the custom-gradient op
:func:`tfsoftmax.ops.per_sample_categorical_crossentropy` (re-exported here),
whose gradient is the notebook's ``-y / ŷ``, and lets Keras do the reduction,
as Keras' own losses wrap their loss functions. With the default reduction
(``"sum_over_batch_size"``) the value *and* the gradient are exactly those of
:func:`tfsoftmax.ops.categorical_crossentropy` — the batch mean, with gradient
``-y / ŷ / b`` — and ``sample_weight``, masks, the other reductions and
``tf.distribute`` all work the standard Keras way: a weight ``s_i`` makes
sample ``i`` contribute ``s_i · L_i`` and gradient ``-s_i y_i / ŷ_i / b``.

At ``ŷ = 0`` it does what the op and :mod:`tfsoftmax.reference` do: ``ŷ`` is
clamped below at ``tiny``, the smallest positive normal number of its dtype
(:func:`tfsoftmax.ops.probability_floor`), in the log and in the division.
Where ``y = 0`` that contributes exactly 0 to loss and gradient (never
``0·log 0 = NaN``); where ``y = 1`` the loss is at most ``-log(tiny)``
(87.3 in float32) and the gradient ``-1/tiny`` is finite. Unlike
``keras.losses.CategoricalCrossentropy`` nothing is clipped at ``1e-7`` and
``ŷ`` is not renormalised: for a softmax output that sums to 1 the two give the
same gradient with respect to the logits up to rounding (the renormalisation
adds a constant to ``dL/dŷ``, which the softmax Jacobian maps to zero).

dtypes: ``y_true`` may be integer (one-hot labels; cast to ``y_pred``'s
dtype); an integer ``y_pred`` (NumPy array or tensor) raises ``TypeError`` —
probabilities are never integers, so it is a mistake, not something to cast —
as does a non-floating ``dtype=`` (a ``TypeError`` that is also a
``ValueError``, which this error used to be).
"""

from tfsoftmax._precision import DTypeError
from tfsoftmax._tf import keras, tf
from tfsoftmax.ops import per_sample_categorical_crossentropy

__all__ = ["CategoricalCrossentropy", "per_sample_categorical_crossentropy"]


@keras.saving.register_keras_serializable(package="tfsoftmax")
class CategoricalCrossentropy(keras.losses.Loss):
    """The notebook's categorical cross-entropy, ``L = (1/b) Σ_i -y_i · log ŷ_i``.

    ``call`` returns the per-sample losses ``-Σ_k y_ik log ŷ_ik`` from
    :func:`per_sample_categorical_crossentropy`, whose custom gradient is the
    notebook's ``-y / ŷ``; Keras applies ``sample_weight`` and the reduction.
    With the default reduction the loss and its gradient equal
    :func:`tfsoftmax.ops.categorical_crossentropy` (batch mean, gradient
    ``-y / ŷ / b``). ``y_pred`` must be probabilities (e.g. the output of
    :class:`tfsoftmax.layers.JacobianSoftmax`), not logits.

    Args:
        name: Name of the loss instance.
        reduction: Keras reduction: ``"sum_over_batch_size"`` (default, the
            notebook's batch mean), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, or ``None``/``"none"`` for the
            per-sample losses.
        dtype: The dtype of the loss computation; defaults to
            ``keras.backend.floatx()``.

    Call arguments:
        y_true: One-hot labels, shape ``(batch, classes)``.
        y_pred: Predicted probabilities, same shape.
        sample_weight: Optional per-sample weights, shape ``(batch,)``.

    Returns:
        The reduced loss (a scalar unless ``reduction`` is ``None``/``"none"``).

    Example:

    >>> loss = CategoricalCrossentropy()
    >>> float(loss([[0.0, 1.0]], [[0.5, 0.5]]))  # -log 0.5
    0.6931...
    >>> model.compile(optimizer="sgd", loss=CategoricalCrossentropy())  # doctest: +SKIP
    """

    def __init__(
        self, name="categorical_crossentropy", reduction="sum_over_batch_size", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not tf.as_dtype(self.dtype).is_floating:
            raise DTypeError(
                "CategoricalCrossentropy: `dtype` must be floating-point (float16, bfloat16, "
                f"float32 or float64); got {self.dtype}"
            )

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras casts y_pred to the loss dtype before `call`; refuse integers first.
        dtype = getattr(y_pred, "dtype", None)
        if dtype is not None and not tf.as_dtype(dtype).is_floating:
            raise DTypeError(
                "CategoricalCrossentropy: y_pred must be floating-point probabilities, got "
                f"dtype {tf.as_dtype(dtype).name} (integer labels go in y_true)"
            )
        # Not super(): under autograph (a compiled training step) a converted
        # super() call reads f_locals of every frame on the stack, and those
        # snapshots keep the caller's objects (the model) alive.
        return keras.losses.Loss.__call__(self, y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        # Keras maps its tensor conversion over nested lists; make them tensors here.
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(tf.convert_to_tensor(y_true), y_pred.dtype)
        if y_true.shape.rank is not None and y_true.shape.rank != y_pred.shape.rank:
            raise ValueError(
                "CategoricalCrossentropy expects one-hot y_true with the same shape as y_pred "
                f"(batch, classes); got y_true shape {tuple(y_true.shape)} and y_pred shape "
                f"{tuple(y_pred.shape)}. One-hot encode integer labels first "
                "(keras.utils.to_categorical)."
            )
        if not y_true.shape.is_compatible_with(y_pred.shape):
            raise ValueError(
                f"CategoricalCrossentropy: y_true shape {tuple(y_true.shape)} does not match "
                f"y_pred shape {tuple(y_pred.shape)}"
            )
        return per_sample_categorical_crossentropy(y_true, y_pred)
