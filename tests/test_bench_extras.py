"""The benchmark's measures against the best alternatives, on a tiny run: every new JSON key
is there with values that hang together (no wall-clock limits)."""

import json
import statistics

import pytest

from tfsoftmax import bench
from tfsoftmax.bench import jax_row

SMALL = 2000
ROWS = ("custom-jacobian", "keras-fit-best", "keras-fit", "custom-uint8", "jax-scan")


@pytest.fixture(scope="module")
def tiny(mnist_batch_major, tmp_path_factory):
    result = bench.run_bench(
        mnist_batch_major,
        epochs=2,
        limit=SMALL,
        rows=ROWS,
        micro=False,
        step=False,
        accuracy_epochs=1,
        cli_epochs=1,
        call_repeats=2,
    )
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    return result, json.loads(result.to_json(path).read_text())


def test_rows_and_extra_rows(tiny):
    result, payload = tiny
    assert [row["name"] for row in payload["rows"]] == [
        "custom-jacobian",
        "keras-fit-best",
        "keras-fit",
    ]
    ran = [row["name"] for row in payload["extra_rows"]]
    assert set(ran) | set(payload["skipped_rows"]) == {"custom-uint8", "jax-scan"}
    assert not set(ran) & set(payload["skipped_rows"])
    assert ("jax-scan" in ran) == jax_row.available()
    for row in payload["rows"] + payload["extra_rows"]:
        assert len(row["epoch_seconds"]) == 2 and row["median_seconds"] > 0
        assert row["floor_fraction"] == pytest.approx(
            result.floor_fraction(result.row(row["name"]))
        )
    for reason in payload["skipped_rows"].values():
        assert reason  # a skipped row says why
    assert "keras-fit-best" in result.table()


def test_floors(tiny):
    _, payload = tiny
    floors = payload["floors"]
    assert floors["read_bytes"] == SMALL * 784 * 4
    assert floors["matmul_flops_per_epoch"] == 4 * SMALL * 784 * 10
    assert floors["gemm_flops_per_second"] > 1e6
    assert floors["matmul_seconds"] == pytest.approx(
        floors["matmul_flops_per_epoch"] / floors["gemm_flops_per_second"]
    )
    assert floors["task_floor_seconds"] == max(floors["read_seconds"], floors["matmul_seconds"])
    if "custom-uint8" in [row["name"] for row in payload["extra_rows"]]:
        assert floors["read_seconds_uint8"] > 0


def test_one_epoch_call(tiny):
    result, payload = tiny
    call = payload["one_epoch_call"]
    assert len(call["call_seconds"]) == len(call["adjacent_steady_seconds"]) == 2
    assert call["steady_epoch_seconds"] == result.rows["custom-jacobian"].median_seconds
    # Each call is judged against the steady epoch measured right after it.
    pairs = zip(call["call_seconds"], call["adjacent_steady_seconds"], strict=True)
    assert call["ratio"] == pytest.approx(statistics.median(w / s for w, s in pairs))
    assert "each against the steady epoch right after it" in result.table()


def test_command_line_cold_and_warm(tiny):
    _, payload = tiny
    cli = payload["cli"]
    for run in (cli, cli["cold"]):
        phases = run["phase_seconds"]
        assert phases["total"] <= run["wall_seconds"]
        assert run["memory"]["peak_rss_training_bytes"] >= run["memory"]["rss_after_data_bytes"]
    assert cli["cold"]["compile_cache"]["new_entries"] > 0
    assert cli["compile_cache"]["new_entries"] == 0  # the warm run compiled nothing new
    assert cli["import_seconds"] > 0


def test_new_goals_are_judged_with_their_direction(tiny):
    result, payload = tiny
    goals = {goal["name"]: goal for goal in payload["targets"]}
    speedup = goals["custom-jacobian speed-up over keras-fit-best >= 3"]
    assert speedup["op"] == ">="
    assert speedup["value"] == pytest.approx(1 / result.ratio("custom-jacobian", "keras-fit-best"))
    assert speedup["met"] == (speedup["value"] >= 3)
    assert any(name.startswith("train_sgd 1-epoch call") for name in goals)
    assert any("warm compilation cache" in name for name in goals)
    assert any("peak RSS while training" in name for name in goals)
    if jax_row.available():
        assert "jax-scan" in payload["accuracy"]["alternatives"]
        assert any("the jax-scan epoch" in name for name in goals)
    table = result.table()
    assert "(goal: >= 3)" in table and "task floors per epoch" in table


def test_a_goal_at_least_is_met_at_its_limit():
    from tfsoftmax.bench.goals import judge

    assert judge("x", 3.0, 3.0, ">=")["met"] is True
    missed = judge("x", 2.0, 3.0, ">=")
    assert missed["met"] is False and missed["miss_factor"] == pytest.approx(1.5)
