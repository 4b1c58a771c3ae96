"""Benchmark: the notebook's training, six ways, in one process (issue 7).

On MNIST with the notebook's settings (batch 200, learning rate 0.01, float32,
CPU) it times one epoch of

1. ``numpy-vectorized`` -- :func:`tfsoftmax.reference.train`, vectorized backward;
2. ``numpy-loop``       -- the same with the notebook's per-sample loops (each
   sample's softmax Jacobian product and dense outer product);
3. ``custom-jacobian``  -- :func:`~tfsoftmax.training.train_sgd` with the custom
   ops, ``JacobianSoftmax(method="jacobian")``;
4. ``custom-vjp``       -- the same with ``method="vjp"``;
5. ``builtin-loop``     -- ``train_sgd`` over built-in ops with autodiff
   (``keras.layers.Dense`` + ``Softmax`` + Keras CCE: ``tf.matmul``,
   ``tf.nn.softmax``);
6. ``keras-fit``        -- ``model.fit`` on ``keras.layers.Dense(10,
   activation="softmax")`` with ``keras.optimizers.SGD(0.01)``, batch 200.

How it is measured -- each module's docstring has its part of the method:

* :mod:`~tfsoftmax.bench.machine` -- TensorFlow's once-per-process start is
  paid before the rows; NumPy runs with one BLAS thread (its fastest setting
  here); the machine's description;
* :mod:`~tfsoftmax.bench.rows` -- every row starts from the same initial
  weights; what one call of a row trains and which of its epochs is timed
  (the trainer's own epoch time, steady state, the call overhead apart);
* :mod:`~tfsoftmax.bench.rounds` -- one warm-up epoch per row, then the timed
  epochs in rounds that interleave the rows; medians, same-round ratios;
* :mod:`~tfsoftmax.bench.peak_memory` -- peak resident memory per call;
* :mod:`~tfsoftmax.bench.memory_traffic` -- bytes per ``train_sgd`` epoch and
  the memory bandwidth: the floor an epoch cannot beat;
* :mod:`~tfsoftmax.bench.micro` -- the op-level micro-benchmark;
* :mod:`~tfsoftmax.bench.step` -- the SGD step alone (:func:`step_ratio`, the
  regression test's measure);
* :mod:`~tfsoftmax.bench.accuracy` -- the custom ops against the reference
  after the same epochs;
* :mod:`~tfsoftmax.bench.cli_timing` -- ``tfsoftmax train`` timed in a
  subprocess, start-up included;
* :mod:`~tfsoftmax.bench.results`, :mod:`~tfsoftmax.bench.targets`,
  :mod:`~tfsoftmax.bench.table` -- the result, the issue's targets, the text.

``tfsoftmax bench`` prints :meth:`BenchResult.table` (``--json`` writes
:meth:`BenchResult.to_dict`) and exits 0 whether or not a target is met.

Example::

    result = run_bench(data)              # data: preprocess(..., layout="batch-major")
    print(result.table())
    result.to_json("bench.json")
"""

import dataclasses

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench.accuracy import accuracy_check
from tfsoftmax.bench.cli_timing import time_cli_train
from tfsoftmax.bench.machine import describe_machine, one_blas_thread, warm_tensorflow
from tfsoftmax.bench.memory_traffic import bytes_per_epoch, memory_bandwidth
from tfsoftmax.bench.micro import MICRO_SHAPES, micro_benchmark
from tfsoftmax.bench.results import BenchResult
from tfsoftmax.bench.rounds import time_rows
from tfsoftmax.bench.rows import CALL_EPOCHS, DESCRIPTIONS, ROWS, BenchRow, RowRunner
from tfsoftmax.bench.rows import tracing_count as _tracing_count  # noqa: F401 - tests use it
from tfsoftmax.bench.step import step_ratio
from tfsoftmax.bench.targets import ACCURACY_TARGET, CLI_TARGET, RATIO_TARGETS
from tfsoftmax.validation import check_learning_rate, check_positive_int

__all__ = [
    "ACCURACY_TARGET",
    "CALL_EPOCHS",
    "CLI_TARGET",
    "DESCRIPTIONS",
    "DTYPES",
    "MICRO_SHAPES",
    "RATIO_TARGETS",
    "ROWS",
    "BenchResult",
    "BenchRow",
    "bytes_per_epoch",
    "memory_bandwidth",
    "micro_benchmark",
    "run_bench",
    "step_ratio",
    "time_cli_train",
]

DTYPES = ("float32", "float64")


def run_bench(
    data,
    *,
    epochs=5,
    batch_size=200,
    learning_rate=0.01,
    dtype="float32",
    seed=0,
    rows=ROWS,
    loop_epochs=1,
    micro=True,
    micro_shapes=MICRO_SHAPES,
    step=True,
    accuracy_epochs=20,
    cli_epochs=None,
    limit=None,
):
    """Run the benchmark on preprocessed, batch-major ``data``; returns a :class:`BenchResult`.

    Args:
        data: :func:`tfsoftmax.datasets.preprocess` output, ``layout="batch-major"``.
        epochs: timed epochs per row after the warm-up epoch (>= 1; the issue
            asks for >= 3).
        batch_size, learning_rate, seed: the notebook's 200, 0.01, 0.
        dtype: ``"float32"`` (the notebook's) or ``"float64"``.
        rows: which of :data:`ROWS` to run.
        loop_epochs: epochs of ``numpy-loop``.
        micro: run the op-level micro-benchmark over ``micro_shapes``.
        step: run :func:`step_ratio` too.
        accuracy_epochs: epochs of the accuracy check (0 skips it).
        cli_epochs: if set, time ``tfsoftmax train --epochs cli_epochs`` in a
            subprocess (the full data; ``None`` skips it).
        limit: use the first ``limit`` training samples only.
    """
    from tfsoftmax._tf import tf  # noqa: F401 - imported before timing anything

    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_learning_rate(learning_rate)
    loop_epochs = check_positive_int("loop_epochs", loop_epochs)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if accuracy_epochs:
        accuracy_epochs = check_positive_int("accuracy_epochs", accuracy_epochs)
    count = data.x_train.shape[0] if limit is None else check_positive_int("limit", limit)
    data = _first_samples_as(data, count, dtype)
    x, y = data.x_train, data.y_train
    samples, features = x.shape
    classes = y.shape[1]
    settings = {
        "samples": int(samples),
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "dtype": dtype,
        "seed": seed,
        "epochs": epochs,
        "loop_epochs": loop_epochs,
        "rows": list(rows),
    }
    weights = reference.Dense(
        features, classes, rng=np.random.default_rng(seed), dtype=dtype
    ).weights

    limiter, settings["blas_threads"] = one_blas_thread()
    with limiter:
        first_use = warm_tensorflow(dtype)
        runners = [RowRunner(name, x, y, weights, settings) for name in ROWS if name in rows]
        time_rows(runners, epochs, loop_epochs, seed)

        settings["tensorflow_first_use_seconds"] = first_use
        result = BenchResult(
            settings=settings,
            machine=describe_machine(),
            rows={runner.name: runner.row for runner in runners},
            bytes_per_epoch=bytes_per_epoch(
                samples, features, classes, batch_size, np.dtype(dtype).itemsize
            ),
            bandwidth_bytes_per_second=memory_bandwidth(),
            memory_method=next(
                (r.memory_method for r in runners if hasattr(r, "memory_method")), ""
            ),
        )
        if micro:
            result.micro = micro_benchmark(micro_shapes, dtype=dtype, seed=seed)
        if step:
            result.step = step_ratio(x, y, batch_size=batch_size, dtype=dtype, seed=seed)
        if accuracy_epochs:
            result.accuracy = accuracy_check(data, weights, settings, accuracy_epochs)
        if cli_epochs:
            extra = ["--batch-size", str(batch_size), "--learning-rate", str(learning_rate)]
            extra += ["--dtype", dtype, "--seed", str(seed)]
            if limit is not None:
                extra += ["--limit", str(count)]
            result.cli = time_cli_train(cli_epochs, extra)
    return result


def _first_samples_as(data, count, dtype):
    """``data`` with its first ``count`` training samples, contiguous, as ``dtype``."""
    return dataclasses.replace(
        data,
        x_train=np.ascontiguousarray(data.x_train[:count], dtype),
        y_train=np.ascontiguousarray(data.y_train[:count], dtype),
        labels_train=data.labels_train[:count],
        x_test=np.ascontiguousarray(data.x_test, dtype),
        y_test=np.ascontiguousarray(data.y_test, dtype),
    )
