"""The benchmark (:func:`run_bench`): rows, measures and the report, re-exported."""

from tfsoftmax.bench.calls import cli_runs, import_seconds, one_epoch_call
from tfsoftmax.bench.floors import gemm_rate, read_seconds, task_floors
from tfsoftmax.bench.goals import GOALS
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
from tfsoftmax.bench.rows import ALL_ROWS, CALL_EPOCHS, DESCRIPTIONS, EXTRA_ROWS, ROWS, BenchRow
from tfsoftmax.bench.run import run_bench

__all__ = [
    "ACCURACY_TARGET",
    "ALL_ROWS",
    "CALL_EPOCHS",
    "CLI_TARGET",
    "DESCRIPTIONS",
    "EXTRA_ROWS",
    "GOALS",
    "MICRO_SHAPES",
    "RATIO_TARGETS",
    "ROWS",
    "STEP_TARGET",
    "BenchResult",
    "BenchRow",
    "bytes_per_epoch",
    "cli_runs",
    "gemm_rate",
    "import_seconds",
    "memory_bandwidth",
    "micro_benchmark",
    "one_epoch_call",
    "read_seconds",
    "run_bench",
    "step_ratio",
    "task_floors",
    "time_cli_train",
]
