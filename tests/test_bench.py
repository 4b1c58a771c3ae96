"""tfsoftmax.bench and ``tfsoftmax bench``: the structure on a small setting, and the
step-ratio regression guard (custom-op step <= 1.5x the built-in step)."""

import json

import numpy as np
import pytest

from tfsoftmax import bench, cli

SMALL = 2000  # training samples for the reduced setting


@pytest.fixture(scope="module")
def small_result(mnist_batch_major):
    return bench.run_bench(
        mnist_batch_major,
        epochs=2,
        limit=SMALL,
        micro_shapes=((200, 10), (64, 1000)),
        step=False,
        accuracy_epochs=1,
        cli_epochs=None,
    )


def test_every_row_is_measured(small_result):
    assert list(small_result.rows) == list(bench.ROWS)
    for name, row in small_result.rows.items():
        assert row.samples == SMALL
        assert len(row.epoch_seconds) == (1 if name == "numpy-loop" else 2)
        assert all(seconds > 0 for seconds in row.epoch_seconds)
        assert row.samples_per_second == pytest.approx(SMALL / row.median_seconds)
        assert row.peak_rss_bytes > 0
    for name in ("custom-jacobian", "custom-vjp", "builtin-loop", "keras-fit"):
        row = small_result.rows[name]
        assert row.warmup_seconds > 0 and row.compile_seconds >= 0
        assert len(row.call_overhead_seconds) == 2
    assert small_result.rows["numpy-vectorized"].compile_seconds is None


def test_train_sgd_reuses_its_compiled_loop_across_calls(small_result):
    # Two timed calls after the warm-up call, same model and shapes: no new trace.
    for name in ("custom-jacobian", "custom-vjp", "builtin-loop"):
        assert small_result.rows[name].retraced_after_warmup == 0


def test_ratios_are_same_round_medians(small_result):
    rows = small_result.rows
    a, b = rows["custom-jacobian"].epoch_seconds, rows["keras-fit"].epoch_seconds
    expected = float(np.median([x / y for x, y in zip(a, b, strict=True)]))
    assert small_result.ratio("custom-jacobian", "keras-fit") == pytest.approx(expected)
    assert small_result.ratio("keras-fit", "keras-fit") == 1.0


def test_bytes_per_epoch_and_bandwidth(small_result):
    moved = small_result.bytes_per_epoch
    data = SMALL * (784 + 10) * 4
    assert moved["data_read"] == data
    assert moved["gather"] == 2 * data
    assert moved["memory_total"] == 3 * data
    assert moved["weights"] == (SMALL // 200) * 3 * 10 * 785 * 4
    assert small_result.bandwidth_bytes_per_second > 1e8
    assert small_result.epoch_floor_seconds == pytest.approx(
        3 * data / small_result.bandwidth_bytes_per_second
    )


def test_micro_benchmark_reports_the_jacobian_memory(small_result):
    by_key = {(m["batch"], m["classes"], m["op"]): m for m in small_result.micro}
    assert set(by_key) == {
        (b, k, op)
        for b, k in ((200, 10), (64, 1000))
        for op in ("jacobian", "vjp", "tf.nn.softmax")
    }
    assert by_key[200, 10, "jacobian"]["jacobian_bytes"] == 200 * 10 * 10 * 4
    assert by_key[64, 1000, "jacobian"]["jacobian_bytes"] == 64 * 1000 * 1000 * 4
    assert by_key[200, 10, "tf.nn.softmax"]["ratio_to_builtin"] == 1.0
    assert all(m["seconds"] > 0 for m in small_result.micro)


def test_table_and_json(small_result, tmp_path):
    table = small_result.table()
    for number, name in enumerate(bench.ROWS, 1):
        assert f"{number:<3}{name}" in table
    for text in ("s/epoch", "samples/s", "vs fit", "peak RSS MB", "memory bandwidth", "targets:"):
        assert text in table
    payload = json.loads(small_result.to_json(tmp_path / "bench.json").read_text())
    assert [row["name"] for row in payload["rows"]] == list(bench.ROWS)
    assert payload["rows"][-1]["ratio_to_fit"] == 1.0
    assert payload["accuracy"]["epochs"] == 1
    assert abs(payload["accuracy"]["difference"]) <= bench.ACCURACY_TARGET
    names = [target["name"] for target in payload["targets"]]
    assert any("0.25 x keras-fit" in name for name in names)
    assert any("1.15 x builtin-loop" in name for name in names)
    # Each ratio goal is judged on the rows its name states, "A <= k x B": time(A) / time(B).
    ratio_goals = [t for t in payload["targets"] if len(t["name"].split()) == 5]
    assert len(ratio_goals) == 3
    for target in ratio_goals:
        numerator, _, limit, _, denominator = target["name"].split()
        assert target["value"] == pytest.approx(small_result.ratio(numerator, denominator))
        assert target["limit"] == float(limit)
    # The table prints every row's own median and throughput, in the order of bench.ROWS.
    lines = table.splitlines()
    numbered = [
        line for line in lines if line.split()[:1] and line.split()[0].isdigit() and
        line.split()[1:2] and line.split()[1] in bench.ROWS
    ]  # fmt: skip
    assert [line.split()[:2] for line in numbered] == [
        [str(n), name] for n, name in enumerate(bench.ROWS, 1)
    ]
    for line, name in zip(numbered, bench.ROWS, strict=True):
        row = small_result.rows[name]
        assert line.split()[2:4] == [f"{row.median_seconds:.4f}", f"{row.samples_per_second:,.0f}"]


def test_a_goal_is_met_exactly_up_to_its_limit():
    result = bench.BenchResult(
        settings={}, machine={}, rows={}, bytes_per_epoch={}, bandwidth_bytes_per_second=1.0,
        step={"ratio": 1.5},
    )  # fmt: skip
    (goal,) = result.targets()
    assert (goal["value"], goal["limit"], goal["met"], goal["miss_factor"]) == (
        1.5,
        1.5,
        True,
        None,
    )
    result.step["ratio"] = 1.8
    (goal,) = result.targets()
    assert goal["met"] is False and goal["miss_factor"] == pytest.approx(1.2)


def test_a_row_reports_the_median_epoch():
    row = bench.BenchRow("custom-vjp", "", epoch_seconds=[1.0, 2.0, 10.0], samples=6)
    assert row.median_seconds == 2.0  # one slow epoch does not move it
    assert row.samples_per_second == 3.0


def test_rows_are_ordered_as_measured(small_result):
    """Each row holds its own trainer's times: the per-sample NumPy loop is slower than
    the vectorized reference (several times on a quiet machine; only "slower" is
    asserted, the machine being shared), and the median is the middle epoch."""
    rows = small_result.rows
    assert rows["numpy-loop"].median_seconds > rows["numpy-vectorized"].median_seconds
    for row in rows.values():
        assert row.median_seconds == float(np.median(row.epoch_seconds))


def test_cli_bench_writes_json(mnist, tmp_path, capsys):
    path = tmp_path / "bench.json"
    argv = ["bench", "--limit", "1000", "--epochs", "1", "--rows", "custom-jacobian"]
    argv += ["keras-fit", "--accuracy-epochs", "0", "--cli-epochs", "0", "--no-micro"]
    argv += ["--no-step", "--json", str(path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "custom-jacobian" in out and "keras-fit" in out
    payload = json.loads(path.read_text())
    assert [row["name"] for row in payload["rows"]] == ["custom-jacobian", "keras-fit"]
    assert payload["settings"]["samples"] == 1000


def test_cli_bench_rejects_an_unknown_row(capsys):
    assert cli.main(["bench", "--rows", "custom", "--limit", "10"]) == 2
    assert "unknown rows custom" in capsys.readouterr().err


def test_custom_step_is_at_most_1_5x_the_builtin_step(mnist_batch_major):
    """The regression guard: the same XLA batch loop over the custom ops and over the
    built-ins, calls alternating, medians of back-to-back ratios (no wall-clock limit)."""
    result = bench.step_ratio(
        mnist_batch_major.x_train, mnist_batch_major.y_train, steps=60, repeats=21
    )
    assert result["ratio"] <= 1.5, result
    assert len(result["ratios"]) == 21
