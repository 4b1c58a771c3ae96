"""Packaging promises: the NumPy parts without TensorFlow, the extras hint, the exports."""

import subprocess
import sys

import tfsoftmax


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_without_tensorflow_numpy_parts_work_and_tf_parts_name_the_extra():
    # ``sys.modules["tensorflow"] = None`` makes ``import tensorflow`` fail, as on a
    # machine where it is not installed.
    result = _python(
        "import sys; sys.modules['tensorflow'] = None\n"
        "import tfsoftmax, tfsoftmax.reference, tfsoftmax.datasets\n"
        "print('numpy parts import')\n"
        "import tfsoftmax.layers\n"
    )
    assert "numpy parts import" in result.stdout
    assert result.returncode != 0
    assert "pip install 'tfsoftmax[cpu]'" in result.stderr
    assert "'tfsoftmax[gpu]'" in result.stderr


def test_top_level_exports_resolve():
    from tfsoftmax.layers import BiasTrickDense
    from tfsoftmax.training import train_sgd

    assert tfsoftmax.BiasTrickDense is BiasTrickDense
    assert tfsoftmax.train_sgd is train_sgd
    for name in tfsoftmax.__all__:
        assert getattr(tfsoftmax, name) is not None


def test_python_dash_m_is_the_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "tfsoftmax", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == f"tfsoftmax {tfsoftmax.__version__}"


def test_the_wheel_ships_every_module(tmp_path):
    # An editable install hides a package missing from pyproject.toml; a wheel does
    # not. Built from a clean copy: a stale *.egg-info of the editable install would
    # add its file list to the wheel as package data and hide the omission.
    import pathlib
    import shutil
    import zipfile

    root = pathlib.Path(__file__).resolve().parents[1]
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(root / "tfsoftmax", source / "tfsoftmax", ignore=ignore)
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(root / name, source / name)
    wheel_command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
    result = subprocess.run(
        [*wheel_command, "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("tfsoftmax-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(root).as_posix() for p in (root / "tfsoftmax").rglob("*.py")}
    assert sources and sources <= shipped, sorted(sources - shipped)
