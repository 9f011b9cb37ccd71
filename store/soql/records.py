"""Rows → records shaped as Salesforce's REST API gives them: `attributes` (type and URL), then the
selected fields by API name; a parent as a nested record (null when there is none); a child subquery as
`{"totalSize", "done", "records"}` (null when it found nothing); date-times as `2026-11-27T09:00:00.000+0000`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from casegate.store.database import as_utc
from casegate.store.soql.plan import AggregateColumn, ChildEntry, FieldEntry, ParentEntry, Shape, ValueKind

AGGREGATE_TYPE = "AggregateResult"
ChildResults = Mapping[str, Mapping[str, dict[str, Any]]]
"""Relationship name → parent Id → that parent's child result."""


def record(row: Sequence[Any], shape: Shape, base_url: str, children: ChildResults | None = None
           ) -> dict[str, Any] | None:
    """The record `shape` cuts from `row`; None when its Id is null (a missing parent)."""
    record_id = row[shape.id_index]
    if record_id is None:
        return None
    url_type = shape.url_type if shape.url_type_index is None else row[shape.url_type_index]
    out: dict[str, Any] = {"attributes": {"type": shape.type, "url": f"{base_url}/sobjects/{url_type}/{record_id}"}}
    for entry in shape.entries:
        if isinstance(entry, FieldEntry):
            out[entry.name] = value(row[entry.index], entry.kind)
        elif isinstance(entry, ParentEntry):
            out[entry.name] = record(row, entry.shape, base_url)
        elif isinstance(entry, ChildEntry):
            out[entry.name] = (children or {}).get(entry.name, {}).get(record_id)
    return out


def aggregate_record(row: Sequence[Any], columns: Sequence[AggregateColumn]) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": AGGREGATE_TYPE}}
    for c in columns:
        out[c.name] = value(row[c.index], c.kind)
    return out


def child_result(records: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {"totalSize": total, "done": len(records) >= total, "records": records}


def value(v: Any, kind: ValueKind) -> Any:
    """A column's value as JSON-ready Python: Salesforce's date-time text, booleans, ints, floats."""
    if v is None:
        return None
    if kind == "datetime" and isinstance(v, datetime):
        at = as_utc(v)
        return at.replace(tzinfo=None).isoformat(timespec="milliseconds") + "+0000"  # years < 1000 as 0999
    if kind == "boolean":
        return bool(v)
    if kind == "int":
        return int(v)
    if kind == "number":
        return float(v) if isinstance(v, Decimal | int | float) else v
    return v
