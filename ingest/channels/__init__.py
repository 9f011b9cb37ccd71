"""Channel adapters: each turns one way customers reach support into envelopes on the bus, and
acknowledges upstream only after the bus confirmed the write."""
