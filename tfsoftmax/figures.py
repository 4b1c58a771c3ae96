"""The figures themselves, as Matplotlib ``Figure`` objects (:mod:`tfsoftmax.plots` writes them).

Each ``*_figure`` function validates its input (``ValueError`` naming the bad
argument, :mod:`tfsoftmax.validation`'s checks) and returns a
:class:`matplotlib.figure.Figure` on its own Agg canvas — ``pyplot`` is never
imported, so the user's backend, open figures and style are left alone. Tests
and notebooks can read what is drawn (``figure.axes[0].lines[0].get_ydata()``)
instead of looking at pixels.

What each figure answers:

* :func:`loss_curve_figure` — did training converge? Training loss per epoch
  and, when there was validation data, the validation loss beside it.
* :func:`loss_curves_figure` — do the implementations agree? Their curves,
  and ``|loss − first curve's loss|`` per epoch on a log scale against the
  pass tolerance (a red line: every point must lie under it).
* :func:`misclassified_figure` — what does it get wrong? Each digit titled
  with its test-set index, true and predicted label.
* :func:`weight_templates_figure` — what did it learn? Each class's weights
  as a 28×28 image.
* :func:`confusion_matrix_figure` — which classes does it confuse?

Epochs are numbered from 1 on every axis, with integer ticks only. No
TensorFlow is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfsoftmax.validation import (
    IMAGE_SIDE,
    check_bias_trick_weights,
    check_images,
    check_label_pair,
    check_losses,
    check_positive_int,
)

__all__ = [
    "DPI",
    "confusion_matrix",
    "confusion_matrix_figure",
    "loss_curve_figure",
    "loss_curves_figure",
    "misclassified_figure",
    "select_misclassified",
    "weight_templates_figure",
]

DPI = 100

# Distinct styles so curves that agree to 1e-9 (and overlap exactly) stay visible:
# big hollow markers first, smaller filled ones drawn on top.
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "x")
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _new_figure(width: float, height: float, layout: str | None = None) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white", layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _integer_epochs(ax, epochs) -> None:
    """Ticks at whole epochs only: every epoch up to 10, else a few whole numbers.

    (``MaxNLocator(integer=True)`` alone puts fractional ticks on a one-epoch axis.)
    """
    if len(epochs) <= 10:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def loss_curve_figure(losses, title: str = "Training loss", val_losses=None) -> Figure:
    """Loss per epoch (epochs from 1), the notebook's loss curve; ``val_losses`` beside it.

    ``axes[0].lines[0]`` is the training curve, ``lines[1]`` the validation
    curve when ``val_losses`` (one value per epoch) is given.
    """
    values = check_losses(losses)
    validation = None if val_losses is None else check_losses(val_losses, "val_losses")
    if validation is not None and validation.size != values.size:
        raise ValueError(f"val_losses has {validation.size} epochs but losses has {values.size}")
    epochs = np.arange(1, values.size + 1)
    figure = _new_figure(7, 4.5)
    ax = figure.add_subplot()
    ax.plot(epochs, values, marker="o", markersize=4, color="tab:blue", label="training")
    if validation is not None:
        ax.plot(
            epochs,
            validation,
            marker="s",
            markersize=4,
            linestyle="--",
            color="tab:orange",
            label="validation",
        )
        ax.legend()
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss value")
    ax.set_title(title)
    _integer_epochs(ax, epochs)
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
    return figure


def loss_curves_figure(
    curves: Mapping[str, Sequence[float]],
    title: str = "Loss curves: do the implementations agree?",
    tolerance: float | None = None,
) -> Figure:
    """Overlay several implementations' loss curves and show how far each is from the first.

    Top panel: the curves, in distinct line styles and markers so exactly
    overlapping curves stay visible. Bottom panel (two or more curves):
    ``|loss - first curve's loss|`` per epoch on a log scale; exact zeros, which
    a log axis cannot show, are drawn as hollow markers on a dotted "exact 0"
    line below the smallest nonzero difference; ``tolerance``, if given, is a
    red horizontal line labelled "pass tolerance" (the curves agree when every
    point lies on or under it). All curves must have the same number of epochs;
    the first in ``curves`` (insertion order) is the baseline.
    """
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError("curves must be a non-empty dict of name -> loss per epoch")
    if tolerance is not None and not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
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
        top.plot(
            epochs,
            curve,
            label=name,
            color=_COLORS[i % len(_COLORS)],
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markersize=max(3.0, 9.0 - 2.0 * i),
            markerfacecolor="none" if i == 0 else _COLORS[i % len(_COLORS)],
            linewidth=1.5,
        )
    top.set_ylabel("Loss value")
    top.set_title(title)
    top.grid(True, alpha=0.4)
    top.legend()
    _integer_epochs(top, epochs)
    if bottom is None:
        top.set_xlabel("Epoch")
    else:
        _plot_differences(bottom, epochs, names, values, tolerance)
    figure.tight_layout()
    return figure


def _plot_differences(ax, epochs, names, values, tolerance) -> None:
    diffs = [np.abs(v - values[0]) for v in values[1:]]
    positive = np.concatenate([d[d > 0] for d in diffs]) if diffs else np.array([])
    floor = positive.min() / 10.0 if positive.size else 1e-17
    if tolerance is not None:
        floor = min(floor, tolerance / 10.0)
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
    if tolerance is not None:
        ax.axhline(tolerance, color="tab:red", linewidth=1.5, label=f"pass tolerance {tolerance:g}")
    ax.set_yscale("log")
    ax.set_ylabel(f"|loss - {names[0]}|")
    ax.set_xlabel("Epoch")
    _integer_epochs(ax, epochs)
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


def misclassified_figure(images, y_true, y_pred, num_images: int = 10, seed=0) -> Figure:
    """Up to ``num_images`` misclassified digits, each titled ``#index: true t, pred p``.

    ``index`` is the digit's position in ``images`` (the test set), so it can
    be looked up. ``images`` is batch-major, ``(N, 784)`` or ``(N, 28, 28)``.
    The digits are chosen with :func:`select_misclassified` (same seed, same
    picture). With no misclassifications the figure says so instead.
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
        return figure

    columns = min(chosen.size, 5)
    rows = -(-chosen.size // columns)
    width, height = 2.2 * columns, 2.5 * rows + 0.5
    figure = _new_figure(width, height)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    # Fixed margins in inches (the suptitle above, panel titles between rows)
    # instead of tight_layout, whose extra draw pass took ~0.15 s of ~0.4 s.
    figure.subplots_adjust(
        left=0.15 / width,
        right=1 - 0.15 / width,
        bottom=0.15 / height,
        top=1 - 0.5 / height,
        wspace=0.07,
        hspace=0.12,
    )
    for ax in axes:
        ax.axis("off")
    for ax, index in zip(axes, chosen, strict=False):
        ax.imshow(images[index], cmap="gray")
        ax.set_title(f"#{index}: true {y_true[index]}, pred {y_pred[index]}", fontsize=10)
    figure.suptitle(
        f"{chosen.size} of {wrong} misclassified (of {y_true.size}); #: index in the test set"
    )
    return figure


def weight_templates_figure(weights) -> Figure:
    """Each unit's weights (bias column dropped) as a 28x28 template, one per class.

    A diverging colormap centred at 0 (symmetric limits shared by all panels):
    red pixels push a class's score up, blue ones push it down.
    """
    weights = check_bias_trick_weights(weights)
    templates = weights[:, :-1].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    units = templates.shape[0]
    limit = float(np.abs(templates).max()) or 1.0
    columns = min(units, 5)
    rows = -(-units // columns)
    figure = _new_figure(1.9 * columns + 1.2, 2.0 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False)
    # Fixed margins, not a layout engine: "constrained" took 0.55-0.8 s of this
    # figure's 0.6-0.85 s (2-core CPU); the panels are square images, so fixed
    # fractions place them as well.
    figure.subplots_adjust(left=0.01, right=0.86, bottom=0.02, top=0.86, wspace=0.08, hspace=0.22)
    image = None
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < units:
            image = ax.imshow(templates[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"class {k}")
    figure.suptitle("Learned weight templates (bias dropped)")
    figure.colorbar(image, cax=figure.add_axes((0.89, 0.12, 0.025, 0.66)), label="weight")
    return figure


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


def confusion_matrix_figure(y_true, y_pred, num_classes: int = 10) -> Figure:
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
    return figure
