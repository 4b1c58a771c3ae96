"""The NumPy side of :mod:`tfsoftmax.gradcheck`: each op's VJP from :mod:`tfsoftmax.reference`.

Every function takes the problem's batch-major inputs and returns ``vjp(u)``,
the gradients of that op for the upstream gradient ``u`` (batch-major, like the
TensorFlow side), computed by the reference's hand-written, features-major
backward passes. The conventions are mapped, not assumed (see
:mod:`tfsoftmax.gradcheck`): ``Softmax.backward`` and ``cce_gradient`` are per
sample, ``Dense.backward`` stores ``(1/b) G [X; 1]^T``.

The masked and multi-axis softmax have no NumPy reference of their own; they
are *reduced* to the plain one, which derives their Jacobians independently:

* masked (:func:`reference_masked_softmax`): per sample, the reference's
  softmax over the kept positions only, ``dz = 0`` at the masked ones and for
  a fully masked sample -- the block structure the masked Jacobian must have;
* several axes (:func:`reference_softmax_over_axes`): the axes moved last and
  flattened in NumPy, one reference softmax per group.
"""

import numpy as np

from tfsoftmax import reference

__all__ = [
    "reference_cce",
    "reference_chain",
    "reference_dense",
    "reference_masked_softmax",
    "reference_softmax",
    "reference_softmax_over_axes",
]


def reference_dense(x, w):
    """VJP of ``z = x W[:, :-1]^T + W[:, -1]`` via ``reference.Dense`` (features-major)."""
    batch = x.shape[0]

    def vjp(g):
        dense = reference.Dense.from_weights(w, method="vectorized")
        dense.forward(x.T)
        dx = dense.backward(g.T.astype(x.dtype), 1.0)  # W[:, :-1]^T G: per sample, unscaled
        return dx.T, batch * dense.weights_gradient  # undo Dense.backward's 1/b

    return vjp


def reference_softmax(z, method):
    """VJP of softmax via ``reference.Softmax`` (per sample, no 1/b)."""
    softmax = reference.Softmax("loop" if method == "jacobian" else "vectorized")
    softmax.forward(z.T)
    return lambda g: (softmax.backward(g.T.astype(z.dtype)).T,)


def reference_cce(y, p):
    """VJP of the mean loss wrt ``y_pred``: the reference's per-sample ``-y/yhat`` over ``b``."""
    gradient = reference.cce_gradient(y.T, p.T).T / y.shape[0]
    return lambda upstream: (upstream.item() * gradient,)


def reference_chain(x, w, y, method):
    """VJP of the mean loss wrt ``x`` and ``W`` through the reference's layers."""
    dense = reference.Dense.from_weights(w, method="vectorized")
    softmax = reference.Softmax("loop" if method == "jacobian" else "vectorized")
    probabilities = softmax.forward(dense.forward(x.T))
    g = softmax.backward(reference.cce_gradient(y.T, probabilities))
    dx = dense.backward(g, 1.0).T / x.shape[0]  # per-sample input gradients -> the mean's
    dw = dense.weights_gradient  # already the mean loss's weight gradient
    return lambda upstream: (upstream.item() * dx, upstream.item() * dw)


def reference_masked_softmax(z, keep, method):
    """VJP of the masked softmax along the last axis of a 2-D ``z``: the kept positions' softmax."""
    kind = "loop" if method == "jacobian" else "vectorized"

    def vjp(g):
        dz = np.zeros_like(z)
        for i in range(z.shape[0]):
            kept = np.flatnonzero(keep[i])
            if kept.size:  # a fully masked sample: output 0, gradient 0
                softmax = reference.Softmax(kind)
                softmax.forward(z[i, kept][:, None])
                dz[i, kept] = softmax.backward(g[i, kept][:, None].astype(z.dtype))[:, 0]
        return (dz,)

    return vjp


def reference_softmax_over_axes(z, axes, method):
    """VJP of the softmax over ``axes`` of ``z``: groups as samples of the reference's softmax."""
    rest = [d for d in range(z.ndim) if d not in axes]
    perm = rest + list(axes)
    moved_shape = tuple(z.shape[d] for d in perm)
    groups = int(np.prod([z.shape[d] for d in rest]))
    softmax = reference.Softmax("loop" if method == "jacobian" else "vectorized")
    softmax.forward(np.transpose(z, perm).reshape(groups, -1).T)  # (group size, groups)

    def vjp(g):
        g = np.transpose(g, perm).reshape(groups, -1).T.astype(z.dtype)
        dz = softmax.backward(g).T.reshape(moved_shape)
        return (np.transpose(dz, np.argsort(perm)),)

    return vjp
