"""train_sgd: the notebook's loop, compiled — checked against the NumPy reference."""

import numpy as np
import pytest
from problems import linear_problem

from tfsoftmax import reference
from tfsoftmax._tf import keras
from tfsoftmax.engine import compiled_engine
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.training import TrainingDivergedError, train_sgd

_problem = linear_problem  # a learnable toy problem: labels from a hidden linear map


@pytest.mark.parametrize("kind", ["custom", "keras"])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_matches_reference_loss_and_weights_float64(kind, jit_compile):
    # 103 samples in batches of 10: ten full batches and a partial one of 3. Equal
    # losses and weights to 1e-12 need the same initial weights *and* the same
    # batch order as reference.train's generator (one permutation per epoch).
    x, _, y, initial = _problem()
    dense, losses = reference.train(
        x.T, y.T, epochs=4, batch_size=10, learning_rate=0.5, seed=7, initial_weights=initial
    )
    model, loss = notebook_model(kind, initial, dtype="float64")
    history = train_sgd(
        model,
        x,
        y,
        epochs=4,
        batch_size=10,
        learning_rate=0.5,
        seed=7,
        loss=loss,
        verbose=0,
        jit_compile=jit_compile,
    )
    np.testing.assert_allclose(history.loss, losses, rtol=0, atol=1e-12)
    np.testing.assert_allclose(get_notebook_weights(model), dense.weights, rtol=0, atol=1e-12)


def test_mean_batch_loss_is_measured_before_each_update():
    # One epoch, one batch: the recorded loss is the loss at the initial weights.
    x, _, y, initial = _problem(samples=8)
    model, loss = notebook_model("custom", initial, dtype="float64")
    before = float(loss(y, model(x)))
    history = train_sgd(model, x, y, epochs=1, batch_size=8, learning_rate=1.0, verbose=0)
    assert history.loss[0] == pytest.approx(before, abs=1e-12)
    assert float(loss(y, model(x))) < before


def test_integer_labels_equal_one_hot_labels():
    x, labels, y, initial = _problem()
    first, loss = notebook_model("custom", initial, dtype="float64")
    second, _ = notebook_model("custom", initial, dtype="float64")
    h1 = train_sgd(first, x, labels, epochs=2, batch_size=16, verbose=0, loss=loss)
    h2 = train_sgd(second, x, y, epochs=2, batch_size=16, verbose=0, loss=loss)
    assert h1.loss == h2.loss
    np.testing.assert_array_equal(get_notebook_weights(first), get_notebook_weights(second))


def test_history_has_accuracy_and_validation_metrics(tmp_path):
    x, labels, y, initial = _problem(samples=200)
    model, loss = notebook_model("custom", initial)
    history = train_sgd(
        model,
        x.astype("float32"),
        y,
        epochs=3,
        batch_size=20,
        learning_rate=1.0,
        validation_data=(x[:50].astype("float32"), labels[:50]),
        verbose=0,
        loss=loss,
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.history.values())
    predictions = np.argmax(model.predict(x[:50].astype("float32"), verbose=0), axis=1)
    assert history.history["val_accuracy"][-1] == pytest.approx(np.mean(predictions == labels[:50]))
    assert history.history["val_loss"][-1] == pytest.approx(
        float(loss(y[:50].astype("float32"), model(x[:50].astype("float32")))), rel=1e-5
    )
    rows = history.to_csv(tmp_path / "h.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(rows) == 4


def test_deeper_model_trains():
    from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax

    x, labels, y, _ = _problem(samples=256, features=8, classes=3)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            BiasTrickDense(16),
            keras.layers.ReLU(),
            BiasTrickDense(3),
            JacobianSoftmax(),
        ]
    )
    history = train_sgd(
        model, x.astype("float32"), labels, epochs=15, batch_size=32, learning_rate=0.5, verbose=0
    )
    assert history.loss[-1] < 0.8 * history.loss[0]


def test_second_call_reuses_the_compiled_loop():
    x, _, y, initial = _problem(samples=120)
    model, loss = notebook_model("custom", initial)
    train_sgd(model, x.astype("float32"), y, epochs=1, batch_size=12, loss=loss, verbose=0)
    compiled = compiled_engine(model, loss, True)
    traces = compiled.run_batches.experimental_get_tracing_count()
    train_sgd(
        model,
        x.astype("float32"),
        y,
        epochs=2,
        batch_size=12,
        learning_rate=0.3,
        loss=loss,
        verbose=1,
    )
    assert compiled.run_batches.experimental_get_tracing_count() == traces == 1


def test_callbacks_get_logs_and_can_stop_training():
    x, _, y, initial = _problem()
    model, loss = notebook_model("custom", initial)
    seen = []

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, dict(logs)))
            if epoch == 1:
                self.model.stop_training = True

    history = train_sgd(
        model,
        x.astype("float32"),
        y,
        epochs=5,
        batch_size=10,
        loss=loss,
        verbose=0,
        callbacks=[StopAfterTwo()],
    )
    assert [epoch for epoch, _ in seen] == [0, 1] and len(history.loss) == 2
    assert seen[1][1]["loss"] == pytest.approx(history.loss[1])


def test_verbose_zero_is_silent_and_two_prints_a_line_per_epoch(capsys):
    x, _, y, initial = _problem()
    model, loss = notebook_model("custom", initial)
    train_sgd(model, x.astype("float32"), y, epochs=2, batch_size=10, loss=loss, verbose=0)
    assert capsys.readouterr().out == ""
    train_sgd(model, x.astype("float32"), y, epochs=2, batch_size=10, loss=loss, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]


def test_divergence_stops_with_epoch_and_batch_and_keeps_good_weights():
    # The ops are stable (a saturated softmax just stops learning), so it takes
    # weights that overflow float32 to make the loss NaN: 1e3 · 1e38 > 3.4e38.
    rng = np.random.default_rng(0)
    x = 1e3 * rng.uniform(0, 1, (100, 6)).astype("float32")
    labels = rng.integers(0, 4, 100)
    initial = reference.Dense(6, 4, rng=0).weights
    model, loss = notebook_model("custom", initial)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch 2\b") as error:
        train_sgd(
            model, x, labels, epochs=3, batch_size=10, learning_rate=1e38, loss=loss, verbose=0
        )
    assert "restored" in str(error.value)
    np.testing.assert_array_equal(get_notebook_weights(model), initial.astype("float32"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"callbacks": None, "verbose": 3}, "verbose"),
        ({"validation_data": (np.zeros((3, 5)), np.zeros(3, int))}, "features"),
    ],
)
def test_bad_arguments_raise_before_any_change(kwargs, message):
    x, _, y, initial = _problem()
    model, loss = notebook_model("custom", initial)
    with pytest.raises(ValueError, match=message):
        train_sgd(model, x.astype("float32"), y, loss=loss, **{"verbose": 0, **kwargs})
    np.testing.assert_array_equal(get_notebook_weights(model), initial.astype("float32"))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.full((10, 6), np.nan), np.zeros(10, int), "NaN or infinite"),
        (np.zeros((10, 6), np.uint8), np.zeros(10, int), "integer dtype uint8"),
        (np.zeros((0, 6)), np.zeros(0, int), "empty"),
        (np.zeros((10, 6)), np.full(10, 4), r"outside \[0, 4\)"),
        (np.zeros((10, 6)), np.zeros(9, int), "9 labels but x has 10"),
        (np.zeros((10, 6)), np.ones((10, 4)), "not one-hot"),
        (np.zeros((10, 6)), np.eye(5)[np.zeros(10, int)], "5 classes but the model outputs 4"),
        (np.zeros((10, 7)), np.zeros(10, int), "7"),
    ],
)
def test_bad_data_is_named(x, y, message):
    *_, initial = _problem()
    model, loss = notebook_model("custom", initial)
    with pytest.raises(ValueError, match=message):
        train_sgd(model, x, y, loss=loss, verbose=0)
    np.testing.assert_array_equal(get_notebook_weights(model), initial.astype("float32"))


def test_dataset_smaller_than_one_batch_is_one_partial_batch():
    x, _, y, initial = _problem(samples=7)
    dense, losses = reference.train(
        x.T, y.T, epochs=3, batch_size=10, learning_rate=0.5, seed=2, initial_weights=initial
    )
    for verbose in (0, 1):
        model, loss = notebook_model("custom", initial, dtype="float64")
        history = train_sgd(
            model,
            x,
            y,
            epochs=3,
            batch_size=10,
            learning_rate=0.5,
            seed=2,
            loss=loss,
            verbose=verbose,
        )
        np.testing.assert_allclose(history.loss, losses, rtol=0, atol=1e-12)
        np.testing.assert_allclose(get_notebook_weights(model), dense.weights, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("samples", "batch_size"), [(103, 10), (40, 8), (7, 10)])
def test_shuffle_is_the_references_generate_batch_indices(samples, batch_size):
    """Each epoch's batches, read off ShuffledEpochs directly (the features are the
    sample indices), are exactly reference.generate_batch_indices with the same seed."""
    from tfsoftmax._tf import tf
    from tfsoftmax.epochs import ShuffledEpochs

    index = np.arange(samples, dtype=np.float64)[:, None]
    rng, reference_rng = np.random.default_rng(7), np.random.default_rng(7)
    epochs = ShuffledEpochs(tf.constant(index), tf.constant(index), rng, batch_size, range(3))
    try:
        for _ in range(3):
            full_x, full_y, tail_x, tail_y = (t.numpy() for t in epochs.next())
            expected = reference.generate_batch_indices(samples, batch_size, reference_rng)
            got = [batch[:, 0] for batch in full_x] + ([tail_x[:, 0]] if len(tail_x) else [])
            assert len(got) == len(expected)
            for mine, theirs in zip(got, expected, strict=True):
                np.testing.assert_array_equal(mine, theirs)
            np.testing.assert_array_equal(full_y, full_x)  # x and y stay paired
            np.testing.assert_array_equal(tail_y, tail_x)
    finally:
        epochs.close()
