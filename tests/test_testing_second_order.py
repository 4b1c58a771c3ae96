"""tfsoftmax.testing, order=2: the gradient of the gradient, wrong, unsupported, right."""

import numpy as np
import pytest

from tfsoftmax._tf import tf
from tfsoftmax.testing import check_gradients

X = np.random.default_rng(5).normal(size=(4, 3))


def cube(x):
    return x * x * x


@tf.custom_gradient
def cube_differentiable(x):
    """Its gradient function is TensorFlow ops of ``x`` itself: differentiable."""
    return cube(x), lambda g: g * 3.0 * x * x


@tf.custom_gradient
def cube_wrong_second_derivative(x):
    """First derivative right; its derivative misses half of ``d(3 x x)/dx = 6 x``."""
    return cube(x), lambda g: g * 3.0 * x * tf.stop_gradient(x)


@tf.custom_gradient
def cube_through_numpy(x):
    """First derivative right, computed in NumPy: TensorFlow has no second derivative."""

    def grad(g):
        return g * tf.constant(3.0 * x.numpy() ** 2, g.dtype)

    return cube(x), grad


def second_order(result):
    return [e for e in result.entries if e.order == 2]


def test_a_differentiable_custom_gradient_passes_the_second_order():
    result = check_gradients(cube_differentiable, X, reference=cube, order=2)
    assert result, result
    entries = second_order(result)
    assert {(e.dtype, e.check) for e in entries} == {
        (d, c) for d in ("float32", "float64") for c in ("finite_diff", "reference")
    }


def test_a_wrong_second_derivative_is_caught_and_the_first_order_passes():
    result = check_gradients(cube_wrong_second_derivative, X, reference=cube, order=2)
    assert not result
    assert all(e.ok for e in result.entries if e.order == 1)
    failed = result.failures
    assert failed and all(e.order == 2 and e.input == "x" and e.status == "FAIL" for e in failed)
    # 3 x instead of 6 x: half of the second derivative, an error of 1 against the reference.
    assert result.worst(order=2, check="reference", dtype="float64").error == pytest.approx(0.5)
    assert "order 2" in result.summary()


def test_an_unsupported_second_derivative_is_reported_not_passed():
    result = check_gradients(cube_through_numpy, X, order=2, dtypes="float64")
    assert all(e.ok for e in result.entries if e.order == 1)  # the first order is right
    unsupported = second_order(result)
    assert unsupported and all(e.status == "unsupported" for e in unsupported)
    assert not result
    assert "unsupported" in str(result) and "not differentiable" in str(result)


def test_a_second_derivative_that_is_zero_passes_though_tensorflow_returns_none():
    @tf.custom_gradient
    def scale(x):
        return 2.0 * x, lambda g: tf.constant(2.0, g.dtype) * g  # no path from x: None

    result = check_gradients(scale, X, order=2, dtypes="float64")
    assert result, result
    assert all("finite differences agree it is 0" in e.note for e in second_order(result))


def test_builtin_functions_pass_the_second_order_in_both_dtypes():
    result = check_gradients(lambda x, w: tf.nn.softmax(tf.matmul(x, w)), X, X.T, order=2)
    assert result, result
    assert {e.input for e in second_order(result)} == {"x", "w"}
