"""The six rows: what each one trains, how one epoch of it is timed, and its record.

Every row starts from the same initial weights (the notebook's
initialisation, ``seed``); :class:`RowRunner` trains it one call at a time and
:class:`BenchRow` keeps what was measured. How a call is timed:

* the TensorFlow rows run :data:`CALL_EPOCHS` (2) epochs per call and time
  the last one, a steady-state epoch as every epoch after the first of a real
  run is (``train_sgd`` gathers an epoch's shuffled batches on a second thread
  while the previous epoch trains; ``model.fit``'s input pipeline likewise
  runs ahead); the earlier epoch of the call is neither timed nor counted in
  the call overhead;
* an epoch's time is the trainer's own: ``History.epoch_seconds`` for
  ``train_sgd`` (shuffle + compiled batch loop + bookkeeping; without the
  once-per-call input checks and conversions, reported separately as
  ``call_overhead_s`` -- wall time of the call minus its epochs), the time
  between ``on_epoch_begin`` and ``on_epoch_end`` for ``model.fit``, and the
  whole ``reference.train(epochs=1)`` call for NumPy (its input check is ~2%
  of that);
* the warm-up call is reported as ``warmup_s``; for the TensorFlow rows it
  includes tracing and XLA compilation, estimated as
  ``compile_s = warmup_s - median epoch``;
* peak memory (:mod:`tfsoftmax.bench.peak_memory`) is taken over the timed
  calls only: the warm-up's peak is compilation's.

The order of the calls -- warm-up, then interleaved rounds -- is
:mod:`tfsoftmax.bench.rounds`'.
"""

import dataclasses
import statistics
import time

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench.peak_memory import PeakMemory

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
#: Epochs per timed call of the TensorFlow rows; the last one is timed (steady state).
CALL_EPOCHS = 2


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


class RowRunner:
    """One row: :meth:`warm_up` once, then :meth:`timed` calls fill ``self.row``."""

    def __init__(self, name, x, y, weights, settings):
        self.name = name
        self.row = BenchRow(name, DESCRIPTIONS[name], [], samples=int(x.shape[0]))
        self.x, self.y, self.settings = x, y, settings
        self.dtype = settings["dtype"]
        if name.startswith("numpy"):
            self.weights = np.array(weights, dtype=self.dtype)
        elif name == "keras-fit":
            self.model = keras_fit_model(weights, self.dtype, settings["learning_rate"])
            self.timer = epoch_timer()
        else:
            from tfsoftmax.models import notebook_model

            kind = "keras" if name == "builtin-loop" else "custom"
            method = "vjp" if name == "custom-vjp" else "jacobian"
            self.model, self.loss = notebook_model(
                kind, weights, dtype=self.dtype, softmax_method=method
            )

    def run(self, seed, measure_memory=True):
        """One call of the trainer: ``(timed epoch seconds, call seconds)``.

        The call seconds leave out the call's earlier, untimed epochs.
        """
        s = self.settings
        with PeakMemory() as memory:
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
        self.traces = tracing_count(self.model, self.loss) if hasattr(self, "loss") else None

    def timed(self, seed):
        epoch, wall = self.run(seed)
        self.row.epoch_seconds.append(epoch)
        if not self.name.startswith("numpy"):
            self.row.call_overhead_seconds.append(wall - epoch)
        if getattr(self, "traces", None) is not None:
            self.row.retraced_after_warmup = tracing_count(self.model, self.loss) - self.traces


def keras_fit_model(weights, dtype, learning_rate):
    """``Dense(classes, activation="softmax")`` at ``weights``, compiled with ``SGD``."""
    from tfsoftmax._tf import keras
    from tfsoftmax.models import set_notebook_weights

    model = keras.Sequential(
        [
            keras.Input((weights.shape[1] - 1,), dtype=dtype),
            keras.layers.Dense(weights.shape[0], activation="softmax", dtype=dtype),
        ]
    )
    set_notebook_weights(model, np.asarray(weights, dtype))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
    )
    return model


def epoch_timer():
    """A Keras callback whose ``seconds`` lists each epoch's ``on_epoch_begin`` -> ``_end``."""
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


def tracing_count(model, loss):
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
