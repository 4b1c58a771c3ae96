"""One run per checkpoint folder: an advisory lock on ``<folder>/.tfsoftmax-lock``.

A run that checkpoints to a folder first takes an exclusive ``fcntl.flock`` on
the folder's lock file and writes its owner into it (``{"pid", "host",
"started"}``, JSON); a second run on the same folder — another process, or
another ``train_sgd`` call in the same one — finds the lock taken and is
refused with a :class:`CheckpointInUseError` naming the holder. The lock
file is removed when the run ends.

Stale locks need no detection by age or pid: the kernel releases a ``flock``
when its process dies, ``kill -9`` included, so a lock file left by a killed
run is simply taken over (its content is overwritten). Removing the file on
release opens one race — a second run may open the file just before the
holder unlinks it and then lock a file no longer in the folder — so after
locking, the file's inode is compared with the one at the path, and on a
mismatch the lock is taken again on the new file.

Where ``flock`` is unavailable (Windows, some network file systems) a
``RuntimeWarning`` says so and the run goes on without the lock.
"""

import contextlib
import datetime
import errno
import json
import os
import socket
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_FILENAME", "CheckpointInUseError", "DirectoryLock"]

#: The lock file's name inside the locked folder.
LOCK_FILENAME = ".tfsoftmax-lock"


class CheckpointInUseError(RuntimeError):
    """Another run holds the checkpoint folder's lock; nothing was changed."""


def _owner():
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started}


def _describe_holder(text):
    try:
        owner = json.loads(text)
        return f"pid {owner['pid']} on {owner['host']}, since {owner['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


class DirectoryLock:
    """The exclusive lock of ``directory`` (which must exist) for one run.

    Args:
        directory: the folder to lock.
        name: how error messages call the folder (``checkpoint_dir``).
    """

    def __init__(self, directory, name="checkpoint_dir"):
        self.directory = os.fspath(directory)
        self.name = name
        self.path = os.path.join(self.directory, LOCK_FILENAME)
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Take the lock, or raise :class:`CheckpointInUseError` naming its holder."""
        if fcntl is None:
            warnings.warn(f"{self.name}: no file locking on this platform", RuntimeWarning, 3)
            return self
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not self._lock(fd):
                return self
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file we locked: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_owner()).encode())
            self._fd = fd
        return self

    def _lock(self, fd):
        """``flock`` ``fd``; False when the file system cannot lock (a warning)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            raise CheckpointInUseError(
                f"{self.name} {self.directory!r} is in use by another run ({holder}); "
                f"wait for it to end, or use another {self.name}"
            ) from None
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            os.close(fd)
            warnings.warn(
                f"{self.name} {self.directory!r}: the file system cannot lock files "
                f"({error.strerror}); nothing stops two runs from sharing it",
                RuntimeWarning,
                stacklevel=4,
            )
            return False
        return True

    def release(self):
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
