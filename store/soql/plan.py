"""A translated query: the SQLAlchemy statements to run and how to cut Salesforce records out of their
rows. Plain frozen values; `run` executes them and `records` shapes the rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select

ValueKind = Literal["id", "string", "boolean", "datetime", "int", "number"]


@dataclass(frozen=True, slots=True)
class FieldEntry:
    """A field of the record: its API name and the row column it is read from."""

    name: str
    index: int
    kind: ValueKind


@dataclass(frozen=True, slots=True)
class ParentEntry:
    """A parent record nested under its relationship name (`"Contact": {...}`), null when missing."""

    name: str
    shape: Shape


@dataclass(frozen=True, slots=True)
class ChildEntry:
    """A child relationship (`"CaseComments": {"totalSize", "done", "records"}`), null when empty."""

    name: str
    plan: ChildPlan


Entry = FieldEntry | ParentEntry | ChildEntry


@dataclass(frozen=True, slots=True)
class Shape:
    """How one record is cut from a row: `attributes` (type and URL, which needs the Id) then entries."""

    type: str
    """`attributes.type`: the object's name, or `Name` for a polymorphic parent."""
    id_index: int
    url_type: str | None
    """The object named in the record's URL; None when the row says it (a polymorphic parent)."""
    url_type_index: int | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """The rows of one child subquery for a page of parents: `statement` takes the parents' Ids as the
    expanding parameter `parent_ids` and gives, after the shaped columns, the parent's Id, the row's
    number among its parent's children and how many the parent has."""

    relationship: str
    statement: Select[Any]
    shape: Shape
    parent_index: int
    total_index: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class AggregateColumn:
    name: str
    """The alias, the grouped field's name, or Salesforce's `expr0`, `expr1` ... for unnamed aggregates."""
    index: int
    kind: ValueKind


@dataclass(frozen=True, slots=True)
class Plan:
    """What `run` executes for one query."""

    kind: Literal["records", "aggregate", "count"]
    object: str
    statement: Select[Any]
    """The rows in order, without LIMIT/OFFSET (run pages them); for `count`, the count itself."""
    count_statement: Select[Any]
    """How many rows (or groups) match, before LIMIT and OFFSET."""
    shape: Shape | None = None
    columns: tuple[AggregateColumn, ...] = ()
    limit: int | None = None
    offset: int = 0
    include_deleted: bool = False
    """queryAll: deleted records too (the store keeps no deleted records yet, so the same rows)."""
