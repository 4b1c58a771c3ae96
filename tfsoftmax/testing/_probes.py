"""The point, the upstream gradients and the directions a gradient check probes.

The inputs are converted to float64 once (:func:`float64_inputs`); for each
checked dtype they are rounded to it, and the rounded values -- exactly
representable in float64 too -- are the point both sides see
(:func:`problem_at`), so finite differences and the gradient under test are
evaluated at the same ``x``. Upstream gradients ``u`` (:func:`draw_upstreams`)
are rounded to the output dtype the same way.

Upstream kinds:

* ``"random"`` -- ``k`` draws ``u ~ N(0, I)`` over all outputs together (label
  ``all`` when there are several outputs), and, with several outputs, ``k``
  more for each output alone (labelled by it), so an error is attributed to
  the output it comes from;
* ``"basis"`` -- every one-hot ``u`` (the full Jacobian, ``J^T e_i`` for every
  output entry ``i``; costs one backward pass per output entry) plus the
  random ones, which alone are used for finite differences;
* a list of arrays (one output) or of lists of arrays (one per output): those.
"""

import dataclasses

import numpy as np

from tfsoftmax._tf import tf
from tfsoftmax.testing._tape import floating_outputs, output_names
from tfsoftmax.testing._tolerances import dtype_eps

__all__ = ["Problem", "Upstream", "draw_upstreams", "float64_inputs", "problem_at", "round_to"]


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One upstream gradient: per-output float64 arrays, a label, and whether it is random."""

    label: str
    arrays: list
    random: bool


@dataclasses.dataclass
class Problem:
    """Everything one dtype's check needs: the point, the outputs, the upstream gradients."""

    dtype: object  # the tf.DType the inputs are cast to
    label: str  # the dtype or policy name shown in the table
    names: list
    points: list  # float64 arrays holding values representable in ``dtype``
    tensors: list  # the same values, as ``dtype`` tensors
    out_names: list
    out_dtypes: list
    shapes: list  # the outputs' shapes
    eps: float  # the largest epsilon among the input and output dtypes
    upstreams: list = dataclasses.field(default_factory=list)

    def upstream_tensors(self, upstream):
        return [tf.constant(a, d) for a, d in zip(upstream.arrays, self.out_dtypes, strict=True)]


def round_to(array, dtype):
    """``array`` rounded to ``dtype`` and back to float64 (exactly representable in both)."""
    return tf.cast(tf.cast(tf.constant(array, tf.float64), dtype), tf.float64).numpy()


def float64_inputs(inputs, names):
    """Each input as a float64 NumPy array; ``TypeError`` naming a non-floating one."""
    arrays = []
    for name, value in zip(names, inputs, strict=True):
        dtype = getattr(value, "dtype", None)
        if dtype is None:
            value = np.asarray(value)
            dtype = value.dtype if value.dtype.kind == "f" else np.dtype("float64")
            if np.asarray(value).dtype.kind not in "fiu":
                raise TypeError(f"input {name!r} is not numeric: {type(value).__name__}")
        elif not tf.as_dtype(dtype).is_floating:
            raise TypeError(
                f"input {name!r} has dtype {tf.as_dtype(dtype).name}; gradients are checked "
                "with respect to floating-point inputs only (close over the others: "
                "lambda x: fn(x, labels))"
            )
        array = np.asarray(tf.cast(tf.convert_to_tensor(value), tf.float64))
        if not np.all(np.isfinite(array)):
            raise ValueError(f"input {name!r} holds NaN or inf")
        arrays.append(array)
    return arrays


def problem_at(fn, arrays, names, dtype, label):
    """The point in ``dtype``, and the shapes, names and dtypes of ``fn``'s outputs there."""
    dtype = tf.as_dtype(dtype)
    points = [round_to(a, dtype) for a in arrays]
    tensors = [tf.constant(p, dtype) for p in points]
    result = fn(*tensors)
    outputs = floating_outputs(result)
    if not outputs:
        raise ValueError("the function returns no floating-point output to differentiate")
    eps = max(dtype_eps(t.dtype) for t in [*tensors, *outputs])
    return Problem(
        dtype=dtype,
        label=label,
        names=names,
        points=points,
        tensors=tensors,
        out_names=output_names(result),
        out_dtypes=[o.dtype for o in outputs],
        shapes=[tuple(o.shape) for o in outputs],
        eps=eps,
    )


def _one_hot_upstreams(problem):
    found = []
    for j, (name, shape) in enumerate(zip(problem.out_names, problem.shapes, strict=True)):
        for index in range(int(np.prod(shape))):
            arrays = [np.zeros(s) for s in problem.shapes]
            arrays[j].flat[index] = 1.0
            found.append(Upstream(name, arrays, random=False))
    return found


def _random_upstreams(problem, rng, count):
    shapes, several = problem.shapes, len(problem.shapes) > 1
    found = []
    for _ in range(count):
        arrays = [rng.standard_normal(s) for s in shapes]
        found.append(Upstream("all" if several else problem.out_names[0], arrays, random=True))
    for j in range(len(shapes)) if several else ():
        for _ in range(count):
            arrays = [np.zeros(s) for s in shapes]
            arrays[j] = rng.standard_normal(shapes[j])
            found.append(Upstream(problem.out_names[j], arrays, random=True))
    return found


def draw_upstreams(problem, kind, count, rng):
    """The upstream gradients (see the module docstring), rounded to the output dtypes."""
    if isinstance(kind, str):
        if kind not in ("random", "basis"):
            raise ValueError(
                f"upstream must be 'random', 'basis' or a list of arrays, got {kind!r}"
            )
        found = _random_upstreams(problem, rng, count)
        if kind == "basis":
            found = _one_hot_upstreams(problem) + found
    else:
        found = []
        for given in kind:
            arrays = list(given) if len(problem.shapes) > 1 else [given]
            arrays = [np.asarray(a, np.float64) for a in arrays]
            if [a.shape for a in arrays] != [tuple(s) for s in problem.shapes]:
                raise ValueError(
                    f"an upstream gradient has shapes {[a.shape for a in arrays]}; the outputs "
                    f"have shapes {problem.shapes}"
                )
            label = "given" if len(arrays) > 1 else problem.out_names[0]
            found.append(Upstream(label, arrays, random=True))
    return [
        Upstream(
            u.label,
            [round_to(a, d) for a, d in zip(u.arrays, problem.out_dtypes, strict=True)],
            u.random,
        )
        for u in found
    ]
