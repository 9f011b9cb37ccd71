"""The record operations behind the sObject resources — create, read, update, delete, upsert by external
id — each a call of the record layer (casegate.store.records) shaped as Salesforce answers it, shared
by the HTTP resources (ingest/api/sobjects.py), the composite request and sObject collections
(ingest/api/composite.py).

Store refusals (`RecordError`) keep their status and errorCode; an id that is none becomes
MALFORMED_ID (400) when it has an id's shape and NOT_FOUND (404) otherwise, as Salesforce answers; a
case store that cannot be reached is 503 SERVER_UNAVAILABLE, for the client to retry. Field values
must be JSON scalars: an object or array where a value belongs is a 400 naming the field (Salesforce's
JSON_PARSER_ERROR), before the store sees it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from casegate.ingest.api.context import Call, Outcome
from casegate.ingest.api.errors import ApiError, bad_body, not_found, unavailable
from casegate.rules.access import Actor
from casegate.store import records
from casegate.store.database import Database
from casegate.store.ids import MalformedId, parse_id
from casegate.store.records import RecordError, RecordPolicy
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = structlog.get_logger("casegate.api")
_ID_SHAPE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
_OBJECTS = {name.lower(): name for name in records.OBJECTS}
UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError, TimeoutError)
"""What a case store that cannot be reached (or is busy past its timeout) raises: 503, retry."""
MAX_FIELDS_LISTED = 500
"""Names in one `?fields=` list."""


@contextmanager
def store_errors() -> Iterator[None]:
    """Store refusals as the API's errors; a store that cannot be reached as 503."""
    try:
        yield
    except RecordError as e:
        raise ApiError(e.status, e.code, e.message, e.fields) from None
    except MalformedId as e:
        raise ApiError(400, "MALFORMED_ID", str(e), ["Id"]) from None
    except UNREACHABLE as e:
        log.warning("api.store_unavailable", error=f"{type(e).__name__}: {str(e)[:300]}")
        raise unavailable() from None


def object_name(name: str) -> str:
    """The object's API name (the URL may spell it in any case); 404 NOT_FOUND for one we do not have."""
    found = _OBJECTS.get(name.lower())
    if found is None:
        raise not_found()
    return found


def record_id(value: str, obj: str) -> str:
    """The stored form of an id in a URL: 400 MALFORMED_ID for an id of another object, 404 for text that
    is no id at all (Salesforce reads it as an external id it cannot find)."""
    if not _ID_SHAPE.fullmatch(value):
        raise not_found(f"Provided external ID field does not exist or is not accessible: {value[:80]}")
    try:
        return parse_id(value, obj)
    except MalformedId as e:
        raise ApiError(400, "MALFORMED_ID", str(e), ["Id"]) from None


def sobject_url(base: str, obj: str, rid: str) -> str:
    return f"{base}/sobjects/{obj}/{rid}"


def fields_of(body: Mapping[str, Any]) -> dict[str, object]:
    """The fields of an sObject body: `attributes` dropped; every value a JSON scalar."""
    fields: dict[str, object] = {}
    for name, value in body.items():
        if name == "attributes":
            continue
        if isinstance(value, dict | list):
            kind = "object" if isinstance(value, dict) else "array"
            raise bad_body(f"Cannot deserialize instance of {name[:80]} from {kind} value", [name[:255]])
        fields[name] = value
    return fields


def fields_param(call: Call) -> list[str] | None:
    """The `?fields=` list of a read, or None for every field."""
    raw = call.query.get("fields")
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if len(names) > MAX_FIELDS_LISTED:
        raise ApiError(400, "INVALID_FIELD", f"At most {MAX_FIELDS_LISTED} fields may be listed", ["fields"])
    return names


def saved(rid: str, **extra: object) -> dict[str, object]:
    return {"id": rid, "success": True, "errors": [], **extra}


async def create(db: Database, policy: RecordPolicy, call: Call, obj: str, body: Mapping[str, Any], *,
                 auto_assign: bool = True) -> Outcome:
    if any(name.lower() == "id" for name in body):
        raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
    fields = fields_of(body)
    with store_errors():
        rid = await records.create(db, obj, fields, call.actor, auto_assign=auto_assign, policy=policy)
    if call.journal is not None:
        call.journal.made(obj, rid)
    return Outcome(201, saved(rid), {"Location": sobject_url(call.base, obj, rid)})


async def read(db: Database, call: Call, obj: str, rid: str, fields: list[str] | None = None) -> Outcome:
    with store_errors():
        values = await records.read(db, obj, rid, fields)
    return Outcome(200, {"attributes": {"type": obj, "url": sobject_url(call.base, obj, rid)}, **values})


async def update(db: Database, policy: RecordPolicy, call: Call, obj: str, rid: str, body: Mapping[str, Any]
                 ) -> Outcome:
    fields = fields_of(body)
    with store_errors():
        if call.journal is not None and fields:
            before = await records.read(db, obj, rid, list(fields))
            await records.update(db, obj, rid, fields, call.actor, policy=policy)
            call.journal.changed(obj, rid, {k: v for k, v in before.items() if k not in ("Id", "attributes")})
        else:
            await records.update(db, obj, rid, fields, call.actor, policy=policy)
    return Outcome(204)


async def delete(db: Database, policy: RecordPolicy, call: Call, obj: str, rid: str) -> Outcome:
    if call.journal is not None:  # all or none: checked now, done once everything else succeeded
        with store_errors():
            await records.read(db, obj, rid, ["Id"])
        call.journal.defer(lambda: _delete(db, obj, rid, call.actor, policy))
        return Outcome(204)
    await _delete(db, obj, rid, call.actor, policy)
    return Outcome(204)


async def _delete(db: Database, obj: str, rid: str, actor: Actor, policy: RecordPolicy) -> None:
    with store_errors():
        await records.delete(db, obj, rid, actor, policy=policy)


async def upsert(db: Database, policy: RecordPolicy, call: Call, obj: str, ext_field: str, value: str,
                 body: Mapping[str, Any], *, auto_assign: bool = True) -> Outcome:
    """Create or update the record whose `ext_field` is `value`: 201 created, 200 updated, 300 when
    several records have it (the body lists their URLs). Within an all-or-none request a record it
    created is deleted on undo; one it updated keeps the update (which record that would be is only
    known once it is done)."""
    fields = fields_of(body)
    with store_errors():
        try:
            rid, created = await records.upsert(db, obj, ext_field, value, fields, call.actor, policy=policy,
                                                 auto_assign=auto_assign)
        except RecordError as e:
            if e.status != 300:
                raise
            raise ApiError(300, e.code, e.message, e.fields,
                           content=[sobject_url(call.base, obj, i) for i in e.ids]) from None
    if not created:
        return Outcome(200, saved(rid, created=False))
    if call.journal is not None:
        call.journal.made(obj, rid)
    return Outcome(201, saved(rid, created=True), {"Location": sobject_url(call.base, obj, rid)})
