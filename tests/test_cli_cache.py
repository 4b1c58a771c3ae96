"""The XLA compilation cache of ``tfsoftmax train``/``compare``, and the phase times they report.

The folder logic (flags, staging, publishing, pruning) is tested directly on
temporary folders; the cache itself in real subprocesses: a first run fills
the folder, a second run with the same shapes adds nothing (it read what it
needed), ``--no-compile-cache`` leaves it alone. No wall-clock limits: only
that the phases add up to no more than the wall time measured outside.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tfsoftmax.cli import compile_cache

NO_TENSORFLOW = {}  # as sys.modules looks before TensorFlow is imported


def test_set_up_appends_the_flags_and_keeps_the_users(tmp_path):
    environ = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=0", "XDG_CACHE_HOME": str(tmp_path)}
    cache = compile_cache.set_up(environ=environ, modules=NO_TENSORFLOW)
    assert cache.active and cache.root == tmp_path / "tfsoftmax" / "xla"
    flags = environ["TF_XLA_FLAGS"]
    assert flags.startswith("--tf_xla_auto_jit=0 ")
    assert f'{compile_cache.CACHE_FLAG}="{cache.staging}"' in flags
    assert f'--tf_xla_persistent_cache_prefix="{cache.prefix}"' in flags
    staging = cache.staging
    assert staging.parent == cache.root and staging.is_dir()
    assert cache.publish() == 0 and cache.staging is None and not staging.exists()
    assert environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=0"  # put back for child processes


@pytest.mark.parametrize(
    ("enabled", "flags", "modules", "reason"),
    [
        (False, "", NO_TENSORFLOW, "--no-compile-cache"),
        (True, "", {"tensorflow": object()}, "TensorFlow was imported"),
        (True, "/etc/xla_flags.txt", NO_TENSORFLOW, "names a file of flags"),
    ],
)
def test_set_up_leaves_the_environment_alone_when_it_cannot_work(
    enabled, flags, modules, reason, tmp_path
):
    environ = {"TF_XLA_FLAGS": flags, "XDG_CACHE_HOME": str(tmp_path)}
    cache = compile_cache.set_up(enabled, environ=environ, modules=modules)
    assert not cache.active and reason in cache.reason and reason in cache.describe()
    assert environ["TF_XLA_FLAGS"] == flags
    assert not (tmp_path / "tfsoftmax").exists()


def test_a_directory_set_by_the_user_is_kept(tmp_path):
    flags = f'--tf_xla_persistent_cache_directory="{tmp_path / "mine"}"'
    environ = {"TF_XLA_FLAGS": flags}
    cache = compile_cache.set_up(environ=environ, modules=NO_TENSORFLOW)
    assert cache.root == tmp_path / "mine" and cache.staging is None
    assert environ["TF_XLA_FLAGS"] == flags


def test_the_prefix_changes_with_the_compiler_options():
    assert compile_cache.cache_prefix({}) != compile_cache.cache_prefix(
        {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}
    )
    assert compile_cache.cache_prefix({}) == compile_cache.cache_prefix({})


def test_publish_moves_new_entries_only_and_removes_orphans(tmp_path):
    root = tmp_path / "xla"
    first = compile_cache.set_up(environ={}, root=root, modules=NO_TENSORFLOW)
    (first.staging / f"{first.prefix}__1__2__CPU.pb").write_bytes(b"a" * 10)
    assert first.publish() == 1 and first.published == 1
    assert (root / f"{first.prefix}__1__2__CPU.pb").read_bytes() == b"a" * 10
    assert not list(root.glob(".staging-*"))
    orphan = root / ".staging-999999999-abc"  # no such process
    orphan.mkdir()
    second = compile_cache.set_up(environ={}, root=root, modules=NO_TENSORFLOW)
    assert not orphan.exists()
    assert second.entries == 1 and (second.staging / f"{first.prefix}__1__2__CPU.pb").exists()
    (second.staging / f"{first.prefix}__3__4__CPU.pb").write_bytes(b"b" * 10)
    assert second.publish() == 1  # the staged copy of the first entry is not "new"
    assert "2 entries" not in second.describe() and "1 new" in second.describe()


def test_publish_prunes_the_oldest_entries(tmp_path):
    cache = compile_cache.set_up(environ={}, root=tmp_path, modules=NO_TENSORFLOW)
    for number in range(4):
        entry = cache.staging / f"{cache.prefix}__{number}__0__CPU.pb"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1000 + number, 1000 + number))
    cache.publish(max_bytes=250)
    kept = sorted(path.name.split("__")[1] for path in tmp_path.glob("*.pb"))
    assert kept == ["2", "3"]  # the two newest


def run_train(tmp_path, name, *extra, log_level="3"):
    """``tfsoftmax train`` in a subprocess; ``log_level=None``: the command's own default."""
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": log_level,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("TF_XLA_FLAGS", None)
    if log_level is None:
        env.pop("TF_CPP_MIN_LOG_LEVEL")
    out = tmp_path / name
    command = [sys.executable, "-m", "tfsoftmax", "train", "--epochs", "3", "--limit", "1000"]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "--verbose", "0", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    return result, json.loads((out / "history.json").read_text())["params"], wall


@pytest.mark.mnist
def test_a_second_run_reads_the_cache_and_phases_add_up(tmp_path, mnist):
    root = tmp_path / "cache" / "tfsoftmax" / "xla"
    result, params, wall = run_train(tmp_path, "first")
    entries = sorted(path.name for path in root.glob("*.pb"))
    assert entries, "the first run left no compiled entries"
    assert params["compile_cache"]["new_entries"] == len(entries)
    assert f"entries at start, {len(entries)} new)" in result.stdout
    phases = params["phase_seconds"]
    assert set(phases) == {"import", "data", "compile", "train", "write", "total"}
    assert all(phases[name] >= 0 for name in phases)
    assert phases["total"] == pytest.approx(
        sum(phases[name] for name in ("import", "data", "compile", "train", "write"))
    )
    assert phases["total"] <= wall
    assert "Time: import " in result.stdout and "; total " in result.stdout
    memory = params["memory"]
    assert memory["peak_rss_training_bytes"] >= memory["rss_after_data_bytes"] > 0

    result, params, _ = run_train(tmp_path, "second", log_level=None)
    assert params["compile_cache"]["entries_at_start"] == len(entries)
    assert params["compile_cache"]["new_entries"] == 0
    assert sorted(path.name for path in root.glob("*.pb")) == entries  # nothing new compiled
    assert ", 0 new)" in result.stdout
    assert not list(root.glob(".staging-*"))
    # Loading the entries makes TensorFlow log parse "errors" (and absl its header):
    # the command keeps them off stderr.
    assert "XlaSerializedCacheEntry" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr

    result, params, _ = run_train(tmp_path, "off", "--no-compile-cache")
    assert params["compile_cache"] == {
        "directory": None, "active": False, "entries_at_start": 0, "new_entries": None,
        "reason": "--no-compile-cache",
    }  # fmt: skip
    assert sorted(path.name for path in root.glob("*.pb")) == entries


def test_compare_reads_its_compile_time_from_its_own_epoch_lines(capsys):
    from tfsoftmax.cli.compare import EpochLineRecorder

    with EpochLineRecorder() as recorder:
        for label in ("numpy reference", "custom ops", "keras built-ins"):
            for epoch, seconds in enumerate((1.50, 0.25, 0.30, 0.20), 1):
                print(f"  {label:<16} epoch {epoch}/4  loss 0.5  {seconds:6.2f}s")
    assert recorder.compile_seconds() == pytest.approx(2 * (1.50 - 0.25))  # numpy: not compiled
    assert capsys.readouterr().out.count(" epoch ") == 12  # everything passed through


@pytest.mark.mnist
def test_compare_reports_its_phases_in_the_json(tmp_path, mnist):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("TF_XLA_FLAGS", None)
    command = [sys.executable, "-m", "tfsoftmax", "compare", "--epochs", "3", "--limit", "1000"]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "--out", str(tmp_path), "--json", str(tmp_path / "c.json")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads((tmp_path / "c.json").read_text())
    phases = payload["phase_seconds"]
    assert phases["compile"] is not None and phases["compile"] >= 0
    assert all(phases[name] >= 0 for name in ("import", "data", "train", "write"))
    assert phases["total"] <= wall
    assert payload["compile_cache"]["active"] and payload["compile_cache"]["new_entries"] > 0
    assert "Time: import " in result.stdout
    entries = list((tmp_path / "cache" / "tfsoftmax" / "xla").glob("*.pb"))
    assert len(entries) == payload["compile_cache"]["new_entries"]
