"""The issue's targets, and which of them a benchmark result meets.

Each target is a value that must not exceed a limit: three ratios of median
epoch times (same-round medians, see :meth:`BenchResult.ratio
<tfsoftmax.bench.results.BenchResult.ratio>`), the command-line run against 20
epochs of ``custom-jacobian``, the accuracy difference, and the SGD step ratio.
A target is reported only if the run measured what it needs.
"""

#: ``(name, numerator, denominator, limit)`` on median epoch times.
RATIO_TARGETS = (
    ("custom-jacobian <= 0.25 x keras-fit", "custom-jacobian", "keras-fit", 0.25),
    ("custom-jacobian <= 1.0 x numpy-vectorized", "custom-jacobian", "numpy-vectorized", 1.0),
    ("custom-jacobian <= 1.15 x builtin-loop", "custom-jacobian", "builtin-loop", 1.15),
)
CLI_TARGET = 1.5  # tfsoftmax train (20 epochs, start-up included) <= 1.5 x 20 epochs of row 3
ACCURACY_TARGET = 0.002  # |test accuracy custom - numpy| after the same 20 epochs
STEP_TARGET = 1.5  # custom-op SGD step <= 1.5 x built-in step


def measured_targets(result):
    """The targets ``result`` (a :class:`~tfsoftmax.bench.results.BenchResult`) measured.

    One dict each: ``name``, ``value``, ``limit``, ``met`` and ``miss_factor``
    (``value / limit`` when missed, else None).
    """
    results = []
    for name, numerator, denominator, limit in RATIO_TARGETS:
        value = result.ratio(numerator, denominator)
        if value is not None:
            results.append(_target(name, value, limit))
    if result.cli is not None and "custom-jacobian" in result.rows:
        cli = result.cli
        baseline = cli["epochs"] * result.rows["custom-jacobian"].median_seconds
        results.append(
            _target(
                f"tfsoftmax train ({cli['epochs']} epochs, start-up included) <= "
                f"{CLI_TARGET} x {cli['epochs']} epochs of custom-jacobian",
                cli["wall_seconds"] / baseline,
                CLI_TARGET,
            )
        )
    if result.accuracy is not None:
        results.append(
            _target(
                f"|test accuracy custom-jacobian - numpy| after "
                f"{result.accuracy['epochs']} epochs <= {ACCURACY_TARGET}",
                abs(result.accuracy["difference"]),
                ACCURACY_TARGET,
            )
        )
    if result.step is not None:
        results.append(
            _target(
                f"custom-op step <= {STEP_TARGET} x built-in step",
                result.step["ratio"],
                STEP_TARGET,
            )
        )
    return results


def _target(name, value, limit):
    return {
        "name": name,
        "value": float(value),
        "limit": float(limit),
        "met": bool(value <= limit),
        "miss_factor": float(value / limit) if value > limit else None,
    }
