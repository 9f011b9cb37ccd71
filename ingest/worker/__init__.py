"""The worker role: consume the bus into the case store, and deliver the outbox."""
