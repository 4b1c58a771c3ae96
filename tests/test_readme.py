"""Every code block of README.md is run or checked, so a wrong name, option or path fails CI.

The convention, by kind of block (:func:`readme_blocks` finds them all):

* ```` ```python ```` — **run**, all in one fresh Python process (one
  TensorFlow import), in README order, each block in its own namespace, in a
  temporary working folder. A block may use, without defining them, only the
  names of :data:`GIVEN` — small real data, so the blocks run in seconds:
  ``x_train, y_train`` (the first 2000 MNIST training samples, preprocessed as
  the notebook does: batch-major float32, one-hot labels), ``x_test, y_test``
  (the first 500 test samples), ``x, y`` (8 samples of those), ``w`` and
  ``initial_weights`` (a ``(10, 785)`` bias-trick weight matrix) and ``model``
  (the notebook's model with the custom layers). Any other free name fails.
* ```` ```bash ```` — the two commands of "The two commands". Each is split at
  ``&&``. The install step (``python3 -m tfsoftmax.bootstrap``: the venv and
  pip, tested in ``test_bootstrap.py``) cannot run here (CI *is* it): the
  test command must equal the one ``.ci/run`` runs,
  character for character, and the main command must install exactly as the
  test command does. A ``tfsoftmax ...`` step is **run** as a real subprocess
  (``python -m tfsoftmax``, in a temporary folder) with :data:`SMALL` appended
  — the one substitution (later options win in argparse) — and must
  exit 0 and write the files it names. ``pytest`` steps are CI itself.
* Indented blocks (4 spaces: the "Scaling out" recipes, which need GPUs or
  several machines) — every ``tfsoftmax ...`` line is **parsed** by the real
  parser (every option and value must be accepted; environment assignments and
  ``#`` comments are dropped), ``pip install -e ".[extra]"`` must name an
  extra of ``pyproject.toml``, and the Python lines are run as a Python block
  (above).
* Plain ```` ``` ```` blocks are listings, each checked by what it shows:
  the command-line synopsis (every option exists in that subcommand, every
  ``a|b`` list equals the option's choices), the output of ``tfsoftmax
  compare`` (every line, numbers aside, is a line the real command prints),
  the benchmark table (its rows are the benchmark's rows, in order) and the
  layout (every path exists). A listing no check recognises fails the test.
"""

import ast
import builtins
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from tfsoftmax.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Appended to the main command's ``tfsoftmax compare`` when it runs here.
SMALL = ["--epochs", "1", "--limit", "1000", "--gradient-steps", "1"]

#: The names a Python block may use without defining them, and how they are made.
GIVEN = {
    "x_train": "data.x_train",
    "y_train": "data.y_train",
    "x_test": "data.x_test",
    "y_test": "data.y_test",
    "x": "data.x_train[:8]",
    "y": "data.y_train[:8]",
    "w": "initial_weights.copy()",
    "initial_weights": "initial_weights",
    "model": "notebook_model('custom', initial_weights)[0]",
}

RUNNER = """
import json, sys, traceback
import numpy as np
from tfsoftmax import reference
from tfsoftmax.datasets import load_mnist, preprocess
from tfsoftmax.models import notebook_model

(xa, ya), (xb, yb) = load_mnist()
data = preprocess(xa[:2000], ya[:2000], xb[:500], yb[:500], layout="batch-major")
initial_weights = reference.Dense(784, 10, rng=np.random.default_rng(0), dtype="float32").weights
given = json.loads(sys.argv[2])
for line, code, needs in json.loads(open(sys.argv[1]).read()):
    namespace = {name: eval(given[name]) for name in needs}
    try:
        exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
    except Exception:
        traceback.print_exc()
        sys.exit(f"README.md: the Python block at line {line} failed")
    print(f"block at line {line}: ok", flush=True)
"""


# --- finding the blocks ------------------------------------------------------------------


def readme_blocks(text=None):
    """``[(kind, line, code)]``: ``kind`` is a fence's language ("" for none) or "indented"."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append((fence.group(1), i + 2, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end + 1
        elif lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1]):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            while not lines[end - 1].strip():  # trailing blank lines are not the block's
                end -= 1
            blocks.append(("indented", i + 1, textwrap.dedent("\n".join(lines[i:end])) + "\n"))
            i = end
        else:
            i += 1
    return blocks


def test_the_block_finder_sees_fences_and_indented_blocks():
    text = "a\n\n```python\nx = 1\n```\n\n    tfsoftmax info\n    pip list\n\nb\n"
    assert readme_blocks(text) == [
        ("python", 4, "x = 1\n"),
        ("indented", 7, "tfsoftmax info\npip list\n"),
    ]


BLOCKS = readme_blocks()


def blocks_of(kind):
    return [(line, code) for k, line, code in BLOCKS if k == kind]


def test_every_block_is_of_a_kind_this_file_checks():
    assert {kind for kind, _, _ in BLOCKS} <= {"python", "bash", "", "indented"}
    assert blocks_of("python") and blocks_of("bash") and blocks_of("")


# --- Python ----------------------------------------------------------------------------


def free_names(code):
    """Names ``code`` reads that it never binds (nor are builtins)."""
    tree = ast.parse(code)
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return read - bound - set(dir(builtins))


def python_like(code):
    return bool(re.match(r"(import|from) \w", code))


def python_blocks():
    """Every Python block: the fenced ones and the indented ones that are Python."""
    return blocks_of("python") + [b for b in blocks_of("indented") if python_like(b[1])]


@pytest.mark.mnist
def test_python_blocks_run(tmp_path):
    blocks = []
    for line, code in python_blocks():
        needs = free_names(code)
        unknown = needs - set(GIVEN)
        assert not unknown, f"README.md line {line}: the block uses undefined {sorted(unknown)}"
        blocks.append((line, code, sorted(needs)))
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "runner.py", "blocks.json", json.dumps(GIVEN)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count(": ok") == len(blocks)


# --- shell -----------------------------------------------------------------------------


def shell_commands(code):
    """The commands of a shell block: continuations joined, comments and blanks dropped."""
    joined = code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value command
            words = words[1:]
        if words:
            commands.append(words)
    return commands


def ci_test_command():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    (command,) = [line for line in lines if line.endswith("-m pytest") and " && " in line]
    return command


def the_two_commands():
    commands = [code.strip() for _, code in blocks_of("bash")]
    main = [c for c in commands if "tfsoftmax compare" in c]
    tests = [c for c in commands if c.endswith("-m pytest")]
    assert len(main) == 1 and len(tests) == 1, commands
    return main[0], tests[0]


def test_the_readme_test_command_is_what_ci_runs():
    _, test_command = the_two_commands()
    assert test_command == ci_test_command()


def test_the_main_command_installs_as_the_test_command_does():
    main, test_command = the_two_commands()
    install = test_command.rsplit(" && ", 1)[0]
    assert main.rsplit(" && ", 1)[0] == install
    assert main.rsplit(" && ", 1)[1].startswith(".venv/bin/tfsoftmax compare")


@pytest.fixture(scope="module")
def main_command_run(tmp_path_factory):
    """The main command's ``tfsoftmax compare`` step, run for real with :data:`SMALL`."""
    main, _ = the_two_commands()
    words = shlex.split(main.rsplit(" && ", 1)[1])
    assert words[0] == ".venv/bin/tfsoftmax"
    folder = tmp_path_factory.mktemp("main")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "tfsoftmax", *words[1:], *SMALL],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return words, folder, result


@pytest.mark.mnist
def test_the_main_command_runs_and_writes_what_it_names(main_command_run):
    words, folder, result = main_command_run
    assert result.returncode == 0, result.stderr[-4000:]
    written = pathlib.Path(folder, words[words.index("--json") + 1])
    assert json.loads(written.read_text())["agree"] is True
    assert (folder / "out" / "compare" / "loss_curves.png").is_file()


def indented_shell_blocks():
    return [(line, code) for line, code in blocks_of("indented") if not python_like(code)]


def test_indented_command_lines_are_accepted_by_the_parser():
    parser = build_parser()
    extras = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), re.M))
    checked = 0
    for line, code in indented_shell_blocks():
        for words in shell_commands(code):
            if words[0] == "tfsoftmax":
                parser.parse_args(words[1:])  # exits 2 (fails the test) on a bad option
                checked += 1
            elif words[:2] == ["pip", "install"]:
                (extra,) = re.findall(r"\[(\w+)\]", " ".join(words))
                assert extra in extras, f"README.md line {line}: no extra {extra!r}"
            else:
                pytest.fail(f"README.md line {line}: no check for {' '.join(words)!r}")
    assert checked >= 3


# --- listings --------------------------------------------------------------------------


def subcommand_parsers():
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    return parser, subparsers.choices


def check_synopsis(line, code):
    top, commands = subcommand_parsers()
    parser = None
    for row in code.splitlines():
        words = row.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "tfsoftmax":  # else a continuation of the command above
            parser = top if words[1].startswith("-") else commands[words[1]]
        assert parser is not None, f"README.md line {line}: {row!r}"
        name = parser.prog
        actions = {s: a for a in parser._actions for s in a.option_strings}
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", row):
            assert option in actions, f"README.md line {line}: {name} has no {option}"
        for option, values in re.findall(r"(--[a-z-]+)\s+([\w.]+(?:\|[\w.]+)+)", row):
            choices = {str(c) for c in actions[option].choices}
            assert set(values.split("|")) == choices, f"README.md line {line}: {option}"


def normalised(text):
    """A line with every number made ``#`` and whitespace collapsed."""
    return " ".join(re.sub(r"\d[\d,]*(\.\d+)?(e[+-]?\d+)?", "#", text).split())


def check_compare_output(line, code, real_output):
    printed = {normalised(row) for row in real_output.splitlines()}
    for row in code.splitlines():
        if row.strip() and row.strip() not in ("...", "…"):
            assert normalised(row) in printed, f"README.md: {row!r} is not what compare prints"


def check_bench_table(line, code):
    from tfsoftmax.bench import ROWS

    listed = [m.group(1) for m in re.finditer(r"^\d+\s+([\w-]+)\s+\d", code, re.M)]
    assert listed == list(ROWS[: len(listed)]) and listed, f"README.md line {line}: {listed}"


def check_layout(line, code):
    for row in code.splitlines():
        for path in re.findall(r"(?:tfsoftmax|tests|examples|docs)/[\w./]*", row):
            assert (ROOT / path).exists(), f"README.md line {line}: no {path}"


@pytest.mark.mnist
def test_every_listing_is_true(main_command_run):
    _, _, result = main_command_run
    for line, code in blocks_of(""):
        first = code.lstrip().splitlines()[0]
        if first.startswith("tfsoftmax "):
            check_synopsis(line, code)
        elif "loss curves agree within" in code:
            check_compare_output(line, code, result.stdout)
        elif "s/epoch" in first:
            check_bench_table(line, code)
        elif first.startswith("tfsoftmax/"):
            check_layout(line, code)
        else:
            pytest.fail(f"README.md line {line}: a listing no check recognises: {first!r}")


def test_the_synopsis_check_catches_a_choice_the_parser_refuses():
    with pytest.raises(AssertionError, match="--preset"):
        check_synopsis(1, "tfsoftmax train [--preset notebook|best]\n")
    with pytest.raises(AssertionError, match="no --frobnicate"):
        check_synopsis(1, "tfsoftmax compare [--frobnicate]\n")
