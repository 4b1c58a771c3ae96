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
