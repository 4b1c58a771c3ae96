"""The report's newer sections: the task's floors, the one-epoch call, the command-line runs.

Each takes a :class:`~tfsoftmax.bench.report.BenchResult` and returns text
(a list of lines, or one line); :func:`tfsoftmax.bench.report.format_table`
places them. Definitions are in :mod:`tfsoftmax.bench.floors` and
:mod:`tfsoftmax.bench.calls`.
"""

import statistics

__all__ = ["cli_details", "floors", "one_epoch_call"]


def floors(result):
    """The read and matmul floors and each timed row's share of the task floor."""
    f = result.floors
    if f is None:
        return []
    lines = [
        f"task floors per epoch: read X once ({f['read_bytes'] / 1e6:,.0f} MB, compiled sum) "
        f"{f['read_seconds']:.4f}s; two matmuls per step, {f['matmul_flops_per_epoch'] / 1e9:.2f} "
        f"GFLOP at {f['gemm_flops_per_second'] / 1e9:.1f} GFLOP/s (measured, batch shape) "
        f"{f['matmul_seconds']:.4f}s -> floor {f['task_floor_seconds']:.4f}s"
    ]
    if "read_seconds_uint8" in f:
        lines.append(
            f"uint8 features: read floor {f['read_seconds_uint8']:.4f}s -> floor "
            f"{f['task_floor_seconds_uint8']:.4f}s"
        )
    shares = [
        f"{name} {result.floor_fraction(row):.0%}"
        for name, row in {**result.rows, **result.extra_rows}.items()
        if not name.startswith(("numpy", "keras"))
    ]
    if shares:
        lines.append("share of the floor (floor / median epoch): " + ", ".join(shares))
    return lines


def one_epoch_call(result):
    """``train_sgd(epochs=1)`` on a compiled model against a steady epoch."""
    c = result.one_epoch_call
    steady = c.get("adjacent_steady_seconds") or [c["steady_epoch_seconds"]]
    return (
        f"one-epoch train_sgd call (custom-jacobian, compiled): median "
        f"{c['median_call_seconds']:.4f}s over {len(c['call_seconds'])} calls, each against "
        f"the steady epoch right after it (median {statistics.median(steady):.4f}s): "
        f"ratio {c['ratio']:.2f} (median of the pairs)"
    )


def cli_details(result):
    """The cold and warm ``tfsoftmax train`` runs, their phases and memory, the import."""
    c = result.cli
    lines = []
    if "cold_wall_seconds" in c:
        lines.append(
            f"  compilation cache cold {c['cold_wall_seconds']:.2f}s, warm "
            f"{c['wall_seconds']:.2f}s (a cache of its own); `import tensorflow, keras` "
            f"alone {c['import_seconds']:.2f}s"
        )
    for label, run in (("cold", c.get("cold")), ("warm", c)):
        phases = (run or {}).get("phase_seconds")
        if phases:
            parts = ", ".join(
                f"{name} {'-' if phases.get(name) is None else format(phases[name], '.2f')}"
                for name in ("import", "data", "compile", "train", "write")
            )
            lines.append(f"  {label} phases (s): {parts}; total {phases['total']:.2f}")
    memory = c.get("memory") or {}
    if memory.get("rss_after_data_bytes"):
        after, peak = memory["rss_after_data_bytes"], memory["peak_rss_training_bytes"]
        lines.append(
            f"  memory: {after / 2**20:,.0f} MB after loading the data, peak while training "
            f"{peak / 2**20:,.0f} MB (+{(peak - after) / 2**20:,.0f} MB)"
        )
    return lines
