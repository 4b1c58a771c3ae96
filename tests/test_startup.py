"""The command line starts instantly; ``import tfsoftmax`` still registers the Keras classes.

``tfsoftmax/__init__.py`` imports the layers and the loss (and so TensorFlow)
eagerly, so that ``keras.models.load_model`` finds them after a plain
``import tfsoftmax`` — except when the process is the ``tfsoftmax`` command
itself, where each subcommand imports what it needs. Both sides are checked
here, in fresh processes, the command through its real entry points (the
console script and ``python -m tfsoftmax``). Which modules a process imported
is read from ``PYTHONPROFILEIMPORTTIME``'s report on stderr, so nothing in the
process under test is changed.
"""

import os
import pathlib
import subprocess
import sys

import pytest

CONSOLE_SCRIPT = pathlib.Path(sys.executable).with_name("tfsoftmax")
ENTRY_POINTS = {
    "console script": [str(CONSOLE_SCRIPT)],
    "python -m tfsoftmax": [sys.executable, "-m", "tfsoftmax"],
}


def imported_modules(command):
    """``(result, names of every module the process imported)``."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "tfsoftmax" in names, result.stderr[-2000:]  # the report is there
    return result, names


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("args", "returncode"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["train", "--help"], 0),
        (["compare", "--help"], 0),
        (["train", "--seed", "-1"], 2),
        (["compare", "--epochs", "0"], 2),
        (["train", "--preset", "best", "--impl", "numpy"], 2),  # found after parsing
    ],
)
def test_the_command_line_parses_without_importing_tensorflow(entry, args, returncode):
    if entry == "console script" and not CONSOLE_SCRIPT.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    result, modules = imported_modules([*ENTRY_POINTS[entry], *args])
    assert result.returncode == returncode, result.stderr[-2000:]
    assert "tensorflow" not in modules
    assert "keras" not in modules
    assert "tfsoftmax.cli.command" in modules


def test_seed_error_names_the_option():
    result = subprocess.run(
        [sys.executable, "-m", "tfsoftmax", "train", "--seed", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("tfsoftmax train: error: argument --seed: ")
    assert "-1" in result.stderr and len(result.stderr.splitlines()) == 1


REGISTERED = (
    "import sys, keras\n"
    "names = ['tfsoftmax>BiasTrickDense', 'tfsoftmax>JacobianSoftmax',"
    " 'tfsoftmax>CategoricalCrossentropy']\n"
    "print('registered' if all(keras.saving.get_registered_object(n) for n in names)"
    " else 'missing')\n"
)


def test_a_plain_import_tfsoftmax_registers_the_keras_classes():
    code = "import tfsoftmax\n" + REGISTERED
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "registered", result.stderr[-2000:]


def test_a_package_run_with_dash_m_that_imports_tfsoftmax_registers(tmp_path):
    # While runpy imports the package of ``python -m usertool``, sys.argv[0] is "-m",
    # as it is for ``python -m tfsoftmax``: only the module name tells them apart.
    package = tmp_path / "usertool"
    package.mkdir()
    (package / "__init__.py").write_text("import tfsoftmax\n")
    (package / "__main__.py").write_text(REGISTERED)
    result = subprocess.run(
        [sys.executable, "-m", "usertool"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "registered", result.stderr[-2000:]


def test_the_command_line_is_detected_by_its_script_or_module_name():
    from tfsoftmax import _is_the_command_line

    assert _is_the_command_line(["/usr/local/bin/tfsoftmax", "train"], [])
    assert _is_the_command_line(["C:\\venv\\Scripts\\tfsoftmax.exe"], [])
    assert _is_the_command_line(["-m"], ["python", "-X", "importtime", "-m", "tfsoftmax"])
    assert _is_the_command_line(["-m"], ["python", "-mtfsoftmax"])
    assert not _is_the_command_line(["-m"], ["python", "-m", "tfsoftmax_extras"])
    assert not _is_the_command_line(["-c"], ["python", "-c", "import tfsoftmax"])
    assert not _is_the_command_line([], [])
