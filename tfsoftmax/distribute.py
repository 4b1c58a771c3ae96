"""Data-parallel SGD with ``tf.distribute``: the trainer's engine for more than one device.

:func:`tfsoftmax.training.train_sgd` uses this module when it is given a
``strategy`` (``tf.distribute.MirroredStrategy`` for several devices of one
machine, ``tf.distribute.MultiWorkerMirroredStrategy`` for several machines,
or any other ``tf.distribute.Strategy``). Every step does, for the global batch
``B`` of ``N`` samples and ``R`` replicas::

    replica r takes rows [⌊rN/R⌋, ⌊(r+1)N/R⌋) of B     (n_r rows, Σ n_r = N)
    g_r = ∇w (n_r / N) · L(B_r)                          L = the loss's batch mean
    g   = Σ_r g_r                                        ctx.all_reduce(SUM, ...)
        = ∇w (1/N) Σ_{i∈B} ℓ_i = ∇w L(B)                 the single-device gradient
    w  ← w − lr · g                                      on every replica's copy

so the update is the single-device update on the same global batch, up to
floating-point rounding (measured: ~1e-16 in float64), and so is the reported
loss ``Σ_r (n_r / N) · L(B_r) = L(B)``. Uneven batches — a last partial batch,
a batch not divisible by ``R``, even a replica with no rows at all — need no
padding: the weights ``n_r / N`` take care of them.

Details that matter:

* **The batch split.** Every replica receives the whole global batch (the
  same tensor, which on one machine costs nothing and on a multi-worker run is
  each worker's identical copy: every worker holds the data and draws the same
  permutation from the same seed) and slices its own rows by
  ``replica_id_in_sync_group``. No ``tf.data`` pipeline, no rebatching.
* **Keras losses divide by R.** Inside a replica context (and under
  ``strategy.scope()``) a ``keras.losses.Loss`` with a mean reduction — Keras'
  own and :class:`tfsoftmax.losses.CategoricalCrossentropy` alike — returns
  ``mean / R`` (``keras.src.losses.loss.scale_loss_for_distribution``),
  which is right only for equal shards. The engine undoes exactly that factor
  and applies ``n_r / N`` itself, so plain-function losses
  (:func:`tfsoftmax.ops.categorical_crossentropy`) and Keras losses both work.
  Model losses (regularisers) are added once in total: ``1/R`` per replica.
* **Updates stay replica-local.** After the all-reduce every replica holds the
  same ``g``; ``w.assign_sub(lr·g)`` in replica context updates just that
  replica's copy of a mirrored variable (aggregation ``NONE``, Keras'
  default), so no ``merge_call`` and the copies stay bit-identical.
* **One collective per step.** Gradients and the ``(loss, correct)`` pair go
  through a single ``all_reduce`` (the pair in the gradients' dtype), which
  measured 15–25 % faster than two.
* **XLA.** The collectives cannot live inside an XLA cluster, so the batch loop
  is a plain ``tf.function`` (a ``tf.while_loop`` calling ``strategy.run``);
  with ``jit_compile=True`` (the default) each replica's forward + backward
  pass is an XLA-compiled inner function. Measured on the 2-core CPU (MNIST,
  batch 200, 2 logical CPU devices, median s/epoch after the first):
  float32 0.12–0.14 without XLA, 0.09–0.11 with it; float64 0.12 / 0.12;
  the first epoch pays ~0.5 s more compilation with XLA. The single-device
  XLA path (``strategy=None``) does the same epoch in 0.05 s: on one CPU the
  per-step synchronisation costs more than the 200×784×10 product, so a
  strategy pays off on real accelerators and larger models, not here.

:func:`check_ops_on_devices` runs a tiny forward and backward pass of every
custom op on every visible device (``tfsoftmax info`` prints it).
"""

import contextlib
import os

from tfsoftmax._loops import batch_loop, count_correct
from tfsoftmax._tf import keras, tf

__all__ = [
    "DistributedTraining",
    "check_model_in_scope",
    "check_ops_on_devices",
    "configure_cpu_devices",
    "make_strategy",
    "strategy_scope",
]

# Keras' reductions that return a batch mean, which Keras divides by the number
# of replicas in a replica context (keras.src.losses.loss.reduce_values).
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context for ``None``; rejects a non-strategy."""
    if strategy is None:
        return contextlib.nullcontext()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(
            f"strategy must be a tf.distribute.Strategy or None, got {type(strategy).__name__}"
        )
    return strategy.scope()


def _keras_distribution_factor(loss_fn):
    """What Keras multiplies ``loss_fn``'s value by in the current context: ``1/R`` or 1.

    Mirrors ``keras.src.losses.loss.scale_loss_for_distribution``; evaluated at
    trace time in the same context as the loss call it corrects.
    """
    if isinstance(loss_fn, keras.losses.Loss) and loss_fn.reduction in _MEAN_REDUCTIONS:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            return 1.0 / replicas
    return 1.0


def _check_loss(loss_fn):
    if isinstance(loss_fn, keras.losses.Loss) and loss_fn.reduction not in _MEAN_REDUCTIONS:
        raise ValueError(
            f"a strategy needs a loss that is the batch mean; {type(loss_fn).__name__} has "
            f"reduction={loss_fn.reduction!r}. Use reduction='sum_over_batch_size'."
        )


def _distributed_variable(variable):
    """The ``tf.Variable`` behind a Keras 3 variable (or ``variable`` itself)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def check_model_in_scope(model, strategy):
    """Raise ``ValueError`` unless every variable of ``model`` was created under ``strategy``."""
    outside = [
        variable.path if hasattr(variable, "path") else variable.name
        for variable in model.variables
        if not strategy.extended.variable_created_in_scope(_distributed_variable(variable))
    ]
    if outside:
        raise ValueError(
            f"the model's variables ({', '.join(outside[:3])}"
            f"{', ...' if len(outside) > 3 else ''}) were not created under the given "
            f"{type(strategy).__name__}: create the model inside strategy.scope() "
            "(and build it there, e.g. with keras.Input or one call)"
        )
    for variable in model.trainable_variables:
        aggregation = getattr(_distributed_variable(variable), "aggregation", None)
        if aggregation == tf.VariableAggregation.SUM:
            raise ValueError(
                f"variable {variable.name} has aggregation SUM: its replica-local "
                "updates would be summed over replicas; use the default aggregation"
            )


def _shard(tensor, replica_id, replicas):
    """Rows ``[⌊rN/R⌋, ⌊(r+1)N/R⌋)`` of ``tensor`` for replica ``r``, and ``n_r / N``."""
    total = tf.shape(tensor, out_type=tf.int64)[0]
    replica_id = tf.cast(replica_id, tf.int64)
    start = replica_id * total // replicas
    stop = (replica_id + 1) * total // replicas
    weight = tf.math.divide_no_nan(tf.cast(stop - start, tf.float64), tf.cast(total, tf.float64))
    return start, stop, weight


class DistributedTraining:
    """The interface of ``training._CompiledTraining``, data-parallel over ``strategy``.

    ``run_batches(xb, yb, start, stop, lr)`` trains on ``xb[start:stop]`` of a
    ``(batches, batch, features)`` tensor and returns the ``(batches,)`` float64
    per-batch losses (filled in ``[start, stop)``) and the correct-prediction
    count; ``train_step(xb, yb, lr)`` trains one batch and returns ``(loss,
    correct)``; ``evaluate(x, y)`` returns ``(mean loss, correct)``. Losses and
    counts are global (all replicas, all workers); on a multi-worker run every
    worker must make the same calls in the same order, as ``train_sgd`` does.

    Args:
        strategy: a ``tf.distribute.Strategy``; the model's variables must have
            been created under ``strategy.scope()``.
        model: the Keras model.
        loss_fn: ``loss(y_true, y_pred) -> scalar batch mean``.
        jit_compile: XLA-compile each replica's forward + backward pass.
    """

    def __init__(self, strategy, model, loss_fn, jit_compile=True):
        check_model_in_scope(model, strategy)
        _check_loss(loss_fn)
        self.strategy = strategy
        self.loss_fn = loss_fn
        replicas = strategy.num_replicas_in_sync
        variables = model.trainable_variables
        # The all-reduce packs tensors of one dtype together. When every gradient is
        # float32 or float64, the (loss, correct) pair rides along in that dtype —
        # exact for a correct count below 2**24 — saving a collective per step.
        dtypes = {tf.as_dtype(v.dtype) for v in variables}
        stats_dtype = dtypes.pop() if dtypes in ({tf.float32}, {tf.float64}) else None

        def local_mean_loss(y, probabilities):
            loss = loss_fn(y, probabilities)
            # A scalar; reduce_sum also turns Keras' (0,)-shaped result for an
            # empty shard into 0.
            loss = tf.reduce_sum(loss) / tf.cast(_keras_distribution_factor(loss_fn), loss.dtype)
            return loss

        def local_gradients(x, y, weight):
            with tf.GradientTape() as tape:
                probabilities = model(x, training=True)
                loss = local_mean_loss(y, probabilities)
                objective = loss * tf.cast(weight, loss.dtype)
                if model.losses:
                    objective += tf.add_n(model.losses) / replicas
            gradients = tape.gradient(objective, variables)
            return gradients, tf.cast(loss, tf.float64) * weight, count_correct(y, probabilities)

        if jit_compile:
            local_gradients = tf.function(local_gradients, jit_compile=True)

        def replica_step(xb, yb, learning_rate):
            context = tf.distribute.get_replica_context()
            start, stop, weight = _shard(xb, context.replica_id_in_sync_group, replicas)
            gradients, loss, correct = local_gradients(xb[start:stop], yb[start:stop], weight)
            stats = tf.stack([loss, tf.cast(correct, tf.float64)])
            if stats_dtype is not None:  # one all-reduce for gradients and statistics
                *gradients, stats = context.all_reduce(
                    tf.distribute.ReduceOp.SUM, [*gradients, tf.cast(stats, stats_dtype)]
                )
                stats = tf.cast(stats, tf.float64)
            else:
                gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
                stats = context.all_reduce(tf.distribute.ReduceOp.SUM, stats)
            for variable, gradient in zip(variables, gradients, strict=True):
                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient)
            return stats

        def replica_evaluate(x, y):
            context = tf.distribute.get_replica_context()
            start, stop, weight = _shard(x, context.replica_id_in_sync_group, replicas)
            probabilities = model(x[start:stop], training=False)
            loss = tf.cast(local_mean_loss(y[start:stop], probabilities), tf.float64) * weight
            correct = tf.cast(count_correct(y[start:stop], probabilities), tf.float64)
            return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack([loss, correct]))

        def first(per_replica):
            # Every replica holds the same all-reduced value.
            return strategy.experimental_local_results(per_replica)[0]

        def train_step(xb, yb, learning_rate):
            stats = first(strategy.run(replica_step, args=(xb, yb, learning_rate)))
            return stats[0], tf.cast(stats[1], tf.int64)

        def evaluate(x, y):
            stats = first(strategy.run(replica_evaluate, args=(x, y)))
            return stats[0], tf.cast(stats[1], tf.int64)

        self.run_batches = tf.function(batch_loop(train_step))
        self.train_step = tf.function(train_step)
        self.evaluate = tf.function(evaluate, reduce_retracing=True)


# --------------------------------------------------------------------------- devices
STRATEGIES = ("mirrored", "multiworker")


def is_chief(strategy):
    """False only for a multi-worker run's non-chief workers.

    The chief is the ``chief`` task, or worker 0 when the cluster has none (as
    Keras decides). Single-machine strategies, and ``None``, are their own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_checkpoint_dir(strategy, checkpoint_dir):
    """Where this worker checkpoints: ``checkpoint_dir`` for the chief, and a
    ``worker-<task id>`` subfolder for every other multi-worker task, so that
    workers never write the same files. All workers save after the same
    epochs with the same state, so each resumes from its own folder in step.
    """
    if is_chief(strategy):
        return checkpoint_dir
    resolver = strategy.cluster_resolver
    return os.path.join(checkpoint_dir, f"{resolver.task_type}-{resolver.task_id}")


def configure_cpu_devices(count):
    """Split the first physical CPU into ``count`` logical devices ``/cpu:0 … /cpu:{count-1}``.

    Must run before TensorFlow initialises its devices (before the first op,
    tensor or model); afterwards TensorFlow refuses and this raises
    ``RuntimeError``. A no-op when the CPU is already split that way.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    if current is None and count == 1:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:
        raise RuntimeError(
            f"cannot split the CPU into {count} logical devices: TensorFlow has already "
            "initialised its devices. Configure the devices first thing in the program "
            f"({error})"
        ) from None


def make_strategy(kind, devices=None):
    """A ``tf.distribute`` strategy for ``tfsoftmax train --strategy KIND --devices N``.

    ``"mirrored"``: one machine. With GPUs visible, the first ``devices`` GPUs
    (all of them by default); otherwise the CPU split into ``devices`` logical
    devices (:func:`configure_cpu_devices`; default 1). ``"multiworker"``:
    ``tf.distribute.MultiWorkerMirroredStrategy``, cluster and task from the
    ``TF_CONFIG`` environment variable; each worker contributes all its GPUs,
    or one CPU replica (``devices`` must then be 1 or None).

    Call it before TensorFlow has initialised its devices.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "multiworker":
        if not gpus and devices not in (None, 1):
            raise ValueError(
                "--devices > 1 with --strategy multiworker needs GPUs: on a CPU each worker "
                "is one replica (start more workers instead)"
            )
        if gpus and devices is not None:
            _use_gpus(gpus, devices)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus:
        selected = _use_gpus(gpus, devices)
        names = [f"/gpu:{i}" for i in range(len(selected))]
    else:
        configure_cpu_devices(devices or 1)
        names = [f"/cpu:{i}" for i in range(devices or 1)]
    return tf.distribute.MirroredStrategy(names)


def _use_gpus(gpus, devices):
    if devices is None:
        return gpus
    if devices > len(gpus):
        raise ValueError(f"--devices {devices} but only {len(gpus)} GPU(s) are visible")
    tf.config.set_visible_devices(gpus[:devices], "GPU")
    return gpus[:devices]


def _op_checks():
    """``name -> fn(x, w, y) -> (value, gradients, reference value, reference gradients)``."""
    from tfsoftmax import ops

    def dense_reference(x, w):
        return tf.matmul(x, w[:, :-1], transpose_b=True) + w[:, -1]

    def cce_reference(y, p):
        return -tf.reduce_sum(y * tf.math.log(p)) / tf.cast(tf.shape(p)[0], p.dtype)

    def dense(x, w, y):
        return ops.bias_trick_dense(x, w), dense_reference(x, w)

    def softmax(method):
        def check(x, w, y):
            z = dense_reference(x, w)
            return ops.jacobian_softmax(z, method=method), tf.nn.softmax(z)

        return check

    def cce(x, w, y):
        p = tf.nn.softmax(dense_reference(x, w))
        return ops.categorical_crossentropy(y, p), cce_reference(y, p)

    return {
        "bias_trick_dense": dense,
        "jacobian_softmax[jacobian]": softmax("jacobian"),
        "jacobian_softmax[vjp]": softmax("vjp"),
        "categorical_crossentropy": cce,
    }


def check_ops_on_devices(device_types=("CPU", "GPU"), dtype="float32"):
    """Run a tiny forward + backward of every custom op on every logical device.

    For each device and op: under ``tf.device``, the op's value and its
    gradient with respect to the weights (through ``tf.custom_gradient``) are
    compared with TensorFlow's own formula and autodiff on the same inputs,
    and the result must have been computed on that device.

    Returns:
        A list of ``(device name, op name, ok, detail)``; ``detail`` is the
        largest difference or the error.
    """
    results = []
    checks = _op_checks()
    tolerance = 1e-4 if tf.as_dtype(dtype) != tf.float64 else 1e-10
    for kind in device_types:
        for device in tf.config.list_logical_devices(kind):
            for name, check in checks.items():
                try:
                    with tf.device(device.name):
                        x = tf.random.stateless_normal((4, 5), (1, 2), dtype=dtype)
                        w = tf.Variable(tf.random.stateless_normal((3, 6), (3, 4), dtype=dtype))
                        y = tf.one_hot([0, 1, 2, 1], 3, dtype=dtype)
                        with tf.GradientTape(persistent=True) as tape:
                            value, expected = check(x, w, y)
                            weights = tf.cast(tf.range(tf.size(value)), dtype)
                            objective = tf.reduce_sum(tf.reshape(value, [-1]) * weights)
                            reference = tf.reduce_sum(tf.reshape(expected, [-1]) * weights)
                        gradient = tape.gradient(objective, w)
                        expected_gradient = tape.gradient(reference, w)
                    placed = tf.DeviceSpec.from_string(gradient.device)
                    wanted = tf.DeviceSpec.from_string(device.name)
                    if (placed.device_type, placed.device_index) != (
                        wanted.device_type,
                        wanted.device_index,
                    ):
                        raise RuntimeError(f"ran on {gradient.device}")
                    error = max(
                        float(tf.reduce_max(tf.abs(value - expected))),
                        float(tf.reduce_max(tf.abs(gradient - expected_gradient))),
                    )
                    ok = error <= tolerance
                    results.append((device.name, name, ok, f"max |diff| {error:.1e}"))
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    results.append((device.name, name, False, f"{type(error).__name__}: {error}"))
    return results
