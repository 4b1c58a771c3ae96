"""``tfsoftmax bench``: time every way to train the classifier on MNIST, in one process."""

from tfsoftmax.cli.arguments import UsageError, non_negative_int, positive_float, positive_int
from tfsoftmax.cli.data import load_data
from tfsoftmax.constants import COMPARISON_DTYPES, NOTEBOOK

__all__ = ["add_parser", "run"]

#: Options passed on to :func:`tfsoftmax.bench.run_bench` under their own names.
_SAME_NAMED = (
    "epochs",
    "batch_size",
    "learning_rate",
    "dtype",
    "seed",
    "loop_epochs",
    "accuracy_epochs",
    "cli_epochs",
    "limit",
)


def add_parser(commands):
    parser = commands.add_parser(
        "bench",
        help="time the NumPy reference, the custom ops, built-ins and model.fit on MNIST",
        description="In one process, on MNIST: median seconds per epoch and samples per second "
        "of the NumPy reference (vectorized and per-sample loop), train_sgd with the custom "
        "ops (jacobian and vjp) and with built-in ops, model.fit (Keras' defaults, and at its "
        "best: jit_compile=True, steps_per_execution=300), and, where they can run, train_sgd "
        "on uint8 features, an idiomatic JAX epoch (lax.scan) and eager PyTorch; each row's "
        "ratio to model.fit, peak memory, bytes per epoch against the measured memory "
        "bandwidth, the task's floors (read X once; the two matmuls at the measured GEMM "
        "rate), an op-level softmax micro-benchmark, the accuracy check, a one-epoch call "
        "against a steady epoch, and `tfsoftmax train` cold and warm (compilation cache); "
        "then each goal (e.g. custom-jacobian <= 0.25 x keras-fit) and whether the run met "
        "it. With the defaults it takes about 2 minutes on 2 quiet cores, 4-5.5 when shared; "
        "--no-micro, --no-step, --cli-epochs 0 and --accuracy-epochs 0 shorten it.",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        help="timed epochs per row, after one warm-up epoch (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=NOTEBOOK["batch_size"])
    parser.add_argument("--learning-rate", type=positive_float, default=NOTEBOOK["learning_rate"])
    parser.add_argument("--dtype", choices=COMPARISON_DTYPES, default="float32")
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
        "--rows",
        nargs="+",
        metavar="ROW",
        help="run only these rows (default: all that can run here); rows: "
        "numpy-vectorized numpy-loop custom-jacobian custom-vjp builtin-loop keras-fit-best "
        "keras-fit custom-uint8 jax-scan torch-eager",
    )
    _add_measure_options(parser)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.set_defaults(run=run)


def _add_measure_options(parser):
    """The options of the measures after the rows (each can be skipped)."""
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
    parser.add_argument(
        "--no-floors", action="store_true", help="skip the task's floors (read, matmul)"
    )
    parser.add_argument(
        "--call-repeats",
        type=non_negative_int,
        default=5,
        help="one-epoch train_sgd calls, each timed against the steady epoch after it, 0 "
        "skips them "
        "(default: %(default)s)",
    )


def run(args):
    from tfsoftmax import bench

    rows = tuple(args.rows) if args.rows else bench.ALL_ROWS
    unknown = [row for row in rows if row not in bench.ALL_ROWS]
    if unknown:
        choices = ", ".join(bench.ALL_ROWS)
        raise UsageError(f"unknown rows {', '.join(unknown)}; choose from {choices}")
    data = load_data(args.dtype)  # all of it: run_bench applies --limit itself
    print(
        f"Benchmarking {len(rows)} rows ({args.epochs} timed epochs each, interleaved), then "
        "the measures; the table comes at the end (2-5 minutes with the defaults) ...",
        flush=True,
    )
    options = vars(args)
    result = bench.run_bench(
        data,
        **{name: options[name] for name in _SAME_NAMED},
        rows=rows,
        micro=not args.no_micro,
        step=not args.no_step,
        floors=not args.no_floors,
        call_repeats=args.call_repeats,
    )
    print(result.table())
    if args.json:
        print(f"Wrote {result.to_json(args.json)}")
    return 0
