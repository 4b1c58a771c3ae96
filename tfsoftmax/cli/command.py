"""The ``tfsoftmax`` command itself: its parser, and ``main``, which maps errors to exit codes.

Exit codes: 0 done; 1 a failure while running (no MNIST, a diverged run, the
implementations disagree, TensorFlow not installed — one line naming the fix);
2 a bad argument (one line); 130 interrupted. Parsing imports no TensorFlow
(see :mod:`tfsoftmax`), so ``--help``, ``--version`` and argument errors are
instant. While a command runs, its standard output goes through a
:class:`tfsoftmax.heartbeat.Heartbeat`: a step that prints nothing for 8 s
(importing TensorFlow on a busy machine, XLA compiling the first epoch) gets a
line ``... still working after "<its announcement>": N s``.
"""

import argparse
import contextlib
import logging
import os
import sys

from tfsoftmax import __version__
from tfsoftmax.cli import bench, compare, gradcheck, info, train
from tfsoftmax.cli.arguments import UsageError
from tfsoftmax.heartbeat import Heartbeat

__all__ = ["SUBCOMMANDS", "OneLineErrorParser", "build_parser", "entry_point", "main", "one_line"]

SUBCOMMANDS = (train, compare, gradcheck, bench, info)  # in the order --help lists them


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text):
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def build_parser():
    """The ``tfsoftmax`` argument parser, with every subcommand's parser added."""
    parser = OneLineErrorParser(
        prog="tfsoftmax",
        description="A hand-derived softmax classifier on MNIST: custom-gradient TensorFlow "
        "ops, Keras layers, a fast SGD trainer, and the proof that they agree with a NumPy "
        "reference and Keras built-ins.",
    )
    parser.add_argument("--version", action="version", version=f"tfsoftmax {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with Heartbeat(sys.stdout) as stream, contextlib.redirect_stdout(stream):
            return args.run(args)
    except (ValueError, UsageError) as error:
        print(f"tfsoftmax {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except ImportError as error:
        if error.name != "tensorflow":  # a bug or a broken install: keep the traceback
            raise
        print(f"tfsoftmax {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tfsoftmax {args.command}: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, FloatingPointError, OSError, MemoryError) as error:
        name = type(error).__name__
        print(f"tfsoftmax {args.command}: {name}: {one_line(error)}", file=sys.stderr)
        return 1


def entry_point(argv=None):
    """The ``tfsoftmax`` program (console script and ``python -m tfsoftmax``): :func:`main`,
    then the process ends with its exit code.

    Once a command has run, its outputs are written, closed and reported, and
    nothing is left to tear down, yet the interpreter's normal shutdown of a
    process that imported TensorFlow takes 1.4–1.7 s more on a 2-core CPU
    (measured from the last output line to the exit): the runtime's threads and
    every module are finalised one by one. So when TensorFlow was imported the
    program flushes standard output and error and Python's logging and leaves
    with ``os._exit``. ``main`` itself returns normally, for callers in the
    same process (tests, scripts).
    """
    code = main(argv)
    if sys.modules.get("tensorflow") is not None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        logging.shutdown()
        os._exit(code)
    return code
