"""examples/check_your_gradients.py, run as a user runs it: each bug caught, each fix passing."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_example_catches_the_bugs_and_passes_the_fixes(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "check_your_gradients.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # The swish table: its rows name input 'x' and fail; the summary sizes the error.
    swish = out.split("swish, wrong gradient:")[1].split("swish: correct")[0]
    failing = [line for line in swish.splitlines() if "FAIL" in line and line.startswith("float")]
    assert failing and all(line.split()[3] == "x" for line in failing), swish
    assert "checks FAILED; worst: input 'x'" in swish
    assert "logsumexp, wrong gradient:" in out and "checks FAILED; worst: input 'z'" in out
    assert "swish: correct in float32 and float64, first and second order" in out
    assert "logsumexp: correct" in out
    assert "Scale layer: all" in out and "checks passed" in out
