"""The notebook's hand-derived backward passes as TensorFlow ops (``tf.custom_gradient``).

Batch-major, as Keras users expect: ``x`` is ``(batch, inputs)``, logits and
probabilities are ``(batch, classes)``. The one weight matrix ``W`` is
``(units, inputs + 1)`` with the bias in its last column (the *bias trick*)::

    z = x @ W[:, :-1]^T + W[:, -1]      a = softmax(z)      L = (1/b) sum_i -y_i . log a_i

Every op's gradient is the exact derivative of what it computes (checked against
``tf.test.compute_gradient`` and plain autodiff in ``tests/test_ops.py``); the
batch mean ``1/b`` lives in the loss, nowhere else.

The loss comes per sample, :func:`per_sample_categorical_crossentropy`
(``L_i = -y_i . log a_i``, what a Keras loss returns), and as the batch mean
:func:`categorical_crossentropy`; both share one backward, ``-g y / yhat``.

dtypes: float16, bfloat16, float32 and float64. :func:`bias_trick_dense` computes
in the input dtype. The softmax and both losses compute float16/bfloat16 inputs
internally in float32 and cast the results (and, through the casts, the
gradients) back to the input dtype (:func:`tfsoftmax._precision.in_float32`).

:func:`bias_trick_dense` is defined in :mod:`tfsoftmax.dense_ops` (with its
sparse-input path) and exported here; :func:`jacobian_softmax` also takes a
Keras-style ``mask`` and several axes (the layout in ``tfsoftmax._softmax_axes``).

Integer inputs are refused with a ``TypeError``, never cast (an integer ``x``
with a float ``w`` would turn 0-255 pixels into logits of hundreds). The ops
do not scan their inputs for NaN or inf: that would be a reduction over every
input on every step; a NaN propagates (into its own row of the softmax, into
the loss), it is never hidden. ``tf.debugging.enable_check_numerics()`` finds
where one first appears; :func:`tfsoftmax.train_sgd` checks its data and stops
on a NaN loss.

All ops work eagerly, inside ``tf.function`` (also with a batch dimension of
``None``) and under ``tf.function(jit_compile=True)`` (XLA). Pass weights in as
tensors or variables; they are converted to tensors *before* the custom-gradient
function runs, so no variable is ever captured inside it.
"""

import functools
import warnings

from tfsoftmax._precision import SUPPORTED_DTYPES, check_dtype, in_float32, probability_floor
from tfsoftmax._softmax_axes import keep_mask, masked_softmax, over_axes, softmax_axes
from tfsoftmax._tf import tf
from tfsoftmax.constants import SOFTMAX_METHODS
from tfsoftmax.dense_ops import bias_trick_dense

__all__ = [
    "JACOBIAN_MAX_ELEMENTS",
    "SOFTMAX_METHODS",
    "SUPPORTED_DTYPES",
    "bias_trick_dense",
    "categorical_crossentropy",
    "jacobian_softmax",
    "per_sample_categorical_crossentropy",
    "probability_floor",
]


#: Largest explicit softmax Jacobian, in elements (``batch * k * k``), that
#: ``method="jacobian"`` materialises: 2**25 elements = 128 MiB in float32
#: (256 MiB in float64). A larger one falls back to ``"vjp"`` (same numbers,
#: no ``k x k`` matrices). Read at trace time, so it can be changed at run time.
JACOBIAN_MAX_ELEMENTS = 2**25


# --------------------------------------------------------------------------- softmax
def _explicit_jacobian_product(a, g):
    """``J^T g`` with each sample's ``k x k`` Jacobian ``J_ij = a_i (delta_ij - a_j)`` built."""
    k = a.shape[-1] if a.shape[-1] is not None else tf.shape(a)[-1]
    jacobian = a[..., :, None] * (tf.eye(k, dtype=a.dtype) - a[..., None, :])
    return tf.linalg.matvec(jacobian, g)  # J is symmetric: J^T g = J g


def _softmax_vjp(a, g):
    """``J^T g = a * (g - <a, g>)``: the same product, no Jacobian materialised."""
    return a * (g - tf.reduce_sum(a * g, axis=-1, keepdims=True))


def _jacobian_fits(a):
    """Whether ``batch * k * k <= JACOBIAN_MAX_ELEMENTS``: a bool if static, else a tensor."""
    if a.shape.is_fully_defined():
        return a.shape.num_elements() * a.shape[-1] <= JACOBIAN_MAX_ELEMENTS
    size = tf.size(a, out_type=tf.int64) * tf.cast(tf.shape(a)[-1], tf.int64)
    return size <= JACOBIAN_MAX_ELEMENTS


def _softmax_jacobian_grad(a, g):
    fits = _jacobian_fits(a)
    if fits is True:
        return _explicit_jacobian_product(a, g)
    if fits is False:
        warnings.warn(
            f"jacobian_softmax: the explicit Jacobian of shape {a.shape} + ({a.shape[-1]},) "
            f"would exceed JACOBIAN_MAX_ELEMENTS = {JACOBIAN_MAX_ELEMENTS} elements; "
            'using method="vjp" (the same gradient without building it)',
            stacklevel=2,
        )
        return _softmax_vjp(a, g)
    # Size known only at run time: choose there (XLA folds this cond, its shapes are static).
    return tf.cond(fits, lambda: _explicit_jacobian_product(a, g), lambda: _softmax_vjp(a, g))


@tf.custom_gradient
def _softmax_with_jacobian(z):
    a = tf.nn.softmax(z)
    return a, lambda g: _softmax_jacobian_grad(a, g)


@tf.custom_gradient
def _softmax_with_vjp(z):
    a = tf.nn.softmax(z)
    return a, lambda g: _softmax_vjp(a, g)


# The masked twins: the same backward, on an ``a`` that is 0 at masked positions.
@tf.custom_gradient
def _masked_softmax_with_jacobian(z, keep):
    a = masked_softmax(z, keep)
    return a, lambda g: (_softmax_jacobian_grad(a, g), None)


@tf.custom_gradient
def _masked_softmax_with_vjp(z, keep):
    a = masked_softmax(z, keep)
    return a, lambda g: (_softmax_vjp(a, g), None)


_SOFTMAX_OPS = {"jacobian": _softmax_with_jacobian, "vjp": _softmax_with_vjp}
_MASKED_SOFTMAX_OPS = {"jacobian": _masked_softmax_with_jacobian, "vjp": _masked_softmax_with_vjp}


def jacobian_softmax(z, method="jacobian", axis=-1, mask=None):
    """Softmax whose backward multiplies by the softmax Jacobian; any axes, optional mask.

    Forward along the last axis (numerically stable: ``tf.nn.softmax``
    subtracts the row max)::

        a_k = exp(z_k) / sum_j exp(z_j)

    Backward, per sample, for ``g = dL/da`` (the Jacobian is symmetric)::

        J = da/dz = diag(a) - a a^T                    (k, k)
        dL/dz = J^T g = a * (g - <a, g>)

    ``method="jacobian"`` (the notebook's way) builds every sample's ``J`` as the
    notebook's ``(I - a^T) * a``, ``J_ij = a_i (delta_ij - a_j)``, and multiplies
    it by ``g`` (one batched matrix-vector product). ``method="vjp"`` uses the
    closed form without materialising ``J`` (what TensorFlow's own
    ``_SoftmaxGrad`` does).

    **Several axes** (``axis=(1, 2)``): each group of entries that agree
    outside those axes is normalised together -- the axes are moved last and
    flattened into one of ``k = prod n_d`` entries, the same formulas run on
    it, and the result is moved back (permutations: exact in both directions).

    **A mask** (``keras.layers.Softmax``'s semantics): ``mask`` broadcasts
    against ``z`` from the right (each dimension 1 or equal; never more
    dimensions), non-boolean masks keep entries ``> 0.5``. Masked positions
    get probability 0, the rest a softmax over the kept positions, a fully
    masked group is all zeros::

        a_i = [m_i] exp(z_i) / sum_j [m_j] exp(z_j)

    Its Jacobian: for kept ``i, j`` it is the softmax's, ``a_i (delta_ij - a_j)``;
    a masked ``z_j`` is replaced by a constant, so ``da_i/dz_j = 0``; a masked
    ``a_i`` is the constant 0, so ``da_i/dz_j = 0``. With ``a_i = 0`` at the
    masked positions, ``diag(a) - a a^T`` has exactly these zero rows and
    columns, so the *same* two backward formulas hold unchanged (in a fully
    masked group ``a = 0`` and the gradient is 0), checked against autodiff of
    ``keras.layers.Softmax`` and finite differences in ``tests/test_masking.py``.

    Memory limit: the explicit Jacobians hold ``batch * k * k`` elements. When that
    exceeds :data:`JACOBIAN_MAX_ELEMENTS` (2**25) the ``"jacobian"`` method falls
    back to ``"vjp"`` -- identical gradient up to rounding -- and warns
    (``UserWarning``, once per trace; in eager mode once per backward pass).
    If the size is known only at run time (a ``None`` batch in a ``tf.function``)
    the choice is made at run time by ``tf.cond`` and cannot warn.

    Cost, measured on a 2-core CPU (MNIST shapes, batch 200, k = 10, a whole
    SGD epoch of dense -> softmax -> CCE, relative to the same chain written
    with built-ins, the same batch-major dense product in both): under
    ``jit_compile=True`` ``"jacobian"`` 1.03x, ``"vjp"`` 0.96x; without XLA
    ``"jacobian"`` 1.4x (many tiny ``k x k`` products), ``"vjp"`` 0.8x. (The
    package's dense op now computes its product class-major, see
    :mod:`tfsoftmax.dense_ops`, and the whole chain runs 0.76-0.78x the
    built-in one in ``tfsoftmax bench``.)

    Args:
        z: logits ``(..., k)``, rank >= 1; float16, bfloat16, float32 or float64
            (float16/bfloat16 are computed in float32 and cast back).
        method: one of :data:`SOFTMAX_METHODS`, ``"jacobian"`` or ``"vjp"``.
        axis: an int or a tuple of ints, the axes normalised over (default the last).
        mask: optional, broadcastable to ``z``; ``True``/``> 0.5`` keeps an entry.

    Returns:
        ``a = softmax(z)``, same shape and dtype as ``z``.

    Raises:
        ValueError: unknown ``method``, a rank-0 ``z``, a bad ``axis`` or a
            mask that does not broadcast.
        TypeError: unsupported dtype.
    """
    if not isinstance(method, str) or method not in _SOFTMAX_OPS:
        raise ValueError(f"unknown softmax method {method!r}; expected one of {SOFTMAX_METHODS}")
    with tf.name_scope("jacobian_softmax"):
        z = tf.convert_to_tensor(z)
        check_dtype("z", z)
        if z.shape.rank == 0:
            raise ValueError("jacobian_softmax expects z of rank >= 1 (..., classes), got a scalar")
        axes = softmax_axes("jacobian_softmax", axis, z.shape.rank)
        if mask is None:
            op = _SOFTMAX_OPS[method]
            return in_float32(lambda z: over_axes(op, axes, z), z.dtype, z)
        keep = keep_mask("jacobian_softmax", mask, z)
        op = _MASKED_SOFTMAX_OPS[method]
        return in_float32(lambda z, keep: over_axes(op, axes, z, keep), z.dtype, z, keep)


# --------------------------------------------------------------------------- loss
def _cce_inputs(name, y_true, y_pred):
    """``(y_true, y_pred)`` as tensors of ``y_pred``'s dtype, after the checks both losses make."""
    y_pred = tf.convert_to_tensor(y_pred)
    check_dtype("y_pred", y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    if y_pred.shape.rank == 0:
        raise ValueError(f"{name} expects y_pred of rank >= 1, got a scalar")
    if not y_true.shape.is_compatible_with(y_pred.shape):
        raise ValueError(
            f"{name}: y_true and y_pred must have the same shape; "
            f"got {y_true.shape} and {y_pred.shape}"
        )
    return y_true, y_pred


def _floored_log(y_pred, floor):
    """``(yhat, log yhat)`` with ``yhat = max(y_pred, floor)``."""
    y_hat = tf.maximum(y_pred, floor)
    return y_hat, tf.math.log(y_hat)


def _cce_backward(y_true, y_hat, log_y_hat, scale):
    """``(dL/dy_true, dL/dy_pred) = (s log yhat, s y / yhat)``, ``s`` minus each sample's upstream.

    ``s = -g_i`` for the per-sample losses, ``-g / b`` for their batch mean.
    """
    return log_y_hat * scale, y_true / y_hat * scale


@functools.cache
def _per_sample_cce_op(floor):
    """The custom-gradient per-sample CCE with probabilities clamped below at ``floor``."""

    @tf.custom_gradient
    def _per_sample_categorical_crossentropy(y_true, y_pred):
        y_hat, log_y_hat = _floored_log(y_pred, floor)
        losses = -tf.reduce_sum(y_true * log_y_hat, axis=-1)

        def grad(upstream):
            return _cce_backward(y_true, y_hat, log_y_hat, -upstream[..., None])

        return losses, grad

    return _per_sample_categorical_crossentropy


@functools.cache
def _mean_cce_op(floor):
    """The custom-gradient batch-mean CCE with probabilities clamped below at ``floor``."""

    @tf.custom_gradient
    def _categorical_crossentropy(y_true, y_pred):
        # -1/b as a constant when the batch size is static, else computed (0 if b = 0).
        samples = y_pred.shape[:-1].num_elements()
        if samples is not None:
            neg_inv_b = -1.0 / samples if samples else 0.0
        else:
            samples = tf.cast(tf.reduce_prod(tf.shape(y_pred)[:-1]), y_pred.dtype)
            neg_inv_b = -tf.math.divide_no_nan(tf.ones((), y_pred.dtype), samples)
        y_hat, log_y_hat = _floored_log(y_pred, floor)
        # One sum over the whole batch, then times -1/b (not the mean of the
        # per-sample losses): the summation order every result was measured with.
        loss = tf.reduce_sum(y_true * log_y_hat) * neg_inv_b

        def grad(upstream):
            return _cce_backward(y_true, y_hat, log_y_hat, upstream * neg_inv_b)

        return loss, grad

    return _categorical_crossentropy


def per_sample_categorical_crossentropy(y_true, y_pred):
    """Per-sample cross-entropy ``L_i = -y_i . log yhat_i`` along the last axis, no reduction.

    With ``yhat = max(y_pred, tiny)`` (:func:`probability_floor`) and ``g_i``
    the upstream gradient of sample ``i``'s loss::

        L_i = -sum_k y_ik log yhat_ik                  (one value per sample)
        dL/dy_pred_i = g_i * (-y_i / yhat_i)
        dL/dy_true_i = g_i * (-log yhat_i)

    ``mean_i L_i`` equals :func:`categorical_crossentropy` in value and
    gradients (same floor, same backward). :class:`tfsoftmax.losses.CategoricalCrossentropy`
    wraps this op and leaves ``sample_weight`` and the reduction to Keras.
    Arguments, dtypes and errors as in :func:`categorical_crossentropy`; returns
    the losses ``(batch, ...)`` in ``y_pred``'s dtype.
    """
    with tf.name_scope("per_sample_categorical_crossentropy"):
        y_true, y_pred = _cce_inputs("per_sample_categorical_crossentropy", y_true, y_pred)
        op = _per_sample_cce_op(probability_floor(y_pred.dtype))
        return in_float32(op, y_pred.dtype, y_true, y_pred)


def categorical_crossentropy(y_true, y_pred):
    """Mean categorical cross-entropy over the batch, with the notebook's gradient ``-y/yhat``.

    With ``yhat = max(y_pred, tiny)``, ``tiny`` the dtype's smallest positive
    normal number (:func:`probability_floor`), and ``b`` samples (every axis but
    the last)::

        L = (1/b) sum_i -y_i . log yhat_i              (a scalar)
        dL/dy_pred = -y / yhat / b
        dL/dy_true = -log yhat / b

    The backward is that of :func:`per_sample_categorical_crossentropy` with
    every sample's upstream gradient ``g / b``.

    At ``yhat = 0``: for ``y_pred >= tiny`` (every ordinary input) the loss and
    both gradients are exact. Below it the probability is clamped to ``tiny``,
    in the log *and* the division, so nothing is ever NaN or inf:

    * a ``y = 0`` entry contributes ``0 * log(tiny) = 0`` (``0 log 0 = 0``) and
      gradient ``-0 / tiny = 0``;
    * a ``y = 1`` entry contributes at most ``-log(tiny)`` per sample (float16
      9.7, float32 87.3, float64 708.4) and gradient ``-1 / (tiny b)``, finite
      in every supported dtype. This is the true formula evaluated at ``tiny``,
      not the zero slope of the clamp, so a saturated wrong prediction keeps a
      (damped) gradient; chained with :func:`jacobian_softmax`, whose Jacobian
      multiplies by ``a``, ``dL/dz`` stays finite: ``(a - y) / b`` exactly while
      ``a_true >= tiny``, scaled by ``a_true / tiny`` below.

    Keras' ``CategoricalCrossentropy`` instead clips to ``[1e-7, 1 - 1e-7]`` and
    renormalises each row; on rows with every probability in that range the
    two agree wherever the rows sum to 1. An empty batch gives loss 0.

    Args:
        y_true: targets (one-hot or soft), same shape as ``y_pred``; cast to
            ``y_pred``'s dtype.
        y_pred: probabilities ``(..., k)``, rank >= 1; float16, bfloat16,
            float32 or float64 (float16/bfloat16 are computed in float32, with
            the float16/bfloat16 floor, and cast back).

    Returns:
        The scalar mean loss, in ``y_pred``'s dtype.

    Raises:
        ValueError: a scalar ``y_pred`` or shapes that differ.
        TypeError: unsupported dtype.
    """
    with tf.name_scope("categorical_crossentropy"):
        y_true, y_pred = _cce_inputs("categorical_crossentropy", y_true, y_pred)
        op = _mean_cce_op(probability_floor(y_pred.dtype))
        return in_float32(op, y_pred.dtype, y_true, y_pred)
