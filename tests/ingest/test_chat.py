"""The generic chat webhook over real HTTP on loopback, through the whole pipeline. Requests are signed
as the channel documents: X-Casegate-Signature = sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from casegate.config import Settings
from casegate.store.models import Contact, ConversationEntry, ProcessedMessage

from tests.pipeline import Pipeline, settings_for, start_pipeline

SECRET = "chat-widget-secret"
ADA = {"id": "visitor-42", "name": "Ada Lovelace", "email": "Ada@Example.org", "phone": "+44 20 7946 0000"}


def channels(**chat: Any) -> dict[str, Any]:
    return {"chat": {"enabled": True, "secret": SECRET, **chat}}


def message(mid: str, text: str | None = "My invoice is wrong", visitor: dict[str, Any] | None = None,
            **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": mid, "conversation_id": "conv-77", "sent_at": "2026-06-02T14:03:11Z",
                            "visitor": visitor or ADA, "page_url": "https://example.com/billing", **more}
    if text is not None:
        body["text"] = text
    return body


def signed(body: bytes, secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if stamp is None else stamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Casegate-Timestamp": ts, "X-Casegate-Signature": f"sha256={mac}", "Content-Type": "application/json"}


async def post(p: Pipeline, payload: dict[str, Any] | bytes,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}/hooks/chat", data=raw,
            headers=signed(raw) if headers is None else headers) as r:
        return r.status, await r.json()


async def test_a_visitor_conversation_is_one_chat_case_and_after_close_the_policy_applies(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels=channels(closed_case_policy="new_case")))
    try:
        assert await post(p, message("m-1", "My invoice is wrong\nIt shows two charges")) == (200, {"accepted": 1})
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        assert (case["Origin"], case["Subject"], case["ContactEmail"]) == ("Chat", "My invoice is wrong",
                                                                           "ada@example.org")
        # more of the conversation, one a redelivery and two in one request: still one case
        assert (await post(p, message("m-1", "My invoice is wrong\nIt shows two charges")))[0] == 200
        shot = {"url": "https://cdn.example.com/u/shot.png", "content_type": "image/png", "name": "shot.png"}
        both = {"messages": [message("m-2", "Here is a screenshot", attachments=[shot]),
                             message("m-3", None, visitor={"id": "visitor-42"}, attachments=[shot])]}
        assert await post(p, both) == (200, {"accepted": 2})
        await p.wait_idle()
        assert len(await p.cases()) == 1
        full = await p.case(case["CaseNumber"])
        entries = full["ConversationEntries"]
        assert [(e["MessageIdentifier"], e["EntryType"]) for e in entries] == [
            ("m-1", "Text"), ("m-2", "Media"), ("m-3", "Media")]
        assert (entries[0]["Channel"], entries[0]["ActorName"], entries[0]["ActorIdentifier"]) == (
            "chat", "Ada Lovelace", "+442079460000")
        assert json.loads(entries[1]["MediaUrls"]) == [shot["url"]]
        details = json.loads(entries[0]["Details"])
        assert details == {"visitor_id": "visitor-42", "conversation_id": "conv-77",
                           "sent_at": "2026-06-02T14:03:11+00:00", "page_url": "https://example.com/billing"}
        assert entries[0]["EntryTime"].startswith("2026-06-02T14:03:11")
        assert await p.count(Contact) == 1
        # closed: this channel's policy opens a new case with the old one as parent
        assert p.daemon.worker is not None
        await p.daemon.worker.service.change_status(case["CaseNumber"], "Closed")
        assert (await post(p, message("m-4", "Hello again")))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        assert (await p.case(cases[1]["CaseNumber"]))["ParentId"] == full["Id"]
    finally:
        await p.daemon.stop()


async def test_a_closed_chat_case_is_reopened_under_the_default_policy(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        assert (await post(p, message("m-1")))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        assert p.daemon.worker is not None
        await p.daemon.worker.service.change_status(case["CaseNumber"], "Closed")
        assert (await post(p, message("m-2", "Still wrong")))[0] == 200
        await p.wait_idle()
        [again] = await p.cases()
        assert (again["CaseNumber"], again["IsClosed"], again["Status"]) == (case["CaseNumber"], False, "Working")
    finally:
        await p.daemon.stop()


async def test_unsigned_tampered_stale_and_malformed_messages_are_refused_and_nothing_is_published(
        tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        raw = json.dumps(message("m-x")).encode()
        now = int(time.time())
        good = signed(raw)
        refused = [
            (raw.replace(b"invoice", b"account"), good, 403),
            (raw, signed(raw, secret="guessed"), 403),
            (raw, {k: v for k, v in good.items() if k != "X-Casegate-Timestamp"}, 401),
            (raw, {k: v for k, v in good.items() if k != "X-Casegate-Signature"}, 401),
            (raw, signed(raw, stamp=now - 330), 403),
            (raw, signed(raw, stamp=now + 330), 403),
        ]
        for body, headers, status in refused:
            got, answer = await post(p, body, headers)
            assert (got, "error" in answer) == (status, True), headers
        malformed = [
            ({k: v for k, v in message("m-x").items() if k != "id"}, "id"),
            (message("m-x", visitor={"name": "No Id"}), "visitor.id"),
            (message("m-x", visitor={"id": "v", "email": "not an address"}), "visitor.email"),
            (message("m-x", visitor={"id": "v", "phone": "call me"}), "visitor.phone"),
            (message("m-x", None), "text"),
            (message("m-x", attachments=[{"url": "javascript:alert(1)"}]), "attachments[0].url"),
            (message("m-x", sent_at="yesterday"), "sent_at"),
            ({"messages": [message("m-y"), message("m-x", visitor=None) | {"visitor": 7}]}, "messages[1].visitor"),
        ]
        for payload, field in malformed:
            status, answer = await post(p, payload)
            assert (status, answer.get("field")) == (400, field), field
        assert (await post(p, b"not json"))[0] == 400
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert (await p.cases(), await p.count(ProcessedMessage)) == ([], 0)  # ... nor the store
    finally:
        await p.daemon.stop()


async def test_bus_failing_answers_503_and_stores_nothing_then_the_retry_is_one_message(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(),
                                          bus={"local": {"busy_timeout": 0.3}}))
    try:
        raw = json.dumps(message("m-outage")).encode()
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        status, _ = await post(p, raw)
        holder.execute("ROLLBACK")
        holder.close()
        assert status == 503
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert (await p.count(ProcessedMessage), await p.count(ConversationEntry)) == (0, 0)  # ... nor the store
        assert (await post(p, raw))[0] == 200
        assert (await post(p, raw))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert (len(await p.cases()), await p.count(ConversationEntry)) == (1, 1)
    finally:
        await p.daemon.stop()
