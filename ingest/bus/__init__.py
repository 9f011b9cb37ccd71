"""The bus: one interface (`base.Bus`), two drivers chosen by name (`local`, `kafka`)."""

from __future__ import annotations

from casegate.config import Settings
from casegate.ingest.bus.base import Bus, BusError, BusUnavailable, Consumer, Record

__all__ = ["Bus", "BusError", "BusUnavailable", "Consumer", "Record", "open_bus"]


def open_bus(settings: Settings) -> Bus:
    """The bus driver named by `settings.bus.driver` (not started)."""
    if settings.bus.driver == "local":
        from casegate.ingest.bus.local import LocalBus

        return LocalBus(settings.bus_path, settings.bus.local)
    if settings.bus.driver == "kafka":
        from casegate.ingest.bus.kafka import KafkaBus

        return KafkaBus(settings.bus.kafka)
    raise ValueError(f"unknown bus driver {settings.bus.driver!r}")
