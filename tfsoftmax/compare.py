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
would blow up wherever a weight happens to be near zero); the loss curves'
difference is the largest over the epochs, and epochs are numbered from 1
(:mod:`tfsoftmax.comparison` holds the result, its table and its JSON, whose
``definitions`` say all this).

Tolerances for the loss curves: 1e-9 in float64, 1e-4 in float32.

The NumPy reference runs with one BLAS thread (:mod:`tfsoftmax.blas`: on 2
cores that is its fastest setting, quiet or loaded). With ``verbose=1`` every
implementation's epochs are printed as they finish, so a long run is never
silent.

What the ``keras`` side really computes: Keras' softmax tags its output with
the logits (``_keras_logits``), and Keras' CCE, given such an output, uses the
fused ``softmax_cross_entropy_with_logits`` on the logits. So its clip of ``ŷ``
to ``[1e-7, 1 − 1e-7]`` and its renormalisation never act here, and the
comparison is the hand-derived chain against TensorFlow's fused kernel
(``examples/compare_cce.py`` shows both Keras paths side by side).
"""

import time

import numpy as np

from tfsoftmax import reference
from tfsoftmax.blas import reference_blas_threads
from tfsoftmax.comparison import (
    IMPLEMENTATIONS,
    LOSS_TOLERANCE,
    PAIRS,
    Comparison,
    max_differences,
    versions,
)
from tfsoftmax.constants import (
    BATCH_SIZE,
    COMPARISON_DTYPES,
    EPOCHS,
    LEARNING_RATE,
    SEED,
    SOFTMAX_METHODS,
)
from tfsoftmax.preprocessing import first_samples
from tfsoftmax.validation import (
    check_choice,
    check_class_indices,
    check_learning_rate,
    check_positive_int,
    check_seed,
)

__all__ = [
    "IMPLEMENTATIONS",
    "LOSS_TOLERANCE",
    "PAIRS",
    "Comparison",
    "compare",
    "gradient_differences",
    "max_differences",
]

#: How each implementation is named in the progress lines.
_LABELS = {"numpy": "numpy reference", "custom": "custom ops", "keras": "keras built-ins"}


def _epoch_printer(name, epochs, verbose):
    """``on_epoch_end(epoch, loss)`` printing ``<name>  epoch e/E  loss …  s`` if verbose."""
    last = [time.perf_counter()]

    def on_epoch_end(epoch, loss):
        now = time.perf_counter()
        if verbose:
            print(
                f"  {_LABELS[name]:<16} epoch {epoch + 1:>{len(str(epochs))}}/{epochs}"
                f"  loss {float(loss):.6f}  {now - last[0]:6.2f}s",
                flush=True,
            )
        last[0] = now

    return on_epoch_end


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
    batches = reference.generate_batch_indices(x.shape[0], batch_size, np.random.default_rng(seed))
    dense = reference.Dense.from_weights(initial_weights, method="vectorized")
    activation = reference.Softmax("vectorized")
    worst = {f"{a} vs {b}": [0.0, 0.0] for a, b in PAIRS}
    with reference_blas_threads():
        _gradient_steps(x, y, batches[:steps], dense, activation, worst, learning_rate, method)
    return {pair: {"max_abs": v[0], "max_rel": v[1]} for pair, v in worst.items()}


def _gradient_steps(x, y, batches, dense, activation, worst, learning_rate, method):
    """Take the reference's steps on ``batches``; keep each pair's worst gradient difference."""
    from tfsoftmax import layers, ops
    from tfsoftmax._tf import keras, tf

    for index in batches:
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


def _train_tensorflow(kind, data, initial_weights, settings, verbose):
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
    report = _epoch_printer(kind, settings["epochs"], verbose)

    def on_epoch_end(epoch, logs):
        snapshots.append(get_notebook_weights(model))
        report(epoch, logs["loss"])

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
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)],
    )
    seconds = time.perf_counter() - started
    predictions = np.argmax(model.predict(data.x_test, batch_size=10_000, verbose=0), axis=1)
    return np.array(history.loss), snapshots, predictions, seconds


def _train_reference(data, initial_weights, settings, verbose):
    """Train the NumPy reference (one BLAS thread); per-epoch weights too."""
    snapshots = []
    report = _epoch_printer("numpy", settings["epochs"], verbose)

    def on_epoch_end(epoch, loss, layer):
        snapshots.append(layer.weights.copy())
        report(epoch, loss)

    started = time.perf_counter()
    with reference_blas_threads():
        dense, losses = reference.train(
            data.x_train.T,
            data.y_train.T,
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            seed=settings["seed"],
            softmax_method="vectorized",
            initial_weights=initial_weights,
            on_epoch_end=on_epoch_end,
        )
        seconds = time.perf_counter() - started
        predictions = reference.predict(dense, data.x_test.T)
    return losses, snapshots, predictions, seconds


def _check_settings(epochs, batch_size, learning_rate, gradient_steps, dtype, method, limit):
    """Every setting checked (``ValueError`` naming it); returns the checked values."""
    check_choice("dtype", dtype, COMPARISON_DTYPES)
    check_choice("softmax_method", method, SOFTMAX_METHODS)
    return (
        check_positive_int("epochs", epochs),
        check_positive_int("batch_size", batch_size),
        check_learning_rate(learning_rate),
        check_positive_int("gradient_steps", gradient_steps),
        None if limit is None else check_positive_int("limit", limit),
    )


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
    verbose=0,
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
        verbose: 1 prints each implementation's epochs as they finish
            (``numpy reference  epoch 3/20  loss 0.681321  0.11s``) and what
            runs next; 0 prints nothing.

    Returns:
        A :class:`~tfsoftmax.comparison.Comparison`.
    """
    epochs, batch_size, learning_rate, gradient_steps, limit = _check_settings(
        epochs, batch_size, learning_rate, gradient_steps, dtype, softmax_method, limit
    )
    seed = check_seed(seed)
    check_class_indices(data.labels_test, "data.labels_test", data.y_train.shape[-1])
    from tfsoftmax._tf import keras, tf

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
    initial = _initial_weights(data, seed, dtype)

    results = _train_all(data, initial, settings, verbose)
    if verbose:
        print(f"Comparing gradients over the first {gradient_steps} steps", flush=True)
    gradients = gradient_differences(
        data.x_train,
        data.y_train,
        initial,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        steps=gradient_steps,
        method=softmax_method,
    )
    return Comparison(
        settings=settings,
        losses={name: results[name][0] for name in IMPLEMENTATIONS},
        test_accuracy={
            name: float(np.mean(results[name][2] == data.labels_test)) for name in IMPLEMENTATIONS
        },
        seconds={name: results[name][3] for name in IMPLEMENTATIONS},
        gradient_differences=gradients,
        **_trajectory_differences(results),
        final_weights={name: results[name][1][-1] for name in IMPLEMENTATIONS},
        test_predictions={name: results[name][2] for name in IMPLEMENTATIONS},
        versions=versions(tensorflow=tf.__version__, keras=keras.__version__),
    )


def _initial_weights(data, seed, dtype):
    """The reference's initial ``W (classes, features + 1)``, drawn from ``default_rng(seed)``."""
    features, classes = data.x_train.shape[1], data.y_train.shape[1]
    return reference.Dense(features, classes, rng=np.random.default_rng(seed), dtype=dtype).weights


def _train_all(data, initial, settings, verbose):
    """``{implementation: (losses, weights per epoch, test predictions, seconds)}``."""
    results = {}
    for name in IMPLEMENTATIONS:
        if verbose:
            first = "" if name == "numpy" else "; epoch 1 includes tracing and XLA compilation"
            print(
                f"Training {_LABELS[name]} ({settings['epochs']} epochs, "
                f"{settings['dtype']}{first}):",
                flush=True,
            )
        if name == "numpy":
            results[name] = _train_reference(data, initial, settings, verbose)
        else:
            results[name] = _train_tensorflow(name, data, initial, settings, verbose)
    return results


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
