"""What a gradient check returns: one entry per (dtype, mode, order, input, output, check).

Each entry holds the largest error over the probes of that cell and the
tolerance it was held to, and a verdict: ``ok``, ``FAIL``, ``unsupported``
(a second derivative TensorFlow cannot take: the verdict is not a pass) or
``skipped`` (a dtype policy the layer does not accept; not a failure). The
errors, by check:

* ``forward``, ``reference``, ``numpy`` -- ``max|V - V_ref| / max|V_ref|``, the
  maxima over all the cell's VJPs together (relative to their largest entry);
* ``finite_diff`` -- ``|<V, d> - D| / max(s ||V||_2, |D|)``: the directional
  derivative ``<V, d>`` of the gradient under test against the float64 finite
  difference ``D`` along ``d ~ N(0, s^2 I)``, relative to its typical size
  (``<V, d>`` has standard deviation ``s ||V||_2``). Its tolerance adds the
  finite difference's error bound to the relative tolerance.
"""

import dataclasses

__all__ = ["CheckEntry", "GradientCheckError", "GradientCheckResult"]

_PASSING = ("ok", "skipped")


@dataclasses.dataclass(frozen=True)
class CheckEntry:
    """One cell of the check: the worst error over its probes and its verdict."""

    dtype: str
    mode: str
    order: int
    input: str
    output: str
    check: str  # "forward", "reference", "numpy", "finite_diff"
    error: float
    tolerance: float
    kappa: float = 1.0  # the measured condition number the tolerance was derived from
    status: str = ""  # "" -> derived from error and tolerance
    note: str = ""

    def __post_init__(self):
        if not self.status:
            verdict = "ok" if self.error <= self.tolerance else "FAIL"
            object.__setattr__(self, "status", verdict)

    @property
    def ok(self):
        return self.status in _PASSING

    def to_dict(self):
        return {**dataclasses.asdict(self), "ok": self.ok}


_COLUMNS = (
    ("dtype", 15, "<"),
    ("mode", 9, "<"),
    ("order", 6, "<"),
    ("input", 22, "<"),
    ("output", 13, "<"),
    ("check", 12, "<"),
    ("error", 10, ">"),
    ("tolerance", 11, ">"),
    ("cond", 8, ">"),
)


def _cell(entry, name):
    if name == "error":
        return f"{entry.error:.2e}"
    if name == "tolerance":
        return f"{entry.tolerance:.2e}"
    if name == "cond":
        return f"{entry.kappa:.3g}"
    return str(getattr(entry, name))


@dataclasses.dataclass(repr=False)
class GradientCheckResult:
    """Every :class:`CheckEntry`; true when all pass. ``str()`` and ``repr()`` are the table.

    (``repr`` too, so that ``assert result, result`` in a pytest test shows the table.)
    """

    entries: list
    method: str = ""  # how the probes were drawn and compared, printed under the table

    @property
    def passed(self):
        return bool(self.entries) and all(entry.ok for entry in self.entries)

    def __bool__(self):
        return self.passed

    @property
    def failures(self):
        """The entries that did not pass (``FAIL`` or ``unsupported``)."""
        return [entry for entry in self.entries if not entry.ok]

    def worst(self, **match):
        """The entry with the largest ``error / tolerance`` among those matching ``match``."""
        chosen = [e for e in self.entries if all(getattr(e, k) == v for k, v in match.items())]
        if not chosen:
            raise ValueError(f"no entry matches {match}")
        return max(chosen, key=lambda e: e.error / e.tolerance if e.tolerance else e.error)

    def errors(self, check, **match):
        """``{input: worst error}`` of one check (over dtypes, modes, outputs unless matched)."""
        found = {}
        for entry in self.entries:
            if entry.check == check and all(getattr(entry, k) == v for k, v in match.items()):
                found[entry.input] = max(found.get(entry.input, 0.0), entry.error)
        return found

    def summary(self):
        if not self.entries:
            return "no gradient was checked"
        failed = self.failures
        if not failed:
            return f"all {len(self.entries)} checks passed"
        worst = max(failed, key=lambda e: e.error / e.tolerance if e.tolerance else e.error)
        return (
            f"{len(failed)} of {len(self.entries)} checks FAILED; worst: input {worst.input!r}, "
            f"{worst.output}, {worst.check} ({worst.dtype}, {worst.mode}, order {worst.order}): "
            f"error {worst.error:.2e} > tolerance {worst.tolerance:.2e}"
            + (f" -- {worst.note}" if worst.note else "")
        )

    def table(self):
        header = "".join(f"{name:{align}{width}}" for name, width, align in _COLUMNS) + "  verdict"
        lines = [header, "-" * len(header)]
        for entry in self.entries:
            cells = "".join(f"{_cell(entry, n):{a}{w}}" for n, w, a in _COLUMNS)
            verdict = entry.status + (f" ({entry.note})" if entry.note else "")
            lines.append(f"{cells}  {verdict}")
        if self.method:
            lines += ["", self.method]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<GradientCheckResult passed={self.passed}>\n{self.table()}"

    def to_dict(self):
        return {"passed": self.passed, "entries": [entry.to_dict() for entry in self.entries]}


class GradientCheckError(AssertionError):
    """A gradient check failed; the message is the result's table. ``.result`` holds it."""

    def __init__(self, result):
        super().__init__(f"gradient check failed: {result.summary()}\n\n{result.table()}")
        self.result = result
