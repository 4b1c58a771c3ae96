"""What a benchmark run measured: :class:`BenchResult`, its ratios and its JSON layout.

The rows' own records are :class:`~tfsoftmax.bench.rows.BenchRow`; the
targets are judged in :mod:`tfsoftmax.bench.targets` and the plain-text
report is laid out in :mod:`tfsoftmax.bench.table`.
"""

import dataclasses
import json
import statistics

from tfsoftmax.bench.table import format_table
from tfsoftmax.bench.targets import measured_targets
from tfsoftmax.history import write_text_atomically


@dataclasses.dataclass
class BenchResult:
    """Everything :func:`~tfsoftmax.bench.run_bench` measured; ``to_dict`` is the JSON layout."""

    settings: dict
    machine: dict
    rows: dict  # name -> BenchRow
    bytes_per_epoch: dict
    bandwidth_bytes_per_second: float
    micro: list = dataclasses.field(default_factory=list)
    accuracy: dict | None = None
    cli: dict | None = None
    step: dict | None = None
    memory_method: str = ""

    def ratio(self, numerator, denominator):
        """Median over the rounds of ``numerator``'s epoch / ``denominator``'s, same round.

        The rows of one round ran back to back, so load from other processes
        cancels in each round's ratio. (Rows not in the rounds, such as
        ``numpy-loop``: the ratio of the medians.)
        """
        if numerator not in self.rows or denominator not in self.rows:
            return None
        a, b = self.rows[numerator], self.rows[denominator]
        if a.in_rounds and b.in_rounds and len(a.epoch_seconds) == len(b.epoch_seconds):
            return statistics.median(
                x / y for x, y in zip(a.epoch_seconds, b.epoch_seconds, strict=True)
            )
        return a.median_seconds / b.median_seconds

    def targets(self):
        """The issue's targets that this run measured: value, limit, met, margin."""
        return measured_targets(self)

    @property
    def epoch_floor_seconds(self):
        """Bytes a ``train_sgd`` epoch moves through memory over the measured bandwidth."""
        return self.bytes_per_epoch["memory_total"] / self.bandwidth_bytes_per_second

    def bandwidth_fraction(self, row):
        """The epoch floor over ``row``'s median epoch (``train_sgd`` rows; else None)."""
        if not row.name.startswith(("custom", "builtin")):
            return None
        return self.epoch_floor_seconds / row.median_seconds

    def to_dict(self):
        fit = self.rows.get("keras-fit")
        return {
            "settings": self.settings,
            "machine": self.machine,
            "memory_method": self.memory_method,
            "rows": [
                {
                    **row.to_dict(),
                    "ratio_to_fit": self.ratio(row.name, "keras-fit") if fit else None,
                    "bandwidth_fraction": self.bandwidth_fraction(row),
                }
                for row in self.rows.values()
            ],
            "bytes_per_epoch": self.bytes_per_epoch,
            "bandwidth_bytes_per_second": self.bandwidth_bytes_per_second,
            "epoch_floor_seconds": self.epoch_floor_seconds,
            "micro": self.micro,
            "step": self.step,
            "accuracy": self.accuracy,
            "cli": self.cli,
            "targets": self.targets(),
        }

    def to_json(self, path):
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self):
        """The result as plain text: rows, memory traffic, micro-benchmark, targets."""
        return format_table(self)
