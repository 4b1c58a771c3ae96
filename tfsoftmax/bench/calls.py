"""What a *call* costs beyond its epochs: ``train_sgd``'s per-call overhead, and the command line.

* **One-epoch call** (:func:`one_epoch_call`): the wall time of
  ``train_sgd(..., epochs=1)`` on a model whose loop is already compiled,
  against a steady epoch of the same model measured right after it (the second
  epoch of a 2-epoch call), so both see the same machine state::

      ratio = median over repeats of (wall of a 1-epoch call / the steady epoch after it)

  It holds what every call pays once: input checks, conversion, the first
  epoch's gather (not overlapped with a previous epoch). (Against the row's
  median epoch from the rounds instead, three calls of ~0.1 s swung the ratio
  from 0.73 to 1.83 between runs on a shared machine.)
* **Command line** (:func:`time_cli_train`, :func:`cli_runs`): ``python -m
  tfsoftmax train`` in a fresh process, start-up included, with its own
  phase times and memory read from the ``history.json`` it writes.
  :func:`cli_runs` runs it twice on an empty XLA compilation cache of its own
  (``XDG_CACHE_HOME`` set to a temporary folder), cold then warm, and times
  ``import tensorflow, keras`` alone in a third process::

      warm ratio = warm wall / (import seconds + n × steady epoch)
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from tfsoftmax.constants import EPOCHS

__all__ = ["cli_runs", "import_seconds", "one_epoch_call", "time_cli_train"]


def one_epoch_call(model, x, y, loss, settings, steady_seconds, repeats=5, seed=0):
    """``repeats`` pairs of a one-epoch ``train_sgd`` call and the steady epoch right
    after it; the median of the pairs' ratios (``steady_seconds``, the row's median
    epoch from the rounds, is kept for the report)."""
    from tfsoftmax.training import train_sgd

    def call(epochs, repeat):
        started = time.perf_counter()
        history = train_sgd(
            model,
            x,
            y,
            epochs=epochs,
            batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            seed=seed + 100 + repeat,
            loss=loss,
            verbose=0,
        )
        return time.perf_counter() - started, history.epoch_seconds

    walls, steady, ratios = [], [], []
    for repeat in range(repeats):
        wall, _ = call(1, repeat)
        _, epoch_seconds = call(2, repeat)
        walls.append(wall)
        steady.append(epoch_seconds[-1])
        ratios.append(wall / epoch_seconds[-1])
    return {
        "call_seconds": walls,
        "median_call_seconds": statistics.median(walls),
        "adjacent_steady_seconds": steady,
        "steady_epoch_seconds": steady_seconds,
        "ratio": statistics.median(ratios),
    }


def _environment(**more):
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level, **more}


def time_cli_train(epochs=EPOCHS, extra_args=(), timeout=600, env=None):
    """Wall time of ``python -m tfsoftmax train`` in a fresh process (start-up included),
    its report lines, and the ``phase_seconds``, ``memory`` and ``compile_cache`` of its
    ``history.json``."""
    arguments = ["train", "--epochs", str(epochs), "--verbose", "0", *extra_args]
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-") as out:
        command = [sys.executable, "-m", "tfsoftmax", *arguments, "--out", out]
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=env or _environment(), timeout=timeout
        )
        wall = time.perf_counter() - started
        history = pathlib.Path(out, "history.json")
        params = json.loads(history.read_text())["params"] if history.exists() else {}
    if done.returncode != 0:
        raise RuntimeError(f"tfsoftmax train failed ({done.returncode}): {done.stderr[-500:]}")
    report = [line for line in done.stdout.splitlines() if line.startswith(("Time", "Test"))]
    return {
        "command": " ".join(["python -m tfsoftmax train", "--epochs", str(epochs), *extra_args]),
        "epochs": epochs,
        "wall_seconds": wall,
        "report": "; ".join(report),
        "phase_seconds": params.get("phase_seconds"),
        "memory": params.get("memory"),
        "compile_cache": params.get("compile_cache"),
    }


def import_seconds(timeout=300):
    """Wall time of ``python -c "import tensorflow, keras"`` in a fresh process."""
    command = [sys.executable, "-c", "import tensorflow, keras"]
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, env=_environment(), timeout=timeout, check=True)
    return time.perf_counter() - started


def cli_runs(epochs=EPOCHS, extra_args=(), timeout=600):
    """``tfsoftmax train`` cold, then warm, on a compilation cache of its own; and the import.

    The warm run's figures are the top-level keys (``wall_seconds`` ...), as
    :func:`time_cli_train` returns them; ``cold`` holds the first run's.
    """
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-cache-") as cache:
        env = _environment(XDG_CACHE_HOME=cache)
        cold = time_cli_train(epochs, extra_args, timeout, env)
        warm = time_cli_train(epochs, extra_args, timeout, env)
    return {
        **warm,
        "cold": cold,
        "cold_wall_seconds": cold["wall_seconds"],
        "import_seconds": import_seconds(timeout),
    }
