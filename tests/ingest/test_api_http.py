"""The REST API over plain HTTP with an aiohttp client, against the daemon's public port: the versions
list and resources, bearer tokens (and the token cache), OAuth's two grants, errors in Salesforce's
shape (401, 404, 405, 413, 415, JSON_PARSER_ERROR), the bounds on what a client sends, limits.

Also `ApiClient` and the fixtures the other API tests share: a daemon and users of each role with
tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from casegate.ingest.api.auth import TokenCache
from casegate.store import access
from casegate.store.access import hash_token, issue_token
from casegate.store.database import Database
from casegate.store.models import ApiToken
from sqlalchemy import select

from tests.pipeline import Pipeline, settings_for, start_pipeline

V = "/services/data/v60.0"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class ApiClient:
    """Requests to the daemon's public port, as `token` (none: anonymous)."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str | None = None):
        self.http = http
        self.base = base
        self.token = token

    def as_(self, token: str | None) -> ApiClient:
        return ApiClient(self.http, self.base, token)

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, scheme: str = "Bearer") -> Reply:
        h = {"Authorization": f"{scheme} {self.token}"} if self.token else {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        async with self.http.request(method, self.base + path, data=data, headers=h) as r:
            text = await r.read()
            parsed = json.loads(text) if text and r.content_type == "application/json" else text
            return Reply(r.status, parsed, r.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PATCH", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)


@dataclass
class Users:
    admin: str
    supervisor: str
    agent: str
    integration: str


async def make_users(db: Database) -> Users:
    tokens = {}
    for role in ("admin", "supervisor", "agent", "integration"):
        await access.add_user(db, f"{role}@example.org", role, role.title())
        tokens[role] = await issue_token(db, f"{role}@example.org")
    return Users(**tokens)


def error_of(reply: Reply) -> tuple[int, str]:
    """The status and errorCode of a Salesforce error answer (a list of one error)."""
    assert isinstance(reply.body, list) and len(reply.body) == 1, reply.body
    assert set(reply.body[0]) == {"message", "errorCode", "fields"}, reply.body
    return reply.status, reply.body[0]["errorCode"]


@pytest.fixture
async def api_pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, api={"token_cache_seconds": 0}))
    try:
        yield p
    finally:
        await p.daemon.stop()


@pytest.fixture
async def users(api_pipeline: Pipeline) -> Users:
    assert api_pipeline.daemon.db is not None
    return await make_users(api_pipeline.daemon.db)


@pytest.fixture
async def client(api_pipeline: Pipeline) -> AsyncIterator[ApiClient]:
    async with aiohttp.ClientSession() as http:
        yield ApiClient(http, f"http://127.0.0.1:{api_pipeline.daemon.http_port}")


# -- versions, resources, tokens ---------------------------------------------------------------------
async def test_versions_need_no_token_and_resources_do(client: ApiClient, users: Users) -> None:
    for path in ("/services/data", "/services/data/"):
        r = await client.get(path)
        assert r.status == 200
        assert r.body[0] == {"label": "Summer '23", "url": "/services/data/v58.0", "version": "58.0"}
        assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in r.body
    r = await client.get(V + "/")
    assert error_of(r) == (401, "INVALID_SESSION_ID") and r.body[0]["message"] == "Session expired or invalid"
    for scheme in ("Bearer", "OAuth"):  # simple-salesforce sends Bearer, older clients OAuth
        r = await client.as_(users.agent).get(V + "/", scheme=scheme)
        assert r.status == 200 and r.body["sobjects"] == V + "/sobjects" and r.body["query"] == V + "/query"
    assert error_of(await client.as_(users.agent).get(V + "/", scheme="Basic")) == (401, "INVALID_SESSION_ID")
    assert error_of(await client.as_("cg_" + "x" * 43).get(V + "/")) == (401, "INVALID_SESSION_ID")
    assert error_of(await client.as_(users.agent).get("/services/data/v20.0/")) == (404, "NOT_FOUND")
    first = await client.as_(users.agent).get(V + "/limits")
    second = await client.as_(users.agent).get(V + "/limits")
    assert first.body["DailyApiRequests"]["Max"] == 100000
    assert second.body["DailyApiRequests"]["Remaining"] == first.body["DailyApiRequests"]["Remaining"] - 1
    used = int(second.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")[0])
    assert second.headers["Sforce-Limit-Info"] == f"api-usage={used}/100000"
    assert second.body["DailyApiRequests"]["Remaining"] == 100000 - used


async def test_a_revoked_token_stops_at_once_without_the_cache(api_pipeline: Pipeline, client: ApiClient,
                                                               users: Users) -> None:
    assert (await client.as_(users.admin).get(V + "/limits")).status == 200
    assert api_pipeline.daemon.db is not None
    await access.revoke_token(api_pipeline.daemon.db, users.admin)
    assert error_of(await client.as_(users.admin).get(V + "/limits")) == (401, "INVALID_SESSION_ID")


async def test_the_token_cache_believes_a_token_for_its_time_only(api_pipeline: Pipeline, users: Users) -> None:
    db = api_pipeline.daemon.db
    assert db is not None
    now = [1000.0]
    cache = TokenCache(lambda: db, ttl=10, clock=lambda: now[0])
    actor = await cache.actor(users.agent)
    assert actor is not None and actor.role == "agent"
    await access.revoke_token(db, users.agent)
    now[0] += 9.9
    assert await cache.actor(users.agent) == actor  # believed within its 10 s
    now[0] += 0.2
    assert await cache.actor(users.agent) is None  # then asked again: revoked
    assert await cache.actor("cg_" + "y" * 43) is None
    small = TokenCache(lambda: db, ttl=10, clock=lambda: now[0], max_entries=1)
    assert await small.actor(users.supervisor) is not None and await small.actor(users.admin) is not None
    await access.revoke_token(db, users.supervisor)
    await access.revoke_token(db, users.admin)
    assert await small.actor(users.admin) is not None  # the newest is remembered
    assert await small.actor(users.supervisor) is None  # the oldest was forgotten: asked again, revoked


# -- errors and bounds -------------------------------------------------------------------------------
async def test_errors_come_in_salesforce_shape(client: ApiClient, users: Users) -> None:
    api = client.as_(users.admin)
    assert error_of(await api.get(V + "/nothing/here")) == (404, "NOT_FOUND")
    assert error_of(await api.get("/services/elsewhere")) == (404, "NOT_FOUND")
    assert error_of(await api.get(V + "/sobjects/NoSuchThing")) == (404, "NOT_FOUND")
    assert error_of(await api.get(V + "/sobjects/Case/not-an-id")) == (404, "NOT_FOUND")
    assert error_of(await api.get(V + "/sobjects/Case/003000000000001AAA")) == (400, "MALFORMED_ID")
    r = await api.call("PUT", V + "/sobjects/Case/500000000000001AAA", {"Subject": "x"})
    assert error_of(r) == (405, "METHOD_NOT_ALLOWED")
    assert r.body[0]["message"] == "HTTP Method 'PUT' not allowed. Allowed are DELETE,GET,HEAD,PATCH"
    assert error_of(await api.get("/services/oauth2/token")) == (405, "METHOD_NOT_ALLOWED")
    r = await api.post(V + "/sobjects/Case/", raw=b'{"Subject": "x"}', headers={"Content-Type": "text/plain"})
    assert error_of(r) == (415, "UNSUPPORTED_MEDIA_TYPE")
    json_headers = {"Content-Type": "application/json"}
    for bad in (b'{"Subject": ', b"NaN", b'{"Subject": "\\ud800"}', b'{"Subject": "a\\u0000b"}', b"[1e400]",
                b"[" * 65 + b"]" * 65, b"\xff\xfe\xfa"):
        r = await api.post(V + "/sobjects/Case/", raw=bad, headers=json_headers)
        assert error_of(r) == (400, "JSON_PARSER_ERROR"), bad
    r = await api.post(V + "/sobjects/Case/", raw=b'"' + b"x" * 4194304 + b'"', headers=json_headers)
    assert error_of(r) == (413, "REQUEST_ENTITY_TOO_LARGE")
    r = await api.post(V + "/sobjects/Case/", {"Subject": {"nested": "object"}})
    assert error_of(r) == (400, "JSON_PARSER_ERROR") and r.body[0]["fields"] == ["Subject"]
    r = await api.post(V + "/sobjects/Case/", {"Id": "500000000000001AAA", "Subject": "x"})
    assert error_of(r) == (400, "INVALID_FIELD")
    assert r.body[0]["message"] == "The Id field should not be specified in the sobject data."
    r = await api.get(V + "/sobjects/" + "x" * 9000)
    assert r.status == 400  # the request line is over aiohttp's 8,190 bytes: refused before routing


async def test_composite_bounds(client: ApiClient, users: Users) -> None:
    api = client.as_(users.admin)
    sub = {"method": "GET", "url": V + "/limits", "referenceId": "r"}
    many = [{**sub, "referenceId": f"r{i}"} for i in range(26)]
    assert error_of(await api.post(V + "/composite", {"compositeRequest": many})) == (400, "LIMIT_EXCEEDED")
    assert error_of(await api.post(V + "/composite", {"compositeRequest": []})) == (400, "JSON_PARSER_ERROR")
    for bad in ({**sub, "referenceId": "no-dashes"}, {**sub, "url": "https://evil.example/x"},
                {**sub, "method": "TRACE"}, {**sub, "httpHeaders": {"X": 1}}):
        r = await api.post(V + "/composite", {"compositeRequest": [bad]})
        assert error_of(r) == (400, "JSON_PARSER_ERROR"), bad
    twice = [sub, sub]
    assert error_of(await api.post(V + "/composite", {"compositeRequest": twice})) == (400, "JSON_PARSER_ERROR")
    r = await api.post(V + "/composite", {"allOrNone": "yes", "compositeRequest": [sub]})
    assert error_of(r) == (400, "JSON_PARSER_ERROR") and r.body[0]["fields"] == ["allOrNone"]
    nested = {"method": "POST", "url": V + "/composite", "referenceId": "inner", "body": {"compositeRequest": [sub]}}
    r = await api.post(V + "/composite", {"compositeRequest": [sub, nested]})
    assert r.status == 200
    first, second = r.body["compositeResponse"]
    assert first["httpStatusCode"] == 200 and first["body"]["DailyApiRequests"]["Max"] == 100000
    assert second["httpStatusCode"] == 400 and second["body"][0]["errorCode"] == "INVALID_FIELD"
    records = [{"attributes": {"type": "Case"}, "Subject": str(i)} for i in range(201)]
    r = await api.post(V + "/composite/sobjects", {"records": records})
    assert error_of(r) == (400, "EXCEEDED_ID_LIMIT")


# -- OAuth -------------------------------------------------------------------------------------------
async def token_request(client: ApiClient, form: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
    async with client.http.post(client.base + "/services/oauth2/token", data=form, headers=headers) as r:
        return Reply(r.status, await r.json(), r.headers)


async def test_oauth_client_credentials_and_refresh(api_pipeline: Pipeline, client: ApiClient, users: Users) -> None:
    db = api_pipeline.daemon.db
    assert db is not None
    before = datetime.now(UTC)
    r = await token_request(client, {"grant_type": "client_credentials", "client_id": "Agent@Example.org",
                                     "client_secret": users.agent})
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    granted = r.body
    assert set(granted) == {"access_token", "refresh_token", "instance_url", "id", "token_type", "issued_at",
                            "signature"}
    assert granted["token_type"] == "Bearer" and granted["instance_url"] == client.base
    agent = await access.get_user(db, "agent@example.org")
    assert granted["id"].endswith("/" + agent.id) and granted["issued_at"].isdigit()
    async with db.session() as s:
        kinds = {h: k for h, k in (await s.execute(select(ApiToken.TokenHash, ApiToken.Kind))).all()}
        expires = (await s.execute(select(ApiToken.ExpiresDate).where(
            ApiToken.TokenHash == hash_token(granted["access_token"])))).scalar_one()
    assert kinds[hash_token(granted["access_token"])] == "access"
    assert kinds[hash_token(granted["refresh_token"])] == "refresh"
    expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
    assert before + timedelta(hours=2) <= expires <= datetime.now(UTC) + timedelta(hours=2)

    assert (await client.as_(granted["access_token"]).get(V + "/limits")).status == 200
    assert error_of(await client.as_(granted["refresh_token"]).get(V + "/limits")) == (401, "INVALID_SESSION_ID")

    r = await token_request(client, {"grant_type": "refresh_token", "refresh_token": granted["refresh_token"]})
    assert r.status == 200 and "refresh_token" not in r.body and r.body["access_token"] != granted["access_token"]
    assert (await client.as_(r.body["access_token"]).get(V + "/limits")).status == 200

    basic = base64.b64encode(f"agent@example.org:{users.agent}".encode()).decode()
    r = await token_request(client, {"grant_type": "client_credentials"}, {"Authorization": f"Basic {basic}"})
    assert r.status == 200 and r.body["access_token"].startswith("cg_")


async def test_oauth_refusals(api_pipeline: Pipeline, client: ApiClient, users: Users) -> None:
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"grant_type": "password", "username": "x", "password": "y"}, 400, "unsupported_grant_type"),
        ({}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "agent@example.org"}, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": "agent@example.org", "client_secret": users.admin},
         401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody@example.org", "client_secret": users.agent},
         401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "not an email", "client_secret": users.agent},
         401, "invalid_client"),
        ({"grant_type": "refresh_token", "refresh_token": users.agent}, 400, "invalid_grant"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
    ]
    for form, status, error in cases:
        r = await token_request(client, form)
        assert (r.status, r.body["error"]) == (status, error), form
        assert set(r.body) == {"error", "error_description"}
    async with client.http.post(client.base + "/services/oauth2/token",
                                data=b"grant_type=client_credentials&grant_type=refresh_token",
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
    async with client.http.post(client.base + "/services/oauth2/token",
                                json={"grant_type": "client_credentials"}) as r:
        assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
    async with client.http.post(client.base + "/services/oauth2/token", data={"grant_type": "client_credentials"},
                                headers={"Authorization": "Basic !!!"}) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_client")
    assert api_pipeline.daemon.db is not None
    await access.revoke_token(api_pipeline.daemon.db, users.agent)  # the secret revoked: no more tokens from it
    r = await token_request(client, {"grant_type": "client_credentials", "client_id": "agent@example.org",
                                     "client_secret": users.agent})
    assert (r.status, r.body["error"]) == (401, "invalid_client")


# -- SOQL, upsert ambiguity ---------------------------------------------------------------------------
async def test_soql_pages_behind_locators(client: ApiClient, users: Users) -> None:
    api = client.as_(users.admin)
    made = await api.post(V + "/composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "Case"}, "Subject": f"page {i:03d}"} for i in range(200)]})
    assert made.status == 200 and all(r["success"] for r in made.body)
    assert (await api.post(V + "/sobjects/Case/", {"Subject": "page 200"})).status == 201
    q = "SELECT Id, Subject FROM Case WHERE Subject LIKE 'page%' ORDER BY Subject"
    first = await api.get(V + "/query?q=" + quote(q), headers={"Sforce-Query-Options": "batchSize=200"})
    assert first.status == 200, first.body
    assert (first.body["totalSize"], first.body["done"], len(first.body["records"])) == (201, False, 200)
    assert first.body["records"][0]["attributes"]["type"] == "Case"
    assert first.body["records"][0]["Subject"] == "page 000"
    more = first.body["nextRecordsUrl"]
    assert more.startswith(V + "/query/")
    second = await api.get(more)  # no batchSize this time: the locator keeps it
    assert (second.body["done"], [r["Subject"] for r in second.body["records"]]) == (True, ["page 200"])
    assert "nextRecordsUrl" not in second.body
    everything = await api.get(V + "/queryAll?q=" + quote(q))
    assert (everything.body["totalSize"], everything.body["done"]) == (201, True)

    locator = more.rsplit("/", 1)[1]
    assert error_of(await api.get(V + "/queryAll/" + locator)) == (400, "INVALID_QUERY_LOCATOR")
    assert error_of(await api.get(V + "/query/" + locator[:-4] + "AAAA")) == (400, "INVALID_QUERY_LOCATOR")
    assert error_of(await api.get(V + "/query/not-a-locator")) == (400, "INVALID_QUERY_LOCATOR")
    assert error_of(await api.get(V + "/query?q=" + quote("SELECT FROM Case"))) == (400, "MALFORMED_QUERY")
    assert error_of(await api.get(V + "/query?q=" + quote("SELECT Id FROM Nothing"))) == (400, "INVALID_TYPE")
    assert error_of(await api.get(V + "/query")) == (400, "MALFORMED_QUERY")


async def test_an_upsert_matching_several_records_is_300_with_their_urls(client: ApiClient, users: Users) -> None:
    api = client.as_(users.admin)
    twins = [await api.post(V + "/sobjects/Contact/", {"LastName": name, "Email": "twin@example.org"})
             for name in ("One", "Two")]
    assert [t.status for t in twins] == [201, 201]
    r = await api.patch(V + "/sobjects/Contact/Email/twin@example.org", {"FirstName": "Which"})
    assert r.status == 300
    assert sorted(r.body) == sorted(f"{V}/sobjects/Contact/{t.body['id']}" for t in twins)
    r = await api.patch(V + "/sobjects/Contact/Email/solo@example.org", {"LastName": "Solo"})
    assert r.status == 201 and r.body["created"] is True and r.headers["Location"].endswith(r.body["id"])
    again = await api.patch(V + "/sobjects/Contact/Email/solo@example.org", {"FirstName": "Han"})
    assert again.status == 200 and again.body == {"id": r.body["id"], "success": True, "errors": [], "created": False}
