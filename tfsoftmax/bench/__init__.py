"""The benchmark (:func:`run_bench`): rows, measures and the report, re-exported."""

from tfsoftmax.bench.measures import (
    MICRO_SHAPES,
    bytes_per_epoch,
    memory_bandwidth,
    micro_benchmark,
    step_ratio,
    time_cli_train,
)
from tfsoftmax.bench.report import (
    ACCURACY_TARGET,
    CLI_TARGET,
    RATIO_TARGETS,
    STEP_TARGET,
    BenchResult,
)
from tfsoftmax.bench.rows import CALL_EPOCHS, DESCRIPTIONS, ROWS, BenchRow
from tfsoftmax.bench.run import run_bench

__all__ = [
    "ACCURACY_TARGET",
    "CALL_EPOCHS",
    "CLI_TARGET",
    "DESCRIPTIONS",
    "MICRO_SHAPES",
    "RATIO_TARGETS",
    "ROWS",
    "STEP_TARGET",
    "BenchResult",
    "BenchRow",
    "bytes_per_epoch",
    "memory_bandwidth",
    "micro_benchmark",
    "run_bench",
    "step_ratio",
    "time_cli_train",
]
