"""A persistent XLA compilation cache for ``tfsoftmax train`` and ``compare``.

TensorFlow can save every executable it compiles for a ``jit_compile=True``
function and load it in a later process instead of compiling again: the
``TF_XLA_FLAGS`` flag ``--tf_xla_persistent_cache_directory=DIR``. An entry
is the file ``<prefix>__<signature hash>__<HLO hash>__<device>.pb`` holding
the HLO module and the executable; it is used only when the function's
signature (name, argument shapes and dtypes) *and* its HLO module are equal,
byte for byte, to those saved. Tracing and lowering to HLO still run on every
start; what is saved is XLA's own compilation (optimisation, LLVM, machine
code), most of a first epoch's extra time.

TensorFlow reads ``TF_XLA_FLAGS`` once, while it initialises, so
:func:`set_up` must run before TensorFlow is imported; if TensorFlow is
already loaded (the command called from a Python program that imported it),
the cache stays off and says why.

Where and how (each a decision):

* **Directory**: ``$XDG_CACHE_HOME/tfsoftmax/xla``, else
  ``~/.cache/tfsoftmax/xla`` (:func:`cache_root`); ``--no-compile-cache``
  turns it off, and a ``TF_XLA_FLAGS`` that already names a cache directory
  (or is a file of flags) is left as the user set it.
* **Key prefix**: ``tfsoftmax-<12 hex>``, a hash of the TensorFlow version,
  the CPU (model and feature flags of ``/proc/cpuinfo``), and the
  user's ``XLA_FLAGS`` and ``TF_XLA_FLAGS`` (:func:`cache_prefix`). XLA's key
  covers neither the compiler version nor its options nor the machine, so a
  TensorFlow upgrade, a home directory shared between different CPUs, or an
  ``XLA_FLAGS`` change can never load an executable built for something else.
* **No torn files**: TensorFlow writes an entry in place, and a torn or
  half-written entry makes the compiled call *fail* instead of recompiling.
  So each process points TensorFlow at its own staging folder
  ``<root>/.staging-<pid>-<random>`` holding hard links to the published
  entries (copies where links are impossible), and :meth:`CompileCache.publish`
  moves the entries it wrote into ``<root>`` with ``os.replace`` (atomic on
  one file system) once the command is done. Concurrent runs, pytest workers
  included, only ever see whole files; a staging folder whose process is gone
  is removed by the next run.
* **Quiet loads**: TensorFlow logs two ERROR lines for every entry it loads
  (it tries the text format first); :func:`quiet_loads` keeps exactly those
  off stderr (:mod:`tfsoftmax.cli.stderr_filter`).
* **Size**: after publishing, the oldest entries (by modification time) are
  removed until the root holds at most :data:`MAX_BYTES`.
"""

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import platform
import shutil
import sys
import tempfile

__all__ = [
    "CACHE_FLAG",
    "MAX_BYTES",
    "CompileCache",
    "cache_prefix",
    "cache_root",
    "quiet_loads",
    "run_with_cache",
    "set_up",
]

CACHE_FLAG = "--tf_xla_persistent_cache_directory"
PREFIX_FLAG = "--tf_xla_persistent_cache_prefix"
#: The root is pruned to this many bytes, oldest entries first.
MAX_BYTES = 256 * 2**20
_STAGING = ".staging-"


def cache_root(environ=None):
    """``$XDG_CACHE_HOME/tfsoftmax/xla``, or ``~/.cache/tfsoftmax/xla`` without it."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "tfsoftmax" / "xla"


def cache_prefix(environ=None):
    """``tfsoftmax-<hash>`` of what XLA's own key leaves out (see the module docstring)."""
    environ = os.environ if environ is None else environ
    parts = [
        _tensorflow_version(),
        platform.machine(),
        _cpu_description(),
        environ.get("XLA_FLAGS", ""),
        environ.get("TF_XLA_FLAGS", ""),
    ]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"tfsoftmax-{digest}"


def _tensorflow_version():
    """The installed TensorFlow's version, read from its metadata (no import)."""
    from importlib import metadata

    for name in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-intel"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return f"{name} {metadata.version(name)}"
    return "tensorflow unknown"


def _cpu_description():
    """The first CPU's ``model name`` and ``flags`` lines of ``/proc/cpuinfo`` ('' elsewhere)."""
    wanted = ("model name", "flags", "Features")  # Features: the flags on ARM
    lines = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if not line.strip():
                break  # the end of the first CPU's block
            if line.startswith(wanted):
                lines.append(line.strip())
    return "\n".join(lines) or platform.processor()


@dataclasses.dataclass
class CompileCache:
    """What :func:`set_up` did: the cache's folders, or why it is off.

    ``root``: where entries are published (None when off); ``staging``: the
    folder TensorFlow reads and writes in this process (None when off or when
    ``TF_XLA_FLAGS`` names its own directory); ``entries``: entries available
    at the start; ``published``: entries this process added (after :meth:`publish`).
    """

    root: pathlib.Path | None
    staging: pathlib.Path | None = None
    prefix: str = ""
    entries: int = 0
    published: int | None = None
    reason: str = ""
    linked: frozenset = frozenset()  # names of the entries staged at the start
    external: bool = False  # the directory is TF_XLA_FLAGS's own: nothing staged or published
    restore: tuple = ()  # (environ, TF_XLA_FLAGS before set_up), put back by publish

    @property
    def active(self):
        return self.root is not None

    def describe(self):
        """One phrase for the command's report, e.g. ``"3 entries read, 0 new"``."""
        if not self.active:
            return f"off ({self.reason})"
        if self.external:
            return f"{self.root} ({self.reason})"
        new = "" if self.published is None else f", {self.published} new"
        return f"{self.root} ({self.entries} entries at start{new})"

    def to_dict(self):
        return {
            "directory": None if self.root is None else str(self.root),
            "active": self.active,
            "entries_at_start": self.entries,
            "new_entries": self.published,
            "reason": self.reason,
        }

    def publish(self, max_bytes=MAX_BYTES):
        """Move the entries written in this process into the root; returns how many.

        Safe to call twice (the second finds nothing); never raises: a cache
        that cannot be written only costs the next run its compilation. Puts
        ``TF_XLA_FLAGS`` back as it was, so no later child process inherits
        this process's staging folder.
        """
        if self.restore:
            environ, flags = self.restore
            environ["TF_XLA_FLAGS"] = flags
            self.restore = ()
        if self.staging is None:
            return 0
        moved = 0
        with contextlib.suppress(OSError):
            for entry in self.staging.glob("*.pb"):
                if entry.name in self.linked:
                    continue  # a published entry, staged at the start
                os.replace(entry, self.root / entry.name)
                moved += 1
            _prune(self.root, max_bytes)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        self.published = (self.published or 0) + moved
        return moved


def set_up(enabled=True, environ=None, root=None, modules=None):
    """Point TensorFlow at the cache through ``environ["TF_XLA_FLAGS"]``; a :class:`CompileCache`.

    Call before TensorFlow is imported (``modules``, default ``sys.modules``,
    tells whether it was). Nothing is raised: when the cache cannot be used
    (turned off, TensorFlow already imported, ``TF_XLA_FLAGS`` a file of
    flags, a folder that cannot be created) the result says why.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if not enabled:
        return CompileCache(None, reason="--no-compile-cache")
    if "tensorflow" in modules:
        return CompileCache(None, reason="TensorFlow was imported before the cache was set")
    flags = environ.get("TF_XLA_FLAGS", "")
    if flags.strip() and not flags.lstrip().startswith("-"):
        return CompileCache(None, reason="TF_XLA_FLAGS names a file of flags; left as it is")
    if CACHE_FLAG in flags:
        directory = pathlib.Path(_flag_value(flags, CACHE_FLAG))
        return CompileCache(directory, reason="set by TF_XLA_FLAGS", external=True)
    root = cache_root(environ) if root is None else pathlib.Path(root)
    prefix = cache_prefix(environ)
    try:
        staging, linked = _stage(root, prefix)
    except OSError as error:
        return CompileCache(None, reason=f"{root}: {error.strerror or error}")
    cache = CompileCache(root, staging, prefix, len(linked), linked=linked)
    cache.restore = (environ, flags)
    environ["TF_XLA_FLAGS"] = " ".join(
        part
        for part in (flags.strip(), _flag(CACHE_FLAG, staging), _flag(PREFIX_FLAG, prefix))
        if part
    )
    return cache


def _flag(name, value):
    """``--name="value"`` with ``\\`` and ``"`` escaped, as XLA's flag parser reads it."""
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def _flag_value(flags, name):
    """The value of ``name=...`` in a flags string (quotes removed)."""
    value = flags.split(name + "=", 1)[1] if name + "=" in flags else ""
    if value[:1] in ("'", '"'):
        return value[1:].split(value[0], 1)[0]
    return value.split()[0] if value.split() else value


def _stage(root, prefix):
    """Create ``root`` and this process's staging folder with the published entries in it."""
    root.mkdir(parents=True, exist_ok=True)
    _remove_orphans(root)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=root))
    linked = set()
    for entry in root.glob(f"{prefix}__*.pb"):
        try:
            os.link(entry, staging / entry.name)
        except OSError:
            shutil.copy2(entry, staging / entry.name)
        linked.add(entry.name)
    return staging, frozenset(linked)


def _remove_orphans(root):
    """Remove the staging folders of processes that no longer run (POSIX only:
    on Windows ``os.kill(pid, 0)`` would end the process)."""
    if os.name != "posix":
        return
    for folder in root.glob(f"{_STAGING}*"):
        pid = folder.name[len(_STAGING) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def _prune(root, max_bytes):
    """Delete the oldest entries until ``root``'s entries take at most ``max_bytes``."""
    entries = sorted(root.glob("*.pb"), key=lambda path: path.stat().st_mtime, reverse=True)
    total = 0
    for entry in entries:
        total += entry.stat().st_size
        if total > max_bytes:
            entry.unlink(missing_ok=True)


def quiet_loads(cache, environ=None):
    """A context dropping TensorFlow's log lines about loading ``cache``'s entries
    (a no-op when the cache is off or ``TF_CPP_MIN_LOG_LEVEL`` already hides errors)."""
    from tfsoftmax.cli.stderr_filter import dropping_lines

    environ = os.environ if environ is None else environ
    level = environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    if not cache.active or (level.isdigit() and int(level) >= 3):
        return contextlib.nullcontext()
    return dropping_lines()


def run_with_cache(enabled, command):
    """``command(cache)`` with the cache set up first (before TensorFlow loads), its
    loading noise dropped, and its new entries published afterwards, even on error."""
    cache = set_up(enabled)
    try:
        with quiet_loads(cache):
            return command(cache)
    finally:
        cache.publish()
