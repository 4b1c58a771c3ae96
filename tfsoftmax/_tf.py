"""One guarded import of TensorFlow and Keras for every TensorFlow part of tfsoftmax.

TensorFlow is an *extra* (``cpu``, ``gpu`` or ``tf``) so that CPU and GPU users
each get the right build. Importing a TensorFlow part without it fails here,
with an ``ImportError`` (``name="tensorflow"``) whose message names the extra
to install — ``pip install -e '.[cpu]'`` in a clone, ``pip install
'tfsoftmax[cpu]'`` from PyPI — instead of a bare ``ModuleNotFoundError`` from
deep inside the package. The command line prints that message as one line
and exits 1.

Keras 3 runs on several backends; tfsoftmax's ops are TensorFlow ops, so the
backend must be ``tensorflow``. It is selected here unless the user already
chose one, and a different choice is reported clearly.
"""

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_INSTALL_HINT = (
    "TensorFlow is not installed; it comes through an extra. In a clone of tfsoftmax: "
    "pip install -e '.[cpu]' (or '.[gpu]' for an NVIDIA GPU on Linux, '.[tf]' for the "
    "default build); from PyPI: pip install 'tfsoftmax[cpu]' (or 'tfsoftmax[gpu]', "
    "'tfsoftmax[tf]')."
)


# absl's log lines: severity letter, MMDD, time, thread id, file:line] message.
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"


@contextlib.contextmanager
def _honour_min_log_level():
    """Apply ``TF_CPP_MIN_LOG_LEVEL`` to what TensorFlow prints while it is imported.

    TensorFlow 2.21 logs through absl before absl is initialised, and those
    lines (the oneDNN notice, twice, each after absl's own warning) reach
    stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says. While TensorFlow is
    imported, file descriptor 2 goes to a temporary file; afterwards every
    line is passed on except absl lines below the level and absl's preamble,
    so a command's one-line error message stays one line.
    """
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 1:
        yield
        return
    hidden = "IWEF"[: min(level, 3)].encode()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            dropping = False  # also drops the continuation lines of a dropped message
            for line in captured.read().splitlines(keepends=True):
                match = _ABSL_LINE.match(line)
                if line.startswith(_ABSL_PREAMBLE) or match:
                    dropping = line.startswith(_ABSL_PREAMBLE) or match.group(1) in hidden
                if not dropping:
                    os.write(2, line)


try:
    with _honour_min_log_level():
        import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(f"{_INSTALL_HINT} (import failed: {error})", name="tensorflow") from error

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover
    raise ImportError(
        "tfsoftmax needs Keras' TensorFlow backend, but KERAS_BACKEND is "
        f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

__all__ = ["tf", "keras"]
