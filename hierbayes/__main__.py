"""``python -m hierbayes``: the command line (see :mod:`hierbayes.cli`)."""

from .cli import main

raise SystemExit(main())
