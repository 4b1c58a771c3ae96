"""tfsoftmax's layers as drop-in Keras layers: an MLP on MNIST with model.fit and Adam.

The notebook's model is one ``BiasTrickDense(10)`` followed by ``JacobianSoftmax``.
Here the same layers build a bigger network, used exactly like
``keras.layers.Dense`` and ``keras.layers.Softmax``:

    784 pixels -> BiasTrickDense(256) -> ReLU -> BiasTrickDense(10) -> JacobianSoftmax

trained with tfsoftmax's ``CategoricalCrossentropy`` (the notebook's ``-y/yhat``
gradient) and any Keras optimizer (Adam here). Run it with

    python examples/keras_drop_in.py

It prints the test accuracy (0.981 after 10 epochs) and the wall time (about
12 s on a 2-core CPU). MNIST is loaded offline by ``tfsoftmax.datasets``.
"""

import time

import tfsoftmax  # first: it selects Keras' TensorFlow backend before Keras loads

# isort: split

import keras


def build_model():
    """The MLP: tfsoftmax's layers wherever you would write Dense / Softmax."""
    return keras.Sequential(
        [
            keras.Input((784,)),
            tfsoftmax.BiasTrickDense(256),  # kernel (256, 785): the bias is its last column
            keras.layers.ReLU(),
            tfsoftmax.BiasTrickDense(10),
            tfsoftmax.JacobianSoftmax(),  # backward pass: each sample's Jacobian times the gradient
        ],
        name="mlp",
    )


def main(epochs=10, batch_size=128):
    start = time.perf_counter()
    keras.utils.set_random_seed(0)  # reproducible initial weights and batch order

    # The notebook's preprocessing: flatten to 784, min-max scale to [0, 1]
    # with the training set's min/max, one-hot labels. float32, (samples, features).
    (x_train, y_train), (x_test, y_test) = tfsoftmax.datasets.load_mnist()  # uint8, Keras' layout
    data = tfsoftmax.datasets.preprocess(x_train, y_train, x_test, y_test)

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=tfsoftmax.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.summary()
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, verbose=2)

    _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1000, verbose=0)
    print(f"test accuracy: {accuracy:.4f}")
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return accuracy


if __name__ == "__main__":
    main()
