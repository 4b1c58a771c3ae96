"""Eager PyTorch, the benchmark's ``torch-eager`` row (when ``torch`` is importable).

The same SGD as ``train_sgd`` (same weights, same batch order), written as
PyTorch users write a training loop: a Python loop over the batches, autograd,
an in-place update under ``torch.no_grad``::

    for each batch B of rng.permutation(N) split every b (the last one partial):
        Z = X_B W[:, :-1]ᵀ + W[:, -1]
        L = cross_entropy(Z, Y_B)                 (probability targets: -(1/b) Σ Y ⊙ log_softmax Z)
        L.backward();  W ← W - η ∇_W L
"""

import importlib.util
import time

import numpy as np

__all__ = ["TorchTrainer", "available"]


def available():
    """Is ``torch`` importable (without importing it)?"""
    return importlib.util.find_spec("torch") is not None


class TorchTrainer:
    """Eager SGD on ``(x, y)`` from ``weights`` ``(classes, features + 1)``."""

    def __init__(self, x, y, weights, *, batch_size, learning_rate, dtype="float32"):
        import torch

        self.torch = torch
        self.x = torch.from_numpy(np.array(x, dtype))  # a writable copy, as torch wants
        self.y = torch.from_numpy(np.array(y, dtype))
        self.weights = torch.tensor(np.asarray(weights, dtype), requires_grad=True)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)

    def epochs(self, count, seed):
        """``count`` epochs with ``default_rng(seed)``; ``(epoch losses, epoch seconds)``."""
        torch, w = self.torch, self.weights
        functional = torch.nn.functional
        rng = np.random.default_rng(seed)
        samples = int(self.x.shape[0])
        losses, seconds = [], []
        for _ in range(count):
            started = time.perf_counter()
            order = torch.from_numpy(rng.permutation(samples))
            batch_losses = []
            for index in torch.split(order, self.batch_size):
                xb, yb = self.x[index], self.y[index]
                loss = functional.cross_entropy(xb @ w[:, :-1].T + w[:, -1], yb)
                loss.backward()
                with torch.no_grad():
                    w -= self.learning_rate * w.grad
                w.grad = None
                batch_losses.append(loss.detach())
            losses.append(float(torch.stack(batch_losses).double().mean()))
            seconds.append(time.perf_counter() - started)
        return losses, seconds

    def predict(self, x):
        """Softmax probabilities ``(samples, classes)`` at the current weights."""
        with self.torch.no_grad():
            w = self.weights
            z = self.torch.from_numpy(np.asarray(x, self.x.numpy().dtype)) @ w[:, :-1].T + w[:, -1]
            return self.torch.softmax(z, dim=1).numpy()

    def numpy_weights(self):
        return self.weights.detach().numpy().copy()
