"""Upsert by external id (`PATCH /sobjects/Contact/Email/ann@example.com`): the record whose external-id
field has the value is updated, or one is created with it; several such records → 300 with their Ids.

The external-id fields are `[case] external_ids` (RecordPolicy.external_ids); Id always works (and then
only updates: an Id names a record that exists or none). Emails match in any letter case (a contact's by
its EmailKey). In one transaction: on SQLite two upserts of the same value never both create; on
PostgreSQL they can, as two creates can (nothing in the schema makes a contact's email unique)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from casegate.rules.access import Actor
from casegate.store.contact_resolver import email_key
from casegate.store.database import Database
from casegate.store.models import Contact
from casegate.store.records.body import parse_body
from casegate.store.records.call import Call
from casegate.store.records.crud import object_spec, record_id_of, write
from casegate.store.records.errors import RecordError, invalid_field, not_found
from casegate.store.records.handlers import HANDLERS
from casegate.store.records.policy import DEFAULT_POLICY, RecordPolicy
from casegate.store.records.spec import FieldSpec, ObjectSpec
from sqlalchemy import ColumnElement, false, func, select


async def upsert(db: Database, obj: str, ext_field: str, value: str, fields: Mapping[str, object], actor: Actor, *,
                 now: datetime | None = None, policy: RecordPolicy | None = None,
                 auto_assign: bool = True) -> tuple[str, bool]:
    """(Id, created): the record of `obj` whose `ext_field` is `value` updated with `fields`, or created."""
    spec = object_spec(obj)
    rules = policy or DEFAULT_POLICY
    f = spec.field(ext_field)
    if f is None or (f.name != "Id" and f.name not in rules.external_ids.get(spec.name, ())):
        raise RecordError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                                            f"{ext_field}")
    if f.name == "Id":
        return await _by_id(db, spec, value, fields, actor, now, policy), False
    value = value.replace("\x00", "")  # as a text field stores it (values._text); PostgreSQL refuses NUL in text
    body = _without(spec, f, value, fields)
    handler = HANDLERS[spec.name]

    def go(call: Call) -> tuple[str, bool]:
        found = list(call.conn.execute(select(spec.table.c.Id).where(_matches(spec, f, value))).scalars())
        if len(found) > 1:
            raise RecordError(300, "MULTIPLE_CHOICES",
                              f"{f.name} {value!r} matches {len(found)} {spec.label_plural}: {', '.join(found)}",
                              [f.name], ids=found)
        if found:
            handler.update(call, call.row(spec, found[0], lock=True), parse_body(spec, body, "update", rules))
            return found[0], False
        values = parse_body(spec, {**body, f.name: value}, "create", rules)
        return handler.create(call, values, auto_assign), True

    return await write(db, actor, now, policy, go)


async def _by_id(db: Database, spec: ObjectSpec, value: str, fields: Mapping[str, object], actor: Actor,
                 now: datetime | None, policy: RecordPolicy | None) -> str:
    rid = record_id_of(spec, value)
    values = parse_body(spec, fields, "update", policy or DEFAULT_POLICY)

    def go(call: Call) -> str:
        row = call.find(spec, rid, lock=True)
        if row is None:
            raise not_found()
        HANDLERS[spec.name].update(call, row, values)
        return rid

    return await write(db, actor, now, policy, go)


def _without(spec: ObjectSpec, f: FieldSpec, value: str, fields: Mapping[str, object]) -> dict[str, object]:
    """The body without the external-id field, which may repeat the URL's value but not differ from it."""
    out: dict[str, object] = {}
    for key, given in fields.items():
        if spec.field(key) is not f:
            out[key] = given
        elif not isinstance(given, str) or _key(f, given) != _key(f, value):
            raise invalid_field(f"{f.name} in the body ({str(given)[:40]}) differs from the external id in the URL "
                                f"({value[:40]})", [f.name])
    return out


def _key(f: FieldSpec, value: str) -> str:
    return value.strip().lower() if f.type == "email" else value


def _matches(spec: ObjectSpec, f: FieldSpec, value: str) -> ColumnElement[bool]:
    if spec.name == "Contact" and f.name == "Email":
        key = email_key(value)
        return Contact.EmailKey == key if key else false()
    column = spec.table.c[f.name]
    if f.type == "email":
        return func.lower(column) == value.strip().lower()
    return column == value
