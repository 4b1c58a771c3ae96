"""tfsoftmax.presets and ``tfsoftmax train --preset``."""

import numpy as np
import pytest

from tfsoftmax import cli, reference
from tfsoftmax.engine import trace_count
from tfsoftmax.models import notebook_model
from tfsoftmax.presets import PRESETS, Preset, get_preset, train_preset


def _model(seed=0):
    weights = reference.Dense(784, 10, rng=np.random.default_rng(seed), dtype="float32").weights
    return notebook_model("custom", weights, dtype="float32")


def test_best_preset_reaches_92_5_percent(mnist_batch_major):
    data = mnist_batch_major
    model, loss = _model()
    history = train_preset(
        model,
        data.x_train,
        data.y_train,
        "best",
        seed=0,
        loss=loss,
        verbose=0,
        validation_data=(data.x_test, data.y_test),
    )
    assert len(history.epoch) == PRESETS["best"].epochs == 60
    assert history.history["val_accuracy"][-1] >= 0.925
    probabilities = model(data.x_test, training=False).numpy()
    assert np.mean(np.argmax(probabilities, axis=1) == data.labels_test) >= 0.925


def test_schedule_stages_reuse_the_compiled_loop(mnist_batch_major, capsys):
    data = mnist_batch_major
    model, loss = _model()
    tiny = Preset("tiny", batch_size=100, stages=((0.5, 1), (0.1, 2)))
    x, y = data.x_train[:1000], data.y_train[:1000]
    first = train_preset(model, x, y, Preset("one", 100, ((0.5, 1),)), loss=loss, verbose=0)
    traces = trace_count(model, loss)
    history = train_preset(model, x, y, tiny, seed=3, loss=loss, verbose=2)
    assert trace_count(model, loss) == traces  # a new learning rate: no retrace
    assert len(first.epoch) == 1
    assert history.epoch == [0, 1, 2]
    assert history.history["learning_rate"] == [0.5, 0.1, 0.1]
    assert history.params["schedule"] == [[0.5, 1], [0.1, 2]]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("fastest")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--impl", "keras"], "trains the custom ops"),
        (["--epochs", "5"], "sets --epochs itself"),
        (["--learning-rate", "0.1"], "sets --learning-rate itself"),
        (["--checkpoint-dir", "ckpt"], "drop --checkpoint-dir"),
    ],
)
def test_cli_preset_conflicts_are_usage_errors(extra, message, capsys, tmp_path):
    argv = ["train", "--preset", "best", "--out", str(tmp_path), *extra]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
