"""MNIST for a subcommand: preprocessed as the notebook does, cut to ``--limit``."""

__all__ = ["load_data"]


def load_data(dtype, limit=None, uint8=False):
    """MNIST, batch-major, in ``dtype``; only the first ``limit`` training samples if given.

    ``uint8=True`` keeps the features as the stored 0–255 pixels, flattened (a
    quarter of the float32 data in memory), for a model that scales them
    itself (``notebook_model(..., input_dtype="uint8")``); labels and one-hot
    targets are as usual.
    """
    from tfsoftmax.datasets import load_mnist, preprocess
    from tfsoftmax.preprocessing import first_samples

    (x_train, y_train), (x_test, y_test) = load_mnist()
    if uint8:
        return _uint8_data(x_train, y_train, x_test, y_test, dtype, limit)
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=dtype)
    return data if limit is None else first_samples(data, limit)


def _uint8_data(x_train, y_train, x_test, y_test, dtype, limit):
    """:class:`~tfsoftmax.preprocessing.Preprocessed` with the flattened uint8 pixels as
    features (64-byte aligned: TensorFlow adopts them without a copy)."""
    import numpy as np

    from tfsoftmax.alignment import aligned_empty
    from tfsoftmax.preprocessing import Preprocessed, flatten, one_hot

    count = x_train.shape[0] if limit is None else min(limit, x_train.shape[0])
    xmin, xmax = float(x_train.min()), float(x_train.max())
    if (xmin, xmax) != (0.0, 255.0):  # the models' MinMaxRescaling maps 0–255
        raise RuntimeError(f"MNIST's training pixels span {xmin}–{xmax}, not 0–255")
    labels_train, labels_test = np.asarray(y_train)[:count], np.asarray(y_test)

    def aligned_copy(images):
        flat = flatten(images)
        copy = aligned_empty(flat.shape, np.uint8)
        np.copyto(copy, flat)
        return copy

    return Preprocessed(
        x_train=aligned_copy(x_train[:count]),
        y_train=one_hot(labels_train, 10, dtype),
        x_test=aligned_copy(x_test),
        y_test=one_hot(labels_test, 10, dtype),
        labels_train=labels_train.astype(np.int64),
        labels_test=labels_test.astype(np.int64),
        layout="batch-major",
        xmin=xmin,
        xmax=xmax,
    )
