"""`python -m triage.cli`: the `triage` command."""

from triage.cli.main import main

raise SystemExit(main())
