"""The resources under `/services/data/vNN.N/`, as one table from path pattern to method to handler, and
`dispatch`, which finds a call's handler in it: HTTP requests (ingest/api/mount.py) and composite
subrequests (ingest/api/composite.py) are routed by the same table, so they reach the same resources
and get the same 404 (NOT_FOUND) and 405 (METHOD_NOT_ALLOWED). A pattern is a tuple of segments,
`None` standing for any one segment; HEAD is answered as GET (without the body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from casegate.ingest.api import composite, knowledge, query, sobject_collections, sobjects
from casegate.ingest.api.context import ApiContext, Call, Outcome
from casegate.ingest.api.errors import method_not_allowed, not_found

Handler = Callable[[ApiContext, Call], Awaitable[Outcome]]
ANY = None


async def resources(ctx: ApiContext, call: Call) -> Outcome:
    """`GET /services/data/vNN.N/`: the resources of this version."""
    names = ("sobjects", "query", "queryAll", "composite", "limits")
    return Outcome(200, {name: f"{call.base}/{name}" for name in names})


async def limits(ctx: ApiContext, call: Call) -> Outcome:
    return Outcome(200, ctx.usage.limits())


async def dispatch(ctx: ApiContext, call: Call) -> Outcome:
    """The outcome of `call` from the resource its path names; 404 when none does, 405 when the
    resource has no such method."""
    method = "GET" if call.method == "HEAD" else call.method
    allowed: set[str] = set()
    for pattern, methods in TABLE:
        if len(pattern) != len(call.segments):
            continue
        if any(p is not ANY and p != s for p, s in zip(pattern, call.segments, strict=True)):
            continue
        handler = methods.get(method)
        if handler is not None:
            return await handler(ctx, call)
        allowed.update(methods)
    if allowed:
        raise method_not_allowed(call.method, sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
    raise not_found()


TABLE: list[tuple[tuple[str | None, ...], Mapping[str, Handler]]] = [
    ((), {"GET": resources}),
    (("limits",), {"GET": limits}),
    (("sobjects",), {"GET": sobjects.global_describe}),
    (("sobjects", ANY), {"GET": sobjects.basic_info, "POST": sobjects.create}),
    (("sobjects", ANY, "describe"), {"GET": sobjects.describe}),
    (("sobjects", ANY, "suggestedArticles"), {"GET": knowledge.suggested_articles}),
    (("sobjects", ANY, ANY), {"GET": sobjects.read, "PATCH": sobjects.update, "DELETE": sobjects.delete}),
    (("sobjects", ANY, ANY, ANY), {"PATCH": sobjects.upsert}),
    (("composite",), {"POST": partial(composite.composite, dispatch=dispatch)}),
    (("composite", "sobjects"), {"POST": sobject_collections.create_records,
                                 "PATCH": sobject_collections.update_records,
                                 "DELETE": sobject_collections.delete_records}),
    (("query",), {"GET": query.query}),
    (("query", ANY), {"GET": query.more}),
    (("queryAll",), {"GET": query.query}),
    (("queryAll", ANY), {"GET": query.more}),
]
