"""sObject collections: up to 200 records created, updated or deleted in one request, each answered
`{"id", "success", "errors"}` (errors as `{"statusCode", "message", "fields"}`).

    POST   composite/sobjects   {"allOrNone", "records": [{"attributes": {"type": "Case"}, …}]}
    PATCH  composite/sobjects   the same, each record with its "id"
    DELETE composite/sobjects?ids=…,…&allOrNone=true

With `allOrNone` the first failure stops the request, what was done is undone (ingest/api/journal.py)
and every other record answers ALL_OR_NONE_OPERATION_ROLLED_BACK; without it each record stands alone.
`Sforce-Auto-Assign` applies to every case created."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from casegate.ingest.api import operations
from casegate.ingest.api.composite import flag
from casegate.ingest.api.context import ApiContext, Call, Outcome
from casegate.ingest.api.errors import ApiError, bad_body
from casegate.ingest.api.journal import Journal
from casegate.ingest.api.operations import object_name, record_id
from casegate.ingest.api.sobjects import auto_assign
from casegate.store.ids import OBJECT_OF_PREFIX

MAX_RECORDS = 200
ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "fields": [],
               "message": "Record rolled back because not all records were valid and the request was using "
                          "AllOrNone header"}


def _records(body: Any) -> tuple[list[dict[str, Any]], bool]:
    items = body.get("records") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise bad_body("records must be a list of sObjects", ["records"])
    if len(items) > MAX_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT",
                       f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call")
    if not all(isinstance(r, dict) for r in items):
        raise bad_body("each of records must be an sObject (a JSON object)", ["records"])
    return items, flag(body, "allOrNone")


def _type_of(record: Mapping[str, Any]) -> str:
    attributes = record.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(name, str):
        raise ApiError(400, "INVALID_TYPE", "Each record needs attributes.type, its sObject type", ["attributes"])
    try:
        return object_name(name)
    except ApiError:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{name[:80]}' is not supported.") from None


async def create_records(ctx: ApiContext, call: Call) -> Outcome:
    items, all_or_none = _records(await call.body())
    assign = auto_assign(call)

    async def one(c: Call, record: dict[str, Any]) -> Outcome:
        return await operations.create(ctx.db, ctx.policy, c, _type_of(record), record, auto_assign=assign)

    return await _each(ctx, call, items, all_or_none, one)


async def update_records(ctx: ApiContext, call: Call) -> Outcome:
    items, all_or_none = _records(await call.body())

    async def one(c: Call, record: dict[str, Any]) -> Outcome:
        obj = _type_of(record)
        given = next((record[k] for k in record if k.lower() == "id"), None)
        if not isinstance(given, str):
            raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        rid = record_id(given, obj)
        fields = {k: v for k, v in record.items() if k.lower() != "id"}
        await operations.update(ctx.db, ctx.policy, c, obj, rid, fields)
        return Outcome(200, operations.saved(rid))

    return await _each(ctx, call, items, all_or_none, one)


async def delete_records(ctx: ApiContext, call: Call) -> Outcome:
    ids = [i for i in call.query.get("ids", "").split(",") if i]
    if not ids:
        raise ApiError(400, "MISSING_ARGUMENT", "ids: a comma-separated list of record Ids is required", ["ids"])
    if len(ids) > MAX_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT",
                       f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call")
    all_or_none = call.query.get("allOrNone", "false").lower() == "true"

    async def one(c: Call, given: str) -> Outcome:
        obj = OBJECT_OF_PREFIX.get(given[:3])
        if obj is None:
            raise ApiError(400, "MALFORMED_ID", f"malformed id {given[:40]}", ["Id"])
        rid = record_id(given, object_name(obj))
        await operations.delete(ctx.db, ctx.policy, c, obj, rid)
        return Outcome(200, operations.saved(rid))

    return await _each(ctx, call, ids, all_or_none, one)


async def _each(ctx: ApiContext, call: Call, items: Sequence[Any], all_or_none: bool,
                one: Callable[[Call, Any], Awaitable[Outcome]]) -> Outcome:
    """Do `one` for each item; the collection's answer: per item {"id", "success", "errors"}."""
    journal = Journal() if all_or_none else None
    inner = replace(call, journal=journal)
    answers: list[dict[str, Any]] = []
    failed: int | None = None
    try:
        for i, item in enumerate(items):
            if journal is not None:
                journal.step = i
            try:
                answers.append((await one(inner, item)).body)
            except ApiError as e:
                answers.append({"success": False, "errors": [e.collection_error()]})
                if journal is not None:
                    failed = i
                    break
        if journal is not None and failed is None and (refused := await journal.run_deferred()) is not None:
            failed, error = refused
            answers[failed] = {"success": False, "errors": [error.collection_error()]}
    except BaseException:
        if journal is not None:
            await journal.undo(ctx.db, call.actor, ctx.policy)
        raise
    if journal is not None and failed is not None:
        await journal.undo(ctx.db, call.actor, ctx.policy)
        answers = [answers[i] if i == failed else {"success": False, "errors": [ROLLED_BACK]}
                   for i in range(len(items))]
    return Outcome(200, answers)
