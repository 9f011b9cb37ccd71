"""The REST API with what was built beside the record layer, through the live daemon's public port: knowledge
articles an admin writes and publishes, suggested for a case by its words (`sobjects/Case/suggestedArticles`)
and attached to it (CaseArticle), found by SOQL, as assets are; an outgoing EmailMessage reaching a real SMTP
sink with the case's thread token; a ConversationEntry on a WhatsApp case queued and delivered within the
24-hour window, refused outside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from casegate.ingest.app.daemon import thread_secret
from casegate.store.models import ConversationEntry, EmailMessage, EmailStatus
from casegate.store.thread_token import make_token
from sqlalchemy import update

from tests.ingest import test_meta, test_replies_meta
from tests.ingest.test_acknowledgement import Sink, outbound, serve, wait_until
from tests.ingest.test_api_http import ApiClient, Users, V, error_of, make_users
from tests.pipeline import Pipeline, mail, settings_for, start_pipeline


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    yield from serve(Sink())


@pytest.fixture
async def graph() -> AsyncIterator[test_replies_meta.FakeGraph]:
    fake = test_replies_meta.FakeGraph()
    await fake.server.start()
    try:
        yield fake
    finally:
        await fake.server.close()


@pytest.fixture
async def daemon(tmp_path: Path, sink: tuple[Sink, int], graph: test_replies_meta.FakeGraph
                 ) -> AsyncIterator[Pipeline]:
    """A daemon relaying mail to the sink and answering WhatsApp through the fake Graph API."""
    meta = {"enabled": True, "app_secret": test_replies_meta.APP_SECRET, "verify_token": "let-me-in",
            "whatsapp_access_token": test_replies_meta.WA_TOKEN, "graph_api_base_url": graph.base_url}
    settings = settings_for("local-sqlite", tmp_path, api={"token_cache_seconds": 0},
                            outbound=outbound(sink[1], retry_initial=0.2, retry_max=0.5),
                            routing=[{"address": "support@localhost", "auto_acknowledge": False}],
                            channels={"meta": meta})
    p = await start_pipeline(settings)
    try:
        yield p
    finally:
        await p.daemon.stop()


@pytest.fixture
async def users(daemon: Pipeline) -> Users:
    assert daemon.daemon.db is not None
    return await make_users(daemon.daemon.db)


@pytest.fixture
async def client(daemon: Pipeline) -> AsyncIterator[ApiClient]:
    async with aiohttp.ClientSession() as http:
        yield ApiClient(http, f"http://127.0.0.1:{daemon.daemon.http_port}")


async def mail_case(p: Pipeline, subject: str) -> tuple[dict[str, Any], str]:
    raw, message_id = mail(subject, "It smokes.")
    assert (await p.send(raw))[0] == 250
    [case] = [c for c in await p.wait_for(lambda cs: any(c["Subject"] == subject for c in cs))
              if c["Subject"] == subject]
    return case, message_id


def suggested(**params: str) -> str:
    return f"{V}/sobjects/Case/suggestedArticles?{urlencode(params)}"


async def test_an_admin_publishes_an_article_it_is_suggested_by_words_and_attached_to_a_case(
        daemon: Pipeline, client: ApiClient, users: Users) -> None:
    admin, agent, supervisor = client.as_(users.admin), client.as_(users.agent), client.as_(users.supervisor)
    article = {"Title": "Printer on fire", "Summary": "Unplug the printer, then call us.",
               "Body__c": "<p>Pull the plug. Do not open the fuser.</p>"}
    assert error_of(await agent.post(f"{V}/sobjects/Knowledge__kav", article)) == (
        403, "INSUFFICIENT_ACCESS_OR_READONLY")
    made = await admin.post(f"{V}/sobjects/Knowledge__kav", article)
    assert made.status == 201, made.body
    article_id = made.body["id"]
    assert (await admin.get(suggested(subject="printer"))).body == []  # a draft is not suggested
    assert (await admin.patch(f"{V}/sobjects/Knowledge__kav/{article_id}", {"PublishStatus": "Online"})).status == 204
    assert error_of(await agent.patch(f"{V}/sobjects/Knowledge__kav/{article_id}", {"Title": "x"})) == (
        403, "INSUFFICIENT_ACCESS_OR_READONLY")

    found = await agent.get(suggested(subject="My printer is burning", description="smoke and fire", limit="3",
                                      language="en_US"))
    assert found.status == 200, found.body
    [hit] = found.body
    read = await agent.get(f"{V}/sobjects/Knowledge__kav/{article_id}")
    assert read.status == 200
    assert hit == {"attributes": {"type": "Knowledge__kav", "url": f"{V}/sobjects/Knowledge__kav/{article_id}"},
                   **{k: read.body[k] for k in ("Id", "KnowledgeArticleId", "ArticleNumber", "Title", "Summary",
                                                "UrlName", "Language", "VersionNumber", "LastPublishedDate")}}
    assert hit["UrlName"] == "Printer-on-fire" and hit["LastPublishedDate"].endswith("+0000")
    assert (await agent.get(hit["attributes"]["url"])).status == 200
    assert (await agent.get(suggested(subject="invoice refund"))).body == []
    assert (await agent.get(suggested(subject="printer", language="de_DE"))).body == []
    assert error_of(await agent.get(suggested(language="en_US"))) == (400, "MISSING_ARGUMENT")
    assert error_of(await agent.get(suggested(subject="printer", limit="0"))) == (400, "NUMBER_OUTSIDE_VALID_RANGE")
    assert error_of(await agent.get(f"{V}/sobjects/Contact/suggestedArticles?subject=printer")) == (404, "NOT_FOUND")

    case, _ = await mail_case(daemon, "Printer on fire again")
    link = await supervisor.post(f"{V}/sobjects/CaseArticle", {"CaseId": case["Id"],
                                                               "KnowledgeArticleId": hit["KnowledgeArticleId"]})
    assert link.status == 201, link.body
    assert error_of(await supervisor.patch(f"{V}/sobjects/CaseArticle/{link.body['id']}",
                                           {"IsSharedByEmail": True})) == (400, "INVALID_TYPE_FOR_OPERATION")
    soql = f"SELECT Id, KnowledgeArticleVersion.Title FROM CaseArticle WHERE CaseId = '{case['Id']}'"
    rows = await agent.get(f"{V}/query?q={quote(soql)}")
    assert rows.status == 200, rows.body
    assert [(r["Id"], r["KnowledgeArticleVersion"]["Title"]) for r in rows.body["records"]] == [
        (link.body["id"], "Printer on fire")]
    shown = await daemon.case(case["CaseNumber"])
    assert "AttachArticleEvent" in [f["Type"] for f in shown["Feed"]]
    assert (await supervisor.delete(f"{V}/sobjects/Case/{case['Id']}")).status == 204  # the attachment goes with it
    assert (await agent.get(f"{V}/query?q={quote(soql)}")).body["records"] == []


async def test_assets_are_queryable_with_their_account_and_cases(client: ApiClient, users: Users) -> None:
    api = client.as_(users.supervisor)
    account = (await api.post(f"{V}/sobjects/Account", {"Name": "Acme", "Domain": "acme.example"})).body["id"]
    asset = (await api.post(f"{V}/sobjects/Asset", {"Name": "Printer 9000", "AccountId": account,
                                                    "SerialNumber": "SN-9"})).body["id"]
    case = await api.post(f"{V}/sobjects/Case", {"Subject": "Jammed", "AssetId": asset})
    assert case.status == 201, case.body
    soql = "SELECT Name, Account.Name, (SELECT Subject FROM Cases) FROM Asset WHERE SerialNumber = 'SN-9'"
    rows = await api.get(f"{V}/query?q={quote(soql)}")
    assert rows.status == 200, rows.body
    [row] = rows.body["records"]
    assert (row["Name"], row["Account"]["Name"], [c["Subject"] for c in row["Cases"]["records"]]) == (
        "Printer 9000", "Acme", ["Jammed"])
    by_asset = await api.get(f"{V}/query?q={quote('SELECT Asset.SerialNumber FROM Case')}")
    assert [r["Asset"]["SerialNumber"] for r in by_asset.body["records"]] == ["SN-9"]


async def test_an_outgoing_email_message_reaches_the_relay_with_the_thread_token(
        daemon: Pipeline, client: ApiClient, users: Users, sink: tuple[Sink, int]) -> None:
    handler, _ = sink
    case, first = await mail_case(daemon, "Scanner jammed")
    made = await client.as_(users.supervisor).post(f"{V}/sobjects/EmailMessage", {
        "ParentId": case["Id"], "TextBody": "A technician comes tomorrow.", "CcAddress": "boss@example.org"})
    assert made.status == 201, made.body
    assert await wait_until(lambda: len(handler.received) == 2)  # one mail a recipient, as the outbox sends
    token = make_token(thread_secret(daemon.settings), case["Id"])
    assert sorted(rcpts[0] for _, rcpts, _ in handler.received) == ["ada@example.org", "boss@example.org"]
    sent = message_from_bytes(handler.received[0][2], policy=default_policy)
    assert (sent["From"], sent["Subject"], sent["In-Reply-To"]) == (
        "support@localhost", f"Re: Scanner jammed {token}", first)
    assert sent.get_content().strip() == "A technician comes tomorrow."

    async def sent_status() -> bool:
        return await daemon.rows(EmailMessage.Id, EmailMessage.Status) == [
            (case["SourceId"], EmailStatus.NEW), (made.body["id"], EmailStatus.SENT)]

    assert await wait_until(sent_status)
    refused = await client.as_(users.supervisor).post(f"{V}/sobjects/EmailMessage", {
        "ParentId": case["Id"], "TextBody": "x", "FromAddress": "me@example.org"})
    assert error_of(refused) == (400, "FIELD_INTEGRITY_EXCEPTION") and refused.body[0]["fields"] == ["FromAddress"]


async def test_a_whatsapp_reply_is_queued_inside_the_window_and_refused_outside_it(
        daemon: Pipeline, client: ApiClient, users: Users, graph: test_replies_meta.FakeGraph) -> None:
    customer = test_replies_meta.CUSTOMER
    payload = test_meta.whatsapp(test_meta.wa_text("wamid.API1", "Where is my order?", sender=customer))
    assert await test_meta.post(daemon, payload, secret=test_replies_meta.APP_SECRET) == (200, {"accepted": 1})
    [case] = await daemon.wait_for(lambda cs: len(cs) == 1)
    supervisor = client.as_(users.supervisor)
    made = await supervisor.post(f"{V}/sobjects/ConversationEntry", {"ParentId": case["Id"],
                                                                     "Message": "It ships today."})
    assert made.status == 201, made.body
    assert await wait_until(lambda: len(graph.sent) == 1)
    assert graph.sent[0][1] == {"messaging_product": "whatsapp", "to": customer, "type": "text",
                                "text": {"body": "It ships today."}}
    entry = await supervisor.get(f"{V}/sobjects/ConversationEntry/{made.body['id']}")
    assert (entry.body["ActorType"], entry.body["Channel"]) == ("Agent", "whatsapp")

    assert daemon.daemon.db is not None
    yesterday = datetime.now(UTC) - timedelta(hours=24, minutes=1)  # the customer wrote a day ago
    await daemon.daemon.db.transaction(lambda c: c.execute(
        update(ConversationEntry).where(ConversationEntry.ActorType == "EndUser").values(EntryTime=yesterday)))
    late = await supervisor.post(f"{V}/sobjects/ConversationEntry", {"ParentId": case["Id"], "Message": "Still?"})
    assert error_of(late) == (400, "FIELD_INTEGRITY_EXCEPTION") and late.body[0]["fields"] == ["Message"]
    assert "24 hours" in late.body[0]["message"]
    assert len(graph.sent) == 1
    assert error_of(await client.as_(users.agent).post(f"{V}/sobjects/ConversationEntry", {
        "ParentId": case["Id"], "Message": "Not my case"})) == (403, "INSUFFICIENT_ACCESS_OR_READONLY")
