"""The reliability suite: the attacks that once broke training, each now refused or survived.

* divergence: learning rates that overflow the model's dtype, an overflow in
  an epoch's last update, a NaN validation loss — the run stops, the weights
  in memory and on disk stay finite;
* I/O: output paths that cannot be written, found before any work. The tests
  run as root, for whom ``chmod`` makes nothing read-only, so "unwritable" is
  a path under a regular FILE (``ENOTDIR``), a path in ``/proc``, or a full
  disk made with ``RLIMIT_FSIZE`` (``resource.setrlimit``) in a subprocess;
* one run per checkpoint folder (a lock holder in another process, killed
  with SIGKILL), tampered checkpoints, orphaned temporary files (``kill -9`` at
  a random moment, then resume, is in ``tests/test_checkpoint.py``:
  ``TFSOFTMAX_RELIABILITY_TRIALS`` sets how many moments are tried);
* no leak: fresh models trained one after another are all freed.
"""

import gc
import json
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest
from problems import linear_problem

from tfsoftmax import reference
from tfsoftmax._tf import keras, tf
from tfsoftmax.atomic import OutputError, replacing, write_text
from tfsoftmax.checkpointing import RunCheckpointer
from tfsoftmax.engine import trace_count
from tfsoftmax.history import History
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.run_lock import LOCK_FILENAME, CheckpointInUseError
from tfsoftmax.training import TrainingDivergedError, train_sgd
from tfsoftmax.validation import check_class_indices

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


X, _, Y, INITIAL = linear_problem()
SETTINGS = dict(batch_size=10, learning_rate=0.5, seed=7, verbose=0)


def checkpoint_values(folder):
    """Every floating-point tensor of every checkpoint in ``folder``."""
    values = []
    for index in Path(folder).glob("ckpt-*.index"):
        reader = tf.train.load_checkpoint(str(index.with_suffix("")))
        for key in reader.get_variable_to_shape_map():
            value = reader.get_tensor(key)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                values.append(value)
    return values


# --------------------------------------------------------------------------- divergence
@pytest.mark.parametrize(
    ("dtype", "learning_rate", "message"),
    [
        ("float32", 1e39, "overflows float32"),
        ("float16", 1e5, "overflows float16"),
        ("bfloat16", 1e39, "overflows bfloat16"),
        ("float16", 1e-8, "underflows float16"),
    ],
)
def test_a_learning_rate_the_dtype_cannot_hold_is_refused(tmp_path, dtype, learning_rate, message):
    model, loss = notebook_model("custom", INITIAL, dtype=dtype)
    before = get_notebook_weights(model)
    with pytest.raises(ValueError, match=f"^learning_rate .* {message}, the model's dtype"):
        train_sgd(
            model, X, Y, loss=loss, **{**SETTINGS, "learning_rate": learning_rate},
            checkpoint_dir=tmp_path / "ck",
        )  # fmt: skip
    np.testing.assert_array_equal(get_notebook_weights(model), before)
    assert not (tmp_path / "ck").exists()


def _saturated_problem(scale):
    """Features ``scale · e_k`` of class ``k`` and weights ``1000 · I`` that
    classify them with ``ŷ`` exactly one-hot: the gradient is exactly 0 (an
    epoch changes nothing) until the weights are set to zero."""
    labels = np.arange(40) % 4
    x = scale * np.eye(4)[labels]
    initial = np.hstack([1000.0 * np.eye(4), np.zeros((4, 1))])
    return x, np.eye(4)[labels], initial


@pytest.mark.parametrize(
    ("dtype", "scale", "learning_rate"), [("float32", 1e3, 3e38), ("float16", 10.5, 6e4)]
)
def test_an_overflow_in_an_epochs_last_update_stops_with_the_last_finite_weights(
    tmp_path, dtype, scale, learning_rate
):
    # Epoch 1 leaves the weights as they are; then a callback zeroes them (saved
    # as ckpt-1) and epoch 2's one update, from finite losses, overflows.
    x, y, initial = _saturated_problem(scale)
    model, loss = notebook_model("custom", initial, dtype=dtype)

    def zero(epoch, logs):
        if epoch == 0:
            for variable in model.trainable_variables:
                variable.assign(tf.zeros_like(variable))

    folder = tmp_path / "ck"
    with pytest.raises(TrainingDivergedError, match="the weights became NaN or inf in epoch 2"):
        train_sgd(
            model, x, y, epochs=3, batch_size=len(x), learning_rate=learning_rate, loss=loss,
            verbose=0, checkpoint_dir=folder,
            callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=zero)],
        )  # fmt: skip
    weights = get_notebook_weights(model)
    np.testing.assert_array_equal(weights, np.zeros_like(weights))  # epoch 2's start = ckpt-1
    assert sorted(p.name for p in folder.glob("ckpt-*.index")) == ["ckpt-1.index"]
    assert all(np.all(np.isfinite(value)) for value in checkpoint_values(folder))
    assert not (folder / LOCK_FILENAME).exists()


def test_an_overflow_in_the_only_update_leaves_the_initial_weights_and_no_folder(tmp_path):
    x, y, _ = _saturated_problem(1e3)
    initial = np.zeros((4, 5))
    model, loss = notebook_model("custom", initial, dtype="float32")
    with pytest.raises(TrainingDivergedError, match="weights became NaN or inf in epoch 1"):
        train_sgd(
            model, x, y, epochs=1, batch_size=len(x), learning_rate=3e38, loss=loss, verbose=0,
            checkpoint_dir=tmp_path / "ck",
        )  # fmt: skip
    np.testing.assert_array_equal(get_notebook_weights(model), initial)
    assert not (tmp_path / "ck").exists()


def test_a_nan_validation_loss_is_divergence():
    # Keras' softmax gives exact zeros on huge logits, and a loss without a
    # floor turns 0 · log 0 into NaN: only the validation data are huge.
    model, _ = notebook_model("keras", INITIAL, dtype="float64")

    def plain_cce(y_true, y_pred):
        return tf.reduce_mean(tf.reduce_sum(-y_true * tf.math.log(y_pred), axis=-1))

    before = get_notebook_weights(model)
    with pytest.raises(TrainingDivergedError, match="validation loss became nan after epoch 1"):
        train_sgd(model, X, Y, epochs=2, loss=plain_cce, validation_data=(X * 1e300, Y), **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(model), before)


def test_nan_weights_are_refused_before_training():
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    kernel = model.trainable_variables[0]
    kernel.assign(tf.tensor_scatter_nd_update(kernel, [[0, 0]], tf.constant([np.nan], tf.float64)))
    with pytest.raises(ValueError, match="^the model's weights hold NaN or inf"):
        train_sgd(model, X, Y, loss=loss, epochs=1, **SETTINGS)


# --------------------------------------------------------------------------- I/O refused up front
def test_unwritable_checkpoint_dirs_are_refused_before_training(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    cases = {
        a_file / "ck": "is not a directory",  # ENOTDIR: a path under a regular file
        "/proc/tfsoftmax-ck": "No such file or directory|Permission denied|Read-only",
    }
    for folder, reason in cases.items():
        with pytest.raises(OutputError, match=f"^cannot write checkpoint_dir .*({reason})"):
            train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="dangling symbolic link"):
        train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=dangling, **SETTINGS)
    with pytest.raises(ValueError, match="^checkpoint_dir is empty"):
        train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir="", **SETTINGS)
    np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
    assert sorted(os.listdir(tmp_path)) == ["a-file", "dangling"]


def test_a_checkpoint_state_file_that_is_a_directory_falls_back_to_the_file_names(tmp_path):
    folder = tmp_path / "ck"
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
    (folder / "checkpoint").unlink()
    (folder / "checkpoint").mkdir()
    again, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.warns(RuntimeWarning, match="state file is unreadable"):
        history = train_sgd(again, X, Y, loss=loss, epochs=2, checkpoint_dir=folder, **SETTINGS)
    assert history.epoch == [0, 1]
    assert (folder / "checkpoint").is_file() and (folder / "checkpoint.unreadable").is_dir()


def _python(code, limit=None):
    """Run ``code`` in a fresh Python, its file sizes capped at ``limit`` bytes."""
    prefix = ""
    if limit is not None:
        prefix = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    command = [sys.executable, "-c", prefix + textwrap.dedent(code)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


def test_a_full_disk_leaves_the_previous_file_or_none(tmp_path):
    target = tmp_path / "weights.npy"
    np.save(target, np.arange(10.0))
    previous = target.read_bytes()
    code = f"""
        import sys; sys.modules["tensorflow"] = None  # the writer needs no TensorFlow
        import numpy as np
        from tfsoftmax.atomic import replacing
        try:
            with replacing({str(target)!r}, suffix=".npy") as temporary:
                np.save(temporary, np.zeros(100_000))
        except OSError as error:
            print("failed:", error)
    """
    done = _python(code, limit=64 * 1024)  # Python ignores SIGXFSZ: the write gets EFBIG
    assert "failed:" in done.stdout, done.stdout + done.stderr[-2000:]
    assert target.read_bytes() == previous
    assert os.listdir(tmp_path) == ["weights.npy"]  # no temporary file left


def test_a_full_disk_stops_train_sgd_cleanly(tmp_path):
    """Too small for one checkpoint: refused before training. Room for the probe
    (the variables' bytes) but not for the checkpoint with its history: one
    clean error after epoch 1, no partial checkpoint, no temporary file, no
    lock. (600 features, so that a checkpoint is larger than the files AutoGraph
    writes while tracing: ``RLIMIT_FSIZE`` caps every file of the process.)"""
    code = """
        import resource, numpy as np
        from tfsoftmax import reference
        from tfsoftmax.models import notebook_model, get_notebook_weights
        from tfsoftmax.training import train_sgd
        rng = np.random.default_rng(0)
        x, y = rng.uniform(0, 1, (50, 600)), np.arange(50) % 4
        initial = reference.Dense(600, 4, rng=0).weights  # 4 x 601 float64: 19232 bytes
        for name, limit in [("tiny", 8192), ("probe-fits", 19232 + 512)]:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            model, loss = notebook_model("custom", initial, dtype="float64")
            try:
                folder = {folder!r} + name
                train_sgd(model, x, y, loss=loss, epochs=2, verbose=0, checkpoint_dir=folder)
            except OSError as error:
                print(name, type(error).__name__, "|", error)
            print(name, "finite", bool(np.all(np.isfinite(get_notebook_weights(model)))))
    """
    done = _python(code.format(folder=str(tmp_path / "")))
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout + done.stderr[-3000:]
    assert lines[0].startswith("tiny OutputError | cannot write checkpoint_dir "), lines[0]
    assert lines[2].startswith("probe-fits OutputError | cannot write checkpoint ckpt-1 "), lines[2]
    assert lines[1] == "tiny finite True" and lines[3] == "probe-fits finite True"
    assert os.listdir(tmp_path) == []  # no folder, no partial checkpoint, no lock


# --------------------------------------------------------------------------- one run per folder
def test_a_second_run_on_a_locked_folder_is_refused_until_the_holder_dies(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['tensorflow'] = None\n"  # the lock needs no TensorFlow
            "from tfsoftmax.run_lock import DirectoryLock\n"
            f"DirectoryLock({str(folder)!r}).acquire()\n"
            "print('locked', flush=True)\n"
            "import time; time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        model, loss = notebook_model("custom", INITIAL, dtype="float64")
        with pytest.raises(
            CheckpointInUseError, match=rf"in use by another run \(pid {holder.pid} on "
        ):
            train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
        np.testing.assert_array_equal(get_notebook_weights(model), INITIAL)
        assert os.listdir(folder) == [LOCK_FILENAME]
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock; the file stays, stale
        holder.wait()
    assert json.loads((folder / LOCK_FILENAME).read_text())["pid"] == holder.pid
    history = train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
    assert history.epoch == [0]
    assert not (folder / LOCK_FILENAME).exists()


def test_two_runs_in_one_process_on_one_folder(tmp_path):
    folder = tmp_path / "ck"
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    inner = {}

    def second_run(epoch, logs):
        other, other_loss = notebook_model("custom", INITIAL, dtype="float64")
        with pytest.raises(CheckpointInUseError, match="in use by another run"):
            train_sgd(other, X, Y, loss=other_loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
        inner["refused"] = True

    callback = keras.callbacks.LambdaCallback(on_epoch_end=second_run)
    train_sgd(
        model, X, Y, loss=loss, epochs=2, checkpoint_dir=folder, callbacks=[callback], **SETTINGS
    )
    assert inner == {"refused": True}
    assert sorted(p.name for p in folder.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]


# --------------------------------------------------------------------------- tampered checkpoints
def _fingerprinted_checkpointer(folder, model, loss, **changes):
    """A RunCheckpointer with the fingerprint ``train_sgd`` computes for SETTINGS."""
    from tfsoftmax.fingerprint import run_fingerprint

    fingerprint = run_fingerprint(
        model, loss, X, Y, batch_size=10, learning_rate=0.5, seed=7, **changes
    )
    return RunCheckpointer(folder, model, fingerprint, keep=3)


@pytest.mark.parametrize("drop", ["history", "rng_state", "nan weights", "ragged history"])
def test_a_tampered_checkpoint_is_skipped_before_any_variable_changes(tmp_path, drop):
    folder = tmp_path / "ck"
    straight, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(straight, X, Y, loss=loss, epochs=3, **SETTINGS)
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(model, X, Y, loss=loss, epochs=2, checkpoint_dir=folder, **SETTINGS)
    # Forge a newest checkpoint ckpt-3 from ckpt-2's content, with one part broken.
    good = get_notebook_weights(model)
    checkpointer = _fingerprinted_checkpointer(folder, model, loss)
    snapshot = checkpointer.latest()
    state = dict(snapshot.state, completed_epochs=3)
    if drop in ("history", "rng_state"):
        del state[drop]
    elif drop == "ragged history":
        state["history"] = json.loads(json.dumps(state["history"]))
        state["history"]["epoch"].append(2)
    else:
        kernel = model.trainable_variables[0]
        kernel.assign(tf.fill(kernel.shape, tf.constant(np.nan, tf.float64)))
    checkpointer._state.value = state
    checkpointer._epoch.assign(3)
    checkpointer._manager.save(checkpoint_number=3)  # bypasses save()'s own checks
    checkpointer.close()
    fresh, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.warns(RuntimeWarning, match="ckpt-3 is unreadable .*falling back to .*ckpt-2"):
        history = train_sgd(fresh, X, Y, loss=loss, epochs=3, checkpoint_dir=folder, **SETTINGS)
    assert history.epoch == [0, 1, 2]
    assert get_notebook_weights(fresh).tobytes() == get_notebook_weights(straight).tobytes()
    assert not np.array_equal(good, get_notebook_weights(fresh))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"validation_data": (X[:50], Y[:50])}, r"the validation data differ"),
        ({"jit_compile": False}, "jit_compile is True there but False now"),
    ],
)
def test_resuming_with_other_validation_data_or_jit_is_refused(tmp_path, change, message):
    folder = tmp_path / "ck"
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
    again, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.raises(ValueError, match=message):
        train_sgd(again, X, Y, loss=loss, epochs=2, checkpoint_dir=folder, **SETTINGS, **change)
    np.testing.assert_array_equal(get_notebook_weights(again), INITIAL)


def test_a_ragged_history_is_a_value_error_not_an_index_error(tmp_path):
    history = History()
    history.record(0, {"loss": 1.0, "val_loss": 2.0}, 0.1)
    history.record(1, {"loss": 0.5}, 0.1)
    with pytest.raises(ValueError, match="history is ragged: 2 epochs but val_loss has 1"):
        history.to_csv(tmp_path / "h.csv")
    with pytest.raises(ValueError, match="ragged"):
        History.from_dict(history.to_dict())
    assert os.listdir(tmp_path) == []


def test_orphans_of_killed_saves_are_removed_when_the_next_run_starts(tmp_path):
    folder = tmp_path / "ck"
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    train_sgd(model, X, Y, loss=loss, epochs=1, checkpoint_dir=folder, **SETTINGS)
    (folder / "ckpt-2_temp").mkdir()
    (folder / "ckpt-2_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"torn")
    (folder / "checkpoint.tmp0123abcd").write_text("torn")
    (folder / LOCK_FILENAME).write_text('{"pid": 1}')  # left by a kill -9: stale
    train_sgd(model, X, Y, loss=loss, epochs=2, checkpoint_dir=folder, **SETTINGS)
    assert sorted(os.listdir(folder)) == [
        "checkpoint",
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
    ]


# --------------------------------------------------------------------------- small entry points
def test_small_entry_point_mistakes_are_value_errors():
    model, loss = notebook_model("custom", INITIAL, dtype="float64")
    with pytest.raises(ValueError, match="^callbacks must be a list of keras.callbacks.Callback"):
        train_sgd(model, X, Y, loss=loss, epochs=1, callbacks=5, **SETTINGS)
    history = train_sgd(model, X, Y, loss=loss, epochs=1, **{**SETTINGS, "batch_size": 2**63})
    assert history.params["steps"] == 1 and np.isfinite(history.loss[0])
    with pytest.raises(ValueError, match=r"^y has labels outside \[0, 4\): min 0, max 7"):
        reference.accuracy(reference.Dense(6, 4, rng=0), X.T, np.arange(103) % 8)
    with pytest.raises(ValueError, match=r"^labels_test has labels outside \[0, 10\)"):
        check_class_indices(np.array([0, 10]), "labels_test", 10)
    with pytest.raises(ValueError, match="^seed must be a non-negative integer or None, got -1"):
        reference.train(X.T, Y.T, epochs=1, seed=-1)
    with pytest.raises(ValueError, match="^rng must be a non-negative integer or None, got 'a'"):
        reference.Dense(6, 4, rng="a")


def test_the_reference_stops_on_divergence_naming_epoch_and_batch():
    with pytest.raises(
        TrainingDivergedError, match="weights became NaN or inf at epoch 1, batch 1"
    ):
        reference.train(1e3 * X.T, Y.T, epochs=1, batch_size=10, learning_rate=1e307)
    with pytest.raises(ValueError, match="^learning_rate 1e\\+39 overflows float32"):
        reference.train(X.T.astype("float32"), Y.T, epochs=1, learning_rate=1e39)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = write_text(tmp_path / "history.json", "{}")
        with replacing(tmp_path / "model.keras", suffix=".keras") as temporary:
            Path(temporary).write_bytes(b"model")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "model.keras").stat().st_mode & 0o777 == 0o666 & ~umask


def test_no_overflow_warning_for_narrow_features(recwarn):
    for x_dtype, model_dtype in [("float16", "float32"), ("float32", "float64")]:
        model, loss = notebook_model("custom", INITIAL, dtype=model_dtype)
        train_sgd(model, X.astype(x_dtype), Y, loss=loss, epochs=1, **SETTINGS)
    assert not [w for w in recwarn if "overflow" in str(w.message)]


# --------------------------------------------------------------------------- no leak
def test_fresh_models_trained_one_after_another_are_all_freed():
    x = X.astype("float32")
    alive = []
    for _ in range(50):
        model, loss = notebook_model("custom", INITIAL, dtype="float32")
        train_sgd(model, x, Y, loss=loss, epochs=1, jit_compile=False, **SETTINGS)
        assert trace_count(model) == 1  # one batch loop trace per model and data shape
        alive.append(weakref.ref(model))
        del model
    gc.collect()
    assert sum(reference() is not None for reference in alive) <= 2
