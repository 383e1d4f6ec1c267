"""The `triage` command: the operator's layer, one module per command group."""
