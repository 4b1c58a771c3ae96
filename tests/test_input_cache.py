"""The input cache: each array checked and converted once, again after a change, freed with it."""

import gc
import weakref

import numpy as np
import pytest

from tfsoftmax import input_cache
from tfsoftmax.models import get_notebook_weights, notebook_model
from tfsoftmax.training import train_sgd


class _Counter:
    """A compute function that counts its calls and returns a fresh object each time."""

    def __init__(self):
        self.calls = 0

    def __call__(self, array):
        self.calls += 1
        return [float(np.sum(array))]


def _array(seed=0, shape=(300, 7)):
    return np.random.default_rng(seed).uniform(size=shape)


def test_a_hit_returns_the_stored_result_without_computing():
    x, compute = _array(), _Counter()
    before = input_cache.info()
    first = input_cache.cached(x, "sum", compute)
    again = input_cache.cached(x, "sum", compute)
    assert again is first and compute.calls == 1
    after = input_cache.info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 1)
    # Another key of the same array is its own result.
    input_cache.cached(x, "other", compute)
    assert compute.calls == 2


def test_an_equal_copy_or_a_view_is_another_array():
    x, compute = _array(), _Counter()
    input_cache.cached(x, "sum", compute)
    input_cache.cached(x.copy(), "sum", compute)
    input_cache.cached(x[:100], "sum", compute)
    input_cache.cached(x.reshape(7, 300), "sum", compute)
    assert compute.calls == 4


@pytest.mark.parametrize(
    "mutate",
    [
        lambda x: x.__imul__(0.5),
        lambda x: x.fill(3.0),
        lambda x: np.copyto(x, _array(seed=9)),
        lambda x: x.__setitem__(slice(None), 0.0),
        lambda x: x.__setitem__((0, 0), -1.0),  # the first element is always sampled
        lambda x: x.__setitem__((-1, -1), -1.0),  # so is the last
    ],
)
def test_an_in_place_change_the_sample_sees_recomputes(mutate):
    x, compute = _array(), _Counter()
    input_cache.cached(x, "sum", compute)
    mutate(x)
    result = input_cache.cached(x, "sum", compute)
    assert compute.calls == 2
    assert result == [float(np.sum(x))]


def test_strided_and_fortran_arrays_are_sampled_without_copies():
    base = _array(shape=(400, 30))
    for x in (base[::3, ::2], np.asfortranarray(base)):
        compute = _Counter()
        input_cache.cached(x, "sum", compute)
        input_cache.cached(x, "sum", compute)
        assert compute.calls == 1
        x[0, 0] += 1.0
        input_cache.cached(x, "sum", compute)
        assert compute.calls == 2


def test_an_edit_outside_the_sample_is_missed_until_clear():
    """The documented limit: the sample (every s-th element) cannot see every write."""
    x = np.zeros(4 * input_cache.SAMPLE_SIZE)  # stride 4: element 1 is not sampled
    compute = _Counter()
    input_cache.cached(x, "sum", compute)
    x[1] = 5.0
    assert input_cache.cached(x, "sum", compute) == [0.0]  # stale, as documented
    input_cache.clear()
    assert input_cache.cached(x, "sum", compute) == [5.0]


def test_the_cache_neither_keeps_arrays_alive_nor_grows_without_bound():
    compute = _Counter()
    input_cache.clear()
    x = _array()
    reference = weakref.ref(x)
    input_cache.cached(x, "sum", compute)
    assert input_cache.info().arrays == 1
    del x
    gc.collect()
    assert reference() is None
    assert input_cache.info().arrays == 0
    alive = [_array(seed) for seed in range(3 * input_cache.MAX_ARRAYS)]
    for array in alive:
        input_cache.cached(array, "sum", compute)
    assert input_cache.info().arrays == input_cache.MAX_ARRAYS


def test_lists_and_failures_are_never_stored():
    compute = _Counter()
    input_cache.cached([1.0, 2.0], "sum", compute)
    input_cache.cached([1.0, 2.0], "sum", compute)
    assert compute.calls == 2
    x = _array()

    def failing(_):
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        input_cache.cached(x, "sum", failing)
    assert input_cache.cached(x, "sum", compute) == [float(np.sum(x))]


# --- through train_sgd --------------------------------------------------------------


def _problem(samples=120, features=6, classes=3, seed=4):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(samples, features))
    labels = rng.integers(0, classes, samples)
    initial = rng.normal(scale=0.1, size=(classes, features + 1))
    return x, labels, initial


def _train(x, labels, initial):
    model, loss = notebook_model("custom", initial, dtype="float64")
    history = train_sgd(model, x, labels, epochs=2, batch_size=16, loss=loss, verbose=0)
    return history.loss, get_notebook_weights(model)


def test_train_sgd_checks_and_converts_an_array_once():
    x, labels, initial = _problem()
    validation = (x[:40].copy(), labels[:40].copy())
    model, loss = notebook_model("custom", initial, dtype="float64")
    settings = {"epochs": 1, "batch_size": 16, "loss": loss, "verbose": 0}
    train_sgd(model, x, labels, validation_data=validation, **settings)
    before = input_cache.info()
    train_sgd(model, x, labels, validation_data=validation, **settings)
    after = input_cache.info()
    assert after.misses == before.misses  # x, y, x_val, y_val: all from the cache
    assert after.hits - before.hits >= 4


def test_train_sgd_trains_on_the_new_values_after_an_in_place_change():
    x, labels, initial = _problem()
    _train(x, labels, initial)
    x *= 0.5  # in place: same object, same address
    assert [
        np.array_equal(a, b)
        for a, b in zip(_train(x, labels, initial), _train(x.copy(), labels, initial), strict=True)
    ] == [True, True]


def test_train_sgd_sees_a_nan_written_in_place():
    x, labels, initial = _problem()
    _train(x, labels, initial)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        _train(x, labels, initial)


def test_the_unscaled_pixels_warning_is_repeated_on_every_call():
    x, labels, initial = _problem()
    pixels = np.round(x * 255)
    model, loss = notebook_model("custom", initial, dtype="float64")
    for _ in range(2):
        with pytest.warns(UserWarning, match="x looks like unscaled 0-255 pixel values"):
            train_sgd(model, pixels, labels, epochs=1, learning_rate=1e-4, loss=loss, verbose=0)
