"""The `[case]` section: the values a case's picklists may take (Status with which statuses are closed or
stop the clock, Priority, Type, Reason, Origin), their defaults, what closing a case requires, and which
fields the REST API upserts records by (external ids).

    [case]
    statuses = [{name = "New"}, {name = "Working"}, {name = "On Hold", stops_clock = true},
                {name = "Escalated"}, {name = "Closed", closed = true}]
    default_status = "New"
    priorities = ["High", "Medium", "Low"]
    default_priority = "Medium"
    close_requires = ["Reason", "Resolution"]

The API refuses a value outside these lists (Salesforce's INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST);
`rules.lifecycle.StatusModel.of(settings.case)` is the status model built on them. A setting elsewhere that
names a status (`[rules] reopen_status`) is checked against them at start (`check_statuses`).
"""

from __future__ import annotations

from collections.abc import Mapping

from casegate.config.case_values import CLOSED_STATUSES, DEFAULT_STATUS, OPEN_STATUSES, OptionalPicklist, Picklist
from casegate.config.sections import Section
from pydantic import ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

CLOSE_REQUIRABLE = ("Reason", "Resolution", "Type", "Subject", "Description", "ContactId", "AccountId", "AssetId",
                    "SatisfactionScore", "SatisfactionComment")
"""Case fields `close_requires` may name."""
EXTERNAL_ID_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Contact": ("Email", "Phone", "MobilePhone"), "Account": ("Domain", "Name"), "User": ("Email", "Name"),
    "Queue": ("Name", "Email"), "Asset": ("SerialNumber", "Name")}
"""The fields `external_ids` may name, by object: text fields records can be found by."""


class StatusValue(Section):
    """One Status value (Salesforce's CaseStatus)."""

    name: Picklist
    closed: bool = False
    """A case in this status is closed (IsClosed, ClosedDate) and locked until an admin reopens it."""
    stops_clock: bool = False
    """Entering this status stops the case's clock (IsStopped, StopStartDate), e.g. waiting on the customer."""


DEFAULT_STATUSES = (*(StatusValue(name=s, stops_clock=s == "On Hold") for s in OPEN_STATUSES),
                    *(StatusValue(name=s, closed=True) for s in CLOSED_STATUSES))


class CaseSettings(Section):
    statuses: list[StatusValue] = list(DEFAULT_STATUSES)
    """Status values in order; at least one open and one closed."""
    default_status: Picklist = DEFAULT_STATUS
    """Status of a new case: an open one."""
    merged_status: OptionalPicklist = ""
    """Status a case merged into another takes: a closed one. Empty = the first closed status."""
    priorities: list[Picklist] = ["High", "Medium", "Low"]
    default_priority: Picklist = "Medium"
    types: list[Picklist] = ["Question", "Problem", "Feature Request", "Other"]
    reasons: list[Picklist] = ["Instructions not clear", "Existing problem", "New problem", "Complex functionality",
                               "User didn't attend training", "Other"]
    origins: list[Picklist] = ["Email", "Web", "Phone", "Chat", "SMS", "WhatsApp", "Messenger", "Instagram",
                               "Telegram", "X"]
    default_origin: OptionalPicklist = ""
    """Origin of a case the API creates without one. Empty = none (as Salesforce)."""
    close_requires: list[str] = ["Reason", "Resolution"]
    """Case fields that must have a value for the case to be closed through the API."""
    external_ids: dict[str, list[str]] = {"Contact": ["Email"], "Account": ["Domain"], "User": ["Email"],
                                          "Queue": ["Name"], "Asset": ["SerialNumber"]}
    """Object → the fields the API may upsert it by (`PATCH /sobjects/Contact/Email/ann@example.com`);
    Id always works."""

    @model_validator(mode="after")
    def _consistent(self) -> CaseSettings:
        names = [s.name for s in self.statuses]
        for key, values in (("statuses", names), ("priorities", self.priorities), ("types", self.types),
                            ("reasons", self.reasons), ("origins", self.origins)):
            folded = [v.casefold() for v in values]
            if dupes := sorted({v for v, f in zip(values, folded, strict=True) if folded.count(f) > 1}):
                raise ValueError(f"{key}: listed twice: {', '.join(dupes)}")
        if not any(s.closed for s in self.statuses) or all(s.closed for s in self.statuses):
            raise ValueError("statuses: needs at least one open and one closed status")
        if bad := [s.name for s in self.statuses if s.closed and s.stops_clock]:
            raise ValueError(f"statuses: a closed status does not stop the clock: {', '.join(bad)}")
        check_statuses(self, {("default_status",): self.default_status}, must_be_open=True)
        if self.merged_status:
            check_statuses(self, {("merged_status",): self.merged_status}, must_be_open=False)
        if self.default_priority not in self.priorities:
            raise ValueError(f"default_priority {self.default_priority!r} is not one of priorities")
        if self.default_origin and self.default_origin not in self.origins:
            raise ValueError(f"default_origin {self.default_origin!r} is not one of origins")
        if bad := [f for f in self.close_requires if f not in CLOSE_REQUIRABLE]:
            raise ValueError(f"close_requires: {', '.join(bad)} is not a case field closing can require "
                             f"(one of {', '.join(CLOSE_REQUIRABLE)})")
        for obj, names in self.external_ids.items():
            if obj not in EXTERNAL_ID_FIELDS:
                raise ValueError(f"external_ids: {obj!r} is not an object records are upserted by external id "
                                 f"(one of {', '.join(EXTERNAL_ID_FIELDS)})")
            if bad := [n for n in names if n not in EXTERNAL_ID_FIELDS[obj]]:
                raise ValueError(f"external_ids.{obj}: {', '.join(bad)} is not a field {obj} records can be found by "
                                 f"(one of {', '.join(EXTERNAL_ID_FIELDS[obj])})")
        return self

    @property
    def closed_statuses(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses if s.closed)

    @property
    def open_statuses(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statuses if not s.closed)


def check_statuses(case: CaseSettings, named: Mapping[tuple[str, ...], str], *, must_be_open: bool = True) -> None:
    """A ValidationError naming each key (a path, e.g. `("rules", "reopen_status")`) whose status is not one
    of `case.statuses`, or is closed when it `must_be_open` (open when it must be closed)."""
    problems: list[InitErrorDetails] = []
    for loc, status in named.items():
        reason = _status_problem(case, status, must_be_open)
        if reason is not None:
            problems.append(InitErrorDetails(type=PydanticCustomError("value_error", "Value error, {reason}",
                                                                      {"reason": reason}),
                                             loc=loc, input=status))
    if problems:
        raise ValidationError.from_exception_data("Settings", problems)


def _status_problem(case: CaseSettings, status: str, must_be_open: bool) -> str | None:
    wanted = case.open_statuses if must_be_open else case.closed_statuses
    if status in wanted:
        return None
    known = ", ".join(repr(s) for s in wanted)
    if status in case.closed_statuses:
        return (f"{status!r} is a closed status: a case the customer writes to again, or a new case, must be open "
                f"(one of {known})")
    if status in case.open_statuses:
        return f"{status!r} is an open status; a closed one is needed (one of {known})"
    return f"unknown case status {status!r} (one of {known})"
