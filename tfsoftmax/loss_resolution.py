"""Any loss Keras accepts, resolved and reduced as ``model.fit`` reduces it.

``train_sgd(loss=...)`` takes what ``model.compile(loss=...)`` takes:

* ``None`` — :class:`tfsoftmax.losses.CategoricalCrossentropy` in the model's dtype;
* a ``keras.losses.Loss`` — used as it is (its own reduction), unless its
  reduction is ``None``/``"none"`` (a vector, not a loss to descend: refused);
* a string — resolved by ``keras.losses.get``: a class name
  (``"CategoricalCrossentropy"``) gives that loss computing in the model's
  dtype, a function name (``"categorical_crossentropy"``) the function below;
* a function ``f(y_true, y_pred)`` — per-sample losses ``ℓ_i`` (or a scalar),
  wrapped in :class:`MeanLoss`, Keras' ``"sum_over_batch_size"`` reduction:
  ``L = (1/b) Σ_i ℓ_i`` (a scalar is its own mean).

A function gets the same wrapper on every call (cached per function and
dtype), so a second ``train_sgd`` call reuses the compiled engine.
"""

import re
import weakref

from tfsoftmax._tf import keras, tf

__all__ = ["MeanLoss", "resolve_loss"]

_NOT_A_LOSS = ("none", None)

# function -> {dtype name: MeanLoss}; weak, so a wrapper lives as long as its function.
_WRAPPERS = weakref.WeakKeyDictionary()
# dtype name -> the default loss for models whose variables have that dtype.
_DEFAULTS = {}


class MeanLoss(keras.losses.Loss):
    """``L = (1/b) Σ_i fn(y_true, y_pred)_i``: a per-sample function as Keras reduces it
    (``"sum_over_batch_size"``), computing in ``dtype``."""

    def __init__(self, fn, dtype=None, name=None):
        # The name opens a name scope: letters, digits and "_.-", no leading "_".
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name or getattr(fn, "__name__", "")).lstrip("_.-")
        super().__init__(
            name=name or "loss",
            reduction="sum_over_batch_size",
            dtype=dtype,
        )
        self.fn = fn

    def call(self, y_true, y_pred):
        values = self.fn(y_true, y_pred)
        # A scalar (a function that averages itself) as a one-element vector: Keras
        # then reduces it like any other (its mean, scaled 1/R under a strategy).
        return tf.reshape(values, [1]) if values.shape.rank == 0 else values

    def get_config(self):
        fn = self.fn
        return {**super().get_config(), "fn": f"{fn.__module__}.{fn.__qualname__}"}


def _wrapped(fn, dtype_name):
    """The cached :class:`MeanLoss` of ``fn`` in ``dtype_name``."""
    try:
        per_dtype = _WRAPPERS.setdefault(fn, {})
    except TypeError:  # not weak-referenceable: a fresh wrapper
        return MeanLoss(fn, dtype=dtype_name)
    if dtype_name not in per_dtype:
        per_dtype[dtype_name] = MeanLoss(fn, dtype=dtype_name)
    return per_dtype[dtype_name]


def _from_string(name, dtype_name):
    try:
        resolved = keras.losses.get(name)
    except ValueError as error:
        raise ValueError(f"loss {name!r} is not a Keras loss name ({error})") from None
    if isinstance(resolved, keras.losses.Loss):
        config = {key: value for key, value in resolved.get_config().items() if key != "name"}
        try:
            return type(resolved)(**config, dtype=dtype_name)
        except TypeError:
            return resolved
    return _wrapped(resolved, dtype_name)


def resolve_loss(loss, dtype):
    """The loss ``train_sgd`` descends for ``loss`` on a model whose variables have ``dtype``.

    Raises:
        ValueError: an unknown name, something not callable, or a Keras loss
            whose reduction leaves a vector (``reduction=None``).
    """
    dtype_name = tf.as_dtype(dtype).name
    if loss is None:
        if dtype_name not in _DEFAULTS:
            from tfsoftmax.losses import CategoricalCrossentropy

            _DEFAULTS[dtype_name] = CategoricalCrossentropy(dtype=dtype_name)
        return _DEFAULTS[dtype_name]
    if isinstance(loss, str):
        return _from_string(loss, dtype_name)
    if isinstance(loss, keras.losses.Loss):
        if loss.reduction in _NOT_A_LOSS:
            raise ValueError(
                f"loss {type(loss).__name__} has reduction={loss.reduction!r}: it returns one "
                "value per sample, not a loss to descend. Use reduction='sum_over_batch_size'."
            )
        return loss
    if not callable(loss):
        raise ValueError(
            f"loss must be a callable loss(y_true, y_pred), a Keras loss name or None, got {loss!r}"
        )
    return _wrapped(loss, dtype_name)
