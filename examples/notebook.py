"""The notebook, end to end, with tfsoftmax's layers, loss and SGD trainer.

The original notebook builds a softmax classifier on MNIST from scratch in
NumPy: a ``Dense`` layer with the bias absorbed into its weight matrix (the
*bias trick*), a ``Softmax`` layer whose backward pass multiplies each sample's
Jacobian by the upstream gradient, categorical cross-entropy with gradient
``-Y/Yhat``, and mini-batch SGD (learning rate 0.01, batch 200, 20 epochs).
This script runs the same experiment, cell by cell, with the package:

    notebook cell                      tfsoftmax
    ---------------------------------  ------------------------------------------------
    mnist.load_data()                  tfsoftmax.datasets.load_mnist()  (offline)
    flatten, min-max scale, one-hot    tfsoftmax.datasets.preprocess(...)
    class Dense (bias trick)           tfsoftmax.layers.BiasTrickDense(10, NotebookInitializer)
    class Softmax (Jacobian backward)  tfsoftmax.layers.JacobianSoftmax()
    cce / cce_gradient                 tfsoftmax.losses.CategoricalCrossentropy()
    the while-epoch / for-batch loop   tfsoftmax.train_sgd(...)
    plt.plot(loss_epoch)               tfsoftmax.plots.plot_loss_curve(...)
    accuracy on the test set           argmax of model.predict(x_test)
    plot_misclassified_images          tfsoftmax.plots.plot_misclassified(...)

Run it with

    python examples/notebook.py [--epochs 20] [--out out/notebook] [--seed 0]

What it prints (measured with the defaults on a 2-core CPU, TensorFlow 2.21):
the MNIST summary; ``Epoch 1: loss = 1.442716`` ... ``Epoch 20: loss = 0.381765``
(the notebook: 1.442402 ... 0.381864 -- its weights and batch order were
unseeded, so the last digits differ); the predicted and true test labels and
``Test accuracy = 0.9039`` (notebook: 0.9035); the two figures written,
``loss_curve.png`` and ``misclassified.png`` in ``--out``; and the time, e.g.
``Time: 1.8 s after imports, 1.4 s of training (20 epochs)`` (1.8-3.2 s and
1.4-2.5 s over our runs, depending on the machine's load) -- 4.6-6.2 s for the
whole process, TensorFlow's import included.
"""

import argparse
import time
from pathlib import Path

import tfsoftmax  # first: it selects Keras' TensorFlow backend before Keras loads

# isort: split

import keras
import numpy as np

from tfsoftmax.datasets import load_mnist, preprocess
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax, NotebookInitializer
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.plots import (
    LOSS_CURVE_PNG,
    MISCLASSIFIED_PNG,
    plot_loss_curve,
    plot_misclassified,
)

# The notebook's hyperparameters ("Train the 0-layer neural network" cell).
LEARNING_RATE = 0.01
BATCH_SIZE = 200
EPOCHS = 20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the data (20)")
    parser.add_argument("--out", default="out/notebook", help="folder for the figures")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and batch order")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()

    # --- "Load MNIST data" ---------------------------------------------------------
    # mnist.load_data() needs the internet; load_mnist() returns the same uint8
    # arrays from a local, checksum-verified copy.
    (x_train, y_train), (x_test, y_test) = load_mnist()
    # The notebook flattens each image to 784 pixels, one-hot encodes the labels
    # and min-max scales both sets with the *training* set's min and max. It
    # stores samples as columns (784 x N); Keras wants rows, (N, 784).
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype="float32")
    num_samples, num_features = data.x_train.shape
    num_labels = data.y_train.shape[1]
    print("MNIST set")
    print("-----")
    print(f"Number of training samples = {num_samples}")
    print(f"Number of features = {num_features}")
    print(f"Number of output labels = {num_labels}")

    # --- "Dense Layer class" + "Softmax activation layer class" --------------------
    # Dense(784, 10): one (10, 785) weight matrix, 0.01*randn weights and a bias
    # column of 0.01 -- NotebookInitializer. Its backward pass is the notebook's
    # dW = G [X; 1]^T. JacobianSoftmax's backward multiplies each sample's 10x10
    # Jacobian diag(a) - a a^T by the upstream gradient, as the notebook's loop does.
    model = keras.Sequential(
        [
            keras.Input((num_features,)),
            BiasTrickDense(num_labels, kernel_initializer=NotebookInitializer(args.seed)),
            JacobianSoftmax(),
        ],
        name="notebook",
    )

    # --- "Define the loss function and its gradient" --------------------------------
    # cce(Y, Yhat) = mean over the batch of -sum(Y log Yhat); gradient -Y/Yhat.
    loss = CategoricalCrossentropy()

    # --- "Train the 0-layer neural network" ----------------------------------------
    # Every epoch: a fresh shuffle, batches of 200, forward, loss, backward and
    # W <- W - lr * dW per batch; the epoch's loss is the mean batch loss. The
    # callback prints it the way the notebook does.
    print_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print(
            f"Epoch {epoch + 1}: loss = {logs['loss']:f}", flush=True
        )
    )
    trained = time.perf_counter()
    history = tfsoftmax.train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        seed=args.seed,
        loss=loss,
        verbose=0,
        callbacks=[print_epoch],
    )
    trained = time.perf_counter() - trained
    loss_epoch = history.history["loss"]

    # --- "Accuracy on test set" ----------------------------------------------------
    probabilities = model.predict(data.x_test, batch_size=10_000, verbose=0)
    ypred = np.argmax(probabilities, axis=1)
    ytrue = data.labels_test
    print(ypred)
    print(ytrue)
    print(f"Test accuracy = {np.mean(ytrue == ypred):.4f}")

    # --- "Plot training loss" and "plot_misclassified_images" ----------------------
    out = Path(args.out)
    for path in (
        plot_loss_curve(loss_epoch, out / LOSS_CURVE_PNG),
        plot_misclassified(data.x_test, ytrue, ypred, out / MISCLASSIFIED_PNG, num_images=5),
    ):
        print(f"wrote {path}")
    print(
        f"Time: {time.perf_counter() - start:.1f} s after imports, "
        f"{trained:.1f} s of training ({args.epochs} epochs)"
    )


if __name__ == "__main__":
    main()
