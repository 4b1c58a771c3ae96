"""The accuracy check: the custom ops learn what the NumPy reference learns.

It trains the NumPy reference and ``custom-jacobian`` for ``accuracy_epochs``
(20) epochs from the same weights and seed and compares their test
accuracies (target: :data:`tfsoftmax.bench.targets.ACCURACY_TARGET`).
"""

import numpy as np

from tfsoftmax import reference


def accuracy_check(data, weights, settings, epochs):
    """Test accuracy of the reference and of ``custom-jacobian`` after ``epochs`` epochs.

    ``data`` is batch-major, ``weights`` the shared initial ``(classes,
    features + 1)`` matrix, ``settings`` gives ``batch_size``,
    ``learning_rate``, ``seed`` and ``dtype``.
    """
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    s = settings
    dense, _ = reference.train(
        data.x_train.T,
        data.y_train.T,
        epochs=epochs,
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        seed=s["seed"],
        initial_weights=weights,
    )
    numpy_accuracy = reference.accuracy(dense, data.x_test.T, data.labels_test)
    model, loss = notebook_model("custom", weights, dtype=s["dtype"])
    train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        seed=s["seed"],
        loss=loss,
        verbose=0,
    )
    probabilities = model(np.asarray(data.x_test, s["dtype"]), training=False).numpy()
    custom_accuracy = float(np.mean(np.argmax(probabilities, axis=1) == data.labels_test))
    return {
        "epochs": epochs,
        "numpy": numpy_accuracy,
        "custom": custom_accuracy,
        "difference": custom_accuracy - numpy_accuracy,
    }
