"""The composite resource: up to 25 subrequests in one request, a later one using an earlier one's
result through `@{referenceId.field}` (or `@{ref.records[0].Id}`).

    POST composite   {"allOrNone", "compositeRequest": [{"method", "url", "referenceId", "body", "httpHeaders"}]}
                     -> 200 {"compositeResponse": [{"body", "httpHeaders", "httpStatusCode", "referenceId"}]}

Subrequests reach the same resources as HTTP requests (ingest/api/routes.py), except another composite
request. With `allOrNone` the first failure stops the request, what was done is undone by compensation
(ingest/api/journal.py: the store runs each record operation as a transaction of its own) and every
other subrequest answers 400 PROCESSING_HALTED, as Salesforce does after a rollback. Without it, a
subrequest referring to one that failed answers 400 PROCESSING_HALTED and the others go on."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from casegate.ingest.api.context import ApiContext, Call, Outcome, split_path
from casegate.ingest.api.errors import ApiError, bad_body, not_found
from casegate.ingest.api.journal import Journal
from multidict import CIMultiDict, MultiDict
from yarl import URL

Dispatch = Callable[[ApiContext, Call], Awaitable[Outcome]]
MAX_SUBREQUESTS = 25
METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "HEAD")
_REFERENCE_ID = re.compile(r"[A-Za-z0-9_]{1,80}")
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]{1,80})((?:\.[A-Za-z0-9_]{1,255}|\[\d{1,4}\])*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
HALTED = [{"errorCode": "PROCESSING_HALTED", "fields": [],
           "message": "The transaction was rolled back since another operation in the same transaction failed."}]


@dataclass(frozen=True, slots=True)
class Subrequest:
    method: str
    url: str
    reference_id: str
    body: Any
    headers: Mapping[str, str]


class Unresolved(Exception):
    """A `@{…}` reference to a subrequest that did not succeed before, or to a value its result lacks."""

    def __init__(self, reference: str):
        name = reference.split(".", 1)[0].split("[", 1)[0]
        super().__init__(f"Invalid reference specified. No value for {reference} found in {name}. "
                         f"Provided referenceId ('{name}') must be of a prior successful subrequest.")


def flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_body(f"{name} must be true or false", [name])
    return value


def subrequests(body: Any) -> list[Subrequest]:
    """The `compositeRequest` list, checked: 1 to 25 subrequests, each with a method, a URL under
    /services/data and a unique referenceId of letters, digits and underscores."""
    items = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise bad_body("compositeRequest must be a list of subrequests", ["compositeRequest"])
    if len(items) > MAX_SUBREQUESTS:
        raise ApiError(400, "LIMIT_EXCEEDED", f"A composite request takes at most {MAX_SUBREQUESTS} subrequests, "
                       f"not {len(items)}", ["compositeRequest"])
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        where = f"compositeRequest[{i}]"
        if not isinstance(item, dict):
            raise bad_body(f"{where} must be an object", [where])
        method, url, ref = item.get("method"), item.get("url"), item.get("referenceId")
        headers = item.get("httpHeaders") or {}
        if not isinstance(method, str) or method not in METHODS:
            raise bad_body(f"{where}.method must be one of {', '.join(METHODS)}", [f"{where}.method"])
        if not isinstance(url, str) or not url.startswith("/services/data/") or len(url) > 16384:
            raise bad_body(f"{where}.url must be a /services/data/vNN.N/… path", [f"{where}.url"])
        if not isinstance(ref, str) or not _REFERENCE_ID.fullmatch(ref) or ref in seen:
            raise bad_body(f"{where}.referenceId must be unique letters, digits and underscores (at most 80)",
                           [f"{where}.referenceId"])
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise bad_body(f"{where}.httpHeaders must be an object of strings", [f"{where}.httpHeaders"])
        seen.add(ref)
        out.append(Subrequest(method, url, ref, item.get("body"), headers))
    return out


def resolve(reference: str, name: str, path: str, results: Mapping[str, Any]) -> Any:
    if name not in results:
        raise Unresolved(reference)
    value = results[name]
    for key, index in _STEP.findall(path):
        if key and isinstance(value, dict) and key in value:
            value = value[key]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise Unresolved(reference)
    return value


def substitute(value: Any, results: Mapping[str, Any]) -> Any:
    """`value` with each `@{ref.path}` replaced by that value of an earlier result: a string that is
    one reference alone takes the value as it is (a number stays a number), else its text."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole is not None:
            return resolve(value[2:-1], whole.group(1), whole.group(2), results)

        def text(m: re.Match[str]) -> str:
            found = resolve(m.group(0)[2:-1], m.group(1), m.group(2), results)
            return found if isinstance(found, str) else json.dumps(found)

        return _REFERENCE.sub(text, value)
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    return value


async def composite(ctx: ApiContext, call: Call, dispatch: Dispatch) -> Outcome:
    if call.nested:
        raise ApiError(400, "INVALID_FIELD", "A composite request cannot be a subrequest")
    body = await call.body()
    subs = subrequests(body)
    journal = Journal() if flag(body, "allOrNone") else None
    results: dict[str, Any] = {}
    answers: list[dict[str, Any]] = []
    failed: int | None = None
    try:
        for i, sub in enumerate(subs):
            if journal is not None:
                journal.step = i
            outcome = await _run(ctx, call, sub, results, journal, dispatch)
            answers.append(_answer(sub.reference_id, outcome))
            if outcome.status < 400:
                results[sub.reference_id] = outcome.body
            elif journal is not None:
                failed = i
                break
        if journal is not None and failed is None and (refused := await journal.run_deferred()) is not None:
            failed, error = refused
            answers[failed] = _answer(subs[failed].reference_id, Outcome(error.status, error.body()))
    except BaseException:
        if journal is not None:
            await journal.undo(ctx.db, call.actor, ctx.policy)
        raise
    if journal is not None and failed is not None:
        await journal.undo(ctx.db, call.actor, ctx.policy)
        answers = [answers[i] if i == failed else _answer(sub.reference_id, Outcome(400, HALTED))
                   for i, sub in enumerate(subs)]
    return Outcome(200, {"compositeResponse": answers})


async def _run(ctx: ApiContext, call: Call, sub: Subrequest, results: Mapping[str, Any], journal: Journal | None,
               dispatch: Dispatch) -> Outcome:
    try:
        url = URL(substitute(sub.url, results))
        body = substitute(sub.body, results)
        where = split_path(url.raw_path)
        if where is None or url.is_absolute():
            raise not_found()
        version, segments = where
        if version not in ctx.api.versions:
            raise not_found()

        async def given() -> Any:
            return body

        inner = Call(call.actor, version, sub.method, segments, MultiDict(url.query), CIMultiDict(sub.headers),
                     given, journal, nested=True)
        return await dispatch(ctx, inner)
    except ApiError as e:
        return Outcome(e.status, e.body())
    except Unresolved as e:
        return Outcome(400, [{"errorCode": "PROCESSING_HALTED", "message": str(e), "fields": []}])
    except ValueError as e:  # a URL yarl cannot read
        return Outcome(400, [{"errorCode": "INVALID_FIELD", "message": f"Malformed URL: {str(e)[:200]}",
                              "fields": ["url"]}])


def _answer(reference_id: str, outcome: Outcome) -> dict[str, Any]:
    return {"body": outcome.body, "httpHeaders": dict(outcome.headers), "httpStatusCode": outcome.status,
            "referenceId": reference_id}
