"""The public API: ``__all__`` everywhere, errors at the top, no private names, docs that resolve.

A *public module* is every module of the package whose dotted path has no part
starting with ``_`` (so ``tfsoftmax._tf`` and ``tfsoftmax.__main__`` are private).
"""

import ast
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import tfsoftmax

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def public_module_names():
    names = ["tfsoftmax"]
    for info in pkgutil.walk_packages(tfsoftmax.__path__, prefix="tfsoftmax."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


PUBLIC_MODULES = public_module_names()


def test_the_walk_finds_the_modules_and_skips_private_ones():
    for expected in ("tfsoftmax.ops", "tfsoftmax.datasets", "tfsoftmax.cli.command"):
        assert expected in PUBLIC_MODULES
    assert not [name for name in PUBLIC_MODULES if "._" in name]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_module_defines_all_and_every_name_in_it_exists(module_name):
    module = importlib.import_module(module_name)
    assert "__all__" in vars(module), f"{module_name} has no __all__"
    exported = module.__all__
    assert isinstance(exported, (list, tuple)), f"{module_name}.__all__ is {type(exported)}"
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it lacks: {missing}"


def exported_exceptions():
    """``{name: class}`` of every exception or warning class that a public module
    outside :mod:`tfsoftmax.cli` defines and lists in its ``__all__``. (The CLI's
    errors never leave ``tfsoftmax.cli.main``, which turns them into exit codes.)"""
    found = {}
    for module_name in PUBLIC_MODULES:
        if module_name == "tfsoftmax" or module_name.startswith("tfsoftmax.cli"):
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
            ):
                found[name] = value
    return found


def test_the_error_types_are_exported_from_tfsoftmax():
    from tfsoftmax.checkpointing import CheckpointMismatchError
    from tfsoftmax.datasets import MNISTUnavailableError

    assert tfsoftmax.CheckpointMismatchError is CheckpointMismatchError
    assert tfsoftmax.MNISTUnavailableError is MNISTUnavailableError
    assert issubclass(tfsoftmax.TrainingDivergedError, FloatingPointError)
    for name in ("TrainingDivergedError", "CheckpointMismatchError", "MNISTUnavailableError"):
        assert name in tfsoftmax.__all__


def test_every_public_exception_of_the_library_is_exported_from_tfsoftmax():
    found = exported_exceptions()
    assert {"TrainingDivergedError", "CheckpointMismatchError", "MNISTUnavailableError"} <= set(
        found
    )
    for name, error_type in found.items():
        assert name in tfsoftmax.__all__, f"tfsoftmax does not export {name}"
        assert getattr(tfsoftmax, name) is error_type


def test_history_comes_from_the_module_that_defines_it():
    from tfsoftmax.history import History

    assert tfsoftmax.History is History


def test_submodules_are_attributes_of_the_package():
    expected = ("datasets", "ops", "layers", "losses", "training", "reference")
    expected += ("preprocessing", "compare", "plots", "models", "checkpointing", "cli")
    for name in expected:
        assert name in tfsoftmax.SUBMODULES
        assert name in dir(tfsoftmax)
        assert getattr(tfsoftmax, name) is importlib.import_module(f"tfsoftmax.{name}")
    assert tfsoftmax.datasets.load_mnist is tfsoftmax.load_mnist
    assert tfsoftmax.training.train_sgd is tfsoftmax.train_sgd
    assert tfsoftmax.layers.BiasTrickDense is tfsoftmax.BiasTrickDense
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        tfsoftmax.no_such_thing  # noqa: B018


def test_attribute_access_after_a_bare_import_in_a_fresh_process():
    code = (
        "import tfsoftmax\n"
        "print(tfsoftmax.datasets.load_mnist.__module__, tfsoftmax.ops.jacobian_softmax.__name__,"
        " tfsoftmax.compare.__name__, tfsoftmax.plots.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        "tfsoftmax.datasets",
        "jacobian_softmax",
        "tfsoftmax.compare",
        "tfsoftmax.plots",
    ]


def test_without_tensorflow_the_numpy_submodules_are_attributes_and_tf_ones_name_the_extra():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import tfsoftmax\n"
        "assert callable(tfsoftmax.datasets.load_mnist)\n"
        "assert callable(tfsoftmax.preprocessing.preprocess)\n"
        "assert callable(tfsoftmax.reference.generate_batch_indices)\n"
        "assert issubclass(tfsoftmax.MNISTUnavailableError, RuntimeError)\n"
        "print('numpy parts ok')\n"
        "tfsoftmax.layers\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "numpy parts ok" in result.stdout, result.stderr[-3000:]
    assert result.returncode != 0
    assert "pip install 'tfsoftmax[cpu]'" in result.stderr


def private_tfsoftmax_names(path):
    """Every ``tfsoftmax._…`` an example imports or reads, as ``(line, text)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tfsoftmax":
            parts = node.module.split(".") + [alias.name for alias in node.names]
            if any(part.startswith("_") for part in parts[1:]):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tfsoftmax" and any(p.startswith("_") for p in parts[1:]):
                    found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            chain = ast.unparse(node)
            if chain.split(".")[0] == "tfsoftmax":
                found.append((node.lineno, chain))
    return found


def test_the_private_name_check_catches_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tfsoftmax._tf\nfrom tfsoftmax._tf import keras\nfrom tfsoftmax import _loops\n"
        "import tfsoftmax\ntfsoftmax.ops._check_dtype\nx._keras_logits\n"
    )
    assert sorted(line for line, _ in private_tfsoftmax_names(sample)) == [1, 2, 3, 5]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_use_only_public_names(path):
    assert private_tfsoftmax_names(path) == []


def resolve(dotted):
    """The object a dotted ``tfsoftmax.module.name`` names (AttributeError if none)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(dotted)


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *EXAMPLES]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_dotted_tfsoftmax_name_in_the_docs_exists(path):
    names = set(re.findall(r"\btfsoftmax(?:\.[A-Za-z_]\w*)+", path.read_text(encoding="utf-8")))
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (AttributeError, ImportError):
            missing.append(name)
    assert not missing, f"{path.name} names what does not exist: {missing}"


def test_the_docs_name_check_catches_a_wrong_name():
    assert resolve("tfsoftmax.datasets.load_mnist") is tfsoftmax.load_mnist
    with pytest.raises(AttributeError):
        resolve("tfsoftmax.datasets.no_such_loader")
    with pytest.raises((AttributeError, ImportError)):
        resolve("tfsoftmax.no_such_module.thing")
