"""`python -m casegate.ingest` is the `casegate` command."""

from casegate.ingest.app.cli import main

main()
