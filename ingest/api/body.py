"""Reading what a client sends the API, within bounds: the body read as it streams in, refused over
`[api] max_body_size` (413) or when it trickles in slower than `[http] body_timeout` (408); only JSON
(415 otherwise); nesting no deeper than 64 levels, counted before parsing (ingest/channels/webhook.py's
`json_depth`); no NaN or Infinity, no number too large for a double, and no string the store could not
keep (a lone UTF-16 surrogate, NUL) — each a 400 JSON_PARSER_ERROR, never an error deeper in."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web
from casegate.ingest.api.errors import ApiError, bad_body
from casegate.ingest.channels.webhook import MAX_JSON_DEPTH, Rejected, json_depth, read_body

JSON_TYPES = ("application/json",)
_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
r"""An escaped NUL in JSON text: `\u0000` after an even number of backslashes (`\\u0000` is a backslash and
the text "u0000")."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def parse(body: bytes) -> Any:
    """The JSON value of `body`; ApiError 400 JSON_PARSER_ERROR when it is none we take."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise bad_body(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
        # one C-speed pass finds what the store could not keep: lone surrogates do not encode, and a
        # NUL (which PostgreSQL refuses in text) is escaped as \u0000 by dumps
        text = json.dumps(value, ensure_ascii=False)
        text.encode()
    except UnicodeEncodeError:
        raise bad_body("Unexpected character: a lone UTF-16 surrogate escape") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad_body(f"Malformed JSON: {str(e)[:200]}") from None
    if _NUL.search(text):
        raise bad_body("Unexpected character: NUL (\\u0000) is not allowed")
    return value


async def read_json(request: web.Request, limit: int, timeout: float) -> Any:
    """The request's body as JSON: 415 unless it says it is JSON, 413/408 as it arrives, 400 malformed."""
    if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                       f"Content-Type {request.content_type[:60]!r} is not supported; send application/json")
    return parse(await read_bounded(request, limit, timeout))


async def read_bounded(request: web.Request, limit: int, timeout: float) -> bytes:
    """The raw body, within `limit` bytes and `timeout` seconds."""
    try:
        return await read_body(request, limit, timeout)
    except Rejected as e:
        code = "REQUEST_ENTITY_TOO_LARGE" if e.status == 413 else "REQUEST_TIMEOUT"
        raise ApiError(e.status, code, e.error) from None


async def read_object(request: web.Request, limit: int, timeout: float) -> dict[str, Any]:
    """A JSON object body (an sObject's fields): 400 for any other JSON value."""
    value = await read_json(request, limit, timeout)
    if not isinstance(value, dict):
        raise bad_body("Expected a JSON object of field names and values")
    return value
