"""The sObject resources: the global describe (`sobjects`), an object's basic information and describe,
and one record by Id (GET with `?fields=`, PATCH, DELETE) or by external id (PATCH: upsert). Each is
`(ctx, call) -> Outcome`; ingest/api/routes.py maps the resource paths to them.

    GET    sobjects                              every object: name, label, keyPrefix, urls
    GET    sobjects/{obj}                        {"objectDescribe": …, "recentItems": []}
    POST   sobjects/{obj}                        201 {"id", "success": true, "errors": []}; honours Sforce-Auto-Assign
    GET    sobjects/{obj}/describe               the object's fields, as the record layer describes them
    GET    sobjects/{obj}/{id}[?fields=A,B]      the record with "attributes": {"type", "url"}
    PATCH  sobjects/{obj}/{id}                   204
    DELETE sobjects/{obj}/{id}                   204
    PATCH  sobjects/{obj}/{field}/{value}        upsert: 201 created / 200 updated / 300 several match
"""

from __future__ import annotations

from typing import Any

from casegate.ingest.api import operations
from casegate.ingest.api.context import ApiContext, Call, Outcome
from casegate.ingest.api.errors import bad_body
from casegate.ingest.api.operations import object_name, record_id
from casegate.store import records
from casegate.store.ids import PREFIX

MAX_BATCH_SIZE = 200


def urls(base: str, obj: str) -> dict[str, str]:
    sobject = f"{base}/sobjects/{obj}"
    return {"sobject": sobject, "describe": f"{sobject}/describe", "rowTemplate": f"{sobject}/{{ID}}"}


def basic(ctx: ApiContext, base: str, obj: str) -> dict[str, Any]:
    """What the global describe says of one object."""
    d = records.describe(obj, ctx.policy)
    return {
        "name": obj,
        "label": d.get("label", obj),
        "labelPlural": d.get("labelPlural", obj),
        "keyPrefix": d.get("keyPrefix", PREFIX.get(obj)),
        "custom": False,
        "createable": d.get("createable", True),
        "updateable": d.get("updateable", True),
        "deletable": d.get("deletable", True),
        "queryable": d.get("queryable", True),
        "retrieveable": d.get("retrieveable", True),
        "searchable": False,
        "layoutable": False,
        "urls": urls(base, obj),
    }


async def global_describe(ctx: ApiContext, call: Call) -> Outcome:
    objects = [basic(ctx, call.base, obj) for obj in sorted(records.OBJECTS)]
    return Outcome(200, {"encoding": "UTF-8", "maxBatchSize": MAX_BATCH_SIZE, "sobjects": objects})


async def basic_info(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    return Outcome(200, {"objectDescribe": basic(ctx, call.base, obj), "recentItems": []})


async def describe(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    return Outcome(200, {**records.describe(obj, ctx.policy), "name": obj, "urls": urls(call.base, obj)})


def auto_assign(call: Call) -> bool:
    """`Sforce-Auto-Assign: FALSE` turns assignment rules off for a create; TRUE, an assignment rule's
    Id (casegate has one set of rules) or nothing leaves them on."""
    return call.headers.get("Sforce-Auto-Assign", "TRUE").strip().upper() != "FALSE"


async def create(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    body = await object_body(call)
    return await operations.create(ctx.db, ctx.policy, call, obj, body, auto_assign=auto_assign(call))


async def read(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    rid = record_id(call.segments[2], obj)
    return await operations.read(ctx.db, call, obj, rid, operations.fields_param(call))


async def update(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    rid = record_id(call.segments[2], obj)
    return await operations.update(ctx.db, ctx.policy, call, obj, rid, await object_body(call))


async def delete(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    rid = record_id(call.segments[2], obj)
    return await operations.delete(ctx.db, ctx.policy, call, obj, rid)


async def upsert(ctx: ApiContext, call: Call) -> Outcome:
    obj = object_name(call.segments[1])
    _, _, ext_field, value = call.segments
    return await operations.upsert(ctx.db, ctx.policy, call, obj, ext_field, value, await object_body(call),
                                   auto_assign=auto_assign(call))


async def object_body(call: Call) -> dict[str, Any]:
    """The call's body, which must be a JSON object (an sObject's fields)."""
    body = await call.body()
    if not isinstance(body, dict):
        raise bad_body("Expected a JSON object of field names and values")
    return body
