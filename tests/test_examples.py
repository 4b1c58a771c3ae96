"""The example scripts, run for real as subprocesses, the way a user runs them."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(args, cwd, timeout=180):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


# --------------------------------------------------------------------------- notebook.py
@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """``notebook.py --epochs 2 --out tmp`` run once, in a scratch folder."""
    cwd = tmp_path_factory.mktemp("notebook")
    stdout = run([str(EXAMPLES / "notebook.py"), "--epochs", "2", "--out", "tmp"], cwd)
    return stdout, cwd / "tmp"


def test_notebook_prints_epoch_losses_in_the_notebooks_format(notebook_run):
    stdout, _ = notebook_run
    epochs = re.findall(r"^Epoch (\d+): loss = (\d+\.\d{6})$", stdout, re.MULTILINE)
    assert [number for number, _ in epochs] == ["1", "2"], stdout
    first, second = (float(loss) for _, loss in epochs)
    assert 1.40 <= first <= 1.50  # the notebook: 1.442402
    assert second < first


def test_notebook_prints_the_test_accuracy(notebook_run):
    stdout, _ = notebook_run
    match = re.search(r"^Test accuracy = (0\.\d{4})$", stdout, re.MULTILINE)
    assert match, stdout
    assert 0.85 <= float(match.group(1)) <= 0.95  # two epochs; 20 give the notebook's 0.9035
    assert "Number of training samples = 60000" in stdout


def test_notebook_writes_the_figures_as_png(notebook_run):
    _, out = notebook_run
    for name in ("loss_curve.png", "misclassified.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert data[12:16] == b"IHDR" and len(data) > 1000, name


# --------------------------------------------------------------------------- compare_cce.py
def parse_tables(stdout):
    """Every ``|``-separated data row as a dict keyed by its table's header."""
    rows, header = [], None
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if cells[0] == "dtype":
            header = cells
        elif header and cells[0] in ("float32", "float64") and len(cells) == len(header):
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_compare_cce_rows_for_both_dtypes_and_finite_custom_columns(tmp_path):
    stdout = run([str(EXAMPLES / "compare_cce.py")], tmp_path)
    rows = parse_tables(stdout)
    gradient_columns = {"custom dL/dyhat", "custom dL/dz"}
    tables = [r for r in rows if "custom dL/dyhat" in r], [r for r in rows if "custom dL/dz" in r]
    cases = {"ordinary", "true 1e-45", "true exact 0", "other exact 0", "one-hot", "true 1-1e-9"}
    for table in tables:
        for dtype in ("float32", "float64"):
            assert cases <= {r["case"] for r in table if r["dtype"] == dtype}, stdout
    for row in rows:
        custom = {k: v for k, v in row.items() if k.startswith("custom")}
        assert len(custom) == 2 and gradient_columns & set(custom), row
        for value in custom.values():
            assert "nan" not in value.lower() and "inf" not in value.lower(), row
    # The findings it reports: Keras' CCE on a Keras softmax uses the logits.
    assert re.search(r"has \._keras_logits\s+True", stdout)
    assert re.search(r"keras\.activations\.softmax\(z\)\)\s+\[logits\]\s+200\.7", stdout)
    assert re.search(r"tf\.identity\(softmax\(z\)\)\)\s+\[clipped\]\s+16\.12", stdout)


# --------------------------------------------------------------------------- keras_drop_in.py
def test_keras_drop_in_example_trains_one_epoch(tmp_path):
    # keras_drop_in.py has no command-line options; its main(epochs=...) gives a short run.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import keras_drop_in as m; m.main(epochs=1)"
    )
    stdout = run(["-c", code, str(EXAMPLES)], tmp_path)
    match = re.search(r"^test accuracy: (0\.\d{4})$", stdout, re.MULTILINE)
    assert match, stdout
    assert float(match.group(1)) > 0.9  # one epoch of Adam: about 0.95
