"""``python -m tfsoftmax`` is the ``tfsoftmax`` command."""

from tfsoftmax.cli import main

raise SystemExit(main())
