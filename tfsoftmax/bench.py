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

How it is measured:

* every row starts from the same initial weights (the notebook's
  initialisation, ``seed``) and first runs one **warm-up epoch**, reported as
  ``warmup_s``; for the TensorFlow rows it includes tracing and XLA
  compilation, estimated as ``compile_s = warmup_s - median epoch``;
* then ``epochs`` (5 by default; the issue asks for >= 3) **timed epochs in
  rounds**: round ``r`` runs one epoch of every row, the row order rotating
  between rounds, so a burst of load from other processes on the shared CPU
  hits every row alike. Each row's figure is the **median** of its epochs;
  a ratio between two rows (``ratio_to_fit``, the targets) is the median of
  their same-round ratios, measured back to back;
* TensorFlow's once-per-process start is paid before the rows, and NumPy
  runs with one BLAS thread (its fastest setting here, see
  :func:`_one_blas_thread`);
* the TensorFlow rows run ``CALL_EPOCHS`` (2) epochs per call and time the
  last one, a steady-state epoch as every epoch after the first of a real run
  is (``train_sgd`` gathers an epoch's shuffled batches on a second thread
  while the previous epoch trains; ``model.fit``'s input pipeline likewise
  runs ahead); the earlier epoch of the call is neither timed nor counted in
  the call overhead;
* an epoch's time is the trainer's own: ``History.epoch_seconds`` for
  ``train_sgd`` (shuffle + compiled batch loop + bookkeeping; without the
  once-per-call input checks and conversions, reported separately as
  ``call_overhead_s`` -- wall time of the call minus its epochs), the time
  between ``on_epoch_begin`` and ``on_epoch_end`` for ``model.fit``, and the
  whole ``reference.train(epochs=1)`` call for NumPy (its input check is
  ~2% of that);
* ``numpy-loop`` runs ``loop_epochs`` (default 1) epoch(s), after the rounds;
* **peak memory** is the process's peak resident set size during the row's
  timed epochs (``VmHWM`` from ``/proc/self/status``, reset before each call
  by writing 5 to ``/proc/self/clear_refs``), for NumPy and TensorFlow alike,
  and its rise above the resident size at the start of the call. (TensorFlow's
  ``tf.config.experimental.get_memory_info("CPU:0")`` reports zeros on CPU, so
  it is not used.) Without ``/proc`` the process-wide ``ru_maxrss`` is
  reported instead (``memory_method``);
* **bytes per epoch** of the ``train_sgd`` path: the shuffle gathers ``x`` and
  ``y`` (read + write), the compiled loop reads every batch once, and each
  step reads the weights, reads the gradient and writes the weights (cache
  resident: ``W`` is 31 KB). The **memory bandwidth** is a NumPy copy of a
  256 MB array (read + write bytes over the median of 5 copies), so
  ``bytes / bandwidth`` is the floor an epoch cannot beat, and
  ``bandwidth_fraction`` says how close each row gets to it;
* the **op-level micro-benchmark** runs forward + backward of
  ``jacobian_softmax`` (both methods) and ``tf.nn.softmax`` for each
  ``(batch, classes)`` in an XLA-compiled loop (``n`` iterations in one call,
  each iteration feeding its gradient into the next input so nothing is
  hoisted), interleaved, median over repeats; with the bytes the explicit
  Jacobians take (``batch * classes**2`` elements) and whether they exceed
  :data:`tfsoftmax.ops.JACOBIAN_MAX_ELEMENTS` (then ``"jacobian"`` falls back
  to ``"vjp"``);
* the **accuracy check** trains the NumPy reference and ``custom-jacobian``
  for ``accuracy_epochs`` (20) epochs from the same weights and seed and
  compares their test accuracies;
* the **CLI run** times ``python -m tfsoftmax train`` (the notebook's 20
  epochs, start-up, imports, data loading, tracing and writing included) in a
  subprocess, against 20 epochs of ``custom-jacobian``;
* :func:`step_ratio` times the SGD step alone (the same XLA-compiled batch
  loop as ``train_sgd``, on pre-sliced batches, no shuffle) for the custom
  ops and the built-ins, interleaved; the regression test uses it.

``tfsoftmax bench`` prints :meth:`BenchResult.table` (``--json`` writes
:meth:`BenchResult.to_dict`) and exits 0 whether or not a target is met.

Example::

    result = run_bench(data)              # data: preprocess(..., layout="batch-major")
    print(result.table())
    result.to_json("bench.json")
"""

import contextlib
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from tfsoftmax import reference
from tfsoftmax.history import write_text_atomically
from tfsoftmax.validation import check_learning_rate, check_positive_int

ROWS = (
    "numpy-vectorized",
    "numpy-loop",
    "custom-jacobian",
    "custom-vjp",
    "builtin-loop",
    "keras-fit",
)
DESCRIPTIONS = {
    "numpy-vectorized": "NumPy reference, vectorized backward",
    "numpy-loop": "NumPy reference, the notebook's per-sample loops (softmax, dense)",
    "custom-jacobian": 'train_sgd, custom ops, method="jacobian"',
    "custom-vjp": 'train_sgd, custom ops, method="vjp"',
    "builtin-loop": "train_sgd, built-in ops + autodiff",
    "keras-fit": 'model.fit, Dense(10, activation="softmax"), SGD',
}
#: ``(batch, classes)`` of the op-level micro-benchmark.
# Epochs per timed call of the TensorFlow rows; the last one is timed (steady state).
CALL_EPOCHS = 2
MICRO_SHAPES = ((200, 10), (4096, 10), (1024, 1000))
DTYPES = ("float32", "float64")

#: The issue's targets: ``(name, numerator, denominator, limit)`` on median epoch times.
RATIO_TARGETS = (
    ("custom-jacobian <= 0.25 x keras-fit", "custom-jacobian", "keras-fit", 0.25),
    ("custom-jacobian <= 1.0 x numpy-vectorized", "custom-jacobian", "numpy-vectorized", 1.0),
    ("custom-jacobian <= 1.15 x builtin-loop", "custom-jacobian", "builtin-loop", 1.15),
)
CLI_TARGET = 1.5  # tfsoftmax train (20 epochs, start-up included) <= 1.5 x 20 epochs of row 3
ACCURACY_TARGET = 0.002  # |test accuracy custom - numpy| after the same 20 epochs


# --------------------------------------------------------------------------- threads
def _one_blas_thread():
    """A context limiting NumPy's BLAS to one thread, and what it did.

    With two OpenBLAS threads the reference's small matrix products (a
    ``(10, 785) x (785, 200)`` per step) spend their time in thread hand-offs
    and, once TensorFlow's thread pools are busy too, in contention: measured
    on the 2-core machine, 0.9-4 s per epoch instead of 0.1 s with one thread.
    The benchmark gives NumPy its best setting (``threadpoolctl``, a dev
    dependency; without it, whatever ``OPENBLAS_NUM_THREADS`` says).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        setting = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        return contextlib.nullcontext(), f"unchanged (OPENBLAS_NUM_THREADS={setting})"
    return threadpool_limits(limits=1, user_api="blas"), "1 (threadpoolctl)"


# --------------------------------------------------------------------------- memory
def _status_bytes(field):
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


class _PeakMemory:
    """``with _PeakMemory() as m: ...`` -> ``m.peak``, ``m.start`` (bytes), ``m.method``."""

    def __enter__(self):
        self.reset = _reset_peak_rss()
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc):
        peak = _status_bytes("VmHWM") if self.reset else None
        if peak is None:
            self.method = "ru_maxrss (process lifetime)"
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            self.method = "VmHWM reset per call"
            self.peak = peak
        return False


# --------------------------------------------------------------------------- results
@dataclasses.dataclass
class BenchRow:
    """One trainer: its epochs, medians and memory."""

    name: str
    description: str
    epoch_seconds: list
    warmup_seconds: float | None = None
    call_overhead_seconds: list = dataclasses.field(default_factory=list)
    peak_rss_bytes: int = 0
    rss_rise_bytes: int = 0
    samples: int = 0
    retraced_after_warmup: int | None = None
    in_rounds: bool = True
    notes: str = ""

    @property
    def median_seconds(self):
        return statistics.median(self.epoch_seconds)

    @property
    def samples_per_second(self):
        return self.samples / self.median_seconds

    @property
    def compile_seconds(self):
        """Tracing + compilation: the warm-up epoch minus a steady one (TensorFlow rows)."""
        if self.warmup_seconds is None or self.name.startswith("numpy"):
            return None
        return max(0.0, self.warmup_seconds - self.median_seconds)

    def to_dict(self):
        return {
            "name": self.name,
            "description": self.description,
            "epoch_seconds": self.epoch_seconds,
            "median_seconds": self.median_seconds,
            "samples_per_second": self.samples_per_second,
            "warmup_seconds": self.warmup_seconds,
            "compile_seconds": self.compile_seconds,
            "call_overhead_seconds": self.call_overhead_seconds,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rss_rise_bytes": self.rss_rise_bytes,
            "retraced_after_warmup": self.retraced_after_warmup,
            "notes": self.notes,
        }


@dataclasses.dataclass
class BenchResult:
    """Everything :func:`run_bench` measured; ``to_dict`` is the JSON layout."""

    settings: dict
    machine: dict
    rows: dict  # name -> BenchRow
    bytes_per_epoch: dict
    bandwidth_bytes_per_second: float
    micro: list = dataclasses.field(default_factory=list)
    accuracy: dict | None = None
    cli: dict | None = None
    step: dict | None = None
    memory_method: str = ""

    def ratio(self, numerator, denominator):
        """Median over the rounds of ``numerator``'s epoch / ``denominator``'s, same round.

        The rows of one round ran back to back, so load from other processes
        cancels in each round's ratio. (Rows not in the rounds, such as
        ``numpy-loop``: the ratio of the medians.)
        """
        if numerator not in self.rows or denominator not in self.rows:
            return None
        a, b = self.rows[numerator], self.rows[denominator]
        if a.in_rounds and b.in_rounds and len(a.epoch_seconds) == len(b.epoch_seconds):
            return statistics.median(
                x / y for x, y in zip(a.epoch_seconds, b.epoch_seconds, strict=True)
            )
        return a.median_seconds / b.median_seconds

    def targets(self):
        """The issue's targets that this run measured: value, limit, met, margin."""
        results = []
        for name, numerator, denominator, limit in RATIO_TARGETS:
            value = self.ratio(numerator, denominator)
            if value is not None:
                results.append(_target(name, value, limit))
        if self.cli is not None and "custom-jacobian" in self.rows:
            baseline = self.cli["epochs"] * self.rows["custom-jacobian"].median_seconds
            results.append(
                _target(
                    f"tfsoftmax train ({self.cli['epochs']} epochs, start-up included) <= "
                    f"{CLI_TARGET} x {self.cli['epochs']} epochs of custom-jacobian",
                    self.cli["wall_seconds"] / baseline,
                    CLI_TARGET,
                )
            )
        if self.accuracy is not None:
            results.append(
                _target(
                    f"|test accuracy custom-jacobian - numpy| after "
                    f"{self.accuracy['epochs']} epochs <= {ACCURACY_TARGET}",
                    abs(self.accuracy["difference"]),
                    ACCURACY_TARGET,
                )
            )
        if self.step is not None:
            results.append(
                _target("custom-op step <= 1.5 x built-in step", self.step["ratio"], 1.5)
            )
        return results

    def to_dict(self):
        fit = self.rows.get("keras-fit")
        return {
            "settings": self.settings,
            "machine": self.machine,
            "memory_method": self.memory_method,
            "rows": [
                {
                    **row.to_dict(),
                    "ratio_to_fit": self.ratio(row.name, "keras-fit") if fit else None,
                    "bandwidth_fraction": self._bandwidth_fraction(row),
                }
                for row in self.rows.values()
            ],
            "bytes_per_epoch": self.bytes_per_epoch,
            "bandwidth_bytes_per_second": self.bandwidth_bytes_per_second,
            "epoch_floor_seconds": self.epoch_floor_seconds,
            "micro": self.micro,
            "step": self.step,
            "accuracy": self.accuracy,
            "cli": self.cli,
            "targets": self.targets(),
        }

    def to_json(self, path):
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @property
    def epoch_floor_seconds(self):
        """Bytes a ``train_sgd`` epoch moves through memory over the measured bandwidth."""
        return self.bytes_per_epoch["memory_total"] / self.bandwidth_bytes_per_second

    def _bandwidth_fraction(self, row):
        if not row.name.startswith(("custom", "builtin")):
            return None
        return self.epoch_floor_seconds / row.median_seconds

    def table(self):
        """The result as plain text: rows, memory traffic, micro-benchmark, targets."""
        s = self.settings
        lines = [
            f"MNIST {s['samples']} samples, batch {s['batch_size']}, lr {s['learning_rate']}, "
            f"{s['dtype']}, {s['epochs']} timed epochs per row after 1 warm-up epoch "
            f"(median; rounds interleave the rows, ratios are medians of same-round "
            f"ratios); {self.machine['cpus']} CPUs, "
            f"TensorFlow {self.machine['tensorflow']}, Keras {self.machine['keras']}; "
            f"BLAS threads for NumPy: {s.get('blas_threads')}; TensorFlow's first use "
            f"(paid before the rows): {s.get('tensorflow_first_use_seconds', 0):.2f}s",
            "",
            f"{'#':<3}{'row':<18}{'s/epoch':>9}{'samples/s':>11}{'vs fit':>8}"
            f"{'warm-up s':>11}{'compile s':>11}{'peak RSS MB':>13}{'+MB':>7}",
        ]
        fit = self.rows.get("keras-fit")
        for number, name in enumerate(ROWS, 1):
            row = self.rows.get(name)
            if row is None:
                continue
            ratio = f"{self.ratio(name, 'keras-fit'):.3f}" if fit else "-"
            warmup = f"{row.warmup_seconds:.3f}" if row.warmup_seconds is not None else "-"
            compile_s = f"{row.compile_seconds:.3f}" if row.compile_seconds is not None else "-"
            lines.append(
                f"{number:<3}{name:<18}{row.median_seconds:>9.4f}{row.samples_per_second:>11,.0f}"
                f"{ratio:>8}{warmup:>11}{compile_s:>11}"
                f"{row.peak_rss_bytes / 2**20:>13,.0f}{row.rss_rise_bytes / 2**20:>7,.0f}"
            )
        lines.append(
            f"peak RSS: {self.memory_method}; +MB: rise over the resident size at the "
            "call's start (the process holds TensorFlow and the data throughout)"
        )
        for name in ROWS:
            row = self.rows.get(name)
            if row is not None and row.call_overhead_seconds:
                retrace = (
                    ""
                    if row.retraced_after_warmup is None
                    else f", retraced after warm-up: {row.retraced_after_warmup}"
                )
                lines.append(
                    f"{name}: per-call overhead (checks, conversion; once per call) "
                    f"{statistics.median(row.call_overhead_seconds):.3f}s{retrace}"
                )
        b = self.bytes_per_epoch
        lines += [
            "",
            f"bytes per train_sgd epoch: shuffle {b['shuffle'] / 1e6:,.0f} MB (gather x, y: "
            f"read + write), batches read {b['data_read'] / 1e6:,.0f} MB, weights "
            f"{b['weights'] / 1e6:,.1f} MB (cache-resident); memory total "
            f"{b['memory_total'] / 1e6:,.0f} MB",
            f"memory bandwidth (NumPy copy, read + write): "
            f"{self.bandwidth_bytes_per_second / 1e9:.1f} GB/s -> epoch floor "
            f"{self.epoch_floor_seconds:.4f}s; custom-jacobian runs at "
            + (
                f"{self._bandwidth_fraction(self.rows['custom-jacobian']):.0%} of it"
                if "custom-jacobian" in self.rows
                else "-"
            ),
        ]
        if self.micro:
            lines += [
                "",
                "op-level forward + backward (XLA loop, median per call):",
                f"{'batch x classes':<17}{'op':<16}{'us/call':>10}{'vs tf.nn':>10}"
                f"{'Jacobian bytes':>16}  note",
            ]
            for entry in self.micro:
                lines.append(
                    f"{entry['batch']:>6} x {entry['classes']:<8}{entry['op']:<16}"
                    f"{entry['seconds'] * 1e6:>10.1f}{entry['ratio_to_builtin']:>10.2f}"
                    f"{_bytes(entry['jacobian_bytes']):>16}  {entry['note']}"
                )
        if self.step is not None:
            st = self.step
            lines += [
                "",
                f"SGD step alone (XLA batch loop, {st['steps']} steps, {st['repeats']} "
                f"interleaved repeats): custom {st['custom_seconds'] * 1e6:.0f} us, "
                f"built-in {st['builtin_seconds'] * 1e6:.0f} us, ratio {st['ratio']:.3f}",
            ]
        if self.accuracy is not None:
            a = self.accuracy
            lines += [
                "",
                f"accuracy after {a['epochs']} epochs, seed {s['seed']}: numpy "
                f"{a['numpy']:.4f}, custom-jacobian {a['custom']:.4f} "
                f"(difference {a['difference']:+.4f})",
            ]
        if self.cli is not None:
            c = self.cli
            lines += [
                "",
                f"`{c['command']}`: {c['wall_seconds']:.2f}s wall (its own report: {c['report']})",
            ]
        lines += ["", "targets:"]
        for t in self.targets():
            verdict = "met" if t["met"] else f"MISSED by {t['miss_factor']:.2f}x"
            lines.append(f"  {t['name']}: {t['value']:.4g} (limit {t['limit']:g}) {verdict}")
        return "\n".join(lines)


def _target(name, value, limit):
    return {
        "name": name,
        "value": float(value),
        "limit": float(limit),
        "met": bool(value <= limit),
        "miss_factor": float(value / limit) if value > limit else None,
    }


def _bytes(count):
    if count is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


# --------------------------------------------------------------------------- pieces
def memory_bandwidth(megabytes=256, repeats=5):
    """Bytes per second of a NumPy copy (read + write) of a ``megabytes`` array."""
    source = np.ones(megabytes * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - started)
    return 2 * source.nbytes / statistics.median(times)


def bytes_per_epoch(samples, features, classes, batch_size, itemsize):
    """Memory traffic of one ``train_sgd`` epoch, by part (see the module docstring)."""
    data = samples * (features + classes) * itemsize
    steps = -(-samples // batch_size)
    weights = steps * 3 * classes * (features + 1) * itemsize
    return {
        "shuffle": 2 * data,
        "data_read": data,
        "weights": weights,
        "memory_total": 3 * data,
    }


def _machine():
    from tfsoftmax._tf import keras, tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _warm_tensorflow(dtype):
    """Pay TensorFlow's once-per-process start (runtime, XLA, oneDNN) before any row.

    Otherwise the first TensorFlow row's warm-up epoch would carry it and its
    ``compile_s`` would be inflated. Returns the seconds it took.
    """
    from tfsoftmax._tf import keras, tf

    started = time.perf_counter()

    @tf.function(jit_compile=True)
    def tiny(x, w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = tf.reduce_sum(tf.nn.softmax(tf.matmul(x, w)))
        return tape.gradient(loss, w)

    tiny(tf.ones((4, 3), dtype), tf.ones((3, 2), dtype)).numpy()
    keras.layers.Dense(2, dtype=dtype)(np.ones((4, 3), dtype)).numpy()
    return time.perf_counter() - started


def _tracing_count(model, loss):
    """How often train_sgd's compiled batch loop was traced (None if not accessible)."""
    try:
        from tfsoftmax import training

        per_model = training._COMPILED.get(model, {})
        counts = []
        for entry in per_model.values():
            if entry[0] is loss:
                counts.append(entry[-1].run_batches.experimental_get_tracing_count())
        return sum(counts) if counts else None
    except Exception:  # a private detail; the benchmark must not depend on it
        return None


def _keras_fit_model(weights, dtype, learning_rate):
    from tfsoftmax._tf import keras
    from tfsoftmax.layers import from_bias_trick

    model = keras.Sequential(
        [
            keras.Input((weights.shape[1] - 1,), dtype=dtype),
            keras.layers.Dense(weights.shape[0], activation="softmax", dtype=dtype),
        ]
    )
    model.layers[0].set_weights([np.asarray(a, dtype) for a in from_bias_trick(weights)])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
    )
    return model


def _epoch_timer():
    from tfsoftmax._tf import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


class _Runner:
    """One row: a ``run(epoch_seed)`` returning (epoch seconds, call seconds)."""

    def __init__(self, name, x, y, weights, settings):
        self.name = name
        self.row = BenchRow(name, DESCRIPTIONS[name], [], samples=int(x.shape[0]))
        self.x, self.y, self.settings = x, y, settings
        self.dtype = settings["dtype"]
        if name.startswith("numpy"):
            self.weights = np.array(weights, dtype=self.dtype)
        elif name == "keras-fit":
            self.model = _keras_fit_model(weights, self.dtype, settings["learning_rate"])
            self.timer = _epoch_timer()
        else:
            from tfsoftmax.models import notebook_model

            kind = "keras" if name == "builtin-loop" else "custom"
            method = "vjp" if name == "custom-vjp" else "jacobian"
            self.model, self.loss = notebook_model(
                kind, weights, dtype=self.dtype, softmax_method=method
            )

    def run(self, seed, measure_memory=True):
        s = self.settings
        with _PeakMemory() as memory:
            started = time.perf_counter()
            if self.name.startswith("numpy"):
                dense, _ = reference.train(
                    self.x.T,
                    self.y.T,
                    epochs=1,
                    batch_size=s["batch_size"],
                    learning_rate=s["learning_rate"],
                    seed=seed,
                    softmax_method="loop" if self.name == "numpy-loop" else "vectorized",
                    dense_method="loop" if self.name == "numpy-loop" else "vectorized",
                    initial_weights=self.weights,
                )
                self.weights = dense.weights
                wall = time.perf_counter() - started
                epoch = wall
            elif self.name == "keras-fit":
                self.timer.seconds.clear()
                self.model.fit(
                    self.x,
                    self.y,
                    batch_size=s["batch_size"],
                    epochs=CALL_EPOCHS,
                    verbose=0,
                    shuffle=True,
                    callbacks=[self.timer],
                )
                wall = time.perf_counter() - started - sum(self.timer.seconds[:-1])
                epoch = self.timer.seconds[-1]
            else:
                from tfsoftmax.training import train_sgd

                history = train_sgd(
                    self.model,
                    self.x,
                    self.y,
                    epochs=CALL_EPOCHS,
                    batch_size=s["batch_size"],
                    learning_rate=s["learning_rate"],
                    seed=seed,
                    loss=self.loss,
                    verbose=0,
                )
                wall = time.perf_counter() - started - sum(history.epoch_seconds[:-1])
                epoch = history.epoch_seconds[-1]
        if measure_memory:  # steady epochs only: the warm-up's peak is compilation's
            self.row.peak_rss_bytes = max(self.row.peak_rss_bytes, memory.peak)
            rise = memory.peak - (memory.start or 0)
            self.row.rss_rise_bytes = max(self.row.rss_rise_bytes, rise)
            self.memory_method = memory.method
        return epoch, wall

    def warm_up(self, seed):
        epoch, wall = self.run(seed, measure_memory=False)
        self.row.warmup_seconds = wall
        self.traces = _tracing_count(self.model, self.loss) if hasattr(self, "loss") else None

    def timed(self, seed):
        epoch, wall = self.run(seed)
        self.row.epoch_seconds.append(epoch)
        if not self.name.startswith("numpy"):
            self.row.call_overhead_seconds.append(wall - epoch)
        if getattr(self, "traces", None) is not None:
            self.row.retraced_after_warmup = _tracing_count(self.model, self.loss) - self.traces


# --------------------------------------------------------------------------- micro
def micro_benchmark(shapes=MICRO_SHAPES, dtype="float32", repeats=5, target_seconds=0.05, seed=0):
    """Forward + backward of ``jacobian_softmax`` (both methods) vs ``tf.nn.softmax``.

    Returns one dict per shape and op: median seconds per forward + backward,
    ratio to ``tf.nn.softmax``, the explicit Jacobians' bytes, a note.
    """
    from tfsoftmax import ops
    from tfsoftmax._tf import tf

    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(seed)
    results = []
    for batch, classes in shapes:
        z = tf.constant(rng.standard_normal((batch, classes)), dtype)
        g = tf.constant(rng.standard_normal((batch, classes)), dtype)
        functions = {
            "jacobian": lambda t: ops.jacobian_softmax(t, "jacobian"),
            "vjp": lambda t: ops.jacobian_softmax(t, "vjp"),
            "tf.nn.softmax": tf.nn.softmax,
        }
        loops, counts = {}, {}
        for name, fn in functions.items():
            loops[name] = _forward_backward_loop(tf, fn)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the "jacobian" fallback warning, at trace time
                loops[name](z, g, tf.constant(1)).numpy()
            started = time.perf_counter()
            loops[name](z, g, tf.constant(10)).numpy()
            per_call = max((time.perf_counter() - started) / 10, 1e-7)
            counts[name] = int(min(100_000, max(10, target_seconds / per_call)))
        times = {name: [] for name in functions}
        for repeat in range(repeats):
            order = list(functions)[repeat % 3 :] + list(functions)[: repeat % 3]
            for name in order:
                n = tf.constant(counts[name])
                started = time.perf_counter()
                loops[name](z, g, n).numpy()
                times[name].append((time.perf_counter() - started) / counts[name])
        builtin = statistics.median(times["tf.nn.softmax"])
        jacobian_elements = batch * classes * classes
        fits = jacobian_elements <= ops.JACOBIAN_MAX_ELEMENTS
        for name in functions:
            note = ""
            if name == "jacobian":
                note = (
                    "explicit Jacobian"
                    if fits
                    else f"falls back to vjp (> {ops.JACOBIAN_MAX_ELEMENTS} elements)"
                )
            results.append(
                {
                    "batch": batch,
                    "classes": classes,
                    "op": name,
                    "seconds": statistics.median(times[name]),
                    "ratio_to_builtin": statistics.median(times[name]) / builtin,
                    "iterations_per_call": counts[name],
                    "jacobian_bytes": jacobian_elements * itemsize if name == "jacobian" else None,
                    "note": note,
                }
            )
    return results


def _forward_backward_loop(tf, fn):
    """``n`` forward + backward passes of ``fn`` in one XLA call, each feeding the next."""

    @tf.function(jit_compile=True)
    def run(z, g, n):
        def body(i, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                a = fn(z)
            dz = tape.gradient(a, z, output_gradients=g)
            return i + 1, z - tf.cast(1e-3, z.dtype) * dz

        return tf.while_loop(lambda i, z: i < n, body, (tf.constant(0), z))[1]

    return run


# --------------------------------------------------------------------------- step
def _sgd_batch_loop(model, loss_fn):
    """train_sgd's compiled batch loop, without its bookkeeping: XLA, batch ``i`` = ``xb[i]``."""
    from tfsoftmax._tf import tf

    variables = model.trainable_variables

    @tf.function(jit_compile=True)
    def run(xb, yb, learning_rate):
        total = tf.zeros((), tf.float64)
        i = tf.constant(0)
        while i < tf.shape(xb)[0]:
            with tf.GradientTape() as tape:
                loss = loss_fn(yb[i], model(xb[i], training=True))
            for variable, gradient in zip(variables, tape.gradient(loss, variables), strict=True):
                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient)
            total += tf.cast(loss, tf.float64)
            i += 1
        return total

    return run


def step_ratio(
    x, y, *, batch_size=200, steps=50, repeats=7, method="jacobian", dtype="float32", seed=0
):
    """Seconds per SGD step of the custom ops and of the built-ins, and their ratio.

    Both models start from the same weights and run ``steps`` steps over the
    same pre-sliced batches in one XLA call (the loop ``train_sgd`` compiles,
    minus the shuffle and bookkeeping, so only the ops differ); calls alternate
    custom/built-in, ``repeats`` times, the first call of each excluded
    (compilation). ``ratio`` is the median of the back-to-back pairs' ratios.
    """
    from tfsoftmax._tf import tf
    from tfsoftmax.models import notebook_model

    batch_size = check_positive_int("batch_size", batch_size)
    steps = min(check_positive_int("steps", steps), x.shape[0] // batch_size)
    if steps < 1:
        raise ValueError(f"need at least one full batch of {batch_size} samples")
    count = steps * batch_size
    xb = tf.constant(np.reshape(np.asarray(x[:count], dtype), (steps, batch_size, -1)))
    yb = tf.constant(np.reshape(np.asarray(y[:count], dtype), (steps, batch_size, -1)))
    weights = reference.Dense(
        xb.shape[-1], yb.shape[-1], rng=np.random.default_rng(seed), dtype=dtype
    ).weights
    lr = tf.constant(0.01, tf.float64)
    loops = {}
    for kind in ("custom", "builtin"):
        model, loss = notebook_model(
            "custom" if kind == "custom" else "keras", weights, dtype=dtype, softmax_method=method
        )
        loops[kind] = _sgd_batch_loop(model, loss)
        loops[kind](xb, yb, lr).numpy()  # compile
    times = {"custom": [], "builtin": []}
    ratios = []
    for repeat in range(repeats):
        order = ("custom", "builtin") if repeat % 2 == 0 else ("builtin", "custom")
        pair = {}
        for kind in order:
            started = time.perf_counter()
            loops[kind](xb, yb, lr).numpy()
            pair[kind] = (time.perf_counter() - started) / steps
            times[kind].append(pair[kind])
        ratios.append(pair["custom"] / pair["builtin"])
    return {
        "custom_seconds": statistics.median(times["custom"]),
        "builtin_seconds": statistics.median(times["builtin"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "steps": steps,
        "repeats": repeats,
        "batch_size": batch_size,
        "method": method,
    }


# --------------------------------------------------------------------------- accuracy, CLI
def _accuracy_check(data, weights, settings, epochs):
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    s = settings
    dense, _ = reference.train(
        data.x_train.T,
        data.y_train.T,
        epochs=epochs,
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        seed=s["seed"],
        initial_weights=weights,
    )
    numpy_accuracy = reference.accuracy(dense, data.x_test.T, data.labels_test)
    model, loss = notebook_model("custom", weights, dtype=s["dtype"])
    train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        seed=s["seed"],
        loss=loss,
        verbose=0,
    )
    probabilities = model(np.asarray(data.x_test, s["dtype"]), training=False).numpy()
    custom_accuracy = float(np.mean(np.argmax(probabilities, axis=1) == data.labels_test))
    return {
        "epochs": epochs,
        "numpy": numpy_accuracy,
        "custom": custom_accuracy,
        "difference": custom_accuracy - numpy_accuracy,
    }


def time_cli_train(epochs=20, extra_args=(), timeout=600):
    """Wall time of ``python -m tfsoftmax train`` in a fresh process (start-up included)."""
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-") as out:
        command = [
            sys.executable,
            "-m",
            "tfsoftmax",
            "train",
            "--epochs",
            str(epochs),
            "--verbose",
            "0",
            "--out",
            out,
            *extra_args,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tfsoftmax train failed ({done.returncode}): {done.stderr[-500:]}")
    report = [line for line in done.stdout.splitlines() if line.startswith(("Time", "Test"))]
    shown = ["python -m tfsoftmax train", "--epochs", str(epochs), *extra_args]
    return {
        "command": " ".join(shown),
        "epochs": epochs,
        "wall_seconds": wall,
        "report": "; ".join(report),
    }


# --------------------------------------------------------------------------- the run
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
    x = np.ascontiguousarray(data.x_train[:count], dtype)
    y = np.ascontiguousarray(data.y_train[:count], dtype)
    data = dataclasses.replace(
        data,
        x_train=x,
        y_train=y,
        labels_train=data.labels_train[:count],
        x_test=np.ascontiguousarray(data.x_test, dtype),
        y_test=np.ascontiguousarray(data.y_test, dtype),
    )
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

    limiter, settings["blas_threads"] = _one_blas_thread()
    with limiter:
        first_use = _warm_tensorflow(dtype)
        runners = [_Runner(name, x, y, weights, settings) for name in ROWS if name in rows]
        interleaved = [r for r in runners if r.name != "numpy-loop"]
        for runner in interleaved:
            runner.warm_up(seed)
        for round_number in range(epochs):
            shift = round_number % max(1, len(interleaved))
            for runner in interleaved[shift:] + interleaved[:shift]:
                runner.timed(seed + 1 + round_number)
        for runner in runners:
            if runner.name == "numpy-loop":
                for epoch in range(loop_epochs):
                    runner.timed(seed + 1 + epoch)
                runner.row.notes = "no warm-up (NumPy compiles nothing), after the rounds"
                runner.row.in_rounds = False

        settings["tensorflow_first_use_seconds"] = first_use
        result = BenchResult(
            settings=settings,
            machine=_machine(),
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
            result.accuracy = _accuracy_check(data, weights, settings, accuracy_epochs)
        if cli_epochs:
            extra = ["--batch-size", str(batch_size), "--learning-rate", str(learning_rate)]
            extra += ["--dtype", dtype, "--seed", str(seed)]
            if limit is not None:
                extra += ["--limit", str(count)]
            result.cli = time_cli_train(cli_epochs, extra)
    return result
