"""Peak memory of a row: the process's peak resident set size during a call.

**Peak memory** is the process's peak resident set size during the row's
timed epochs (``VmHWM`` from ``/proc/self/status``, reset before each call by
writing 5 to ``/proc/self/clear_refs``), for NumPy and TensorFlow alike, and
its rise above the resident size at the start of the call. (TensorFlow's
``tf.config.experimental.get_memory_info("CPU:0")`` reports zeros on CPU, so it
is not used.) Without ``/proc`` the process-wide ``ru_maxrss`` is reported
instead (``memory_method``).
"""

import resource


class PeakMemory:
    """``with PeakMemory() as m: ...`` -> ``m.peak``, ``m.start`` (bytes), ``m.method``."""

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


def _status_bytes(field):
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/self/status`` in bytes; None without it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False
