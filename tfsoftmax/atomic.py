"""Atomic file writes: a file is either the old one, the complete new one, or absent.

Every file tfsoftmax writes (histories, figures, JSON reports, the MNIST cache)
goes through :func:`replacing`: the content is written to a temporary file in
the destination's folder, flushed to disk (``fsync``), then moved over the
destination with ``os.replace``, which is atomic on POSIX and Windows. An
interrupted or failed write removes the temporary file and leaves the previous
file untouched, so a reader never sees half a file. The new file gets the
permissions of any file the process creates (``0o666`` less the umask).
"""

import contextlib
import os
import pathlib
import tempfile

__all__ = ["replacing", "write_bytes", "write_text"]


@contextlib.contextmanager
def replacing(path, suffix=".part"):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The caller writes the complete content to the yielded path (with any
    writer: ``open``, ``np.savez``, ``figure.savefig``, ``model.save``). When
    the block ends normally the file is fsync-ed and ``os.replace``-d over
    ``path``; when it raises, the temporary file is removed and ``path`` is
    unchanged. ``suffix`` lets writers that choose a format by extension
    (``savefig``, ``model.save``) see the right one. Missing parent folders are
    created.

    Example:

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> with replacing(target) as temporary:
    ...     _ = pathlib.Path(temporary).write_text("done")
    >>> target.read_text()
    'done'
    """
    path = pathlib.Path(os.fspath(path))
    folder = path.absolute().parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600; files follow the umask
    try:
        yield temporary
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _umask():
    """The process's umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically; returns ``path`` as a ``Path``."""
    with replacing(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data)
    return pathlib.Path(path)


def write_text(path, text):
    """Write ``text`` (UTF-8, newlines untranslated) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))
