"""Subprocess side of tests/test_distribute.py: train with a tf.distribute strategy.

Devices must be configured before TensorFlow initialises them, which a pytest
process that has already run TensorFlow cannot do, so every distributed run
happens in a fresh process running this script:

``python tests/distributed_worker.py mirrored OUT.json``
    Splits the CPU into 2 logical devices and compares MirroredStrategy training
    with single-device ``train_sgd`` (the same global batch, seed and initial
    weights, float64) on real MNIST: the notebook's model for 2 epochs on all
    60,000 samples, plus short runs whose batches split unevenly (a 1-sample
    last batch that leaves one replica empty, 99-sample batches split 49/50),
    the Keras built-ins model and a plain-function loss.

``python tests/distributed_worker.py multiworker OUT.json``
    One worker of a MultiWorkerMirroredStrategy cluster described by
    ``TF_CONFIG``: trains the notebook's model for 1 epoch on the first
    ``MULTIWORKER_SAMPLES`` MNIST samples; worker 0 also trains the same run on
    one device as the reference.

Each writes its results (weights as lists, max differences, losses) as JSON.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

#: MNIST samples of the multi-worker run: 30 full batches of 200 and one of 99
#: (split 49/50 across the two workers), to keep the test short.
MULTIWORKER_SAMPLES = 6099
SETTINGS = {"batch_size": 200, "learning_rate": 0.01, "seed": 0}


def _mnist(dtype="float64"):
    from tfsoftmax.datasets import load_mnist, preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    return preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=dtype)


def _initial_weights(dtype="float64"):
    from tfsoftmax import reference

    return reference.Dense(784, 10, rng=np.random.default_rng(0), dtype=dtype).weights


def _train(strategy, x, y, *, kind="custom", loss=None, epochs=1, validation=None, **settings):
    """Train the notebook's model (under ``strategy`` if given); return weights, history."""
    from tfsoftmax.distribute import strategy_scope
    from tfsoftmax.models import get_notebook_weights, notebook_model
    from tfsoftmax.training import train_sgd

    with strategy_scope(strategy):
        model, default_loss = notebook_model(kind, _initial_weights(), dtype="float64")
    history = train_sgd(
        model,
        x,
        y,
        epochs=epochs,
        loss=default_loss if loss is None else loss,
        verbose=0,
        validation_data=validation,
        strategy=strategy,
        **{**SETTINGS, **settings},
    )
    copies = []
    if strategy is not None:
        # Every replica's copy of the kernel (all local replicas of this process).
        variable = model.layers[0].trainable_variables[0]
        copies = [np.asarray(v) for v in strategy.experimental_local_results(variable.value)]
    return get_notebook_weights(model), history, copies


def _compare(strategy, x, y, **kwargs):
    weights, history, copies = _train(strategy, x, y, **kwargs)
    expected, expected_history, _ = _train(None, x, y, **kwargs)
    result = {
        "max_weight_diff": float(np.max(np.abs(weights - expected))),
        "max_loss_diff": float(np.max(np.abs(np.subtract(history.loss, expected_history.loss)))),
        "replica_copies": len(copies),
        "replica_copies_identical": all(np.array_equal(copies[0], c) for c in copies),
        "accuracy": history.history["accuracy"],
        "expected_accuracy": expected_history.history["accuracy"],
        "loss": history.loss,
    }
    if "val_loss" in history.history:
        result["max_val_loss_diff"] = float(
            np.max(
                np.abs(
                    np.subtract(history.history["val_loss"], expected_history.history["val_loss"])
                )
            )
        )
        result["val_accuracy"] = history.history["val_accuracy"]
        result["expected_val_accuracy"] = expected_history.history["val_accuracy"]
    return result


def _compare_dataset(strategy, x, y, batch):
    """Mirrored training from a dataset of unshuffled global batches vs one device."""
    import tensorflow as tf

    from tfsoftmax.distribute import strategy_scope
    from tfsoftmax.models import get_notebook_weights, notebook_model
    from tfsoftmax.training import train_sgd

    found = {}
    for name, chosen in (("mirrored", strategy), ("single", None)):
        with strategy_scope(chosen):
            model, loss = notebook_model("custom", _initial_weights(), dtype="float64")
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
        history = train_sgd(
            model, dataset, epochs=2, loss=loss, verbose=0, learning_rate=0.01, strategy=chosen
        )
        found[name] = (get_notebook_weights(model), history)
    (weights, history), (expected, expected_history) = found["mirrored"], found["single"]
    return {
        "max_weight_diff": float(np.max(np.abs(weights - expected))),
        "max_loss_diff": float(np.max(np.abs(np.subtract(history.loss, expected_history.loss)))),
        "accuracy": history.history["accuracy"],
        "expected_accuracy": expected_history.history["accuracy"],
        "moved": float(np.max(np.abs(weights - _initial_weights()))),
    }


def run_mirrored():
    from tfsoftmax.distribute import make_strategy

    strategy = make_strategy("mirrored", 2)  # before TensorFlow touches a device
    from tfsoftmax import ops

    data = _mnist()
    x, y = data.x_train, data.y_train
    results = {"replicas": strategy.num_replicas_in_sync, "seconds": {}}

    def timed(name, **kwargs):
        started = time.perf_counter()
        results[name] = _compare(strategy, **kwargs)
        results["seconds"][name] = time.perf_counter() - started

    # The notebook's model and settings, 2 epochs on all of MNIST (300 batches of 200).
    timed("notebook", x=x, y=y, epochs=2)
    # 1001 samples: the last batch has 1 sample, so replica 1 gets none.
    timed("empty_shard", x=x[:1001], y=y[:1001])
    # Batches of 99 split 49/50, last batch 9 split 4/5; Keras built-ins, validation.
    timed(
        "uneven_keras",
        x=x[:2000],
        y=y[:2000],
        kind="keras",
        batch_size=99,
        validation=(data.x_test[:999], data.y_test[:999]),
    )
    # A plain function loss (no Keras reduction, no distribution scaling).
    timed("function_loss", x=x[:2000], y=y[:2000], loss=ops.categorical_crossentropy)

    # A tf.data.Dataset of global batches (99, last 20: uneven splits), distributed by
    # the strategy, against single-device training on the same unshuffled batches.
    results["dataset"] = _compare_dataset(strategy, x[:2000], y[:2000], batch=99)

    # A model built outside strategy.scope() is refused.
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    model, loss = notebook_model("custom", _initial_weights(), dtype="float64")
    try:
        train_sgd(model, x[:10], y[:10], epochs=1, loss=loss, verbose=0, strategy=strategy)
        results["outside_scope_error"] = None
    except ValueError as error:
        results["outside_scope_error"] = str(error)
    return results


def run_multiworker():
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    data = _mnist()
    x, y = data.x_train[:MULTIWORKER_SAMPLES], data.y_train[:MULTIWORKER_SAMPLES]
    started = time.perf_counter()
    weights, history, _ = _train(strategy, x, y, epochs=1)
    results = {
        "task": task,
        "replicas": strategy.num_replicas_in_sync,
        "seconds": time.perf_counter() - started,
        "weights": weights.tolist(),
        "loss": history.loss,
        "accuracy": history.history["accuracy"],
    }
    if task["index"] == 0:
        expected, expected_history, _ = _train(None, x, y, epochs=1)
        results["expected_weights"] = expected.tolist()
        results["expected_loss"] = expected_history.loss
    return results


def main(argv):
    mode, out = argv
    results = {"mirrored": run_mirrored, "multiworker": run_multiworker}[mode]()
    with open(out, "w") as file:
        json.dump(results, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
