"""``tfsoftmax bench``: time every way to train the classifier on MNIST, in one process."""

from tfsoftmax.cli.arguments import (
    DTYPES,
    NOTEBOOK,
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
)
from tfsoftmax.cli.data import load_data


def add_parser(commands):
    parser = commands.add_parser(
        "bench",
        help="time the NumPy reference, the custom ops, built-ins and model.fit on MNIST",
        description="In one process, on MNIST: median seconds per epoch and samples per second "
        "of the NumPy reference (vectorized and per-sample loop), train_sgd with the custom "
        "ops (jacobian and vjp) and with built-in ops, and model.fit; each row's ratio to "
        "model.fit, peak memory, bytes per epoch against the measured memory bandwidth, an "
        "op-level softmax micro-benchmark, the accuracy check and the start-up of "
        "`tfsoftmax train`, with the issue's targets.",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=5,
        help="timed epochs per row, after one warm-up epoch (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=NOTEBOOK["batch_size"])
    parser.add_argument("--learning-rate", type=positive_float, default=NOTEBOOK["learning_rate"])
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--seed", type=int, default=NOTEBOOK["seed"])
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="use the first N training samples"
    )
    parser.add_argument(
        "--loop-epochs",
        type=positive_int,
        default=1,
        help="epochs of the per-sample NumPy loop (default: %(default)s)",
    )
    parser.add_argument(
        "--rows", nargs="+", metavar="ROW", help="run only these rows (default: all six)"
    )
    parser.add_argument(
        "--accuracy-epochs",
        type=non_negative_int,
        default=NOTEBOOK["epochs"],
        help="epochs of the accuracy check, 0 skips it (default: %(default)s)",
    )
    parser.add_argument(
        "--cli-epochs",
        type=non_negative_int,
        default=NOTEBOOK["epochs"],
        help="time `tfsoftmax train` with this many epochs in a fresh process, 0 skips it "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the op micro-benchmark")
    parser.add_argument("--no-step", action="store_true", help="skip the step-ratio measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.set_defaults(run=run)


def run(args):
    from tfsoftmax import bench

    rows = tuple(args.rows) if args.rows else bench.ROWS
    unknown = [row for row in rows if row not in bench.ROWS]
    if unknown:
        raise UsageError(f"unknown rows {', '.join(unknown)}; choose from {', '.join(bench.ROWS)}")
    data = load_data(args.dtype)  # all of it: run_bench applies --limit itself
    result = bench.run_bench(
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        dtype=args.dtype,
        seed=args.seed,
        rows=rows,
        loop_epochs=args.loop_epochs,
        micro=not args.no_micro,
        step=not args.no_step,
        accuracy_epochs=args.accuracy_epochs,
        cli_epochs=args.cli_epochs,
        limit=args.limit,
    )
    print(result.table())
    if args.json:
        print(f"Wrote {result.to_json(args.json)}")
    return 0
