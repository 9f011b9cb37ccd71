"""A bounded Hypothesis fuzz of the REST API through the daemon's public port: hostile methods, paths,
query strings, headers and bodies (valid requests mutated with type-confused values, lone surrogates,
huge numbers, deep nesting, random bytes) are answered 2xx, 3xx or 4xx — never 5xx — and every error
body is Salesforce's (a list of {message, errorCode, fields}) or OAuth's."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from casegate.store import records
from casegate.store.access import authenticate
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.ingest.test_api_http import Users, V, api_pipeline, client, users  # noqa: F401 - fixtures
from tests.ingest.test_hostile_webhooks import TRICKY, VALUES, mutate, paths
from tests.pipeline import Pipeline

CASE = "{case}"
"""Replaced by the Id of a case the test made, so updates and deletes meet a real record."""
BASES: list[tuple[str, str, Any]] = [
    ("POST", V + "/sobjects/Case/", {"Subject": "Printer on fire", "Origin": "Web", "Priority": "High"}),
    ("PATCH", V + f"/sobjects/Case/{CASE}", {"Status": "Working", "Subject": "x"}),
    ("PATCH", V + "/sobjects/Account/AccountNumber/A-1", {"Name": "Acme"}),
    ("POST", V + "/composite", {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": V + "/sobjects/Case", "referenceId": "c", "body": {"Subject": "x"}},
        {"method": "GET", "url": V + "/sobjects/Case/@{c.id}?fields=Subject", "referenceId": "g"},
        {"method": "PATCH", "url": V + "/sobjects/Case/@{c.id}", "referenceId": "u",
         "body": {"Subject": "@{g.Subject}"}},
        {"method": "DELETE", "url": V + "/sobjects/Case/@{c.id}", "referenceId": "d"}]}),
    ("POST", V + "/composite/sobjects", {"allOrNone": False, "records": [
        {"attributes": {"type": "Case"}, "Subject": "a"}, {"attributes": {"type": "Contact"}, "LastName": "b"}]}),
    ("PATCH", V + "/composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "Case"}, "id": CASE, "Subject": "a"}]}),
]
SEGMENTS = st.sampled_from(["sobjects", "Case", "case", "Contact", "describe", CASE, "500000000000001",
                            "003000000000001AAA",
                            "query", "queryAll", "composite", "limits", "", "..", "%00", "x" * 300, "\u202e",
                            "@{c.id}", "Subject", "AccountNumber"]) | st.text(max_size=12)
PREFIXES = st.sampled_from([V] * 6 + ["/services/data", "/services/data/v20.0", "/services/data/v62.0", "/services",
                                     "/services/oauth2/token", "/services/data/vNaN"])
QUERIES = st.sampled_from(["", "?fields=Subject,Status", "?fields=" + ",".join(["Subject"] * 600),
                           "?q=SELECT+Id+FROM+Case", "?q=SELECT", "?q=" + "(" * 500, "?ids=" + CASE,
                           "?ids=" + ",".join([CASE] * 201) + "&allOrNone=true", "?q=%ED%A0%80", "?fields=%00"])


@st.composite
def request(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None]:
    kind = draw(st.sampled_from([0, 0, 0, 1, 2]))
    headers = {"Content-Type": draw(st.sampled_from(["application/json"] * 6 + [
        "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded"]))}
    if draw(st.booleans()):
        headers["Sforce-Auto-Assign"] = draw(st.sampled_from(["FALSE", "TRUE", "01Q000000000001", "\u00e9"]))
    if kind == 0:  # a valid request, its body mutated
        method, path, payload = draw(st.sampled_from(BASES))
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            where = paths(payload)
            if not where:
                break
            payload = mutate(payload, draw(st.sampled_from(where)), draw(VALUES | TRICKY))
        return method, path, headers, json.dumps(payload).encode()
    method = draw(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]))
    segments = draw(st.lists(SEGMENTS, max_size=5))
    path = draw(PREFIXES) + "".join("/" + quote(s, safe="%@{}") for s in segments) + draw(QUERIES)
    body: bytes | None = None
    if kind == 1:
        body = json.dumps(draw(VALUES)).encode()
    elif draw(st.booleans()):
        body = draw(st.binary(max_size=200))
    return method, path, headers, body


@pytest.fixture
async def case_id(api_pipeline: Pipeline, users: Users) -> str:  # noqa: F811
    assert api_pipeline.daemon.db is not None
    admin = await authenticate(api_pipeline.daemon.db, users.admin)
    assert admin is not None
    return await records.create(api_pipeline.daemon.db, "Case", {"Subject": "fuzz target"}, admin)


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_hostile_requests_are_never_answered_5xx(api_pipeline: Pipeline, users: Users,  # noqa: F811
                                                       case_id: str, data: st.DataObject) -> None:
    method, path, headers, body = data.draw(request())
    path = path.replace(CASE, case_id)
    body = body.replace(CASE.encode(), case_id.encode()) if body is not None else None
    token = data.draw(st.sampled_from([users.admin, users.admin, users.supervisor, users.agent, users.integration,
                                       None, "cg_" + "z" * 43]))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = URL(f"http://127.0.0.1:{api_pipeline.daemon.http_port}{path}", encoded=True)
    async with aiohttp.ClientSession() as http, http.request(method, url, data=body, headers=headers) as r:
        text = await r.read()
    event(f"HTTP {r.status}")
    assert r.status < 500, (r.status, text[:500], method, path, body)
    if r.status >= 400 and text and r.content_type == "application/json":
        answer = json.loads(text)
        assert (isinstance(answer, list) and answer and {"message", "errorCode"} <= set(answer[0])) or \
               (isinstance(answer, dict) and "error" in answer), answer
