"""Keras' own layer conformance harness (``keras.src.testing.TestCase.run_layer_test``)
on BiasTrickDense and JacobianSoftmax, with the arguments Keras' upstream tests
use for ``keras.layers.Dense`` (``layers/core/dense_test.py``) and
``keras.layers.Softmax`` (``layers/activations/softmax_test.py``).

``run_layer_test`` builds the layer eagerly and symbolically, checks the
weight, loss and seed-generator counts, ``supports_masking``, the config and
serialization round trip, one ``fit`` step (XLA unless the input is sparse)
and a ``mixed_float16`` copy. A Keras release that changes the layer contract
fails here. Where our arguments differ from upstream's it is on purpose:
``use_bias=False`` is refused (the bias trick is the bias) and the layer has
one weight (so one regularization loss, kernel and bias terms summed).
"""

import numpy as np
import pytest
from keras.src import testing

from tfsoftmax.layers import BiasTrickDense, JacobianSoftmax
from tfsoftmax.preprocessing import minmax_scale
from tfsoftmax.rescaling import MinMaxRescaling

# The harness's own fit step feeds a generator and, for the softmax, has no weights.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning"),
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights"),
]


class BiasTrickDenseHarnessTest(testing.TestCase):
    def test_2d_with_activation_and_initializers(self):
        # upstream: units=4, activation="relu", random_uniform / ones, (2, 3) -> (2, 4)
        self.run_layer_test(
            BiasTrickDense,
            init_kwargs={
                "units": 4,
                "activation": "relu",
                "kernel_initializer": "random_uniform",
                "bias_initializer": "ones",
            },
            input_shape=(2, 3),
            expected_output_shape=(2, 4),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=0,
            supports_masking=True,
        )

    def test_3d_with_regularizers(self):
        # upstream: units=5, sigmoid, l2 on kernel and bias, (2, 3, 4) -> (2, 3, 5)
        self.run_layer_test(
            BiasTrickDense,
            init_kwargs={
                "units": 5,
                "activation": "sigmoid",
                "kernel_regularizer": "l2",
                "bias_regularizer": "l2",
            },
            input_shape=(2, 3, 4),
            expected_output_shape=(2, 3, 5),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=1,  # one weight: both regularizers in one loss
            supports_masking=True,
        )

    def test_4d_with_the_notebook_initializer(self):
        self.run_layer_test(
            BiasTrickDense,
            init_kwargs={"units": 3, "kernel_initializer": "notebook", "activation": "softmax"},
            input_shape=(2, 3, 4, 5),
            expected_output_shape=(2, 3, 4, 3),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_losses=0,
            supports_masking=True,
        )

    def test_sparse_input(self):
        # upstream: test_dense_sparse, units=4, sparse (2, 3) -> dense (2, 4)
        self.run_layer_test(
            BiasTrickDense,
            init_kwargs={"units": 4},
            input_shape=(2, 3),
            input_sparse=True,
            expected_output_shape=(2, 4),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=0,
            expected_num_losses=0,
        )

    def test_correctness_with_activation(self):
        # upstream test_dense_correctness: kernel [[1, -2], [3, -4]], bias [5, -6], relu
        layer = BiasTrickDense(units=2, activation="relu")
        layer.build((1, 2))
        layer.set_weights([np.array([[1.0, 3.0, 5.0], [-2.0, -4.0, -6.0]])])
        self.assertAllClose(layer(np.array([[-1.0, 2.0]])), [[10.0, 0.0]])

    def test_invalid_units_raise(self):
        # upstream test_dense_invalid_units_raises
        for units in (0, -3, 2.5, None, "64"):
            with self.assertRaisesRegex(ValueError, "positive integer"):
                BiasTrickDense(units)


class JacobianSoftmaxHarnessTest(testing.TestCase):
    def test_upstream_arguments(self):
        # upstream test_softmax: init_kwargs={}, (2, 3, 4), masking, built at instantiation
        for method in ("jacobian", "vjp"):
            self.run_layer_test(
                JacobianSoftmax,
                init_kwargs={"method": method},
                input_shape=(2, 3, 4),
                supports_masking=True,
                assert_built_after_instantiation=True,
            )

    def test_several_axes_2d_to_4d(self):
        for axis, shape in (((1, 0), (2, 3)), (1, (2, 3, 4)), ((1, 3), (2, 3, 4, 5))):
            self.run_layer_test(
                JacobianSoftmax,
                init_kwargs={"axis": axis, "method": "vjp"},
                input_shape=shape,
                expected_output_shape=shape,
                expected_num_trainable_weights=0,
                supports_masking=True,
                assert_built_after_instantiation=True,
            )

    def test_with_a_position_mask(self):
        mask = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0]], "float32")
        self.run_layer_test(
            JacobianSoftmax,
            init_kwargs={},
            input_shape=(2, 3, 4),
            call_kwargs={"mask": mask},
            expected_output_shape=(2, 3, 4),
            supports_masking=True,
        )

    def test_correctness_with_mask_over_two_axes(self):
        # upstream test_softmax_correctness_with_mask, expected values from upstream
        layer = JacobianSoftmax(axis=(1, 0))
        inputs = np.array([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]])
        mask = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        expected = np.array([[0.21194154, 0.0, 0.21194154], [0.0, 0.57611686, 0.0]])
        self.assertAllClose(layer(inputs, mask=mask), expected)

    def test_mask_errors(self):
        # upstream test_softmax_mask_shape_mismatch / _too_many_dims
        with self.assertRaisesRegex(ValueError, "broadcastable"):
            JacobianSoftmax()(np.ones((1, 3)), mask=np.ones((2, 3)))
        with self.assertRaisesRegex(ValueError, "must not have more dimensions"):
            JacobianSoftmax()(np.ones((1, 3)), mask=np.ones((1, 1, 3)))


class MinMaxRescalingHarnessTest(testing.TestCase):
    """Upstream's ``layers/preprocessing/rescaling_test.py`` arguments, for the layer whose
    divisor lives in a variable outside Keras' tracking: no weights, config round trip."""

    def test_basics_float_and_integer_inputs(self):
        # upstream test_rescaling_basics and the int-inputs case of test_rescaling_dtypes
        for input_dtype in ("float32", "int16", "uint8"):
            self.run_layer_test(
                MinMaxRescaling,
                init_kwargs={"minimum": 0.0, "maximum": 255.0},
                input_shape=(2, 3),
                input_dtype=input_dtype,
                expected_output_shape=(2, 3),
                expected_num_trainable_weights=0,
                expected_num_non_trainable_weights=0,
                expected_num_seed_generators=0,
                expected_num_losses=0,
                supports_masking=True,
            )

    def test_correctness_and_tf_data(self):
        # upstream test_rescaling_correctness and test_tf_data_compatibility
        import tensorflow as tf

        pixels = np.random.default_rng(0).integers(0, 256, (3, 10, 10, 3), dtype=np.uint8)
        layer = MinMaxRescaling(minimum=10, maximum=200)
        expected = minmax_scale(pixels, xmin=10, xmax=200)
        self.assertAllEqual(layer(pixels), expected)
        dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(3).map(layer)
        self.assertAllEqual(next(iter(dataset)), expected)


def test_the_harness_catches_a_broken_contract():
    """It is the real harness: a wrong expectation about our layer fails it."""
    with pytest.raises(AssertionError, match="trainable_weights"):
        testing.TestCase().run_layer_test(
            BiasTrickDense,
            init_kwargs={"units": 3},
            input_shape=(2, 4),
            expected_num_trainable_weights=2,  # Dense's kernel + bias; ours is one kernel
            run_training_check=False,
            run_mixed_precision_check=False,
        )
