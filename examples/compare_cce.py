"""tfsoftmax's categorical cross-entropy next to Keras', on easy and on extreme inputs.

The notebook's loss is ``L = -y . log(yhat)`` with gradient ``dL/dyhat = -y/yhat``.
tfsoftmax (``tfsoftmax.losses.CategoricalCrossentropy``, the Keras-loss face of
``tfsoftmax.ops.categorical_crossentropy``) computes exactly that, with one
guard: ``yhat`` is floored at the dtype's smallest *normal* number
(``tfsoftmax.ops.probability_floor``: 1.2e-38 in float32, 2.2e-308 in float64),
so ``0 * log 0`` is 0 and ``-1/yhat`` stays finite. ``keras.losses.
CategoricalCrossentropy`` does two other things to probabilities:

* it **renormalises** each row, ``yhat / sum(yhat)``. For a row that already
  sums to ``s = 1`` the value is unchanged, but the gradient is not:
  ``d/dyhat_j [-log(yhat_t / s)] = -[j = t]/yhat_t + 1/s``, i.e. tfsoftmax's
  gradient plus the same constant ``1/s`` on every class of the sample. Behind
  a softmax that constant vanishes: the softmax Jacobian ``diag(a) - a a^T``
  maps the all-ones vector to ``a (1 - sum a) = 0``.
* it **clips** to ``[1e-7, 1 - 1e-7]``. Below ``1e-7`` the loss is capped at
  ``-log(1e-7) = 16.118`` and, because the clip's gradient is zero outside the
  range, the gradient is exactly 0 — also at a one-hot prediction.

But the Keras CCE often never sees probabilities at all. Keras' softmax
(``keras.activations.softmax``, ``keras.ops.softmax``, ``keras.layers.Softmax``)
attaches its input to its output as ``output._keras_logits``, and the TensorFlow
backend's ``categorical_crossentropy`` (``keras/src/backend/tensorflow/nn.py``,
``_get_logits``) looks for it; inside a ``tf.function`` it also recognises any
tensor made by a ``Softmax`` op (``output.op.type == "Softmax"``) and takes
``output.op.inputs[0]``. Either way it switches to ``from_logits=True`` and
computes ``tf.nn.softmax_cross_entropy_with_logits`` — no renormalisation, no
clip, the exact loss ``logsumexp(z) - z_t`` and the gradient ``a - y``. So
"Keras softmax + Keras CCE" is the fused softmax-cross-entropy, and
``tfsoftmax compare``'s ``keras`` column (``keras.activations.softmax`` and
``keras.layers.Softmax`` + Keras CCE) is the fused op too. The clip path is
taken only for a tensor without that link: a constant, ``tf.identity(a)``,
an eager ``tf.nn.softmax`` output, ``JacobianSoftmax``'s output (its op is
``IdentityN``, from ``tf.custom_gradient``), or a float64 softmax passed to a
Keras CCE left at its default float32 dtype (the cast makes a new tensor).

This script prints three things:

1. ``yhat`` given directly (float32 and float64): both losses and both
   gradients ``dL/dyhat``, and their difference (the per-sample constant).
2. the same cases as logits ``z = log(yhat)`` through a softmax: tfsoftmax's
   chain (``JacobianSoftmax`` + its CCE) against Keras' (``keras.activations.
   softmax`` + Keras' CCE, i.e. from the logits) and against Keras' CCE on the
   same probabilities with the logits link cut (``tf.identity``), with
   ``dL/dz`` side by side: on ordinary inputs all three agree to rounding.
3. checks that show the ``_keras_logits`` behaviour directly.

Three classes, the true class first, one sample per row (so the batch mean is
the sample's loss). Every custom column is finite: no ``nan`` or ``inf``.
Runs in about 3 s (mostly TensorFlow's import):

    python examples/compare_cce.py
"""

import tfsoftmax  # first: it selects Keras' TensorFlow backend before Keras loads

# isort: split

import keras
import numpy as np
import tensorflow as tf

from tfsoftmax.layers import JacobianSoftmax
from tfsoftmax.losses import CategoricalCrossentropy

DTYPES = ("float32", "float64")
Y_TRUE = [1.0, 0.0, 0.0]  # one-hot, the true class is the first

# (name, yhat) with yhat[0] the true class's probability. Written in float64;
# each dtype gets its own rounding (in float32, 1e-45 becomes the subnormal
# 1.4e-45 and 1 - 1e-9 becomes exactly 1).
CASES = [
    ("ordinary", [0.7, 0.2, 0.1]),
    ("true 1e-8", [1e-8, (1 - 1e-8) / 2, (1 - 1e-8) / 2]),
    ("true 1e-30", [1e-30, 0.5, 0.5]),
    ("true 1e-45", [1e-45, 0.5, 0.5]),
    ("true exact 0", [0.0, 0.5, 0.5]),
    ("other exact 0", [0.7, 0.3, 0.0]),
    ("one-hot", [1.0, 0.0, 0.0]),
    ("true 1-1e-9", [1 - 1e-9, 5e-10, 5e-10]),
]
# Logit standing in for log(0): exp(-1000 - max) is exactly 0 in both dtypes.
LOG_ZERO = -1000.0


# --------------------------------------------------------------------------- formatting
def num(x):
    """One number, short: 4 significant digits (nan and inf spelled as such; no -0)."""
    return f"{float(x) + 0.0:.4g}"


def vec(v):
    """A vector as ``[a b c]``."""
    return "[" + " ".join(num(x) for x in np.ravel(v)) + "]"


def constant_shift(a, b):
    """``a - b`` as one number when it is the same on every class, else the vector."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if np.allclose(diff, diff[0], rtol=1e-6, atol=1e-6 * max(1.0, abs(diff[0]))):
        return f"+{num(diff[0])} on all" if diff[0] >= 0 else f"{num(diff[0])} on all"
    return vec(diff)


def print_table(title, header, rows):
    """Columns separated by ``|``; every data row starts with its dtype."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    print(title)
    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    print()


# --------------------------------------------------------------------------- losses
def value_and_grad(loss_fn, x, forward=lambda x: x):
    """``(L, dL/dx)`` for ``L = loss_fn(Y_TRUE, forward(x))``, eagerly."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_fn(tf.constant([Y_TRUE], x.dtype), forward(x))
    return loss.numpy(), tape.gradient(loss, x).numpy()[0]


def probabilities_table():
    header = ["dtype", "case", "yhat", "custom L", "keras L", "custom dL/dyhat", "keras dL/dyhat"]
    header.append("keras - custom")
    rows = []
    for dtype in DTYPES:
        custom = CategoricalCrossentropy(dtype=dtype)
        builtin = keras.losses.CategoricalCrossentropy(dtype=dtype)  # dtype: see check 3
        for name, probabilities in CASES:
            y_hat = np.array([probabilities]).astype(dtype)
            c_loss, c_grad = value_and_grad(custom, y_hat)
            # The op gives the same value and gradient as the Keras-loss class.
            o_loss, o_grad = value_and_grad(tfsoftmax.ops.categorical_crossentropy, y_hat)
            assert o_loss == c_loss and np.array_equal(o_grad, c_grad), name
            k_loss, k_grad = value_and_grad(builtin, y_hat)
            row = [dtype, name, vec(y_hat), num(c_loss), num(k_loss), vec(c_grad), vec(k_grad)]
            rows.append(row + [constant_shift(k_grad, c_grad)])
    print_table("1. Probabilities yhat given directly: value and gradient wrt yhat", header, rows)


def logits_of(probabilities, dtype):
    """``z = log(yhat)`` in float64 (``LOG_ZERO`` for 0), then rounded to ``dtype``."""
    p = np.array([probabilities], np.float64)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log(p), LOG_ZERO).astype(dtype)


def logits_table():
    header = ["dtype", "case", "a_true", "custom L", "keras L", "custom dL/dz", "keras dL/dz"]
    header += ["clipped dL/dz", "max abs(custom-keras)"]
    rows = []
    for dtype in DTYPES:
        custom = CategoricalCrossentropy(dtype=dtype)
        builtin = keras.losses.CategoricalCrossentropy(dtype=dtype)  # dtype: see check 3
        softmax = JacobianSoftmax(dtype=dtype)
        for name, probabilities in CASES:
            z = logits_of(probabilities, dtype)
            c_loss, c_grad = value_and_grad(custom, z, softmax)
            # keras.activations.softmax sets ._keras_logits: Keras' CCE uses z itself.
            k_loss, k_grad = value_and_grad(builtin, z, keras.activations.softmax)
            # tf.identity drops the attribute: Keras' CCE sees only probabilities.
            _, p_grad = value_and_grad(
                builtin, z, lambda z: tf.identity(keras.activations.softmax(z))
            )
            a_true = softmax(tf.constant(z)).numpy()[0, 0]
            diff = np.max(np.abs(c_grad.astype(np.float64) - k_grad))
            rows.append(
                [dtype, name, num(a_true), num(c_loss), num(k_loss), vec(c_grad)]
                + [vec(k_grad), vec(p_grad), num(diff)]
            )
    print_table(
        "2. The same cases as logits z = log(yhat) (log 0 -> -1000) through a softmax: value\n"
        "   and gradient wrt z. a_true = softmax(z)[true] as computed; custom = JacobianSoftmax\n"
        "   + tfsoftmax CCE; keras = keras.activations.softmax + Keras CCE (from the logits, see\n"
        "   3); clipped = Keras CCE on tf.identity(keras.activations.softmax(z)), probabilities",
        header,
        rows,
    )


# --------------------------------------------------------------------------- _keras_logits
def keras_logits_checks():
    """Keras' CCE at z = [-200, 0, 0]: from the logits 200.69, from probabilities 16.12."""
    z = tf.constant([[-200.0, 0.0, 0.0]])
    y = tf.constant([Y_TRUE])
    z64, y64 = tf.cast(z, tf.float64), tf.cast(y, tf.float64)
    cce = keras.losses.CategoricalCrossentropy()  # dtype float32, Keras' default
    cce64 = keras.losses.CategoricalCrossentropy(dtype="float64")
    custom = CategoricalCrossentropy()
    a = keras.activations.softmax(z)
    a64 = keras.activations.softmax(z64)
    in_graph = tf.function(lambda z: cce(y, tf.nn.softmax(z)))
    checks = [
        ("keras.activations.softmax(z) has ._keras_logits", hasattr(a, "_keras_logits")),
        ("  ... and it is z itself", a._keras_logits is z),
        ("Keras CCE(keras.activations.softmax(z))     [logits]", cce(y, a)),
        ("Keras CCE(keras.layers.Softmax()(z))        [logits]", cce(y, keras.layers.Softmax()(z))),
        ("Keras CCE(tf.identity(softmax(z)))          [clipped]", cce(y, tf.identity(a))),
        ("Keras CCE(tf.nn.softmax(z)), eager          [clipped]", cce(y, tf.nn.softmax(z))),
        ("Keras CCE(tf.nn.softmax(z)) in tf.function  [logits]", in_graph(z)),
        ("Keras CCE(JacobianSoftmax()(z))             [clipped]", cce(y, JacobianSoftmax()(z))),
        ("float64: Keras CCE (float32) of softmax     [clipped]", cce(y64, a64)),
        ("float64: Keras CCE(dtype='float64')         [logits]", cce64(y64, a64)),
        ("tfsoftmax CCE(JacobianSoftmax()(z))  [a_true=0: floor]", custom(y, JacobianSoftmax()(z))),
    ]
    print("3. The _keras_logits link, at z = [-200, 0, 0] (float32 unless stated):")
    print("   exact loss logsumexp(z) - z_true = 200.69; Keras' clip caps it at -log(1e-7) = 16.12")
    width = max(len(label) for label, _ in checks)
    for label, value in checks:
        value = value if isinstance(value, bool) else num(value)
        print(f"   {label.ljust(width)}  {value}")
    print()


NOTES = """\
Notes
- Table 1, ordinary rows: the losses agree; Keras' gradient is tfsoftmax's plus the
  constant 1/sum(yhat) = 1 on every class (its renormalisation). Behind a softmax the
  constant disappears: in table 2's ordinary rows the "clipped" column -- Keras' own
  probability path, renormalisation included -- equals custom dL/dz.
- yhat_true below 1e-7 (1e-8, 1e-30, 1e-45, 0): Keras clips, so its loss stops at 16.12
  and its gradient is exactly 0. tfsoftmax keeps the exact -log(yhat) and -1/yhat down to
  the floor (float32: 1.175e-38, float64: 2.225e-308): 1e-45 and 0 are floored in
  float32 (loss 87.34, gradient -8.507e+37); in float64 1e-45 is exact and only 0 is
  floored (loss 708.4, gradient -4.494e+307). Large, but finite.
- One-hot and 1 - 1e-9: Keras clips at 1 - 1e-7 (loss 1.192e-07 in float32, 1e-07 in
  float64; gradient 0). tfsoftmax gives the exact loss (0, 1e-09) and gradient -1/yhat.
- Table 2, through a softmax: the Keras CCE on a Keras softmax works from the logits
  (softmax_cross_entropy_with_logits): loss logsumexp(z) - z_true, gradient a - y, never
  clipped. tfsoftmax's chain multiplies -y/yhat by the softmax Jacobian: exactly a - y
  while softmax(z)[true] >= the floor, so the two agree on every row where the true
  class's probability is representable; where it underflows below the floor the custom
  gradient is damped by a_true/floor and is exactly 0 once a_true is 0 (float32:
  1e-45 and 0; float64: 0), while Keras from the logits still says a - y. That is
  the notebook's math, kept; it needs absurd logits (the true one more than 87 below
  logsumexp(z) in float32, 708 in float64). (-1000 stands for log 0: Keras' loss 1000.)
- Keras' CCE on the same probabilities without the logits link (tf.identity) is the
  clipped path: gradient 0 as soon as yhat_true < 1e-7, i.e. it stops learning long
  before tfsoftmax does.
- Check 3: Keras' softmax attaches ._keras_logits; in a tf.function any Softmax op's
  input is found by op type. tfsoftmax's JacobianSoftmax output carries neither (it is an
  IdentityN op from tf.custom_gradient), so Keras' CCE after JacobianSoftmax is the
  clipped probability path. A Keras CCE left at its default float32 dtype casts a
  float64 softmax to float32 and so loses the link (and float64 precision): pass
  dtype="float64", as tfsoftmax.compare does.
- Consequence for `tfsoftmax compare`: its "keras" implementation (keras.layers.Softmax
  / keras.activations.softmax + Keras CCE) is the fused softmax cross-entropy from the
  logits; Keras' clip and renormalisation never act there. The custom chain agrees with
  it to rounding because, for MNIST's probabilities, -y/yhat times the Jacobian is a - y.
"""


def main():
    np.set_printoptions(precision=4)
    probabilities_table()
    logits_table()
    keras_logits_checks()
    print(NOTES)


if __name__ == "__main__":
    main()
