"""The process around the flow: the daemon and its supervisor, the `casegate` command, logging, health."""
