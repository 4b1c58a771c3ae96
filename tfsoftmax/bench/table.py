"""The plain-text report ``tfsoftmax bench`` prints (:meth:`BenchResult.table`).

Sections, in order: the settings and machine; one line per row (median
s/epoch, samples/s, ratio to ``keras-fit``, warm-up, compile, peak memory)
with each row's per-call overhead; the memory traffic and bandwidth; the
op-level micro-benchmark; the SGD step; the accuracy check; the command-line
run; the targets. A section the run skipped is left out.
"""

import statistics

from tfsoftmax.bench.rows import ROWS


def format_table(result):
    """``result`` (a :class:`~tfsoftmax.bench.results.BenchResult`) as plain text."""
    lines = _settings(result) + [""] + _rows(result) + [""] + _memory_traffic(result)
    for section in (_micro, _step, _accuracy, _cli):
        part = section(result)
        if part:
            lines += [""] + part
    lines += ["", "targets:"]
    for t in result.targets():
        verdict = "met" if t["met"] else f"MISSED by {t['miss_factor']:.2f}x"
        lines.append(f"  {t['name']}: {t['value']:.4g} (limit {t['limit']:g}) {verdict}")
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


def _rows(result):
    """One line per row, numbered as in :data:`ROWS`; the memory note; call overheads."""
    lines = [
        f"{'#':<3}{'row':<18}{'s/epoch':>9}{'samples/s':>11}{'vs fit':>8}"
        f"{'warm-up s':>11}{'compile s':>11}{'peak RSS MB':>13}{'+MB':>7}",
    ]
    fit = result.rows.get("keras-fit")
    for number, name in enumerate(ROWS, 1):
        row = result.rows.get(name)
        if row is None:
            continue
        ratio = f"{result.ratio(name, 'keras-fit'):.3f}" if fit else "-"
        warmup = f"{row.warmup_seconds:.3f}" if row.warmup_seconds is not None else "-"
        compile_s = f"{row.compile_seconds:.3f}" if row.compile_seconds is not None else "-"
        lines.append(
            f"{number:<3}{name:<18}{row.median_seconds:>9.4f}{row.samples_per_second:>11,.0f}"
            f"{ratio:>8}{warmup:>11}{compile_s:>11}"
            f"{row.peak_rss_bytes / 2**20:>13,.0f}{row.rss_rise_bytes / 2**20:>7,.0f}"
        )
    lines.append(
        f"peak RSS: {result.memory_method}; +MB: rise over the resident size at the "
        "call's start (the process holds TensorFlow and the data throughout)"
    )
    for name in ROWS:
        row = result.rows.get(name)
        if row is not None and row.call_overhead_seconds:
            retrace = (
                ""
                if row.retraced_after_warmup is None
                else f", retraced after warm-up: {row.retraced_after_warmup}"
            )
            lines.append(
                f"{name}: per-call overhead (checks, conversion; once per call) "
                f"{statistics.median(row.call_overhead_seconds):.3f}s{retrace}"
            )
    return lines


def _memory_traffic(result):
    b = result.bytes_per_epoch
    return [
        f"bytes per train_sgd epoch: shuffle {b['shuffle'] / 1e6:,.0f} MB (gather x, y: "
        f"read + write), batches read {b['data_read'] / 1e6:,.0f} MB, weights "
        f"{b['weights'] / 1e6:,.1f} MB (cache-resident); memory total "
        f"{b['memory_total'] / 1e6:,.0f} MB",
        f"memory bandwidth (NumPy copy, read + write): "
        f"{result.bandwidth_bytes_per_second / 1e9:.1f} GB/s -> epoch floor "
        f"{result.epoch_floor_seconds:.4f}s; custom-jacobian runs at "
        + (
            f"{result.bandwidth_fraction(result.rows['custom-jacobian']):.0%} of it"
            if "custom-jacobian" in result.rows
            else "-"
        ),
    ]


def _micro(result):
    if not result.micro:
        return []
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


def _step(result):
    st = result.step
    if st is None:
        return []
    return [
        f"SGD step alone (XLA batch loop, {st['steps']} steps, {st['repeats']} "
        f"interleaved repeats): custom {st['custom_seconds'] * 1e6:.0f} us, "
        f"built-in {st['builtin_seconds'] * 1e6:.0f} us, ratio {st['ratio']:.3f}",
    ]


def _accuracy(result):
    a = result.accuracy
    if a is None:
        return []
    return [
        f"accuracy after {a['epochs']} epochs, seed {result.settings['seed']}: numpy "
        f"{a['numpy']:.4f}, custom-jacobian {a['custom']:.4f} "
        f"(difference {a['difference']:+.4f})",
    ]


def _cli(result):
    c = result.cli
    if c is None:
        return []
    return [f"`{c['command']}`: {c['wall_seconds']:.2f}s wall (its own report: {c['report']})"]
