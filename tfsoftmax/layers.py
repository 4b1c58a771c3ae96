"""The notebook's two layers as Keras 3 layers, plus its weight initialisation.

* :class:`BiasTrickDense` — a dense layer whose bias lives in the last column of
  one ``(units, inputs + 1)`` kernel (the *bias trick*), computed by
  :func:`tfsoftmax.ops.bias_trick_dense` and its hand-derived gradient.
* :class:`JacobianSoftmax` — softmax whose backward pass multiplies each
  sample's Jacobian by the upstream gradient (:func:`tfsoftmax.ops.jacobian_softmax`),
  over one or several axes, with Keras' masking.
* :class:`NotebookInitializer` (defined in :mod:`tfsoftmax.initializers`) — the
  notebook's ``0.01·N(0, 1)`` weights with a ``0.01`` bias column, also
  available as ``kernel_initializer="notebook"``.
* :func:`to_bias_trick` / :func:`from_bias_trick` (defined in
  :mod:`tfsoftmax.conversions`) — exact converters between a
  ``keras.layers.Dense`` ``(kernel, bias)`` pair and the bias-trick kernel.

Every class is registered as Keras-serializable under the package name
``"tfsoftmax"``, so ``keras.models.load_model`` finds them once this module has
been imported — no ``custom_objects`` needed.

Inputs must be floating-point: calling a layer on integers (e.g. uint8
pixels) raises ``TypeError`` (``keras.layers.Dense`` would cast them). A Keras
*model* casts its inputs to its ``keras.Input`` dtype before any layer runs,
so ``model.predict(uint8_images)`` behaves exactly as with Keras' own layers:
the values are cast, not scaled — scale them first
(``tfsoftmax.datasets.preprocess``); :func:`tfsoftmax.train_sgd` refuses them.
"""

import numpy as np

from tfsoftmax import ops
from tfsoftmax._dense_features import (
    DenseLayoutConstraint,
    DenseLayoutRegularizer,
    check_dense_only_arguments,
    dense_only_error,
)
from tfsoftmax._precision import DTypeError
from tfsoftmax._softmax_axes import check_axis_argument, softmax_axes
from tfsoftmax._tf import keras, tf
from tfsoftmax.conversions import from_bias_trick, to_bias_trick
from tfsoftmax.initializers import DenseLayoutInitializer, NotebookInitializer, get_initializer

__all__ = [
    "BiasTrickDense",
    "JacobianSoftmax",
    "NotebookInitializer",
    "to_bias_trick",
    "from_bias_trick",
]


def _check_floating(layer, inputs):
    dtype = tf.as_dtype(inputs.dtype)
    if not dtype.is_floating:
        raise DTypeError(
            f"{type(layer).__name__} '{layer.name}' needs floating-point inputs, got dtype "
            f"{dtype.name}. Cast the inputs first (images: scale them to [0, 1], e.g. "
            "tfsoftmax.datasets.preprocess)."
        )


def _check_floating_policy(layer):
    """A floating-point ``dtype`` (or mixed-precision policy), checked at construction."""
    policy = layer.dtype_policy
    for kind, name in (("compute", policy.compute_dtype), ("variable", policy.variable_dtype)):
        if not tf.as_dtype(name).is_floating:
            raise DTypeError(
                f"{type(layer).__name__}: `dtype` must be floating-point (float16, bfloat16, "
                f"float32, float64, or a policy such as 'mixed_float16'); got {kind} dtype {name}"
            )


@keras.saving.register_keras_serializable(package="tfsoftmax")
class BiasTrickDense(keras.layers.Layer):
    """A dense layer with the bias absorbed into the kernel (the *bias trick*).

    It computes ``outputs = activation(inputs @ W[:, :-1].T + W[:, -1])`` — the
    notebook's ``Z = W [X; 1]`` in Keras' batch-major layout — with one kernel
    ``W`` of shape ``(units, inputs + 1)`` whose last column is the bias. The
    product is :func:`tfsoftmax.ops.bias_trick_dense` with its hand-derived
    gradient ``dW = Gᵀ [X, 1]``, ``dX = G W[:, :-1]``; the activation (any
    Keras activation, default none) is applied after it, as Dense applies it.
    ``model.summary()`` counts ``units * (inputs + 1)`` parameters, the same
    as ``keras.layers.Dense(units)``; :func:`to_bias_trick` and
    :func:`from_bias_trick` copy weights between the two exactly.

    Initialisation, regularisation and constraints follow ``keras.layers.Dense``
    on the views ``K = W[:, :-1].T`` (Dense's ``(inputs, units)`` kernel) and
    ``b = W[:, -1]`` (its bias): the kernel initializer (default
    ``"glorot_uniform"``, fan-in ``inputs``, fan-out ``units``) draws ``K``, the
    bias initializer (default zeros) ``b``; the kernel and bias regularizers
    and constraints see ``K`` and ``b`` (one weight, so one regularization loss,
    their sum). The exception is ``"notebook"`` / :class:`NotebookInitializer`,
    which fills the whole kernel: ``0.01·N(0, 1)`` weights and a ``0.01`` bias
    column (``bias_initializer`` must then be left unset).

    Inputs of rank > 2 are handled like ``keras.layers.Dense``: the layer acts
    on the last axis, ``(batch, ..., inputs) -> (batch, ..., units)``. A
    ``tf.SparseTensor`` input is multiplied as sparse, never densified. A mask
    (e.g. from ``Embedding(mask_zero=True)``) is passed on unchanged.

    Not offered, on purpose (``ValueError``/``NotImplementedError`` naming
    ``keras.layers.Dense``): ``use_bias=False`` (the bias trick is the bias),
    LoRA (``lora_rank``, ``lora_alpha``, ``enable_lora``) and quantization
    (``quantization_config``, ``quantize``, quantized dtype policies).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Any Keras activation (name or callable), applied to the
            product; ``None`` (default) for the logits themselves.
        use_bias: Must be ``True`` (the default), there for Dense's signature.
        kernel_initializer: ``"notebook"``, a :class:`NotebookInitializer`, or
            any Keras initializer for ``K``. Defaults to ``"glorot_uniform"``.
        bias_initializer: Optional Keras initializer for ``b`` (zeros if unset).
        kernel_regularizer, bias_regularizer: Optional Keras regularizers for ``K``, ``b``.
        kernel_constraint, bias_constraint: Optional Keras constraints for ``K``, ``b``.
        **kwargs: Base layer keyword arguments, such as ``name``, ``dtype`` and
            ``activity_regularizer``.

    Call arguments:
        inputs: Floating-point tensor (dense or ``tf.SparseTensor``) of shape
            ``(batch, ..., inputs)``.

    Returns:
        Tensor of shape ``(batch, ..., units)``.

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
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"BiasTrickDense: `units` must be a positive integer, got units={units!r}"
            )
        check_dense_only_arguments(use_bias, lora_rank, lora_alpha, quantization_config)
        super().__init__(**kwargs)
        _check_floating_policy(self)
        if getattr(self.dtype_policy, "quantization_mode", None) is not None:
            raise dense_only_error(
                "quantization", f"quantization (dtype policy {self.dtype_policy.name!r})"
            )
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = get_initializer(kernel_initializer)
        self.bias_initializer = None
        if bias_initializer is not None:
            if isinstance(self.kernel_initializer, NotebookInitializer):
                raise ValueError(
                    "BiasTrickDense: kernel_initializer='notebook' sets the bias column itself "
                    "(0.01); leave bias_initializer unset with it"
                )
            self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        self._check_rank(input_shape)
        inputs = input_shape[-1]
        if inputs is None:
            raise ValueError(
                f"BiasTrickDense '{self.name}': the last dimension of the inputs (the number "
                f"of features) must be known to build the kernel; got input shape {input_shape}"
            )
        initializer = self.kernel_initializer
        if not isinstance(initializer, NotebookInitializer):
            initializer = DenseLayoutInitializer(initializer, self.bias_initializer)
        regularizer = constraint = None
        if self.kernel_regularizer is not None or self.bias_regularizer is not None:
            regularizer = DenseLayoutRegularizer(self.kernel_regularizer, self.bias_regularizer)
        if self.kernel_constraint is not None or self.bias_constraint is not None:
            constraint = DenseLayoutConstraint(self.kernel_constraint, self.bias_constraint)
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
            outputs = ops.bias_trick_dense(inputs, kernel)
        else:
            outputs = self._call_on_last_axis(inputs, kernel)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _call_on_last_axis(self, inputs, kernel):
        """Rank > 2: flatten the leading axes, multiply, restore them (like keras.layers.Dense)."""
        flat_shape = [-1, inputs.shape[-1]]
        if isinstance(inputs, tf.SparseTensor):
            flat, leading = tf.sparse.reshape(inputs, flat_shape), inputs.dense_shape[:-1]
        else:
            flat, leading = tf.reshape(inputs, flat_shape), tf.shape(inputs, tf.int64)[:-1]
        outputs = ops.bias_trick_dense(flat, kernel)
        outputs = tf.reshape(outputs, tf.concat([leading, [self.units]], axis=0))
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

    def enable_lora(self, *args, **kwargs):
        """Not offered: raises ``NotImplementedError`` naming ``keras.layers.Dense``."""
        raise dense_only_error("lora", "LoRA (enable_lora)", NotImplementedError)

    def quantize(self, mode=None, type_check=True, config=None):
        """Not offered: raises ``NotImplementedError`` (``model.quantize`` warns and skips it)."""
        raise dense_only_error("quantization", f"quantize(mode={mode!r})", NotImplementedError)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
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

    ``axis`` may name several axes, as for ``keras.layers.Softmax``: the
    entries that agree outside them are normalised together (one softmax over
    their ``k = Π n_d`` entries, with that ``k x k`` Jacobian).

    Masks, two kinds, told apart by shape:

    * A mask **shaped like the inputs without their last axis** (rank one
      less, e.g. ``(batch, steps)`` from ``Embedding(mask_zero=True)`` for
      ``(batch, steps, classes)`` inputs) is a *timestep* mask, Keras' usual
      propagated mask: the softmax does not use it and passes it on
      (:meth:`compute_mask`), so a Keras loss skips the padded steps.
    * Any other mask is a mask over the softmax's *positions*, with exactly
      ``keras.layers.Softmax``'s semantics: it broadcasts against the inputs
      from the right (each dimension 1 or equal, never more dimensions —
      otherwise ``ValueError``), non-boolean masks keep entries ``> 0.5``,
      masked positions get probability 0 and a fully masked group is all
      zeros. With ``a = 0`` at the masked positions, ``J = diag(a) - a aᵀ`` has
      zero rows and columns there, which is exactly the masked softmax's
      Jacobian (a masked logit does not reach the output, a masked output is a
      constant 0), so both backward formulas stay the same.

    (A rank-one-less mask that would also broadcast as positions — only when
    the batch size equals the number of classes — counts as a timestep mask;
    pass ``mask[..., None]`` to mean positions.)

    Args:
        axis: Integer or tuple of integers, the axes normalised over.
            Defaults to ``-1``.
        method: ``"jacobian"`` (default) or ``"vjp"``, the backward formula.
        **kwargs: Base layer keyword arguments, such as ``name`` and ``dtype``.

    Call arguments:
        inputs: Floating-point logits.
        mask: Optional boolean (or 0/1) mask, see above.

    Returns:
        Probabilities with the same shape as ``inputs``, summing to 1 along
        ``axis`` (to 0 where a position mask masks a whole group).

    Example:

    >>> layer = JacobianSoftmax()
    >>> layer(np.array([[1.0, 2.0, 1.0]], "float32")).numpy().round(4)
    array([[0.2119, 0.5761, 0.2119]], dtype=float32)
    >>> layer(np.array([[1.0, 2.0, 1.0]], "float32"), mask=np.array([[1, 0, 1]])).numpy()
    array([[0.5, 0. , 0.5]], dtype=float32)
    """

    def __init__(self, axis=-1, method="jacobian", **kwargs):
        axis = check_axis_argument("JacobianSoftmax", axis)
        if method not in ops.SOFTMAX_METHODS:
            raise ValueError(
                f"JacobianSoftmax: unknown method={method!r}; expected one of {ops.SOFTMAX_METHODS}"
            )
        super().__init__(**kwargs)
        _check_floating_policy(self)
        self.axis = axis
        self.method = method
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, mask=None):
        self._check_inputs(inputs)
        if mask is not None and _is_timestep_mask(mask, inputs):
            mask = None  # passed on by compute_mask, not applied
        return ops.jacobian_softmax(inputs, method=self.method, axis=self.axis, mask=mask)

    def compute_mask(self, inputs, mask=None):
        """The incoming mask, unchanged (``keras.layers.Softmax`` does the same)."""
        return mask

    def compute_output_spec(self, inputs, mask=None):
        # Functional models: report bad inputs when the model is built, not at predict.
        self._check_inputs(inputs)
        return super().compute_output_spec(inputs)

    def _check_inputs(self, inputs):
        _check_floating(self, inputs)
        rank = len(inputs.shape)
        try:
            softmax_axes(f"JacobianSoftmax '{self.name}'", self.axis, rank)
        except ValueError as error:
            raise ValueError(f"{error} (shape {tuple(inputs.shape)})") from None

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "method": self.method})
        return config


def _is_timestep_mask(mask, inputs):
    """A mask of one rank less whose shape fits ``inputs.shape[:-1]`` (Keras' propagated mask)."""
    mask_shape = tf.TensorShape(mask.shape)
    inputs_shape = tf.TensorShape(inputs.shape)
    if mask_shape.rank is None or inputs_shape.rank is None:
        return False
    return mask_shape.rank == inputs_shape.rank - 1 and mask_shape.is_compatible_with(
        inputs_shape[:-1]
    )
