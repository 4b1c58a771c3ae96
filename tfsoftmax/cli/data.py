"""MNIST for a subcommand: preprocessed as the notebook does, cut to ``--limit``."""

__all__ = ["load_data"]


def load_data(dtype, limit=None):
    """MNIST, batch-major, in ``dtype``; only the first ``limit`` training samples if given."""
    from tfsoftmax.datasets import load_mnist, preprocess
    from tfsoftmax.preprocessing import first_samples

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=dtype)
    return data if limit is None else first_samples(data, limit)
