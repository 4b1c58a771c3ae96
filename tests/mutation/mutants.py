"""The mutants: bugs we fear, each a one-place edit of the package and the tests that must fail.

A :class:`Mutant` names a file of the package, an exact snippet of it (found
exactly once, or the mutant is stale and the mutation run fails), its
replacement, and the tests to run -- always tests in the test file of the
mutated module's own concern (ops by ``tests/test_ops.py``, layers and the
loss by ``tests/test_layers.py``, ...). A mutant is *killed* when one of those
tests fails. An *equivalent* mutant changes the code but not what it computes;
it carries the reason, and the run checks that it indeed survives.

The ``float32:`` mutants put a relative error of ``1e-6`` (8.4 float32 ulps of
1, ``1 + 1e-6`` rounds to ``1 + 8 * 2**-23``) into one op's output or gradient,
in float32 only, and run only the float32 tests: they check that the float32
bars (``tests/test_ops.py``, derived from ``eps`` and each entry's rounding
scale) are tight enough.
"""

import dataclasses

__all__ = ["MUTANTS", "Mutant"]


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One bug: ``original`` replaced by ``replacement`` in ``path``; ``tests`` must catch it."""

    name: str
    path: str  # relative to the repository root
    original: str
    replacement: str
    tests: tuple  # pytest arguments: node ids, or a file followed by "-k", expression
    description: str
    equivalent: str | None = None  # why it cannot be caught, for an equivalent mutant

    @property
    def test_file(self):
        return self.tests[0].split("::")[0]


def _f32(expression, like):
    """``expression`` times ``1 + 1e-6`` when ``like`` is float32, else unchanged."""
    return f"({expression}) * (1 + 1e-6 if {like}.dtype == tf.float32 else 1)"


OPS, DENSE_OPS = "tfsoftmax/ops.py", "tfsoftmax/dense_ops.py"
TEST_OPS = "tests/test_ops.py"
F64_OPS = (TEST_OPS, "-k", "float64 or finite_differences or numpy_reference")
F32_OPS = (TEST_OPS, "-k", "float32 and not half_precision")

_JACOBIAN = "jacobian = a[..., :, None] * (tf.eye(k, dtype=a.dtype) - a[..., None, :])"
_VJP = "return a * (g - tf.reduce_sum(a * g, axis=-1, keepdims=True))"
_BIAS = "return tf.expand_dims(tf.reduce_sum(g, axis=0), 1)"
_DENSE_DW = "dw = tf.concat([tf.matmul(g, x, transpose_a=True), _bias_column_gradient(g)], axis=1)"
_DENSE_Z = "z = tf.matmul(x, kernel, transpose_b=True) + w[:, -1]\n\n    def grad(g):\n        dx"
_CCE_BACKWARD = "return log_y_hat * scale, y_true / y_hat * scale"
_CCE_MEAN = "loss = tf.reduce_sum(y_true * log_y_hat) * neg_inv_b"
_SOFTMAX_J = "def _softmax_with_jacobian(z):\n    a = tf.nn.softmax(z)"

OPS_MUTANTS = [
    Mutant(
        "ops: Jacobian transposed",
        OPS,
        "return tf.linalg.matvec(jacobian, g)",
        "return tf.linalg.matvec(jacobian, g, transpose_a=True)",
        F64_OPS,
        "the notebook's transposed softmax Jacobian, J^T g instead of J g",
        equivalent="J = diag(a) - a a^T is symmetric, so J^T g = J g exactly",
    ),
    Mutant(
        "ops: Jacobian a_i (delta_ij - a_i)",
        OPS,
        _JACOBIAN,
        _JACOBIAN.replace("a[..., None, :])", "a[..., :, None])"),
        F64_OPS,
        "the Jacobian broadcast along the wrong axis",
    ),
    Mutant(
        "ops: vjp without −⟨a, g⟩",
        OPS,
        _VJP,
        "return a * g",
        F64_OPS,
        "the closed-form backward forgets the inner-product term",
    ),
    Mutant(
        "ops: vjp summed over the batch",
        OPS,
        _VJP,
        _VJP.replace("axis=-1", "axis=0"),
        F64_OPS,
        "<a, g> summed over the wrong axis",
    ),
    Mutant(
        "ops: bias gradient zero",
        DENSE_OPS,
        _BIAS,
        _BIAS.replace("reduce_sum(g,", "reduce_sum(0 * g,"),
        F64_OPS,
        "the bias column gets no gradient",
    ),
    Mutant(
        "ops: bias gradient averaged",
        DENSE_OPS,
        _BIAS,
        _BIAS.replace("reduce_sum", "reduce_mean"),
        F64_OPS,
        "the bias gradient is the batch mean of G, not its sum",
    ),
    Mutant(
        "ops: weight gradient / b",
        DENSE_OPS,
        _DENSE_DW,
        _DENSE_DW.replace(
            "tf.matmul(g, x, transpose_a=True)",
            "tf.matmul(g, x, transpose_a=True) / tf.cast(tf.shape(x)[0], x.dtype)",
        ),
        F64_OPS,
        "the reference's 1/b in the dense backward, on top of the loss's",
    ),
    Mutant(
        "ops: CCE gradient without 1/b",
        OPS,
        "_cce_backward(y_true, y_hat, log_y_hat, upstream * neg_inv_b)",
        "_cce_backward(y_true, y_hat, log_y_hat, -upstream)",
        F64_OPS,
        "the mean loss's gradient is the sum's",
    ),
    Mutant(
        "ops: CCE gradient sign",
        OPS,
        _CCE_BACKWARD,
        "return log_y_hat * scale, -y_true / y_hat * scale",
        F64_OPS,
        "dL/dyhat = +y/yhat",
    ),
    Mutant(
        "float32: softmax output (1 + 1e-6)",
        OPS,
        _SOFTMAX_J,
        _SOFTMAX_J.replace("tf.nn.softmax(z)", _f32("tf.nn.softmax(z)", "z")),
        F32_OPS,
        "a 1e-6 relative error in the softmax's output (and so its gradient), float32 only",
    ),
    Mutant(
        "float32: softmax gradient (1 + 1e-6)",
        OPS,
        _VJP,
        "return " + _f32(_VJP.removeprefix("return "), "a"),
        F32_OPS,
        "a 1e-6 relative error in the softmax's gradient, float32 only",
    ),
    Mutant(
        "float32: dense output (1 + 1e-6)",
        DENSE_OPS,
        _DENSE_Z,
        _DENSE_Z.replace(
            "z = tf.matmul(x, kernel, transpose_b=True) + w[:, -1]",
            "z = " + _f32("tf.matmul(x, kernel, transpose_b=True) + w[:, -1]", "x"),
        ),
        F32_OPS,
        "a 1e-6 relative error in the dense op's output, float32 only",
    ),
    Mutant(
        "float32: weight gradient (1 + 1e-6)",
        DENSE_OPS,
        _DENSE_DW,
        "dw = " + _f32(_DENSE_DW.removeprefix("dw = "), "x"),
        F32_OPS,
        "a 1e-6 relative error in dL/dW, float32 only",
    ),
    Mutant(
        "float32: CCE gradient (1 + 1e-6)",
        OPS,
        _CCE_BACKWARD,
        "return log_y_hat * scale, " + _f32("y_true / y_hat * scale", "y_true"),
        F32_OPS,
        "a 1e-6 relative error in dL/dyhat, float32 only",
    ),
    Mutant(
        "float32: CCE value (1 + 1e-6)",
        OPS,
        _CCE_MEAN,
        "loss = " + _f32(_CCE_MEAN.removeprefix("loss = "), "y_true"),
        F32_OPS,
        "a 1e-6 relative error in the mean loss, float32 only",
    ),
]

LAYERS, LOSSES, TEST_LAYERS = "tfsoftmax/layers.py", "tfsoftmax/losses.py", "tests/test_layers.py"
_CONFIG_TESTS = (TEST_LAYERS, "-k", "config or save or load")
LAYER_MUTANTS = [
    Mutant(
        "layers: config without method",
        LAYERS,
        'config.update({"axis": self.axis, "method": self.method})',
        'config.update({"axis": self.axis})',
        _CONFIG_TESTS,
        "a saved vjp softmax loads as the jacobian one",
    ),
    Mutant(
        "layers: config without axis",
        LAYERS,
        'config.update({"axis": self.axis, "method": self.method})',
        'config.update({"method": self.method})',
        _CONFIG_TESTS,
        "a saved softmax over axis 1 loads as one over the last axis",
    ),
    Mutant(
        "layers: config without activation",
        LAYERS,
        '"activation": keras.activations.serialize(self.activation),\n',
        "",
        _CONFIG_TESTS,
        "a saved BiasTrickDense(activation=...) loads without its activation",
    ),
    Mutant(
        "layers: softmax layer ignores method",
        LAYERS,
        "ops.jacobian_softmax(inputs, method=self.method, axis=self.axis, mask=mask)",
        'ops.jacobian_softmax(inputs, method="jacobian", axis=self.axis, mask=mask)',
        (TEST_LAYERS, "-k", "method or config or save"),
        "JacobianSoftmax(method='vjp') still builds the explicit Jacobians",
    ),
    Mutant(
        "losses: sum instead of the batch mean",
        LOSSES,
        'self, name="categorical_crossentropy", reduction="sum_over_batch_size", dtype=None',
        'self, name="categorical_crossentropy", reduction="sum", dtype=None',
        (TEST_LAYERS, "-k", "loss"),
        "the Keras loss without 1/b",
    ),
]

GRADCHECK_MUTANTS = [
    Mutant(
        "gradcheck: best input instead of worst",
        "tfsoftmax/gradcheck.py",
        'return float("inf") if failed or not errors else max(errors)',
        'return float("inf") if failed or not errors else min(errors)',
        ("tests/test_gradcheck.py", "-k", "wrong or tolerance"),
        "an op wrong in one input's gradient passes",
    ),
    Mutant(
        "gradcheck: reference CCE without 1/b",
        "tfsoftmax/gradcheck_reference.py",
        "gradient = reference.cce_gradient(y.T, p.T).T / y.shape[0]",
        "gradient = reference.cce_gradient(y.T, p.T).T",
        ("tests/test_gradcheck.py", "-k", "real_gradients"),
        "the NumPy side's conventions mapped wrong",
    ),
]

REFERENCE, TEST_REFERENCE = "tfsoftmax/reference.py", "tests/test_reference.py"
_REF_FAST = (TEST_REFERENCE, "-k", "not mnist")
_REF_VJP = "return A * (G - np.sum(A * G, axis=0, keepdims=True))"
_REF_UPDATE = "self.weights = self.weights - self.weights.dtype.type(learning_rate) * grad"
REFERENCE_MUTANTS = [
    Mutant(
        "reference: Jacobian transposed",
        REFERENCE,
        "dZ[:, b] = np.dot((I - a.T) * a, G[:, b])",
        "dZ[:, b] = np.dot(((I - a.T) * a).T, G[:, b])",
        _REF_FAST,
        "the notebook's per-sample Jacobian transposed",
        equivalent="(I - 1 a^T) * a = diag(a) - a a^T is symmetric",
    ),
    Mutant(
        "reference: vjp without −⟨a, g⟩",
        REFERENCE,
        _REF_VJP,
        "return A * G",
        _REF_FAST,
        "the vectorized backward forgets the inner-product term",
    ),
    Mutant(
        "reference: vjp summed over the batch",
        REFERENCE,
        _REF_VJP,
        _REF_VJP.replace("axis=0", "axis=1"),
        _REF_FAST,
        "<a, g> summed over the wrong axis",
    ),
    Mutant(
        "reference: weight gradient without 1/b",
        REFERENCE,
        "return (1 / b) * np.dot(G, X_with_ones.T)",
        "return np.dot(G, X_with_ones.T)",
        _REF_FAST,
        "the vectorized dense gradient of the summed loss",
    ),
    Mutant(
        "reference: bias row of zeros",
        REFERENCE,
        "np.vstack([X, np.ones((1, X.shape[1]), dtype=X.dtype)])",
        "np.vstack([X, np.zeros((1, X.shape[1]), dtype=X.dtype)])",
        _REF_FAST,
        "the bias trick's row of ones lost: no bias, no bias gradient",
    ),
    Mutant(
        "reference: CCE gradient sign",
        REFERENCE,
        "return -Y / Yhat",
        "return Y / Yhat",
        _REF_FAST,
        "dL/dyhat = +y/yhat",
    ),
    Mutant(
        "reference: CCE summed, not averaged",
        REFERENCE,
        "return np.mean(np.sum(-Y * np.log(Yhat), axis=0))",
        "return np.sum(np.sum(-Y * np.log(Yhat), axis=0))",
        _REF_FAST,
        "the loss without 1/b",
    ),
    Mutant(
        "reference: update applied twice",
        REFERENCE,
        _REF_UPDATE,
        _REF_UPDATE.replace("* grad", "* grad * 2"),
        _REF_FAST,
        "W <- W - 2 lr dW",
    ),
    Mutant(
        "reference: another permutation",
        REFERENCE,
        "perm = check_rng(rng).permutation(num_samples)",
        "perm = check_rng(rng).permutation(num_samples)[::-1]",
        _REF_FAST,
        "the batch order drawn differently from the same generator",
    ),
]

ENGINE, TEST_TRAINING = "tfsoftmax/engine.py", "tests/test_training.py"
_SINGLE_UPDATE = (
    "gradients = tape.gradient(objective, variables)\n"
    "            for variable, gradient in zip(variables, gradients, strict=True):\n"
    "                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient)"
)
TRAINER_MUTANTS = [
    Mutant(
        "trainer: update applied twice",
        ENGINE,
        _SINGLE_UPDATE,
        _SINGLE_UPDATE.replace("* gradient)", "* gradient * 2)"),
        (TEST_TRAINING, "-k", "reference or update or shuffle"),
        "w <- w - 2 lr dw",
    ),
    Mutant(
        "trainer: last batch's data",
        ENGINE,
        "xb, yb = tf.gather(x, order[i]), tf.gather(y, order[i])",
        "xb, yb = tf.gather(x, order[tf.maximum(i - 1, start)]), "
        "tf.gather(y, order[tf.maximum(i - 1, start)])",
        (TEST_TRAINING, "-k", "reference or update or shuffle"),
        "each step trains on the previous batch (the first one twice, the last never)",
    ),
    Mutant(
        "trainer: another permutation",
        "tfsoftmax/epochs.py",
        "order = self._rng.permutation(self._num_samples)",
        "order = self._rng.permutation(self._num_samples)[::-1]",
        (TEST_TRAINING, "-k", "shuffle"),
        "the batch order drawn differently from the same generator",
    ),
]

CHECKPOINT_MUTANTS = [
    Mutant(
        "checkpoint: RNG not restored",
        "tfsoftmax/checkpointing.py",
        'rng.bit_generator.state = snapshot.state["rng_state"]',
        "pass",
        ("tests/test_checkpoint.py", "-k", "resume_in_process or rng"),
        "a resumed run draws the first epochs' permutations again",
    ),
]

DISTRIBUTE_MUTANTS = [
    Mutant(
        "distribute: replica weights 1/R",
        ENGINE,
        "weight = tf.math.divide_no_nan(tf.cast(stop - start, tf.float64), "
        "tf.cast(total, tf.float64))",
        "weight = tf.constant(1.0 / replicas, tf.float64)",
        ("tests/test_distribute.py", "-k", "uneven"),
        "each replica's loss weighted 1/R instead of n_r/N: wrong for uneven shards",
    ),
]

DATASETS, TEST_DATASETS = "tfsoftmax/mnist_files.py", "tests/test_datasets.py"
DATASET_MUTANTS = [
    Mutant(
        "datasets: checksum skipped",
        DATASETS,
        "elif (digest := _sha256(array)) != MNIST_SHA256[name]:",
        "elif False and (digest := _sha256(array)) != MNIST_SHA256[name]:",
        (TEST_DATASETS, "-k", "not wheel and not pip"),
        "any uint8 arrays of MNIST's shapes pass as MNIST",
    ),
    Mutant(
        "datasets: test set scaled by its own min/max",
        "tfsoftmax/preprocessing.py",
        "minmax_scale(flat_test, xmin=xmin, xmax=xmax, dtype=dtype)",
        "minmax_scale(flat_test, dtype=dtype)",
        (TEST_DATASETS, "-k", "preprocess or scale"),
        "the test set scaled with its own statistics (the same on MNIST: 0 and 255)",
    ),
    Mutant(
        "datasets: one-hot off by one",
        "tfsoftmax/preprocessing.py",
        "out[np.arange(labels.size), labels.astype(np.intp)] = 1",
        "out[np.arange(labels.size), (labels.astype(np.intp) + 1) % num_classes] = 1",
        (TEST_DATASETS, "-k", "preprocess or one_hot"),
        "label k encoded as class k + 1",
    ),
]

FIGURES, TEST_PLOTS = "tfsoftmax/figures.py", "tests/test_plots.py"
PLOT_MUTANTS = [
    Mutant(
        "figures: epochs from 0",
        FIGURES,
        "epochs = np.arange(1, values.size + 1)\n    figure = _new_figure(7, 4.5)",
        "epochs = np.arange(values.size)\n    figure = _new_figure(7, 4.5)",
        (TEST_PLOTS, "-k", "draw or figure"),
        "the loss curve's first epoch drawn at 0",
    ),
    Mutant(
        "figures: confusion matrix transposed",
        FIGURES,
        'image = ax.imshow(counts, cmap="Blues", vmin=0)',
        'image = ax.imshow(counts.T, cmap="Blues", vmin=0)',
        (TEST_PLOTS, "-k", "confusion"),
        "rows drawn as predictions, columns as true labels",
    ),
    Mutant(
        "figures: templates with the bias column",
        FIGURES,
        "templates = weights[:, :-1].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)",
        "templates = weights[:, 1:].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)",
        (TEST_PLOTS, "-k", "templates"),
        "the weight images shifted by one pixel, the bias drawn as the last pixel",
    ),
]

BENCH_MUTANTS = [
    Mutant(
        "bench: a target on swapped rows",
        "tfsoftmax/bench/report.py",
        '("custom-jacobian <= 0.25 x keras-fit", "custom-jacobian", "keras-fit", 0.25),',
        '("custom-jacobian <= 0.25 x keras-fit", "keras-fit", "custom-jacobian", 0.25),',
        ("tests/test_bench.py", "-k", "table or target"),
        "a goal judged on the inverse ratio",
    ),
    Mutant(
        "bench: mean instead of median",
        "tfsoftmax/bench/rows.py",
        "return statistics.median(self.epoch_seconds)",
        "return statistics.fmean(self.epoch_seconds)",
        ("tests/test_bench.py", "-k", "median"),
        "one slow epoch moves the reported time",
    ),
]

MUTANTS = (
    OPS_MUTANTS
    + LAYER_MUTANTS
    + GRADCHECK_MUTANTS
    + REFERENCE_MUTANTS
    + TRAINER_MUTANTS
    + CHECKPOINT_MUTANTS
    + DISTRIBUTE_MUTANTS
    + DATASET_MUTANTS
    + PLOT_MUTANTS
    + BENCH_MUTANTS
)
