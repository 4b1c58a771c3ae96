"""The package's shared constants, importable without TensorFlow.

The notebook's hyper-parameters are the defaults of every training entry point
(:func:`tfsoftmax.training.train_sgd`, :func:`tfsoftmax.reference.train`,
:func:`tfsoftmax.compare.compare`, the command line)::

    epochs 20 · batch size 200 · learning rate 0.01 · seed 0
"""

__all__ = [
    "BATCH_SIZE",
    "COMPARISON_DTYPES",
    "EPOCHS",
    "LEARNING_RATE",
    "NOTEBOOK",
    "SEED",
    "SOFTMAX_METHODS",
    "STRATEGIES",
]

#: The notebook's number of passes over the training data.
EPOCHS = 20
#: The notebook's samples per mini-batch.
BATCH_SIZE = 200
#: The notebook's SGD step size.
LEARNING_RATE = 0.01
#: The seed of the shuffling generator ``np.random.default_rng(seed)``.
SEED = 0
#: All four, by the keyword names the entry points use.
NOTEBOOK = {
    "epochs": EPOCHS,
    "batch_size": BATCH_SIZE,
    "learning_rate": LEARNING_RATE,
    "seed": SEED,
}

#: The dtypes in which the three implementations are run and compared
#: (the NumPy reference computes in float32 or float64 only).
COMPARISON_DTYPES = ("float32", "float64")

#: The backward passes of :func:`tfsoftmax.ops.jacobian_softmax`.
SOFTMAX_METHODS = ("jacobian", "vjp")

#: The ``tf.distribute`` strategies the command line builds
#: (:func:`tfsoftmax.distribute.make_strategy`).
STRATEGIES = ("mirrored", "multiworker")
