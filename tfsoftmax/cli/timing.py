"""The times ``tfsoftmax train`` and ``compare`` report: start-up, then one phase after another.

The phases are contiguous, so they add up to the command's wall time::

    import   process start -> TensorFlow, Keras and tfsoftmax imported (Python included)
    data     MNIST loaded and preprocessed (and the initial weights drawn)
    compile  tracing + XLA compilation, estimated per trainer as
             first epoch - median of the later epochs (None with one epoch)
    train    the training calls' wall time - compile
    write    predictions, model, weights, history, figures

``compile + train`` is exactly the time spent training; how it splits is an
estimate, because compilation happens inside the first epoch's call.
"""

import math
import statistics
import time

__all__ = [
    "PHASES",
    "PhaseClock",
    "compile_estimate",
    "describe_epoch_times",
    "describe_phases",
    "seconds_since_process_start",
]

PHASES = ("import", "data", "compile", "train", "write")


def seconds_since_process_start():
    """Wall seconds since the process began importing tfsoftmax — its start, less the
    interpreter's own start-up (~0.05 s).

    Not the process's age from ``/proc/self/stat``: a shell running ``a && tfsoftmax
    ...`` execs the last command in its own process, whose age then counts ``a`` too
    (a README main command's 100 s of pip install showed up as "import").
    """
    import tfsoftmax

    return time.perf_counter() - tfsoftmax.IMPORT_STARTED


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


def compile_estimate(epoch_seconds):
    """``max(0, first epoch - median of the others)``; None with fewer than two epochs."""
    seconds = [s for s in epoch_seconds if math.isfinite(s)]
    if len(seconds) < 2:
        return None
    return max(0.0, seconds[0] - statistics.median(seconds[1:]))


class PhaseClock:
    """Contiguous phases: :meth:`close` ends the phase running since the last close.

    ``import`` is the time from the command's start
    (:func:`seconds_since_process_start`) to the clock's creation.
    """

    def __init__(self):
        self.last = time.perf_counter()
        self.seconds = {"import": seconds_since_process_start()}

    def close(self, phase):
        """End ``phase`` now; returns its seconds."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now
        return self.seconds[phase]

    def split_compile(self, training_phase, compile_seconds):
        """Split the closed ``training_phase`` into ``compile`` and ``train``."""
        total = self.seconds.pop(training_phase)
        compiled = None if compile_seconds is None else min(compile_seconds, total)
        self.seconds["compile"] = compiled
        self.seconds["train"] = total - (compiled or 0.0)

    def to_dict(self):
        """``{phase: seconds}`` in :data:`PHASES` order (None: not separated), plus ``total``."""
        phases = {phase: self.seconds.get(phase) for phase in PHASES}
        phases["total"] = sum(value for value in phases.values() if value is not None)
        return phases


def describe_phases(phases):
    """``import 4.1s, data 0.3s, compile 0.6s, train 2.4s, write 1.2s; total 8.6s``."""
    parts = []
    for phase in PHASES:
        value = phases.get(phase)
        if value is None:
            parts.append(f"{phase} -" if phase == "compile" else f"{phase} ?")
        else:
            parts.append(f"{phase} {value:.2f}s")
    return ", ".join(parts) + f"; total {phases['total']:.2f}s"
