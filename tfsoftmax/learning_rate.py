"""The learning rate of :func:`tfsoftmax.training.train_sgd`: a value, a schedule, observable.

The update stays the hand-written ``w ← w − η_s · ∇w L_B``; what this module
decides is ``η_s``, the rate of the update at global step ``s`` (0 for the
very first batch of the run, counting every batch of every epoch, as an
optimizer's ``iterations`` does)::

    learning_rate = 0.01                       η_s = 0.01 (until a callback sets another)
    learning_rate = schedule                   η_s = schedule(s)   a keras LearningRateSchedule
    learning_rate = f  (one argument)          η_s = f(s)
    learning_rate = f  (no argument)           η_s = f()           Keras' callable convention

:class:`LearningRate` computes the rates of a run of consecutive steps on the
host, ``rates(s, n) = [η_s, …, η_{s+n−1}]`` (a schedule is called once on the
vector of steps), and the compiled batch loop takes them as a vector: a
schedule costs nothing inside the loop and never retraces it.

:class:`TrainerOptimizer` makes the rate observable to Keras callbacks. While
``train_sgd`` runs with callbacks, ``model.optimizer`` is this small
``keras.optimizers.Optimizer`` (:func:`attached_optimizer`; the model's own
optimizer, if it was compiled, is put back afterwards and is never used):

* ``optimizer.learning_rate`` reads the rate of the most recent update (the
  rate actually used; the first one before any update); setting it — as
  ``LearningRateScheduler`` and ``ReduceLROnPlateau`` do — changes the rate of
  every following update (a ``TypeError`` for a schedule, as Keras raises);
* ``optimizer.iterations`` is the global step ``s`` (TensorBoard's step).

The rate is kept as a Python float (float64) and cast to the model's dtype
inside the step, exactly as a float ``learning_rate`` always was; the
optimizer's own float32 ``learning_rate`` variable only mirrors it for
saving.
"""

import contextlib
import inspect
import math
import numbers

import numpy as np

from tfsoftmax._tf import keras
from tfsoftmax.validation import check_learning_rate

__all__ = ["LearningRate", "TrainerOptimizer", "attached_optimizer"]

_MISSING = object()


def _arity(function):
    """0 if ``function`` takes no required argument, else 1 (it gets the step)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    required = [
        p
        for p in parameters
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return 0 if not required else 1


def _checked_rates(values, first_step, source):
    """``values`` as a float64 vector, each finite and ≥ 0, or ValueError naming the step."""
    rates = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(rates) | (rates < 0))
    if bad.size:
        step = first_step + int(bad[0])
        raise ValueError(
            f"learning_rate {source} gave {rates[bad[0]]} at step {step}; a learning rate "
            "must be finite and >= 0"
        )
    return rates


class LearningRate:
    """``η_s`` of a run: a float, a ``LearningRateSchedule`` or a callable (module docstring).

    Raises:
        ValueError: a float that is not finite and > 0, or anything else that
            is neither a schedule nor callable.
    """

    def __init__(self, learning_rate):
        self.schedule = self.function = None
        self.value = None
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            self.schedule = learning_rate
        elif isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
            self.value = check_learning_rate(learning_rate)
        elif callable(learning_rate):
            self.function, self._arity = learning_rate, _arity(learning_rate)
        else:
            raise ValueError(
                f"learning_rate must be a positive finite number, got {learning_rate!r} "
                "(or a keras.optimizers.schedules.LearningRateSchedule, or a callable of the step)"
            )

    @property
    def is_constant(self):
        """Whether ``η`` is a plain value (possibly changed by callbacks)."""
        return self.value is not None

    def rates(self, first_step, count):
        """``[η_first_step, …, η_{first_step+count−1}]``, float64, each finite and ≥ 0."""
        if count <= 0:
            return np.zeros(0)
        if self.value is not None:
            return np.full(count, self.value)
        steps = np.arange(first_step, first_step + count, dtype=np.int64)
        if self.schedule is not None:
            values = np.asarray(self.schedule(steps), dtype=np.float64)
            if values.shape != (count,):  # a schedule that does not broadcast over steps
                values = [float(self.schedule(int(step))) for step in steps]
            return _checked_rates(values, first_step, type(self.schedule).__name__)
        if self._arity == 0:
            values = [float(self.function()) for _ in steps]
        else:
            values = [float(self.function(int(step))) for step in steps]
        return _checked_rates(values, first_step, getattr(self.function, "__name__", "callable"))

    def at(self, step):
        """``η_step``."""
        return float(self.rates(step, 1)[0])

    def set(self, value):
        """A callback sets the rate: ``η`` is ``value`` for every following step.

        Raises:
            TypeError: the rate is a schedule or a callable (as Keras' optimizers refuse).
            ValueError: ``value`` is not a finite number ≥ 0.
        """
        if self.value is None:
            raise TypeError(
                "the learning rate of this train_sgd run is a schedule or a callable "
                f"({self.describe()!r}); it cannot be set by a callback. Pass a float "
                "learning_rate to use LearningRateScheduler or ReduceLROnPlateau."
            )
        rate = float(np.asarray(value))
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"a callback set the learning rate to {rate}; it must be finite, >= 0")
        self.value = rate

    def describe(self):
        """A JSON-able description: the float, or the schedule's class and config."""
        if self.value is not None:
            return self.value
        if self.schedule is not None:
            config = self.schedule.get_config()
            plain = {k: v for k, v in config.items() if isinstance(v, int | float | str | list)}
            return {"schedule": type(self.schedule).__qualname__, "config": plain}
        return {"callable": getattr(self.function, "__qualname__", repr(self.function))}


class TrainerOptimizer(keras.optimizers.Optimizer):
    """``model.optimizer`` while ``train_sgd`` runs with callbacks: the rate and the step.

    It never applies gradients (``train_sgd`` updates the weights itself);
    ``learning_rate`` and ``iterations`` are what callbacks read and set
    (module docstring).
    """

    def __init__(self, rate, step=0):
        super().__init__(learning_rate=0.0, name="train_sgd")
        self.rate = rate
        self.built = True  # nothing to build: BackupAndRestore must not try
        self.step = step  # the global step: updates done so far in this run
        if rate.value is not None:
            self._learning_rate.assign(rate.value)

    @property
    def learning_rate(self):
        """``η`` of the most recent update (of the first, before any)."""
        return self.rate.at(max(self.step - 1, 0))

    @learning_rate.setter
    def learning_rate(self, value):
        if not hasattr(self, "rate"):  # the base class's constructor
            return
        self.rate.set(value)
        self._learning_rate.assign(self.rate.value)

    @property
    def iterations(self):
        """The global step as a variable (TensorBoard's step), brought up to date
        when read: the trainer only moves the Python int :attr:`step`."""
        if int(self._iterations.numpy()) != self.step:
            self._iterations.assign(self.step)
        return self._iterations

    def update_step(self, gradient, variable, learning_rate):
        raise TypeError("train_sgd's optimizer holds the learning rate; it applies no gradients")


@contextlib.contextmanager
def attached_optimizer(model, optimizer):
    """``model.optimizer = optimizer`` inside the block; the previous one (or none) after."""
    previous = model.__dict__.get("optimizer", _MISSING)
    model.optimizer = optimizer
    try:
        yield optimizer
    finally:
        if previous is _MISSING:
            del model.optimizer
        else:
            model.optimizer = previous
