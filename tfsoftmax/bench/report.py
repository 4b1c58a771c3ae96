"""What a benchmark run measured (:class:`BenchResult`), the goals it is judged by, the text.

**Ratios** between rows are medians of same-round ratios,
``median_r(t_a,r / t_b,r)``: the rows of a round ran back to back, so load from
other processes cancels (rows outside the rounds: the ratio of the medians).
The **epoch floor** is ``bytes_per_epoch["memory_total"] / bandwidth`` and a
row's **bandwidth fraction** ``floor / median epoch``.

**Goals**, each a value that must not exceed its number:

* ``custom-jacobian <= 0.25 x keras-fit``, ``<= 1.0 x numpy-vectorized`` and
  ``<= 1.15 x builtin-loop`` (:data:`RATIO_TARGETS`, on epoch times);
* ``tfsoftmax train`` (``n`` epochs, start-up included) ``<= 1.5 x`` ``n``
  median epochs of ``custom-jacobian`` (:data:`CLI_TARGET`);
* ``|test accuracy custom - numpy| <= 0.002`` after the same epochs
  (:data:`ACCURACY_TARGET`);
* custom-op SGD step ``<= 1.5 x`` built-in step (:data:`STEP_TARGET`);
* and the goals against the best alternatives of :mod:`tfsoftmax.bench.goals`
  (JAX, ``model.fit`` at its best, uint8 features, the per-call overhead,
  peak memory, the command line with a warm compilation cache).

A goal is judged only if the run measured what it needs; a missed goal is
reported with ``miss_factor = value / limit`` (``limit / value`` for a
``>=`` goal). The text (:func:`format_table`) has, in order: settings and
machine, one line per row (the extra rows after them, and the skipped ones
with the reason), memory traffic and the task's floors, the micro-benchmark,
the SGD step, accuracy, the one-epoch call, the command-line runs, the goals.
"""

import dataclasses
import json
import statistics

from tfsoftmax.atomic import write_text
from tfsoftmax.bench import sections
from tfsoftmax.bench.goals import extra_goals, judge
from tfsoftmax.bench.rows import EXTRA_ROWS, ROWS

__all__ = [
    "ACCURACY_TARGET",
    "CLI_TARGET",
    "RATIO_TARGETS",
    "STEP_TARGET",
    "BenchResult",
    "format_bytes",
    "format_table",
    "measured_goals",
]

#: ``(name, numerator, denominator, limit)`` on median epoch times.
RATIO_TARGETS = (
    ("custom-jacobian <= 0.25 x keras-fit", "custom-jacobian", "keras-fit", 0.25),
    ("custom-jacobian <= 1.0 x numpy-vectorized", "custom-jacobian", "numpy-vectorized", 1.0),
    ("custom-jacobian <= 1.15 x builtin-loop", "custom-jacobian", "builtin-loop", 1.15),
)
CLI_TARGET = 1.5  # tfsoftmax train (start-up included) <= 1.5 x as many epochs of row 3
ACCURACY_TARGET = 0.002  # |test accuracy custom - numpy| after the same epochs
STEP_TARGET = 1.5  # custom-op SGD step <= 1.5 x built-in step


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
    extra_rows: dict = dataclasses.field(default_factory=dict)  # name -> BenchRow
    skipped: dict = dataclasses.field(default_factory=dict)  # row name -> reason
    floors: dict | None = None
    one_epoch_call: dict | None = None

    def row(self, name):
        """The row (or extra row) ``name``; None if it did not run."""
        return self.rows.get(name) or self.extra_rows.get(name)

    def ratio(self, numerator, denominator):
        """Median over the rounds of ``numerator``'s epoch / ``denominator``'s, same round."""
        a, b = self.row(numerator), self.row(denominator)
        if a is None or b is None:
            return None
        if a.in_rounds and b.in_rounds and len(a.epoch_seconds) == len(b.epoch_seconds):
            return statistics.median(
                x / y for x, y in zip(a.epoch_seconds, b.epoch_seconds, strict=True)
            )
        return a.median_seconds / b.median_seconds

    def targets(self):
        """The goals this run measured: name, value, limit, met, miss_factor."""
        return measured_goals(self)

    @property
    def epoch_floor_seconds(self):
        """Bytes a ``train_sgd`` epoch moves through memory over the measured bandwidth."""
        return self.bytes_per_epoch["memory_total"] / self.bandwidth_bytes_per_second

    def bandwidth_fraction(self, row):
        """The epoch floor over ``row``'s median epoch (``train_sgd`` rows; else None)."""
        if not row.name.startswith(("custom", "builtin")):
            return None
        return self.epoch_floor_seconds / row.median_seconds

    def floor_fraction(self, row):
        """The task's floor over ``row``'s median epoch (uint8 floor for ``custom-uint8``)."""
        if self.floors is None:
            return None
        uint8 = row.name == "custom-uint8" and "task_floor_seconds_uint8" in self.floors
        floor = self.floors["task_floor_seconds_uint8" if uint8 else "task_floor_seconds"]
        return floor / row.median_seconds

    def _row_dict(self, row):
        fit = self.rows.get("keras-fit")
        return {
            **row.to_dict(),
            "ratio_to_fit": self.ratio(row.name, "keras-fit") if fit else None,
            "bandwidth_fraction": self.bandwidth_fraction(row),
            "floor_fraction": self.floor_fraction(row),
        }

    def to_dict(self):
        return {
            "settings": self.settings,
            "machine": self.machine,
            "memory_method": self.memory_method,
            "rows": [self._row_dict(row) for row in self.rows.values()],
            "extra_rows": [self._row_dict(row) for row in self.extra_rows.values()],
            "skipped_rows": self.skipped,
            "floors": self.floors,
            "one_epoch_call": self.one_epoch_call,
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
        """Write :meth:`to_dict` as JSON to ``path`` (atomically); returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self):
        """The result as plain text (:func:`format_table`)."""
        return format_table(self)


# --- goals -------------------------------------------------------------------------


def measured_goals(result):
    """The goals ``result`` measured, one dict each (see the module docstring)."""
    goals = []
    for name, numerator, denominator, limit in RATIO_TARGETS:
        value = result.ratio(numerator, denominator)
        if value is not None:
            goals.append(_judge(name, value, limit))
    if result.cli is not None and "custom-jacobian" in result.rows:
        n = result.cli["epochs"]
        baseline = n * result.rows["custom-jacobian"].median_seconds
        name = (
            f"tfsoftmax train ({n} epochs, start-up included) <= "
            f"{CLI_TARGET} x {n} epochs of custom-jacobian"
        )
        goals.append(_judge(name, result.cli["wall_seconds"] / baseline, CLI_TARGET))
    if result.accuracy is not None:
        name = (
            f"|test accuracy custom-jacobian - numpy| after "
            f"{result.accuracy['epochs']} epochs <= {ACCURACY_TARGET}"
        )
        goals.append(_judge(name, abs(result.accuracy["difference"]), ACCURACY_TARGET))
    if result.step is not None:
        name = f"custom-op step <= {STEP_TARGET} x built-in step"
        goals.append(_judge(name, result.step["ratio"], STEP_TARGET))
    return goals + extra_goals(result)


_judge = judge


# --- the text ------------------------------------------------------------------------


def format_table(result):
    """``result`` as plain text; a section the run skipped is left out."""
    lines = _settings(result) + [""] + _rows(result) + [""] + _memory_traffic(result)
    lines += sections.floors(result)
    if result.micro:
        lines += [""] + _micro(result)
    for measured, line in (
        (result.step, _step_line),
        (result.accuracy, _accuracy_line),
        (result.one_epoch_call, sections.one_epoch_call),
        (result.cli, _cli_line),
    ):
        if measured is not None:
            lines += ["", line(result)]
    lines += ["", "targets:"]
    for goal in result.targets():
        verdict = "met" if goal["met"] else f"MISSED by {goal['miss_factor']:.2f}x"
        lines.append(
            f"  {goal['name']}: {goal['value']:.4g} "
            f"(goal: {goal.get('op', '<=')} {goal['limit']:g}) {verdict}"
        )
    return "\n".join(lines)


def format_bytes(count):
    """``count`` bytes as ``"1.6 MB"`` (decimal units); ``"-"`` for None."""
    if count is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _settings(result):
    s, machine = result.settings, result.machine
    return [
        f"MNIST {s['samples']} samples, batch {s['batch_size']}, lr {s['learning_rate']}, "
        f"{s['dtype']}, {s['epochs']} timed epochs per row after 1 warm-up epoch "
        f"(median; rounds interleave the rows, ratios are medians of same-round "
        f"ratios); {machine['cpus']} CPUs, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}; "
        f"BLAS threads for NumPy: {s.get('blas_threads')}; TensorFlow's first use "
        f"(paid before the rows): {s.get('tensorflow_first_use_seconds', 0):.2f}s"
    ]


def _optional(value, spec):
    return "-" if value is None else format(value, spec)


def _rows(result):
    """One line per row, numbered as in :data:`ROWS`; the memory note; call overheads."""
    lines = [
        f"{'#':<3}{'row':<18}{'s/epoch':>9}{'samples/s':>11}{'vs fit':>8}"
        f"{'warm-up s':>11}{'compile s':>11}{'peak RSS MB':>13}{'+MB':>7}",
    ]
    for number, name in enumerate(ROWS + EXTRA_ROWS, 1):
        row = result.row(name)
        if row is None:
            continue
        ratio = _optional(result.ratio(name, "keras-fit"), ".3f")
        lines.append(
            f"{number:<3}{name:<18}{row.median_seconds:>9.4f}{row.samples_per_second:>11,.0f}"
            f"{ratio:>8}{_optional(row.warmup_seconds, '.3f'):>11}"
            f"{_optional(row.compile_seconds, '.3f'):>11}"
            f"{row.peak_rss_bytes / 2**20:>13,.0f}{row.rss_rise_bytes / 2**20:>7,.0f}"
        )
    lines.append(
        f"peak RSS: {result.memory_method}; +MB: rise over the resident size at the "
        "call's start (the process holds TensorFlow and the data throughout)"
    )
    for name in ROWS:
        row = result.rows.get(name)
        if row is not None and row.call_overhead_seconds:
            retraced = row.retraced_after_warmup
            retrace = "" if retraced is None else f", retraced after warm-up: {retraced}"
            lines.append(
                f"{name}: per-call overhead (checks, conversion; once per call) "
                f"{statistics.median(row.call_overhead_seconds):.3f}s{retrace}"
            )
    return lines


def _memory_traffic(result):
    b = result.bytes_per_epoch
    row = result.rows.get("custom-jacobian")
    fraction = "-" if row is None else f"{result.bandwidth_fraction(row):.0%} of it"
    return [
        f"bytes per train_sgd epoch: gather {b['gather'] / 1e6:,.0f} MB (each batch's rows "
        f"of x, y: read + write), batches read {b['data_read'] / 1e6:,.0f} MB, weights "
        f"{b['weights'] / 1e6:,.1f} MB (cache-resident); memory total "
        f"{b['memory_total'] / 1e6:,.0f} MB",
        f"memory bandwidth (NumPy copy, read + write): "
        f"{result.bandwidth_bytes_per_second / 1e9:.1f} GB/s -> epoch floor "
        f"{result.epoch_floor_seconds:.4f}s; custom-jacobian runs at {fraction}",
    ]


def _micro(result):
    lines = [
        "op-level forward + backward (XLA loop, median per call):",
        f"{'batch x classes':<17}{'op':<16}{'us/call':>10}{'vs tf.nn':>10}"
        f"{'Jacobian bytes':>16}  note",
    ]
    for entry in result.micro:
        lines.append(
            f"{entry['batch']:>6} x {entry['classes']:<8}{entry['op']:<16}"
            f"{entry['seconds'] * 1e6:>10.1f}{entry['ratio_to_builtin']:>10.2f}"
            f"{format_bytes(entry['jacobian_bytes']):>16}  {entry['note']}"
        )
    return lines


def _step_line(result):
    st = result.step
    return (
        f"SGD step alone (XLA batch loop, {st['steps']} steps, {st['repeats']} "
        f"interleaved repeats): custom {st['custom_seconds'] * 1e6:.0f} us, "
        f"built-in {st['builtin_seconds'] * 1e6:.0f} us, ratio {st['ratio']:.3f}"
    )


def _accuracy_line(result):
    a = result.accuracy
    others = "".join(
        f", {name} {value:.4f}" for name, value in (a.get("alternatives") or {}).items()
    )
    return (
        f"accuracy after {a['epochs']} epochs, seed {result.settings['seed']}: numpy "
        f"{a['numpy']:.4f}, custom-jacobian {a['custom']:.4f} "
        f"(difference {a['difference']:+.4f}){others}"
    )


def _cli_line(result):
    c = result.cli
    line = f"`{c['command']}`: {c['wall_seconds']:.2f}s wall (its own report: {c['report']})"
    return "\n".join([line, *sections.cli_details(result)])
