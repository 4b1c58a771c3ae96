"""Run the mutants of :mod:`mutants` against scratch copies of the repository.

For each mutant: copy ``tfsoftmax/``, ``tests/``, ``setup.cfg``,
``pyproject.toml`` and ``README.md`` to a temporary directory, replace the
mutant's snippet (it must occur exactly once), check that Python run with
``PYTHONPATH=<copy>`` imports ``tfsoftmax`` from the copy (not from the
editable install), run the mutant's tests there with ``pytest -x`` in a
subprocess, and read the verdict from pytest's exit code and JUnit XML:

* ``killed`` -- a test failed (exit code 1); the first failing test is named;
* ``survived`` -- every selected test passed (exit code 0);
* ``error`` -- anything else (no tests selected, a collection error, a timeout).

A baseline run of every selection on an unmutated copy comes first
(:func:`baseline`): a test that fails without a mutant proves nothing.

Command line (from the repository root)::

    python tests/mutation/runner.py [--jobs 2] [--only NAME ...] [--markdown FILE]

prints one line per mutant and, with ``--markdown``, writes the table the
README's "Mutation testing" section shows. ``pytest -m mutation`` runs the
same through ``tests/mutation/test_mutation.py``.
"""

import argparse
import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the sibling module
    sys.path.insert(0, str(Path(__file__).parent))
    from mutants import MUTANTS  # noqa: E402
else:
    from .mutants import MUTANTS

__all__ = ["ROOT", "MutantResult", "baseline", "markdown_table", "run_mutant", "scratch_copy"]

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("tfsoftmax", "tests", "setup.cfg", "pyproject.toml", "README.md")
TIMEOUT = 900  # seconds per pytest run


class StaleMutantError(ValueError):
    """The mutant's snippet is not in the file exactly once: the code moved on."""


@dataclasses.dataclass
class MutantResult:
    name: str
    verdict: str  # "killed", "survived" or "error"
    failed: list  # the failing tests' node ids
    seconds: float
    detail: str = ""


def scratch_copy(destination, root=ROOT):
    """Copy the package, the tests and the pytest settings to ``destination``."""
    destination = Path(destination)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "*.pyc")
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, destination / name)
    return destination


def apply(mutant, copy):
    """Replace the mutant's snippet in ``copy``; :class:`StaleMutantError` unless found once."""
    path = Path(copy) / mutant.path
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise StaleMutantError(
            f"{mutant.name}: the snippet occurs {count} times in {mutant.path}, expected once"
        )
    path.write_text(text.replace(mutant.original, mutant.replacement))


def environment(copy):
    """The subprocess environment: the copy first on ``PYTHONPATH``, quiet TensorFlow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def check_imports_copy(copy):
    """Raise unless ``import tfsoftmax`` in the subprocess environment finds the copy."""
    code = "import importlib.util; print(importlib.util.find_spec('tfsoftmax').origin)"
    origin = subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = Path(copy).resolve() / "tfsoftmax" / "__init__.py"
    if Path(origin).resolve() != expected:
        raise RuntimeError(f"the subprocess imports tfsoftmax from {origin}, not {expected}")
    return origin


def run_pytest(copy, arguments, stop_at_first=True):
    """``(exit code, failing node ids, output tail)`` of pytest on ``arguments`` in ``copy``."""
    report = Path(copy) / "junit.xml"
    # "-n 0": in one process; with setup.cfg's xdist workers, "-x" ends in exit code 2.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"]
    command += ["-x"] if stop_at_first else []
    command += ["--junitxml", str(report), *arguments]
    try:
        done = subprocess.run(
            command,
            cwd=copy,
            env=environment(copy),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return None, [], f"timed out after {TIMEOUT} s"
    return done.returncode, _failures(report), (done.stdout + done.stderr)[-2000:]


def _failures(report):
    if not report.exists():
        return []
    failed = []
    for case in ElementTree.parse(report).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return failed


def run_mutant(mutant):
    """Apply ``mutant`` to a fresh scratch copy, run its tests, return a :class:`MutantResult`."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-mutant-") as directory:
        copy = scratch_copy(directory)
        try:
            apply(mutant, copy)
        except StaleMutantError as error:
            return MutantResult(mutant.name, "error", [], 0.0, str(error))
        check_imports_copy(copy)
        code, failed, output = run_pytest(copy, mutant.tests)
    seconds = time.perf_counter() - start
    verdict = {0: "survived", 1: "killed"}.get(code, "error")
    detail = "" if verdict != "error" else f"pytest exit code {code}: {output}"
    return MutantResult(mutant.name, verdict, failed, seconds, detail)


def baseline(mutants=MUTANTS):
    """Run every mutant's selection on one unmutated copy: ``(exit code, failing ids, tail)``.

    Each selection runs as its own pytest session (the ``-k`` expressions differ).
    """
    selections = sorted({m.tests for m in mutants})
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-baseline-") as directory:
        copy = scratch_copy(directory)
        check_imports_copy(copy)
        results = {}
        for selection in selections:
            results[selection] = run_pytest(copy, selection, stop_at_first=False)
    return results


def markdown_table(mutants, results):
    """The README's table: mutant, file, verdict, the test that caught it (or why none can)."""
    lines = [
        "| mutant | file | result | caught by |",
        "|---|---|---|---|",
    ]
    for mutant in mutants:
        result = results[mutant.name]
        if mutant.equivalent:
            verdict, by = f"equivalent ({result.verdict})", mutant.equivalent
        else:
            verdict = result.verdict
            by = f"`{_short(result.failed[0])}`" if result.failed else result.detail[:80]
        lines.append(f"| {mutant.name} | `{mutant.path}` | {verdict} | {by} |")
    return "\n".join(lines)


def _short(node_id):
    """``tests.test_ops::test_x[a]`` -> ``test_ops.py::test_x[a]``."""
    module, _, test = node_id.partition("::")
    return f"{module.rsplit('.', 1)[-1]}.py::{test}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at the same time")
    parser.add_argument("--only", nargs="+", help="run only the mutants with these names")
    parser.add_argument("--markdown", type=Path, help="write the results table here")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip([m.name for m in chosen], pool.map(run_mutant, chosen), strict=True))
    for mutant in chosen:
        result = results[mutant.name]
        expected = "survived" if mutant.equivalent else "killed"
        mark = "ok  " if result.verdict == expected else "BAD "
        caught = result.failed[0] if result.failed else result.detail[:200]
        print(f"{mark}{result.verdict:<9}{result.seconds:6.0f} s  {mutant.name}: {caught}")
    print(f"{len(chosen)} mutants in {time.perf_counter() - start:.0f} s")
    if args.markdown:
        args.markdown.write_text(markdown_table(chosen, results) + "\n")
    good = all(
        results[m.name].verdict == ("survived" if m.equivalent else "killed") for m in chosen
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
