"""When training has diverged: :class:`TrainingDivergedError`, and the finite checks.

A run has diverged when a batch loss ``L_B``, the validation loss, or any
weight ``w`` is NaN or ±inf (``¬ isfinite``). Both trainers stop there —
:func:`tfsoftmax.training.train_sgd` with the weights of the start of the
diverged epoch, :func:`tfsoftmax.reference.train` before the diverged
batch's weights are kept — and nothing holding a non-finite value is ever
written. NumPy only, so the reference can raise the same error.
"""

import numpy as np

__all__ = ["TrainingDivergedError", "check_step_finite", "first_non_finite", "non_finite_names"]


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN or infinite; the weights were rolled back."""


def first_non_finite(values):
    """The index of the first NaN or inf in the 1-D ``values``, or None."""
    finite = np.isfinite(np.asarray(values, dtype=np.float64))
    return None if finite.all() else int(np.argmin(finite))


def non_finite_names(arrays, names):
    """The ``names`` of the ``arrays`` holding a NaN or inf (integer arrays never do)."""
    return [
        name
        for array, name in zip(arrays, names, strict=True)
        if np.asarray(array).dtype.kind not in "biu"
        and not np.all(np.isfinite(np.asarray(array, dtype=np.float64)))
    ]


def check_step_finite(epoch, batch, **values):
    """Raise :class:`TrainingDivergedError` naming the first of ``values`` (the
    loss, the logits, the weights of a step) holding a NaN or inf; ``epoch`` and
    ``batch`` are 0-based."""
    for name, value in values.items():
        if not np.all(np.isfinite(value)):
            raise TrainingDivergedError(
                f"training diverged: the {name} became NaN or inf at epoch {epoch + 1}, "
                f"batch {batch + 1}. Lower the learning rate."
            )
