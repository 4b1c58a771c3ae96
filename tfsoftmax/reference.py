"""The notebook's softmax classifier, faithful, in pure NumPy: the ground truth.

Layout is features-major, as in the notebook: ``X`` is ``(features, batch)``,
``Y`` and ``Yhat`` are ``(classes, batch)`` and one ``Dense`` weight matrix
``W`` of shape ``(units, features + 1)`` holds the bias in its last column
(the *bias trick*)::

    Z = W @ [X; 1]          A = softmax(Z)          L = mean_i(-y_i . log a_i)

Conventions kept from the notebook (the TensorFlow side is checked against them):

* gradients flow per sample -- column ``i`` of an upstream gradient is
  ``dL_i/d(.)`` for that sample's loss ``L_i`` -- and ``Dense.backward`` divides
  the weight gradient by the batch size ``b``, so it is the gradient of the
  *mean* batch loss ``L``;
* ``generate_batch_indices`` and ``train`` fix how random numbers are drawn
  (see ``train``); the TensorFlow trainer replicates that to get the same run.

dtype: float64 by default; float32 works end to end. ``Dense`` weights are
``dtype`` (default float64) and its inputs are cast to the weights' dtype;
``train`` uses ``dtype``, or ``X``'s dtype when that is float32/float64, else
float64. No TensorFlow is imported here. ``train(X_train, Y_train)`` returns
``(dense, losses)``; ``accuracy(dense, X_test, y_test)`` takes labels or one-hot.
"""

import numpy as np

from tfsoftmax.constants import BATCH_SIZE, EPOCHS, LEARNING_RATE, SEED
from tfsoftmax.divergence import check_step_finite
from tfsoftmax.validation import (
    check_class_indices,
    check_learning_rate,
    check_learning_rate_in_dtype,
    check_matrix,
    check_positive_int,
    check_rng,
    is_one_hot,
    reject_integer_features,
)

__all__ = [
    "Dense",
    "Layer",
    "Softmax",
    "accuracy",
    "cce",
    "cce_gradient",
    "dense_weight_gradient",
    "generate_batch_indices",
    "predict",
    "softmax",
    "softmax_backward",
    "train",
]

_FLOATS = (np.float32, np.float64)
_METHODS = ("loop", "vectorized")


# --------------------------------------------------------------------------- validation
def _check_method(kind, method):
    if method not in _METHODS:
        raise ValueError(f"unknown {kind} method {method!r}; expected one of {_METHODS}")


def _float_dtype(dtype, like=None):
    """``dtype`` if given (float32/float64 only); else ``like``'s if float32/64; else float64."""
    if dtype is None:
        dtype = like.dtype if like is not None and like.dtype in _FLOATS else np.float64
    if np.dtype(dtype) not in _FLOATS:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return np.dtype(dtype)


def _check_features(X, rows=None, why_rows=""):
    """``X`` as :func:`~tfsoftmax.validation.check_matrix` checks it, and not integer pixels."""
    return reject_integer_features("X", check_matrix("X", X, rows, why_rows=why_rows))


def _check_one_hot(Y, classes, batch, why_rows=""):
    Y = check_matrix("Y", Y, classes, batch, why_rows, " (one per sample in X)")
    if not is_one_hot(Y, axis=0):
        raise ValueError("Y must be one-hot: every column 0/1 with exactly one 1")
    return Y


def _with_ones(X):
    """``[X; 1]``: the bias trick's extra input row of ones."""
    return np.vstack([X, np.ones((1, X.shape[1]), dtype=X.dtype)])


# --------------------------------------------------------------------------- math
def softmax(Z):
    """Softmax of each column: ``a_k = exp(z_k - max z) / sum_j exp(z_j - max z)``.

    Subtracting the column max changes nothing mathematically and keeps ``exp``
    from overflowing (the notebook used ``tf.nn.softmax(Z, axis=0)``).
    """
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def softmax_backward(A, G, method="vectorized"):
    """``dL/dZ`` from ``A = softmax(Z)`` and ``G = dL/dA``, column by column.

    Per sample the Jacobian is ``J = da/dz = diag(a) - a a^T`` (symmetric), so
    ``dL/dz = J^T g = a*g - a (a^T g) = a * (g - a.g)``; for the whole batch::

        dZ = A * (G - sum(A * G, axis=0))

    ``"loop"`` is the notebook's per-sample product ``((I - 1 a^T) * a) @ g``
    (``* a`` scales row ``i`` by ``a_i``: ``diag(a) (I - 1 a^T) = J``), the
    obviously-correct twin; ``"vectorized"`` is the line above.
    """
    _check_method("softmax", method)
    if method == "vectorized":
        return A * (G - np.sum(A * G, axis=0, keepdims=True))
    I = np.identity(A.shape[0])  # noqa: E741 -- the notebook's identity matrix
    dZ = np.empty(G.shape, dtype=np.result_type(A, G))
    for b in range(G.shape[1]):
        a = A[:, b].reshape(-1, 1)
        dZ[:, b] = np.dot((I - a.T) * a, G[:, b])
    return dZ


def dense_weight_gradient(G, X_with_ones, method="vectorized"):
    """``dL/dW = (1/b) sum_i g_i x_i^T = (1/b) G [X; 1]^T`` for a batch of ``b``.

    ``G`` is ``(units, b)`` with per-sample columns ``g_i = dL_i/dz_i``;
    ``"loop"`` sums the notebook's per-sample outer products.
    """
    _check_method("dense", method)
    b = G.shape[1]
    if method == "vectorized":
        return (1 / b) * np.dot(G, X_with_ones.T)
    grad = np.zeros((G.shape[0], X_with_ones.shape[0]), dtype=np.result_type(G, X_with_ones))
    for i in range(b):
        grad += np.dot(G[:, i].reshape(-1, 1), X_with_ones[:, i].reshape(-1, 1).T)
    return (1 / b) * grad


def cce(Y, Yhat):
    """Mean categorical cross-entropy ``L = (1/b) sum_i -y_i . log(yhat_i)``.

    ``Yhat`` is clipped below at ``tiny``, the smallest positive normal number
    of its dtype, ``yhat <- max(yhat, tiny)``: an entry where ``Y = 0`` then
    contributes ``0 * log(tiny) = 0`` (never ``0 * log 0 = NaN``) and one where
    ``Y = 1`` at most ``-log(tiny)`` (708.4 in float64, 87.3 in float32). For
    ``yhat >= tiny`` this is exactly the notebook's
    ``np.mean(np.sum(-Y*np.log(Yhat), axis=0))``.
    """
    Yhat = np.maximum(Yhat, np.finfo(Yhat.dtype).tiny)
    return np.mean(np.sum(-Y * np.log(Yhat), axis=0))


def cce_gradient(Y, Yhat):
    """Per-sample gradient ``dL_i/dyhat_i = -y_i / yhat_i`` (the notebook's ``-Y/Yhat``).

    Same clip as :func:`cce`: ``0 / tiny = 0`` where ``Y = 0``, and ``1 / tiny``
    is finite (a subnormal ``yhat`` would give ``inf``). Not divided by ``b``:
    ``Dense.backward`` takes the batch mean.
    """
    Yhat = np.maximum(Yhat, np.finfo(Yhat.dtype).tiny)
    return -Y / Yhat


# --------------------------------------------------------------------------- layers
class Layer:
    """A layer with ``forward``/``backward``; keeps its last ``input`` and ``output``."""

    def __init__(self):
        self.input = None
        self.output = None

    def forward(self, input):
        raise NotImplementedError

    def backward(self, output_gradient, learning_rate):
        raise NotImplementedError


class Dense(Layer):
    """``Z = W @ [X; 1]`` with ``W`` of shape ``(output_size, input_size + 1)``.

    Initialised as the notebook: ``W[:, :-1] = 0.01 * rng.standard_normal((output_size,
    input_size))`` (drawn in float64, then cast to ``dtype``), ``W[:, -1] = 0.01``.
    ``rng`` is a ``numpy.random.Generator``, a seed, or ``None`` (fresh entropy).
    ``method`` picks the weight-gradient form (see :func:`dense_weight_gradient`);
    the layers default to the notebook's ``"loop"``, :func:`train` uses ``"vectorized"``.
    """

    def __init__(self, input_size, output_size, rng=None, *, method="loop", dtype=np.float64):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("output_size", output_size)
        _check_method("dense", method)
        dtype = _float_dtype(dtype)
        rng = check_rng(rng)
        weights = np.empty((output_size, input_size + 1))  # bias trick
        weights[:, :-1] = 0.01 * rng.standard_normal((output_size, input_size))
        weights[:, -1] = 0.01
        self.weights = weights.astype(dtype)
        self.method = method
        self.weights_gradient = None

    @classmethod
    def from_weights(cls, weights, *, method="loop", dtype=None):
        """A ``Dense`` starting from a copy of ``weights`` ``(units, inputs + 1)``.

        dtype: ``dtype`` if given, else ``weights``' if float32/float64, else float64.
        """
        W = check_matrix("weights", weights)
        if W.shape[1] < 2:
            raise ValueError(f"weights must have >= 2 columns (inputs + bias), got {W.shape}")
        layer = cls(W.shape[1] - 1, W.shape[0], rng=0, method=method)  # then overwritten
        layer.weights = np.array(W, dtype=_float_dtype(dtype, W))
        return layer

    @property
    def input_size(self):
        return self.weights.shape[1] - 1

    @property
    def output_size(self):
        return self.weights.shape[0]

    def forward(self, input):
        """Store ``input = [X; 1]`` (cast to the weights' dtype), return ``Z = W @ input``."""
        X = _check_features(input, self.input_size, why_rows=" (the layer's input_size)")
        X = X.astype(self.weights.dtype, copy=False)
        self.input = _with_ones(X)
        self.output = np.dot(self.weights, self.input)
        return self.output

    def backward(self, output_gradient, learning_rate):
        """SGD step on ``G = dL_i/dz_i`` (per-sample columns); returns ``dL_i/dx_i``.

        ``dW = (1/b) G [X; 1]^T`` is stored as ``self.weights_gradient``, then
        ``W <- W - learning_rate * dW``. The returned input gradient uses the
        weights before the step, bias row dropped: ``W[:, :-1]^T G`` (features x b;
        per sample, like ``G``). Bad arguments raise before anything changes.
        """
        if self.input is None:
            raise RuntimeError("Dense.backward called before Dense.forward")
        check_learning_rate(learning_rate)
        G = check_matrix("output_gradient", output_gradient, *self.output.shape)
        grad = dense_weight_gradient(G, self.input, self.method)
        input_gradient = np.dot(self.weights[:, :-1].T, G)
        self.weights_gradient = grad
        self.weights = self.weights - self.weights.dtype.type(learning_rate) * grad
        return input_gradient


class Softmax(Layer):
    """Column-wise softmax; ``method`` (``"loop"`` | ``"vectorized"``) picks the backward.

    The default is the notebook's ``"loop"``; :func:`train` uses ``"vectorized"``.
    """

    def __init__(self, method="loop"):
        super().__init__()
        _check_method("softmax", method)
        self.method = method

    def forward(self, input):
        self.input = check_matrix("Z", input)
        self.output = softmax(self.input)
        return self.output

    def backward(self, output_gradient, learning_rate=None):
        """``dL/dZ = A * (G - sum(A * G, axis=0))``; see :func:`softmax_backward`."""
        if self.output is None:
            raise RuntimeError("Softmax.backward called before Softmax.forward")
        G = check_matrix("output_gradient", output_gradient, *self.output.shape)
        return softmax_backward(self.output, G, self.method)


# --------------------------------------------------------------------------- training
def generate_batch_indices(num_samples, batch_size, rng=None):
    """Shuffled sample indices split into batches of ``batch_size`` (last one partial).

    Exactly one ``rng.permutation(num_samples)`` call, nothing else drawn::

        np.split(perm, np.arange(batch_size, num_samples, batch_size))

    ``rng``: a ``numpy.random.Generator`` (consumed), a seed, or ``None``.
    """
    check_positive_int("num_samples", num_samples)
    check_positive_int("batch_size", batch_size)
    perm = check_rng(rng).permutation(num_samples)
    return np.split(perm, np.arange(batch_size, num_samples, batch_size))


def train(
    X,
    Y,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    learning_rate=LEARNING_RATE,
    seed=SEED,
    softmax_method="vectorized",
    initial_weights=None,
    verbose=0,
    on_epoch_end=None,
    *,
    dense_method="vectorized",
    dtype=None,
):
    """The notebook's mini-batch SGD; returns ``(dense, losses)``.

    Per batch: ``Z = W [X_b; 1]``, ``A = softmax(Z)``, ``loss_b = cce(Y_b, A)``
    (before the update), then ``cce_gradient -> Softmax.backward ->
    Dense.backward``. ``losses[e] = sum_b loss_b / number_of_batches`` (float64).

    Seeding contract (replicated by the TensorFlow trainer): the weights come
    from ``Dense(features, classes, rng=np.random.default_rng(seed))`` unless
    ``initial_weights`` is given; the batch order from a *separate*
    ``shuffle_rng = np.random.default_rng(seed)``, one
    ``generate_batch_indices(n, batch_size, shuffle_rng)`` call per epoch.
    On MNIST with the notebook's settings (the defaults) and ``seed=0`` the loss
    is 1.4412 after epoch 1 and 0.3815 after epoch 20, test accuracy 0.9044
    (the notebook: 1.4424, 0.3819, 0.9035); see ``tests/test_reference.py``.

    dtype: ``dtype`` if given, else ``X``'s if float32/float64, else float64;
    ``X``, ``Y`` and the weights are all cast to it. ``verbose=1`` prints
    ``Epoch %d: loss = %f``. ``on_epoch_end(epoch, loss, dense)`` is called after
    each epoch with the 0-based ``epoch`` (index into ``losses``); copy
    ``dense.weights`` to keep a snapshot. Every argument is checked before the
    first step; a bad one raises ``ValueError``.

    A NaN or inf logit, loss or weight raises ``TrainingDivergedError`` (epoch, batch).
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_learning_rate(learning_rate)
    _check_method("softmax", softmax_method)
    _check_method("dense", dense_method)
    dtype = _float_dtype(dtype, np.asarray(X))
    with np.errstate(over="ignore"):  # the cast's overflow is the error reported
        check_learning_rate_in_dtype(learning_rate, float(dtype.type(learning_rate)), dtype.name)
    X = _check_features(X).astype(dtype, copy=False)
    features, n = X.shape
    if initial_weights is None:
        Y = _check_one_hot(Y, None, n).astype(dtype, copy=False)
        rng = check_rng(seed, "seed")
        dense = Dense(features, Y.shape[0], rng, method=dense_method, dtype=dtype)
    else:
        W = check_matrix("initial_weights", initial_weights)
        if W.shape[1] != features + 1:
            raise ValueError(
                f"X has {features} rows but initial_weights {W.shape} expects {W.shape[1] - 1}"
            )
        Y = _check_one_hot(Y, W.shape[0], n, " (initial_weights' rows)").astype(dtype, copy=False)
        dense = Dense.from_weights(W, method=dense_method, dtype=dtype)
    activation = Softmax(softmax_method)
    shuffle_rng = check_rng(seed, "seed")

    losses = np.empty(epochs, dtype=np.float64)
    for epoch in range(epochs):
        batches = generate_batch_indices(n, batch_size, shuffle_rng)
        loss = 0.0
        for batch, idx in enumerate(batches):
            Yb = Y[:, idx]
            with np.errstate(over="ignore", invalid="ignore"):  # reported just below
                Z = dense.forward(X[:, idx])
                check_step_finite(epoch, batch, logits=Z)
                A = activation.forward(Z)
                loss += float(cce(Yb, A))
                dense.backward(activation.backward(cce_gradient(Yb, A)), learning_rate)
            check_step_finite(epoch, batch, loss=loss, weights=dense.weights)
        losses[epoch] = loss / len(batches)
        if verbose:
            print(f"Epoch {epoch + 1}: loss = {losses[epoch]:f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[epoch], dense)
    return dense, losses


def predict(dense, X):
    """Class indices ``argmax_k softmax(W [X; 1])_k`` per column (no layer state changes)."""
    X = _check_features(X, dense.input_size, why_rows=" (the layer's input_size)")
    X = X.astype(dense.weights.dtype, copy=False)
    return np.argmax(softmax(np.dot(dense.weights, _with_ones(X))), axis=0)


def accuracy(dense, X, y):
    """Fraction of columns of ``X`` classified right.

    ``y``: integer labels of shape ``(batch,)``, or one-hot ``(classes, batch)``
    (features-major, like ``Y`` in :func:`train`).
    """
    pred = predict(dense, X)
    y = np.asarray(y)
    if y.ndim == 2:
        y = np.argmax(_check_one_hot(y, dense.output_size, pred.size), axis=0)
    elif y.shape != pred.shape:
        raise ValueError(f"y has shape {y.shape} but X has {pred.size} columns")
    else:
        y = check_class_indices(y, "y", dense.output_size)
    return float(np.mean(y == pred))
