"""uint8 images, trained as stored by models that scale their own input (tfsoftmax.rescaling)."""

import numpy as np
import pytest

from tfsoftmax import constants, reference
from tfsoftmax._tf import keras, tf
from tfsoftmax.array_inputs import checked_features, features_tensor
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.preprocessing import minmax_scale
from tfsoftmax.rescaling import MinMaxRescaling, scales_its_input
from tfsoftmax.training import train_sgd


def _initial(seed=0):
    return reference.Dense(784, 10, rng=np.random.default_rng(seed), dtype="float32").weights


def _accuracy(model, x, labels):
    probabilities = model.predict(x, batch_size=10_000, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def test_min_max_rescaling_is_the_preprocessing_to_the_bit():
    pixels = np.arange(256, dtype=np.uint8)[None, :]
    expected = minmax_scale(pixels, xmin=0, xmax=255, dtype="float32")
    got = MinMaxRescaling(0, 255)(pixels).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    shifted = MinMaxRescaling(10, 200, dtype="float64")(pixels).numpy()
    np.testing.assert_array_equal(shifted, minmax_scale(pixels, xmin=10, xmax=200, dtype="float64"))
    with pytest.raises(ValueError, match="finite minimum < maximum"):
        MinMaxRescaling(5, 5)


@pytest.mark.parametrize("minimum, maximum, dtype", [(0, 255, "float32"), (3.3, 250.7, "float32")])
def test_min_max_rescaling_stays_exact_under_xla(minimum, maximum, dtype):
    """XLA rewrites ``x / constant`` as ``x * (1 / constant)``; the layer's divisor is a
    variable, so its division stays IEEE's. The constant-divisor control shows the rewrite
    is real: it is off by an ulp for about half the pixel values."""
    pixels = tf.constant(np.arange(256, dtype=np.uint8)[None, :])
    expected = minmax_scale(pixels.numpy(), xmin=minimum, xmax=maximum, dtype=dtype)
    layer = MinMaxRescaling(minimum, maximum, dtype=dtype)
    compiled = tf.function(lambda x: layer(x), jit_compile=True)
    np.testing.assert_array_equal(compiled(pixels).numpy(), expected)
    assert layer.weights == []  # the divisor is not a weight: nothing new to save or train
    width = np.float32(maximum) - np.float32(minimum)
    constant_divisor = tf.function(
        lambda x: (tf.cast(x, tf.float32) - np.float32(minimum)) / width, jit_compile=True
    )
    assert np.sum(constant_divisor(pixels).numpy() != expected) > 0


def test_which_models_scale_their_input():
    dense = [BiasTrickDense(10), JacobianSoftmax()]
    assert scales_its_input(keras.Sequential([keras.layers.Rescaling(1 / 255), *dense]))
    assert scales_its_input(notebook_model("custom", _initial(), input_dtype="uint8")[0])
    inner = keras.Sequential([keras.Input((784,)), keras.layers.Rescaling(1 / 255)])
    assert scales_its_input(keras.Sequential([keras.Input((784,)), inner, *dense]))
    # An integer input without a rescaling layer declares token ids, not images.
    ids = keras.Sequential([keras.Input((5,), dtype="uint8"), keras.layers.Embedding(256, 4)])
    assert not scales_its_input(ids)
    assert not scales_its_input(notebook_model("custom", _initial())[0])
    with pytest.raises(ValueError, match="input_dtype must be None .* integer dtype"):
        notebook_model("custom", _initial(), input_dtype="float32")


def test_uint8_mnist_trains_to_the_float32_run_bit_for_bit(mnist, mnist_batch_major):
    """The notebook's 20 epochs (batch 200, rate 0.01, seed 0), jacobian softmax:
    float32 preprocessed pixels vs the raw uint8 pixels held as uint8."""
    (x_train, _), (x_test, _) = mnist
    data = mnist_batch_major
    runs = {}
    for name, x, xt, input_dtype in (
        ("float32", data.x_train, data.x_test, None),
        ("uint8", x_train.reshape(60000, -1), x_test.reshape(10000, -1), "uint8"),
    ):
        model, loss = notebook_model("custom", _initial(), input_dtype=input_dtype)
        history = train_sgd(model, x, data.labels_train, loss=loss, verbose=0, **constants.NOTEBOOK)
        runs[name] = (
            history.loss,
            get_notebook_weights(model),
            _accuracy(model, xt, data.labels_test),
        )
    (loss32, weights32, accuracy32), (loss8, weights8, accuracy8) = runs["float32"], runs["uint8"]
    assert abs(accuracy8 - accuracy32) <= 1e-4
    assert accuracy32 > 0.88
    np.testing.assert_array_equal(loss8, loss32)
    np.testing.assert_array_equal(weights8, weights32)


def test_uint8_data_is_held_as_uint8(mnist):
    (x_train, _), _ = mnist
    pixels = x_train.reshape(60000, -1)
    model, _ = notebook_model("custom", _initial(), input_dtype="uint8")
    tensor = features_tensor(model, checked_features(model, pixels), "float32")
    assert tensor.dtype == tf.uint8
    assert tensor.shape == (60000, 784)  # 47 MB: a quarter of the float32 tensor


def test_a_keras_rescaling_model_trains_on_uint8_as_on_scaled_floats(mnist, mnist_batch_major):
    """Keras' Rescaling(1/255) multiplies by fl32(1/255): within an ulp of the
    preprocessing, so the run follows the float32 one closely (not to the bit)."""
    (x_train, _), (x_test, _) = mnist
    data = mnist_batch_major
    results = []
    for scaling, x, xt in (
        ([keras.layers.Rescaling(1 / 255)], x_train.reshape(60000, -1), x_test.reshape(10000, -1)),
        ([], data.x_train, data.x_test),
    ):
        model = keras.Sequential([*scaling, BiasTrickDense(10), JacobianSoftmax()])
        model.build((None, 784))
        model.layers[-2].kernel.assign(_initial())
        history = train_sgd(model, x, data.y_train, epochs=3, verbose=0)
        results.append((history.loss, _accuracy(model, xt, data.labels_test)))
    (loss8, accuracy8), (loss32, accuracy32) = results
    np.testing.assert_allclose(loss8, loss32, rtol=1e-5)
    assert abs(accuracy8 - accuracy32) <= 1e-3


def test_uint8_images_for_a_model_that_does_not_scale_are_still_refused(mnist):
    (x_train, y_train), _ = mnist
    model, loss = notebook_model("custom", _initial())
    with pytest.raises(ValueError, match="integer dtype uint8.*preprocess"):
        train_sgd(model, x_train[:100].reshape(100, -1), y_train[:100], loss=loss, verbose=0)


def test_model_fit_trains_a_uint8_model_as_it_trains_the_float32_one(mnist, mnist_batch_major):
    (x_train, _), _ = mnist
    data = mnist_batch_major
    weights = {}
    for name, x, input_dtype in (
        ("float32", data.x_train[:4000], None),
        ("uint8", x_train[:4000].reshape(4000, -1), "uint8"),
    ):
        model, _ = notebook_model("custom", _initial(), input_dtype=input_dtype)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01), loss=CategoricalCrossentropy(), jit_compile=False
        )
        history = model.fit(
            x, data.y_train[:4000], batch_size=200, epochs=2, shuffle=False, verbose=0
        )
        assert history.history["loss"][1] < history.history["loss"][0]
        weights[name] = get_notebook_weights(model)
    np.testing.assert_allclose(weights["uint8"], weights["float32"], rtol=0, atol=1e-7)


def test_a_uint8_model_saves_and_loads_with_its_exact_scaling(tmp_path):
    """``model.keras`` of a model that scales its own uint8 input loads back (Keras calls
    ``MinMaxRescaling.from_config``) and predicts the same probabilities, under XLA too."""
    model, _ = notebook_model("custom", _initial(), input_dtype="uint8")
    pixels = np.random.default_rng(1).integers(0, 256, (64, 784), dtype=np.uint8)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[0], MinMaxRescaling)
    np.testing.assert_array_equal(
        loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0)
    )

    # Under XLA, against the original under XLA (XLA's kernels round differently from
    # TensorFlow's own, so predict is not the reference there).
    def under_xla(m):
        return tf.function(lambda x: m(x, training=False), jit_compile=True)(tf.constant(pixels))

    np.testing.assert_array_equal(under_xla(loaded).numpy(), under_xla(model).numpy())


def test_the_command_line_trains_on_uint8_pixels_to_the_float32_run_bit_for_bit(tmp_path):
    """``tfsoftmax train --uint8``: the same losses, weights and test accuracy as the float32
    run (in process, through the command's ``main``)."""
    import json

    from tfsoftmax.cli import main

    runs = {}
    for name, extra in (("float32", []), ("uint8", ["--uint8"])):
        out = tmp_path / name
        args = ["train", "--limit", "3000", "--epochs", "2", "--verbose", "0", "--out", str(out)]
        assert main([*args, "--no-compile-cache", *extra]) == 0
        runs[name] = (json.loads((out / "history.json").read_text()), np.load(out / "weights.npy"))
    (history32, weights32), (history8, weights8) = runs["float32"], runs["uint8"]
    assert history8["params"]["uint8"] is True and history32["params"]["uint8"] is False
    assert history8["history"]["loss"] == history32["history"]["loss"]
    assert history8["history"]["val_accuracy"] == history32["history"]["val_accuracy"]
    np.testing.assert_array_equal(weights8, weights32)
