"""The proof: three implementations of the notebook, side by side on MNIST.

From identical initial weights ``W₀`` (the notebook's initialisation drawn by
``reference.Dense(…, rng=np.random.default_rng(seed))``) and the identical
batch order (``np.random.default_rng(seed)``, one permutation per epoch), train

1. ``numpy``  — :mod:`tfsoftmax.reference`, the notebook in NumPy
   (features-major, vectorized softmax backward);
2. ``custom`` — ``BiasTrickDense`` + ``JacobianSoftmax`` + tfsoftmax's CCE,
   i.e. the hand-derived ``tf.custom_gradient`` ops, through :func:`train_sgd`;
3. ``keras``  — ``keras.layers.Dense`` + ``keras.layers.Softmax`` +
   ``keras.losses.CategoricalCrossentropy`` through the same hand-written loop,
   gradients by TensorFlow's autodiff.

and report how far apart they are:

* **gradients** — at each of the first ``gradient_steps`` steps of epoch 1,
  every implementation's batch-mean weight gradient ``∂L_B/∂W`` is computed at
  the *same* weights (the reference's trajectory), so the numbers measure the
  gradient formulas, not drift;
* **weights** after every epoch, and the per-epoch **loss curves**;
* the final **test accuracy** of each.

Differences are ``max |a − b|`` (absolute) and ``max |a − b| / max |b|``
(relative to the size of the reference side ``b``; an element-wise ratio
would blow up wherever a weight happens to be near zero).

Tolerances for the loss curves: 1e-9 in float64, 1e-4 in float32.

What the ``keras`` side really computes: Keras' softmax tags its output with
the logits (``_keras_logits``), and Keras' CCE, given such an output, uses the
fused ``softmax_cross_entropy_with_logits`` on the logits. So its clip of ``ŷ``
to ``[1e-7, 1 − 1e-7]`` and its renormalisation never act here, and the
comparison is the hand-derived chain against TensorFlow's fused kernel
(``examples/compare_cce.py`` shows both Keras paths side by side).
"""

import dataclasses
import json
import time

import numpy as np

from tfsoftmax import reference
from tfsoftmax.atomic import write_text
from tfsoftmax.constants import (
    BATCH_SIZE,
    COMPARISON_DTYPES,
    EPOCHS,
    LEARNING_RATE,
    SEED,
    SOFTMAX_METHODS,
)
from tfsoftmax.preprocessing import first_samples
from tfsoftmax.validation import check_choice, check_learning_rate, check_positive_int

__all__ = [
    "IMPLEMENTATIONS",
    "LOSS_TOLERANCE",
    "PAIRS",
    "Comparison",
    "compare",
    "gradient_differences",
    "max_differences",
]

IMPLEMENTATIONS = ("numpy", "custom", "keras")
PAIRS = (("custom", "numpy"), ("keras", "numpy"), ("custom", "keras"))
#: Largest allowed difference between two loss curves, per dtype of :data:`COMPARISON_DTYPES`.
LOSS_TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def max_differences(a, b):
    """``(max |a − b|, max |a − b| / max |b|)`` as Python floats."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    absolute = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return absolute, absolute / scale if scale > 0 else absolute


@dataclasses.dataclass
class Comparison:
    """Everything :func:`compare` measured; ``to_dict`` is the JSON layout."""

    settings: dict
    losses: dict  # implementation -> per-epoch losses
    test_accuracy: dict  # implementation -> float
    seconds: dict  # implementation -> training wall time
    gradient_differences: dict  # "a vs b" -> {"max_abs", "max_rel"} over the first steps
    weight_differences: dict  # "a vs b" -> [{"epoch", "max_abs", "max_rel"}, ...]
    loss_differences: dict  # "a vs b" -> max abs difference over all epochs
    final_weights: dict  # implementation -> (units, inputs + 1) array
    test_predictions: dict  # implementation -> predicted labels on the test set

    @property
    def tolerance(self):
        return LOSS_TOLERANCE[self.settings["dtype"]]

    @property
    def agree(self):
        """Do all three loss curves agree within the dtype's tolerance?"""
        return all(diff <= self.tolerance for diff in self.loss_differences.values())

    def to_dict(self):
        return {
            "settings": self.settings,
            "implementations": {
                name: {
                    "loss": list(map(float, self.losses[name])),
                    "test_accuracy": self.test_accuracy[name],
                    "train_seconds": self.seconds[name],
                }
                for name in IMPLEMENTATIONS
            },
            "gradient_differences": self.gradient_differences,
            "weight_differences": self.weight_differences,
            "loss_differences": self.loss_differences,
            "loss_tolerance": self.tolerance,
            "agree": self.agree,
        }

    def to_json(self, path):
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self):
        """The comparison as a plain-text table."""
        lines = [f"{'epoch':>5}" + "".join(f"{name + ' loss':>16}" for name in IMPLEMENTATIONS)]
        for epoch in range(len(self.losses["numpy"])):
            lines.append(
                f"{epoch + 1:>5}"
                + "".join(f"{self.losses[name][epoch]:>16.6f}" for name in IMPLEMENTATIONS)
            )
        lines.append("")
        lines.append(
            f"{'implementation':<16}{'epoch-1 loss':>14}{'final loss':>14}"
            f"{'test accuracy':>15}{'train s':>9}"
        )
        for name in IMPLEMENTATIONS:
            losses = self.losses[name]
            lines.append(
                f"{name:<16}{losses[0]:>14.6f}{losses[-1]:>14.6f}"
                f"{self.test_accuracy[name]:>15.4f}{self.seconds[name]:>9.2f}"
            )
        lines.append("")
        lines.append(
            f"{'difference':<18}{'gradient abs':>14}{'gradient rel':>14}"
            f"{'weights abs':>13}{'weights rel':>13}{'loss curve':>12}"
        )
        for pair in self.gradient_differences:
            gradient = self.gradient_differences[pair]
            weights = self.weight_differences[pair][-1]
            lines.append(
                f"{pair:<18}{gradient['max_abs']:>14.2e}{gradient['max_rel']:>14.2e}"
                f"{weights['max_abs']:>13.2e}{weights['max_rel']:>13.2e}"
                f"{self.loss_differences[pair]:>12.2e}"
            )
        verdict = "agree" if self.agree else "DISAGREE"
        lines.append("")
        lines.append(
            f"loss curves {verdict} within {self.tolerance:g} ({self.settings['dtype']}); "
            f"gradients over the first {self.settings['gradient_steps']} steps, "
            f"weights after the last epoch"
        )
        return "\n".join(lines)


def _custom_gradient(tf, ops, x, y, weights, method):
    w = tf.constant(weights)
    with tf.GradientTape() as tape:
        tape.watch(w)
        probabilities = ops.jacobian_softmax(ops.bias_trick_dense(tf.constant(x), w), method)
        loss = ops.categorical_crossentropy(tf.constant(y), probabilities)
    return tape.gradient(loss, w).numpy()


def _keras_gradient(tf, keras, layers, x, y, weights, dtype):
    kernel, bias = layers.from_bias_trick(weights)
    kernel, bias = tf.Variable(kernel), tf.Variable(bias)
    loss_fn = keras.losses.CategoricalCrossentropy(dtype=dtype)
    with tf.GradientTape() as tape:
        logits = tf.matmul(tf.constant(x), kernel) + bias
        loss = loss_fn(tf.constant(y), keras.activations.softmax(logits))
    d_kernel, d_bias = tape.gradient(loss, [kernel, bias])
    return layers.to_bias_trick(d_kernel.numpy(), d_bias.numpy())


def gradient_differences(x, y, initial_weights, *, batch_size, learning_rate, seed, steps, method):
    """Max gradient differences over the first ``steps`` batches of epoch 1.

    ``x`` ``(samples, features)`` and one-hot ``y`` are batch-major; the
    reference sees their transposes. All three gradients are taken at the
    reference's weights before each step.
    """
    from tfsoftmax import layers, ops
    from tfsoftmax._tf import keras, tf

    batches = reference.generate_batch_indices(x.shape[0], batch_size, np.random.default_rng(seed))
    dense = reference.Dense.from_weights(initial_weights, method="vectorized")
    activation = reference.Softmax("vectorized")
    worst = {f"{a} vs {b}": [0.0, 0.0] for a, b in PAIRS}
    for index in batches[:steps]:
        xb, yb = x[index], y[index]
        weights = dense.weights.copy()
        probabilities = activation.forward(dense.forward(xb.T))
        dense.backward(activation.backward(reference.cce_gradient(yb.T, probabilities)), 1.0)
        gradients = {
            "numpy": dense.weights_gradient,
            "custom": _custom_gradient(tf, ops, xb, yb, weights, method),
            "keras": _keras_gradient(tf, keras, layers, xb, yb, weights, x.dtype.name),
        }
        dense.weights = weights - learning_rate * dense.weights_gradient
        for a, b in PAIRS:
            pair = worst[f"{a} vs {b}"]
            absolute, relative = max_differences(gradients[a], gradients[b])
            pair[0], pair[1] = max(pair[0], absolute), max(pair[1], relative)
    return {pair: {"max_abs": v[0], "max_rel": v[1]} for pair, v in worst.items()}


def _train_tensorflow(kind, data, initial_weights, settings):
    """Train ``custom`` or ``keras`` with :func:`train_sgd`; per-epoch weights too."""
    from tfsoftmax._tf import keras
    from tfsoftmax.models import get_notebook_weights, notebook_model
    from tfsoftmax.training import train_sgd

    model, loss = notebook_model(
        kind,
        initial_weights,
        dtype=settings["dtype"],
        softmax_method=settings["softmax_method"],
    )
    snapshots = []
    snapshot = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(get_notebook_weights(model))
    )
    started = time.perf_counter()
    history = train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        seed=settings["seed"],
        loss=loss,
        verbose=0,
        callbacks=[snapshot],
    )
    seconds = time.perf_counter() - started
    predictions = np.argmax(model.predict(data.x_test, batch_size=10_000, verbose=0), axis=1)
    return np.array(history.loss), snapshots, predictions, seconds


def _train_reference(data, initial_weights, settings):
    snapshots = []
    started = time.perf_counter()
    dense, losses = reference.train(
        data.x_train.T,
        data.y_train.T,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        seed=settings["seed"],
        softmax_method="vectorized",
        initial_weights=initial_weights,
        on_epoch_end=lambda epoch, loss, layer: snapshots.append(layer.weights.copy()),
    )
    seconds = time.perf_counter() - started
    return losses, snapshots, reference.predict(dense, data.x_test.T), seconds


def compare(
    data,
    *,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    learning_rate=LEARNING_RATE,
    seed=SEED,
    dtype="float64",
    softmax_method="jacobian",
    gradient_steps=5,
    limit=None,
):
    """Train the three implementations on ``data`` and measure their agreement.

    Args:
        data: preprocessed MNIST in batch-major layout with ``x_train``,
            ``y_train`` (one-hot), ``x_test`` and ``labels_test`` attributes
            (see :func:`tfsoftmax.datasets.preprocess`).
        epochs, batch_size, learning_rate, seed: the notebook's settings.
        dtype: ``"float64"`` or ``"float32"``, for all three.
        softmax_method: the custom op's backward, ``"jacobian"`` or ``"vjp"``
            (the reference always uses its vectorized backward).
        gradient_steps: how many first steps of epoch 1 to compare gradients on.
        limit: train on the first ``limit`` training samples only.

    Returns:
        A :class:`Comparison`.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_learning_rate(learning_rate)
    gradient_steps = check_positive_int("gradient_steps", gradient_steps)
    check_choice("dtype", dtype, COMPARISON_DTYPES)
    check_choice("softmax_method", softmax_method, SOFTMAX_METHODS)
    limit = None if limit is None else check_positive_int("limit", limit)
    data = first_samples(data, limit, dtype)
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "dtype": dtype,
        "softmax_method": softmax_method,
        "gradient_steps": gradient_steps,
        "train_samples": int(data.x_train.shape[0]),
        "test_samples": int(data.x_test.shape[0]),
    }
    num_classes = data.y_train.shape[1]
    initial = reference.Dense(
        data.x_train.shape[1], num_classes, rng=np.random.default_rng(seed), dtype=dtype
    ).weights

    results = {"numpy": _train_reference(data, initial, settings)}
    for kind in ("custom", "keras"):
        results[kind] = _train_tensorflow(kind, data, initial, settings)
    return Comparison(
        settings=settings,
        losses={name: results[name][0] for name in IMPLEMENTATIONS},
        test_accuracy={
            name: float(np.mean(results[name][2] == data.labels_test)) for name in IMPLEMENTATIONS
        },
        seconds={name: results[name][3] for name in IMPLEMENTATIONS},
        gradient_differences=gradient_differences(
            data.x_train,
            data.y_train,
            initial,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            steps=gradient_steps,
            method=softmax_method,
        ),
        **_trajectory_differences(results),
        final_weights={name: results[name][1][-1] for name in IMPLEMENTATIONS},
        test_predictions={name: results[name][2] for name in IMPLEMENTATIONS},
    )


def _trajectory_differences(results):
    """Per pair: weight differences after every epoch, and the loss curves' max difference."""
    weight_differences = {}
    loss_differences = {}
    for a, b in PAIRS:
        pair = f"{a} vs {b}"
        weight_differences[pair] = [
            dict(zip(("max_abs", "max_rel"), max_differences(wa, wb), strict=True), epoch=e + 1)
            for e, (wa, wb) in enumerate(zip(results[a][1], results[b][1], strict=True))
        ]
        loss_differences[pair] = max_differences(results[a][0], results[b][0])[0]
    return {"weight_differences": weight_differences, "loss_differences": loss_differences}
