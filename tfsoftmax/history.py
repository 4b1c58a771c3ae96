"""What a training run returns: per-epoch metrics, JSON and CSV on disk.

``History.history`` is laid out like Keras' (``{"loss": [...], "accuracy":
[...], "val_loss": [...], ...}``), so code written for ``model.fit``'s
history works on it; files are written atomically (:mod:`tfsoftmax.atomic`: temporary file, then
``os.replace``), so an interrupted run never leaves half a file behind.
"""

import csv
import io
import json

from tfsoftmax.atomic import write_text

__all__ = ["History"]


class History:
    """Per-epoch metrics of one training run.

    Attributes:
        history: ``{metric name: [value per epoch]}``; always ``loss`` (the
            mean of the epoch's batch losses, each taken before its update, as
            the notebook computes it) and ``accuracy`` (the fraction of
            training samples whose batch prediction was right); ``val_loss``
            and ``val_accuracy`` when validation data was given.
        epoch: the 0-based index of each recorded epoch.
        params: the run's settings (epochs, batch size, learning rate, seed…).
        epoch_seconds: wall time of each epoch, compilation included.
    """

    def __init__(self, params=None):
        self.params = dict(params or {})
        self.history = {}
        self.epoch = []
        self.epoch_seconds = []

    def record(self, epoch, logs, seconds):
        """Append one epoch's ``logs`` (a dict of floats)."""
        self.epoch.append(int(epoch))
        self.epoch_seconds.append(float(seconds))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    @property
    def loss(self):
        """The per-epoch training loss, a list of floats."""
        return list(self.history.get("loss", []))

    def to_dict(self):
        return {
            "params": self.params,
            "epoch": list(self.epoch),
            "epoch_seconds": list(self.epoch_seconds),
            "history": {key: list(values) for key, values in self.history.items()},
        }

    @classmethod
    def from_dict(cls, data):
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: ``data`` is malformed, or a metric (or the epoch times)
                does not hold exactly one value per epoch.
        """
        try:
            history = cls(data.get("params"))
            history.epoch = [int(e) for e in data.get("epoch", [])]
            history.epoch_seconds = [float(s) for s in data.get("epoch_seconds", [])]
            history.history = {str(k): [float(v) for v in vs] for k, vs in data["history"].items()}
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a History dict ({type(error).__name__}: {error})") from None
        history.check()
        return history

    def check(self):
        """Raise ``ValueError`` unless every metric and the epoch times hold one
        value per recorded epoch."""
        lengths = {"epoch_seconds": len(self.epoch_seconds)}
        lengths.update((key, len(values)) for key, values in self.history.items())
        ragged = {key: n for key, n in lengths.items() if n != len(self.epoch)}
        if ragged:
            detail = ", ".join(f"{key} has {n}" for key, n in ragged.items())
            raise ValueError(f"history is ragged: {len(self.epoch)} epochs but {detail}")

    def to_json(self, path):
        """Write the whole history as JSON; returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def to_csv(self, path):
        """Write one row per epoch (``epoch,loss,accuracy,…``); returns the path.

        Raises:
            ValueError: the history is ragged (see :meth:`check`); nothing is written.
        """
        self.check()
        keys = list(self.history)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["epoch", *keys, "seconds"])
        for row, epoch in enumerate(self.epoch):
            values = [repr(self.history[key][row]) for key in keys]
            writer.writerow([epoch + 1, *values, f"{self.epoch_seconds[row]:.4f}"])
        return write_text(path, buffer.getvalue())

    def __repr__(self):
        last = {key: values[-1] for key, values in self.history.items() if values}
        return f"History(epochs={len(self.epoch)}, last={last})"
