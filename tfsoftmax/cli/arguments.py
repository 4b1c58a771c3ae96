"""What the subcommands share: argument types, the notebook's defaults, the training options.

A bad value is rejected while parsing (argparse then exits 2 with one line);
a bad *combination* of values, found after parsing, raises :class:`UsageError`,
which ``main`` reports the same way. These types parse command-line text; the
library's own checks on Python values are in :mod:`tfsoftmax.validation`.
"""

import argparse
import math

from tfsoftmax.constants import COMPARISON_DTYPES, NOTEBOOK, SOFTMAX_METHODS

__all__ = [
    "UsageError",
    "add_compile_cache_option",
    "add_training_options",
    "non_negative_int",
    "positive_float",
    "positive_int",
]


class UsageError(Exception):
    """A bad argument found after parsing; reported with exit code 2."""


def _argument_type(convert, accept, expected, unparsable=None):
    """An argparse ``type=``: ``convert`` the text, then keep the value if ``accept`` does.

    Either failure reads ``expected <expected>, got <what was given>``
    (``unparsable`` replaces ``expected`` when the text does not convert).
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            message = f"expected {unparsable or expected}, got {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if not accept(value):
            given = value if isinstance(value, int) else repr(text)  # 'nan', '-1' as typed
            raise argparse.ArgumentTypeError(f"expected {expected}, got {given}")
        return value

    return parse


positive_int = _argument_type(int, lambda value: value >= 1, "a positive integer")
non_negative_int = _argument_type(int, lambda value: value >= 0, "an integer >= 0")
positive_float = _argument_type(
    float,
    lambda value: math.isfinite(value) and value > 0,
    "a positive finite number",
    unparsable="a positive number",
)


def add_training_options(parser, default_dtype):
    """The options of one SGD run (train and compare), with the notebook's defaults.

    Every help text shows its default (``%(default)s``): ``--dtype``'s differs
    between ``train`` (float32) and ``compare`` (float64).
    """
    group = parser.add_argument_group("training (the notebook's settings by default)")
    group.add_argument(
        "--epochs",
        type=positive_int,
        default=NOTEBOOK["epochs"],
        help="passes over the training set (default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=NOTEBOOK["batch_size"],
        help="samples per SGD step (default: %(default)s)",
    )
    group.add_argument(
        "--learning-rate",
        type=positive_float,
        default=NOTEBOOK["learning_rate"],
        help="SGD step size, w <- w - lr * grad (default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=non_negative_int,
        default=NOTEBOOK["seed"],
        help="draws the initial weights and the batch order (default: %(default)s)",
    )
    group.add_argument(
        "--dtype",
        choices=COMPARISON_DTYPES,
        default=default_dtype,
        help="floating-point type of data and weights (default: %(default)s)",
    )
    group.add_argument(
        "--softmax-method",
        choices=SOFTMAX_METHODS,
        default="jacobian",
        help="backward of the custom softmax op (default: %(default)s)",
    )
    group.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="train on the first N training samples only, a quick look (default: all 60000)",
    )


def add_compile_cache_option(parser):
    """``--no-compile-cache``: train and compare keep XLA's compiled code between runs."""
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep XLA's compiled training loop between runs (default: kept in "
        "$XDG_CACHE_HOME/tfsoftmax/xla, else ~/.cache/tfsoftmax/xla; a later run with the "
        "same shapes then skips XLA's compilation)",
    )
