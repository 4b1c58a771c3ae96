"""Atomic file writes: a file is either the old one, the complete new one, or absent.

Every file tfsoftmax writes (histories, figures, JSON reports, the MNIST cache)
goes through :func:`replacing`: the content is written to a temporary file in
the destination's folder, flushed to disk (``fsync``), then moved over the
destination with ``os.replace``, which is atomic on POSIX and Windows. An
interrupted or failed write removes the temporary file and leaves the previous
file untouched, so a reader never sees half a file. The new file gets the
permissions of any file the process creates (``0o666`` less the umask).

Output paths are checked before the work that produces them
(:func:`check_writable_directory`, :func:`check_writable_file`): the check
*tries* — it creates the missing folders and a probe file, then removes
everything it created — because permission bits say nothing when the process
runs as root, and a path under a regular file, on a read-only file system or
in ``/proc`` fails only when written. A failure is an :class:`OutputError`
(an ``OSError``) naming the path and the reason, in one line;
:func:`output_errors` turns the errors of a write into the same.
"""

import contextlib
import errno
import os
import pathlib
import tempfile

__all__ = [
    "OutputError",
    "check_writable_directory",
    "check_writable_file",
    "output_errors",
    "replacing",
    "write_bytes",
    "write_text",
]


class OutputError(OSError):
    """An output path cannot be written, or writing it failed (disk full, read-only,
    not a directory, ...); the message names the path and the reason in one line."""

    def __str__(self):
        return self.strerror or super().__str__()


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


def _reason(error):
    """The first line of ``error``'s message (a TensorFlow error's ``message`` too)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(getattr(error, "message", None) or error or type(error).__name__)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@contextlib.contextmanager
def output_errors(what, also=()):
    """Turn an ``OSError`` (and any exception type in ``also``, such as
    TensorFlow's ``tf.errors.OpError``) raised in the block into one
    :class:`OutputError`: ``cannot write <what>: <reason>``."""
    try:
        yield
    except OutputError:
        raise
    except (OSError, *also) as error:
        code = getattr(error, "errno", None) or errno.EIO
        raise OutputError(code, f"cannot write {what}: {_reason(error)}") from error


def _missing_parts(path):
    """The folders of ``path`` that do not exist yet, outermost first, and the
    nearest existing one; a dangling symlink or a file on the way is an error."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        parent = current.parent
        if parent == current:
            break
        current = parent
    if os.path.islink(current) and not os.path.exists(current):
        raise FileNotFoundError(errno.ENOENT, f"{current} is a dangling symbolic link")
    if not current.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{current} is not a directory")
    return list(reversed(missing)), current


def _probe(folder, size=0):
    """Write ``size`` zero bytes to a new file in ``folder``, then remove it: can
    this process write there, and does that much still fit (disk, quota,
    ``RLIMIT_FSIZE``)?"""
    handle, probe = tempfile.mkstemp(dir=folder, prefix=".tfsoftmax-probe.")
    try:
        with open(handle, "wb") as stream:
            stream.write(bytes(size))
            stream.flush()
    finally:
        os.unlink(probe)


def _try_directory(path, size=0):
    """Create what is missing of folder ``path``, write a probe file of ``size``
    bytes in it, and remove all of it again; raises ``OSError`` when any step fails."""
    missing, _ = _missing_parts(path)
    if not missing and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{path} exists and is not a directory")
    try:
        for folder in missing:
            folder.mkdir()
        _probe(path, size)
    finally:
        for folder in reversed(missing):
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_writable_directory(path, name, size=0):
    """``path`` is, or can be created as, a folder this process can write in,
    with room for a file of ``size`` bytes.

    Leaves nothing behind: folders it had to create are removed again.
    Returns ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: ``path`` is empty.
        OutputError: ``path`` is not a folder, or creating or writing in it
            fails; the message names ``name``, the path and the reason.
    """
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{name} is empty; pass a folder (use '.' for the current one)")
    with output_errors(f"{name} {text!r}"):
        _try_directory(pathlib.Path(text).absolute(), size)
    return pathlib.Path(text)


def check_writable_file(path, name, size=0):
    """``path`` can be written as a file of ``size`` bytes: not a folder, and its
    folder writable (see :func:`check_writable_directory`). Returns ``path`` as a ``Path``."""
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{name} is empty; pass a file name")
    with output_errors(f"{name} {text!r}"):
        if os.path.isdir(text):
            raise IsADirectoryError(errno.EISDIR, f"{text} is a directory")
        _try_directory(pathlib.Path(text).absolute().parent, size)
    return pathlib.Path(text)
