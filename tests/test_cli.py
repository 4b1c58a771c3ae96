"""The ``tfsoftmax`` command, run for real in subprocesses."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import tfsoftmax


def run_cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "tfsoftmax", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tfsoftmax {tfsoftmax.__version__}"


@pytest.mark.parametrize("command", ["train", "compare"])
def test_help_lists_the_options(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    for option in ("--epochs", "--batch-size", "--learning-rate", "--seed", "--dtype", "--out"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
        (["train", "--learning-rate", "nan"], "--learning-rate: expected a positive finite"),
        (["train", "--impl", "torch"], "--impl: invalid choice: 'torch'"),
        (["compare", "--dtype", "float16"], "--dtype: invalid choice: 'float16'"),
        (["compare", "--batch-size", "ten"], "--batch-size: expected a positive integer"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "--uint8", "--impl", "numpy"], "--uint8 needs --impl custom or keras"),
    ],
)
def test_bad_arguments_exit_2_with_a_message_and_no_traceback(args, message, tmp_path):
    result = (
        run_cli(*args, "--out", str(tmp_path / "out"))
        if args[0] != "frobnicate"
        else (run_cli(*args))
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.mnist
@pytest.mark.parametrize("impl", ["numpy", "custom"])
def test_train_writes_history_model_and_figures(impl, tmp_path, mnist):
    out = tmp_path / impl
    result = run_cli("train", "--impl", impl, "--epochs", "2", "--limit", "3000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    history = json.loads((out / "history.json").read_text())
    losses = history["history"]["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert len((out / "history.csv").read_text().splitlines()) == 3
    accuracy = float(result.stdout.split("Test accuracy: ")[1].split()[0])
    assert 0.5 < accuracy < 0.95  # 3000 samples, 2 epochs: well above chance (0.1)
    for name in ("loss_curve", "misclassified", "weight_templates", "confusion_matrix"):
        width, height = png_size(out / f"{name}.png")
        assert 200 <= width <= 4000 and 150 <= height <= 4000

    # The saved model loads without custom_objects and reproduces the printed accuracy.
    from tfsoftmax._tf import keras
    from tfsoftmax.datasets import preprocess

    model = keras.models.load_model(out / "model.keras")
    data = preprocess(*mnist[0], *mnist[1])
    predictions = np.argmax(model.predict(data.x_test, verbose=0), axis=1)
    assert np.mean(predictions == data.labels_test) == pytest.approx(accuracy, abs=1e-4)
    weights = np.load(out / "weights.npy")
    assert weights.shape == (10, 785)


@pytest.mark.mnist
def test_compare_prints_the_table_and_writes_json_and_figures(tmp_path):
    result = run_cli(
        "compare",
        "--epochs",
        "2",
        "--limit",
        "3000",
        "--out",
        str(tmp_path),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    assert "loss curves agree within 1e-09 (float64)" in result.stdout
    # It talks while it works: each implementation's epochs, as they finish, before the table.
    lines = result.stdout.splitlines()
    table = lines.index(next(line for line in lines if line.startswith("epoch ")))
    for label in ("numpy reference", "custom ops", "keras built-ins"):
        progress = [i for i, line in enumerate(lines) if line.strip().startswith(label + " ")]
        assert [lines[i].split()[label.count(" ") + 2] for i in progress] == ["1/2", "2/2"]
        assert all(i < table for i in progress)
    json_data = json.loads((tmp_path / "r.json").read_text())
    assert set(json_data["versions"]) == {"tfsoftmax", "tensorflow", "keras", "numpy", "python"}
    assert json_data["timestamp"].endswith("+00:00")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["settings"]["train_samples"] == 3000
    assert all(len(entry["loss"]) == 2 for entry in data["implementations"].values())
    for name in (
        "loss_curves",
        "loss_curve",
        "misclassified",
        "weight_templates",
        "confusion_matrix",
    ):
        png_size(tmp_path / f"{name}.png")


@pytest.mark.parametrize(("command", "dtype"), [("train", "float32"), ("compare", "float64")])
def test_help_shows_the_defaults(command, dtype):
    text = " ".join(run_cli(command, "--help").stdout.split())
    for option, default in (
        ("--epochs EPOCHS", "20"),
        ("--batch-size BATCH_SIZE", "200"),
        ("--learning-rate LEARNING_RATE", "0.01"),
        ("--seed SEED", "0"),
        ("--dtype {float32,float64}", dtype),
        ("--out OUT", f"out/{command}"),
    ):
        help_text = text.split(f" {option} ", 1)[1]
        assert f"(default: {default})" in help_text.split(" --", 1)[0], option


def test_seed_below_zero_is_refused_naming_the_option(tmp_path):
    result = run_cli("compare", "--seed", "-1", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "argument --seed: expected an integer >= 0, got -1" in result.stderr
    assert not (tmp_path / "out").exists()


def test_without_tensorflow_one_line_names_the_extra_and_exit_1():
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as on a machine without TensorFlow\n"
        "from tfsoftmax.cli import main\n"
        "raise SystemExit(main(['info']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("tfsoftmax info: error: TensorFlow is not installed")
    assert "pip install -e '.[cpu]'" in line and "pip install 'tfsoftmax[cpu]'" in line


def _entry_point_program(argv):
    """A program calling the console script's function, with an atexit handler that
    would print if the interpreter's normal shutdown ran."""
    return (
        "import atexit, sys\n"
        "atexit.register(lambda: print('normal shutdown ran'))\n"
        "from tfsoftmax.cli import entry_point\n"
        f"sys.exit(entry_point({argv!r}))\n"
    )


def test_the_program_skips_the_shutdown_once_tensorflow_is_loaded_and_keeps_its_output():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    program = _entry_point_program(["info"])
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "TensorFlow" in done.stdout  # the command's output, flushed before os._exit
    assert "normal shutdown ran" not in done.stdout


def test_the_program_keeps_the_exit_code_and_a_normal_shutdown_before_tensorflow():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # An argument error: TensorFlow never loads, so the interpreter shuts down as usual.
    program = _entry_point_program(["train", "--epochs", "0"])
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 2
    assert "--epochs" in done.stderr
    assert "normal shutdown ran" in done.stdout
