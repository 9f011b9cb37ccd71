"""The case status model: closing stamps ClosedDate (keeping one already there), reopening clears it,
an unknown status is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casegate.rules.lifecycle import (
    CLOSED_STATUSES,
    DEFAULT_STATUS,
    OPEN_STATUSES,
    StatusChange,
    change_status,
    is_closed,
)

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)


def test_new_cases_start_open() -> None:
    assert DEFAULT_STATUS == "New" and DEFAULT_STATUS in OPEN_STATUSES and not is_closed(DEFAULT_STATUS)


def test_status_values() -> None:
    assert set(OPEN_STATUSES) == {"New", "Working", "On Hold", "Escalated"}
    assert CLOSED_STATUSES == ("Closed",) and is_closed("Closed")
    assert not set(OPEN_STATUSES) & set(CLOSED_STATUSES)


def test_closing_stamps_closed_date() -> None:
    assert change_status("Closed", None, NOW) == StatusChange("Closed", True, NOW)


def test_closing_keeps_an_existing_closed_date() -> None:
    assert change_status("Closed", EARLIER, NOW) == StatusChange("Closed", True, EARLIER)


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_reopening_clears_closed_date(status: str) -> None:
    assert change_status(status, EARLIER, NOW) == StatusChange(status, False, None)


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_open_to_open_has_no_closed_date(status: str) -> None:
    assert change_status(status, None, NOW) == StatusChange(status, False, None)


@pytest.mark.parametrize("status", ["Bogus", "closed", "", "New "])
def test_unknown_status_raises(status: str) -> None:
    with pytest.raises(ValueError, match="unknown case status"):
        change_status(status, None, NOW)
