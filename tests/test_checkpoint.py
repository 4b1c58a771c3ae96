"""Checkpoint and resume: a killed run, run again, ends exactly where an uninterrupted one does.

The kill tests run ``tests/checkpoint_worker.py`` in real subprocesses that die
by SIGKILL (mid-epoch, or in the middle of writing a checkpoint), then run it
again on the same folder, and compare the final variables and history *bit for
bit* with an uninterrupted run — float64, real MNIST (a 3050-sample subset with
a partial last batch, validation on 1000 test images).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from problems import linear_problem

from tfsoftmax._tf import keras, tf
from tfsoftmax.checkpointing import CheckpointMismatchError
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.training import TrainingDivergedError, train_sgd

WORKER = Path(__file__).with_name("checkpoint_worker.py")
ROOT = WORKER.parent.parent


# --------------------------------------------------------------------------- helpers
def run_worker(out, *args, killed=False):
    """Run the worker; return its result ``(variables, record, stderr)``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(WORKER), "--out", str(out), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if killed:
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
        assert not Path(out).exists()
        return None
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as result:
        record = json.loads(str(result["history"]))
        variables = [result[f"v{i}"] for i in range(len(result.files) - 1)]
    return variables, record, done.stderr


def assert_bit_identical(result, expected):
    variables, record, _ = result
    expected_variables, expected_record, _ = expected
    assert record == expected_record  # floats compare exactly (JSON keeps every bit)
    assert len(variables) == len(expected_variables)
    for mine, theirs in zip(variables, expected_variables, strict=True):
        assert mine.dtype == theirs.dtype == np.float64
        assert mine.tobytes() == theirs.tobytes()


def numbers(directory):
    """The epoch numbers of the complete checkpoints (index file present) in ``directory``."""
    return sorted(
        int(name[len("ckpt-") : -len(".index")])
        for name in os.listdir(directory)
        if name.startswith("ckpt-") and name.endswith(".index")
    )


def recorded(directory):
    """The checkpoints the CheckpointManager has recorded, oldest first."""
    state = tf.train.get_checkpoint_state(str(directory))
    return [os.path.basename(p) for p in state.all_model_checkpoint_paths]


def snapshot(directory):
    """Every file under ``directory`` with its bytes (None if it does not exist)."""
    directory = Path(directory)
    if not directory.exists():
        return None
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The worker's 4 epochs in one go, without checkpoints."""
    return run_worker(tmp_path_factory.mktemp("uninterrupted") / "result.npz")


# --------------------------------------------------------------------------- SIGKILL
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, uninterrupted):
    folder = tmp_path / "checkpoints"
    # Killed in epoch 3 after its 12th of 31 batches: epochs 1 and 2 are saved.
    run_worker(tmp_path / "a.npz", "--checkpoint-dir", folder, "--kill-epoch", 3, killed=True)
    assert numbers(folder) == [1, 2]
    result = run_worker(tmp_path / "a.npz", "--checkpoint-dir", folder)
    assert_bit_identical(result, uninterrupted)
    assert numbers(folder) == [2, 3, 4]  # keep_checkpoints=3
    assert recorded(folder) == ["ckpt-2", "ckpt-3", "ckpt-4"]


@pytest.mark.parametrize(
    ("kill_point", "damage_newest"),
    [("before-merge", False), ("after-merge", True)],
    ids=["killed-before-rename", "killed-after-rename-newest-torn"],
)
def test_kill_while_writing_a_checkpoint(tmp_path, uninterrupted, kill_point, damage_newest):
    folder = tmp_path / "checkpoints"
    args = ("--checkpoint-dir", folder, "--kill-in-save", 3, "--kill-point", kill_point)
    run_worker(tmp_path / "b.npz", *args, killed=True)
    # The manager records a checkpoint only once it is complete: ckpt-3 is not.
    assert recorded(folder) == ["ckpt-1", "ckpt-2"]
    if kill_point == "before-merge":
        assert numbers(folder) == [1, 2]  # ckpt-3's files are still in ckpt-3_temp/
        assert (folder / "ckpt-3_temp").is_dir()
    else:
        assert numbers(folder) == [1, 2, 3]  # renamed into place, not yet recorded
    # The latest recorded checkpoint is readable...
    reader = tf.train.load_checkpoint(str(folder / "ckpt-2"))
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)
    if damage_newest:
        # ...unless a torn write damaged it (a crash of the machine, a full disk):
        # then the resume must fall back to the one before.
        data = folder / "ckpt-2.data-00000-of-00001"
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    result = run_worker(tmp_path / "b.npz", "--checkpoint-dir", folder)
    assert_bit_identical(result, uninterrupted)
    if damage_newest:
        assert "ckpt-2 is unreadable" in result[2]
        assert "falling back to" in result[2] and "ckpt-1" in result[2]
    assert recorded(folder) == ["ckpt-2", "ckpt-3", "ckpt-4"]


#: Random moments tried by the next test (more: TFSOFTMAX_RELIABILITY_TRIALS=20).
TRIALS = int(os.environ.get("TFSOFTMAX_RELIABILITY_TRIALS", "1"))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(tmp_path, uninterrupted, trial):
    folder, out = tmp_path / "checkpoints", tmp_path / "c.npz"
    delay = random.Random(os.getpid() * 1000 + trial).uniform(0.0, 1.5)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(WORKER), "--out", str(out), "--checkpoint-dir", str(folder)]
    killed = subprocess.Popen(
        [*command, "--announce"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=env,
    )  # fmt: skip
    assert killed.stdout.readline().strip() == "training"
    time.sleep(delay)  # somewhere in the 4 epochs, a save, or (rarely) after the end
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    result = run_worker(out, "--checkpoint-dir", folder)
    assert_bit_identical(result, uninterrupted)
    leftovers = [p.name for p in folder.iterdir() if "_temp" in p.name or ".tmp" in p.name]
    assert leftovers == [] and not (folder / ".tfsoftmax-lock").exists(), delay


# --------------------------------------------------------------------------- in process
X, _, Y, INITIAL = linear_problem()
SETTINGS = dict(batch_size=10, learning_rate=0.5, seed=7, verbose=0)


def _train(folder, epochs, *, kind="custom", dtype="float64", x=X, y=Y, **overrides):
    model, loss = notebook_model(kind, INITIAL, dtype=dtype)
    settings = {**SETTINGS, **overrides}
    history = train_sgd(model, x, y, epochs=epochs, loss=loss, checkpoint_dir=folder, **settings)
    return model, history


def _same_run(a, b):
    (model_a, history_a), (model_b, history_b) = a, b
    assert history_a.history == history_b.history and history_a.epoch == history_b.epoch
    for va, vb in zip(model_a.variables, model_b.variables, strict=True):
        assert va.numpy().tobytes() == vb.numpy().tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_resume_in_process_and_grow_epochs(tmp_path, dtype):
    folder = tmp_path / "ck"
    straight = _train(None, 5, dtype=dtype)
    _train(folder, 2, dtype=dtype)
    assert numbers(folder) == [1, 2]
    _same_run(_train(folder, 5, dtype=dtype), straight)  # continues with epochs 3 to 5
    assert numbers(folder) == [3, 4, 5]


def test_a_finished_run_returns_its_history_without_training(tmp_path):
    folder = tmp_path / "ck"
    first = _train(folder, 3)
    before = snapshot(folder)
    calls = []
    callback = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *a: calls.append(a))
    again = _train(folder, 3, callbacks=[callback])
    _same_run(again, first)
    assert calls == [] and snapshot(folder) == before


def test_fewer_epochs_than_done_is_refused(tmp_path):
    folder = tmp_path / "ck"
    _train(folder, 3)
    before = snapshot(folder)
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.raises(ValueError, match=r"epochs=2, but the run .* has already done 3"):
        train_sgd(model, X, Y, epochs=2, loss=loss, checkpoint_dir=folder, **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
    assert snapshot(folder) == before


def test_a_run_stopped_by_a_callback_stays_stopped(tmp_path):
    folder = tmp_path / "ck"

    def stop(epoch, logs):
        if epoch == 1:
            model.stop_training = True

    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    callback = keras.callbacks.LambdaCallback(on_epoch_end=stop)
    history = train_sgd(
        model, X, Y, epochs=5, loss=loss, checkpoint_dir=folder, callbacks=[callback], **SETTINGS
    )
    assert history.epoch == [0, 1]
    again = _train(folder, 5)
    assert again[1].epoch == [0, 1]
    assert numbers(folder) == [1, 2]


def _hidden_layer_model():
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="float64"),
            keras.layers.Dense(5, activation="relu", dtype="float64"),
            keras.layers.Dense(4, activation="softmax", dtype="float64"),
        ]
    )
    return model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 20}, "batch_size is 10 there but 20 now"),
        ({"learning_rate": 0.25}, "learning_rate is 0.5 there but 0.25 now"),
        ({"seed": 8}, "seed is 7 there but 8 now"),
        ({"x": X[::-1].copy()}, r"the training data \(x, y\) differ"),
        ({"kind": "keras"}, "the model's variables differ in shape or dtype"),
        ({"model": "hidden layer"}, "the model's variables differ in shape or dtype"),
        ({"method": "vjp"}, "the model differs .*method: 'jacobian' there, 'vjp' now"),
        ({"dtype": "float32"}, r"the model's variables differ .*float64.* there"),
    ],
)
def test_resuming_a_different_run_is_refused(tmp_path, change, message):
    folder = tmp_path / "ck"
    _train(folder, 2)
    before = snapshot(folder)
    change = dict(change)
    kind, x = change.pop("kind", "custom"), change.pop("x", X)
    dtype, method = change.pop("dtype", "float64"), change.pop("method", "jacobian")
    if change.pop("model", None):
        model, loss = _hidden_layer_model(), keras.losses.CategoricalCrossentropy()
    else:
        model, loss = notebook_model(kind, INITIAL, dtype=dtype, softmax_method=method)
    weights = [v.numpy().copy() for v in model.variables]
    settings = {**SETTINGS, **change}
    with pytest.raises(CheckpointMismatchError, match=message) as error:
        train_sgd(model, x, Y, epochs=4, loss=loss, checkpoint_dir=folder, **settings)
    assert isinstance(error.value, ValueError)
    assert "\n" not in str(error.value) and "another checkpoint_dir" in str(error.value)
    for variable, value in zip(model.variables, weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert snapshot(folder) == before


def test_unreadable_newest_checkpoint_falls_back_in_process(tmp_path):
    folder = tmp_path / "ck"
    straight = _train(None, 4)
    _train(folder, 3)
    index = folder / "ckpt-3.index"
    index.write_bytes(b"\0garbage" * 8)
    with pytest.warns(RuntimeWarning, match=r"ckpt-3 is unreadable .*falling back to .*ckpt-2"):
        resumed = _train(folder, 4)
    _same_run(resumed, straight)


def test_an_unreadable_state_file_falls_back_to_the_file_names(tmp_path):
    folder = tmp_path / "ck"
    straight = _train(None, 3)
    _train(folder, 2)
    (folder / "checkpoint").write_text("")  # e.g. emptied by a crash of the machine
    with pytest.warns(RuntimeWarning, match="state file is unreadable"):
        resumed = _train(folder, 3)
    _same_run(resumed, straight)
    assert recorded(folder) == ["ckpt-3"]
    assert (folder / "checkpoint.unreadable").read_text() == ""


def test_no_readable_checkpoint_is_an_error_that_changes_nothing(tmp_path):
    folder = tmp_path / "ck"
    _train(folder, 2)
    for number in (1, 2):
        (folder / f"ckpt-{number}.data-00000-of-00001").write_bytes(b"")
    before = snapshot(folder)
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="none is readable"):
        train_sgd(model, X, Y, epochs=3, loss=loss, checkpoint_dir=folder, **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
    assert snapshot(folder) == before


def test_divergence_writes_no_checkpoint_and_keeps_the_last_good_weights(tmp_path):
    folder = tmp_path / "ck"

    def blow_up(epoch, logs):
        if epoch == 0:  # epoch 1 is saved with these weights; epoch 2's logits overflow
            kernel = model.layers[0].kernel
            kernel.assign(tf.fill(kernel.shape, tf.constant(1e308, kernel.dtype)))

    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    callback = keras.callbacks.LambdaCallback(on_epoch_end=blow_up)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, batch 1\b"):
        train_sgd(
            model,
            X,
            Y,
            epochs=3,
            loss=loss,
            checkpoint_dir=folder,
            callbacks=[callback],
            **SETTINGS,
        )
    assert numbers(folder) == [1] and recorded(folder) == ["ckpt-1"]
    saved = tf.train.load_checkpoint(str(folder / "ckpt-1"))
    good = saved.get_tensor("model_variables/0/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_array_equal(get_notebook_weights(model), good)


def test_divergence_in_the_first_epoch_creates_no_checkpoint_folder(tmp_path):
    folder = tmp_path / "ck"
    x = 1e3 * X
    model, loss = notebook_model("custom", INITIAL, dtype="float32")
    settings = {**SETTINGS, "learning_rate": 1e38}
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch \d+"):
        train_sgd(model, x, Y, epochs=2, loss=loss, checkpoint_dir=folder, **settings)
    assert not folder.exists()
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL.astype("float32"))


def test_keep_checkpoints(tmp_path):
    folder = tmp_path / "ck"
    _train(folder, 4, keep_checkpoints=1)
    assert numbers(folder) == [4] and recorded(folder) == ["ckpt-4"]
