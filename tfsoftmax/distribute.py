"""The ``tf.distribute`` strategies of data-parallel training, and their helpers.

:func:`tfsoftmax.training.train_sgd` trains data-parallel when it is given a
``strategy``: ``tf.distribute.MirroredStrategy`` for several devices of one
machine, ``tf.distribute.MultiWorkerMirroredStrategy`` for several machines, or
any other ``tf.distribute.Strategy``. With ``R`` replicas, each global batch
``B`` of ``N`` samples is split into shards ``B_r`` of ``n_r`` rows and::

    w ← w − lr · Σ_r ∇w (n_r / N) · L(B_r)  =  w − lr · ∇w L(B)

— the single-device update (the engine,
:class:`tfsoftmax.engine.DataParallelEngine`, states the details). This module
holds what surrounds it: entering the strategy's scope, checking that a model
was built in it, splitting a CPU into logical devices, building a strategy for
the command line, and which worker of a multi-worker run is the chief and
where each worker checkpoints.
"""

import contextlib
import os

from tfsoftmax._tf import keras, tf
from tfsoftmax.constants import STRATEGIES

__all__ = [
    "check_model_in_scope",
    "configure_cpu_devices",
    "is_chief",
    "make_strategy",
    "strategy_scope",
    "worker_checkpoint_dir",
]


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context for ``None``; rejects a non-strategy."""
    if strategy is None:
        return contextlib.nullcontext()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(
            f"strategy must be a tf.distribute.Strategy or None, got {type(strategy).__name__}"
        )
    return strategy.scope()


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
