"""What :func:`tfsoftmax.training.train_sgd` prints while it trains.

``verbose=1``: ``Epoch e/E`` and Keras' ``Progbar`` over the epoch's batches,
updated :data:`PROGRESS_UPDATES_PER_EPOCH` times with the running loss
``(1/k) Σ_{i≤k} L_i`` and ending with the epoch's logs. ``verbose=2``: one line
per epoch, ``Epoch e/E - <seconds>s - loss: … - accuracy: …``. ``verbose=0``:
nothing. Each update is one call of the compiled batch loop, so the bar
decides how the epoch's full batches are cut into calls
(:meth:`Progress.batches_per_call`).
"""

import math

from tfsoftmax._tf import keras

__all__ = ["PROGRESS_UPDATES_PER_EPOCH", "Progress"]

#: Progress-bar updates per epoch when ``verbose=1`` (each is one compiled call).
PROGRESS_UPDATES_PER_EPOCH = 10


class Progress:
    """Keras' Progbar for ``verbose=1``, one line per epoch for ``verbose=2``."""

    def __init__(self, verbose, epochs, steps):
        """``steps`` per epoch, or None when unknown (a dataset of unknown length)."""
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.bar = None
        self.done = 0

    def batches_per_call(self, num_full):
        """``⌈num_full / updates⌉`` (at least 1): the full batches trained between
        two updates; all of them in one call unless there is a bar to update."""
        updates = PROGRESS_UPDATES_PER_EPOCH if self.verbose == 1 else 1
        return max(1, math.ceil(num_full / updates))

    def start_epoch(self, epoch):
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
            self.bar = keras.utils.Progbar(self.steps, unit_name="batch")

    def update(self, done, loss):
        """``done`` batches trained so far, their mean loss ``loss``."""
        self.done = done
        if self.bar is not None:
            self.bar.update(done, values=[("loss", loss)], finalize=False)

    def end_epoch(self, epoch, logs, seconds):
        text = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
        if self.bar is not None:
            done = self.steps if self.steps is not None else self.done
            self.bar.update(done, values=[(k, v) for k, v in logs.items()], finalize=True)
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {text}")
