"""Numerical stability of the Keras path: JacobianSoftmax + CategoricalCrossentropy.

``tests/test_ops.py`` proves the raw ops never return NaN or inf at logits up to
±1e4. Here the same question is asked of what a Keras user calls — the
:class:`tfsoftmax.layers.JacobianSoftmax` layer and the
:class:`tfsoftmax.losses.CategoricalCrossentropy` loss, in float16, bfloat16,
float32 and float64, with both softmax methods — and the answers are compared
with Keras' built-ins, ``keras.layers.Softmax`` followed by
``keras.losses.CategoricalCrossentropy`` (on probabilities, as the notebook's
"keras" model uses them), evaluated in float64 on the same logits.

Where the two may agree, they must, within :data:`TOL` (per dtype, absolute,
on the probabilities, on the per-sample loss and on ``b · dL/dz``, whose
entries lie in [-1, 1]). "May agree" means every sample's true-class
probability is at least :data:`CLEAR` times both clamps: Keras clips
probabilities to ``[1e-7, 1 - 1e-7]``, tfsoftmax floors them at ``tiny``
(:func:`tfsoftmax.ops.probability_floor`). A sample far *below* the floor is
checked against the documented clamp instead: its loss is exactly
``-log(tiny)``. Everything is finite, everywhere.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfsoftmax import ops
from tfsoftmax._tf import keras, tf
from tfsoftmax.layers import JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy

DTYPES = ("float16", "bfloat16", "float32", "float64")
KERAS_EPSILON = 1e-7
CLEAR = 10.0
#: Largest allowed absolute difference from Keras' float64 built-ins, per dtype:
#: probabilities, per-sample loss (up to ~16 where both are unclamped), and
#: b·dL/dz (entries in [-1, 1]). Measured worst cases over 400 random draws
#: (scales 0.1 to 1e4): float64 0 / 1.8e-15 / 1.9e-16, float32 1.4e-7 / 9.5e-7 /
#: 1.5e-7, float16 2.4e-4 / 2.1e-3 / 1.1e-3, bfloat16 1.8e-3 / 3.1e-2 / 7.9e-3 —
#: a few units of each dtype's rounding (float16 2**-11, bfloat16 2**-8).
TOL = {
    "float64": {"probabilities": 1e-14, "loss": 1e-13, "gradient": 1e-13},
    "float32": {"probabilities": 1e-6, "loss": 1e-5, "gradient": 2e-6},
    "float16": {"probabilities": 1e-3, "loss": 1e-2, "gradient": 4e-3},
    "bfloat16": {"probabilities": 8e-3, "loss": 8e-2, "gradient": 3e-2},
}


def _ours(logits, y, dtype, method):
    z = tf.constant(logits, dtype)
    softmax = JacobianSoftmax(method=method, dtype=dtype)
    per_sample = CategoricalCrossentropy(dtype=dtype, reduction=None)
    mean = CategoricalCrossentropy(dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(z)
        a = softmax(z)
        loss = mean(y, a)
    gradient = tape.gradient(loss, z)
    return a, per_sample(y, a), loss, gradient


def _keras_float64(logits, y):
    z = tf.constant(logits, "float64")
    softmax = keras.layers.Softmax(dtype="float64")
    per_sample = keras.losses.CategoricalCrossentropy(dtype="float64", reduction=None)
    mean = keras.losses.CategoricalCrossentropy(dtype="float64")
    with tf.GradientTape() as tape:
        tape.watch(z)
        a = softmax(z)
        loss = mean(y, a)
    return a, per_sample(y, a), loss, tape.gradient(loss, z)


def _f64(t):
    return tf.cast(t, tf.float64).numpy()


def _check(logits, labels, dtype, method):
    batch, classes = logits.shape
    y = np.eye(classes)[labels]
    # What the layer really sees: the logits rounded to ``dtype``.
    rounded = _f64(tf.constant(logits, dtype))
    a, per_sample, loss, gradient = _ours(logits, y, dtype, method)
    for name, t in {"a": a, "per_sample": per_sample, "loss": loss, "dz": gradient}.items():
        assert t.dtype == dtype, name
        assert np.isfinite(_f64(t)).all(), (name, t)

    k_a, k_per_sample, _, k_gradient = _keras_float64(rounded, y)
    k_a, k_per_sample, k_gradient = _f64(k_a), _f64(k_per_sample), _f64(k_gradient)
    tol = TOL[dtype]
    errors = {"probabilities": np.abs(_f64(a) - k_a).max()}

    floor = ops.probability_floor(dtype)
    p_true = k_a[np.arange(batch), labels]
    clear = p_true >= CLEAR * max(floor, KERAS_EPSILON)
    saturated = p_true <= floor / CLEAR
    if clear.any():
        errors["loss"] = np.abs(_f64(per_sample) - k_per_sample)[clear].max()
        errors["gradient"] = (batch * np.abs(_f64(gradient) - k_gradient))[clear].max()
    for what, error in errors.items():
        assert error <= tol[what], (what, error, tol[what])
    # Far below the floor the loss is the clamp's, -log(tiny), not Keras' -log(1e-7).
    if saturated.any():
        np.testing.assert_allclose(
            _f64(per_sample)[saturated], -np.log(floor), rtol=tol["loss"] / 10
        )
    if clear.all():
        np.testing.assert_allclose(_f64(loss), k_per_sample.mean(), atol=tol["loss"])
    return errors


# 80 examples in the ci profile (tests/conftest.py), 800 in the thorough one.
@settings(max_examples=settings().max_examples * 4 // 5, deadline=None)
@given(
    batch=st.integers(1, 8),
    classes=st.integers(2, 12),
    dtype=st.sampled_from(DTYPES),
    method=st.sampled_from(ops.SOFTMAX_METHODS),
    scale=st.sampled_from([0.1, 1.0, 10.0, 100.0, 1e3, 1e4]),
    extremes=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_finite_and_agrees_with_keras(
    batch, classes, dtype, method, scale, extremes, seed
):
    rng = np.random.default_rng(seed)
    logits = np.clip(scale * rng.normal(size=(batch, classes)), -1e4, 1e4)
    if extremes:  # some logits exactly at ±1e4
        mask = rng.random(logits.shape) < 0.3
        logits[mask] = rng.choice([-1e4, 1e4], size=int(mask.sum()))
    _check(logits, rng.integers(0, classes, batch), dtype, method)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ops.SOFTMAX_METHODS)
def test_logits_of_plus_minus_1e4(dtype, method):
    # Row 0 saturated and wrong (true class at -1e4), row 1 saturated and right,
    # row 2 two-way tie at +1e4, row 3 ordinary.
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4], [0.5, -0.25, 1.0]])
    _check(logits, np.array([1, 1, 0, 2]), dtype, method)
