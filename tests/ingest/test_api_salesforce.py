"""The real Salesforce client, simple-salesforce, against the daemon over HTTPS (a test CA), on SQLite
and on PostgreSQL: create, get (with `fields`), update, upsert by external id, delete, describe, SOQL,
composite with a reference and all-or-none, sObject collections, `Sforce-Auto-Assign`, the API usage
header; and its exceptions for 400, 401, 403, 404 and a locked (closed) case carry our errorCodes. The
client is synchronous, so it runs in a thread while the daemon serves on the test's loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from casegate.store.access import get_user
from casegate.store.database import Database
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from tests.ingest.test_api_http import Users, make_users
from tests.ingest.test_api_tls import Tls, start_tls_pipeline, tls  # noqa: F401 - fixture
from tests.pipeline import Pipeline

T = TypeVar("T")
VERSION = "60.0"


class Org:
    """simple-salesforce clients of the daemon, one per token."""

    def __init__(self, port: int, tls: Tls, users: Users, db: Database):  # noqa: F811
        self.port = port
        self.tls = tls
        self.users = users
        self.db = db
        self.sessions: list[requests.Session] = []

    def client(self, token: str) -> Salesforce:
        session = requests.Session()
        self.sessions.append(session)
        session.trust_env = False  # else REQUESTS_CA_BUNDLE (and proxies) from the environment win over ours
        session.verify = str(self.tls.ca_file)
        return Salesforce(instance_url=f"https://127.0.0.1:{self.port}", session_id=token, version=VERSION,
                          session=session)


async def run(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def refused(fn: Callable[[], Any], kind: type[SalesforceError]) -> tuple[int, str]:
    """The status and errorCode of the simple-salesforce exception `fn` raises (of class `kind`)."""
    with pytest.raises(kind) as info:
        await run(fn)
    content = info.value.content
    assert isinstance(content, list) and set(content[0]) == {"message", "errorCode", "fields"}, content
    return info.value.status, content[0]["errorCode"]


@pytest.fixture(params=["sqlite", "postgres"])
async def org(tmp_path: Path, tls: Tls, request: pytest.FixtureRequest) -> AsyncIterator[Org]:  # noqa: F811
    store = {"store": {"url": request.getfixturevalue("pg_db_url")}} if request.param == "postgres" else {}
    p: Pipeline = await start_tls_pipeline(tmp_path, tls, **store)
    try:
        assert p.daemon.db is not None
        o = Org(p.daemon.http_port, tls, await make_users(p.daemon.db), p.daemon.db)
        yield o
        for session in o.sessions:
            session.close()
    finally:
        await p.daemon.stop()


async def test_crud_upsert_and_describe(org: Org) -> None:
    sf = org.client(org.users.integration)
    created = await run(lambda: sf.Case.create({"Subject": "Printer on fire", "Origin": "Web", "Priority": "High"}))
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("500")
    case_id = created["id"]
    case = await run(lambda: sf.Case.get(case_id))
    assert case["attributes"] == {"type": "Case", "url": f"/services/data/v{VERSION}/sobjects/Case/{case_id}"}
    assert (case["Id"], case["Subject"], case["Origin"], case["Priority"]) == (
        case_id, "Printer on fire", "Web", "High")
    some = await run(lambda: sf.Case.get(case_id, params={"fields": "Subject,Status"}))
    assert some["Subject"] == "Printer on fire" and "Origin" not in some
    assert await run(lambda: sf.Case.update(case_id, {"Subject": "Printer still on fire"})) == 204
    assert (await run(lambda: sf.Case.get(case_id)))["Subject"] == "Printer still on fire"
    cases = sf.Case  # a new SFType each time it is asked for: keep one to read what it saw
    await run(lambda: cases.get(case_id))
    assert cases.api_usage["api-usage"].total == 100000  # read from Sforce-Limit-Info

    assert await run(lambda: sf.Contact.upsert("Email/ada@example.org", {"LastName": "Lovelace"})) == 201
    assert await run(lambda: sf.Contact.upsert("Email/ada@example.org", {"FirstName": "Ada"})) == 200
    found = await run(lambda: sf.query("SELECT Id, FirstName, LastName FROM Contact WHERE Email = 'ada@example.org'"))
    assert found["totalSize"] == 1 and found["records"][0]["FirstName"] == "Ada"

    assert await run(lambda: sf.Case.delete(case_id)) == 204
    assert await refused(lambda: sf.Case.get(case_id), SalesforceResourceNotFound) == (404, "NOT_FOUND")

    described = await run(lambda: sf.Case.describe())
    assert described["name"] == "Case" and "Subject" in {f["name"] for f in described["fields"]}
    everything = await run(lambda: sf.describe())
    assert {"name": "Case", "keyPrefix": "500"}.items() <= next(
        o for o in everything["sobjects"] if o["name"] == "Case").items()
    assert (await run(lambda: sf.Case.metadata()))["objectDescribe"]["name"] == "Case"


async def test_auto_assign_false_keeps_the_case_with_its_creator(org: Org) -> None:
    sf = org.client(org.users.agent)
    agent = await get_user(org.db, "agent@example.org")
    mine = await run(lambda: sf.Case.create({"Subject": "mine"}, headers={"Sforce-Auto-Assign": "FALSE"}))
    assigned = await run(lambda: sf.Case.create({"Subject": "the queue's"}))
    assert (await run(lambda: sf.Case.get(mine["id"])))["OwnerId"] == agent.id
    assert (await run(lambda: sf.Case.get(assigned["id"])))["OwnerId"].startswith("00G")


async def test_composite_with_a_reference_and_all_or_none(org: Org) -> None:
    sf = org.client(org.users.supervisor)
    base = f"/services/data/v{VERSION}"
    ok = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{base}/sobjects/Contact", "referenceId": "ann", "body": {"LastName": "Ann"}},
        {"method": "POST", "url": f"{base}/sobjects/Case", "referenceId": "case",
         "body": {"Subject": "via composite", "ContactId": "@{ann.id}"}},
        {"method": "GET", "url": f"{base}/sobjects/Case/@{{case.id}}?fields=ContactId", "referenceId": "check"}]}
    answer = await run(lambda: sf.restful("composite", method="POST", data=json.dumps(ok)))
    statuses = [r["httpStatusCode"] for r in answer["compositeResponse"]]
    assert statuses == [201, 201, 200], answer
    ann, case, check = answer["compositeResponse"]
    assert check["body"]["ContactId"] == ann["body"]["id"] and case["httpHeaders"]["Location"].endswith(
        case["body"]["id"])

    failing = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{base}/sobjects/Case", "referenceId": "kept", "body": {"Subject": "undone"}},
        {"method": "PATCH", "url": f"{base}/sobjects/Case/{case['body']['id']}", "referenceId": "changed",
         "body": {"Subject": "changed, then undone"}},
        {"method": "DELETE", "url": f"{base}/sobjects/Contact/{ann['body']['id']}", "referenceId": "gone"},
        {"method": "POST", "url": f"{base}/sobjects/Contact", "referenceId": "bad", "body": {"FirstName": "no last"}},
        {"method": "GET", "url": f"{base}/limits", "referenceId": "after"}]}
    answer = await run(lambda: sf.restful("composite", method="POST", data=json.dumps(failing)))
    kept, changed, gone, bad, after = answer["compositeResponse"]
    assert bad["httpStatusCode"] == 400 and bad["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for other in (kept, changed, gone, after):
        assert other["httpStatusCode"] == 400 and other["body"][0]["errorCode"] == "PROCESSING_HALTED"
    found = await run(lambda: sf.query("SELECT Id FROM Case WHERE Subject = 'undone'"))
    assert found["totalSize"] == 0
    assert (await run(lambda: sf.Case.get(case["body"]["id"])))["Subject"] == "via composite"
    assert (await run(lambda: sf.Contact.get(ann["body"]["id"])))["LastName"] == "Ann"  # its delete held back

    done = {"allOrNone": True, "compositeRequest": [
        {"method": "DELETE", "url": f"{base}/sobjects/Case/{case['body']['id']}", "referenceId": "gone"},
        {"method": "DELETE", "url": f"{base}/sobjects/Contact/{ann['body']['id']}", "referenceId": "gone_too"}]}
    answer = await run(lambda: sf.restful("composite", method="POST", data=json.dumps(done)))
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [204, 204]
    assert await refused(lambda: sf.Contact.get(ann["body"]["id"]), SalesforceResourceNotFound) == (404, "NOT_FOUND")

    loose = {"allOrNone": False, "compositeRequest": [
        {"method": "POST", "url": f"{base}/sobjects/Contact", "referenceId": "nolast", "body": {"FirstName": "x"}},
        {"method": "GET", "url": f"{base}/sobjects/Contact/@{{nolast.id}}", "referenceId": "follows"},
        {"method": "POST", "url": f"{base}/sobjects/Contact", "referenceId": "fine", "body": {"LastName": "Fine"}}]}
    answer = await run(lambda: sf.restful("composite", method="POST", data=json.dumps(loose)))
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [400, 400, 201]
    assert answer["compositeResponse"][1]["body"][0]["errorCode"] == "PROCESSING_HALTED"


async def test_collections_all_or_none(org: Org) -> None:
    sf = org.client(org.users.admin)
    records = [{"attributes": {"type": "Contact"}, "LastName": "One"},
               {"attributes": {"type": "Contact"}, "FirstName": "no last name"}]
    answer = await run(lambda: sf.restful("composite/sobjects", method="POST",
                                          data=json.dumps({"allOrNone": True, "records": records})))
    assert answer[0] == {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                        "message": answer[0]["errors"][0]["message"], "fields": []}]}
    assert answer[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert (await run(lambda: sf.query("SELECT Id FROM Contact WHERE LastName = 'One'")))["totalSize"] == 0
    answer = await run(lambda: sf.restful("composite/sobjects", method="POST",
                                          data=json.dumps({"allOrNone": False, "records": records})))
    assert answer[0]["success"] is True and answer[1]["success"] is False
    made = answer[0]["id"]
    answer = await run(lambda: sf.restful("composite/sobjects", method="PATCH", data=json.dumps(
        {"records": [{"attributes": {"type": "Contact"}, "id": made, "FirstName": "Uno"}]})))
    assert answer == [{"id": made, "success": True, "errors": []}]
    answer = await run(lambda: sf.restful("composite/sobjects", method="DELETE",
                                          params={"ids": made, "allOrNone": "true"}))
    assert answer == [{"id": made, "success": True, "errors": []}]
    assert await refused(lambda: sf.Contact.get(made), SalesforceResourceNotFound) == (404, "NOT_FOUND")


async def test_its_exceptions_carry_our_error_codes(org: Org) -> None:
    stranger = org.client("cg_" + "n" * 43)
    assert await refused(lambda: stranger.Case.create({"Subject": "x"}), SalesforceExpiredSession) == (
        401, "INVALID_SESSION_ID")
    supervisor, agent = org.client(org.users.supervisor), org.client(org.users.agent)
    assert await refused(lambda: supervisor.Contact.create({"FirstName": "no last name"}),
                         SalesforceMalformedRequest) == (400, "REQUIRED_FIELD_MISSING")
    queue_case = (await run(lambda: supervisor.Case.create({"Subject": "the queue's"})))["id"]
    assert await refused(lambda: agent.Case.update(queue_case, {"Subject": "not mine"}), SalesforceRefusedRequest) == (
        403, "INSUFFICIENT_ACCESS_OR_READONLY")
    assert await refused(lambda: supervisor.Case.get("500" + "0" * 15), SalesforceResourceNotFound) == (
        404, "NOT_FOUND")
    assert await run(lambda: supervisor.Case.update(queue_case, {
        "Status": "Closed", "Reason": "Other", "Resolution": "Put out"})) == 204
    assert await refused(lambda: supervisor.Case.update(queue_case, {"Subject": "after closing"}),
                         SalesforceMalformedRequest) == (400, "ENTITY_IS_LOCKED")
