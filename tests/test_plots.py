"""Tests for tfsoftmax.plots: valid PNGs, correct counts, reproducible picks, clean failures."""

import math
import struct
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from tfsoftmax import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """Check signature and IHDR chunk; return (width, height)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, chunk_type = struct.unpack(">I4s", data[8:16])
    assert (length, chunk_type) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_valid_png(path):
    """A PNG of sensible size that decodes to a non-blank image; no temp files beside it."""
    assert path.is_file()
    width, height = png_size(path)
    assert 300 <= width <= 2000 and 200 <= height <= 2000, (width, height)
    assert 8_000 <= path.stat().st_size <= 1_000_000, path.stat().st_size
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    return width, height


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    n = 300
    y_true = rng.integers(0, 10, n)
    y_pred = np.where(rng.random(n) < 0.8, y_true, rng.integers(0, 10, n))
    return {
        "images": rng.random((n, 784)),
        "y_true": y_true,
        "y_pred": y_pred,
        "weights": 0.01 * rng.standard_normal((10, 785)),
        "losses": 1.4 * np.exp(-np.arange(20) / 5) + 0.38,
    }


# --------------------------------------------------------------------------- figures


def test_loss_curve(tmp_path, data):
    path = tmp_path / "sub" / "dir" / "loss.png"
    assert plots.plot_loss_curve(data["losses"], path, title="t") == path
    assert_valid_png(path)
    one = plots.plot_loss_curve([0.7], str(tmp_path / "one.png"))  # str path, one epoch
    assert_valid_png(one)


def test_loss_curves_with_exact_zeros_and_tiny_differences(tmp_path, data):
    losses = data["losses"]
    tiny = np.zeros_like(losses)
    tiny[5:] = 1e-12
    curves = {"numpy reference": losses, "custom ops": losses + tiny, "keras": list(losses)}
    path = plots.plot_loss_curves(curves, tmp_path / "curves.png")
    assert_valid_png(path)
    assert_valid_png(plots.plot_loss_curves({"only": losses}, tmp_path / "single.png"))


def test_misclassified_both_image_layouts_draw_the_same_picture(tmp_path, data):
    flat = plots.plot_misclassified(
        data["images"], data["y_true"], data["y_pred"], tmp_path / "flat.png"
    )
    square = plots.plot_misclassified(
        data["images"].reshape(-1, 28, 28), data["y_true"], data["y_pred"], tmp_path / "sq.png"
    )
    assert_valid_png(flat)
    assert flat.read_bytes() == square.read_bytes()


def test_misclassified_none_and_few(tmp_path, data):
    y = data["y_true"]
    assert_valid_png(plots.plot_misclassified(data["images"], y, y, tmp_path / "none.png"))

    y_pred = y.copy()
    y_pred[[3, 7]] = (y[[3, 7]] + 1) % 10
    few = plots.plot_misclassified(data["images"], y, y_pred, tmp_path / "few.png")
    many = plots.plot_misclassified(data["images"], y, data["y_pred"], tmp_path / "many.png")
    few_width, _ = assert_valid_png(few)
    many_width, _ = assert_valid_png(many)
    assert few_width < many_width  # two panels, not ten


def test_weight_templates_ignore_the_bias_column(tmp_path, data):
    weights = data["weights"]
    path = plots.plot_weight_templates(weights, tmp_path / "w.png")
    assert_valid_png(path)

    other_bias = weights.copy()
    other_bias[:, -1] += 5.0
    same = plots.plot_weight_templates(other_bias, tmp_path / "bias.png")
    assert same.read_bytes() == path.read_bytes()

    other_pixel = weights.copy()
    other_pixel[3, 400] = -weights.max() * 3
    changed = plots.plot_weight_templates(other_pixel, tmp_path / "pixel.png")
    assert changed.read_bytes() != path.read_bytes()


def test_confusion_matrix_figure(tmp_path, data):
    path = plots.plot_confusion_matrix(data["y_true"], data["y_pred"], tmp_path / "cm.png")
    assert_valid_png(path)


def test_write_training_figures(tmp_path, data):
    out = tmp_path / "figures"
    paths = plots.write_training_figures(out, **data)
    names = [
        plots.LOSS_CURVE_PNG,
        plots.MISCLASSIFIED_PNG,
        plots.WEIGHT_TEMPLATES_PNG,
        plots.CONFUSION_MATRIX_PNG,
    ]
    assert names == [
        "loss_curve.png",
        "misclassified.png",
        "weight_templates.png",
        "confusion_matrix.png",
    ]
    assert paths == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for path in paths:
        assert_valid_png(path)


# --------------------------------------------------------------------------- numbers


def test_confusion_matrix_by_hand():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    counts = plots.confusion_matrix(y_true, y_pred, num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert counts.dtype.kind == "i"
    assert counts.sum() == 6
    assert np.trace(counts) / 6 == pytest.approx(4 / 6)


def test_confusion_matrix_totals(data):
    y_true, y_pred = data["y_true"], data["y_pred"]
    counts = plots.confusion_matrix(y_true, y_pred, 10)
    assert counts.shape == (10, 10)
    assert counts.sum() == y_true.size
    assert np.trace(counts) / y_true.size == pytest.approx(np.mean(y_true == y_pred))
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(y_true, minlength=10))
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(y_pred, minlength=10))


def test_select_misclassified(data):
    y_true, y_pred = data["y_true"], data["y_pred"]
    wrong = set(np.flatnonzero(y_true != y_pred))
    assert len(wrong) > 30

    first = plots.select_misclassified(y_true, y_pred, 10, seed=3)
    again = plots.select_misclassified(y_true, y_pred, 10, seed=3)
    other = plots.select_misclassified(y_true, y_pred, 10, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    for picked in (first, other):
        assert picked.size == 10 and len(set(picked)) == 10
        assert set(picked) <= wrong
        assert np.all(np.diff(picked) > 0)

    everything = plots.select_misclassified(y_true, y_pred, 1000, seed=0)
    assert set(everything) == wrong
    assert plots.select_misclassified(y_true, y_true, 10).size == 0


# --------------------------------------------------------------------------- failures


def _bad_cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 20)
    img = rng.random((20, 784))
    w = rng.standard_normal((10, 785))
    nan_w = w.copy()
    nan_w[0, 0] = np.nan
    return [
        ("empty losses", plots.plot_loss_curve, ([],), "losses"),
        ("nan loss", plots.plot_loss_curve, ([1.0, math.nan],), "losses"),
        ("inf loss", plots.plot_loss_curve, ([1.0, math.inf],), "losses"),
        ("2-D losses", plots.plot_loss_curve, ([[1.0, 2.0]],), "losses"),
        ("empty curves", plots.plot_loss_curves, ({},), "curves"),
        ("nan curve", plots.plot_loss_curves, ({"a": [1.0], "b": [math.nan]},), r"curves\['b'\]"),
        ("ragged curves", plots.plot_loss_curves, ({"a": [1.0, 2.0], "b": [1.0]},), "curves"),
        ("image size", plots.plot_misclassified, (img[:, :783], y, y), "images"),
        ("features-major", plots.plot_misclassified, (img[:, :784].T, y, y), "images.T"),
        ("image count", plots.plot_misclassified, (img[:19], y, y), "images"),
        ("label lengths", plots.plot_misclassified, (img, y, y[:19]), "y_true and y_pred"),
        ("float labels", plots.plot_misclassified, (img, y + 0.5, y), "y_true"),
        ("one-hot", plots.plot_misclassified, (img, y, np.eye(10)[y]), "y_pred"),
        ("num_images", plots.plot_misclassified, (img, y, y), "num_images", {"num_images": 0}),
        ("no bias column", plots.plot_weight_templates, (w[:, :784],), "weights"),
        ("nan weight", plots.plot_weight_templates, (nan_w,), "weights"),
        ("label range", plots.plot_confusion_matrix, (y, np.full(20, 10)), "y_pred"),
        ("negative label", plots.plot_confusion_matrix, (y - 1, y), "y_true"),
        ("empty labels", plots.plot_confusion_matrix, ([], []), "y_true"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda case: case[0])
def test_bad_inputs_raise_and_write_nothing(tmp_path, case):
    _, function, args, match, *kwargs = case
    with pytest.raises(ValueError, match=match):
        function(*args, path=tmp_path / "new" / "out.png", **(kwargs[0] if kwargs else {}))
    assert list(tmp_path.iterdir()) == []


def test_write_training_figures_validates_everything_first(tmp_path, data):
    bad = dict(data, y_pred=data["y_pred"][:-1])
    with pytest.raises(ValueError, match="y_true and y_pred"):
        plots.write_training_figures(tmp_path / "out", **bad)
    bad = dict(data, weights=data["weights"][:, :-1])
    with pytest.raises(ValueError, match="weights"):
        plots.write_training_figures(tmp_path / "out", **bad)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path, data, monkeypatch):
    path = tmp_path / "loss.png"
    plots.plot_loss_curve(data["losses"], path)
    before = path.read_bytes()

    def broken_savefig(self, stream, **kwargs):
        stream.write(PNG_SIGNATURE + b"half an image")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(KeyboardInterrupt):
        plots.plot_loss_curve(data["losses"][::-1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_no_pyplot_and_no_tensorflow(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "sys.modules['tensorflow'] = None  # as on a machine without TensorFlow\n"
        "import tfsoftmax.plots as p\n"
        f"p.plot_loss_curve([2.0, 1.0], {str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert_valid_png(tmp_path / "x.png")


# --------------------------------------------------------------------------- what is drawn

from tfsoftmax import figures  # noqa: E402


def visible_ticks(ax):
    ax.figure.canvas.draw()
    low, high = sorted(ax.get_xlim())
    return [tick for tick in ax.get_xticks() if low <= tick <= high]


def test_loss_curve_draws_the_history_and_the_validation_curve(data):
    losses = data["losses"]
    val_losses = losses + 0.05
    figure = figures.loss_curve_figure(losses, val_losses=val_losses)
    (ax,) = figure.axes
    training, validation = ax.lines
    np.testing.assert_array_equal(training.get_xdata(), np.arange(1, losses.size + 1))
    np.testing.assert_array_equal(training.get_ydata(), losses)
    np.testing.assert_array_equal(validation.get_ydata(), val_losses)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "training",
        "validation",
    ]
    ticks = visible_ticks(ax)
    assert ticks and all(float(tick).is_integer() for tick in ticks)

    (only,) = figures.loss_curve_figure(losses).axes
    assert len(only.lines) == 1 and only.get_legend() is None


def test_loss_curve_on_few_epochs_has_integer_ticks_only():
    for epochs in (1, 2, 3):
        (ax,) = figures.loss_curve_figure(np.linspace(2.0, 1.0, epochs)).axes
        ticks = visible_ticks(ax)
        assert ticks and all(float(tick).is_integer() for tick in ticks), (epochs, ticks)


def test_loss_curves_draw_each_curve_and_the_tolerance_line(data):
    losses = data["losses"]
    curves = {"numpy": losses, "custom": losses + 1e-12, "keras": losses}
    figure = figures.loss_curves_figure(curves, tolerance=1e-9)
    top, bottom = figure.axes
    for line, curve in zip(top.lines, curves.values(), strict=True):
        np.testing.assert_array_equal(line.get_ydata(), curve)
    tolerance_lines = [line for line in bottom.lines if line.get_label().startswith("pass")]
    (line,) = tolerance_lines
    assert line.get_label() == "pass tolerance 1e-09"
    assert set(np.asarray(line.get_ydata(), float)) == {1e-9}
    # The differences are plotted where they are, under the tolerance.
    custom_points = [line for line in bottom.lines if line.get_label().startswith("custom")]
    np.testing.assert_allclose(custom_points[0].get_ydata(), 1e-12, rtol=1e-3)
    assert all(float(tick).is_integer() for tick in visible_ticks(bottom))

    (_, no_tolerance) = figures.loss_curves_figure(curves).axes
    assert not [line for line in no_tolerance.lines if line.get_label().startswith("pass")]


def test_misclassified_titles_name_the_test_set_index(data):
    y_true, y_pred = data["y_true"], data["y_pred"]
    figure = figures.misclassified_figure(data["images"], y_true, y_pred, num_images=6, seed=2)
    chosen = plots.select_misclassified(y_true, y_pred, 6, seed=2)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [f"#{i}: true {y_true[i]}, pred {y_pred[i]}" for i in chosen]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_losses": [1.0]}, "val_losses has 1 epochs but losses has 20"),
        ({"val_losses": [math.nan] * 20}, "val_losses"),
    ],
)
def test_bad_validation_losses_are_named(tmp_path, data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_loss_curve(data["losses"], tmp_path / "x.png", **kwargs)
    with pytest.raises(ValueError, match=match):
        plots.write_training_figures(tmp_path / "out", **data, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_tolerance_is_named(tmp_path, data):
    with pytest.raises(ValueError, match="tolerance"):
        plots.plot_loss_curves({"a": data["losses"]}, tmp_path / "x.png", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_write_training_figures_with_validation_losses(tmp_path, data):
    paths = plots.write_training_figures(tmp_path, **data, val_losses=data["losses"] * 1.1)
    assert_valid_png(paths[0])


def test_weight_templates_draw_each_class_weights_without_the_bias(data):
    weights = data["weights"]
    figure = figures.weight_templates_figure(weights)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [f"class {k}" for k in range(10)]
    limit = np.abs(weights[:, :-1]).max()
    for k, ax in enumerate(panels):
        (image,) = ax.images
        np.testing.assert_array_equal(image.get_array(), weights[k, :-1].reshape(28, 28))
        assert image.get_clim() == (-limit, limit)  # one symmetric scale for every panel


def test_confusion_matrix_figure_draws_rows_true_and_columns_predicted():
    y_true = [0, 0, 0, 1, 2, 2]
    y_pred = [1, 1, 0, 1, 2, 0]
    (ax, *_) = figures.confusion_matrix_figure(y_true, y_pred, num_classes=3).axes
    (image,) = ax.images
    expected = [[1, 2, 0], [0, 1, 0], [1, 0, 1]]  # C[true, predicted], counted by hand
    np.testing.assert_array_equal(image.get_array(), expected)
    # Each cell's number is written at (x = predicted, y = true).
    cells = {(text.get_position(), text.get_text()) for text in ax.texts}
    assert cells == {((p, t), str(expected[t][p])) for t in range(3) for p in range(3)}
