"""Training from a ``tf.data.Dataset``: data that does not fit in memory, as ``model.fit(dataset)``.

``train_sgd(model, dataset, epochs=…)`` takes a dataset yielding ``(x, y)``
batches — ``x (b, features)``, ``y`` one-hot ``(b, classes)`` or class indices
``(b,)`` — and, per epoch, iterates it once::

    for step s, (X_B, Y_B) in enumerate(dataset):      batches in the dataset's order
        L_B = loss(Y_B, model(X_B))                     the compiled train_step
        w  ← w − η_s · ∇w L_B
    loss_e = (1 / #batches) Σ_B L_B,   accuracy_e = Σ_B correct_B / Σ_B |B|

Batching, shuffling and reading files are the dataset's (``.shuffle``,
``.batch``, ``TFRecordDataset``); ``batch_size`` and ``seed`` do not apply.
Each batch is converted on the dataset's threads (``map``: ``x`` to the
model's dtype, integer labels to one-hot) and prefetched. The batch losses
are read back once per chunk of steps (:func:`dataset_chunks`), so the
steps are dispatched without waiting for each other.

Checked before training: the element structure and ranks (``element_spec``),
the label width against the model's classes, and the first batch (it builds
the model). The values are not scanned (the data may be larger than memory):
a NaN feature shows up as a NaN loss, which stops the run
(:class:`tfsoftmax.divergence.TrainingDivergedError`).

With a ``strategy``, the dataset is distributed with the strategy's own
API, ``strategy.experimental_distribute_dataset`` (once per dataset and
engine): each element is the *global* batch ``B`` of ``N`` rows, which
tf.data splits into the replicas' rows ``B_r`` (``n_r`` of them, ``n_r = 0``
allowed; on several workers each reads its shard, by the dataset's
auto-shard policy). Every step then does::

    N   = Σ_r n_r                                  a scalar all-reduce
    g   = Σ_r ∇w (n_r / N) · L(B_r) = ∇w L(B)      one all-reduce, as for in-memory data
    w  ← w − η_s · g

— :class:`tfsoftmax.engine.DataParallelEngine`'s update on the same global
batch, so the weights and losses equal single-device training on the same
batches up to rounding.

Not supported, refused with a ``ValueError`` naming it: ``(x, y,
sample_weight)`` elements, and ``checkpoint_dir`` (its fingerprint digests
the data; use ``keras.callbacks.BackupAndRestore``).
"""

import numpy as np

from tfsoftmax._tf import tf

__all__ = [
    "DatasetEpochs",
    "check_dataset",
    "dataset_chunks",
    "first_features",
    "is_dataset",
    "prepared",
]


def is_dataset(value):
    """Whether ``value`` is a ``tf.data.Dataset``."""
    return isinstance(value, tf.data.Dataset)


def check_dataset(dataset, name="x", *, y=None, strategy=None, checkpoint_dir=None):
    """``dataset``'s elements are ``(x (b, features), y)`` batches; ValueError otherwise.
    (``strategy`` is accepted for the caller's convenience: any strategy works.)"""
    del strategy
    if y is not None:
        raise ValueError(f"{name} is a tf.data.Dataset of (x, y) batches: pass y=None")
    if checkpoint_dir is not None:
        raise ValueError(
            "checkpoint_dir needs in-memory arrays (a checkpoint records a digest of the data); "
            "with a tf.data.Dataset use keras.callbacks.BackupAndRestore"
        )
    spec = dataset.element_spec
    if isinstance(spec, tuple) and len(spec) == 3:
        raise ValueError(f"{name} yields (x, y, sample_weight): sample weights are not supported")
    if not (
        isinstance(spec, tuple)
        and len(spec) == 2
        and all(isinstance(part, tf.TensorSpec) for part in spec)
    ):
        raise ValueError(f"{name} must yield (x, y) pairs of tensors, its elements are {spec}")
    x_spec, y_spec = spec
    if x_spec.shape.rank != 2:
        raise ValueError(
            f"{name} must yield batches x of shape (batch, features), got {x_spec.shape}; "
            "batch the dataset (dataset.batch(batch_size))"
        )
    if y_spec.shape.rank not in (1, 2) or (y_spec.shape.rank == 1 and not y_spec.dtype.is_integer):
        raise ValueError(
            f"{name} must yield labels y one-hot (batch, classes) or integer (batch,), got "
            f"{y_spec.shape} {y_spec.dtype.name}"
        )
    return dataset


def first_features(dataset, name="x"):
    """The first batch's ``x`` as a NumPy array (builds the model); ValueError if empty."""
    for features, _ in dataset.take(1):
        return features.numpy()
    raise ValueError(f"{name} is an empty dataset: there is nothing to train on")


def prepared(dataset, x_dtype, dtype, num_classes, name="x"):
    """``dataset`` with ``x`` cast to ``x_dtype`` and ``y`` one-hot in ``dtype``, prefetched.

    Raises:
        ValueError: integer features for a model whose input is floating, or
            one-hot labels of another width than ``num_classes``.
    """
    x_spec, y_spec = dataset.element_spec
    if x_spec.dtype.is_integer and not tf.as_dtype(x_dtype).is_integer:
        raise ValueError(
            f"{name} yields integer features ({x_spec.dtype.name}) but the model's input is "
            "floating point; scale images to [0, 1] first (dataset.map)"
        )
    if y_spec.shape.rank == 2 and y_spec.shape[-1] not in (None, num_classes):
        raise ValueError(
            f"{name} yields labels with {y_spec.shape[-1]} classes but the model outputs "
            f"{num_classes}"
        )

    def convert(x, y):
        if y.shape.rank == 1:
            y = tf.one_hot(tf.cast(y, tf.int32), num_classes, dtype=dtype)
        return tf.cast(x, x_dtype), tf.cast(y, dtype)

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def dataset_chunks(engine, dataset, rate, first_step, chunk_size, before_chunk=None):
    """Train one epoch over ``dataset``, ``chunk_size`` steps at a time.

    Yields ``(losses, correct, samples)`` per chunk: the chunk's batch losses
    (float64, before each update), its correct count and its sample count;
    ``before_chunk(i)`` is called before the chunk that starts at batch ``i``.
    The rates of a chunk are computed when it starts, so a callback run
    between two chunks changes the rate of the next one. Closing the
    generator stops the epoch.
    """
    step, losses, hits, samples, rates = first_step, [], [], [], None
    train_step, dataset = _stepper(engine, dataset)
    for features, labels in dataset:
        index = len(losses)
        if index == 0:
            if before_chunk is not None:
                before_chunk(step - first_step)
            rates = rate.rates(step, chunk_size)
        loss, correct, count = train_step(features, labels, tf.constant(rates[index], tf.float64))
        losses.append(loss)
        hits.append(correct)
        samples.append(count)
        step += 1
        if len(losses) == chunk_size:
            yield _collected(losses, hits, samples)
            losses, hits, samples = [], [], []
    if losses:
        yield _collected(losses, hits, samples)


def _collected(losses, hits, samples):
    values = np.array([float(loss) for loss in losses], dtype=np.float64)
    return values, int(sum(int(correct) for correct in hits)), int(sum(int(n) for n in samples))


def _stepper(engine, dataset):
    """``(train_step, batches)``: ``train_step(x, y, lr) -> (L_B, correct_B, N)`` and
    the dataset to iterate — distributed over the engine's strategy if it has one."""
    strategy = getattr(engine, "strategy", None)
    if strategy is None:

        def single_device_step(features, labels, learning_rate):
            loss, correct = engine.train_step(features, labels, learning_rate)
            return loss, correct, features.shape[0]

        return single_device_step, dataset
    cache = engine.__dict__.setdefault("_tfsoftmax_distributed", {})
    if cache.get("dataset") is not dataset:
        cache["dataset"] = dataset
        cache["distributed"] = strategy.experimental_distribute_dataset(dataset)
    if "step" not in cache:
        cache["step"] = _distributed_step(engine, strategy)
    return cache["step"], cache["distributed"]


def _distributed_step(engine, strategy):
    """The compiled step on a distributed dataset's per-replica batches (module docstring)."""

    def replica_step(x, y, learning_rate):
        context = tf.distribute.get_replica_context()
        rows = tf.cast(tf.shape(x)[0], tf.float64)
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, rows)
        weight = tf.math.divide_no_nan(rows, total)
        stats = engine.replica_update(x, y, weight, learning_rate)
        return tf.concat([stats, [total]], axis=0)

    @tf.function
    def step(x, y, learning_rate):
        per_replica = strategy.run(replica_step, args=(x, y, learning_rate))
        stats = strategy.experimental_local_results(per_replica)[0]
        return stats[0], tf.cast(stats[1], tf.int64), tf.cast(stats[2], tf.int64)

    return step


class DatasetEpochs:
    """The epochs of a dataset, with :class:`tfsoftmax.epochs.ShuffledEpochs`'
    interface: every epoch iterates the same dataset (its own shuffling, if any)."""

    def __init__(self, dataset):
        self._dataset = dataset

    def next(self):
        return self._dataset

    def close(self):
        """Nothing to stop."""
