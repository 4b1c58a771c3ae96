"""tfsoftmax: a hand-derived softmax classifier as real TensorFlow and Keras software.

The notebook's model, ``ŷ = softmax(x Wᵀ[:-1] + W[:, -1])`` trained on
``L = −(1/b) Σ_i Σ_k y_ik log ŷ_ik`` by ``w ← w − lr·∇w``, as custom-gradient
ops (:mod:`tfsoftmax.ops`), Keras 3 layers and a loss (:mod:`tfsoftmax.layers`,
:mod:`tfsoftmax.losses`), a compiled SGD trainer (:mod:`tfsoftmax.training`)
and a NumPy reference (:mod:`tfsoftmax.reference`).

What ``import tfsoftmax`` does, and what it costs (a decision):

* It selects Keras' TensorFlow backend (``KERAS_BACKEND=tensorflow``, unless
  the user already chose one), so ``import keras`` after ``import tfsoftmax``
  gets the backend tfsoftmax's ops need.
* When TensorFlow is installed, it imports :mod:`tfsoftmax.layers`,
  :mod:`tfsoftmax.losses` and :mod:`tfsoftmax.rescaling`, whose
  ``@keras.saving.register_keras_serializable`` decorators register the
  layers, the initializer, the loss and ``MinMaxRescaling`` with Keras.
  That is what lets ``keras.models.load_model("m.keras")`` load a tfsoftmax
  model without ``custom_objects`` — after ``import tfsoftmax``. The price is
  TensorFlow's own import time (about 5 s on a 2-core CPU; tfsoftmax adds
  well under a second). An import hook that registers when Keras is imported
  was tried and cannot work: TensorFlow imports Keras half-way through its
  own initialisation.
* Except in the ``tfsoftmax`` command itself. The console script does
  ``from tfsoftmax.cli import entry_point``, which runs this file first; importing
  TensorFlow there would make ``tfsoftmax --help``, ``--version`` and every
  argument error wait seconds for nothing. So when the process *is* the
  command line — the console script (``sys.argv[0]``'s name is
  ``tfsoftmax``), or ``python -m tfsoftmax`` (while runpy imports this
  package, ``sys.argv[0]`` is ``"-m"`` and ``sys.orig_argv`` names
  ``tfsoftmax`` after the ``-m``) — the eager import is skipped
  (:func:`_is_the_command_line`), and each subcommand imports what it needs
  when it runs (the layers and the loss then register as they load).
  Library users are unaffected: ``import tfsoftmax`` in any other program,
  ``python -m pytest`` and ``python -c`` included, registers as before
  (``tests/test_startup.py`` checks both sides).
* Everything else loads on first use: every public submodule is an attribute
  (``tfsoftmax.datasets``, ``tfsoftmax.ops``, ``tfsoftmax.training``,
  ``tfsoftmax.compare``, ...) imported when first touched, through the module
  ``__getattr__`` below, and so are the names in ``__all__``
  (``tfsoftmax.train_sgd``, ``tfsoftmax.BiasTrickDense``, the error types).
* Without TensorFlow, ``import tfsoftmax`` takes milliseconds and the NumPy
  parts work (``tfsoftmax.datasets``, ``tfsoftmax.preprocessing``,
  ``tfsoftmax.reference``, ``tfsoftmax.constants``); touching a TensorFlow
  part raises an ``ImportError`` naming the extra to install
  (``pip install -e '.[cpu]'`` in a clone, ``pip install 'tfsoftmax[cpu]'``
  otherwise; see :mod:`tfsoftmax._tf`).

>>> import tfsoftmax
>>> tfsoftmax.datasets.load_mnist is tfsoftmax.load_mnist
True
>>> issubclass(tfsoftmax.MNISTUnavailableError, RuntimeError)
True
"""

import time

#: ``time.perf_counter()`` when this package began importing: the start of a
#: ``tfsoftmax`` command, for its phase times (:mod:`tfsoftmax.cli.timing`).
IMPORT_STARTED = time.perf_counter()

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402

__version__ = "0.1.0"

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

#: The console script's names (``tfsoftmax``; ``tfsoftmax.exe`` and
#: ``tfsoftmax-script.py`` on Windows), compared without the extension.
_COMMAND_NAMES = ("tfsoftmax", "tfsoftmax-script")

#: The modules run with ``python -m`` that are command lines too: the
#: ``tfsoftmax`` command and the clone's set-up (:mod:`tfsoftmax.bootstrap`).
_COMMAND_MODULES = ("tfsoftmax", "tfsoftmax.bootstrap")


def _is_the_command_line(argv=None, orig_argv=None):
    """Is this process the ``tfsoftmax`` command (console script or ``python -m tfsoftmax``)?

    >>> _is_the_command_line(["/venv/bin/tfsoftmax", "--help"], [])
    True
    >>> _is_the_command_line(["-m", "--help"], ["python", "-m", "tfsoftmax", "--help"])
    True
    >>> _is_the_command_line(["-m"], ["python3", "-m", "tfsoftmax.bootstrap"])
    True
    >>> _is_the_command_line(["-m"], ["python", "-m", "mypackage"])
    False
    >>> _is_the_command_line(["train.py"], ["python", "train.py"])
    False
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if not argv:  # embedded interpreters may have no argv
        return False
    script = os.path.splitext(argv[0].replace("\\", "/").rsplit("/", 1)[-1])[0]  # any OS
    if script in _COMMAND_NAMES:
        return True
    if argv[0] != "-m":
        return False
    for i, arg in enumerate(orig_argv):
        if arg == "-m":
            return i + 1 < len(orig_argv) and orig_argv[i + 1] in _COMMAND_MODULES
        if arg.startswith("-m"):
            return arg[2:] in _COMMAND_MODULES
    return False


if not _is_the_command_line() and importlib.util.find_spec("tensorflow") is not None:
    try:
        from tfsoftmax import layers as _layers  # noqa: F401  (registers with Keras)
        from tfsoftmax import losses as _losses  # noqa: F401
        from tfsoftmax import rescaling as _rescaling  # noqa: F401
    except ImportError:  # pragma: no cover - a broken TensorFlow install
        pass

#: The public submodules and subpackages (every one whose name has no leading
#: underscore), each imported on first attribute access.
SUBMODULES = tuple(
    sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
)

# Public name -> module that defines it. Resolved on first attribute access.
_LAZY_EXPORTS = {
    # the custom-gradient ops
    "bias_trick_dense": "tfsoftmax.ops",
    "jacobian_softmax": "tfsoftmax.ops",
    "categorical_crossentropy": "tfsoftmax.ops",
    # the Keras layers, initializer, converters and loss
    "BiasTrickDense": "tfsoftmax.layers",
    "JacobianSoftmax": "tfsoftmax.layers",
    "NotebookInitializer": "tfsoftmax.layers",
    "to_bias_trick": "tfsoftmax.layers",
    "from_bias_trick": "tfsoftmax.layers",
    "CategoricalCrossentropy": "tfsoftmax.losses",
    # training and its record
    "train_sgd": "tfsoftmax.training",
    "History": "tfsoftmax.history",
    # data
    "load_mnist": "tfsoftmax.datasets",
    # the errors and warnings a caller may catch or filter
    "TrainingDivergedError": "tfsoftmax.training",
    "CheckpointMismatchError": "tfsoftmax.checkpointing",
    "CheckpointInUseError": "tfsoftmax.run_lock",
    "OutputError": "tfsoftmax.atomic",
    "MNISTUnavailableError": "tfsoftmax.datasets",
    "MNISTCacheWarning": "tfsoftmax.datasets",
    # checking anyone's gradients
    "check_gradients": "tfsoftmax.testing",
    "assert_gradients": "tfsoftmax.testing",
    "GradientCheckError": "tfsoftmax.testing",
}

__all__ = ["SUBMODULES", "__version__", *_LAZY_EXPORTS]


def __getattr__(name):
    """Import a public submodule, or the module defining an exported name, on first use."""
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # the import sets the attribute
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_EXPORTS) | set(SUBMODULES))
