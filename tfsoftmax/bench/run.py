"""The benchmark: the notebook's training, every way, in one process (:func:`run_bench`).

On MNIST with the notebook's settings (batch 200, learning rate 0.01, float32,
CPU) it times epochs of the rows of :mod:`tfsoftmax.bench.rows` (and of the
extra rows that can run here: uint8 features, JAX, PyTorch) from the same
initial weights, in interleaved rounds, with each row's peak memory; then the
measures of :mod:`tfsoftmax.bench.measures` (memory traffic against the
measured bandwidth, the softmax micro-benchmark, the SGD step alone, the
accuracy check), the task's floors (:mod:`tfsoftmax.bench.floors`), the
one-epoch call and ``tfsoftmax train`` timed from outside, cold and warm
(:mod:`tfsoftmax.bench.calls`); and judges the goals of
:mod:`tfsoftmax.bench.report` and :mod:`tfsoftmax.bench.goals`. A row's
figure is the median of its epochs::

    samples_per_second = samples / median(epoch_seconds)

Example::

    result = run_bench(data)              # data: preprocess(..., layout="batch-major")
    print(result.table())
    result.to_json("bench.json")
"""

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench import alternatives
from tfsoftmax.bench.calls import cli_runs, one_epoch_call
from tfsoftmax.bench.floors import task_floors
from tfsoftmax.bench.measures import (
    MICRO_SHAPES,
    accuracy_check,
    bytes_per_epoch,
    describe_machine,
    memory_bandwidth,
    micro_benchmark,
    one_blas_thread,
    step_ratio,
    warm_tensorflow,
)
from tfsoftmax.bench.report import BenchResult
from tfsoftmax.bench.rows import ALL_ROWS, EXTRA_ROWS, ROWS, RowRunner, time_rows
from tfsoftmax.constants import BATCH_SIZE, COMPARISON_DTYPES, EPOCHS, LEARNING_RATE, SEED
from tfsoftmax.preprocessing import first_samples
from tfsoftmax.validation import check_learning_rate, check_positive_int

__all__ = ["ACCURACY_ROWS", "run_bench"]

#: Extra rows whose test accuracy the accuracy check also reports (eager PyTorch
#: is left out: 20 more of its slow epochs for a figure no goal needs).
ACCURACY_ROWS = ("custom-uint8", "jax-scan")


def run_bench(
    data,
    *,
    epochs=10,
    batch_size=BATCH_SIZE,
    learning_rate=LEARNING_RATE,
    dtype="float32",
    seed=SEED,
    rows=ALL_ROWS,
    loop_epochs=1,
    micro=True,
    micro_shapes=MICRO_SHAPES,
    step=True,
    accuracy_epochs=EPOCHS,
    cli_epochs=None,
    limit=None,
    floors=True,
    call_repeats=5,
):
    """Run the benchmark on preprocessed, batch-major ``data``; returns a :class:`BenchResult`.

    Args:
        data: :func:`tfsoftmax.datasets.preprocess` output, ``layout="batch-major"``.
        epochs: timed epochs per row after the warm-up epoch (>= 1).
        batch_size, learning_rate, seed: the notebook's 200, 0.01, 0 by default.
        dtype: one of :data:`tfsoftmax.constants.COMPARISON_DTYPES`.
        rows: which of :data:`ROWS` and :data:`EXTRA_ROWS` to run (an extra
            row that cannot run here is skipped, with the reason).
        loop_epochs: epochs of ``numpy-loop``.
        micro: run the op-level micro-benchmark over ``micro_shapes``.
        step: run :func:`step_ratio` too.
        accuracy_epochs: epochs of the accuracy check (0 skips it).
        cli_epochs: if set, time ``tfsoftmax train --epochs cli_epochs`` in a
            subprocess, cold and warm compilation cache, and the import of
            TensorFlow and Keras alone (``None`` or 0 skips it).
        limit: use the first ``limit`` training samples only.
        floors: measure the task's floors (read once, two matmuls per step).
        call_repeats: one-epoch ``train_sgd`` calls timed after the rounds, each with the
            steady epoch after it (0 skips).

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
        runners, skipped = _runners(rows, x, y, weights, settings)
        time_rows(runners, epochs, loop_epochs, seed)
        result = _timed_result(runners, skipped, settings, x, y)
        options = {
            "floors": floors,
            "micro": micro,
            "micro_shapes": micro_shapes,
            "step": step,
            "call_repeats": call_repeats,
            "accuracy_epochs": accuracy_epochs,
            "cli_epochs": cli_epochs,
            "limit": limit,
        }
        _measure(result, runners, data, weights, settings, options)
    return result


def _timed_result(runners, skipped, settings, x, y):
    """The :class:`BenchResult` of the rounds: rows, extra rows, skipped rows, memory traffic."""
    skipped.update({r.name: r.skipped for r in runners if r.skipped})
    timed = {r.name: r.row for r in runners if not r.skipped}
    return BenchResult(
        settings=settings,
        machine=describe_machine(),
        rows={name: row for name, row in timed.items() if name in ROWS},
        extra_rows={name: row for name, row in timed.items() if name in EXTRA_ROWS},
        skipped=skipped,
        bytes_per_epoch=bytes_per_epoch(
            x.shape[0],
            x.shape[1],
            y.shape[1],
            settings["batch_size"],
            np.dtype(settings["dtype"]).itemsize,
        ),
        bandwidth_bytes_per_second=memory_bandwidth(),
        memory_method=next((r.memory_method for r in runners if r.memory_method), ""),
    )


def _runners(rows, x, y, weights, settings):
    """``(runners, {row: reason})``: one runner per requested row that can be built."""
    runners, skipped = [], {}
    for name in ALL_ROWS:
        if name in rows:
            try:
                runners.append(RowRunner(name, x, y, weights, settings))
            except alternatives.RowUnavailable as reason:
                skipped[name] = str(reason)
    return runners, skipped


def _measure(result, runners, data, weights, settings, options):
    """Everything after the rounds, each part as ``options`` (run_bench's arguments) ask."""
    x, y, dtype = data.x_train, data.y_train, settings["dtype"]
    if options["floors"]:
        twin = alternatives.to_uint8(x) if "custom-uint8" in result.extra_rows else None
        result.floors = task_floors(x, y.shape[1], settings["batch_size"], dtype, twin)
    if options["micro"]:
        result.micro = micro_benchmark(options["micro_shapes"], dtype=dtype, seed=settings["seed"])
    if options["step"]:
        result.step = step_ratio(
            x, y, batch_size=settings["batch_size"], dtype=dtype, seed=settings["seed"]
        )
    jacobian = next((r for r in runners if r.name == "custom-jacobian"), None)
    if options["call_repeats"] and jacobian is not None:
        result.one_epoch_call = one_epoch_call(
            jacobian.model, x, y, jacobian.loss, settings, jacobian.row.median_seconds,
            repeats=options["call_repeats"], seed=settings["seed"],
        )  # fmt: skip
    epochs = options["accuracy_epochs"]
    if epochs:
        result.accuracy = accuracy_check(data, weights, settings, epochs)
        result.accuracy["alternatives"] = alternatives.alternative_accuracies(
            data, weights, settings, epochs, [n for n in result.extra_rows if n in ACCURACY_ROWS]
        )
    if options["cli_epochs"]:
        arguments = _train_arguments(settings, options["limit"])
        result.cli = cli_runs(options["cli_epochs"], arguments)


def _checked_settings(epochs, batch_size, learning_rate, dtype, seed, rows, loop_epochs):
    """The run's settings after checking each; ValueError names the bad one."""
    if dtype not in COMPARISON_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(COMPARISON_DTYPES)}, got {dtype!r}")
    unknown = [row for row in rows if row not in ALL_ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {', '.join(ALL_ROWS)}")
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
