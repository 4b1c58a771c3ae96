"""MNIST for a subcommand: preprocessed as the notebook does, cut to ``--limit``."""

import dataclasses


def load_data(dtype, limit=None):
    """MNIST, batch-major, in ``dtype``; only the first ``limit`` training samples if given."""
    from tfsoftmax.datasets import load_mnist, preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=dtype)
    if limit is not None:
        data = dataclasses.replace(
            data,
            x_train=data.x_train[:limit],
            y_train=data.y_train[:limit],
            labels_train=data.labels_train[:limit],
        )
    return data
