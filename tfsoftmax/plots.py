"""The notebook's figures and more, as PNG files: pure NumPy + matplotlib.

Every figure function takes plain NumPy arrays (or lists), validates them
(``ValueError`` naming the bad argument, raised before anything touches the
disk), writes one PNG to ``path`` (parent directories are created) and returns
that path as a :class:`pathlib.Path`.

* Figures are drawn with :class:`matplotlib.figure.Figure` and the Agg canvas
  directly: ``pyplot`` is never imported, so the user's backend, open figures
  and style are left alone, and a figure is freed as soon as it goes out of
  scope.
* Writes are atomic (:mod:`tfsoftmax.atomic`): the PNG goes to a temporary file
  in the target directory and is moved into place with :func:`os.replace`, so an
  interrupted run never leaves a half-written image (an existing file is either
  kept or replaced).
* The checks are :mod:`tfsoftmax.validation`'s.
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

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfsoftmax.atomic import replacing
from tfsoftmax.validation import (
    IMAGE_SIDE,
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

DPI = 100

# Distinct styles so curves that agree to 1e-9 (and overlap exactly) stay visible:
# big hollow markers first, smaller filled ones drawn on top.
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "x")
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


# --------------------------------------------------------------------------- writing


def _new_figure(width: float, height: float, layout: str | None = None) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white", layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path) -> Path:
    """Write ``figure`` to ``path`` as a PNG, atomically (:func:`tfsoftmax.atomic.replacing`)."""
    path = Path(path)
    try:
        with replacing(path, suffix=".png") as temporary, open(temporary, "wb") as stream:
            figure.savefig(stream, format="png", dpi=DPI, facecolor="white")
    finally:
        figure.clear()
    return path


# --------------------------------------------------------------------------- figures


def plot_loss_curve(losses, path, title: str = "Training loss") -> Path:
    """Plot loss per epoch (epochs numbered from 1), the notebook's loss curve."""
    values = check_losses(losses)
    epochs = np.arange(1, values.size + 1)
    figure = _new_figure(7, 4.5)
    ax = figure.add_subplot()
    ax.plot(epochs, values, marker="o", markersize=4, color="tab:blue")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss value")
    ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.4)
    ax.annotate(
        f"final {values[-1]:.4g}",
        xy=(epochs[-1], values[-1]),
        xytext=(-8, 10),
        textcoords="offset points",
        ha="right",
        fontsize=9,
    )
    figure.tight_layout()
    return _save(figure, path)


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]],
    path,
    title: str = "Loss curves: do the implementations agree?",
) -> Path:
    """Overlay several implementations' loss curves and show how far each is from the first.

    Top panel: the curves, in distinct line styles and markers so exactly
    overlapping curves stay visible. Bottom panel (two or more curves):
    ``|loss - first curve's loss|`` per epoch on a log scale; exact zeros, which
    a log axis cannot show, are drawn as hollow markers on a dotted "exact 0"
    line below the smallest nonzero difference. All curves must have the same
    number of epochs; the first in ``curves`` (insertion order) is the baseline.
    """
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError("curves must be a non-empty dict of name -> loss per epoch")
    names = [str(name) for name in curves]
    values = [check_losses(curve, f"curves[{name!r}]") for name, curve in curves.items()]
    lengths = {name: v.size for name, v in zip(names, values, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"curves must all have the same number of epochs, got {lengths}")
    epochs = np.arange(1, values[0].size + 1)
    compare = len(values) > 1

    figure = _new_figure(8, 7 if compare else 4.5)
    if compare:
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
    else:
        top, bottom = figure.add_subplot(), None
    for i, (name, curve) in enumerate(zip(names, values, strict=True)):
        hollow = i == 0
        top.plot(
            epochs,
            curve,
            label=name,
            color=_COLORS[i % len(_COLORS)],
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markersize=max(3.0, 9.0 - 2.0 * i),
            markerfacecolor="none" if hollow else _COLORS[i % len(_COLORS)],
            linewidth=1.5,
        )
    top.set_ylabel("Loss value")
    top.set_title(title)
    top.grid(True, alpha=0.4)
    top.legend()
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    if bottom is None:
        top.set_xlabel("Epoch")
    else:
        _plot_differences(bottom, epochs, names, values)
    figure.tight_layout()
    return _save(figure, path)


def _plot_differences(ax, epochs, names, values) -> None:
    diffs = [np.abs(v - values[0]) for v in values[1:]]
    positive = np.concatenate([d[d > 0] for d in diffs]) if diffs else np.array([])
    floor = positive.min() / 10.0 if positive.size else 1e-17
    for i, (name, diff) in enumerate(zip(names[1:], diffs, strict=True), start=1):
        color = _COLORS[i % len(_COLORS)]
        marker = _MARKERS[i % len(_MARKERS)]
        nonzero = diff > 0
        ax.plot(
            epochs,
            np.where(nonzero, diff, floor),
            color=color,
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            linewidth=1.0,
            alpha=0.6,
        )
        ax.plot(
            epochs[nonzero],
            diff[nonzero],
            linestyle="none",
            marker=marker,
            color=color,
            label=f"{name}: max {diff.max():.2g}" if nonzero.any() else None,
        )
        ax.plot(
            epochs[~nonzero],
            np.full((~nonzero).sum(), floor),
            linestyle="none",
            marker=marker,
            markerfacecolor="none",
            markersize=9,
            color=color,
            label=None if nonzero.any() else f"{name}: identical (all exact 0)",
        )
    ax.axhline(floor, color="gray", linestyle=":", linewidth=1, label="exact 0 (hollow markers)")
    ax.set_yscale("log")
    ax.set_ylabel(f"|loss - {names[0]}|")
    ax.set_xlabel("Epoch")
    ax.grid(True, which="major", alpha=0.4)
    ax.legend(fontsize=9)


def select_misclassified(y_true, y_pred, num: int, seed: int | None = 0) -> np.ndarray:
    """Pick up to ``num`` indices where ``y_true != y_pred``, reproducibly for a given seed.

    Returns the chosen indices sorted ascending (an empty int array if there are
    no misclassifications; all of them if there are fewer than ``num``).
    """
    y_true, y_pred = check_label_pair(y_true, y_pred)
    num = check_positive_int("num", num)
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size <= num:
        return wrong
    chosen = np.random.default_rng(seed).choice(wrong, size=num, replace=False)
    return np.sort(chosen)


def plot_misclassified(
    images, y_true, y_pred, path, num_images: int = 10, seed: int | None = 0
) -> Path:
    """Show up to ``num_images`` misclassified digits, each titled "True: t, Pred: p".

    ``images`` is batch-major, ``(N, 784)`` or ``(N, 28, 28)``. The digits are
    chosen with :func:`select_misclassified` (same seed, same picture). With no
    misclassifications the figure says so instead.
    """
    y_true, y_pred = check_label_pair(y_true, y_pred)
    images = check_images(images, y_true.size)
    num_images = check_positive_int("num_images", num_images)
    chosen = select_misclassified(y_true, y_pred, num_images, seed)
    wrong = int(np.count_nonzero(y_true != y_pred))

    if chosen.size == 0:
        figure = _new_figure(7, 3)
        figure.text(
            0.5,
            0.5,
            f"No misclassified images:\nall {y_true.size} predictions are correct.",
            ha="center",
            va="center",
            fontsize=14,
        )
        return _save(figure, path)

    columns = min(chosen.size, 5)
    rows = -(-chosen.size // columns)
    figure = _new_figure(2.2 * columns, 2.5 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, index in zip(axes, chosen, strict=False):
        ax.imshow(images[index], cmap="gray")
        ax.set_title(f"True: {y_true[index]}, Pred: {y_pred[index]}", fontsize=10)
    figure.suptitle(f"{chosen.size} of {wrong} misclassified (of {y_true.size})")
    figure.tight_layout()
    return _save(figure, path)


def plot_weight_templates(weights, path) -> Path:
    """Show each unit's weights (bias column dropped) as a 28x28 template, one per class.

    A diverging colormap centred at 0 (symmetric limits shared by all panels):
    red pixels push a class's score up, blue ones push it down.
    """
    weights = check_bias_trick_weights(weights)
    templates = weights[:, :-1].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    units = templates.shape[0]
    limit = float(np.abs(templates).max()) or 1.0
    columns = min(units, 5)
    rows = -(-units // columns)
    figure = _new_figure(1.9 * columns + 1.2, 2.0 * rows + 0.5, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < units:
            image = ax.imshow(templates[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"class {k}")
    figure.suptitle("Learned weight templates (bias dropped)")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    return _save(figure, path)


def confusion_matrix(y_true, y_pred, num_classes: int = 10) -> np.ndarray:
    """Counts ``C[t, p]`` of samples with true class ``t`` predicted as ``p`` (int64, k x k)."""
    y_true, y_pred = check_label_pair(y_true, y_pred)
    k = check_positive_int("num_classes", num_classes)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(
                f"{name} has labels outside [0, {k}) (min {labels.min()}, max {labels.max()})"
            )
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.int64)


def plot_confusion_matrix(y_true, y_pred, path, num_classes: int = 10) -> Path:
    """Confusion-matrix counts written in the cells (rows true, columns predicted)."""
    counts = confusion_matrix(y_true, y_pred, num_classes)
    k = counts.shape[0]
    total = int(counts.sum())
    accuracy = np.trace(counts) / total
    size = max(4.0, 0.6 * k + 2.0)
    figure = _new_figure(size + 1.0, size)
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    threshold = counts.max() / 2.0
    fontsize = 9 if k <= 12 else 6
    for t in range(k):
        for p in range(k):
            ax.text(
                p,
                t,
                str(counts[t, p]),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if counts[t, p] > threshold else "black",
            )
    ticks = np.arange(k)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(f"Confusion matrix: accuracy {accuracy:.4f} ({np.trace(counts)}/{total})")
    figure.colorbar(image, ax=ax, shrink=0.8, label="count")
    figure.tight_layout()
    return _save(figure, path)


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
) -> list[Path]:
    """Write the loss curve, misclassified digits, weight templates and confusion matrix.

    Files go to ``out_dir`` under :data:`LOSS_CURVE_PNG`, :data:`MISCLASSIFIED_PNG`,
    :data:`WEIGHT_TEMPLATES_PNG` and :data:`CONFUSION_MATRIX_PNG`. All inputs are
    validated first, so a bad one raises before any file is written. The
    confusion matrix has one class per unit of ``weights`` (more if a label is larger).
    """
    check_losses(losses)
    weights = check_bias_trick_weights(weights)
    y_true, y_pred = check_label_pair(y_true, y_pred)
    check_images(images, y_true.size)
    check_positive_int("num_images", num_images)
    num_classes = max(weights.shape[0], int(max(y_true.max(), y_pred.max())) + 1)
    confusion_matrix(y_true, y_pred, num_classes)  # label-range check

    out_dir = Path(out_dir)
    return [
        plot_loss_curve(losses, out_dir / LOSS_CURVE_PNG),
        plot_misclassified(
            images, y_true, y_pred, out_dir / MISCLASSIFIED_PNG, num_images=num_images, seed=seed
        ),
        plot_weight_templates(weights, out_dir / WEIGHT_TEMPLATES_PNG),
        plot_confusion_matrix(y_true, y_pred, out_dir / CONFUSION_MATRIX_PNG, num_classes),
    ]
