"""train_sgd with tf.distribute: MirroredStrategy, MultiWorkerMirroredStrategy, GPUs.

Logical devices must be configured before TensorFlow initialises its devices,
which this shared pytest process cannot promise, so the distributed runs happen
in fresh subprocesses (``tests/distributed_worker.py``) with bounded timeouts;
the multi-worker cluster is two such processes on 127.0.0.1, on ports chosen
at run time, both killed in ``finally``. Weights are compared in float64
against single-device ``train_sgd`` on the same global batches and seed.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = WORKER.parent.parent
TOLERANCE = 1e-6
MIRRORED_TIMEOUT = 300
MULTIWORKER_TIMEOUT = 150


def _environment(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(count):
    """``count`` ports the OS reports free on 127.0.0.1 (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """Results of ``distributed_worker.py mirrored`` (2 logical CPUs, real MNIST)."""
    out = tmp_path_factory.mktemp("mirrored") / "results.json"
    process = subprocess.run(
        [sys.executable, str(WORKER), "mirrored", str(out)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=MIRRORED_TIMEOUT,
    )
    assert process.returncode == 0, _tail(process.stderr)
    return json.loads(out.read_text())


def test_mirrored_two_epochs_equal_single_device(mirrored):
    result = mirrored["notebook"]
    assert mirrored["replicas"] == 2
    assert result["max_weight_diff"] <= TOLERANCE
    assert result["max_loss_diff"] <= TOLERANCE
    assert result["accuracy"] == pytest.approx(result["expected_accuracy"], abs=1e-4)
    # Both replicas' copies of the mirrored kernel stayed bit-identical.
    assert result["replica_copies"] == 2 and result["replica_copies_identical"]
    # The notebook's epoch-1 loss 1.442 on the full 60,000 samples.
    assert result["loss"][0] == pytest.approx(1.442, abs=1e-3)


@pytest.mark.parametrize("case", ["empty_shard", "uneven_keras", "function_loss"])
def test_mirrored_uneven_batches_and_losses_equal_single_device(mirrored, case):
    result = mirrored[case]
    assert result["max_weight_diff"] <= TOLERANCE
    assert result["max_loss_diff"] <= TOLERANCE
    assert result["accuracy"] == pytest.approx(result["expected_accuracy"], abs=1e-4)
    assert result["replica_copies_identical"]
    if "max_val_loss_diff" in result:
        assert result["max_val_loss_diff"] <= TOLERANCE
        assert result["val_accuracy"] == pytest.approx(result["expected_val_accuracy"])


def test_mirrored_training_from_a_dataset_equals_single_device(mirrored):
    result = mirrored["dataset"]
    assert result["moved"] > 1e-3  # it trained
    assert result["max_weight_diff"] <= TOLERANCE
    assert result["max_loss_diff"] <= TOLERANCE
    assert result["accuracy"] == result["expected_accuracy"]


def test_model_outside_strategy_scope_is_refused(mirrored):
    assert "create the model inside strategy.scope()" in mirrored["outside_scope_error"]


def _run_cluster(tmp_path, command=None, workers=2, timeout=MULTIWORKER_TIMEOUT):
    """Run ``workers`` processes of one MultiWorkerMirroredStrategy cluster on loopback.

    ``command(index)`` is worker ``index``'s argv (default: distributed_worker.py
    writing ``worker{index}.json``). Returns the JSON results (default command)
    or the logs.
    """
    if command is None:

        def command(index):
            return [
                sys.executable,
                str(WORKER),
                "multiworker",
                str(tmp_path / f"worker{index}.json"),
            ]

    ports = _free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    try:
        for index in range(workers):
            log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115 - closed below
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            processes.append(
                subprocess.Popen(
                    command(index),
                    env=_environment(TF_CONFIG=json.dumps(config)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            if all(code == 0 for code in codes):
                break
            if any(code not in (None, 0) for code in codes):
                break  # one failed: the others would wait for it forever
            time.sleep(0.2)
        codes = [p.poll() for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
    logs = {i: _tail((tmp_path / f"worker{i}.log").read_text()) for i in range(workers)}
    assert all(code is not None for code in codes), f"cluster timed out after {timeout}s: {logs}"
    assert codes == [0] * workers, f"exit codes {codes}: {logs}"
    outs = [tmp_path / f"worker{index}.json" for index in range(workers)]
    if all(out.exists() for out in outs):
        return [json.loads(out.read_text()) for out in outs]
    return [(tmp_path / f"worker{index}.log").read_text() for index in range(workers)]


def test_multiworker_two_processes_on_loopback_equal_single_process(tmp_path):
    chief, other = _run_cluster(tmp_path)
    assert chief["replicas"] == other["replicas"] == 2
    chief_weights, other_weights = np.array(chief["weights"]), np.array(other["weights"])
    expected = np.array(chief["expected_weights"])
    # Both workers end with the same weights (the all-reduce gives both the same sum) ...
    assert np.max(np.abs(chief_weights - other_weights)) == 0.0
    # ... equal to one process training on the same global batches.
    assert np.max(np.abs(chief_weights - expected)) <= TOLERANCE
    assert chief["loss"] == pytest.approx(chief["expected_loss"], abs=TOLERANCE)
    assert other["loss"] == chief["loss"]


def test_custom_ops_run_on_gpu():
    tf = pytest.importorskip("tensorflow")
    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is [])")
    from tfsoftmax.devices import check_ops_on_devices

    for dtype in ("float32", "float64"):
        results = check_ops_on_devices(device_types=("GPU",), dtype=dtype)
        assert results, "TensorFlow lists a GPU but no logical GPU device"
        failed = [r for r in results if not r[2]]
        assert not failed, failed


def test_custom_ops_check_on_cpu():
    """The check ``tfsoftmax info`` runs: every op, forward and backward, on the CPU."""
    from tfsoftmax.devices import check_ops_on_devices

    results = check_ops_on_devices(device_types=("CPU",), dtype="float64")
    assert {name for _, name, _, _ in results} == {
        "bias_trick_dense",
        "jacobian_softmax[jacobian]",
        "jacobian_softmax[vjp]",
        "categorical_crossentropy",
    }
    assert all(ok for _, _, ok, _ in results), results


def test_strategy_must_be_a_strategy():
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    model, loss = notebook_model("custom", np.zeros((10, 785)), dtype="float64")
    with pytest.raises(ValueError, match="tf.distribute.Strategy"):
        train_sgd(model, np.zeros((4, 784)), np.eye(10)[:4], loss=loss, strategy="mirrored")


def _cli(*args, timeout=MIRRORED_TIMEOUT):
    process = subprocess.run(
        [sys.executable, "-m", "tfsoftmax", *args],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, _tail(process.stderr)
    return process.stdout


def test_cli_info_lists_devices_and_runs_the_ops_on_each():
    out = _cli("info", "--devices", "2")
    assert "TensorFlow " in out and "Keras " in out and "tfsoftmax " in out
    assert "/device:CPU:0" in out and "/device:CPU:1" in out
    assert "FAILED" not in out
    assert out.count(" ok ") == 8  # 4 ops on 2 logical devices


def test_cli_train_on_two_logical_cpus(tmp_path):
    out = _cli(
        "train", "--devices", "2", "--limit", "1000", "--epochs", "1", "--out", str(tmp_path)
    )
    assert "Test accuracy" in out
    params = json.loads((tmp_path / "history.json").read_text())["params"]
    assert params["strategy"] == "mirrored" and params["replicas"] == 2


def test_cli_train_multiworker_on_loopback(tmp_path):
    out = tmp_path / "out"

    argv = ["train", "--strategy", "multiworker", "--limit", "1000", "--epochs", "1"]

    def command(index):
        return [sys.executable, "-m", "tfsoftmax", *argv, "--out", str(out)]

    chief, other = _run_cluster(tmp_path, command)
    assert "Test accuracy" in chief and "Wrote" in chief
    assert "the chief (worker 0) writes the outputs" in other
    params = json.loads((out / "history.json").read_text())["params"]
    assert params["strategy"] == "multiworker" and params["replicas"] == 2


def test_only_the_chief_checkpoints_into_the_shared_folder(tmp_path):
    # Real cluster resolvers (the strategy itself needs live workers): worker 0 is
    # the chief of a chief-less cluster, a "chief" task is the chief, others are not.
    from tfsoftmax._tf import tf
    from tfsoftmax.distribute import is_chief, worker_checkpoint_dir

    def strategy_of(cluster, task_type, task_id):
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
        )
        return type("Strategy", (), {"cluster_resolver": resolver})()

    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    shared = str(tmp_path / "ckpt")
    assert worker_checkpoint_dir(strategy_of(workers, "worker", 0), shared) == shared
    assert worker_checkpoint_dir(strategy_of(workers, "worker", 1), shared) == str(
        tmp_path / "ckpt" / "worker-1"
    )
    with_chief = {"chief": ["127.0.0.1:3"], **workers}
    assert is_chief(strategy_of(with_chief, "chief", 0))
    assert not is_chief(strategy_of(with_chief, "worker", 0))
    assert is_chief(None) and is_chief(tf.distribute.get_strategy())
