"""The fingerprint of a training run: what a checkpoint must share to be resumed.

:func:`run_fingerprint` is a JSON-able dict of everything that changes a
run's numbers — batch size, learning rate, seed, the training data and the
validation data (CRC32 of the features in the model's dtype and of the class
indices), XLA on or off, the number of replicas, the model's variables (shape
and dtype), its layers' classes and configs, and the loss. ``epochs`` is not in
it, so a finished run can be continued for more epochs. Two fingerprints are
compared key by key, and :func:`describe_mismatch` says in one line what
differs (``batch_size is 200 there but 100 now``).
"""

import math
import zlib

import numpy as np

from tfsoftmax._tf import tf

__all__ = ["describe_mismatch", "run_fingerprint"]


def _plain(value):
    """A JSON-comparable copy of a Keras config: objects become their type's name."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return _plain(value.item())
    return type(value).__qualname__


def _qualified_name(obj):
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe(obj):
    """Class and config (minus the auto-generated ``name``) of a layer or loss."""
    if not hasattr(obj, "get_config"):
        name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
        return {"class": f"{getattr(obj, '__module__', '?')}.{name}"}
    try:
        config = dict(obj.get_config())
    except (NotImplementedError, TypeError):
        config = {}
    config.pop("name", None)
    return {"class": _qualified_name(obj), "config": _plain(config)}


def _data_digest(x, labels, dtype):
    """CRC32 of the features (as the model's dtype) and of the class indices."""
    features = np.ascontiguousarray(x, dtype=tf.as_dtype(dtype).as_numpy_dtype)
    crc = zlib.crc32(features.view(np.uint8))  # bytes, whatever the dtype (bfloat16 too)
    crc = zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes(), crc)
    return f"{crc:08x}"


def run_fingerprint(
    model,
    loss_fn,
    x,
    y,
    *,
    batch_size,
    learning_rate,
    seed,
    validation=None,
    jit_compile=True,
    replicas=1,
):
    """What must be equal for a checkpoint to continue this run.

    ``x`` and one-hot ``y`` are the validated training data, ``validation``
    the validated ``(x_val, y_val)`` pair or None. ``epochs`` is not part of
    it: a finished run can be continued for more epochs.
    """
    dtype = model.trainable_variables[0].dtype
    validation_digest = None
    if validation is not None:
        x_val, y_val = (np.asarray(part) for part in validation)
        validation_digest = {
            "samples": int(x_val.shape[0]),
            "data": _data_digest(x_val, np.argmax(y_val, axis=1), dtype),
        }
    return {
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "seed": None if seed is None else int(seed),
        "samples": int(x.shape[0]),
        "features": int(x.shape[1]),
        "classes": int(y.shape[1]),
        "data": _data_digest(x, np.argmax(y, axis=1), dtype),
        "validation_data": validation_digest,
        "jit_compile": bool(jit_compile),
        "replicas": int(replicas),
        "variables": [[list(v.shape), tf.as_dtype(v.dtype).name] for v in model.variables],
        "model": {
            "class": _qualified_name(model),
            "layers": [_describe(layer) for layer in model.layers],
        },
        "loss": _describe(loss_fn),
    }


def _first_difference(saved, current, path=""):
    """``(path, saved value, current value)`` of the first differing leaf, or None."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in list(saved) + [k for k in current if k not in saved]:
            if key not in saved or key not in current:
                return f"{path}.{key}".lstrip("."), saved.get(key, "—"), current.get(key, "—")
            found = _first_difference(saved[key], current[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, (a, b) in enumerate(zip(saved, current, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if saved == current else (path.lstrip("."), saved, current)


_WHAT = {
    "data": "the training data (x, y) differ",
    "validation_data": "the validation data differ (or one run has none)",
    "variables": "the model's variables differ in shape or dtype",
    "model": "the model differs",
    "loss": "the loss differs",
}


def describe_mismatch(saved, current):
    """One line per differing key of two fingerprints, joined by ``"; "``."""
    parts = []
    for key in dict.fromkeys([*saved, *current]):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if key in _WHAT:
            where = _first_difference(a, b)
            detail = f" ({where[0] or key}: {where[1]!r} there, {where[2]!r} now)" if where else ""
            if key in ("data", "validation_data"):
                detail = ""
            parts.append(_WHAT[key] + detail)
        else:
            parts.append(f"{key} is {a!r} there but {b!r} now")
    return "; ".join(parts)
