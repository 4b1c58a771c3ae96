"""What the three-way comparison found: the :class:`Comparison` record, its table and its JSON.

:func:`tfsoftmax.compare.compare` measures; this module holds what it returns.
The numbers, for two implementations ``a`` and ``b`` (``b`` the reference side
of a pair "a vs b"):

* ``max_abs = max |a − b|`` over every element;
* ``max_rel = max |a − b| / max |b|`` — relative to the size of ``b``; an
  element-wise ratio would blow up wherever a weight happens to be near zero;
* gradients: the largest of those over the first ``gradient_steps`` steps of
  epoch 1, every gradient taken at the same weights;
* weights: after each epoch;
* loss curves: ``max_e |loss_a[e] − loss_b[e]|``, the largest difference over
  the epochs, which must not exceed :data:`LOSS_TOLERANCE` of the dtype.

Epochs are numbered from 1 in the table and in the JSON (``"epoch": 1`` is the
first epoch; ``loss[0]`` is its loss). ``tfsoftmax train``'s ``history.json``
follows Keras' ``History`` and stores 0-based indices under ``"epoch"``;
``history.csv`` counts from 1.

No TensorFlow is imported here.
"""

import dataclasses
import datetime
import json
import platform

import numpy as np

from tfsoftmax.atomic import write_text

__all__ = [
    "DEFINITIONS",
    "IMPLEMENTATIONS",
    "LOSS_TOLERANCE",
    "PAIRS",
    "Comparison",
    "max_differences",
    "utc_timestamp",
    "versions",
]

IMPLEMENTATIONS = ("numpy", "custom", "keras")
PAIRS = (("custom", "numpy"), ("keras", "numpy"), ("custom", "keras"))
#: Largest allowed difference between two loss curves, per dtype.
LOSS_TOLERANCE = {"float64": 1e-9, "float32": 1e-4}

#: What the JSON's numbers mean; written into every ``compare.json``.
DEFINITIONS = {
    "pairs": "'a vs b' compares implementation a with b; b is the reference side",
    "max_abs": "max |a - b| over every element",
    "max_rel": "max |a - b| / max |b|: relative to the size of b, not element-wise",
    "gradient_differences": "the largest max_abs and max_rel of the batch-mean weight "
    "gradient dL/dW over the first settings.gradient_steps steps of epoch 1, all three "
    "gradients taken at the same weights (the reference's)",
    "weight_differences": "max_abs and max_rel of the (classes, features + 1) weight "
    "matrices after each epoch",
    "loss_differences": "max over epochs of |loss_a - loss_b|; the runs agree when every "
    "one is <= loss_tolerance",
    "loss": "per epoch, the mean of the epoch's batch losses, each taken before its update",
    "epoch": "epochs are numbered from 1 here: weight_differences[i].epoch = i + 1 and "
    "loss[i] is epoch i + 1 (tfsoftmax train's history.json stores Keras' 0-based "
    "indices under 'epoch'; its history.csv counts from 1)",
    "train_seconds": "wall time of the training call, compilation included",
}


def max_differences(a, b):
    """``(max |a − b|, max |a − b| / max |b|)`` as Python floats.

    >>> max_differences([1.0, 2.5], [1.0, 2.0])
    (0.5, 0.25)
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    absolute = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return absolute, absolute / scale if scale > 0 else absolute


def utc_timestamp():
    """Now, in UTC, ISO 8601 to the second (``2025-01-31T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions(**more):
    """``{"tfsoftmax", "numpy", "python"}`` versions, plus ``more`` (e.g. ``tensorflow=``)."""
    from tfsoftmax import __version__

    found = {"tfsoftmax": __version__}
    found.update(more)
    found.update(numpy=np.__version__, python=platform.python_version())
    return found


@dataclasses.dataclass
class Comparison:
    """Everything :func:`tfsoftmax.compare.compare` measured; ``to_dict`` is the JSON layout."""

    settings: dict
    losses: dict  # implementation -> per-epoch losses
    test_accuracy: dict  # implementation -> float
    seconds: dict  # implementation -> training wall time
    gradient_differences: dict  # "a vs b" -> {"max_abs", "max_rel"} over the first steps
    weight_differences: dict  # "a vs b" -> [{"epoch" (from 1), "max_abs", "max_rel"}, ...]
    loss_differences: dict  # "a vs b" -> max abs difference over all epochs
    final_weights: dict  # implementation -> (units, inputs + 1) array
    test_predictions: dict  # implementation -> predicted labels on the test set
    versions: dict = dataclasses.field(default_factory=versions)
    timestamp: str = dataclasses.field(default_factory=utc_timestamp)  # when it finished

    @property
    def tolerance(self):
        return LOSS_TOLERANCE[self.settings["dtype"]]

    @property
    def agree(self):
        """Do all three loss curves agree within the dtype's tolerance?"""
        return all(diff <= self.tolerance for diff in self.loss_differences.values())

    def to_dict(self):
        return {
            "timestamp": self.timestamp,
            "versions": self.versions,
            "definitions": DEFINITIONS,
            "settings": self.settings,
            "implementations": {
                name: {
                    "loss": list(map(float, self.losses[name])),
                    "test_accuracy": self.test_accuracy[name],
                    "train_seconds": self.seconds[name],
                }
                for name in IMPLEMENTATIONS
            },
            "gradient_differences": self.gradient_differences,
            "weight_differences": self.weight_differences,
            "loss_differences": self.loss_differences,
            "loss_tolerance": self.tolerance,
            "agree": self.agree,
        }

    def to_json(self, path):
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self):
        """The comparison as a plain-text table."""
        return "\n".join(
            [*self._loss_rows(), "", *self._summary_rows(), "", *self._difference_rows()]
        )

    def _loss_rows(self):
        lines = [f"{'epoch':>5}" + "".join(f"{name + ' loss':>16}" for name in IMPLEMENTATIONS)]
        for epoch in range(len(self.losses["numpy"])):
            lines.append(
                f"{epoch + 1:>5}"
                + "".join(f"{self.losses[name][epoch]:>16.6f}" for name in IMPLEMENTATIONS)
            )
        return lines

    def _summary_rows(self):
        lines = [
            f"{'implementation':<16}{'epoch-1 loss':>14}{'final loss':>14}"
            f"{'test accuracy':>15}{'train s':>9}"
        ]
        for name in IMPLEMENTATIONS:
            losses = self.losses[name]
            lines.append(
                f"{name:<16}{losses[0]:>14.6f}{losses[-1]:>14.6f}"
                f"{self.test_accuracy[name]:>15.4f}{self.seconds[name]:>9.2f}"
            )
        return lines

    def _difference_rows(self):
        lines = [
            f"{'difference':<18}{'gradient abs':>14}{'gradient rel':>14}"
            f"{'weights abs':>13}{'weights rel':>13}{'loss curve':>12}"
        ]
        for pair in self.gradient_differences:
            gradient = self.gradient_differences[pair]
            weights = self.weight_differences[pair][-1]
            lines.append(
                f"{pair:<18}{gradient['max_abs']:>14.2e}{gradient['max_rel']:>14.2e}"
                f"{weights['max_abs']:>13.2e}{weights['max_rel']:>13.2e}"
                f"{self.loss_differences[pair]:>12.2e}"
            )
        verdict = "agree" if self.agree else "DISAGREE"
        lines += [
            "",
            f"loss curves {verdict} within {self.tolerance:g} ({self.settings['dtype']}); "
            f"gradients over the first {self.settings['gradient_steps']} steps, "
            f"weights after the last epoch",
        ]
        return lines
