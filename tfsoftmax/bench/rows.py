"""The rows: what each trains, how one epoch of it is timed, and the order of the calls.

1. ``numpy-vectorized`` -- :func:`tfsoftmax.reference.train`, vectorized backward;
2. ``numpy-loop``       -- the same with the notebook's per-sample loops;
3. ``custom-jacobian``  -- :func:`~tfsoftmax.training.train_sgd`, custom ops,
   ``JacobianSoftmax(method="jacobian")``;
4. ``custom-vjp``       -- the same with ``method="vjp"``;
5. ``builtin-loop``     -- ``train_sgd`` over built-in ops with autodiff;
6. ``keras-fit-best``   -- ``model.fit`` at its best: ``model.compile(...,
   jit_compile=True, steps_per_execution=300)``;
7. ``keras-fit``        -- ``model.fit`` on ``Dense(10, activation="softmax")``
   with ``SGD``, Keras' defaults.

And :data:`EXTRA_ROWS`, run in the same rounds when they can run (else
skipped with the reason):

* ``custom-uint8`` -- ``train_sgd`` fed the uint8 pixels, the model starting
  with a rescaling layer (``notebook_model(..., input_dtype="uint8")``; a
  quarter of the bytes to read);
* ``jax-scan``     -- the idiomatic JAX epoch (:mod:`tfsoftmax.bench.jax_row`),
  when ``jax`` is importable;
* ``torch-eager``  -- an eager PyTorch loop (:mod:`tfsoftmax.bench.torch_row`),
  when ``torch`` is importable.

Every row starts from the same initial weights. How a call is timed:

* the TensorFlow rows run :data:`CALL_EPOCHS` (2) epochs per call and time the
  last, a steady-state epoch (``train_sgd`` gathers the next epoch's batches on
  a second thread; ``model.fit``'s pipeline runs ahead likewise);
* an epoch's time is the trainer's own: ``History.epoch_seconds`` for
  ``train_sgd``, ``on_epoch_begin`` -> ``on_epoch_end`` for ``model.fit``, the
  whole ``reference.train(epochs=1)`` call for NumPy. The rest of a call,
  without its untimed epochs, is the per-call overhead
  ``call_overhead_s = wall - epoch`` (input checks, conversion);
* the warm-up call is ``warmup_s``; for TensorFlow rows it includes tracing and
  XLA compilation, estimated as ``compile_s = max(0, warmup_s - median epoch)``;
* peak memory (:class:`~tfsoftmax.bench.measures.PeakMemory`) is taken over the
  timed calls only: the warm-up's peak is compilation's.

The order (:func:`time_rows`): one warm-up call per row, then ``epochs``
rounds, round ``r`` running one epoch of every row in an order of its own
(a permutation drawn from ``default_rng(seed + r)``), so load from other
processes hits every row alike and no row always follows the same neighbour
(a fixed or merely rotated order put ``custom-jacobian`` right after
``numpy-vectorized``, whose epoch streams the data through the caches with
NumPy, in 4 rounds of 5); a row's figure is the median of its epochs, a ratio
between rows the median of same-round ratios. ``numpy-loop`` runs after the
rounds, without a warm-up.
"""

import dataclasses
import statistics
import time

import numpy as np

from tfsoftmax import reference
from tfsoftmax.bench import alternatives
from tfsoftmax.rss import PeakMemory

__all__ = [
    "ALL_ROWS",
    "CALL_EPOCHS",
    "DESCRIPTIONS",
    "EXTRA_ROWS",
    "ROWS",
    "BenchRow",
    "RowRunner",
    "keras_fit_model",
    "time_rows",
]

ROWS = (
    "numpy-vectorized",
    "numpy-loop",
    "custom-jacobian",
    "custom-vjp",
    "builtin-loop",
    "keras-fit-best",
    "keras-fit",
)
EXTRA_ROWS = ("custom-uint8", "jax-scan", "torch-eager")
ALL_ROWS = ROWS + EXTRA_ROWS
#: ``steps_per_execution`` of ``keras-fit-best``: an epoch (300 batches) per call.
BEST_FIT_STEPS = 300
DESCRIPTIONS = {
    "numpy-vectorized": "NumPy reference, vectorized backward",
    "numpy-loop": "NumPy reference, the notebook's per-sample loops (softmax, dense)",
    "custom-jacobian": 'train_sgd, custom ops, method="jacobian"',
    "custom-vjp": 'train_sgd, custom ops, method="vjp"',
    "builtin-loop": "train_sgd, built-in ops + autodiff",
    "keras-fit-best": f"model.fit, jit_compile=True, steps_per_execution={BEST_FIT_STEPS}",
    "keras-fit": 'model.fit, Dense(10, activation="softmax"), SGD',
    "custom-uint8": "train_sgd fed uint8, rescaling layer first, custom ops",
    "jax-scan": "JAX, one jitted epoch, lax.scan, gather in the step",
    "torch-eager": "PyTorch eager loop, autograd, in-place SGD",
}
#: Epochs per timed call of the TensorFlow rows; the last one is timed (steady state).
CALL_EPOCHS = 2
LOOP_ROW = "numpy-loop"


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
        self.memory_method = ""
        self.traces = None  # train_sgd's trace count after the warm-up
        self.skipped = ""  # why the row could not run, if it could not
        if name.startswith("numpy"):
            self.weights = np.array(weights, dtype=self.dtype)
            self.train = self._train_numpy
        elif name.startswith("keras-fit"):
            best = {"jit_compile": True, "steps_per_execution": BEST_FIT_STEPS}
            self.model = keras_fit_model(
                weights, self.dtype, settings["learning_rate"], **(best if "best" in name else {})
            )
            self.timer = _epoch_timer()
            self.train = self._train_fit
        elif name == "custom-uint8":
            self.x = alternatives.to_uint8(x)
            self.model, self.loss = alternatives.uint8_model(weights, self.dtype)
            self.train = self._train_sgd
        elif name in alternatives.TRAINERS:
            self.trainer = alternatives.trainer(name, x, y, weights, settings)  # or RowUnavailable
            self.train = self._train_alternative
        else:
            from tfsoftmax.models import notebook_model

            kind = "keras" if name == "builtin-loop" else "custom"
            method = "vjp" if name == "custom-vjp" else "jacobian"
            self.model, self.loss = notebook_model(
                kind, weights, dtype=self.dtype, softmax_method=method
            )
            self.train = self._train_sgd

    def warm_up(self, seed):
        _, wall = self.run(seed, measure_memory=False)
        self.row.warmup_seconds = wall
        if self.train == self._train_sgd:
            self.traces = self._trace_count()

    def timed(self, seed):
        epoch, wall = self.run(seed)
        self.row.epoch_seconds.append(epoch)
        if not self.name.startswith("numpy"):
            self.row.call_overhead_seconds.append(wall - epoch)
        if self.traces is not None:
            self.row.retraced_after_warmup = self._trace_count() - self.traces

    def run(self, seed, measure_memory=True):
        """One call of the trainer: ``(timed epoch seconds, call seconds)``.

        The call seconds leave out the call's earlier, untimed epochs.
        """
        with PeakMemory() as memory:
            started = time.perf_counter()
            untimed, epoch = self.train(seed)
            wall = time.perf_counter() - started - sum(untimed)
        if measure_memory:  # steady epochs only: the warm-up's peak is compilation's
            self.row.peak_rss_bytes = max(self.row.peak_rss_bytes, memory.peak)
            rise = memory.peak - (memory.start or 0)
            self.row.rss_rise_bytes = max(self.row.rss_rise_bytes, rise)
            self.memory_method = memory.method
        return epoch, wall

    def _train_numpy(self, seed):
        """One epoch of the reference; ``(untimed epochs' seconds, timed epoch's seconds)``."""
        s = self.settings
        method = "loop" if self.name == LOOP_ROW else "vectorized"
        started = time.perf_counter()
        dense, _ = reference.train(
            self.x.T,
            self.y.T,
            epochs=1,
            batch_size=s["batch_size"],
            learning_rate=s["learning_rate"],
            seed=seed,
            softmax_method=method,
            dense_method=method,
            initial_weights=self.weights,
        )
        self.weights = dense.weights
        return [], time.perf_counter() - started

    def _train_fit(self, seed):
        """:data:`CALL_EPOCHS` epochs of ``model.fit``; ``(earlier epochs, last epoch)``."""
        self.timer.seconds.clear()
        self.model.fit(
            self.x,
            self.y,
            batch_size=self.settings["batch_size"],
            epochs=CALL_EPOCHS,
            verbose=0,
            shuffle=True,
            callbacks=[self.timer],
        )
        return self.timer.seconds[:-1], self.timer.seconds[-1]

    def _train_sgd(self, seed):
        """:data:`CALL_EPOCHS` epochs of ``train_sgd``; ``(earlier epochs, last epoch)``."""
        from tfsoftmax.training import train_sgd

        history = train_sgd(
            self.model,
            self.x,
            self.y,
            epochs=CALL_EPOCHS,
            batch_size=self.settings["batch_size"],
            learning_rate=self.settings["learning_rate"],
            seed=seed,
            loss=self.loss,
            verbose=0,
        )
        return history.epoch_seconds[:-1], history.epoch_seconds[-1]

    def _train_alternative(self, seed):
        """:data:`CALL_EPOCHS` epochs of a JAX or PyTorch trainer; ``(earlier, last)``."""
        _, seconds = self.trainer.epochs(CALL_EPOCHS, seed)
        return seconds[:-1], seconds[-1]

    def _trace_count(self):
        from tfsoftmax.engine import trace_count

        return trace_count(self.model, self.loss)


def time_rows(runners, epochs, loop_epochs, seed):
    """Warm up every runner, time ``epochs`` interleaved rounds, then ``numpy-loop``.

    Round ``r`` (and ``numpy-loop``'s epoch ``r``) shuffles with ``seed + 1 + r``;
    the results land in each runner's ``row``.
    """
    interleaved = [r for r in runners if r.name != LOOP_ROW]
    for runner in list(interleaved):
        try:
            runner.warm_up(seed)
        except (TypeError, ValueError) as error:
            if runner.name != "custom-uint8":
                raise
            runner.skipped = f"train_sgd refuses uint8 features: {error}"
            interleaved.remove(runner)
    for round_number in range(epochs):
        order = np.random.default_rng(seed + round_number).permutation(len(interleaved))
        for index in order:
            interleaved[index].timed(seed + 1 + round_number)
    for runner in runners:
        if runner.name == LOOP_ROW:
            for epoch in range(loop_epochs):
                runner.timed(seed + 1 + epoch)
            runner.row.notes = "no warm-up (NumPy compiles nothing), after the rounds"
            runner.row.in_rounds = False


def keras_fit_model(weights, dtype, learning_rate, **compile_options):
    """``Dense(classes, activation="softmax")`` at ``weights``, compiled with ``SGD``
    and ``compile_options`` (``jit_compile``, ``steps_per_execution``)."""
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
        **compile_options,
    )
    return model


def _epoch_timer():
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
