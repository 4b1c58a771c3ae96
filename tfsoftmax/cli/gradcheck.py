"""``tfsoftmax gradcheck``: every custom gradient against autodiff, finite differences, NumPy."""

from tfsoftmax.cli.arguments import positive_int
from tfsoftmax.constants import COMPARISON_DTYPES

__all__ = ["add_parser", "run"]


def add_parser(commands):
    parser = commands.add_parser(
        "gradcheck",
        help="check every custom gradient against autodiff, finite differences and NumPy",
        description="For each custom op (and the whole chain) and each dtype, the largest "
        "relative error of the custom gradient against autodiff of the built-in formula, "
        "finite differences and the NumPy reference's backward. Exits 1 if any is over its "
        "tolerance.",
    )
    parser.add_argument("--seed", type=int, default=0, help="draws the inputs")
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--features", type=positive_int, default=12)
    parser.add_argument("--classes", type=positive_int, default=10)
    parser.add_argument("--dtype", choices=COMPARISON_DTYPES, action="append", help="default: both")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.set_defaults(run=run)


def run(args):
    """Exit code 1 when any gradient is over its tolerance."""
    from tfsoftmax import gradcheck

    settings = dict(
        seed=args.seed,
        batch=args.batch,
        features=args.features,
        classes=args.classes,
        dtypes=tuple(args.dtype or COMPARISON_DTYPES),
    )
    rows = gradcheck.run_gradcheck(**settings)
    print(gradcheck.format_table(rows))
    if args.json:
        print(f"Wrote {gradcheck.to_json(rows, args.json, settings)}")
    return 0 if all(row.ok for row in rows) else 1
