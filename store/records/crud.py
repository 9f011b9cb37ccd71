"""The record layer's calls: create, read, update and delete one record of an object by its API name, each
one transaction (a refusal writes nothing). The body is checked against the object's fields before the
store is touched; what needs the store (the record, references, access) is checked inside the
transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from casegate.rules.access import Actor
from casegate.store.database import Database
from casegate.store.ids import MalformedId, parse_id
from casegate.store.models import Contact
from casegate.store.records.body import parse_body
from casegate.store.records.call import Call, Feed, ensure_node
from casegate.store.records.errors import RecordError, no_such_column, not_found
from casegate.store.records.handlers import HANDLERS
from casegate.store.records.objects import object_named
from casegate.store.records.policy import DEFAULT_POLICY, RecordPolicy
from casegate.store.records.spec import FieldSpec, ObjectSpec
from casegate.store.records.values import to_json
from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

T = TypeVar("T")


def object_spec(obj: str) -> ObjectSpec:
    """The object named `obj` (any letter case); INVALID_TYPE (404) for one the API does not serve."""
    spec = object_named(obj)
    if spec is None:
        raise RecordError(404, "INVALID_TYPE", f"sObject type '{obj}' is not supported.")
    return spec


def record_id_of(spec: ObjectSpec, value: str) -> str:
    """The stored form of an id of `spec` a client sent; MALFORMED_ID (400, fields ["Id"]) otherwise."""
    try:
        return parse_id(value, spec.name)
    except MalformedId as e:
        message = str(e) if str(e).startswith(spec.name) else f"{spec.label} ID: {e}"
        raise RecordError(400, "MALFORMED_ID", message, ["Id"]) from None


async def write(db: Database, actor: Actor, now: datetime | None, policy: RecordPolicy | None,
                fn: Callable[[Call], T]) -> T:
    """`fn` on a Call in one transaction; the feed entries it made are written at its end."""
    await ensure_node(db)
    at = now or datetime.now(UTC)

    def run(conn: Connection) -> T:
        call = Call(conn, actor, at, policy or DEFAULT_POLICY, Feed(at, actor.user_id))
        out = fn(call)
        call.feed.flush(conn)
        return out

    try:
        return await db.transaction(run)
    except IntegrityError as e:  # a concurrent write took a value, or deleted a record, a check had just seen
        raise RecordError(400, "FIELD_INTEGRITY_EXCEPTION",
                          "the change conflicts with one made at the same time (a unique value taken, or a record "
                          f"it names deleted): {type(e.orig).__name__}; try again") from None


async def create(db: Database, obj: str, fields: Mapping[str, object], actor: Actor, *, auto_assign: bool = True,
                 now: datetime | None = None, policy: RecordPolicy | None = None) -> str:
    """A new record of `obj` from `fields` (API names); its 18-character Id. `auto_assign` False: a new
    case is owned by `actor` instead of the assignment rules' choice (REST `Sforce-Auto-Assign: FALSE`)."""
    spec = object_spec(obj)
    values = parse_body(spec, fields, "create", policy or DEFAULT_POLICY)
    return await write(db, actor, now, policy, lambda call: HANDLERS[spec.name].create(call, values, auto_assign))


async def update(db: Database, obj: str, record_id: str, fields: Mapping[str, object], actor: Actor, *,
                 now: datetime | None = None, policy: RecordPolicy | None = None) -> None:
    spec = object_spec(obj)
    rid = record_id_of(spec, record_id)
    values = parse_body(spec, fields, "update", policy or DEFAULT_POLICY)

    def go(call: Call) -> None:
        HANDLERS[spec.name].update(call, call.row(spec, rid, lock=True), values)

    await write(db, actor, now, policy, go)


async def delete(db: Database, obj: str, record_id: str, actor: Actor, *, now: datetime | None = None,
                 policy: RecordPolicy | None = None) -> None:
    spec = object_spec(obj)
    rid = record_id_of(spec, record_id)
    await write(db, actor, now, policy, lambda call: HANDLERS[spec.name].delete(call, call.row(spec, rid, lock=True)))


async def read(db: Database, obj: str, record_id: str, fields: Sequence[str] | None = None) -> dict[str, object]:
    """The record's fields by API name as JSON-ready values (no "attributes"): every field, or `fields`
    and Id. Everyone with a token reads everything (`rules.access`)."""
    spec = object_spec(obj)
    rid = record_id_of(spec, record_id)
    wanted = _wanted(spec, fields)

    def go(conn: Connection) -> dict[str, object]:
        row = conn.execute(select(spec.table).where(spec.table.c.Id == rid)).mappings().first()
        if row is None:
            raise not_found()
        return {f.name: to_json(f, _value(conn, spec, f, row)) for f in wanted}

    return await db.read(go)  # on SQLite: a snapshot that never waits for the writer


def _wanted(spec: ObjectSpec, fields: Sequence[str] | None) -> list[FieldSpec]:
    if fields is None:
        return list(spec.fields.values())
    out: list[FieldSpec] = []
    for name in fields:
        f = spec.field(name.strip())
        if f is None:
            raise no_such_column(name.strip(), spec.name)
        if f not in out:
            out.append(f)
    if spec.fields["Id"] not in out:
        out.append(spec.fields["Id"])
    return out


def _value(conn: Connection, spec: ObjectSpec, f: FieldSpec, row: RowMapping) -> object:
    """A column's value, or what a derived field is computed from."""
    if f.column is not None:
        return row[f.column]
    if f.name == "IsDeleted":
        return False
    if f.name == "SystemModstamp":
        return row.get("LastModifiedDate") or row["CreatedDate"]
    if f.name == "Name" and spec.name == "Contact":
        return " ".join(p for p in (row["FirstName"], row["LastName"]) if p)
    if f.name.startswith("Contact") and spec.name == "Case":
        column = {"ContactEmail": Contact.Email, "ContactPhone": Contact.Phone, "ContactMobile": Contact.MobilePhone}
        if row["ContactId"] is None:
            return None
        return conn.execute(select(column[f.name]).where(Contact.Id == row["ContactId"])).scalar_one_or_none()
    raise RuntimeError(f"records: no value for derived field {spec.name}.{f.name}")
