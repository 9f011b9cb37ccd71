"""The case status model: which Status values exist, which are closed, and what a change implies
(IsClosed and ClosedDate follow Status, as Salesforce's CaseStatus.IsClosed does). The names themselves
are in `config.case_values`, so that settings naming a status are checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casegate.config.case_values import CLOSED_STATUSES, DEFAULT_STATUS, OPEN_STATUSES

__all__ = ["CLOSED_STATUSES", "DEFAULT_STATUS", "OPEN_STATUSES", "StatusChange", "change_status", "is_closed"]


def is_closed(status: str) -> bool:
    return status in CLOSED_STATUSES


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What a status change sets on a case."""

    status: str
    is_closed: bool
    closed_date: datetime | None


def change_status(new_status: str, closed_date: datetime | None, now: datetime) -> StatusChange:
    """The fields a case gets when its Status becomes `new_status` (closing stamps ClosedDate,
    reopening clears it)."""
    if new_status not in OPEN_STATUSES + CLOSED_STATUSES:
        raise ValueError(f"unknown case status {new_status!r}")
    closed = is_closed(new_status)
    return StatusChange(new_status, closed, (closed_date or now) if closed else None)
