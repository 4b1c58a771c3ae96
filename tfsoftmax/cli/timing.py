"""The times ``tfsoftmax train`` reports: the process's start-up and the epochs'."""

import math
import os

__all__ = ["describe_epoch_times", "seconds_since_process_start"]


def seconds_since_process_start():
    """Wall seconds since this process started (Linux ``/proc``), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
        return now - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def describe_epoch_times(seconds):
    """`` (first epoch Xs with tracing and compilation, then Ys/epoch)`` when timed."""
    seconds = [s for s in seconds if math.isfinite(s)]
    if len(seconds) < 2:
        return ""
    rest = sorted(seconds[1:])
    return (
        f" (first epoch {seconds[0]:.2f}s with tracing and compilation, "
        f"then median {rest[len(rest) // 2]:.3f}s/epoch)"
    )
