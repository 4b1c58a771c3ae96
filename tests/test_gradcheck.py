"""tfsoftmax.gradcheck and ``tfsoftmax gradcheck``: it passes, and it can fail."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfsoftmax import autodiff, cli, gradcheck, ops
from tfsoftmax._tf import tf

EXPECTED_ROWS = {
    (op, method, dtype)
    for dtype in gradcheck.DTYPES
    for op, method in (
        ("bias_trick_dense", "-"),
        ("jacobian_softmax", "jacobian"),
        ("jacobian_softmax", "vjp"),
        ("jacobian_softmax+mask", "jacobian"),
        ("jacobian_softmax+mask", "vjp"),
        ("jacobian_softmax+axes", "jacobian"),
        ("jacobian_softmax+axes", "vjp"),
        ("categorical_crossentropy", "-"),
        ("dense->softmax->cce", "jacobian"),
        ("dense->softmax->cce", "vjp"),
    )
}


@pytest.fixture(scope="module")
def rows():
    return gradcheck.run_gradcheck(seed=0)


def test_real_gradients_pass_every_check(rows):
    assert {(r.op, r.method, r.dtype) for r in rows} == EXPECTED_ROWS
    for row in rows:
        assert row.ok, row
        assert row.tolerances == gradcheck.TOLERANCES[row.dtype]
    table = gradcheck.format_table(rows)
    assert "all 20 rows within tolerance" in table
    assert "OVER TOLERANCE" not in table


def test_stated_tolerances():
    assert gradcheck.TOLERANCES["float64"] == {
        "autodiff": 1e-10,
        "finite_diff": 1e-6,
        "reference": 1e-10,
    }
    # Finite differences are taken in float64 for the float32 rows too.
    assert gradcheck.TOLERANCES["float32"]["finite_diff"] <= 1e-4
    # The float32 bars against autodiff and the reference are a few ulps: a
    # relative error of 1e-6 (8 ulps of float32) must not pass them.
    eps = float(np.finfo(np.float32).eps)
    assert gradcheck.FLOAT32_EPS == eps
    for check in ("autodiff", "reference"):
        assert gradcheck.TOLERANCES["float32"][check] <= 6 * eps < 1e-6


def _scaled(fn, factor):
    """``fn`` with its float32 output (and so its gradient) times ``factor``."""

    def scaled(*args, **kwargs):
        out = fn(*args, **kwargs)
        return out * factor if out.dtype == tf.float32 else out

    return scaled


def test_a_1e_6_relative_error_in_float32_is_reported():
    """Every op's float32 output (so its gradient) times 1 + 1e-6, 8 ulps: each op's
    rows fail against autodiff and the reference, not against finite differences
    (those differentiate the scaled op itself)."""
    scaled = {op: _scaled(getattr(ops, op), 1 + 1e-6) for op in gradcheck.OP_NAMES}
    rows = gradcheck.run_gradcheck(
        batch=4, features=5, classes=4, dtypes=("float32",), custom_ops=scaled
    )
    own = [r for r in rows if r.op.split("+")[0] in gradcheck.OP_NAMES]
    assert len(own) == 8
    for row in own:
        assert set(row.failed_checks) == {"autodiff", "reference"}, row


def test_a_row_is_the_public_checkers_worst_error_per_check():
    """One implementation: each row holds what tfsoftmax.testing.check_gradients reports."""
    from tfsoftmax.gradcheck_cases import gradcheck_problem
    from tfsoftmax.gradcheck_reference import reference_dense
    from tfsoftmax.testing import check_gradients

    rows = gradcheck.run_gradcheck(seed=2, batch=3, features=4, classes=3, dtypes=("float64",))
    row = next(r for r in rows if r.op == "bias_trick_dense")
    data = gradcheck_problem(2, 3, 4, 3, "float64")
    bars = gradcheck.TOLERANCES["float64"]
    result = check_gradients(
        ops.bias_trick_dense,
        data["x"],
        data["w"],
        reference=autodiff.dense,
        numpy_vjp=lambda u, x, w: reference_dense(data["x"], data["w"])(u),
        dtypes=("float64",),
        upstream="basis",
        eps=gradcheck.FD_DELTA["float64"],
        seed=2,
        rtol={
            "forward": bars["autodiff"],
            "reference": bars["autodiff"],
            "finite_diff": bars["finite_diff"],
            "numpy": bars["reference"],
        },
    )
    assert row.finite_diff == max(result.errors("finite_diff").values())
    assert row.reference == max(result.errors("numpy").values())
    autodiff_errors = [*result.errors("reference").values(), *result.errors("forward").values()]
    assert row.autodiff == max(autodiff_errors)
    assert set(result.errors("finite_diff")) == {"x", "w"}


def test_metric_is_relative_to_the_largest_entry():
    assert gradcheck.max_relative_error([1.0, 2.0], [1.0, 4.0]) == 0.5
    assert gradcheck.max_relative_error([1e-3], [0.0]) == 1e-3
    assert gradcheck.max_relative_error([float("nan")], [1.0]) == float("inf")


# ------------------------------------------------------------ deliberately wrong gradients
@tf.custom_gradient
def _softmax_missing_term(z):
    """Softmax whose gradient forgets ``- <a, g>``: ``a * g`` instead of ``a * (g - <a, g>)``."""
    a = autodiff.softmax(z)
    return a, lambda g: a * g


def _broken_softmax(z, method="jacobian"):
    return _softmax_missing_term(tf.convert_to_tensor(z))


@tf.custom_gradient
def _softmax_squared_upstream(z):
    """Right on one-hot upstream gradients, wrong on any other: ``g * g`` for ``g``."""
    a = autodiff.softmax(z)
    return a, lambda g: a * (g * g - tf.reduce_sum(a * g * g, axis=-1, keepdims=True))


def _nonlinear_softmax(z, method="jacobian"):
    return _softmax_squared_upstream(tf.convert_to_tensor(z))


@pytest.mark.parametrize("broken", [_broken_softmax, _nonlinear_softmax])
def test_a_wrong_softmax_gradient_is_reported_over_tolerance(broken):
    rows = gradcheck.run_gradcheck(
        seed=1, dtypes=("float64",), custom_ops={"jacobian_softmax": broken}
    )
    by_op = {(r.op, r.method): r for r in rows}
    for method in ("jacobian", "vjp"):
        softmax = by_op["jacobian_softmax", method]
        assert not softmax.ok
        assert set(softmax.failed_checks) == {"autodiff", "finite_diff", "reference"}
        assert min(softmax.autodiff, softmax.finite_diff, softmax.reference) > 1e-2
    assert by_op["bias_trick_dense", "-"].ok
    assert by_op["categorical_crossentropy", "-"].ok
    assert "OVER TOLERANCE" in gradcheck.format_table(rows)


def test_a_wrong_dense_gradient_fails_the_op_and_the_chain():
    @tf.custom_gradient
    def dense_without_bias_gradient(x, w):
        z = autodiff.dense(x, w)

        def grad(g):
            dw = tf.concat([tf.matmul(g, x, transpose_a=True), tf.zeros_like(w[:, -1:])], 1)
            return tf.matmul(g, w[:, :-1]), dw

        return z, grad

    rows = gradcheck.run_gradcheck(
        dtypes=("float32",), custom_ops={"bias_trick_dense": dense_without_bias_gradient}
    )
    failed = {(r.op, r.method) for r in rows if not r.ok}
    assert failed == {
        ("bias_trick_dense", "-"),
        ("dense->softmax->cce", "jacobian"),
        ("dense->softmax->cce", "vjp"),
    }


def _softmax_ignoring_the_mask(z, method="jacobian", axis=-1, mask=None):
    """Takes mask= and drops it: right on plain and multi-axis inputs, wrong under a mask."""
    return ops.jacobian_softmax(z, method, axis=axis)


def test_a_softmax_that_ignores_the_mask_fails_only_the_masked_rows():
    rows = gradcheck.run_gradcheck(
        dtypes=("float64",), custom_ops={"jacobian_softmax": _softmax_ignoring_the_mask}
    )
    failed = {(r.op, r.method) for r in rows if not r.ok}
    assert failed == {("jacobian_softmax+mask", "jacobian"), ("jacobian_softmax+mask", "vjp")}
    for row in rows:
        if not row.ok:  # its gradient is its own forward's, so finite differences agree
            assert set(row.failed_checks) == {"autodiff", "reference"}


def test_a_softmax_without_mask_and_axis_fails_those_rows():
    rows = gradcheck.run_gradcheck(
        dtypes=("float32",),
        custom_ops={"jacobian_softmax": lambda z, method: ops.jacobian_softmax(z, method)},
    )
    failed = {r.op for r in rows if not r.ok}
    assert failed == {"jacobian_softmax+mask", "jacobian_softmax+axes"}
    assert all(r.autodiff == float("inf") for r in rows if r.op in failed)


def test_cli_returns_1_and_names_the_failure(monkeypatch, capsys):
    # A regression inside tfsoftmax.ops itself: gradcheck looks the ops up at call time.
    monkeypatch.setattr(ops, "jacobian_softmax", _broken_softmax)
    assert cli.main(["gradcheck", "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "jacobian_softmax          jacobian  float32" in out
    assert "NO (autodiff, finite_diff, reference)" in out
    assert "OVER TOLERANCE" in out


def test_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        gradcheck.run_gradcheck(dtypes=("float16",))
    with pytest.raises(ValueError, match="unknown ops"):
        gradcheck.run_gradcheck(custom_ops={"softmax": _broken_softmax})
    with pytest.raises(ValueError, match="classes"):
        gradcheck.run_gradcheck(classes=1)


# ------------------------------------------------------------ the real command
def test_cli_passes_in_a_real_process(tmp_path):
    report = tmp_path / "gradcheck.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "tfsoftmax", "gradcheck", "--json", str(report)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The table's header (a slow run may print "... still working" lines before it).
    lines = [line for line in result.stdout.splitlines() if not line.startswith("...")]
    assert lines[0].split()[:3] == ["op", "method", "dtype"]
    assert "vs autodiff" in result.stdout and "vs reference" in result.stdout
    assert "all 20 rows within tolerance" in result.stdout
    payload = json.loads(report.read_text())
    assert payload["ok"] is True
    assert len(payload["rows"]) == 20
    assert all(row["ok"] for row in payload["rows"])
