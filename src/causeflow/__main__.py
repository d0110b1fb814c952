"""`python -m causeflow` runs the CLI."""

from causeflow.cli import main

main()
