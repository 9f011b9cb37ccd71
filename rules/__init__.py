"""Pure decision logic (no I/O): case lifecycle and assignment. Inputs are plain values, outputs are
decisions that the store applies and records."""
