"""``python -m tfsoftmax`` is the ``tfsoftmax`` command.

The guard keeps an import of this module (``pytest --doctest-modules``, tools
that import every module) from running the command.
"""

from tfsoftmax.cli import entry_point

if __name__ == "__main__":
    raise SystemExit(entry_point())
