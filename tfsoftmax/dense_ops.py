"""The bias-trick dense op, ``z = [x, 1] Wᵀ``, and its hand-derived gradient (dense or sparse x).

One weight matrix ``W`` of shape ``(units, inputs + 1)``, bias in the last column::

    z = x W[:, :-1]ᵀ + W[:, -1]                    (b, u)
    dL/dW = Gᵀ [x, 1] = [Gᵀ x, Gᵀ 1]               (u, n + 1)      G = dL/dz
    dL/dx = G W[:, :-1]                            (b, n)

For a ``tf.SparseTensor`` ``x`` with non-zeros ``x[r, c] = v`` the same
formulas run on the non-zeros only, ``x`` is never densified:

* forward ``z = sparse_dense_matmul(x, W[:, :-1]ᵀ) + W[:, -1]``;
* ``Gᵀ x = (xᵀ G)ᵀ = sparse_dense_matmul(x, G, adjoint_a=True)ᵀ``;
* the gradient with respect to the stored values, one per non-zero,
  ``dL/dv = (G W[:, :-1])[r, c] = Σ_u G[r, u] W[u, c]`` (gathered rows of
  ``G`` and columns of ``W``), returned as the values gradient of the sparse
  input, as TensorFlow's own sparse matmul does.

``dL/dW`` stays a dense ``(u, n + 1)`` tensor: its zero columns (features that
are zero in the whole batch) are columns, which ``tf.IndexedSlices`` (row
slices) cannot express.

Exported again by :mod:`tfsoftmax.ops`, the module to import it from.
"""

from tfsoftmax._precision import DTypeError, as_floating_tensor, check_dtype
from tfsoftmax._tf import tf

__all__ = ["bias_trick_dense"]


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


def _batch_major_logits(x, w, kernel):
    """``z = x W[:, :-1]ᵀ + W[:, -1]``, computed as the notebook does, ``zᵀ = W [x, 1]ᵀ``.

    Both give every ``z_ij`` as the same dot product. Computed class-major,
    ``(u, b) = (u, n)·(n, b)``, and transposed after the bias is added, XLA's
    CPU dot for MNIST's shapes (u = 10) runs 30–40 % faster than the batch-major
    ``(b, n)·(n, u)`` product: measured per step inside the compiled SGD loop,
    2-core CPU. Adding the bias before the transpose keeps XLA from folding the
    transpose back into the product (it fuses into the consumer instead).
    """
    logits_t = tf.matmul(kernel, x, transpose_b=True) + w[:, -1:]
    return tf.transpose(logits_t)


def _bias_column_gradient(g):
    return tf.expand_dims(tf.reduce_sum(g, axis=0), 1)


@tf.custom_gradient
def _bias_trick_dense(x, w):
    kernel = w[:, :-1]
    z = _batch_major_logits(x, w, kernel)

    def grad(g):
        dx = tf.matmul(g, kernel)
        dw = tf.concat([tf.matmul(g, x, transpose_a=True), _bias_column_gradient(g)], axis=1)
        return dx, dw

    return z, grad


@tf.custom_gradient
def _sparse_bias_trick_dense(indices, values, dense_shape, w):
    x = tf.SparseTensor(indices, values, dense_shape)
    kernel = w[:, :-1]
    z = tf.sparse.sparse_dense_matmul(x, kernel, adjoint_b=True) + w[:, -1]

    def grad(g):
        rows, columns = indices[:, 0], indices[:, 1]
        d_values = tf.reduce_sum(tf.gather(g, rows) * tf.gather(tf.transpose(kernel), columns), 1)
        gt_x = tf.transpose(tf.sparse.sparse_dense_matmul(x, g, adjoint_a=True))
        dw = tf.concat([gt_x, _bias_column_gradient(g)], axis=1)
        return None, d_values, None, dw

    return z, grad


def _check_same_dtype(x, w):
    if w.dtype != x.dtype:
        raise DTypeError(
            f"bias_trick_dense: x and w must have the same dtype; "
            f"got x {x.dtype.name} and w {w.dtype.name}"
        )


def _sparse_bias_trick_dense_op(x, w):
    check_dtype("x", x.values)
    _check_same_dtype(x.values, w)
    if x.shape.rank is not None and x.shape.rank != 2:
        raise ValueError(
            f"bias_trick_dense expects a sparse x of rank 2 (batch, inputs), got shape {x.shape}"
        )
    if x.shape[-1] is not None and w.shape[-1] is not None and w.shape[-1] != x.shape[-1] + 1:
        raise ValueError(
            f"bias_trick_dense: w must have inputs + 1 = {x.shape[-1] + 1} columns "
            f"(bias in the last one) for x of shape {x.shape}; got w of shape {w.shape}"
        )
    z = _sparse_bias_trick_dense(x.indices, x.values, x.dense_shape, w)
    z.set_shape([x.shape[0], w.shape[0]])
    return z


def bias_trick_dense(x, w):
    """Dense layer with the bias absorbed into the weights: ``z = [x, 1] W^T``.

    Forward, for ``x`` of shape ``(b, n)`` and ``W`` of shape ``(u, n + 1)``::

        z = x W[:, :-1]^T + W[:, -1]                   (b, u)

    (the notebook's ``Z = W [X; 1]``, transposed to batch-major, without
    concatenating a column of ones onto ``x``). Backward, for ``G = dL/dz``
    ``(b, u)``, the exact derivative -- no batch mean, which belongs to the loss::

        dL/dW = G^T [x, 1] = [G^T x, G^T 1]            (u, n + 1)
        dL/dx = G W[:, :-1]                            (b, n)

    A ``tf.SparseTensor`` ``x`` is multiplied as sparse (``tf.sparse.sparse_dense_matmul``)
    and its gradients are computed from its non-zeros (see the module docstring).

    Args:
        x: ``(batch, inputs)``, rank 2 only (flatten extra leading dimensions
            first); dense or a ``tf.SparseTensor``. float16, bfloat16, float32
            or float64 -- never integers, which are refused rather than cast
            (Python floats take ``w``'s dtype).
        w: ``(units, inputs + 1)`` weights, bias in the last column; a tensor,
            array or variable of ``x``'s dtype.

    Returns:
        ``z``, ``(batch, units)``, in the input dtype (dense also for a sparse ``x``).

    Raises:
        ValueError: a statically known rank other than 2, or ``w`` not having
            ``inputs + 1`` columns. Shapes known only at run time are checked
            by ``tf.debugging`` assertions (graph mode; XLA drops them).
        TypeError: unsupported (e.g. integer) or mismatched dtypes.
    """
    with tf.name_scope("bias_trick_dense"):
        w = tf.convert_to_tensor(w)
        if isinstance(x, tf.SparseTensor):
            return _sparse_bias_trick_dense_op(x, w)
        x = as_floating_tensor("x", x, dtype_hint=w.dtype)
        _check_same_dtype(x, w)
        x = _check_dense_shapes(x, w)
        return _bias_trick_dense(x, w)
