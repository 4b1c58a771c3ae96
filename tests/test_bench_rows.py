"""The benchmark's alternative rows train the same thing as ``train_sgd``.

The JAX row (one jitted epoch, ``lax.scan``, gather in the step) and the
PyTorch row, given the same initial weights, seed and batches, must follow
``train_sgd``'s loss curve to float rounding -- otherwise their timings
compare different work. A small synthetic problem whose sample count is not a
multiple of the batch size, so the partial last batch is covered too.
"""

import numpy as np
import pytest

from tfsoftmax import reference
from tfsoftmax.bench import alternatives, jax_row, torch_row

SAMPLES, FEATURES, CLASSES, BATCH, EPOCHS = 450, 20, 5, 100, 3
# float32: the two programs sum in different orders; float64: rounding only.
TOLERANCE = {"float32": 2e-5, "float64": 1e-12}


def problem(dtype):
    rng = np.random.default_rng(7)
    x = rng.random((SAMPLES, FEATURES)).astype(dtype)
    labels = (x[:, :CLASSES] * np.arange(1, CLASSES + 1)).argmax(axis=1)  # learnable
    y = np.eye(CLASSES, dtype=dtype)[labels]
    weights = reference.Dense(FEATURES, CLASSES, rng=np.random.default_rng(0), dtype=dtype).weights
    return x, y, weights


def train_sgd_curve(x, y, weights, dtype, seed):
    from tfsoftmax.models import get_notebook_weights, notebook_model
    from tfsoftmax.training import train_sgd

    model, loss = notebook_model("custom", weights, dtype=dtype)
    history = train_sgd(
        model, x, y, epochs=EPOCHS, batch_size=BATCH, learning_rate=0.5, seed=seed,
        loss=loss, verbose=0,
    )  # fmt: skip
    return np.array(history.loss), get_notebook_weights(model)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("module", [jax_row, torch_row], ids=["jax", "torch"])
def test_the_row_follows_train_sgd_loss_curve(module, dtype):
    if not module.available():
        hint = "pip install -e '.[bench]'" if module is jax_row else "pip install torch"
        pytest.skip(f"{module.__name__.rsplit('.', 1)[1][:-4]} is not installed ({hint})")
    x, y, weights = problem(dtype)
    expected_losses, expected_weights = train_sgd_curve(x, y, weights, dtype, seed=3)
    cls = module.JaxTrainer if module is jax_row else module.TorchTrainer
    trainer = cls(x, y, weights, batch_size=BATCH, learning_rate=0.5, dtype=dtype)
    losses, seconds = trainer.epochs(EPOCHS, seed=3)
    assert len(seconds) == EPOCHS and all(s > 0 for s in seconds)
    assert expected_losses[-1] < 0.8 * expected_losses[0]  # it learns: the curve means something
    np.testing.assert_allclose(losses, expected_losses, rtol=TOLERANCE[dtype])
    np.testing.assert_allclose(
        trainer.numpy_weights(), expected_weights, rtol=0, atol=50 * TOLERANCE[dtype]
    )
    # Another seed is another batch order: the curve changes, so the match above is not luck.
    other = cls(x, y, weights, batch_size=BATCH, learning_rate=0.5, dtype=dtype)
    other_losses, _ = other.epochs(EPOCHS, seed=4)
    assert np.max(np.abs(np.array(other_losses) - expected_losses)) > 100 * TOLERANCE[dtype]


def test_uint8_twin_is_exact_for_pixels_over_255():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    scaled = (pixels / 255.0).astype(np.float32)
    assert np.array_equal(alternatives.to_uint8(scaled), pixels)


def test_an_unavailable_library_is_a_reason_not_an_error(monkeypatch):
    monkeypatch.setattr(jax_row, "available", lambda: False)
    x, y, weights = problem("float32")
    settings = {"batch_size": BATCH, "learning_rate": 0.5, "dtype": "float32"}
    with pytest.raises(alternatives.RowUnavailable, match="jax is not importable"):
        alternatives.trainer("jax-scan", x, y, weights, settings)
