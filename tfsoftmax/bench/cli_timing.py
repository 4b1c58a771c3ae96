"""The command-line run: ``tfsoftmax train`` timed from outside, start-up included.

It times ``python -m tfsoftmax train`` (the notebook's 20 epochs, start-up,
imports, data loading, tracing and writing included) in a subprocess, against
20 epochs of ``custom-jacobian`` (target:
:data:`tfsoftmax.bench.targets.CLI_TARGET`).
"""

import os
import subprocess
import sys
import tempfile
import time


def time_cli_train(epochs=20, extra_args=(), timeout=600):
    """Wall time of ``python -m tfsoftmax train`` in a fresh process (start-up included)."""
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-") as out:
        command = [
            sys.executable,
            "-m",
            "tfsoftmax",
            "train",
            "--epochs",
            str(epochs),
            "--verbose",
            "0",
            "--out",
            out,
            *extra_args,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tfsoftmax train failed ({done.returncode}): {done.stderr[-500:]}")
    report = [line for line in done.stdout.splitlines() if line.startswith(("Time", "Test"))]
    shown = ["python -m tfsoftmax train", "--epochs", str(epochs), *extra_args]
    return {
        "command": " ".join(shown),
        "epochs": epochs,
        "wall_seconds": wall,
        "report": "; ".join(report),
    }
