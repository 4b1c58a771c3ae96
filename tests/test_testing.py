"""tfsoftmax.testing: deliberately wrong gradients are caught, named and sized; right ones pass.

Every wrong gradient here is a user's ``tf.custom_gradient`` with one bug
(the forward is right, so autodiff of the same formula is a true reference),
and the tests read the verdict from the result's entries and its table: the
failing input, the check and an error of the bug's size.
"""

import numpy as np
import pytest

from tfsoftmax._tf import tf
from tfsoftmax.testing import (
    GradientCheckError,
    assert_gradients,
    check_gradients,
)

RNG = np.random.default_rng(11)
X = RNG.normal(size=(6, 5))
W = RNG.normal(size=(5, 5))


def failing_inputs(result, check=None):
    return {e.input for e in result.failures if check is None or e.check == check}


# --------------------------------------------------------------------------- the bugs
def matmul_reference(x, w):
    return tf.matmul(x, w)


@tf.custom_gradient
def matmul_missing_transpose(x, w):
    def grad(g):
        return tf.matmul(g, w), tf.matmul(x, g, transpose_a=True)  # dx = g W, not g W^T

    return tf.matmul(x, w), grad


@tf.custom_gradient
def matmul_sign_error(x, w):
    def grad(g):
        return tf.matmul(g, w, transpose_b=True), -tf.matmul(x, g, transpose_a=True)

    return tf.matmul(x, w), grad


def mean_square_reference(x):
    return tf.reduce_mean(tf.reduce_sum(x * x, axis=-1))


@tf.custom_gradient
def mean_square_without_batch_mean(x):
    """``mean_i |x_i|^2``, whose gradient forgets the ``1/b`` of the batch mean."""
    return mean_square_reference(x), lambda g: g * 2.0 * x


def product_reference(x, y):
    return x * y


@tf.custom_gradient
def product_ignoring_y(x, y):
    return x * y, lambda g: (g * y, None)


@pytest.mark.parametrize(
    "bug, reference, wrong_input",
    [
        (matmul_missing_transpose, matmul_reference, "x"),
        (matmul_sign_error, matmul_reference, "w"),
        (product_ignoring_y, product_reference, "y"),
    ],
    ids=["missing transpose", "sign error", "ignores one input"],
)
def test_a_wrong_gradient_is_caught_and_the_table_names_the_input(bug, reference, wrong_input):
    other = W if bug is not product_ignoring_y else RNG.normal(size=X.shape)
    result = check_gradients(bug, X, other, reference=reference)
    assert not result and not result.passed
    for check in ("reference", "finite_diff"):
        assert failing_inputs(result, check) == {wrong_input}, result
        for dtype in ("float32", "float64"):
            worst = result.worst(check=check, input=wrong_input, dtype=dtype)
            assert worst.status == "FAIL" and worst.error > 0.3, worst  # an O(1) error
    table = str(result)
    rows = [line for line in table.splitlines() if line.startswith("float")]
    failing = [line for line in rows if line.endswith("FAIL") or "FAIL (" in line]
    assert failing and all(line.split()[3] == wrong_input for line in failing), table
    assert f"input {wrong_input!r}" in result.summary()


def test_a_missing_gradient_says_none_in_the_table():
    result = check_gradients(product_ignoring_y, X, X + 1.0, dtypes="float64")
    entry = result.worst(input="y", check="finite_diff")
    assert entry.status == "FAIL" and entry.note == "no gradient (None)"
    assert entry.error == pytest.approx(1.0)  # all of the gradient is missing
    assert "no gradient (None)" in str(result)


def test_a_wrong_batch_mean_is_caught_with_the_size_of_the_error():
    result = check_gradients(mean_square_without_batch_mean, X, reference=mean_square_reference)
    assert not result
    # The gradient is b = 6 times too large: max|6 V - V| / max|V| = 5 against the
    # reference. Against finite differences the error is |<5 V, d>| / (6 s ||V||),
    # (5/6) |z| for z ~ N(0, 1): random, but of the bug's size.
    assert result.worst(check="reference", dtype="float64").error == pytest.approx(5.0, rel=1e-6)
    assert 0.05 < result.worst(check="finite_diff", dtype="float64").error <= 5 / 6 * 4


@tf.custom_gradient
def swish_squaring_upstream(x):
    """Right for a one-hot upstream gradient (``g * g == g``), wrong for any other."""
    s = tf.sigmoid(x)
    return x * s, lambda g: g * g * (s + x * s * (1 - s))


def test_a_vjp_not_linear_in_the_upstream_gradient_is_caught():
    result = check_gradients(swish_squaring_upstream, X, reference=lambda x: x * tf.sigmoid(x))
    assert failing_inputs(result) == {"x"}
    assert result.worst(check="finite_diff").error > 0.3


def test_a_1e_5_relative_error_in_float64_is_caught_by_the_derived_tolerance():
    @tf.custom_gradient
    def slightly_off(x):
        return tf.sin(x), lambda g: g * tf.cos(x) * (1 + 1e-5)

    result = check_gradients(slightly_off, X, reference=tf.sin, dtypes="float64")
    assert failing_inputs(result) == {"x"}
    assert result.worst(check="reference").error == pytest.approx(1e-5, rel=1e-3)
    assert result.worst(check="finite_diff").error < 1e-4  # seen, at its size


# --------------------------------------------------------------------------- outputs
@tf.custom_gradient
def two_outputs_second_wrong(x):
    def grad(g_sin, g_square):
        return g_sin * tf.cos(x) + g_square * x  # d x^2 / dx is 2x

    return (tf.sin(x), x * x), grad


def test_the_output_whose_gradient_is_wrong_is_named():
    result = check_gradients(
        two_outputs_second_wrong, X, reference=lambda x: (tf.sin(x), x * x), dtypes="float64"
    )
    by_output = {e.output: e for e in result.entries if e.check == "finite_diff"}
    assert set(by_output) == {"all", "output[0]", "output[1]"}
    assert by_output["output[0]"].ok
    assert not by_output["output[1]"].ok and not by_output["all"].ok
    reference = {e.output: e for e in result.entries if e.check == "reference"}
    assert reference["output[1]"].error == pytest.approx(0.5, rel=1e-9)  # x u vs 2 x u
    assert reference["output[0]"].ok


# --------------------------------------------------------------------------- right ones pass
@tf.custom_gradient
def logsumexp(z):
    return tf.reduce_logsumexp(z, axis=-1), lambda g: g[:, None] * tf.nn.softmax(z)


@pytest.mark.parametrize("upstream", ["random", "basis"])
def test_correct_gradients_pass_in_both_dtypes(upstream):
    result = check_gradients(
        logsumexp,
        3.0 * X,
        reference=lambda z: tf.math.log(tf.reduce_sum(tf.exp(z), axis=-1)),
        upstream=upstream,
    )
    assert result, result
    checks = {(e.dtype, e.check) for e in result.entries}
    for dtype in ("float32", "float64"):
        assert {(dtype, "forward"), (dtype, "reference"), (dtype, "finite_diff")} <= checks
    assert "all" in result.summary() and "passed" in result.summary()


def test_every_mode_runs_and_passes():
    result = check_gradients(matmul_reference, X, W, modes=("eager", "function", "xla"))
    assert result, result
    assert {e.mode for e in result.entries} == {"eager", "function", "xla"}


def test_a_numpy_vjp_is_compared_and_a_wrong_one_fails():
    def numpy_vjp(u, x, w):
        return u @ w.T, x.T @ u

    good = check_gradients(matmul_reference, X, W, numpy_vjp=numpy_vjp)
    assert good and {e.check for e in good.entries} == {"numpy", "finite_diff"}
    bad = check_gradients(matmul_reference, X, W, numpy_vjp=lambda u, x, w: (u @ w,))
    assert failing_inputs(bad, "numpy") == {"x"}  # and w, which it does not give, is skipped
    assert {e.input for e in bad.entries if e.check == "numpy"} == {"x"}


# --------------------------------------------------------------------------- the pytest helper
def test_assert_gradients_raises_with_the_table_and_returns_the_result_on_success():
    with pytest.raises(GradientCheckError) as caught:
        assert_gradients(matmul_missing_transpose, X, W, reference=matmul_reference)
    assert isinstance(caught.value, AssertionError)
    assert "input 'x'" in str(caught.value) and "FAIL" in str(caught.value)
    assert not caught.value.result
    result = assert_gradients(matmul_reference, X, W)
    assert result.passed


def test_tolerances_can_be_overridden():
    # A 1e-5 error passes a looser, explicit bar, and fails one just under it.
    @tf.custom_gradient
    def slightly_off(x):
        return tf.sin(x), lambda g: g * tf.cos(x) * (1 + 1e-5)

    assert check_gradients(slightly_off, X, dtypes="float64", rtol=2e-5)
    assert not check_gradients(
        slightly_off, X, dtypes="float64", rtol={"reference": 5e-6}, reference=tf.sin
    )


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="input 'labels' has dtype int32"):
        check_gradients(lambda x, labels: x, X, tf.constant([1, 2], tf.int32))
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        check_gradients(tf.sin, X, order=3)
    with pytest.raises(ValueError, match="modes"):
        check_gradients(tf.sin, X, modes=("graph",))
    with pytest.raises(ValueError, match="floating-point"):
        check_gradients(tf.sin, X, dtypes=("int32",))
    with pytest.raises(ValueError, match="upstream gradient has shapes"):
        check_gradients(tf.sin, X, upstream=[np.ones((2, 2))])
    with pytest.raises(ValueError, match="at least one input"):
        check_gradients(tf.sin)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_gradients(tf.sin, np.array([np.nan]))
    with pytest.raises(ValueError, match="rtol keys"):
        check_gradients(tf.sin, X, rtol={"autodiff": 1e-3})
