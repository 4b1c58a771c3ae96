"""Keep TensorFlow's cache-loading noise off the terminal, pass everything else through, live.

TensorFlow reads a compilation-cache entry with ``ReadTextOrBinaryProto``: it
first tries the *text* format, and protobuf logs the failure on the way to the
binary read that succeeds::

    E0000 ... text_format.cc:378] Error parsing text-format tensorflow.XlaSerializedCacheEntry: ...

two such lines per entry loaded, at ERROR level, so ``TF_CPP_MIN_LOG_LEVEL=2``
(the command's default) shows them although nothing is wrong.
:func:`dropping_lines` points file descriptor 2 at a pipe while a block runs;
a thread forwards every line to the real stderr as it comes, except lines
containing :data:`CACHE_NOISE` and the undecodable pieces of such a line
(its binary excerpt may hold a newline), and absl's one-time header
``WARNING: All log messages before absl::InitializeLog() ...`` that the
first of them brings. When the block ends (normally or by
an exception), stderr is restored before anything else is printed.
"""

import contextlib
import os
import sys
import threading

__all__ = ["CACHE_NOISE", "dropping_lines"]

CACHE_NOISE = (
    b"Error parsing text-format tensorflow.XlaSerializedCacheEntry",
    # absl's header before its first log line, which here is the line above.
    b"WARNING: All log messages before absl::InitializeLog() is called",
)


@contextlib.contextmanager
def dropping_lines(marker=CACHE_NOISE):
    """Drop stderr lines holding any of ``marker`` (byte strings) while the block runs
    (a no-op without fd 2)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_end, write_end = os.pipe()
    forwarder = threading.Thread(
        target=_forward, args=(read_end, saved, marker), name="tfsoftmax-stderr", daemon=True
    )
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the forwarder sees EOF
        forwarder.join(timeout=5)
        os.close(saved)


def _forward(read_end, target, marker):
    """Copy lines from ``read_end`` to ``target``, leaving out the marked ones."""
    dropping = False
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                dropping = _dropped(line, marker, dropping)
                if not dropping:
                    os.write(target, line + b"\n")
        if pending and not _dropped(pending, marker, dropping):
            os.write(target, pending)


def _dropped(line, marker, dropping):
    """Is ``line`` marked, or the undecodable rest of a marked line?"""
    if any(mark in line for mark in marker):
        return True
    if not dropping:
        return False
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(c) < 32 and c not in "\t\r" for c in text)
