"""The notebook's hand-derived backward passes as TensorFlow ops (``tf.custom_gradient``).

Batch-major, as Keras users expect: ``x`` is ``(batch, inputs)``, logits and
probabilities are ``(batch, classes)``. The one weight matrix ``W`` is
``(units, inputs + 1)`` with the bias in its last column (the *bias trick*)::

    z = x @ W[:, :-1]^T + W[:, -1]      a = softmax(z)      L = (1/b) sum_i -y_i . log a_i

Every op's gradient is the exact derivative of what it computes (checked against
``tf.test.compute_gradient`` and plain autodiff in ``tests/test_ops.py``); the
batch mean ``1/b`` lives in the loss, nowhere else.

dtypes: float16, bfloat16, float32 and float64. :func:`bias_trick_dense` computes
in the input dtype. :func:`jacobian_softmax` and :func:`categorical_crossentropy`
compute float16/bfloat16 inputs internally in float32 and cast the results (and,
through the casts, the gradients) back to the input dtype.

All ops work eagerly, inside ``tf.function`` (also with a batch dimension of
``None``) and under ``tf.function(jit_compile=True)`` (XLA). Pass weights in as
tensors or variables; they are converted to tensors *before* the custom-gradient
function runs, so no variable is ever captured inside it.
"""

import functools
import warnings

import ml_dtypes

from tfsoftmax._tf import tf

__all__ = [
    "JACOBIAN_MAX_ELEMENTS",
    "SOFTMAX_METHODS",
    "SUPPORTED_DTYPES",
    "bias_trick_dense",
    "categorical_crossentropy",
    "jacobian_softmax",
    "probability_floor",
]

#: The backward passes :func:`jacobian_softmax` offers.
SOFTMAX_METHODS = ("jacobian", "vjp")

#: Largest explicit softmax Jacobian, in elements (``batch * k * k``), that
#: ``method="jacobian"`` materialises: 2**25 elements = 128 MiB in float32
#: (256 MiB in float64). A larger one falls back to ``"vjp"`` (same numbers,
#: no ``k x k`` matrices). Read at trace time, so it can be changed at run time.
JACOBIAN_MAX_ELEMENTS = 2**25

#: The floating dtypes every op accepts.
SUPPORTED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

_HALF_DTYPES = (tf.float16, tf.bfloat16)


# --------------------------------------------------------------------------- helpers
def _check_dtype(name, tensor):
    if tensor.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise TypeError(f"{name} must have dtype {names}; got {tensor.dtype.name}")


def probability_floor(dtype):
    """The smallest probability :func:`categorical_crossentropy` uses: ``finfo(dtype).tiny``.

    The smallest positive *normal* number of ``dtype`` (float16: 2**-14 = 6.1e-5;
    bfloat16 and float32: 2**-126 = 1.2e-38; float64: 2**-1022 = 2.2e-308). Its
    reciprocal, the largest ``|dL/dyhat|`` per unit of upstream gradient and per
    sample, is finite in that dtype (16384, 8.5e37, 8.5e37, 4.5e307), whereas a
    subnormal ``yhat`` would make ``1/yhat`` overflow to inf.
    """
    return float(ml_dtypes.finfo(tf.as_dtype(dtype).as_numpy_dtype).tiny)


# --------------------------------------------------------------------------- dense
def _check_dense_shapes(x, w):
    """Static shape errors as ValueError; what is unknown until run time, as assertions."""
    for name, t, layout in (("x", x, "(batch, inputs)"), ("w", w, "(units, inputs + 1)")):
        if t.shape.rank is not None and t.shape.rank != 2:
            raise ValueError(
                f"bias_trick_dense expects {name} of rank 2 {layout}, got shape {t.shape}"
                + ("; flatten the leading dimensions first" if name == "x" else "")
            )
    inputs, width = x.shape[-1] if x.shape.rank else None, w.shape[-1] if w.shape.rank else None
    if inputs is not None and width is not None:
        if width != inputs + 1:
            raise ValueError(
                f"bias_trick_dense: w must have inputs + 1 = {inputs + 1} columns "
                f"(bias in the last one) for x of shape {x.shape}; got w of shape {w.shape}"
            )
        return x
    # Only reached when a shape is unknown at trace time. The assertions run in
    # graph mode; XLA compiles Assert to a no-op (its matmul still rejects a
    # width mismatch, with a less specific message).
    with tf.control_dependencies(
        [
            tf.debugging.assert_rank(x, 2, message="bias_trick_dense: x must be rank 2"),
            tf.debugging.assert_rank(w, 2, message="bias_trick_dense: w must be rank 2"),
        ]
    ):
        check = tf.debugging.assert_equal(
            tf.shape(x)[1] + 1,
            tf.shape(w)[1],
            message="bias_trick_dense: w must have inputs + 1 columns (bias in the last one)",
        )
    with tf.control_dependencies([check]):
        return tf.identity(x)


@tf.custom_gradient
def _bias_trick_dense(x, w):
    kernel = w[:, :-1]
    z = tf.matmul(x, kernel, transpose_b=True) + w[:, -1]

    def grad(g):
        dx = tf.matmul(g, kernel)
        dw = tf.concat(
            [tf.matmul(g, x, transpose_a=True), tf.expand_dims(tf.reduce_sum(g, axis=0), 1)],
            axis=1,
        )
        return dx, dw

    return z, grad


def bias_trick_dense(x, w):
    """Dense layer with the bias absorbed into the weights: ``z = [x, 1] W^T``.

    Forward, for ``x`` of shape ``(b, n)`` and ``W`` of shape ``(u, n + 1)``::

        z = x W[:, :-1]^T + W[:, -1]                   (b, u)

        z = tf.matmul(x, W[:, :-1], transpose_b=True) + W[:, -1]

    (the notebook's ``Z = W [X; 1]``, transposed to batch-major, without
    concatenating a column of ones onto ``x``). Backward, for ``G = dL/dz``
    ``(b, u)``, the exact derivative -- no batch mean, which belongs to the loss::

        dL/dW = G^T [x, 1] = [G^T x, G^T 1]            (u, n + 1)
        dL/dx = G W[:, :-1]                            (b, n)

        dW = tf.concat([tf.matmul(G, x, transpose_a=True), colsum(G)[:, None]], 1)
        dx = tf.matmul(G, W[:, :-1])

    Args:
        x: ``(batch, inputs)``, rank 2 only (flatten extra leading dimensions
            first). float16, bfloat16, float32 or float64.
        w: ``(units, inputs + 1)`` weights, bias in the last column; a tensor,
            array or variable of ``x``'s dtype.

    Returns:
        ``z``, ``(batch, units)``, in the input dtype.

    Raises:
        ValueError: a statically known rank other than 2, or ``w`` not having
            ``inputs + 1`` columns. Shapes known only at run time are checked
            by ``tf.debugging`` assertions (graph mode; XLA drops them).
        TypeError: unsupported or mismatched dtypes.
    """
    with tf.name_scope("bias_trick_dense"):
        w = tf.convert_to_tensor(w)
        x = tf.convert_to_tensor(x, dtype_hint=w.dtype)
        _check_dtype("x", x)
        if w.dtype != x.dtype:
            raise TypeError(
                f"bias_trick_dense: x and w must have the same dtype; "
                f"got x {x.dtype.name} and w {w.dtype.name}"
            )
        x = _check_dense_shapes(x, w)
        return _bias_trick_dense(x, w)


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


_SOFTMAX_OPS = {"jacobian": _softmax_with_jacobian, "vjp": _softmax_with_vjp}


def jacobian_softmax(z, method="jacobian"):
    """Softmax along the last axis whose backward multiplies by the softmax Jacobian.

    Forward (numerically stable: ``tf.nn.softmax`` subtracts the row max)::

        a_k = exp(z_k) / sum_j exp(z_j)

    Backward, per sample, for ``g = dL/da`` (the Jacobian is symmetric)::

        J = da/dz = diag(a) - a a^T                    (k, k)
        dL/dz = J^T g = a * (g - <a, g>)

    ``method="jacobian"`` (the notebook's way) builds every sample's ``J`` as the
    notebook's ``(I - a^T) * a``, ``J_ij = a_i (delta_ij - a_j)``, and multiplies
    it by ``g`` (one batched matrix-vector product)::

        J = a[..., :, None] * (tf.eye(k) - a[..., None, :])
        dz = tf.linalg.matvec(J, g)

    ``method="vjp"`` uses the closed form without materialising ``J`` (what
    TensorFlow's own ``_SoftmaxGrad`` does)::

        dz = a * (g - tf.reduce_sum(a * g, axis=-1, keepdims=True))

    Memory limit: the explicit Jacobians hold ``batch * k * k`` elements. When that
    exceeds :data:`JACOBIAN_MAX_ELEMENTS` (2**25) the ``"jacobian"`` method falls
    back to ``"vjp"`` -- identical gradient up to rounding -- and warns
    (``UserWarning``, once per trace; in eager mode once per backward pass).
    If the size is known only at run time (a ``None`` batch in a ``tf.function``)
    the choice is made at run time by ``tf.cond`` and cannot warn.

    Cost, measured on a 2-core CPU (MNIST shapes, batch 200, k = 10, a whole
    SGD epoch of dense -> softmax -> CCE, relative to the same chain written
    with built-ins): under ``jit_compile=True`` ``"jacobian"`` 1.03x, ``"vjp"``
    0.96x; without XLA ``"jacobian"`` 1.4x (many tiny ``k x k`` products),
    ``"vjp"`` 0.8x.

    Args:
        z: logits ``(..., k)``, rank >= 1; float16, bfloat16, float32 or float64
            (float16/bfloat16 are computed in float32 and cast back).
        method: one of :data:`SOFTMAX_METHODS`, ``"jacobian"`` or ``"vjp"``.

    Returns:
        ``a = softmax(z)``, same shape and dtype as ``z``.

    Raises:
        ValueError: unknown ``method`` or a rank-0 ``z``.
        TypeError: unsupported dtype.
    """
    if not isinstance(method, str) or method not in _SOFTMAX_OPS:
        raise ValueError(f"unknown softmax method {method!r}; expected one of {SOFTMAX_METHODS}")
    op = _SOFTMAX_OPS[method]
    with tf.name_scope("jacobian_softmax"):
        z = tf.convert_to_tensor(z)
        _check_dtype("z", z)
        if z.shape.rank == 0:
            raise ValueError("jacobian_softmax expects z of rank >= 1 (..., classes), got a scalar")
        if z.dtype in _HALF_DTYPES:
            return tf.cast(op(tf.cast(z, tf.float32)), z.dtype)
        return op(z)


# --------------------------------------------------------------------------- loss
@functools.cache
def _cce_op(floor):
    """The custom-gradient CCE with probabilities clamped below at ``floor``."""

    @tf.custom_gradient
    def _categorical_crossentropy(y_true, y_pred):
        # -1/b as a constant when the batch size is static, else computed (0 if b = 0).
        samples = y_pred.shape[:-1].num_elements()
        if samples is not None:
            neg_inv_b = -1.0 / samples if samples else 0.0
        else:
            samples = tf.cast(tf.reduce_prod(tf.shape(y_pred)[:-1]), y_pred.dtype)
            neg_inv_b = -tf.math.divide_no_nan(tf.ones((), y_pred.dtype), samples)
        y_hat = tf.maximum(y_pred, floor)
        log_y_hat = tf.math.log(y_hat)
        loss = tf.reduce_sum(y_true * log_y_hat) * neg_inv_b

        def grad(upstream):
            scale = upstream * neg_inv_b
            return log_y_hat * scale, y_true / y_hat * scale

        return loss, grad

    return _categorical_crossentropy


def categorical_crossentropy(y_true, y_pred):
    """Mean categorical cross-entropy over the batch, with the notebook's gradient ``-y/yhat``.

    With ``yhat = max(y_pred, tiny)``, ``tiny`` the dtype's smallest positive
    normal number (:func:`probability_floor`), and ``b`` samples (every axis but
    the last)::

        L = (1/b) sum_i -y_i . log yhat_i              (a scalar)
        dL/dy_pred = -y / yhat / b
        dL/dy_true = -log yhat / b

        L = -tf.reduce_sum(y_true * tf.math.log(yhat)) / b

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
    """
    with tf.name_scope("categorical_crossentropy"):
        y_pred = tf.convert_to_tensor(y_pred)
        _check_dtype("y_pred", y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_pred.shape.rank == 0:
            raise ValueError("categorical_crossentropy expects y_pred of rank >= 1, got a scalar")
        if not y_true.shape.is_compatible_with(y_pred.shape):
            raise ValueError(
                "categorical_crossentropy: y_true and y_pred must have the same shape; "
                f"got {y_true.shape} and {y_pred.shape}"
            )
        op = _cce_op(probability_floor(y_pred.dtype))
        if y_pred.dtype in _HALF_DTYPES:
            loss = op(tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32))
            return tf.cast(loss, y_pred.dtype)
        return op(y_true, y_pred)
