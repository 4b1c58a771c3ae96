"""The cases :mod:`tfsoftmax.gradcheck` checks: inputs, and each op's three derivations.

:func:`gradcheck_problem` draws the inputs in the notebook's ranges (pixels
in [0, 1], weights ``0.1 N(0, 1)``, logits ``N(0, 1)``, CCE probabilities
``>= 1/(2 classes)``), logits ``(batch, 2, classes)`` for the softmax over
:data:`SOFTMAX_AXES`, and a mask keeping about 70 % of the positions with the
first sample fully masked and the last one not at all. :func:`gradcheck_cases`
yields, per op and method, the custom function, its built-in twin
(:mod:`tfsoftmax.autodiff`, or ``keras.layers.Softmax`` for the masked and
multi-axis softmax) and the NumPy reference's VJP
(:mod:`tfsoftmax.gradcheck_reference`).
"""

import inspect

import numpy as np

from tfsoftmax.gradcheck_reference import (
    reference_cce,
    reference_chain,
    reference_dense,
    reference_masked_softmax,
    reference_softmax,
    reference_softmax_over_axes,
)

__all__ = ["SOFTMAX_AXES", "gradcheck_cases", "gradcheck_problem"]

#: The axes of the multi-axis softmax rows, on logits of shape ``(batch, 2, classes)``.
SOFTMAX_AXES = (0, 2)


def gradcheck_problem(seed, batch, features, classes, dtype):
    """Inputs in the notebook's ranges: pixels in [0, 1], weights ~0.1, probabilities > 0."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(batch, features))
    w = 0.1 * rng.standard_normal((classes, features + 1))
    labels = rng.integers(0, classes, batch)
    y = np.eye(classes)[labels]
    z = rng.standard_normal((batch, classes))
    # Probabilities >= 1 / (2 classes), mixed with the uniform distribution:
    # the finite-difference step stays far from the pole of log at 0.
    p = 0.5 * np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) + 0.5 / classes
    z3 = rng.standard_normal((batch, 2, classes))  # for the softmax over SOFTMAX_AXES
    arrays = dict(x=x, w=w, y=y, z=z, p=p, z3=z3)
    problem = {name: value.astype(dtype) for name, value in arrays.items()}
    # The mask: about 70 % kept; the first sample fully masked, the last one not at all.
    keep = rng.random((batch, classes)) > 0.3
    keep[0], keep[-1] = False, True
    problem["keep"] = keep
    return problem


def _keras_softmax(z, axis, keep):
    """``keras.layers.Softmax`` (in ``z``'s dtype), masked by ``keep`` unless it is ``None``."""
    from tfsoftmax._tf import keras

    layer = keras.layers.Softmax(axis=axis, dtype=z.dtype)
    return layer(z) if keep is None else layer(z, mask=keep)


def _with_keywords(softmax, method, **keywords):
    """``z -> softmax(z, method, **keywords)``; ``None`` if ``softmax`` cannot take them."""
    try:
        inspect.signature(softmax).bind("z", method, **keywords)
    except TypeError:
        return None  # a replacement softmax without mask=/axis=: its rows fail
    except ValueError:  # no signature to inspect: try it
        pass
    return lambda z: softmax(z, method, **keywords)


def gradcheck_cases(custom, data):
    """``(op, method, custom fn, built-in fn, inputs, out shape, reference VJP)`` per case."""
    from tfsoftmax.autodiff import categorical_crossentropy as cce
    from tfsoftmax.autodiff import dense, softmax

    c_dense = custom["bias_trick_dense"]
    c_softmax = custom["jacobian_softmax"]
    c_cce = custom["categorical_crossentropy"]
    x, w, y, z, p = (data[k] for k in "xwyzp")

    yield "bias_trick_dense", "-", c_dense, dense, [x, w], y.shape, reference_dense(x, w)
    for m in ("jacobian", "vjp"):
        yield (
            "jacobian_softmax",
            m,
            lambda z, m=m: c_softmax(z, m),
            softmax,
            [z],
            z.shape,
            reference_softmax(z, m),
        )
    yield from _masked_and_multi_axis_cases(c_softmax, data)
    # Inputs ordered (y_pred, y_true): the reference has the y_pred gradient only.
    yield (
        "categorical_crossentropy",
        "-",
        lambda p, y: c_cce(y, p),
        lambda p, y: cce(y, p),
        [p, y],
        (),
        reference_cce(y, p),
    )
    for m in ("jacobian", "vjp"):
        yield (
            "dense->softmax->cce",
            m,
            lambda x, w, m=m: c_cce(y, c_softmax(c_dense(x, w), m)),
            lambda x, w: cce(y, softmax(dense(x, w))),
            [x, w],
            (),
            reference_chain(x, w, y, m),
        )


def _masked_and_multi_axis_cases(c_softmax, data):
    """The softmax with a position mask, and over several axes, both methods."""
    z, keep, z3 = data["z"], data["keep"], data["z3"]
    for m in ("jacobian", "vjp"):
        yield (
            "jacobian_softmax+mask",
            m,
            _with_keywords(c_softmax, m, mask=keep),
            lambda z: _keras_softmax(z, -1, keep),
            [z],
            z.shape,
            reference_masked_softmax(z, keep, m),
        )
    for m in ("jacobian", "vjp"):
        yield (
            "jacobian_softmax+axes",
            m,
            _with_keywords(c_softmax, m, axis=SOFTMAX_AXES),
            lambda z: _keras_softmax(z, SOFTMAX_AXES, None),
            [z3],
            z3.shape,
            reference_softmax_over_axes(z3, SOFTMAX_AXES, m),
        )
