"""`python -m ingest` is the `casegate` command."""

from ingest.cli import main

main()
