"""The process's resident memory, now and at its peak (Linux ``/proc``; no TensorFlow).

* ``resident_bytes()`` -- ``VmRSS`` of ``/proc/self/status``;
* ``PeakMemory`` -- the peak resident size over a block: ``VmHWM`` after the
  kernel's high-water mark was reset at the block's start (writing ``5`` to
  ``/proc/self/clear_refs``), and its rise over the resident size at the
  start, ``rise = peak - start``. Without ``/proc`` the process-lifetime
  ``ru_maxrss`` is all there is (``method`` says which);
  ``tf.config.experimental.get_memory_info`` reports zeros on CPU.

>>> with PeakMemory() as memory:
...     block = bytearray(8 * 2**20)
>>> memory.peak >= (memory.start or 0)
True
"""

import contextlib
import resource

__all__ = ["PeakMemory", "resident_bytes"]


def resident_bytes():
    """The resident set size in bytes (``VmRSS``); None without ``/proc``."""
    return _status_bytes("VmRSS")


def _status_bytes(field):
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/self/status`` in bytes; None without it."""
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory() as m: ...`` -> ``m.peak``, ``m.start``, ``m.rise`` (bytes), ``m.method``.

    ``start`` is None without ``/proc``.
    """

    def __enter__(self):
        self.reset = _reset_peak_rss()
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc):
        peak = _status_bytes("VmHWM") if self.reset else None
        if peak is None:
            self.method = "ru_maxrss (process lifetime)"
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            self.method = "VmHWM reset per call"
            self.peak = peak
        return False

    @property
    def rise(self):
        """``peak - start``: what the block added at its peak."""
        return self.peak - (self.start or 0)
