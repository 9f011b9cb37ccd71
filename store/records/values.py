"""A field's value on its way in (JSON from a client → what the column stores, or a refusal naming the field
and value as Salesforce words it) and on its way out (the stored value → JSON-ready: date-times as
`2026-12-02T12:00:00.000+0000`, dates as `2026-12-02`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from casegate.store.database import as_utc
from casegate.store.ids import OBJECT_OF_PREFIX, MalformedId, parse_id
from casegate.store.records.errors import RecordError, integrity, required_missing
from casegate.store.records.policy import RecordPolicy
from casegate.store.records.spec import STRING_TYPES, FieldSpec

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_JSON_TYPE = {"boolean": "boolean", "int": "int", "double": "double", "datetime": "datetime", "date": "date",
              "reference": "reference", "id": "id"}
SHOWN = 40
"""Characters of a refused value a message repeats."""


def coerce(f: FieldSpec, value: object, policy: RecordPolicy) -> object:
    """The value to store for `value` given for field `f`; RecordError when it cannot be."""
    if value is None:
        if f.nillable:
            return None
        if f.type == "picklist":
            raise _bad_pick(f, None)
        raise required_missing([f.name])
    if f.type == "boolean":
        if not isinstance(value, bool):
            raise _parser(f, value)
        return value
    if f.type in ("int", "double"):
        return _number(f, value)
    if not isinstance(value, str):
        raise _parser(f, value)
    if f.type == "datetime":
        return _datetime(f, value)
    if f.type == "date":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _parser(f, value) from None
    if f.type in ("reference", "id"):
        return _reference(f, value)
    return _text(f, value, policy)


def _number(f: FieldSpec, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (f.type == "int" and isinstance(value, float)):
        raise _parser(f, value)
    if (f.minimum is not None and value < f.minimum) or (f.maximum is not None and value > f.maximum):
        raise RecordError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                          f"{f.label}: value outside valid range {f.minimum} to {f.maximum}: {value}", [f.name])
    return value


def _datetime(f: FieldSpec, value: str) -> datetime:
    try:
        if "T" not in value:
            raise ValueError(value)
        at = datetime.fromisoformat(value)
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: off the calendar in UTC (0001-01-01T00:00:00+05:00)
        raise _parser(f, value) from None


def _reference(f: FieldSpec, value: str) -> str:
    """A well-formed id of one of the objects the field refers to (that the record exists is the caller's
    check, in the transaction)."""
    try:
        full = parse_id(value)
    except MalformedId:
        raise RecordError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value[:SHOWN]}",
                          [f.name]) from None
    if f.type == "reference" and OBJECT_OF_PREFIX.get(full[:3]) not in f.reference_to:
        raise integrity(f"{f.label}: id value of incorrect type: {value} (not a {' or '.join(f.reference_to)} id)",
                        [f.name])
    return full


def _text(f: FieldSpec, value: str, policy: RecordPolicy) -> str:
    value = value.replace("\x00", "")  # no text column holds NUL; Salesforce drops it as well
    size = len(value.encode()) if f.in_bytes else len(value)
    if f.length and size > f.length:
        unit = " bytes" if f.in_bytes else ""
        raise RecordError(400, "STRING_TOO_LONG",
                          f"{f.label}: data value too large: {value[:SHOWN]}… (max length={f.length}{unit})", [f.name])
    if f.type == "picklist":
        allowed = policy.picklists[f.picklist] if f.picklist else f.values
        canonical = {v.casefold(): v for v in allowed}.get(value.casefold())
        if canonical is None:
            raise _bad_pick(f, value)
        return canonical
    if f.type == "email" and value:
        value = value.strip()
        if not _EMAIL.fullmatch(value):
            raise RecordError(400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value[:SHOWN]}",
                              [f.name])
    return value


def _bad_pick(f: FieldSpec, value: str | None) -> RecordError:
    shown = "null" if value is None else value[:SHOWN]
    return RecordError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                       f"{f.label}: bad value for restricted picklist field: {shown}", [f.name])


def _parser(f: FieldSpec, value: object) -> RecordError:
    token = ("VALUE_TRUE" if value is True else "VALUE_FALSE" if value is False
             else "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT" if isinstance(value, float)
             else "VALUE_STRING" if isinstance(value, str) else "START_OBJECT" if isinstance(value, dict)
             else "START_ARRAY" if isinstance(value, list) else type(value).__name__)
    kind = "string" if f.type in STRING_TYPES and f.type not in ("reference", "id") else _JSON_TYPE[f.type]
    shown = str(value)[:SHOWN] if not isinstance(value, dict | list) else ("{…}" if isinstance(value, dict) else "[…]")
    return RecordError(400, "JSON_PARSER_ERROR",
                       f"{f.name}: Cannot deserialize instance of {kind} from {token} value {shown}", [f.name])


def to_json(f: FieldSpec, value: object) -> object:
    """A stored value as JSON-ready Python, as Salesforce writes it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        at = as_utc(value)
        return at.replace(tzinfo=None).isoformat(timespec="milliseconds") + "+0000"  # years < 1000 as 0999
    if isinstance(value, date):
        return value.isoformat()
    if f.type == "boolean":
        return bool(value)
    return value


def as_text(f: FieldSpec, value: object) -> str | None:
    """A value as the feed records it (OldValue, NewValue)."""
    out = to_json(f, value)
    if out is None:
        return None
    if isinstance(out, bool):
        return "true" if out else "false"
    return str(out)
