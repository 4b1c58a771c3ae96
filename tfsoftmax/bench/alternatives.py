"""The benchmark's extra rows: uint8 features, JAX, PyTorch -- built, or skipped with a reason.

* ``custom-uint8``: the pixels as uint8, ``x_u8 = rint(255 x)`` (exact for
  MNIST, whose preprocessing is ``x = pixel / 255``), fed to ``train_sgd``
  with a model that scales them first::

      Input((784,), uint8) -> MinMaxRescaling(0, 255) -> BiasTrickDense(10) -> JacobianSoftmax

  an epoch then reads ``N d`` bytes of features instead of ``4 N d``.
* ``jax-scan`` / ``torch-eager``: :mod:`tfsoftmax.bench.jax_row` and
  :mod:`tfsoftmax.bench.torch_row`, only when the library is importable
  (:class:`RowUnavailable` otherwise).

:func:`alternative_accuracies` trains each extra row for the accuracy check's
epochs from the same weights and returns its test accuracy.
"""

import numpy as np

__all__ = [
    "TRAINERS",
    "alternative_accuracies",
    "to_uint8",
    "trainer",
    "uint8_model",
]

#: Extra rows trained outside TensorFlow: row name -> (module, library).
TRAINERS = {"jax-scan": ("jax_row", "jax"), "torch-eager": ("torch_row", "torch")}


class RowUnavailable(RuntimeError):
    """An extra row that cannot run here; the message is the reason. (The benchmark's
    own signal, caught by :func:`tfsoftmax.bench.run_bench`: not exported.)"""


def to_uint8(x):
    """``rint(255 x)`` as uint8: MNIST's pixels back from ``x = pixel / 255``."""
    return np.rint(np.asarray(x, np.float64) * 255).clip(0, 255).astype(np.uint8)


def uint8_model(weights, dtype="float32"):
    """``(model, loss)``: the notebook's custom-op model at ``weights`` taking uint8 pixels
    (:func:`tfsoftmax.models.notebook_model` with ``input_dtype="uint8"``: a rescaling
    layer first, bit-identical to the float32 preprocessing)."""
    from tfsoftmax.models import notebook_model

    return notebook_model("custom", weights, dtype=dtype, input_dtype="uint8")


def trainer(name, x, y, weights, settings):
    """The JAX or PyTorch trainer of row ``name``; :class:`RowUnavailable` without the library."""
    import importlib

    module_name, library = TRAINERS[name]
    module = importlib.import_module(f"tfsoftmax.bench.{module_name}")
    if not module.available():
        hint = "pip install -e '.[bench]'" if library == "jax" else "pip install torch"
        raise RowUnavailable(f"{library} is not importable ({hint})")
    cls = module.JaxTrainer if library == "jax" else module.TorchTrainer
    return cls(
        x,
        y,
        weights,
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        dtype=settings["dtype"],
    )


def alternative_accuracies(data, weights, settings, epochs, names):
    """``{row: test accuracy}`` after ``epochs`` epochs from ``weights``, for each of ``names``
    that can run (a row that cannot is left out)."""
    accuracies = {}
    labels = data.labels_test
    for name in names:
        try:
            predict = _trained_predictor(name, data, weights, settings, epochs)
        except (RowUnavailable, TypeError, ValueError):
            continue
        accuracies[name] = float(np.mean(np.argmax(predict(), axis=1) == labels))
    return accuracies


def _trained_predictor(name, data, weights, settings, epochs):
    """Train row ``name`` for ``epochs``; a function returning its test probabilities."""
    if name == "custom-uint8":
        from tfsoftmax.training import train_sgd

        model, loss = uint8_model(weights, settings["dtype"])
        sgd = {k: settings[k] for k in ("batch_size", "learning_rate", "seed")}
        train_sgd(
            model, to_uint8(data.x_train), data.y_train, epochs=epochs, loss=loss, verbose=0, **sgd
        )
        x_test = to_uint8(data.x_test)
        return lambda: model(x_test, training=False).numpy()
    fitted = trainer(name, data.x_train, data.y_train, weights, settings)
    fitted.epochs(epochs, settings["seed"])
    return lambda: fitted.predict(data.x_test)
