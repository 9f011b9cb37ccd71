"""The parsed query: plain frozen values, names exactly as written (resolving them against the store's
objects is `translate`'s job), each with the position it was written at for error messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from casegate.store.soql.errors import Position


@dataclass(frozen=True, slots=True)
class FieldPath:
    """`Status`, `Contact.Email`, `Contact.Account.Name`: relationship names, then the field."""

    parts: tuple[str, ...]
    position: Position

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Call:
    """`COUNT(Id)`, `COUNT()`, `FIELDS(ALL)`, `toLabel(Status)`: a function as written (checked later)."""

    name: str
    args: tuple[FieldPath | Call, ...]
    position: Position

    @property
    def text(self) -> str:
        return f"{self.name}({', '.join(a.text for a in self.args)})"


# -- values -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class String:
    value: str
    """With every escape resolved (`\\%` and `\\_` as plain `%` and `_`)."""
    like_pattern: str
    """The same as a LIKE pattern whose escape character is a backslash: `%` and `_` are wildcards
    unless escaped in the query, and a literal backslash is doubled."""
    like_only: bool = False
    """It uses `\\%` or `\\_`, escapes only a LIKE pattern may use."""


@dataclass(frozen=True, slots=True)
class Number:
    value: int | Decimal


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool


@dataclass(frozen=True, slots=True)
class Null:
    pass


@dataclass(frozen=True, slots=True)
class DateValue:
    """`2026-01-01`: a calendar day (in UTC)."""

    value: date


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """`2026-01-01T09:00:00Z` or with an offset: an instant (time zone aware)."""

    value: datetime


@dataclass(frozen=True, slots=True)
class DateLiteral:
    """`TODAY`, `LAST_N_DAYS:30`: a range of days relative to `now`, evaluated by `translate`."""

    name: str
    n: int | None
    position: Position


Value = String | Number | Boolean | Null | DateValue | DateTimeValue | DateLiteral


@dataclass(frozen=True, slots=True)
class Literal:
    """A value and where it was written."""

    value: Value
    position: Position


# -- conditions -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op value`; op is one of = != < > <= >= LIKE IN NOT_IN INCLUDES EXCLUDES (`<>` is `!=`)."""

    left: FieldPath | Call
    op: str
    values: tuple[Literal, ...]
    """One value, or the list of IN / NOT IN / INCLUDES / EXCLUDES."""
    position: Position


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Comparison | And | Or | Not


# -- the query --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SelectItem:
    """One entry of the field list: a field, a function (aggregate, FIELDS(), COUNT()) or a subquery."""

    expr: FieldPath | Call | Query
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class OrderItem:
    expr: FieldPath | Call
    descending: bool
    nulls_first: bool | None
    """None: Salesforce's default (first when ascending, last when descending)."""


@dataclass(frozen=True, slots=True)
class Query:
    """A SELECT, the top-level one or a child subquery (`FROM` then names a child relationship)."""

    select: tuple[SelectItem, ...]
    object: str
    object_position: Position
    where: Condition | None = None
    group_by: tuple[FieldPath | Call, ...] = ()
    having: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    source: str = ""
    """The query text (for messages that show where the mistake is)."""
