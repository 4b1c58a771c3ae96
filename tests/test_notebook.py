"""examples/notebook.ipynb, run top to bottom in a real Jupyter kernel on the real MNIST.

The notebook is stored without outputs; this test regenerates them (into a
scratch folder, never into the repository) and checks what they say: the test
accuracy it prints (the same as :func:`tfsoftmax.training.train_sgd` gives here,
in the notebook's range), that its figure cells showed PNG images, that the
comparison agreed and that no cell failed. The kernel is the ``python3`` kernel
of the environment running the tests (``ipykernel`` ships its spec into the
environment's prefix, and ``jupyter_client`` starts it with this interpreter) —
checked from inside the kernel.
"""

import base64
import json
import pathlib
import re
import sys

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The kernel reports where it runs from, in a cell added after the notebook's own.
PROBE = """\
import json, sys
import tfsoftmax
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                  "tfsoftmax": tfsoftmax.__file__}))
"""


def stdout_of(cell):
    return "".join(o["text"] for o in cell.get("outputs", []) if o.get("name") == "stdout")


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def cell_calling(notebook, name):
    """The one code cell whose source calls ``name(``."""
    cells = [c for c in code_cells(notebook) if f"{name}(" in c.source]
    assert len(cells) == 1, f"expected one cell calling {name}(), found {len(cells)}"
    return cells[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook plus the probe cell, executed in a ``python3`` kernel in a scratch folder.

    Returns ``(notebook, folder)``; the executed copy is saved as
    ``folder / "notebook.ipynb"`` for inspection.
    """
    folder = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(folder)}},  # the kernel's working directory
    )
    try:
        client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    finally:
        nbformat.write(notebook, folder / "notebook.ipynb")
    return notebook, folder


# --------------------------------------------------------------------------- the stored file
def test_stored_notebook_is_valid_nbformat_4_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"
    cells = code_cells(notebook)
    assert len(cells) >= 10
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:200]
    assert "no outputs" in notebook.cells[0].source  # the decision, stated at the top


def test_stored_notebook_uses_public_names_and_imports_tfsoftmax_first():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    sources = [cell.source for cell in code_cells(notebook)]
    assert sources[0].strip() == "import tfsoftmax"
    for source in sources:
        assert not re.search(r"tfsoftmax(\.\w+)*\._(?!_)", source), source  # no private names
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    for formula in (r"\operatorname{diag}(a) - a a^\top", r"-\frac{y}{\hat y}", r"G^\top [X"):
        assert formula in markdown, formula


# --------------------------------------------------------------------------- the run
@pytest.mark.mnist
@pytest.mark.slow
def test_every_cell_ran_without_error(executed):
    notebook, _ = executed
    counts = [cell.execution_count for cell in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1))
    for cell in code_cells(notebook):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, (cell.source[:200], errors)
        stderr = "".join(o["text"] for o in cell.outputs if o.get("name") == "stderr")
        assert "Traceback" not in stderr, stderr


@pytest.mark.mnist
@pytest.mark.slow
def test_kernel_is_this_environments_python_and_package(executed):
    notebook, _ = executed
    probe = json.loads(stdout_of(notebook.cells[-1]).strip().splitlines()[-1])
    assert probe["prefix"] == sys.prefix, probe
    assert probe["executable"] == sys.executable, probe
    assert pathlib.Path(probe["tfsoftmax"]).resolve().is_relative_to(ROOT), probe


@pytest.mark.mnist
@pytest.mark.slow
def test_printed_test_accuracy_is_what_train_sgd_gives(executed, mnist_batch_major):
    from tfsoftmax.constants import BATCH_SIZE, EPOCHS, LEARNING_RATE, SEED
    from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax, NotebookInitializer
    from tfsoftmax.training import train_sgd

    notebook, _ = executed
    output = "\n".join(stdout_of(cell) for cell in code_cells(notebook))
    accuracies = re.findall(r"^test accuracy: (\d\.\d{4})$", output, re.MULTILINE)
    assert len(accuracies) == 1, output[-3000:]
    accuracy = float(accuracies[0])
    assert 0.895 <= accuracy <= 0.912  # the seed notebook: 0.9035
    correct = re.search(r"^(\d+) of 10000 test digits correct$", output, re.MULTILINE)
    assert correct, output[-3000:]
    assert f"{int(correct.group(1)) / 10_000:.4f}" == accuracies[0]
    last_loss = re.search(rf"^Epoch {EPOCHS}: loss = (\d\.\d{{6}})$", output, re.MULTILINE)
    assert last_loss, output[-3000:]

    import keras

    data = mnist_batch_major
    # The notebook's model; float32 stated, so a dtype policy left set by another
    # test in this process cannot change it (the kernel runs with the default).
    model = keras.Sequential(
        [
            keras.Input((data.x_train.shape[1],), dtype="float32"),
            BiasTrickDense(10, kernel_initializer=NotebookInitializer(seed=SEED), dtype="float32"),
            JacobianSoftmax(method="jacobian", dtype="float32"),
        ]
    )
    history = train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        seed=SEED,
        verbose=0,
    )
    predicted = np.argmax(model.predict(data.x_test, batch_size=10_000, verbose=0), axis=1)
    assert int(correct.group(1)) == int(np.sum(predicted == data.labels_test))
    assert last_loss.group(1) == f"{history.history['loss'][-1]:f}"


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize(
    ("plot", "png"),
    [
        ("plot_loss_curve", "loss_curve.png"),
        ("plot_misclassified", "misclassified.png"),
        ("plot_loss_curves", "loss_curves.png"),
    ],
)
def test_figure_cells_show_png_images(executed, plot, png):
    notebook, folder = executed
    cell = cell_calling(notebook, plot)
    images = [o.data["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, cell.outputs
    data = base64.b64decode(images[0])
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 400 and height >= 250, (width, height)
    assert (folder / "out" / "notebook" / png).read_bytes() == data


@pytest.mark.mnist
@pytest.mark.slow
def test_comparison_cell_reports_agreement_on_the_prefix(executed):
    notebook, _ = executed
    output = stdout_of(cell_calling(notebook, "compare"))
    assert "loss curves agree within 1e-09 (float64)" in output, output
    rows = re.findall(r"^(numpy|custom|keras) +(\d\.\d{6}) +(\d\.\d{6}) +(\d\.\d{4})", output, re.M)
    assert [row[0] for row in rows] == ["numpy", "custom", "keras"], output
    assert len({row[1:] for row in rows}) == 1, rows  # same losses and accuracy, printed
