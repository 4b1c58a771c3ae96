"""The notebook's figures and more, as PNG files: pure NumPy + matplotlib.

Every ``plot_*`` function takes plain NumPy arrays (or lists), draws the
figure of the same name in :mod:`tfsoftmax.figures` (which validates its
input: ``ValueError`` naming the bad argument, raised before anything touches
the disk), writes one PNG to ``path`` (parent directories are created) and
returns that path as a :class:`pathlib.Path`.

* Figures are drawn with :class:`matplotlib.figure.Figure` and the Agg canvas
  directly: ``pyplot`` is never imported, so the user's backend, open figures
  and style are left alone, and a figure is freed as soon as it is written.
* Writes are atomic (:mod:`tfsoftmax.atomic`): the PNG goes to a temporary file
  in the target directory and is moved into place with :func:`os.replace`, so an
  interrupted run never leaves a half-written image (an existing file is either
  kept or replaced).
* Labels are 1-D integer class indices (``np.argmax`` one-hot labels first).
  Images are batch-major: ``(N, 784)`` or ``(N, 28, 28)``; the reference's
  features-major ``X`` (784 × N) must be transposed.
* Weights use the package's one layout, ``(units, inputs + 1)`` with the bias
  in the last column.

No TensorFlow is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tfsoftmax import figures
from tfsoftmax.atomic import replacing
from tfsoftmax.figures import DPI, confusion_matrix, select_misclassified
from tfsoftmax.validation import (
    check_bias_trick_weights,
    check_images,
    check_label_pair,
    check_losses,
    check_positive_int,
)

__all__ = [
    "CONFUSION_MATRIX_PNG",
    "LOSS_CURVE_PNG",
    "MISCLASSIFIED_PNG",
    "WEIGHT_TEMPLATES_PNG",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_loss_curve",
    "plot_loss_curves",
    "plot_misclassified",
    "plot_weight_templates",
    "select_misclassified",
    "write_training_figures",
]

LOSS_CURVE_PNG = "loss_curve.png"
MISCLASSIFIED_PNG = "misclassified.png"
WEIGHT_TEMPLATES_PNG = "weight_templates.png"
CONFUSION_MATRIX_PNG = "confusion_matrix.png"


def _save(figure, path) -> Path:
    """Write ``figure`` to ``path`` as a PNG, atomically (:func:`tfsoftmax.atomic.replacing`)."""
    path = Path(path)
    try:
        with replacing(path, suffix=".png") as temporary, open(temporary, "wb") as stream:
            figure.savefig(stream, format="png", dpi=DPI, facecolor="white")
    finally:
        figure.clear()
    return path


def plot_loss_curve(losses, path, title: str = "Training loss", val_losses=None) -> Path:
    """Loss per epoch (epochs from 1); the validation loss too when ``val_losses`` is given.

    See :func:`tfsoftmax.figures.loss_curve_figure`.
    """
    return _save(figures.loss_curve_figure(losses, title, val_losses), path)


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]],
    path,
    title: str = "Loss curves: do the implementations agree?",
    tolerance: float | None = None,
) -> Path:
    """Several implementations' loss curves, their differences and the pass ``tolerance``.

    See :func:`tfsoftmax.figures.loss_curves_figure`.
    """
    return _save(figures.loss_curves_figure(curves, title, tolerance), path)


def plot_misclassified(
    images, y_true, y_pred, path, num_images: int = 10, seed: int | None = 0
) -> Path:
    """Up to ``num_images`` misclassified digits, each titled with its index, true and predicted.

    See :func:`tfsoftmax.figures.misclassified_figure`.
    """
    return _save(figures.misclassified_figure(images, y_true, y_pred, num_images, seed), path)


def plot_weight_templates(weights, path) -> Path:
    """Each class's weights as a 28x28 template (bias dropped).

    See :func:`tfsoftmax.figures.weight_templates_figure`.
    """
    return _save(figures.weight_templates_figure(weights), path)


def plot_confusion_matrix(y_true, y_pred, path, num_classes: int = 10) -> Path:
    """Confusion-matrix counts written in the cells (rows true, columns predicted)."""
    return _save(figures.confusion_matrix_figure(y_true, y_pred, num_classes), path)


def write_training_figures(
    out_dir,
    *,
    losses,
    weights,
    images,
    y_true,
    y_pred,
    num_images: int = 10,
    seed: int | None = 0,
    val_losses=None,
) -> list[Path]:
    """Write the loss curve, misclassified digits, weight templates and confusion matrix.

    Files go to ``out_dir`` under :data:`LOSS_CURVE_PNG`, :data:`MISCLASSIFIED_PNG`,
    :data:`WEIGHT_TEMPLATES_PNG` and :data:`CONFUSION_MATRIX_PNG`. The loss
    curve shows ``val_losses`` beside the training loss when given (a run with
    validation data). All inputs are validated first, so a bad one raises
    before any file is written. The confusion matrix has one class per unit of
    ``weights`` (more if a label is larger).
    """
    check_losses(losses)
    if val_losses is not None and len(check_losses(val_losses, "val_losses")) != len(losses):
        raise ValueError(f"val_losses has {len(val_losses)} epochs but losses has {len(losses)}")
    weights = check_bias_trick_weights(weights)
    y_true, y_pred = check_label_pair(y_true, y_pred)
    check_images(images, y_true.size)
    check_positive_int("num_images", num_images)
    num_classes = max(weights.shape[0], int(max(y_true.max(), y_pred.max())) + 1)
    confusion_matrix(y_true, y_pred, num_classes)  # label-range check

    out_dir = Path(out_dir)
    return [
        plot_loss_curve(losses, out_dir / LOSS_CURVE_PNG, val_losses=val_losses),
        plot_misclassified(
            images, y_true, y_pred, out_dir / MISCLASSIFIED_PNG, num_images=num_images, seed=seed
        ),
        plot_weight_templates(weights, out_dir / WEIGHT_TEMPLATES_PNG),
        plot_confusion_matrix(y_true, y_pred, out_dir / CONFUSION_MATRIX_PNG, num_classes),
    ]
