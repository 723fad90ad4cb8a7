"""``python -m hierbayes``: the command line (see :mod:`hierbayes.cli`)."""

from hierbayes.cli import main

raise SystemExit(main())
