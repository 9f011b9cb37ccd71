"""SOQL over the REST API: `query?q=…` and `queryAll?q=…` (deleted records too), one page of up to
2,000 records at a time (fewer with `Sforce-Query-Options: batchSize=200…2000`), the next behind
`nextRecordsUrl` (`query/{locator}`), as Salesforce answers: `{"totalSize", "done", "records",
"nextRecordsUrl"}`. The query itself is casegate.store.soql's.

A locator is not kept anywhere: it carries the query, where the next page starts, the total and the
moment the query was first run (date literals such as TODAY keep meaning the same day), compressed and
base64url-encoded. So any process behind a shared port (`http.reuse_port`) can answer the next page.
Changing a locator gains nothing: everyone with a token reads every record. A query whose locator would
not fit in a request line (compressed, over 6,000 characters) is answered one page at a time without a
`nextRecordsUrl` beyond what fits: `done` stays false, so the client knows more exists."""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from casegate.ingest.api.context import ApiContext, Call, Outcome
from casegate.ingest.api.errors import ApiError
from casegate.ingest.api.operations import store_errors
from casegate.store.soql import Cursor, SoqlError, parse, run, translate
from casegate.store.soql.run import MAX_PAGE_SIZE

MAX_LOCATOR = 6000
MAX_QUERY = 100_000
"""Characters of SOQL (Salesforce's limit); a GET's request line is shorter anyway."""
MIN_BATCH = 200
_BATCH = re.compile(r"(?:^|[;,\s])batchSize\s*=\s*(\d{1,6})", re.IGNORECASE)


def _bad_locator() -> ApiError:
    return ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


def batch_size(call: Call) -> int:
    """Records a page: `Sforce-Query-Options: batchSize=N` (200 to 2,000, as Salesforce), else 2,000."""
    m = _BATCH.search(call.headers.get("Sforce-Query-Options", ""))
    return min(MAX_PAGE_SIZE, max(MIN_BATCH, int(m.group(1)))) if m else MAX_PAGE_SIZE


def locator(q: str, everything: bool, cursor: Cursor, at: datetime, size: int) -> str:
    state = {"q": q, "all": everything, "p": cursor.position, "n": cursor.total_size, "t": at.timestamp(),
             "s": size}
    packed = zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def unpack(text: str) -> tuple[str, bool, Cursor, datetime, int]:
    try:
        raw = zlib.decompressobj().decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), 256 * 1024)
        state = json.loads(raw)
        q, everything, p, n, t, size = state["q"], state["all"], state["p"], state["n"], state["t"], state["s"]
    except (ValueError, binascii.Error, zlib.error, KeyError, TypeError):
        raise _bad_locator() from None
    valid = (isinstance(q, str) and isinstance(everything, bool) and isinstance(p, int) and isinstance(n, int)
             and isinstance(t, int | float) and isinstance(size, int) and 0 <= p <= n and 0 <= t < 1e11
             and MIN_BATCH <= size <= MAX_PAGE_SIZE)
    if not valid:
        raise _bad_locator()
    return q, everything, Cursor(p, n), datetime.fromtimestamp(t, UTC), size


async def query(ctx: ApiContext, call: Call) -> Outcome:
    q = call.query.get("q")
    if not q or not q.strip():
        raise ApiError(400, "MALFORMED_QUERY", "A query is required: ?q=SELECT …", ["q"])
    return await _page(ctx, call, q, call.segments[0] == "queryAll", None, datetime.now(UTC), batch_size(call))


async def more(ctx: ApiContext, call: Call) -> Outcome:
    q, everything, cursor, at, size = unpack(call.segments[1])
    if everything != (call.segments[0] == "queryAll"):
        raise _bad_locator()
    return await _page(ctx, call, q, everything, cursor, at, size)


async def _page(ctx: ApiContext, call: Call, q: str, everything: bool, cursor: Cursor | None,
                at: datetime, size: int) -> Outcome:
    if len(q) > MAX_QUERY:
        raise ApiError(400, "MALFORMED_QUERY", f"The query is longer than {MAX_QUERY} characters", ["q"])
    try:
        plan = translate(parse(q), now=at, include_deleted=everything)
    except SoqlError as e:
        raise ApiError(400, e.error_code, e.message) from None
    with store_errors():
        async with ctx.db.reading() as session:  # on SQLite: a snapshot that never waits for the writer
            page = await run(session, plan, api_version=call.version, page_size=size, cursor=cursor)
    body: dict[str, Any] = {"totalSize": page.total_size, "done": page.done, "records": page.records}
    if page.next_cursor is not None:
        more_at = locator(q, everything, page.next_cursor, at, size)
        if len(more_at) <= MAX_LOCATOR:
            body["nextRecordsUrl"] = f"{call.base}/{call.segments[0]}/{more_at}"
    return Outcome(200, body)
