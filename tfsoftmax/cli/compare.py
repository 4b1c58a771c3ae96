"""``tfsoftmax compare``: the NumPy reference, the custom ops and Keras built-ins side by side.

It talks while it works: a line before each stage (TensorFlow's import, MNIST,
each implementation), each implementation's epochs as they finish, then the
table, the wall time, its phases (:mod:`tfsoftmax.cli.timing`) and the files
written. The NumPy reference runs with one BLAS thread (:mod:`tfsoftmax.blas`);
the compiled trainers keep their XLA code between runs
(:mod:`tfsoftmax.cli.compile_cache`).
"""

import contextlib
import json
import os
import re
import sys

from tfsoftmax.cli import compile_cache
from tfsoftmax.cli.arguments import add_compile_cache_option, add_training_options, positive_int
from tfsoftmax.cli.data import load_data
from tfsoftmax.cli.timing import PhaseClock, compile_estimate, describe_phases

__all__ = ["EpochLineRecorder", "add_parser", "run"]


def add_parser(commands):
    parser = commands.add_parser(
        "compare",
        help="train the NumPy reference, the custom ops and Keras built-ins side by side",
        description="From identical initial weights and batch order, train the NumPy "
        "reference, the custom ops and Keras built-ins; print each one's epochs as they "
        "finish, then how far apart their gradients, weights, loss curves and accuracies "
        "are, and write the figures. Exits 1 if the loss curves disagree beyond the "
        "tolerance (1e-9 in float64, 1e-4 in float32).",
    )
    add_training_options(parser, default_dtype="float64")
    parser.add_argument(
        "--gradient-steps",
        type=positive_int,
        default=5,
        help="compare gradients over this many first steps (default: %(default)s)",
    )
    parser.add_argument(
        "--out", default="out/compare", help="figures folder (default: %(default)s)"
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results as JSON, with versions, a UTC timestamp and the "
        "definitions of every number (default: no JSON)",
    )
    add_compile_cache_option(parser)
    parser.set_defaults(run=run)


def run(args):
    """Exit code 1 when the three implementations do not agree."""
    return compile_cache.run_with_cache(not args.no_compile_cache, lambda cache: _run(args, cache))


def _run(args, cache):
    print("Importing TensorFlow and Keras ...", flush=True)
    from tfsoftmax import _tf, plots  # noqa: F401  (TensorFlow's import time, said above)
    from tfsoftmax.compare import compare

    clock = PhaseClock()
    print(f"Loading MNIST ({args.dtype}) ...", flush=True)
    data = load_data(args.dtype, args.limit)
    clock.close("data")
    with EpochLineRecorder() as progress:
        result = compare(
            data,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            dtype=args.dtype,
            softmax_method=args.softmax_method,
            gradient_steps=args.gradient_steps,
            verbose=1,
        )
    clock.close("training")
    clock.split_compile("training", progress.compile_seconds())
    cache.publish()  # nothing compiles after the training: the JSON can count the new entries
    print()
    print(result.table(), flush=True)
    print(f"Writing the figures to {args.out} ...", flush=True)
    written = _write_figures(args.out, result, data, plots)
    if args.json:
        clock.close("write")
        written.append(_write_json(args.json, result, clock.to_dict(), cache))
    clock.close("write")
    phases = clock.to_dict()
    print(f"Wall time: {phases['total']:.1f}s")
    print(
        f"Time: {describe_phases(phases)} (import: since the command started; compile: "
        "each compiled trainer's first epoch - its median epoch)"
    )
    print(f"XLA compilation cache: {cache.describe()}")
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0 if result.agree else 1


def _write_figures(out, result, data, plots):
    """The three loss curves and the custom ops' training figures, in ``out``."""
    written = [
        plots.plot_loss_curves(
            {
                "numpy reference": result.losses["numpy"],
                "custom ops": result.losses["custom"],
                "keras built-ins": result.losses["keras"],
            },
            os.path.join(out, "loss_curves.png"),
            tolerance=result.tolerance,
        )
    ]
    written += plots.write_training_figures(
        out,
        losses=result.losses["custom"],
        weights=result.final_weights["custom"],
        images=data.x_test,
        y_true=data.labels_test,
        y_pred=result.test_predictions["custom"],
    )
    return written


def _write_json(path, result, phases, cache):
    """The comparison's JSON plus ``phase_seconds`` and ``compile_cache``, atomically."""
    from tfsoftmax.atomic import write_text

    payload = {**result.to_dict(), "phase_seconds": phases, "compile_cache": cache.to_dict()}
    return write_text(path, json.dumps(payload, indent=2) + "\n")


class EpochLineRecorder(contextlib.AbstractContextManager):
    """Passes stdout through and keeps the compiled trainers' epoch seconds.

    :func:`tfsoftmax.compare.compare` prints ``  custom ops       epoch 3/20
    loss 0.681321    0.11s`` per epoch (``verbose=1``); the first epoch of each
    compiled trainer (custom ops, keras built-ins) holds its tracing and XLA
    compilation.
    """

    LINE = re.compile(
        r"^\s+(custom ops|keras built-ins)\s+epoch\s+\d+/\d+\s+loss\s+\S+\s+([\d.]+)s$"
    )

    def __enter__(self):
        self.epochs, self.pending, self.stdout = {}, "", sys.stdout
        sys.stdout = self
        return self

    def __exit__(self, *exc):
        sys.stdout = self.stdout
        return False

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            match = self.LINE.match(line)
            if match:
                self.epochs.setdefault(match.group(1), []).append(float(match.group(2)))
        return self.stdout.write(text)

    def flush(self):
        self.stdout.flush()

    def compile_seconds(self):
        """Sum over the compiled trainers of first epoch - median epoch; None if unknown."""
        estimates = [compile_estimate(seconds) for seconds in self.epochs.values()]
        if not estimates or None in estimates:
            return None
        return sum(estimates)
