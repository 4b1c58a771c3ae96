"""The benchmark: the notebook's training, six ways, in one process (:func:`run_bench`).

On MNIST with the notebook's settings (batch 200, learning rate 0.01, float32,
CPU) it times epochs of the six rows of :mod:`tfsoftmax.bench.rows` from the
same initial weights, in interleaved rounds, with each row's peak memory; then
the measures of :mod:`tfsoftmax.bench.measures` (memory traffic against the
measured bandwidth, the softmax micro-benchmark, the SGD step alone, the
accuracy check, ``tfsoftmax train`` timed from outside); and judges the goals
of :mod:`tfsoftmax.bench.report`. A row's figure is the median of its epochs::

    samples_per_second = samples / median(epoch_seconds)

Example::

    result = run_bench(data)              # data: preprocess(..., layout="batch-major")
    print(result.table())
    result.to_json("bench.json")
"""

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench.measures import (
    MICRO_SHAPES,
    accuracy_check,
    bytes_per_epoch,
    describe_machine,
    memory_bandwidth,
    micro_benchmark,
    one_blas_thread,
    step_ratio,
    time_cli_train,
    warm_tensorflow,
)
from tfsoftmax.bench.report import BenchResult
from tfsoftmax.bench.rows import ROWS, RowRunner, time_rows
from tfsoftmax.constants import BATCH_SIZE, COMPARISON_DTYPES, EPOCHS, LEARNING_RATE, SEED
from tfsoftmax.preprocessing import first_samples
from tfsoftmax.validation import check_learning_rate, check_positive_int

__all__ = ["run_bench"]


def run_bench(
    data,
    *,
    epochs=5,
    batch_size=BATCH_SIZE,
    learning_rate=LEARNING_RATE,
    dtype="float32",
    seed=SEED,
    rows=ROWS,
    loop_epochs=1,
    micro=True,
    micro_shapes=MICRO_SHAPES,
    step=True,
    accuracy_epochs=EPOCHS,
    cli_epochs=None,
    limit=None,
):
    """Run the benchmark on preprocessed, batch-major ``data``; returns a :class:`BenchResult`.

    Args:
        data: :func:`tfsoftmax.datasets.preprocess` output, ``layout="batch-major"``.
        epochs: timed epochs per row after the warm-up epoch (>= 1).
        batch_size, learning_rate, seed: the notebook's 200, 0.01, 0 by default.
        dtype: one of :data:`tfsoftmax.constants.COMPARISON_DTYPES`.
        rows: which of :data:`ROWS` to run.
        loop_epochs: epochs of ``numpy-loop``.
        micro: run the op-level micro-benchmark over ``micro_shapes``.
        step: run :func:`step_ratio` too.
        accuracy_epochs: epochs of the accuracy check (0 skips it).
        cli_epochs: if set, time ``tfsoftmax train --epochs cli_epochs`` in a
            subprocess (``None`` or 0 skips it).
        limit: use the first ``limit`` training samples only.

    Raises:
        ValueError: a non-positive count, a bad learning rate, an unknown
            dtype or row -- before anything runs.
    """
    from tfsoftmax._tf import tf  # noqa: F401 - imported before timing anything

    settings = _checked_settings(epochs, batch_size, learning_rate, dtype, seed, rows, loop_epochs)
    if accuracy_epochs:
        accuracy_epochs = check_positive_int("accuracy_epochs", accuracy_epochs)
    if limit is not None:
        limit = check_positive_int("limit", limit)
    data = first_samples(data, limit, dtype)
    x, y = data.x_train, data.y_train
    settings["samples"] = int(x.shape[0])
    weights = reference.Dense(
        x.shape[1], y.shape[1], rng=np.random.default_rng(seed), dtype=dtype
    ).weights

    limiter, settings["blas_threads"] = one_blas_thread()
    with limiter:
        settings["tensorflow_first_use_seconds"] = warm_tensorflow(dtype)
        runners = [RowRunner(name, x, y, weights, settings) for name in ROWS if name in rows]
        time_rows(runners, epochs, loop_epochs, seed)
        result = BenchResult(
            settings=settings,
            machine=describe_machine(),
            rows={runner.name: runner.row for runner in runners},
            bytes_per_epoch=bytes_per_epoch(
                x.shape[0], x.shape[1], y.shape[1], batch_size, np.dtype(dtype).itemsize
            ),
            bandwidth_bytes_per_second=memory_bandwidth(),
            memory_method=next((r.memory_method for r in runners if r.memory_method), ""),
        )
        if micro:
            result.micro = micro_benchmark(micro_shapes, dtype=dtype, seed=seed)
        if step:
            result.step = step_ratio(x, y, batch_size=batch_size, dtype=dtype, seed=seed)
        if accuracy_epochs:
            result.accuracy = accuracy_check(data, weights, settings, accuracy_epochs)
        if cli_epochs:
            result.cli = time_cli_train(cli_epochs, _train_arguments(settings, limit))
    return result


def _checked_settings(epochs, batch_size, learning_rate, dtype, seed, rows, loop_epochs):
    """The run's settings after checking each; ValueError names the bad one."""
    if dtype not in COMPARISON_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(COMPARISON_DTYPES)}, got {dtype!r}")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    return {
        "samples": None,  # set once the data is cut to ``limit``
        "batch_size": check_positive_int("batch_size", batch_size),
        "learning_rate": check_learning_rate(learning_rate),
        "dtype": dtype,
        "seed": seed,
        "epochs": check_positive_int("epochs", epochs),
        "loop_epochs": check_positive_int("loop_epochs", loop_epochs),
        "rows": list(rows),
    }


def _train_arguments(settings, limit):
    """``tfsoftmax train`` options that repeat this run's settings."""
    arguments = ["--batch-size", str(settings["batch_size"])]
    arguments += ["--learning-rate", str(settings["learning_rate"])]
    arguments += ["--dtype", settings["dtype"], "--seed", str(settings["seed"])]
    return arguments if limit is None else [*arguments, "--limit", str(limit)]
