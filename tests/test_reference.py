"""The NumPy reference: twins agree, gradients match finite differences, the
seeding contract holds, bad input is refused untouched, and real MNIST
reproduces the notebook's figures."""

import numpy as np
import pytest

from tfsoftmax.reference import (
    Dense,
    Softmax,
    accuracy,
    cce,
    cce_gradient,
    dense_weight_gradient,
    generate_batch_indices,
    predict,
    softmax,
    softmax_backward,
    train,
)


def _problem(features=5, classes=4, batch=7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((features, batch)).astype(dtype)
    Y = np.eye(classes, dtype=dtype)[rng.integers(0, classes, batch)].T
    return X, Y


def _one_step(W, X, Y, lr=0.1, softmax_method="vectorized", dense_method="vectorized"):
    dense = Dense.from_weights(W, method=dense_method)
    act = Softmax(softmax_method)
    A = act.forward(dense.forward(X))
    dX = dense.backward(act.backward(cce_gradient(Y, A)), lr)
    return dense, dX


def _batch_loss(W, X, Y):
    return cce(Y, softmax(W @ np.vstack([X, np.ones((1, X.shape[1]))])))


def _central_differences(f, P, h=1e-6):
    grad = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        old = P[i]
        P[i] = old + h
        up = f()
        P[i] = old - h
        down = f()
        P[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b))


# ---------------------------------------------------------------- softmax
@pytest.mark.parametrize("shape", [(10, 200), (10, 1), (10, 37), (3, 5), (2, 1)])
def test_softmax_backward_loop_matches_vectorized(shape):
    rng = np.random.default_rng(sum(shape))
    A = softmax(3 * rng.standard_normal(shape))
    G = rng.standard_normal(shape)
    loop = softmax_backward(A, G, "loop")
    vec = softmax_backward(A, G, "vectorized")
    np.testing.assert_allclose(loop, vec, rtol=1e-12, atol=1e-12)
    # The loop is the notebook's Jacobian product J g with J = diag(a) - a a^T.
    for b in range(shape[1]):
        a = A[:, b]
        np.testing.assert_allclose(
            loop[:, b], (np.diag(a) - np.outer(a, a)) @ G[:, b], rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("method", ["loop", "vectorized"])
def test_softmax_then_cce_backward_is_a_minus_y(method):
    rng = np.random.default_rng(3)
    Y = np.eye(6)[rng.integers(0, 6, 50)].T
    layer = Softmax(method)
    A = layer.forward(rng.standard_normal((6, 50)))
    np.testing.assert_allclose(layer.backward(cce_gradient(Y, A)), A - Y, atol=1e-12)


def test_softmax_forward_is_stable_and_normalised():
    Z = np.array([[1.0, 1000.0, -1000.0], [2.0, 1001.0, -999.0], [3.0, 999.0, -1001.0]])
    A = softmax(Z)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-15)
    naive = np.exp(Z[:, 0]) / np.exp(Z[:, 0]).sum()
    np.testing.assert_allclose(A[:, 0], naive, rtol=1e-14)
    np.testing.assert_allclose(A[:, 1], np.exp([0, 1, -1]) / np.exp([0, 1, -1]).sum(), rtol=1e-14)
    np.testing.assert_allclose(A[:, 2], A[:, 1], rtol=1e-14)  # shift invariance


# ---------------------------------------------------------------- dense
@pytest.mark.parametrize("batch", [1, 7, 200])
def test_dense_weight_gradient_loop_matches_vectorized(batch):
    rng = np.random.default_rng(batch)
    G = rng.standard_normal((10, batch))
    Xb = np.vstack([rng.random((784, batch)), np.ones((1, batch))])
    loop = dense_weight_gradient(G, Xb, "loop")
    vec = dense_weight_gradient(G, Xb, "vectorized")
    assert loop.shape == (10, 785)
    np.testing.assert_allclose(loop, vec, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("softmax_method", ["loop", "vectorized"])
@pytest.mark.parametrize("dense_method", ["loop", "vectorized"])
def test_weight_gradient_matches_finite_differences(softmax_method, dense_method):
    X, Y = _problem()
    W = np.random.default_rng(1).standard_normal((4, 6))
    dense, _ = _one_step(W.copy(), X, Y, 0.1, softmax_method, dense_method)
    fd = _central_differences(lambda: _batch_loss(W, X, Y), W)
    assert _rel_err(dense.weights_gradient, fd) < 1e-6
    # ... and the step is W <- W - lr * grad, exactly.
    np.testing.assert_array_equal(dense.weights, W - 0.1 * dense.weights_gradient)


def test_input_gradient_matches_finite_differences():
    X, Y = _problem()
    W = np.random.default_rng(2).standard_normal((4, 6))
    _, dX = _one_step(W, X, Y)
    assert dX.shape == X.shape  # bias row dropped
    # Per-sample columns dL_i/dx_i = d(sum_i L_i)/dX = b * dL/dX.
    fd = _central_differences(lambda: X.shape[1] * _batch_loss(W, X, Y), X)
    assert _rel_err(dX, fd) < 1e-6


def test_dense_initialisation_contract():
    dense = Dense(784, 10, rng=np.random.default_rng(7))
    assert dense.weights.shape == (10, 785) and dense.weights.dtype == np.float64
    np.testing.assert_array_equal(dense.weights[:, -1], 0.01)
    expected = 0.01 * np.random.default_rng(7).standard_normal((10, 784))
    np.testing.assert_array_equal(dense.weights[:, :-1], expected)
    assert Dense(3, 2, rng=0, dtype=np.float32).weights.dtype == np.float32


def test_from_weights_copies_and_keeps_float_dtype():
    W = np.arange(12.0).reshape(3, 4)
    dense = Dense.from_weights(W)
    W[0, 0] = 99.0
    assert dense.weights[0, 0] == 0.0 and (dense.input_size, dense.output_size) == (3, 3)
    assert Dense.from_weights(W.astype(np.float32)).weights.dtype == np.float32


# ---------------------------------------------------------------- loss
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cce_matches_notebook_and_survives_zero_probabilities(dtype):
    Y = np.eye(3, dtype=dtype)
    Yhat = np.full((3, 3), 0.2, dtype=dtype) + 0.4 * Y
    assert cce(Y, Yhat) == np.mean(np.sum(-Y * np.log(Yhat), axis=0))
    np.testing.assert_array_equal(cce_gradient(Y, Yhat), -Y / Yhat)
    # Underflowed probabilities: Y = 0 entries give 0, Y = 1 entries -log(tiny).
    Yhat0 = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    Y0 = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=dtype)
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(cce(Y0, Yhat0), -np.log(tiny) / 2, rtol=1e-6)
    g = cce_gradient(Y0, Yhat0)
    assert np.isfinite(g).all() and g[0, 1] == -1 / tiny and g[1, 0] == 0.0
    assert np.isfinite(softmax_backward(Yhat0, g, "vectorized")).all()
    assert np.isfinite(softmax_backward(Yhat0, g, "loop")).all()


# ---------------------------------------------------------------- batches
def test_generate_batch_indices():
    batches = generate_batch_indices(1003, 200, np.random.default_rng(5))
    assert [len(b) for b in batches] == [200] * 5 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1003))
    perm = np.random.default_rng(5).permutation(1003)
    for got, want in zip(batches, np.split(perm, np.arange(200, 1003, 200)), strict=True):
        np.testing.assert_array_equal(got, want)
    again = generate_batch_indices(1003, 200, np.random.default_rng(5))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert [len(b) for b in generate_batch_indices(10, 50, 0)] == [10]
    # Exactly one permutation is drawn from the generator.
    rng, twin = np.random.default_rng(9), np.random.default_rng(9)
    generate_batch_indices(64, 8, rng)
    twin.permutation(64)
    assert rng.random() == twin.random()


# ---------------------------------------------------------------- training
def _train_by_hand(X, Y, epochs, batch_size, lr, seed):
    """The seeding contract spelled out, independent of train()."""
    dense = Dense(X.shape[0], Y.shape[0], rng=np.random.default_rng(seed), method="vectorized")
    act, shuffle_rng, losses = Softmax("vectorized"), np.random.default_rng(seed), []
    for _ in range(epochs):
        batches, total = generate_batch_indices(X.shape[1], batch_size, shuffle_rng), 0.0
        for idx in batches:
            A = act.forward(dense.forward(X[:, idx]))
            total += cce(Y[:, idx], A)
            dense.backward(act.backward(cce_gradient(Y[:, idx], A)), lr)
        losses.append(total / len(batches))
    return dense, np.array(losses)


def test_train_follows_the_seeding_contract():
    X, Y = _problem(features=6, classes=3, batch=23, seed=4)
    dense, losses = train(X, Y, epochs=3, batch_size=5, learning_rate=0.5, seed=11)
    by_hand, hand_losses = _train_by_hand(X, Y, 3, 5, 0.5, 11)
    assert losses.dtype == np.float64 and losses.shape == (3,)
    np.testing.assert_array_equal(losses, hand_losses)
    np.testing.assert_array_equal(dense.weights, by_hand.weights)
    other, other_losses = train(X, Y, epochs=3, batch_size=5, learning_rate=0.5, seed=12)
    assert not np.array_equal(other_losses, losses)


def test_train_loop_methods_match_and_initial_weights_are_used():
    X, Y = _problem(features=6, classes=3, batch=23, seed=4)
    W0 = np.random.default_rng(0).standard_normal((3, 7))
    kw = dict(epochs=2, batch_size=5, learning_rate=0.5, seed=1, initial_weights=W0)
    fast, fast_losses = train(X, Y, **kw)
    slow, slow_losses = train(X, Y, softmax_method="loop", dense_method="loop", **kw)
    np.testing.assert_allclose(slow.weights, fast.weights, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(slow_losses, fast_losses, rtol=1e-12)
    # One batch of everything: the epoch loss is the loss at W0, before the update.
    _, one = train(X, Y, **{**kw, "epochs": 1, "batch_size": 23})
    np.testing.assert_allclose(one[0], _batch_loss(W0, X, Y), rtol=1e-14)
    np.testing.assert_array_equal(W0, np.random.default_rng(0).standard_normal((3, 7)))


def test_train_callback_verbose_and_float32(capsys):
    X, Y = _problem(features=6, classes=3, batch=40, seed=2)
    seen = []
    dense, losses = train(
        X, Y, epochs=3, batch_size=8, learning_rate=0.5, verbose=1,
        on_epoch_end=lambda e, loss, d: seen.append((e, loss, d.weights.copy())),
    )  # fmt: skip
    assert [e for e, _, _ in seen] == [0, 1, 2]
    assert [loss for _, loss, _ in seen] == list(losses)
    np.testing.assert_array_equal(seen[-1][2], dense.weights)
    assert not np.array_equal(seen[0][2], seen[1][2])
    assert capsys.readouterr().out.splitlines()[0] == f"Epoch 1: loss = {losses[0]:f}"
    d32, l32 = train(X.astype(np.float32), Y, epochs=3, batch_size=8, learning_rate=0.5)
    assert d32.weights.dtype == np.float32
    np.testing.assert_allclose(l32, losses, rtol=1e-4)
    np.testing.assert_allclose(d32.weights, dense.weights, rtol=1e-3, atol=1e-5)


def test_predict_and_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = np.eye(3)[y].T * 4 + 0.3 * rng.standard_normal((3, 300))
    Y = np.eye(3)[y].T
    dense, _ = train(X, Y, epochs=5, batch_size=20, learning_rate=0.5)
    untrained = Dense(3, 3, rng=0)
    assert accuracy(dense, X, y) > 0.95 > accuracy(untrained, X, y)
    assert accuracy(dense, X, y) == accuracy(dense, X, Y) == np.mean(predict(dense, X) == y)
    dense.forward(X[:, :4])
    predict(dense, X)
    assert dense.input.shape == (4, 4)  # predict leaves the layer's state alone


# ---------------------------------------------------------------- bad input
X_OK, Y_OK = _problem(features=5, classes=4, batch=10, seed=8)


def _bad_y():
    Y = Y_OK.copy()
    Y[:, 3] = [1, 1, 0, 0]
    return Y


def _with(M, i, value):
    M = M.copy()
    M[i] = value
    return M


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": X_OK[:4]}, r"X has 4 rows but initial_weights \(4, 6\) expects 5"),
        ({"Y": Y_OK[:, :9]}, r"Y has 9 columns but 10 are expected \(one per sample in X\)"),
        ({"Y": Y_OK[:3]}, r"Y has 3 rows but 4 are expected \(initial_weights' rows\)"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 2.0}, "batch_size must be a positive integer"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive finite number"),
        ({"learning_rate": -0.1}, "learning_rate must be a positive finite number"),
        ({"learning_rate": np.nan}, "learning_rate must be a positive finite number"),
        ({"learning_rate": np.inf}, "learning_rate must be a positive finite number"),
        ({"Y": _bad_y()}, "Y must be one-hot"),
        ({"Y": Y_OK * 2}, "Y must be one-hot"),
        ({"X": _with(X_OK, (0, 0), np.nan)}, "X contains NaN or inf"),
        ({"X": _with(X_OK, (1, 2), np.inf)}, "X contains NaN or inf"),
        ({"X": np.zeros((5, 0)), "Y": np.zeros((4, 0))}, "X is empty"),
        ({"softmax_method": "fast"}, "unknown softmax method 'fast'"),
        ({"dense_method": "fast"}, "unknown dense method 'fast'"),
        ({"dtype": np.float16}, "dtype must be float32 or float64"),
    ],
)
def test_train_rejects_bad_input_before_doing_anything(kwargs, match):
    W0 = np.random.default_rng(0).standard_normal((4, 6))
    before, calls = W0.copy(), []
    args = {"X": X_OK, "Y": Y_OK, "initial_weights": W0, "epochs": 2, "batch_size": 3}
    args["on_epoch_end"] = lambda *a: calls.append(a)
    with pytest.raises(ValueError, match=match):
        train(**{**args, **kwargs})
    assert calls == []
    np.testing.assert_array_equal(W0, before)


def test_train_rejects_mismatched_x_without_initial_weights():
    with pytest.raises(ValueError, match="Y has 9 columns but 10 are expected"):
        train(X_OK, Y_OK[:, :9])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda d: d.forward(X_OK[:4]),
            r"X has 4 rows but 5 are expected \(the layer's input_size",
        ),
        (lambda d: d.forward(_with(X_OK, (2, 2), np.nan)), "X contains NaN or inf"),
        (lambda d: d.forward(X_OK[0]), "X must be 2-D"),
        (lambda d: d.backward(np.ones((4, 10)), 0), "learning_rate must be"),
        (lambda d: d.backward(np.ones((4, 10)), np.nan), "learning_rate must be"),
        (lambda d: d.backward(np.ones((4, 10)), True), "learning_rate must be"),
        (lambda d: d.backward(np.ones((4, 9)), 0.1), "output_gradient has 9 columns"),
        (lambda d: d.backward(np.ones((3, 10)), 0.1), "output_gradient has 3 rows"),
        (lambda d: d.backward(_with(np.ones((4, 10)), (0, 0), np.inf), 0.1), "output_gradient"),
    ],
)
def test_dense_rejects_bad_input_and_keeps_its_weights(call, match):
    dense = Dense(5, 4, rng=3)
    dense.forward(X_OK)
    weights, inp = dense.weights.copy(), dense.input.copy()
    with pytest.raises(ValueError, match=match):
        call(dense)
    np.testing.assert_array_equal(dense.weights, weights)
    np.testing.assert_array_equal(dense.input, inp)
    assert dense.weights_gradient is None


def test_other_bad_input():
    with pytest.raises(ValueError, match="unknown softmax method 'jacobian'"):
        Softmax("jacobian")
    with pytest.raises(ValueError, match="unknown dense method 'outer'"):
        Dense(3, 2, method="outer")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        generate_batch_indices(10, 0)
    with pytest.raises(ValueError, match="weights contains NaN or inf"):
        Dense.from_weights(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="y has shape"):
        accuracy(Dense(5, 4, rng=0), X_OK, np.zeros(9, dtype=int))
    with pytest.raises(RuntimeError, match="before Dense.forward"):
        Dense(5, 4, rng=0).backward(np.ones((4, 10)), 0.1)


# ---------------------------------------------------------------- real MNIST
@pytest.mark.mnist
def test_mnist_reproduces_the_notebook(mnist_features_major):
    """Notebook settings (lr 0.01, batch 200, 20 epochs), seed 0.

    Measured: epoch-1 loss 1.4412, epoch-20 loss 0.3815, test accuracy 0.9044
    (notebook: 1.4424, 0.3819, 0.9035). The 20 epochs take ~3 s on an idle 2-core
    CPU; on a busy one OpenBLAS' threads oversubscribe the cores and the same run
    takes 20-40 s (``OPENBLAS_NUM_THREADS=1``: ~6 s), so no wall-time assert here.
    """
    data = mnist_features_major  # conftest: the notebook's preprocessing, 784 x N float64
    dense, losses = train(data.x_train, data.y_train, 20, 200, learning_rate=0.01, seed=0)
    assert 1.40 <= losses[0] <= 1.50
    assert 0.37 <= losses[-1] <= 0.40
    assert np.all(np.diff(losses) < 0)
    assert 0.895 <= accuracy(dense, data.x_test, data.labels_test) <= 0.912
    assert accuracy(dense, data.x_test, data.y_test) == accuracy(
        dense, data.x_test, data.labels_test
    )
