"""Subcommands of the `press-cell` command, one module each (`add_arguments`, `run`)."""
