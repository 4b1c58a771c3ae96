"""train_sgd used like model.fit: learning-rate schedules and callbacks, the callback
protocol, Keras losses, any model, tf.data datasets."""

import csv
import importlib.util

import numpy as np
import pytest
from problems import linear_problem

from tfsoftmax._tf import keras, tf
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.training import TrainingDivergedError, train_sgd

SETTINGS = dict(batch_size=10, seed=3, verbose=0)


X, LABELS, Y, INITIAL = linear_problem(samples=53)


def _model(dtype="float64", compiled=False):
    model, loss = notebook_model("custom", INITIAL, dtype=dtype)
    if compiled:
        model.compile(keras.optimizers.SGD(0.7), loss)
    return model, loss


def _numpy_sgd(w, batches, rates):
    """Hand-written SGD of the bias-trick softmax classifier, one rate per step."""
    w = np.array(w, dtype=np.float64)
    for (x, y), rate in zip(batches, rates, strict=True):
        z = x @ w[:, :-1].T + w[:, -1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / len(x)
        w -= rate * (g.T @ np.hstack([x, np.ones((len(x), 1))]))
    return w


def _in_order(x, y, batch_size):
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


# --- the learning rate --------------------------------------------------------------
@pytest.mark.parametrize("compiled", [False, True])
def test_learning_rate_scheduler_sets_the_rate_that_is_used(compiled):
    # Rate 0 from the second epoch on: the weights stop moving after epoch 1.
    model, loss = _model(compiled=compiled)
    before = getattr(model, "optimizer", None)
    after_first = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: after_first.append(get_notebook_weights(model))
    )
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.5 if epoch == 0 else 0.0)
    history = train_sgd(model, X, Y, epochs=3, loss=loss, callbacks=[schedule, keep], **SETTINGS)
    assert not np.array_equal(after_first[0], INITIAL)
    np.testing.assert_array_equal(get_notebook_weights(model), after_first[0])
    plain, _ = _model()
    train_sgd(plain, X, Y, epochs=1, learning_rate=0.5, loss=loss, **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(plain), after_first[0])
    assert len(history.loss) == 3
    assert getattr(model, "optimizer", None) is before  # put back (or absent again)


def test_reduce_lr_on_plateau_and_csv_logger_record_the_rates_used(tmp_path):
    # Full-batch gradient descent (one batch: the order does not matter). The first
    # epoch is an improvement (over inf), the second is not by min_delta: the rate is
    # halved after it. The same as three one-epoch calls at 0.4, 0.4, 0.2.
    model, loss = _model()
    path = tmp_path / "log.csv"
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=9)
    logger = keras.callbacks.CSVLogger(str(path))
    train_sgd(
        model, X, Y, epochs=3, batch_size=len(X), learning_rate=0.4, loss=loss,
        callbacks=[reduce, logger], verbose=0,
    )  # fmt: skip
    expected, _ = _model()
    for rate in (0.4, 0.4, 0.2):
        train_sgd(expected, X, Y, epochs=1, batch_size=len(X), learning_rate=rate, verbose=0)
    np.testing.assert_allclose(
        get_notebook_weights(model), get_notebook_weights(expected), rtol=0, atol=1e-14
    )
    rows = list(csv.DictReader(path.open()))
    assert [float(row["learning_rate"]) for row in rows] == [0.4, 0.4, 0.2]


def test_a_schedule_is_indexed_by_the_global_step():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=4, decay_rate=0.5)
    model, loss = _model()
    history = train_sgd(
        model,
        X,
        Y,
        epochs=2,
        learning_rate=schedule,
        loss=loss,
        batch_size=10,
        verbose=0,
        seed=None,
    )
    assert history.params["learning_rate"]["schedule"] == "ExponentialDecay"
    steps = 12  # 2 epochs of 6 batches
    rates = [float(schedule(step)) for step in range(steps)]
    assert history.history["learning_rate"] == [rates[5], rates[11]]


def test_a_callable_rate_gets_the_step_and_a_callback_cannot_set_a_schedule():
    seen = []

    def rate(step):
        seen.append(step)
        return 0.1

    model, loss = _model()
    train_sgd(model, X, Y, epochs=2, learning_rate=rate, loss=loss, **SETTINGS)
    assert sorted(set(seen)) == list(range(12))
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1)
    with pytest.raises(TypeError, match="cannot be set by a callback"):
        train_sgd(model, X, Y, epochs=1, learning_rate=rate, callbacks=[scheduler], **SETTINGS)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed"
)
def test_tensorboard_logs_the_rate_used_and_batch_summaries(tmp_path):
    model, loss = _model(dtype="float32")
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: [0.3, 0.05][epoch]),
        keras.callbacks.TensorBoard(str(tmp_path), update_freq=2),
    ]
    train_sgd(model, X.astype("float32"), Y, epochs=2, loss=loss, callbacks=callbacks, **SETTINGS)
    tags = {}
    for event_file in (tmp_path / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.dtype.kind != "f":  # the model summary (text)
                    continue
                number = float(array)
                tags.setdefault(value.tag, []).append((event.step, number))
    assert [round(v, 6) for _, v in sorted(tags["epoch_learning_rate"])] == [0.3, 0.05]
    assert "batch_loss" in tags and len(tags["batch_loss"]) >= 2


# --- the callback protocol ----------------------------------------------------------
class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, dict(logs)))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", dict(logs)))


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_batch_hooks_params_and_test_hooks(steps_per_execution):
    model, loss = _model()
    recorder = _Recorder()
    history = train_sgd(
        model, X, Y, epochs=2, loss=loss, callbacks=[recorder],
        validation_data=(X[:20], Y[:20]), steps_per_execution=steps_per_execution, **SETTINGS,
    )  # fmt: skip
    assert recorder.params["epochs"] == 2 and recorder.params["steps"] == 6
    assert recorder.params["verbose"] == 0
    starts = list(range(0, 5, steps_per_execution)) + [5]  # the partial batch on its own
    ends = [min(s + steps_per_execution, 5) - 1 for s in starts[:-1]] + [5]
    epoch = [("begin", s) for s in starts]
    assert [c for c in recorder.calls if c[0] == "begin"] == epoch * 2
    assert [c[1] for c in recorder.calls if c[0] == "end"] == ends * 2
    last_end = [c for c in recorder.calls if c[0] == "end"][-1][2]
    assert last_end["loss"] == pytest.approx(history.loss[-1], rel=1e-12)
    test_ends = [c[1] for c in recorder.calls if c[0] == "test_end"]
    assert [logs["loss"] for logs in test_ends] == pytest.approx(history.history["val_loss"])
    # Batch hooks change when the engine is called, not the numbers.
    plain, _ = _model()
    train_sgd(plain, X, Y, epochs=2, loss=loss, **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(plain), get_notebook_weights(model))


def test_model_checkpoint_saves_every_n_batches(tmp_path):
    model, loss = _model()
    pattern = str(tmp_path / "w-{epoch}-{batch}.weights.h5")
    saver = keras.callbacks.ModelCheckpoint(pattern, save_weights_only=True, save_freq=4)
    train_sgd(model, X, Y, epochs=2, loss=loss, callbacks=[saver], **SETTINGS)
    assert len(list(tmp_path.glob("w-*.weights.h5"))) == 3  # 12 batches: after 4, 8, 12
    fresh, _ = _model()
    fresh.load_weights(str(sorted(tmp_path.glob("w-2-*.weights.h5"))[-1]))
    np.testing.assert_array_equal(get_notebook_weights(fresh), get_notebook_weights(model))


def test_progbar_logger_replaces_the_progress_bar(capsys):
    model, loss = _model()
    bar = keras.callbacks.ProgbarLogger()
    train_sgd(model, X, Y, epochs=2, loss=loss, callbacks=[bar], batch_size=10, verbose=1)
    out = capsys.readouterr().out
    assert "6/6" in out and "loss" in out and out.count("Epoch 1/2") == 1


def test_backup_and_restore_resumes_bit_identically(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    straight, loss = _model()
    train_sgd(straight, X, Y, epochs=4, loss=loss, **SETTINGS)
    model, _ = _model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="crash"):
        train_sgd(model, X, Y, epochs=4, loss=loss, callbacks=[backup, Crash()], **SETTINGS)
    model, _ = _model()  # a new process: the initial weights again
    history = train_sgd(model, X, Y, epochs=4, loss=loss, callbacks=[backup], **SETTINGS)
    # BackupAndRestore (first in the list) saved epoch 1 before Crash raised.
    assert history.epoch == [2, 3]
    np.testing.assert_array_equal(get_notebook_weights(model), get_notebook_weights(straight))


def test_early_stopping_stops():
    model, loss = _model()
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10, patience=1)
    history = train_sgd(model, X, Y, epochs=10, loss=loss, callbacks=[stop], **SETTINGS)
    assert history.epoch == [0, 1]


def test_terminate_on_nan_sees_the_nan_and_the_run_stops_with_good_weights(capsys):
    model, loss = _model()
    kernel = model.layers[0].kernel

    def poison(batch, logs):  # after batch 3, a NaN weight: batch 4's loss is NaN
        if batch == 2:
            kernel.assign(np.full(kernel.shape, np.nan))

    poisoner = keras.callbacks.LambdaCallback(on_train_batch_end=poison)
    with pytest.raises(TrainingDivergedError, match="the loss became nan at epoch 1, batch 4"):
        train_sgd(
            model, X, Y, epochs=1, loss=loss,
            callbacks=[poisoner, keras.callbacks.TerminateOnNaN()], **SETTINGS,
        )  # fmt: skip
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)


# --- losses -------------------------------------------------------------------------
def _per_sample_cce(y_true, y_pred):
    return -tf.reduce_sum(y_true * tf.math.log(y_pred), axis=-1)


@pytest.mark.parametrize(
    "loss",
    [
        "categorical_crossentropy",
        "CategoricalCrossentropy",
        keras.losses.categorical_crossentropy,
        _per_sample_cce,
    ],
    ids=["name", "class-name", "keras-function", "own-function"],
)
def test_any_keras_loss_agrees_with_tfsoftmax_loss(loss):
    ours, default = _model()
    expected = train_sgd(ours, X, Y, epochs=2, loss=default, **SETTINGS)
    model, _ = _model()
    history = train_sgd(model, X, Y, epochs=2, loss=loss, **SETTINGS)
    np.testing.assert_allclose(history.loss, expected.loss, rtol=1e-12)
    np.testing.assert_allclose(
        get_notebook_weights(model), get_notebook_weights(ours), rtol=0, atol=1e-12
    )


def test_a_loss_that_is_not_reduced_is_refused():
    model, _ = _model()
    with pytest.raises(ValueError, match="reduction=None"):
        train_sgd(model, X, Y, loss=keras.losses.CategoricalCrossentropy(reduction=None))


# --- models -------------------------------------------------------------------------
class SubclassedClassifier(keras.Model):
    def __init__(self):
        super().__init__(dtype="float64")
        self.hidden = keras.layers.Dense(8, activation="relu", dtype="float64")
        self.out = keras.layers.Dense(4, activation="softmax", dtype="float64")

    def call(self, x):
        return self.out(self.hidden(x))


def test_a_subclassed_model_without_compute_output_shape_trains():
    keras.utils.set_random_seed(0)
    model = SubclassedClassifier()
    history = train_sgd(model, X, LABELS, epochs=30, learning_rate=0.5, **SETTINGS)
    assert history.loss[-1] < 0.7 * history.loss[0]


def test_an_embedding_model_trains_on_token_ids_and_float_models_still_refuse_integers():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, size=(120, 5))
    labels = (tokens[:, 0] >= 10).astype(np.int64)  # the class is in the first token
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(20, 4),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    history = train_sgd(model, tokens, labels, epochs=20, learning_rate=0.5, **SETTINGS)
    assert history.loss[-1] < 0.5 * history.loss[0]
    float_model, loss = _model()
    with pytest.raises(ValueError, match="integer dtype"):
        train_sgd(float_model, tokens[:, :6], labels, loss=loss)


# --- tf.data ------------------------------------------------------------------------
def _dataset(x, y, batch_size=10):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def test_a_dataset_trains_like_hand_written_sgd_over_its_batches():
    model, _ = _model()
    history = train_sgd(model, _dataset(X, Y), epochs=3, learning_rate=0.3, verbose=0)
    batches = _in_order(X, Y, 10)  # 5 full batches and a partial one of 3
    expected = _numpy_sgd(INITIAL, batches * 3, [0.3] * 18)
    np.testing.assert_allclose(get_notebook_weights(model), expected, rtol=0, atol=1e-10)
    assert history.params["steps"] == 6 and len(history.loss) == 3


def test_a_dataset_with_a_schedule_that_stops_after_the_first_epoch():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.25, 0.0])
    model, _ = _model()
    train_sgd(model, _dataset(X, LABELS), epochs=3, learning_rate=schedule, verbose=0)
    rates = [float(schedule(step)) for step in range(6)]
    assert rates == [0.25] * 6  # steps 0..5 (epoch 1) at 0.25; from step 6 on 0
    expected = _numpy_sgd(INITIAL, _in_order(X, Y, 10), rates)
    np.testing.assert_allclose(get_notebook_weights(model), expected, rtol=0, atol=1e-10)


def test_a_dataset_under_a_strategy_trains_like_hand_written_sgd():
    # The default strategy runs the data-parallel engine's distributed-dataset step
    # (experimental_distribute_dataset, the N all-reduce) in this process; two real
    # replicas: tests/test_distribute.py.
    model, _ = _model()
    strategy = tf.distribute.get_strategy()
    train_sgd(model, _dataset(X, Y), epochs=2, learning_rate=0.3, verbose=0, strategy=strategy)
    expected = _numpy_sgd(INITIAL, _in_order(X, Y, 10) * 2, [0.3] * 12)
    np.testing.assert_allclose(get_notebook_weights(model), expected, rtol=0, atol=1e-10)


def test_validation_on_a_dataset_equals_validation_on_arrays():
    one, loss = _model()
    two, _ = _model()
    a = train_sgd(one, X, Y, epochs=2, loss=loss, validation_data=(X, Y), **SETTINGS)
    b = train_sgd(
        two, X, Y, epochs=2, loss=loss, validation_data=_dataset(X, LABELS, 7), **SETTINGS
    )
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-12)
    assert a.history["val_accuracy"] == b.history["val_accuracy"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"checkpoint_dir": "ck"}, "checkpoint_dir needs in-memory arrays"),
        ({"y": Y}, "pass y=None"),
    ],
)
def test_a_dataset_refuses_what_it_does_not_support(kwargs, message, tmp_path):
    model, loss = _model()
    with pytest.raises(ValueError, match=message):
        train_sgd(model, _dataset(X, Y), loss=loss, **kwargs)
    weighted = tf.data.Dataset.from_tensor_slices((X, Y, np.ones(len(X)))).batch(10)
    with pytest.raises(ValueError, match="sample weights are not supported"):
        train_sgd(model, weighted, loss=loss)
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
