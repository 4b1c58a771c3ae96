"""Initialising a bias-trick kernel ``W`` of shape ``(units, inputs + 1)``, bias in the last column.

* :class:`NotebookInitializer` — the notebook's ``W[:, :-1] ~ 0.01·N(0, 1)``
  and ``W[:, -1] = 0.01``; also ``kernel_initializer="notebook"``.
* :class:`DenseLayoutInitializer` — any Keras initializer applied the way
  ``keras.layers.Dense`` applies it: the kernel initializer draws Dense's
  ``(inputs, units)`` kernel ``K`` (fan-in ``inputs``, fan-out ``units``) and
  the bias initializer the ``(units,)`` bias ``b``; ``W = [Kᵀ, b]``.

Exported again by :mod:`tfsoftmax.layers`; registered with Keras as
``"tfsoftmax>NotebookInitializer"`` (saved models load whichever module they
name).
"""

from tfsoftmax._tf import keras, tf

__all__ = ["DenseLayoutInitializer", "NotebookInitializer", "get_initializer"]


@keras.saving.register_keras_serializable(package="tfsoftmax")
class NotebookInitializer(keras.initializers.Initializer):
    """The notebook's initialisation of a bias-trick kernel.

    For a kernel of shape ``(units, inputs + 1)``: the weight columns
    ``W[:, :-1]`` are drawn from ``0.01·N(0, 1)`` and the bias column
    ``W[:, -1]`` is set to ``0.01`` — the notebook's
    ``0.01*np.random.randn(output_size, input_size)`` and
    ``weights[:, -1] = 0.01``. Pass it (or the string ``"notebook"``) as
    ``BiasTrickDense(kernel_initializer=...)``.

    Args:
        seed: ``None``, an integer or a ``keras.random.SeedGenerator``, with the
            same meaning as for ``keras.initializers.RandomNormal``: an integer
            or ``None`` gives the same values on every call of one instance.

    Example:

    >>> init = NotebookInitializer(seed=0)
    >>> w = init((10, 785))
    >>> w.shape, round(float(w[0, -1]), 6)
    (TensorShape([10, 785]), 0.01)
    """

    def __init__(self, seed=None):
        self._normal = keras.initializers.RandomNormal(mean=0.0, stddev=0.01, seed=seed)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 2 or shape[1] < 2:
            raise ValueError(
                "NotebookInitializer initialises a bias-trick kernel of shape "
                f"(units, inputs + 1) with inputs >= 1; got shape {shape}"
            )
        dtype = dtype or keras.backend.floatx()
        weights = self._normal((shape[0], shape[1] - 1), dtype=dtype)
        bias = tf.fill((shape[0], 1), tf.constant(0.01, dtype=dtype))
        return tf.concat([tf.convert_to_tensor(weights), bias], axis=1)

    def get_config(self):
        return {"seed": self._normal.get_config()["seed"]}


def get_initializer(identifier):
    """``"notebook"`` -> :class:`NotebookInitializer`; anything else as Keras resolves it."""
    if isinstance(identifier, str) and identifier.lower() == "notebook":
        return NotebookInitializer()
    return keras.initializers.get(identifier)


class DenseLayoutInitializer:
    """Initialise a bias-trick kernel the way ``keras.layers.Dense`` initialises its weights.

    ``W[:, :-1] = kernel_initializer((inputs, units))ᵀ`` — so fan-in and
    fan-out are ``inputs`` and ``units``, not ``inputs + 1`` — and
    ``W[:, -1] = bias_initializer((units,))``, zeros when it is ``None``
    (Dense's default ``bias_initializer="zeros"``).
    """

    def __init__(self, kernel_initializer, bias_initializer=None):
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def __call__(self, shape, dtype=None):
        units, columns = shape
        kernel = tf.convert_to_tensor(self.kernel_initializer((columns - 1, units), dtype=dtype))
        if self.bias_initializer is None:
            bias = tf.zeros((units,), dtype=kernel.dtype)
        else:
            bias = tf.convert_to_tensor(self.bias_initializer((units,), dtype=dtype))
        return tf.concat([tf.transpose(kernel), bias[:, None]], axis=1)
