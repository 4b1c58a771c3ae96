"""Mutation testing: every mutant of ``mutants.py`` is caught by its own module's tests.

Run with ``pytest -m mutation`` (the default run excludes the marker, see
setup.cfg: the mutants take about half an hour on 2 cores). Each test applies
one mutant to a scratch copy of the repository and runs the mutant's tests
there in a subprocess (``runner.py``). A real bug must be *killed* by a test of
the mutant's own test file; an equivalent mutant must *survive* (else the
reason given for its equivalence is wrong). Before the first mutant of a
selection, that selection runs on an unmutated copy and must pass: a test
that fails anyway proves nothing.

``TFSOFTMAX_MUTATION_REPORT=path.md`` writes the results table (as in the README).
"""

import dataclasses
import json
import os
from pathlib import Path

import pytest
from mutants import MUTANTS
from runner import MutantResult, baseline, markdown_table, run_mutant

pytestmark = pytest.mark.mutation

_BASELINES = {}


def _baseline_passes(mutant):
    if mutant.tests not in _BASELINES:
        _BASELINES.update(baseline([mutant]))
    code, failed, output = _BASELINES[mutant.tests]
    assert code == 0, f"the tests fail without the mutant: {failed or output}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant(mutant):
    own_tests = f"tests/test_{Path(mutant.test_file).stem.removeprefix('test_')}.py"
    assert mutant.test_file == own_tests and (Path(__file__).parents[2] / own_tests).is_file()
    _baseline_passes(mutant)
    result = run_mutant(mutant)
    _write_report(result)
    if mutant.equivalent:
        assert result.verdict == "survived", (result.failed, result.detail)
    else:
        assert result.verdict == "killed", (result.verdict, result.detail)
        stem = Path(own_tests).stem
        assert all(node.split("::")[0].rsplit(".", 1)[-1] == stem for node in result.failed)


def _write_report(result):
    """Append ``result`` to ``<report>.jsonl`` and rewrite the table from every line so far
    (under ``pytest -n`` each worker appends its own results to the same file)."""
    path = os.environ.get("TFSOFTMAX_MUTATION_REPORT")
    if not path:
        return
    lines = Path(path + ".jsonl")
    with open(lines, "a") as file:
        file.write(json.dumps(dataclasses.asdict(result)) + "\n")
    results = {}
    for line in lines.read_text().splitlines():
        record = json.loads(line)
        results[record["name"]] = MutantResult(**record)
    done = [m for m in MUTANTS if m.name in results]
    Path(path).write_text(markdown_table(done, results) + "\n")
