"""The Telegram Bot API webhook over real HTTP on loopback, through the whole pipeline: requests carry
the secret token header exactly as Telegram sends it (there is no body signature)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings
from casegate.store.models import Contact, ContactHandle, ConversationEntry, ProcessedMessage

from tests.pipeline import Pipeline, settings_for, start_pipeline

SECRET = "s3cr3t_Token-for-the-bot"
PATH = "/hooks/telegram"
ANA = {"id": 7012345678, "is_bot": False, "first_name": "Ana", "last_name": "Ribeiro", "username": "ana_r",
       "language_code": "pt"}


def channels(**more: Any) -> dict[str, Any]:
    return {"telegram": {"enabled": True, "secret_token": SECRET, **more}}


def update(update_id: int, text: str | None = "Hello", *, kind: str = "message", sender: dict[str, Any] | None = None,
           message_id: int = 1, **fields: Any) -> dict[str, Any]:
    user = sender or ANA
    message: dict[str, Any] = {"message_id": message_id, "date": 1780402300, "from": user,
                               "chat": {"id": user["id"], "type": "private", "first_name": user["first_name"]},
                               **fields}
    if text is not None:
        message["text"] = text
    return {"update_id": update_id, kind: message}


async def post(p: Pipeline, body: dict[str, Any] | bytes, secret: str | None = SECRET) -> tuple[int, str]:
    """POST as Telegram does: the Update as JSON, the secret token in its header."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}{PATH}", data=raw, headers=headers) as r:
        return r.status, await r.text()


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(closed_case_policy="new_case")))
    try:
        yield p
    finally:
        await p.daemon.stop()


async def test_a_conversation_is_one_telegram_case_with_its_contact_and_a_replay_is_one_message(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels=channels()))
    try:
        assert await post(p, update(731904455, "My parcel B-2210 is lost\nPlease help")) == (200, "")
        assert (await post(p, update(731904455, "My parcel B-2210 is lost\nPlease help")))[0] == 200  # redelivery
        assert (await post(p, update(731904456, "Any news?", message_id=2)))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [case] = await p.cases()
        assert (case["Origin"], case["Subject"], case["SuppliedName"]) == (
            "Telegram", "My parcel B-2210 is lost", "Ana Ribeiro")
        shown = await p.case(case["CaseNumber"])
        entries = shown["ConversationEntries"]
        assert [(e["Channel"], e["EntryType"], e["ActorIdentifier"], e["ActorName"], e["MessageIdentifier"],
                 e["Message"]) for e in entries] == [
            ("telegram", "Text", "7012345678", "Ana Ribeiro", "731904455", "My parcel B-2210 is lost\nPlease help"),
            ("telegram", "Text", "7012345678", "Ana Ribeiro", "731904456", "Any news?")]
        details = json.loads(entries[0]["Details"])
        assert (details["username"], details["chat_id"], details["message_id"]) == ("ana_r", "7012345678", "1")
        contacts = await p.rows(Contact.Id, Contact.FirstName, Contact.LastName)
        assert [c[1:] for c in contacts] == [("Ana", "Ribeiro")]
        assert case["ContactId"] == contacts[0][0]
        assert await p.rows(ContactHandle.Channel, ContactHandle.Handle) == [("telegram", "7012345678")]
        assert await p.count(ConversationEntry) == 2 and await p.count(ProcessedMessage) == 2
    finally:
        await p.daemon.stop()


async def test_a_missing_or_wrong_secret_token_is_refused_and_nothing_is_published(local: Pipeline) -> None:
    status, text = await post(local, update(1, "forged"), secret=None)
    assert (status, json.loads(text)["error"]) == (401, "X-Telegram-Bot-Api-Secret-Token missing")
    status, text = await post(local, update(2, "forged"), secret=SECRET + "x")
    assert (status, json.loads(text)["error"]) == (403, "X-Telegram-Bot-Api-Secret-Token does not match")
    assert (await post(local, update(2, "forged"), secret=""))[0] == 401
    # the next genuine update from the same sender (same bus partition) is the only thing processed
    assert (await post(local, update(3, "genuine")))[0] == 200
    await local.wait_for(lambda cs: len(cs) == 1)
    await local.wait_idle()
    assert await local.count(ProcessedMessage) == 1
    [entry] = (await local.case("00001000"))["ConversationEntries"]
    assert entry["Message"] == "genuine"


async def test_media_edits_and_updates_that_are_not_customer_messages(local: Pipeline) -> None:
    photo = update(10, None, caption="Receipt for order B-2210", photo=[
        {"file_id": "AgAC-small", "file_unique_id": "AQADs1", "width": 90, "height": 67, "file_size": 1180},
        {"file_id": "AgAC-large", "file_unique_id": "AQADs2", "width": 1280, "height": 960, "file_size": 90211}])
    document = update(11, None, message_id=2, document={
        "file_id": "BQAC-doc", "file_unique_id": "AgADdoc", "file_name": "invoice.pdf",
        "mime_type": "application/pdf", "file_size": 5120})
    location = update(12, None, message_id=3, location={"latitude": 38.7223, "longitude": -9.1393})
    edit = update(13, "Receipt for order B-2211 (typo)", kind="edited_message", edit_date=1780402400)
    bot = update(14, "I am a bot", sender={"id": 555, "is_bot": True, "first_name": "OtherBot"})
    ignored = [
        {"update_id": 15, "callback_query": {"id": "cb1", "from": ANA, "data": "yes"}},
        {"update_id": 16, "my_chat_member": {"chat": {"id": 1, "type": "private"}, "from": ANA, "date": 1}},
        {"update_id": 17, "channel_post": {"message_id": 9, "date": 1, "chat": {"id": -100, "type": "channel"},
                                           "text": "announcement"}},
        bot,
    ]
    for body in [photo, document, location, edit, *ignored]:
        assert await post(local, body) == (200, "")
    await local.wait_for(lambda cs: len(cs) == 1)
    await local.wait_idle()
    assert await local.count(ProcessedMessage) == 4
    [case] = await local.cases()
    assert case["Subject"] == "Receipt for order B-2210"
    entries = (await local.case(case["CaseNumber"]))["ConversationEntries"]
    assert [(e["EntryType"], e["MessageIdentifier"], e["Message"], json.loads(e["MediaUrls"] or "[]"))
            for e in entries] == [
        ("Media", "10", "Receipt for order B-2210", ["AgAC-large"]),
        ("Media", "11", None, ["BQAC-doc"]),
        ("Media", "12", None, ["geo:38.7223,-9.1393"]),
        ("Text", "13", "Receipt for order B-2211 (typo)", [])]
    details = [json.loads(e["Details"]) for e in entries]
    assert (details[0]["media_type"], details[0]["file_id"], details[0]["mime_type"]) == (
        "photo", "AgAC-large", "image/jpeg")
    assert (details[1]["media_type"], details[1]["file_name"], details[1]["mime_type"]) == (
        "document", "invoice.pdf", "application/pdf")
    assert details[2]["media_type"] == "location"
    assert (details[3]["edited"], details[3]["edit_date"], details[3]["message_id"]) == ("true", "1780402400", "1")


@pytest.mark.parametrize(("body", "field"), [
    (b'{"update_id": 1, "message": ', None),
    (b"[1, 2]", None),
    (b'{"message": {}}', "update_id"),
    (b'{"update_id": "7", "message": {}}', "update_id"),
    (b'{"update_id": 7, "message": "hi"}', "message"),
    (b'{"update_id": 7, "message": {"message_id": 1, "from": {"first_name": "A"}, "chat": {"id": 1}}}',
     "message.from.id"),
    (b'{"update_id": 7, "message": {"message_id": 1, "from": {"id": 1}, "chat": {"id": 1}, "photo": []}}',
     "message.photo"),
])
async def test_malformed_updates_are_refused_with_400_naming_the_field(
        local: Pipeline, body: bytes, field: str | None) -> None:
    status, text = await post(local, body)
    answer = json.loads(text)
    assert status == 400 and answer.get("field") == field
    assert answer["error"]


async def test_bus_failing_answers_503_and_stores_nothing_then_the_retry_makes_one_case(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(),
                                          bus={"local": {"busy_timeout": 0.3}}))
    try:
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        status, _ = await post(p, update(100, "during the outage"))
        assert status == 503
        holder.execute("ROLLBACK")
        holder.close()
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert await p.count(ProcessedMessage) == 0 and await p.cases() == []  # ... nor the store
        assert (await post(p, update(100, "during the outage")))[0] == 200  # Telegram retries
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert len(await p.cases()) == 1
        assert await p.count(ConversationEntry) == 1 and await p.count(ProcessedMessage) == 1
    finally:
        await p.daemon.stop()


async def test_after_the_case_is_closed_the_channel_policy_opens_a_new_case_with_its_parent(local: Pipeline) -> None:
    assert (await post(local, update(200, "Broken again")))[0] == 200
    [first] = await local.wait_for(lambda cs: len(cs) == 1)
    assert local.daemon.worker is not None
    await local.daemon.worker.service.change_status(first["CaseNumber"], "Closed")
    assert (await post(local, update(201, "Still broken", message_id=2)))[0] == 200
    cases = await local.wait_for(lambda cs: len(cs) == 2)
    assert [c["CaseNumber"] for c in cases] == ["00001000", "00001001"]
    assert (cases[1]["ParentId"], cases[1]["ContactId"], cases[1]["Status"]) == (first["Id"], first["ContactId"], "New")
    assert cases[0]["Status"] == "Closed"
    assert await local.count(Contact) == 1


async def test_a_rotated_secret_file_is_read_per_request_and_a_missing_one_answers_503(tmp_path: Path) -> None:
    secret_file = tmp_path / "telegram.secret"
    secret_file.write_text(SECRET + "\n")
    settings = settings_for("local-sqlite", tmp_path,
                            channels={"telegram": {"enabled": True, "secret_token_file": str(secret_file)}})
    p = await start_pipeline(settings)
    try:
        assert (await post(p, update(1)))[0] == 200
        secret_file.write_text("a-new-token\n")  # the operator rotates the secret: no restart
        assert (await post(p, update(2)))[0] == 403
        assert (await post(p, update(3), secret="a-new-token"))[0] == 200
        secret_file.unlink()  # mid-rotation: Telegram is told to retry, not that it is unauthorised
        status, body = await post(p, update(4), secret="a-new-token")
        assert status == 503 and "retry" in body
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert await p.count(ProcessedMessage) == 2
    finally:
        await p.daemon.stop()
