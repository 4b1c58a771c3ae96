"""BiasTrickDense, JacobianSoftmax and the CCE loss as real Keras citizens.

Everything here runs real TensorFlow/Keras: Sequential and functional models,
fit/evaluate/predict, summary, config, .keras save/load (also in a fresh
process), SavedModel export, mixed precision, XLA, converters against
keras.layers.Dense, the error messages, and a full epoch on real MNIST next to
Keras' built-in Dense + softmax + CCE.
"""

import importlib.util
import io
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfsoftmax import ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import (
    BiasTrickDense,
    JacobianSoftmax,
    NotebookInitializer,
    from_bias_trick,
    to_bias_trick,
)
from tfsoftmax.losses import CategoricalCrossentropy, per_sample_categorical_crossentropy

# The directory holding the tfsoftmax package these tests import (for the subprocesses).
PACKAGE_ROOT = pathlib.Path(importlib.util.find_spec("tfsoftmax").origin).parents[1]


def blobs(n=600, features=12, classes=3, seed=0):
    """Three well-separated Gaussian clusters: (x float32, one-hot y float32)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    x = centers[labels] + rng.normal(size=(n, features))
    return x.astype("float32"), np.eye(classes, dtype="float32")[labels]


def softmax_classifier(inputs=12, units=3, method="jacobian", **dense_kwargs):
    """The notebook's model: BiasTrickDense + JacobianSoftmax."""
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            BiasTrickDense(units, **dense_kwargs),
            JacobianSoftmax(method=method),
        ]
    )


def keras_twin(model):
    """keras.layers.Dense + softmax with the same weights as a `softmax_classifier`."""
    w = model.layers[0].kernel
    twin = keras.Sequential(
        [keras.Input((w.shape[1] - 1,)), keras.layers.Dense(w.shape[0]), keras.layers.Softmax()]
    )
    twin.layers[0].set_weights(list(from_bias_trick(w)))
    return twin


# --- models, fit / evaluate / predict ------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sequential_fit_evaluate_predict(optimizer):
    x, y = blobs()
    model = softmax_classifier()
    twin = keras_twin(model)  # keras.layers.Dense + Softmax from the same weights

    def optimizer_instance():
        return keras.optimizers.SGD(0.1) if optimizer == "sgd" else keras.optimizers.Adam(0.05)

    model.compile(
        optimizer=optimizer_instance(), loss=CategoricalCrossentropy(), metrics=["accuracy"]
    )
    twin.compile(optimizer=optimizer_instance(), loss=keras.losses.CategoricalCrossentropy())
    history = model.fit(x, y, batch_size=50, epochs=4, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    # Converging is not enough (Adam converges with a wrong gradient too): the same
    # steps as Keras' own layers, so the same weights.
    twin_losses = twin.fit(x, y, batch_size=50, epochs=4, verbose=0, shuffle=False).history["loss"]
    np.testing.assert_allclose(losses, twin_losses, rtol=1e-4)
    np.testing.assert_allclose(
        model.layers[0].kernel.numpy(), to_bias_trick(*twin.layers[0].get_weights()), atol=1e-4
    )
    loss, accuracy = model.evaluate(x, y, batch_size=200, verbose=0)
    assert accuracy > 0.95
    probs = model.predict(x, batch_size=200, verbose=0)
    assert probs.shape == (600, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    expected = -np.mean(np.sum(y * np.log(probs), axis=1))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_functional_mlp_trains_with_both_softmax_methods():
    x, y = blobs(features=8)
    inputs = keras.Input((8,))
    hidden = keras.layers.ReLU()(BiasTrickDense(16)(inputs))
    jacobian = JacobianSoftmax(method="jacobian")(BiasTrickDense(3, name="logits")(hidden))
    model = keras.Model(inputs, jacobian)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=CategoricalCrossentropy())
    history = model.fit(x, y, batch_size=60, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    # The "vjp" backward is the same gradient as the "jacobian" one.
    vjp = keras.Model(inputs, JacobianSoftmax(method="vjp")(model.get_layer("logits").output))
    with tf.GradientTape(persistent=True) as tape:
        loss_j = CategoricalCrossentropy()(y, model(x))
        loss_v = CategoricalCrossentropy()(y, vjp(x))
    for gj, gv in zip(
        tape.gradient(loss_j, model.trainable_variables),
        tape.gradient(loss_v, vjp.trainable_variables),
        strict=True,
    ):
        np.testing.assert_allclose(gj, gv, rtol=1e-5, atol=1e-7)


def test_param_count_and_summary_match_dense():
    ours = softmax_classifier(inputs=784, units=10)
    theirs = keras_twin(ours)
    assert ours.count_params() == theirs.count_params() == 7850
    assert ours.layers[0].count_params() == theirs.layers[0].count_params()

    def summary(model):
        out = io.StringIO()
        model.summary(print_fn=lambda line, **kwargs: out.write(line + "\n"))
        return out.getvalue()

    ours_text, theirs_text = summary(ours), summary(theirs)
    assert "Total params: 7,850" in ours_text and "Total params: 7,850" in theirs_text
    assert "Trainable params: 7,850" in ours_text
    for model, text in ((ours, ours_text), (theirs, theirs_text)):
        row = next(line for line in text.splitlines() if model.layers[0].name in line)
        assert row.rstrip(" │").endswith("7,850"), row


# --- initialisation, regularisation, constraints ------------------------------------------


def test_glorot_default_is_dense_kernel_with_zero_bias_column():
    ours = BiasTrickDense(7, kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    theirs = keras.layers.Dense(7, kernel_initializer=keras.initializers.GlorotUniform(seed=3))
    ours.build((None, 40))
    theirs.build((None, 40))
    w = ours.kernel.numpy()
    assert w.shape == (7, 41)
    np.testing.assert_array_equal(w[:, :-1].T, theirs.kernel.numpy())  # fans: 40 in, 7 out
    np.testing.assert_array_equal(w[:, -1], 0.0)
    limit = np.sqrt(6.0 / (40 + 7))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit


def test_notebook_initializer_by_name_and_instance():
    layer = BiasTrickDense(10, kernel_initializer="notebook")
    assert isinstance(layer.kernel_initializer, NotebookInitializer)
    layer.build((None, 784))
    w = layer.kernel.numpy()
    np.testing.assert_array_equal(w[:, -1], np.float32(0.01))
    assert 0.0095 < w[:, :-1].std() < 0.0105 and abs(w[:, :-1].mean()) < 5e-4
    a = NotebookInitializer(seed=5)((4, 6)).numpy()
    np.testing.assert_array_equal(a, NotebookInitializer(seed=5)((4, 6)).numpy())
    assert not np.array_equal(a, NotebookInitializer(seed=6)((4, 6)).numpy())
    assert NotebookInitializer(seed=5)((4, 6), dtype="float64").dtype == tf.float64


def test_regularizer_and_constraint_act_like_dense_kernel_ones():
    ours = softmax_classifier(kernel_regularizer=keras.regularizers.L2(0.1))
    theirs = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1)),
            keras.layers.Softmax(),
        ]
    )
    theirs.layers[0].set_weights(list(from_bias_trick(ours.layers[0].kernel)))
    ours.layers[0].kernel.assign(ours.layers[0].kernel + 0.5)  # a bias column to leave out
    theirs.layers[0].set_weights(list(from_bias_trick(ours.layers[0].kernel)))
    np.testing.assert_allclose(sum(ours.losses), sum(theirs.losses), rtol=1e-6)

    layer = BiasTrickDense(3, kernel_constraint=keras.constraints.MaxNorm(1.0, axis=0))
    layer.build((None, 5))
    w = np.arange(18, dtype="float32").reshape(3, 6)
    constrained = layer.kernel.constraint(w).numpy()
    expected = keras.constraints.MaxNorm(1.0, axis=0)(w[:, :-1].T).numpy().T
    np.testing.assert_allclose(constrained[:, :-1], expected, rtol=1e-6)
    np.testing.assert_array_equal(constrained[:, -1], w[:, -1])


# --- config, saving, export ---------------------------------------------------------------


def test_get_config_from_config_round_trip():
    layer = BiasTrickDense(
        5,
        kernel_initializer=NotebookInitializer(seed=11),
        kernel_regularizer=keras.regularizers.L2(0.01),
        kernel_constraint=keras.constraints.MaxNorm(2.0),
        name="dense_bt",
    )
    config = layer.get_config()
    clone = BiasTrickDense.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.kernel_initializer, NotebookInitializer)
    assert isinstance(clone.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(clone.kernel_constraint, keras.constraints.MaxNorm)
    layer.build((None, 4))
    clone.build((None, 4))
    np.testing.assert_array_equal(layer.kernel.numpy(), clone.kernel.numpy())  # same seed

    by_name = BiasTrickDense(2, kernel_initializer="notebook")
    by_name = BiasTrickDense.from_config(by_name.get_config())
    assert isinstance(by_name.kernel_initializer, NotebookInitializer)

    softmax = JacobianSoftmax(axis=1, method="vjp", name="sm")
    assert JacobianSoftmax.from_config(softmax.get_config()).get_config() == softmax.get_config()
    loss = CategoricalCrossentropy(name="cce", reduction="sum")
    assert CategoricalCrossentropy.from_config(loss.get_config()).get_config() == {
        "name": "cce",
        "reduction": "sum",
    }


def _dense_arguments():
    """Every BiasTrickDense constructor argument, each set to a non-default value."""
    return dict(
        units=5,
        activation="tanh",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=4),
        bias_initializer=keras.initializers.Constant(0.25),
        kernel_regularizer=keras.regularizers.L2(0.01),
        bias_regularizer=keras.regularizers.L1(0.02),
        kernel_constraint=keras.constraints.MaxNorm(2.0),
        bias_constraint=keras.constraints.NonNeg(),
        name="dense_all",
        dtype="float64",
    )


def _assert_dense_has_arguments(layer, arguments):
    """The layer's attributes are the constructor arguments (compared through their configs)."""
    assert layer.units == arguments["units"]
    assert layer.activation is keras.activations.get(arguments["activation"])
    assert (layer.name, layer.dtype) == (arguments["name"], arguments["dtype"])
    for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                "kernel_constraint", "bias_constraint"):  # fmt: skip
        assert type(getattr(layer, key)) is type(arguments[key]), key
        assert getattr(layer, key).get_config() == arguments[key].get_config(), key


def test_config_holds_every_constructor_argument():
    # Not only from_config(get_config()) == get_config(), which holds when a key is
    # dropped on both sides: the config must carry each argument, the clone have it.
    arguments = _dense_arguments()
    config = BiasTrickDense(**arguments).get_config()
    assert config["units"] == 5 and config["activation"] == "tanh"
    assert config["name"] == "dense_all"
    for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                "kernel_constraint", "bias_constraint"):  # fmt: skip
        assert config[key]["config"] == arguments[key].get_config(), key
    _assert_dense_has_arguments(BiasTrickDense.from_config(config), arguments)

    for axis, method in ((1, "vjp"), ((1, 2), "jacobian"), (-1, "vjp")):
        config = JacobianSoftmax(axis=axis, method=method, name="sm").get_config()
        assert (config["axis"], config["method"], config["name"]) == (axis, method, "sm")
        clone = JacobianSoftmax.from_config(config)
        assert (clone.axis, clone.method, clone.name) == (axis, method, "sm")


@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_softmax_layer_backward_follows_its_method(monkeypatch, method):
    """The gradient path: "jacobian" builds the explicit Jacobians, "vjp" never does."""
    calls = []
    real = ops._explicit_jacobian_product
    monkeypatch.setattr(
        ops, "_explicit_jacobian_product", lambda a, g: calls.append(1) or real(a, g)
    )
    z = tf.constant(np.random.default_rng(9).normal(size=(4, 3)), "float32")
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(JacobianSoftmax(method=method)(z) * tf.range(3.0))
    gradient = tape.gradient(loss, z)
    assert len(calls) == (method == "jacobian")
    with tf.GradientTape() as tape:
        tape.watch(z)
        expected = tf.reduce_sum(tf.nn.softmax(z) * tf.range(3.0))
    np.testing.assert_allclose(gradient, tape.gradient(expected, z), rtol=1e-5, atol=1e-7)


def test_save_and_load_keeps_the_config_and_the_gradient_path(tmp_path, monkeypatch):
    x, y = blobs()
    model = keras.Sequential(
        [
            keras.Input((12,)),
            BiasTrickDense(3, activation="tanh", kernel_initializer="notebook"),
            JacobianSoftmax(axis=-1, method="vjp"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CategoricalCrossentropy())
    model.fit(x, y, batch_size=100, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for mine, theirs in zip(model.layers, loaded.layers, strict=True):
        assert theirs.get_config() == mine.get_config()
    assert (
        loaded.layers[1].method == "vjp" and loaded.layers[0].activation is keras.activations.tanh
    )

    calls = []
    real = ops._explicit_jacobian_product
    monkeypatch.setattr(
        ops, "_explicit_jacobian_product", lambda a, g: calls.append(1) or real(a, g)
    )
    gradients = []
    for m in (model, loaded):
        with tf.GradientTape() as tape:
            loss = CategoricalCrossentropy()(y, m(x))
        gradients.append(tape.gradient(loss, m.trainable_variables))
    assert calls == []  # the vjp backward, after loading too
    for mine, theirs in zip(*gradients, strict=True):
        np.testing.assert_array_equal(theirs, mine)
    # It keeps training exactly as the original would.
    for m in (model, loaded):
        m.fit(x, y, batch_size=100, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(loaded.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())


def _trained_model(x, y):
    model = softmax_classifier(kernel_initializer="notebook")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CategoricalCrossentropy())
    model.fit(x, y, batch_size=100, epochs=1, verbose=0)
    return model


def test_save_and_load_model_without_custom_objects(tmp_path):
    x, y = blobs()
    model = _trained_model(x, y)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[0], BiasTrickDense)
    assert isinstance(loaded.layers[1], JacobianSoftmax)
    assert isinstance(loaded.loss, CategoricalCrossentropy)
    assert isinstance(loaded.layers[0].kernel_initializer, NotebookInitializer)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    before = loaded.layers[0].kernel.numpy()
    history = loaded.fit(x, y, batch_size=100, epochs=1, verbose=0)  # and it keeps training
    assert not np.array_equal(loaded.layers[0].kernel.numpy(), before)
    assert np.isfinite(history.history["loss"]).all()


_LOAD_IN_FRESH_PROCESS = """
import sys
import numpy as np
{imports}
import keras
model = keras.models.load_model(sys.argv[1])
np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0))
print(type(model.layers[0]).__module__, type(model.loss).__name__)
"""


def _load_in_fresh_process(tmp_path, imports):
    x, y = blobs()
    model = _trained_model(x, y)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    script = _LOAD_IN_FRESH_PROCESS.format(imports=imports)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)]
        + [str(tmp_path / name) for name in ("m.keras", "p.npy", "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["tfsoftmax.layers", "CategoricalCrossentropy"]
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict(x, verbose=0))


def test_load_model_in_fresh_process_after_importing_layers_and_losses(tmp_path):
    _load_in_fresh_process(tmp_path, "import tfsoftmax.layers, tfsoftmax.losses")


def test_load_model_in_fresh_process_after_import_tfsoftmax(tmp_path):
    _load_in_fresh_process(tmp_path, "import tfsoftmax")


def test_export_savedmodel_serves(tmp_path):
    x, y = blobs()
    model = _trained_model(x, y)
    model.export(str(tmp_path / "saved"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(
        served.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7
    )


# --- mixed precision and XLA ----------------------------------------------------------------


@pytest.fixture
def mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def test_mixed_float16_trains_and_keeps_float32_kernel(mixed_precision):
    x, y = blobs()
    inputs = keras.Input((12,))
    dense = BiasTrickDense(3)
    # Keras' advice for mixed precision: keep the final softmax in float32.
    outputs = JacobianSoftmax(dtype="float32")(dense(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CategoricalCrossentropy())
    history = model.fit(x, y, batch_size=50, epochs=3, verbose=0)
    assert dense.kernel.dtype == "float32"
    assert dense.compute_dtype == "float16"
    assert dense(x[:4]).dtype == tf.float16
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses

    # The whole model in float16, softmax included, trains too.
    model16 = softmax_classifier()
    model16.compile(optimizer=keras.optimizers.SGD(0.1), loss=CategoricalCrossentropy())
    losses16 = model16.fit(x, y, batch_size=50, epochs=3, verbose=0).history["loss"]
    assert model16.layers[0].kernel.dtype == "float32"
    assert np.all(np.isfinite(losses16)) and losses16[-1] < 0.5 * losses16[0], losses16


def test_training_step_under_xla_matches_eager():
    x, y = blobs(n=200)
    eager = softmax_classifier(kernel_initializer=NotebookInitializer(seed=1))
    compiled = softmax_classifier(kernel_initializer=NotebookInitializer(seed=1))
    loss_fn = CategoricalCrossentropy()

    def make_step(model):
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x))
            grads = tape.gradient(loss, model.trainable_variables)
            for variable, grad in zip(model.trainable_variables, grads, strict=True):
                variable.assign_sub(0.5 * grad)
            return loss

        return step

    xla_step = tf.function(make_step(compiled), jit_compile=True)
    eager_loss = make_step(eager)(x, y)
    xla_loss = xla_step(tf.constant(x), tf.constant(y))
    np.testing.assert_allclose(xla_loss, eager_loss, rtol=1e-6)
    before = NotebookInitializer(seed=1)((3, 13)).numpy()
    assert not np.allclose(eager.layers[0].kernel.numpy(), before)  # the step did something
    np.testing.assert_allclose(
        compiled.layers[0].kernel.numpy(), eager.layers[0].kernel.numpy(), rtol=1e-6, atol=1e-7
    )


# --- converters and agreement with keras.layers.Dense ---------------------------------------


def test_converters_round_trip_exactly():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(784, 10)), rng.normal(size=10)
    w = to_bias_trick(kernel, bias)
    assert w.shape == (10, 785)
    k2, b2 = from_bias_trick(w)
    np.testing.assert_array_equal(k2, kernel)
    np.testing.assert_array_equal(b2, bias)
    np.testing.assert_array_equal(to_bias_trick(k2, b2), w)
    # tensors and variables are accepted
    k3, b3 = from_bias_trick(tf.Variable(w.astype("float32")))
    np.testing.assert_array_equal(to_bias_trick(tf.constant(k3), b3), w.astype("float32"))

    with pytest.raises(ValueError, match=r"bias must have shape \(units,\) = \(10,\)"):
        to_bias_trick(kernel, bias[:9])
    with pytest.raises(ValueError, match="kernel must be 2-D"):
        to_bias_trick(bias, bias)
    with pytest.raises(ValueError, match=r"shape \(units, inputs \+ 1\)"):
        from_bias_trick(np.zeros((10, 1)))


def test_same_predictions_as_keras_dense_softmax():
    x = np.random.default_rng(1).normal(size=(64, 12)).astype("float32")
    ours = softmax_classifier(kernel_initializer="notebook")
    ours.layers[0].kernel.assign(np.random.default_rng(2).normal(size=(3, 13)))
    theirs = keras_twin(ours)
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-7
    )

    # Rank > 2: the layer acts on the last axis, like Dense.
    x3 = np.random.default_rng(3).normal(size=(4, 5, 12)).astype("float32")
    layer = ours.layers[0]
    out = layer(x3)
    assert out.shape == (4, 5, 3) == layer.compute_output_shape((4, 5, 12))
    np.testing.assert_allclose(out, theirs.layers[0](x3), rtol=1e-5, atol=1e-6)
    inputs = keras.Input((None, 12))
    assert BiasTrickDense(3)(inputs).shape == (None, None, 3)


def test_mlp_gradients_match_keras_dense():
    """Through a hidden layer too (the dX = G W[:, :-1] path), gradients equal Dense's."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]
    ours = keras.Sequential(
        [keras.Input((8,)), BiasTrickDense(16), keras.layers.ReLU(), BiasTrickDense(3)]
        + [JacobianSoftmax()]
    )
    theirs = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16), keras.layers.ReLU(), keras.layers.Dense(3)]
        + [keras.layers.Softmax()]
    )
    for mine, dense in ((ours.layers[0], theirs.layers[0]), (ours.layers[2], theirs.layers[2])):
        mine.kernel.assign(rng.normal(size=mine.kernel.shape))
        dense.set_weights(list(from_bias_trick(mine.kernel)))
    with tf.GradientTape(persistent=True) as tape:
        loss_ours = CategoricalCrossentropy()(y, ours(x))
        loss_theirs = keras.losses.CategoricalCrossentropy()(y, theirs(x))
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-6)
    g_ours = tape.gradient(loss_ours, ours.trainable_variables)
    g_theirs = tape.gradient(loss_theirs, theirs.trainable_variables)
    for layer in (0, 1):
        expected = to_bias_trick(g_theirs[2 * layer], g_theirs[2 * layer + 1])
        np.testing.assert_allclose(g_ours[layer], expected, rtol=1e-5, atol=1e-6)


def test_softmax_axis_other_than_last():
    z = tf.constant(np.random.default_rng(4).normal(size=(2, 5, 3, 4)), dtype="float32")
    layer = JacobianSoftmax(axis=1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        ours = layer(z)
        theirs = tf.nn.softmax(z, axis=1)
        weights = tf.constant(np.arange(120).reshape(2, 5, 3, 4), "float32")
        loss_ours, loss_theirs = tf.reduce_sum(weights * ours), tf.reduce_sum(weights * theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(loss_ours, z), tape.gradient(loss_theirs, z), rtol=1e-5, atol=1e-6
    )


# --- the loss -------------------------------------------------------------------------------


def test_loss_equals_op_in_value_and_gradient():
    rng = np.random.default_rng(5)
    y = tf.constant(np.eye(4)[rng.integers(0, 4, 32)], "float64")
    p = tf.constant(rng.dirichlet(np.ones(4), size=32), "float64")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([y, p])
        ours = CategoricalCrossentropy(dtype="float64")(y, p)
        op = ops.categorical_crossentropy(y, p)
    np.testing.assert_allclose(ours, op, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(ours, p), tape.gradient(op, p), rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(ours, p), -y / p / 32, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(ours, y), tape.gradient(op, y), rtol=1e-12)
    # Half precision is computed in float32 with the float16 floor, as the op does.
    p16 = tf.constant([[0.0, 1.0, 0.0], [0.25, 0.25, 0.5]], "float16")
    y16 = tf.constant([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], "float16")
    per_sample = per_sample_categorical_crossentropy(y16, p16)
    assert per_sample.dtype == tf.float16
    np.testing.assert_allclose(
        tf.reduce_mean(tf.cast(per_sample, "float32")),
        ops.categorical_crossentropy(y16, p16),
        rtol=1e-3,
    )
    np.testing.assert_allclose(per_sample[0], -np.log(ops.probability_floor("float16")), rtol=1e-3)


def test_sample_weights_weight_each_sample():
    rng = np.random.default_rng(6)
    y = tf.constant(np.eye(3)[rng.integers(0, 3, 8)], "float32")
    p = tf.constant(rng.dirichlet(np.ones(3), size=8), "float32")
    w = tf.constant(rng.uniform(0, 2, size=8), "float32")
    with tf.GradientTape() as tape:
        tape.watch(p)
        loss = CategoricalCrossentropy()(y, p, sample_weight=w)
    per_sample = -np.sum(y * np.log(p), axis=1)
    np.testing.assert_allclose(loss, np.mean(w * per_sample), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, p), -w[:, None] * y / p / 8, rtol=1e-6)
    none = CategoricalCrossentropy(reduction=None)(y, p)
    np.testing.assert_allclose(none, per_sample, rtol=1e-6)

    # model.fit with sample weights follows the same path as Keras' built-in CCE.
    x, labels = blobs(n=200)
    weights = np.random.default_rng(7).uniform(0, 2, size=200).astype("float32")
    ours = softmax_classifier(kernel_initializer="notebook")
    theirs = keras_twin(ours)
    ours.compile(optimizer=keras.optimizers.SGD(0.1), loss=CategoricalCrossentropy())
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy())
    fit = dict(batch_size=50, epochs=2, shuffle=False, verbose=0, sample_weight=weights)
    h1, h2 = ours.fit(x, labels, **fit), theirs.fit(x, labels, **fit)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        ours.layers[0].kernel.numpy(), to_bias_trick(*theirs.layers[0].get_weights()), atol=1e-5
    )


def test_extreme_logits_give_finite_loss_and_gradients():
    logits = tf.constant([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]], "float32")
    y = tf.constant([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], "float32")  # sample 0 badly wrong
    for method in ops.SOFTMAX_METHODS:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            probs = JacobianSoftmax(method=method)(logits)
            loss = CategoricalCrossentropy()(y, probs)
        grad = tape.gradient(loss, logits)
        assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad.numpy()))
    assert np.isfinite(per_sample_categorical_crossentropy(y, tf.zeros_like(y)).numpy()).all()


# --- clear errors for bad input -------------------------------------------------------------


def test_bad_units():
    for units in (0, -3, 2.5, "10", True, None):
        with pytest.raises(ValueError, match="`units` must be a positive integer"):
            BiasTrickDense(units)


def test_bad_rank():
    with pytest.raises(ValueError, match=r"expects inputs of rank >= 2.*got rank 1"):
        BiasTrickDense(3)(np.zeros(5, "float32"))
    with pytest.raises(ValueError, match="last dimension of the inputs .* must be known"):
        BiasTrickDense(3).build((None, None))


def test_input_width_disagrees_with_kernel():
    layer = BiasTrickDense(3)
    layer(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"built for inputs with 4 features .*\(3, 5\).* 6 feat"):
        layer(np.zeros((2, 6), "float32"))
    model = softmax_classifier(inputs=12)
    with pytest.raises(ValueError, match="built for inputs with 12 features"):
        model.predict(np.zeros((2, 7), "float32"), verbose=0)


def test_non_floating_inputs():
    layer = BiasTrickDense(3)
    with pytest.raises(TypeError, match="needs floating-point inputs, got dtype int32"):
        layer(np.zeros((2, 4), "int32"))
    with pytest.raises(TypeError, match="needs floating-point inputs, got dtype uint8"):
        BiasTrickDense(3)(keras.Input((4,), dtype="uint8"))
    with pytest.raises(TypeError, match="needs floating-point inputs, got dtype string"):
        BiasTrickDense(3)(tf.constant([["a", "b"]]))
    with pytest.raises(TypeError, match="JacobianSoftmax .* needs floating-point inputs"):
        JacobianSoftmax()(np.zeros((2, 4), "int64"))


def test_unknown_method_and_bad_axis():
    with pytest.raises(ValueError, match=r"unknown method='loop'; expected one of \('jacobian'"):
        JacobianSoftmax(method="loop")
    with pytest.raises(ValueError, match="`axis` must be an integer"):
        JacobianSoftmax(axis=(0, 1.5))  # several axes are allowed (test_masking.py); floats not
    with pytest.raises(ValueError, match="axis=2 is out of range for inputs of rank 2"):
        JacobianSoftmax(axis=2)(np.zeros((2, 4), "float32"))


def test_loss_accepts_python_lists():
    np.testing.assert_allclose(CategoricalCrossentropy()([[0.0, 1.0]], [[0.5, 0.5]]), np.log(2))


def test_loss_rejects_integer_labels():
    with pytest.raises(ValueError, match="expects one-hot y_true with the same shape as y_pred"):
        CategoricalCrossentropy()(np.array([0, 1]), np.full((2, 3), 1 / 3, "float32"))


# --- real MNIST: a full epoch next to Keras' built-ins --------------------------------------


class _KernelRecorder(keras.callbacks.Callback):
    """Bias-trick kernel of the model's first layer every `every` batches."""

    def __init__(self, every):
        super().__init__()
        self.every, self.kernels = every, []

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            weights = self.model.layers[0].get_weights()
            self.kernels.append(weights[0] if len(weights) == 1 else to_bias_trick(*weights))


@pytest.mark.mnist
def test_mnist_epoch_matches_keras_dense_softmax_cce(mnist):
    (x_train, y_train), _ = mnist  # uint8, Keras' layout (tests/conftest.py)
    x = x_train.reshape(len(x_train), 784).astype("float32")
    x = (x - x.min()) / (x.max() - x.min())  # the notebook's min-max scaling
    y = np.eye(10, dtype="float32")[y_train]

    w0 = NotebookInitializer(seed=0)((10, 785)).numpy()
    ours = softmax_classifier(inputs=784, units=10)
    ours.layers[0].kernel.assign(w0)
    theirs = keras_twin(ours)
    ours.compile(optimizer=keras.optimizers.SGD(0.01), loss=CategoricalCrossentropy())
    theirs.compile(
        optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.CategoricalCrossentropy()
    )
    recorders = _KernelRecorder(every=50), _KernelRecorder(every=50)
    fit = dict(batch_size=200, epochs=1, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, callbacks=[recorders[0]], **fit)
    h_theirs = theirs.fit(x, y, callbacks=[recorders[1]], **fit)

    assert len(recorders[0].kernels) == 6  # 300 batches, checked every 50
    diffs = [np.abs(a - b).max() for a, b in zip(*(r.kernels for r in recorders), strict=True)]
    moved = np.abs(recorders[0].kernels[-1] - w0).max()
    assert moved > 0.05  # the weights really trained
    # Measured on TF 2.21 CPU: max |diff| 1.5e-8 (about 2 float32 ulps at 0.1) at
    # every checkpoint; the bound leaves room for other BLAS summation orders.
    assert max(diffs) < 1e-7, diffs
    np.testing.assert_allclose(h_ours.history["loss"], h_theirs.history["loss"], rtol=1e-6)
    assert 1.35 < h_ours.history["loss"][0] < 1.55  # measured 1.4418; the notebook's 1.4424
