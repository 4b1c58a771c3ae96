"""Determinism: the same seed gives bit-identical weights and history in separate processes.

Two processes train the notebook's model on the full MNIST training set (the
notebook's batch size 200 and learning rate 0.01, two epochs, validation on
1000 test images) with the same seed, in float32 and in float64; the final
variables are compared byte for byte and the histories float for float. No
``tf.config.experimental.enable_op_determinism()`` is involved (see the
"Determinism" paragraph of :func:`tfsoftmax.training.train_sgd`). The four
processes run two at a time, so the pairs also differ in what else the
machine was doing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("checkpoint_worker.py")
ROOT = WORKER.parent.parent
NOTEBOOK_RUN = ("--samples", 60000, "--batch-size", 200, "--learning-rate", 0.01, "--epochs", 2)


def _start(out, dtype):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(WORKER), "--out", str(out), "--dtype", dtype, "--seed", "0"]
    command += [str(arg) for arg in NOTEBOOK_RUN]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _result(process, out):
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    with np.load(out) as result:
        variables = [result[f"v{i}"] for i in range(len(result.files) - 1)]
        return variables, json.loads(str(result["history"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{dtype: [(variables, record), (variables, record)]}`` from four processes."""
    folder = tmp_path_factory.mktemp("determinism")
    results = {}
    for dtype in ("float32", "float64"):
        outs = [folder / f"{dtype}-{i}.npz" for i in range(2)]
        processes = [_start(out, dtype) for out in outs]
        results[dtype] = [_result(p, out) for p, out in zip(processes, outs, strict=True)]
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_bit_identical_runs_in_separate_processes(runs, dtype):
    (weights_a, record_a), (weights_b, record_b) = runs[dtype]
    assert record_a["params"]["dtype"] == dtype and len(record_a["history"]["loss"]) == 2
    assert record_a == record_b  # every loss, accuracy, val_loss, val_accuracy: same float
    assert [w.dtype for w in weights_a] == [np.dtype(dtype)]
    assert [w.tobytes() for w in weights_a] == [w.tobytes() for w in weights_b]
    # It trained: the notebook's first epoch ends near 1.44 (float32 and float64 alike).
    assert 1.3 < record_a["history"]["loss"][0] < 1.6
