"""``tfsoftmax compare``: the NumPy reference, the custom ops and Keras built-ins side by side.

It talks while it works: a line before each stage (TensorFlow's import, MNIST,
each implementation), each implementation's epochs as they finish, then the
table, the wall time and the files written. The NumPy reference runs with one
BLAS thread (:mod:`tfsoftmax.blas`).
"""

import os
import time

from tfsoftmax.cli.arguments import add_training_options, positive_int
from tfsoftmax.cli.data import load_data

__all__ = ["add_parser", "run"]


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
    parser.set_defaults(run=run)


def run(args):
    """Exit code 1 when the three implementations do not agree."""
    started = time.perf_counter()
    print("Importing TensorFlow and Keras ...", flush=True)
    from tfsoftmax import _tf, plots  # noqa: F401  (TensorFlow's import time, said above)
    from tfsoftmax.compare import compare

    print(f"Loading MNIST ({args.dtype}) ...", flush=True)
    data = load_data(args.dtype, args.limit)
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
    print()
    print(result.table(), flush=True)
    print(f"Writing the figures to {args.out} ...", flush=True)
    written = [
        plots.plot_loss_curves(
            {
                "numpy reference": result.losses["numpy"],
                "custom ops": result.losses["custom"],
                "keras built-ins": result.losses["keras"],
            },
            os.path.join(args.out, "loss_curves.png"),
            tolerance=result.tolerance,
        )
    ]
    written += plots.write_training_figures(
        args.out,
        losses=result.losses["custom"],
        weights=result.final_weights["custom"],
        images=data.x_test,
        y_true=data.labels_test,
        y_pred=result.test_predictions["custom"],
    )
    if args.json:
        written.append(result.to_json(args.json))
    print(f"Wall time: {time.perf_counter() - started:.1f}s")
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0 if result.agree else 1
