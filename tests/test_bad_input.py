"""Bad input: a clear error naming the argument, and nothing half-done.

Every case checks the message *and* that nothing changed: the model's weights,
an existing checkpoint folder (byte for byte) and the output folder. The
command line is run for real (``python -m tfsoftmax train ...``): a bad argument
is one line on stderr and exit code 2, never a traceback. (The ops' and layers'
own checks — rank, width, dtype, method — are tested in ``tests/test_ops.py``
and ``tests/test_layers.py``; the reference's in ``tests/test_reference.py``.)
"""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from problems import linear_problem

from tfsoftmax import cli, ops, reference
from tfsoftmax._tf import tf
from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.training import train_sgd

ROOT = Path(__file__).resolve().parent.parent


X, LABELS, Y, INITIAL = linear_problem()
GOOD = dict(epochs=2, batch_size=10, learning_rate=0.5, seed=7, verbose=0)


def _with(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


def snapshot(folder):
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A folder holding the checkpoints of a good 2-epoch run with :data:`GOOD`."""
    folder = tmp_path_factory.mktemp("bad-input") / "checkpoints"
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(model, X, Y, loss=loss, checkpoint_dir=folder, **GOOD)
    return folder


BAD_CALLS = [
    # features
    ({"x": _with(X, (0, 0), np.nan)}, r"^x contains 1 NaN or infinite value"),
    ({"x": _with(X, (5, 2), -np.inf)}, r"^x contains 1 NaN or infinite value"),
    ({"x": (X * 255).astype(np.uint8)}, r"^x has integer dtype uint8.*datasets\.preprocess"),
    ({"x": X[:0], "y": Y[:0]}, r"^x is empty \(shape \(0, 6\)\)"),
    ({"x": X[:, :0]}, r"^x is empty"),
    ({"x": X[0]}, r"^x must be 2-D \(samples, features\)"),
    ({"x": X.astype(str)}, r"^x must be a floating-point array"),
    # labels
    ({"y": np.where(LABELS == 3, 4, LABELS)}, r"^y has labels outside \[0, 4\): min 0, max 4"),
    ({"y": _with(LABELS, 0, -1).astype(int)}, r"^y has labels outside \[0, 4\): min -1"),
    ({"y": Y * 0.5}, r"^y is not one-hot"),
    ({"y": Y[:, :3]}, r"^y has 3 classes but the model outputs 4"),
    ({"y": np.eye(5)[LABELS]}, r"^y has 5 classes but the model outputs 4"),
    ({"y": LABELS[:-1]}, r"^y has 102 labels but x has 103 samples"),
    ({"y": Y[:-1]}, r"^y has 102 rows but x has 103 samples"),
    ({"y": LABELS.astype(float)}, r"^y must be one-hot .* or integer labels"),
    # settings
    ({"batch_size": 0}, r"^batch_size must be a positive integer \(≥ 1\), got 0"),
    ({"batch_size": -5}, r"^batch_size must be a positive integer"),
    ({"batch_size": 2.5}, r"^batch_size must be a positive integer, got 2.5"),
    ({"batch_size": True}, r"^batch_size must be a positive integer, got True"),
    ({"epochs": 0}, r"^epochs must be a positive integer \(≥ 1\), got 0"),
    ({"epochs": -1}, r"^epochs must be a positive integer"),
    ({"learning_rate": 0.0}, r"^learning_rate must be a positive finite number, got 0.0"),
    ({"learning_rate": -0.1}, r"^learning_rate must be a positive finite number"),
    ({"learning_rate": float("nan")}, r"^learning_rate must be a positive finite number, got nan"),
    ({"learning_rate": float("inf")}, r"^learning_rate must be a positive finite number, got inf"),
    ({"learning_rate": "0.1"}, r"^learning_rate must be a positive finite number, got '0.1'"),
    ({"seed": -1}, r"^seed must be a non-negative integer or None, got -1"),
    ({"seed": 1.5}, r"^seed must be a non-negative integer or None"),
    ({"keep_checkpoints": 0}, r"^keep_checkpoints must be a positive integer"),
    ({"verbose": 3}, r"^verbose must be 0, 1 or 2, got 3"),
    ({"loss": 42}, r"^loss must be a callable"),
    ({"loss": "no-such-loss"}, r"no-such-loss"),
    # validation data
    ({"validation_data": (X,)}, r"^validation_data must be a pair"),
    ({"validation_data": (_with(X, (1, 1), np.nan), Y)}, r"^validation_data\[0\] contains 1 NaN"),
    ({"validation_data": (X[:, :5], Y)}, r"^validation_data\[0\] has 5 features but x has 6"),
    ({"validation_data": (X, LABELS + 1)}, r"^validation_data\[1\] has labels outside"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    BAD_CALLS,
    ids=[f"{i:02d}-{'+'.join(change)}" for i, (change, _) in enumerate(BAD_CALLS)],
)
def test_train_sgd_rejects_bad_input_before_touching_anything(
    tmp_path, checkpoints, change, message
):
    before = snapshot(checkpoints)
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    arguments = {"x": X, "y": Y, "loss": loss, **GOOD, "checkpoint_dir": checkpoints, **change}
    with pytest.raises(ValueError, match=message):
        train_sgd(model, **arguments)
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
    assert snapshot(checkpoints) == before
    assert os.listdir(tmp_path) == []


def test_train_sgd_rejects_a_model_that_is_not_a_keras_model():
    with pytest.raises(ValueError, match="^model must be a keras.Model, got Dense"):
        train_sgd(reference.Dense(6, 4, rng=0), X, Y, **GOOD)


def test_checkpoint_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("mine")
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.raises(ValueError, match="^checkpoint_dir .* exists and is not a directory"):
        train_sgd(model, X, Y, loss=loss, checkpoint_dir=path, **GOOD)
    assert path.read_text() == "mine"
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)


def test_features_that_overflow_the_models_dtype_are_refused():
    model, loss = notebook_model("custom", INITIAL, dtype="float16")
    before = get_notebook_weights(model)
    with pytest.raises(
        ValueError, match=r"^x holds values up to 100000, beyond the largest float16 \(65504\)"
    ):
        train_sgd(model, _with(X, (0, 0), 1e5), Y, loss=loss, **GOOD)
    np.testing.assert_array_equal(get_notebook_weights(model), before)


def test_layers_and_loss_reject_a_non_floating_dtype_when_constructed():
    with pytest.raises(ValueError, match="^BiasTrickDense: `dtype` must be floating.*int32"):
        BiasTrickDense(3, dtype="int32")
    with pytest.raises(ValueError, match="^JacobianSoftmax: `dtype` must be floating.*uint8"):
        JacobianSoftmax(dtype="uint8")
    with pytest.raises(ValueError, match="^CategoricalCrossentropy: `dtype` must be float.*int32"):
        CategoricalCrossentropy(dtype="int32")
    assert BiasTrickDense(3, dtype="mixed_bfloat16").compute_dtype == "bfloat16"


# --------------------------------------------------------------------------- 0-255 images
def test_uint8_images_are_never_trained_on_silently():
    pixels = (X * 255).astype(np.uint8)
    model, loss = notebook_model("custom", INITIAL, dtype="float32")
    with pytest.raises(ValueError, match="integer dtype uint8.*preprocess"):
        train_sgd(model, pixels, Y, loss=loss, **GOOD)
    with pytest.raises(ValueError, match="X has integer dtype uint8.*preprocess"):
        reference.train(pixels.T, Y.T, epochs=1)
    with pytest.raises(ValueError, match="X has integer dtype uint8"):
        reference.predict(reference.Dense(6, 4, rng=0), pixels.T)
    with pytest.raises(TypeError, match="uint8"):
        BiasTrickDense(4)(pixels)
    with pytest.raises(TypeError, match="uint8"):
        ops.bias_trick_dense(pixels, tf.zeros((4, 7), tf.uint8))


def test_unscaled_float_pixels_warn(recwarn):
    pixels = np.round(X * 255)
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.warns(UserWarning, match=r"x looks like unscaled 0-255 pixel values"):
        train_sgd(model, pixels, Y, loss=loss, **{**GOOD, "epochs": 1, "learning_rate": 1e-4})
    train_sgd(model, X, Y, loss=loss, **{**GOOD, "epochs": 1})  # scaled: no warning
    assert not [w for w in recwarn if "unscaled" in str(w.message)]


# --------------------------------------------------------------------------- the command line
ARGPARSE_ERRORS = [
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["--epochs", "two"], "argument --epochs: expected a positive integer, got 'two'"),
    (["--batch-size", "-5"], "argument --batch-size: expected a positive integer, got -5"),
    (["--learning-rate", "nan"], "argument --learning-rate: expected a positive finite number"),
    (["--learning-rate", "inf"], "argument --learning-rate: expected a positive finite number"),
    (["--learning-rate", "0"], "argument --learning-rate: expected a positive finite number"),
    (["--learning-rate=-1e-3"], "argument --learning-rate: expected a positive finite"),
    (["--seed", "x"], "argument --seed: expected an integer >= 0, got 'x'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    (["--softmax-method", "fast"], "argument --softmax-method: invalid choice: 'fast'"),
    (["--impl", "torch"], "argument --impl: invalid choice: 'torch'"),
    (["--limit", "0"], "argument --limit: expected a positive integer, got 0"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
]


@pytest.mark.parametrize(
    ("args", "message"), ARGPARSE_ERRORS, ids=[" ".join(args) for args, _ in ARGPARSE_ERRORS]
)
def test_cli_argument_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--out", str(out), *args])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    # Unknown options are reported by the top-level parser, the rest by "train".
    assert re.match(r"tfsoftmax( train)?: error: " + re.escape(message), captured.err)
    assert re.search(r" \(see tfsoftmax( train)? --help\)\n$", captured.err)
    assert captured.err.count("\n") == 1
    assert not out.exists()


def _cli(cwd, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tfsoftmax", "train", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_cli_errors_in_real_processes_are_one_line_with_nothing_written(tmp_path):
    quick = ("--limit", 300, "--verbose", 0)
    previous = tmp_path / "previous"  # a 1-epoch run to resume from
    args = ["--epochs", 1, "--checkpoint-dir", previous / "ck", "--out", previous / "out"]
    assert cli.main(["train", *map(str, args), *map(str, quick)]) == 0
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    cases = {
        "epochs": (["--epochs", "0"], 2, "argument --epochs: expected a positive integer"),
        "learning rate": (["--learning-rate", "nan"], 2, "argument --learning-rate"),
        "numpy checkpoints": (
            ["--impl", "numpy", "--checkpoint-dir", tmp_path / "ck-numpy"],
            2,
            "--checkpoint-dir needs --impl custom or keras",
        ),
        "checkpoint dir is a file": (
            ["--checkpoint-dir", a_file, "--epochs", 1, *quick],
            2,
            "checkpoint_dir '.*a-file' exists and is not a directory",
        ),
        "different run": (
            ["--checkpoint-dir", previous / "ck", "--epochs", 2, "--batch-size", 100, *quick],
            2,
            "holds a different run .* batch_size is 200 there but 100 now",
        ),
        "diverged": (
            ["--checkpoint-dir", tmp_path / "ck-diverged", "--learning-rate", 1e38, *quick],
            1,
            r"TrainingDivergedError: .*the loss became (nan|inf) at epoch 1, batch \d+",
        ),
    }
    before = snapshot(previous)
    with ThreadPoolExecutor(2) as pool:
        futures = {
            name: pool.submit(_cli, tmp_path, *args, "--out", tmp_path / f"out-{i}")
            for i, (name, (args, _, _)) in enumerate(cases.items())
        }
        results = {name: future.result() for name, future in futures.items()}
    for i, (name, (_, code, message)) in enumerate(cases.items()):
        done = results[name]
        lines = done.stderr.splitlines()
        assert done.returncode == code, (name, done.stderr[-2000:])
        assert len(lines) == 1 and "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert lines[0].startswith("tfsoftmax train: "), name
        assert re.search(message, lines[0]), (name, lines[0])
        assert not (tmp_path / f"out-{i}").exists(), name
    assert snapshot(previous) == before
    assert a_file.read_text() == "mine"
    assert not (tmp_path / "ck-numpy").exists() and not (tmp_path / "ck-diverged").exists()
    assert not (tmp_path / "out").exists()  # the default --out was never used


def test_min_log_level_is_applied_to_what_tensorflow_prints_on_import(capfd, monkeypatch):
    from tfsoftmax import _tf

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with _tf._honour_min_log_level():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are ...\n")
        os.write(2, b"I0000 00:00:1795566631.711588   24288 port.cc:153] oneDNN notice\n")
        os.write(2, b"  its continuation line\n")
        os.write(2, b"W0000 00:00:1795566631.711588   24288 x.cc:1] a warning\n")
        os.write(2, b"E0000 00:00:1795566631.711588   24288 x.cc:2] an error\n")
        os.write(2, b"a plain line\n")
    assert capfd.readouterr().err == (
        "E0000 00:00:1795566631.711588   24288 x.cc:2] an error\na plain line\n"
    )


def test_cli_output_and_divergence_failures_are_one_line_exit_1(tmp_path):
    """Unwritable outputs are found before any work (a path under a regular file:
    the tests run as root, for whom permission bits stop nothing); the NumPy
    reference's divergence is exit 1, like train_sgd's."""
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    quick = ("--limit", 300, "--epochs", 1, "--verbose", 0)
    cases = {
        "out under a file": (["--out", a_file / "out"], "OutputError: cannot write --out"),
        "checkpoint dir under a file": (
            ["--checkpoint-dir", a_file / "ck", "--out", tmp_path / "out-1"],
            "OutputError: cannot write --checkpoint-dir .*is not a directory",
        ),
        "numpy diverged": (
            ["--impl", "numpy", "--learning-rate", 1e38, "--out", tmp_path / "out-2", *quick],
            r"TrainingDivergedError: .* became NaN or inf at epoch 1, batch \d+",
        ),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_cli, tmp_path, *args) for name, (args, _) in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name, (_, message) in cases.items():
        done = results[name]
        lines = done.stderr.splitlines()
        assert done.returncode == 1, (name, done.stderr[-2000:])
        assert len(lines) == 1 and "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert re.search(message, lines[0]), (name, lines[0])
    assert sorted(os.listdir(tmp_path)) == ["a-file"] and a_file.read_text() == "mine"


# --------------------------------------------------------------------------- compare()
def _tiny_preprocessed(test_labels):
    from tfsoftmax.preprocessing import preprocess

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 20)
    return preprocess(images, labels, images[:5], np.asarray(test_labels), layout="batch-major")


@pytest.mark.parametrize(
    ("kwargs", "labels", "message"),
    [
        ({"seed": -1}, [0, 1, 2, 3, 4], "seed must be a non-negative integer"),
        ({"seed": 1.5}, [0, 1, 2, 3, 4], "seed must be a non-negative integer"),
        ({}, [0, 1, 2, 3, 10], r"data.labels_test.*\[0, 10\)"),
    ],
)
def test_compare_refuses_a_bad_seed_or_out_of_range_test_labels_before_training(
    kwargs, labels, message
):
    from tfsoftmax.compare import compare

    data = _tiny_preprocessed([0, 1, 2, 3, 4])
    data = type(data)(**{**data.__dict__, "labels_test": np.asarray(labels)})
    with pytest.raises(ValueError, match=message):
        compare(data, epochs=1, batch_size=5, **kwargs)
