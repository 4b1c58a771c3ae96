"""The ``tfsoftmax`` command: train, compare, gradcheck and more.

Every bad argument ends in one line on stderr and exit code 2, never a
traceback; a failure while running (no MNIST available, a diverged run) ends
in one line and exit code 1.

:mod:`~tfsoftmax.cli.command` is the command (its parser and ``main``);
:mod:`~tfsoftmax.cli.arguments` holds what the subcommands share; each
subcommand is a module with ``add_parser(commands)`` and ``run(args)``
(:mod:`~tfsoftmax.cli.train`, ``compare``, ``gradcheck``, ``bench``, ``info``),
which imports TensorFlow only in ``run``, so ``--help`` stays fast.
"""

from tfsoftmax.cli.arguments import UsageError
from tfsoftmax.cli.command import build_parser, entry_point, main

__all__ = ["UsageError", "build_parser", "entry_point", "main"]
