"""The notebook's two layers as Keras 3 layers, plus its weight initialisation.

* :class:`BiasTrickDense` — a dense layer whose bias lives in the last column of
  one ``(units, inputs + 1)`` kernel (the *bias trick*), computed by
  :func:`tfsoftmax.ops.bias_trick_dense` and its hand-derived gradient.
* :class:`JacobianSoftmax` — softmax whose backward pass multiplies each
  sample's Jacobian by the upstream gradient (:func:`tfsoftmax.ops.jacobian_softmax`).
* :class:`NotebookInitializer` — the notebook's ``0.01·N(0, 1)`` weights with a
  ``0.01`` bias column, also available as ``kernel_initializer="notebook"``.
* :func:`to_bias_trick` / :func:`from_bias_trick` — exact converters between a
  ``keras.layers.Dense`` ``(kernel, bias)`` pair and the bias-trick kernel.

Every class is registered as Keras-serializable under the package name
``"tfsoftmax"``, so ``keras.models.load_model`` finds them once this module has
been imported — no ``custom_objects`` needed.
"""

import numpy as np

from tfsoftmax import ops
from tfsoftmax._tf import keras, tf

__all__ = [
    "BiasTrickDense",
    "JacobianSoftmax",
    "NotebookInitializer",
    "to_bias_trick",
    "from_bias_trick",
]


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


def _get_initializer(identifier):
    """``"notebook"`` -> :class:`NotebookInitializer`; anything else as Keras resolves it."""
    if isinstance(identifier, str) and identifier.lower() == "notebook":
        return NotebookInitializer()
    return keras.initializers.get(identifier)


class _DenseLayoutInitializer:
    """Initialise a bias-trick kernel the way ``keras.layers.Dense`` initialises its weights.

    The Keras initializer draws Dense's ``(inputs, units)`` kernel — so fan-in
    and fan-out are ``inputs`` and ``units``, not ``inputs + 1`` — which is
    transposed into ``W[:, :-1]``; the bias column starts at zero, like
    Dense's default ``bias_initializer="zeros"``.
    """

    def __init__(self, initializer):
        self.initializer = initializer

    def __call__(self, shape, dtype=None):
        units, columns = shape
        kernel = tf.convert_to_tensor(self.initializer((columns - 1, units), dtype=dtype))
        return tf.concat([tf.transpose(kernel), tf.zeros((units, 1), dtype=kernel.dtype)], axis=1)


class _OnDenseKernel:
    """Apply a Keras regularizer or constraint to ``W[:, :-1]`` seen in Dense's layout.

    ``kernel_regularizer`` and ``kernel_constraint`` of ``keras.layers.Dense``
    act on its ``(inputs, units)`` kernel and never on the bias; this gives
    a :class:`BiasTrickDense` the same behaviour (a constraint such as
    ``MaxNorm(axis=0)`` means the same thing on both layers).
    """

    def __init__(self, fn, is_constraint):
        self.fn = fn
        self.is_constraint = is_constraint

    def __call__(self, w):
        w = tf.convert_to_tensor(w)
        result = self.fn(tf.transpose(w[:, :-1]))
        if not self.is_constraint:
            return result
        return tf.concat([tf.transpose(tf.convert_to_tensor(result)), w[:, -1:]], axis=1)


def _check_floating(layer, inputs):
    dtype = tf.as_dtype(inputs.dtype)
    if not dtype.is_floating:
        raise TypeError(
            f"{type(layer).__name__} '{layer.name}' needs floating-point inputs, got dtype "
            f"{dtype.name}. Cast the inputs first (images: scale them to [0, 1], e.g. "
            "tfsoftmax.datasets.preprocess)."
        )


def _check_floating_policy(layer):
    """A floating-point ``dtype`` (or mixed-precision policy), checked at construction."""
    policy = layer.dtype_policy
    for kind, name in (("compute", policy.compute_dtype), ("variable", policy.variable_dtype)):
        if not tf.as_dtype(name).is_floating:
            raise ValueError(
                f"{type(layer).__name__}: `dtype` must be floating-point (float16, bfloat16, "
                f"float32, float64, or a policy such as 'mixed_float16'); got {kind} dtype {name}"
            )


@keras.saving.register_keras_serializable(package="tfsoftmax")
class BiasTrickDense(keras.layers.Layer):
    """A dense layer with the bias absorbed into the kernel (the *bias trick*).

    It computes ``outputs = inputs @ W[:, :-1].T + W[:, -1]`` — the notebook's
    ``Z = W [X; 1]`` in Keras' batch-major layout — with one kernel ``W`` of
    shape ``(units, inputs + 1)`` whose last column is the bias. The forward
    and backward passes are :func:`tfsoftmax.ops.bias_trick_dense` and its
    hand-derived gradient ``dW = Gᵀ [X, 1]``, ``dX = G W[:, :-1]``.
    ``model.summary()`` counts ``units * (inputs + 1)`` parameters, the same
    as ``keras.layers.Dense(units)``; :func:`to_bias_trick` and
    :func:`from_bias_trick` copy weights between the two exactly.

    Initialisation, regularisation and constraints follow ``keras.layers.Dense``:
    a Keras initializer (default ``"glorot_uniform"``) draws Dense's
    ``(inputs, units)`` kernel — fan-in ``inputs``, fan-out ``units`` — and the
    bias column starts at zero, as Dense's bias does. ``kernel_regularizer``
    and ``kernel_constraint`` see that same ``(inputs, units)`` view,
    ``W[:, :-1].T``, and leave the bias column alone. The exception is
    ``"notebook"`` / :class:`NotebookInitializer`, which fills the whole kernel:
    ``0.01·N(0, 1)`` weights and a ``0.01`` bias column.

    Inputs of rank > 2 are handled like ``keras.layers.Dense``: the layer acts
    on the last axis, ``(batch, ..., inputs) -> (batch, ..., units)``.

    Args:
        units: Positive integer, dimensionality of the output space.
        kernel_initializer: Initializer for the kernel: ``"notebook"``, a
            :class:`NotebookInitializer`, or any Keras initializer (applied as
            described above). Defaults to ``"glorot_uniform"``.
        kernel_regularizer: Optional Keras regularizer for ``W[:, :-1].T``.
        kernel_constraint: Optional Keras constraint for ``W[:, :-1].T``.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Floating-point tensor of shape ``(batch, ..., inputs)``.

    Returns:
        Tensor of shape ``(batch, ..., units)``: the logits ``Z``.

    Example:

    >>> layer = BiasTrickDense(10, kernel_initializer="notebook")
    >>> layer(np.zeros((2, 784), "float32")).shape
    TensorShape([2, 10])
    >>> tuple(layer.kernel.shape)  # bias in the last column
    (10, 785)
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        kernel_constraint=None,
        **kwargs,
    ):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"BiasTrickDense: `units` must be a positive integer, got units={units!r}"
            )
        super().__init__(**kwargs)
        _check_floating_policy(self)
        self.units = int(units)
        self.kernel_initializer = _get_initializer(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        self._check_rank(input_shape)
        inputs = input_shape[-1]
        if inputs is None:
            raise ValueError(
                f"BiasTrickDense '{self.name}': the last dimension of the inputs (the number "
                f"of features) must be known to build the kernel; got input shape {input_shape}"
            )
        if isinstance(self.kernel_initializer, NotebookInitializer):
            initializer = self.kernel_initializer
        else:
            initializer = _DenseLayoutInitializer(self.kernel_initializer)
        regularizer = constraint = None
        if self.kernel_regularizer is not None:
            regularizer = _OnDenseKernel(self.kernel_regularizer, is_constraint=False)
        if self.kernel_constraint is not None:
            constraint = _OnDenseKernel(self.kernel_constraint, is_constraint=True)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.units, inputs + 1),
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
        )

    def call(self, inputs):
        self._check_inputs(inputs)
        # The kernel goes into the custom-gradient op as a tensor argument: a
        # captured variable breaks tf.custom_gradient, and under mixed precision
        # the variable is an autocast wrapper whose reads follow the dtype policy.
        # The cast is the float32 -> float16 step of mixed precision (a no-op otherwise).
        kernel = tf.cast(tf.convert_to_tensor(self.kernel), self.compute_dtype)
        if len(inputs.shape) == 2:
            return ops.bias_trick_dense(inputs, kernel)
        # Rank > 2: act on the last axis, like keras.layers.Dense.
        flat = tf.reshape(inputs, [-1, inputs.shape[-1]])
        outputs = ops.bias_trick_dense(flat, kernel)
        outputs = tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0))
        outputs.set_shape(inputs.shape[:-1] + [self.units])
        return outputs

    def compute_output_spec(self, inputs):
        # Functional models: report bad inputs when the model is built, not at predict.
        self._check_inputs(inputs)
        return super().compute_output_spec(inputs)

    def _check_rank(self, shape):
        if len(shape) < 2:
            raise ValueError(
                f"BiasTrickDense '{self.name}' expects inputs of rank >= 2, shaped "
                f"(batch, ..., features); got rank {len(shape)}, shape {tuple(shape)}"
            )

    def _check_inputs(self, inputs):
        _check_floating(self, inputs)
        self._check_rank(inputs.shape)
        if not self.built:
            return
        expected = self.kernel.shape[1] - 1
        if inputs.shape[-1] is not None and inputs.shape[-1] != expected:
            raise ValueError(
                f"BiasTrickDense '{self.name}' was built for inputs with {expected} features "
                f"(kernel shape {tuple(self.kernel.shape)}), but got inputs of shape "
                f"{tuple(inputs.shape)} with {inputs.shape[-1]} features"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfsoftmax")
class JacobianSoftmax(keras.layers.Layer):
    """Softmax whose gradient multiplies each sample's Jacobian by the upstream gradient.

    Forward: ``a = exp(z - max(z)) / sum(exp(z - max(z)))`` along ``axis``.
    Backward (``method="jacobian"``, the notebook's): for each sample,
    ``dz = J(a)ᵀ g`` with ``J(a) = diag(a) - a aᵀ``; ``method="vjp"`` computes
    the same product without forming ``J``: ``dz = a ⊙ (g - a·g)``. See
    :func:`tfsoftmax.ops.jacobian_softmax`.

    Args:
        axis: Integer, the axis along which the softmax normalisation is
            applied. Defaults to ``-1``.
        method: ``"jacobian"`` (default) or ``"vjp"``, the backward formula.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Floating-point logits.

    Returns:
        Probabilities with the same shape as ``inputs``, summing to 1 along ``axis``.

    Example:

    >>> layer = JacobianSoftmax()
    >>> layer(np.array([[1.0, 2.0, 1.0]], "float32")).numpy().round(4)
    array([[0.2119, 0.5761, 0.2119]], dtype=float32)
    """

    def __init__(self, axis=-1, method="jacobian", **kwargs):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"JacobianSoftmax: `axis` must be an integer, got axis={axis!r}")
        if method not in ops.SOFTMAX_METHODS:
            raise ValueError(
                f"JacobianSoftmax: unknown method={method!r}; expected one of {ops.SOFTMAX_METHODS}"
            )
        super().__init__(**kwargs)
        _check_floating_policy(self)
        self.axis = int(axis)
        self.method = method
        self._build_at_init()

    def call(self, inputs):
        self._check_inputs(inputs)
        rank = len(inputs.shape)
        axis = self.axis % rank
        if axis == rank - 1:
            return ops.jacobian_softmax(inputs, method=self.method)
        # Move the softmax axis last, apply, and move it back.
        perm = [d for d in range(rank) if d != axis] + [axis]
        outputs = ops.jacobian_softmax(tf.transpose(inputs, perm), method=self.method)
        return tf.transpose(outputs, np.argsort(perm).tolist())

    def compute_output_spec(self, inputs):
        # Functional models: report bad inputs when the model is built, not at predict.
        self._check_inputs(inputs)
        return super().compute_output_spec(inputs)

    def _check_inputs(self, inputs):
        _check_floating(self, inputs)
        rank = len(inputs.shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"JacobianSoftmax '{self.name}': axis={self.axis} is out of range for inputs "
                f"of rank {rank} (shape {tuple(inputs.shape)})"
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "method": self.method})
        return config


def _as_numpy(value, name):
    try:
        return np.asarray(value)
    except Exception as error:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from error


def to_bias_trick(kernel, bias):
    """Pack a ``keras.layers.Dense`` ``(kernel, bias)`` into one bias-trick kernel.

    Args:
        kernel: Dense's kernel, shape ``(inputs, units)`` (NumPy array, tensor
            or variable).
        bias: Dense's bias, shape ``(units,)``.

    Returns:
        NumPy array ``W`` of shape ``(units, inputs + 1)`` with
        ``W[:, :-1] = kernel.T`` and ``W[:, -1] = bias`` — a copy, exact to the bit.

    Example:

    >>> dense = keras.layers.Dense(10); dense.build((None, 784))
    >>> w = to_bias_trick(*dense.get_weights())
    >>> layer = BiasTrickDense(10); layer.build((None, 784)); layer.set_weights([w])
    """
    kernel = _as_numpy(kernel, "kernel")
    bias = _as_numpy(bias, "bias")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (inputs, units), got shape {kernel.shape}")
    if bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"bias must have shape (units,) = ({kernel.shape[1]},) to match kernel "
            f"{kernel.shape}, got shape {bias.shape}"
        )
    return np.concatenate([kernel.T, bias[:, None]], axis=1)


def from_bias_trick(w):
    """Split a bias-trick kernel into ``keras.layers.Dense``'s ``(kernel, bias)``.

    Args:
        w: Bias-trick kernel of shape ``(units, inputs + 1)`` (NumPy array,
            tensor or variable).

    Returns:
        ``(kernel, bias)`` NumPy arrays: ``kernel = W[:, :-1].T`` of shape
        ``(inputs, units)`` and ``bias = W[:, -1]`` of shape ``(units,)``,
        exact copies, ready for ``dense.set_weights([kernel, bias])``.
    """
    w = _as_numpy(w, "w")
    if w.ndim != 2 or w.shape[1] < 2:
        raise ValueError(
            f"w must be a bias-trick kernel of shape (units, inputs + 1) with inputs >= 1, "
            f"got shape {w.shape}"
        )
    return np.ascontiguousarray(w[:, :-1].T), w[:, -1].copy()
