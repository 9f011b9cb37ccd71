"""The case status model: which Status values exist, which are closed, which stop the clock, and what a
change implies (IsClosed and ClosedDate follow Status, as Salesforce's CaseStatus.IsClosed does; IsStopped
and StopStartDate follow a status that stops the clock), and what closing needs (`missing_to_close`).

The values are `[case] statuses` (`config.case_settings`): `StatusModel.of(settings.case)`, which the worker
(`store.case_policy.CasePolicy.statuses`) and the REST API (`store.records.RecordPolicy.statuses`) both run on.
The module's functions (`is_closed`, `change_status`) and `DEFAULT_MODEL` are the default values
(`config.case_values`), for callers without settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from casegate.config.case_settings import CaseSettings
from casegate.config.case_values import CLOSED_STATUSES, DEFAULT_STATUS, OPEN_STATUSES

__all__ = ["CLOSED_STATUSES", "DEFAULT_MODEL", "DEFAULT_STATUS", "OPEN_STATUSES", "Clock", "StatusChange",
           "StatusModel", "change_status", "is_closed", "missing_to_close"]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What a status change sets on a case."""

    status: str
    is_closed: bool
    closed_date: datetime | None


@dataclass(frozen=True, slots=True)
class Clock:
    """Whether a case's clock is stopped (IsStopped) and since when (StopStartDate)."""

    is_stopped: bool
    stop_start_date: datetime | None


@dataclass(frozen=True, slots=True)
class StatusModel:
    open: tuple[str, ...]
    closed: tuple[str, ...]
    default: str
    stops_clock: frozenset[str] = frozenset()

    @classmethod
    def of(cls, case: CaseSettings) -> StatusModel:
        return cls(case.open_statuses, case.closed_statuses, case.default_status,
                   frozenset(s.name for s in case.statuses if s.stops_clock))

    @property
    def all(self) -> tuple[str, ...]:
        return self.open + self.closed

    def is_closed(self, status: str) -> bool:
        return status in self.closed

    def change(self, new_status: str, closed_date: datetime | None, now: datetime) -> StatusChange:
        """The fields a case gets when its Status becomes `new_status` (closing stamps ClosedDate,
        keeping one already there; reopening clears it)."""
        if new_status not in self.all:
            raise ValueError(f"unknown case status {new_status!r}")
        closed = self.is_closed(new_status)
        return StatusChange(new_status, closed, (closed_date or now) if closed else None)

    def clock(self, old_status: str | None, new_status: str, clock: Clock, now: datetime) -> Clock:
        """The clock after the Status goes from `old_status` (None: a new case) to `new_status`: entering a
        status that stops it stops it (keeping when it stopped, if it was already); leaving one for a status
        that does not starts it again; other changes leave it as it is."""
        if new_status in self.stops_clock:
            return clock if clock.is_stopped else Clock(True, now)
        if old_status in self.stops_clock:
            return Clock(False, None)
        return clock


DEFAULT_MODEL = StatusModel.of(CaseSettings())


def is_closed(status: str) -> bool:
    return DEFAULT_MODEL.is_closed(status)


def change_status(new_status: str, closed_date: datetime | None, now: datetime) -> StatusChange:
    """`DEFAULT_MODEL.change`: the fields a case gets when its Status becomes `new_status`."""
    return DEFAULT_MODEL.change(new_status, closed_date, now)


def missing_to_close(values: Mapping[str, object], requires: Sequence[str]) -> list[str]:
    """The fields of `requires` (`[case] close_requires`) that have no value in `values` (the case as it
    would be once changed): a closing is refused naming them."""
    return [f for f in requires if _empty(values.get(f))]


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
