"""A create's or update's body checked against the object's fields before anything is read or written:
unknown fields, fields a client may not write, an Id in the body, then each value (`values.coerce`).
Gives the values to store by API name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from casegate.store.records.errors import RecordError, invalid_field, no_such_column, not_for_type
from casegate.store.records.policy import RecordPolicy
from casegate.store.records.spec import FieldSpec, ObjectSpec
from casegate.store.records.values import coerce

Mode = Literal["create", "update"]
ID_IN_BODY = "The Id field should not be specified in the sobject data."


def parse_body(obj: ObjectSpec, body: Mapping[str, object], mode: Mode, policy: RecordPolicy) -> dict[str, object]:
    """The values of `body` to store, by API name; RecordError for the first thing wrong with it."""
    if not isinstance(body, Mapping):
        raise RecordError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {obj.name} from a "
                          f"{type(body).__name__}: the body must be a JSON object")
    if mode == "create" and not obj.createable:
        raise not_for_type(f"entity type cannot be inserted: {obj.name}")
    if mode == "update" and not obj.updateable:
        raise not_for_type(f"entity type cannot be updated: {obj.name}")
    named: dict[str, tuple[FieldSpec, object]] = {}
    for key, value in body.items():
        if key == "attributes" and isinstance(value, Mapping):  # {"type": "Case"}, as clients may send
            continue
        f = obj.field(key)
        if f is None:
            raise no_such_column(key, obj.name)
        if f.name in named:
            raise RecordError(400, "JSON_PARSER_ERROR", f"Duplicate field in the body: {f.name}", [f.name])
        named[f.name] = (f, value)
    if "Id" in named:
        raise invalid_field(ID_IN_BODY, ["Id"])
    locked = [f.name for f, _ in named.values() if not (f.createable if mode == "create" else f.updateable)]
    if locked:
        raise RecordError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to {mode} fields: {', '.join(locked)}. Please check the security settings of "
                          "this field and verify that it is read/write for your profile or permission set.", locked)
    return {name: coerce(f, value, policy) for name, (f, value) in named.items()}


def missing_required(obj: ObjectSpec, values: Mapping[str, object]) -> list[str]:
    """The fields a create must give that `values` leaves empty."""
    return [f.name for f in obj.fields.values() if f.required and values.get(f.name) in (None, "")]
