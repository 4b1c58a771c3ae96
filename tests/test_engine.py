"""The compiled engines: the cache (compiled_engine), trace_count, and the interface."""

import gc
import weakref

import numpy as np
import pytest

from tfsoftmax._tf import tf
from tfsoftmax.engine import (
    DataParallelEngine,
    Engine,
    SingleDeviceEngine,
    compiled_engine,
    trace_count,
)
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.models import notebook_model
from tfsoftmax.training import train_sgd


def _problem(samples=60, features=5, classes=3, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features))
    labels = rng.integers(0, classes, samples)
    initial = rng.normal(scale=0.1, size=(classes, features + 1))
    return x, labels, initial


def test_trace_count_counts_the_batch_loop_traces_per_model_and_loss():
    x, labels, initial = _problem()
    model, loss = notebook_model("custom", initial, dtype="float64")
    other_model, _ = notebook_model("custom", initial, dtype="float64")
    assert trace_count(model) == 0
    train_sgd(model, x, labels, epochs=1, batch_size=7, loss=loss, verbose=0)
    assert trace_count(model) == trace_count(model, loss) == 1
    # A new learning rate and more epochs: the same traced loop.
    train_sgd(model, x, labels, epochs=2, batch_size=7, learning_rate=0.2, loss=loss, verbose=0)
    assert trace_count(model, loss) == 1
    # A new batch size is a new input shape: one more trace of the same loop.
    train_sgd(model, x, labels, epochs=1, batch_size=9, loss=loss, verbose=0)
    assert trace_count(model, loss) == 2
    # Another loss object gets its own engine; the counts are per loss and add up.
    other_loss = CategoricalCrossentropy(dtype="float64")
    assert trace_count(model, other_loss) == 0
    train_sgd(model, x, labels, epochs=1, batch_size=7, loss=other_loss, verbose=0)
    assert trace_count(model, other_loss) == 1
    assert trace_count(model) == 3
    assert trace_count(other_model) == 0


def test_compiled_engine_is_cached_per_model_loss_and_settings():
    _, _, initial = _problem()
    model, loss = notebook_model("custom", initial)
    engine = compiled_engine(model, loss)
    assert isinstance(engine, SingleDeviceEngine)
    assert isinstance(engine, Engine)
    assert engine.loss_fn is loss
    assert compiled_engine(model, loss, jit_compile=True) is engine
    assert compiled_engine(model, loss, jit_compile=False) is not engine
    assert compiled_engine(model, CategoricalCrossentropy()) is not engine
    other_model, _ = notebook_model("custom", initial)
    assert compiled_engine(other_model, loss) is not engine


def test_engine_steps_are_the_sgd_update_and_the_loss_before_it():
    x, labels, initial = _problem(samples=8)
    y = np.eye(3)[labels]
    model, loss = notebook_model("custom", initial, dtype="float64")
    engine = compiled_engine(model, loss)
    xb, yb = tf.constant(x), tf.constant(y)
    expected_loss, _ = engine.evaluate(xb, yb)
    with tf.GradientTape() as tape:
        objective = loss(yb, model(xb))
    (gradient,) = tape.gradient(objective, model.trainable_variables)
    expected_weights = initial - 0.5 * gradient.numpy()
    step_loss, correct = engine.train_step(xb, yb, tf.constant(0.5, tf.float64))
    assert float(step_loss) == float(expected_loss)
    predictions = np.argmax(x @ initial[:, :-1].T + initial[:, -1], axis=1)
    assert int(correct) == int(np.sum(predictions == labels))
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), expected_weights, rtol=1e-12)


def test_run_batches_trains_only_the_batches_asked_for():
    x, labels, initial = _problem(samples=12)
    y = np.eye(3)[labels]
    model, loss = notebook_model("custom", initial, dtype="float64")
    engine = compiled_engine(model, loss)
    xb, yb = tf.constant(x.reshape(4, 3, -1)), tf.constant(y.reshape(4, 3, -1))
    lr = tf.constant(0.1, tf.float64)
    losses, _ = engine.run_batches(xb, yb, tf.constant(1), tf.constant(3), lr)
    losses = losses.numpy()
    assert losses[0] == 0.0 and losses[3] == 0.0
    assert np.all(losses[1:3] > 0)
    # The same two steps, one at a time, from the same start, give the same numbers.
    again, _ = notebook_model("custom", initial, dtype="float64")
    single = compiled_engine(again, loss)
    one = [float(single.train_step(xb[i], yb[i], lr)[0]) for i in (1, 2)]
    np.testing.assert_allclose(losses[1:3], one, rtol=1e-12)
    np.testing.assert_allclose(
        model.trainable_variables[0].numpy(), again.trainable_variables[0].numpy(), rtol=1e-12
    )


def test_data_parallel_engine_needs_a_model_built_in_the_strategy_scope():
    _, _, initial = _problem()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    model, loss = notebook_model("custom", initial)
    with pytest.raises(ValueError, match="strategy.scope"):
        compiled_engine(model, loss, strategy=strategy)
    with strategy.scope():
        scoped, loss = notebook_model("custom", initial)
    engine = compiled_engine(scoped, loss, strategy=strategy)
    assert isinstance(engine, DataParallelEngine)
    assert isinstance(engine, Engine)
    assert compiled_engine(scoped, loss, strategy=strategy) is engine
    assert compiled_engine(scoped, loss) is not engine


def test_a_trained_model_is_freed_with_its_engines():
    x, labels, initial = _problem()
    model, loss = notebook_model("custom", initial)
    train_sgd(model, x.astype("float32"), labels, epochs=1, batch_size=10, loss=loss, verbose=0)
    assert trace_count(model) == 1
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


def test_non_models_are_refused():
    with pytest.raises(TypeError, match="keras.Model"):
        trace_count("model")
    with pytest.raises(TypeError, match="keras.Model"):
        compiled_engine(object(), CategoricalCrossentropy())


def test_run_batches_gathers_the_rows_of_order_inside_the_loop():
    """``order`` (batches, batch) of sample indices: the same steps, to the bit, as
    the slices of the pre-gathered (batches, batch, features) tensor."""
    x, labels, initial = _problem(samples=30)
    y = np.eye(3)[labels]
    order = np.random.default_rng(5).permutation(30)[:24].reshape(4, 6)
    lr = tf.constant(np.array([0.1, 0.2, 0.3, 0.4]))
    results = []
    for indexed in (True, False):
        model, loss = notebook_model("custom", initial, dtype="float64")
        engine = compiled_engine(model, loss)
        if indexed:
            args = (tf.constant(x), tf.constant(y), 0, 4, lr, tf.constant(order, tf.int32))
        else:
            args = (tf.constant(x[order]), tf.constant(y[order]), 0, 4, lr)
        losses, correct = engine.run_batches(*args)
        results.append((losses.numpy(), int(correct), model.trainable_variables[0].numpy()))
    (losses, correct, weights), (losses2, correct2, weights2) = results
    np.testing.assert_array_equal(losses, losses2)
    np.testing.assert_array_equal(weights, weights2)
    assert correct == correct2 and np.all(losses > 0)


def test_epoch_orders_are_the_references_batches():
    from tfsoftmax import reference
    from tfsoftmax.epochs import EpochOrders

    rng, reference_rng = np.random.default_rng(3), np.random.default_rng(3)
    orders = EpochOrders(103, rng, 10, range(3))
    for epoch in range(3):
        full, tail = orders.next()
        assert full.dtype == tf.int32 and full.shape == (10, 10)
        expected = reference.generate_batch_indices(103, 10, reference_rng)
        got = [*full.numpy(), tail.numpy()]
        assert len(got) == len(expected) == 11
        for mine, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(mine, theirs)
        # The generator's state right after this epoch's draw, for checkpoints.
        after = orders.rng_after(epoch)
        assert after.bit_generator.state == reference_rng.bit_generator.state
