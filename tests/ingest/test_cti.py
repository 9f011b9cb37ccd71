"""Phone calls as `cti.call.v1` events (reference/channels.md §8.4) and the screen-pop lookup, over real
HTTP on loopback through the whole pipeline. Events are signed as the spec says: HMAC-SHA256 over
timestamp + "." + body, computed here."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from casegate.config import Settings
from casegate.store.models import Contact, ConversationEntry, ProcessedMessage
from sqlalchemy import select

from tests.pipeline import Pipeline, settings_for, start_pipeline

SECRET = "cti-signing-secret"
TOKEN = "softphone-lookup-token"
ANI = "+441632960123"
DNIS = "+448081570000"
RULES = [{"disposition": "abandoned", "action": "ignore"}, {"disposition": "CallBack", "action": "new_case"},
         {"disposition": "*", "action": "log"}]


def channels(**cti: Any) -> dict[str, Any]:
    return {"cti": {"enabled": True, "secret": SECRET, "lookup_token": TOKEN, "dispositions": RULES, **cti},
            "chat": {"enabled": True, "secret": "chat-secret"}}


def event(call_id: str, *, ani: str | None = ANI, kind: str = "call.ended", disposition: str | None = "completed",
          **call: Any) -> dict[str, Any]:
    """A call event as §8.4 shows it: 3 min 12 s, answered by agent sam in queue billing."""
    body: dict[str, Any] = {
        "id": call_id, "root_id": call_id, "direction": "inbound", "ani": ani, "dnis": DNIS, "caller_name": None,
        "queue": {"id": "q-billing", "name": "billing"}, "agent": {"id": "agent-4411", "name": "sam"},
        "started_at": "2026-06-02T13:59:40Z", "answered_at": "2026-06-02T14:00:02Z",
        "ended_at": "2026-06-02T14:02:52Z", "wait_seconds": 22, "talk_seconds": 170, "hold_seconds": 0,
        "disposition": disposition, "wrapup_code": None, "notes": None,
        "recording": {"url": f"s3://recordings/{call_id}.wav", "duration_seconds": 170}, "attributes": {},
    }
    body.update(call)
    return {"schema": "cti.call.v1", "event_id": str(uuid.uuid4()), "event_type": kind,
            "occurred_at": "2026-06-02T14:02:53Z", "source": {"platform": "test", "instance": "loopback"},
            "call": body}


def signed(body: bytes, secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if stamp is None else stamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-CTI-Timestamp": ts, "X-CTI-Signature": f"v1={mac}", "Content-Type": "application/json"}


async def post(p: Pipeline, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
               path: str = "/hooks/cti") -> tuple[int, dict[str, Any]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}{path}", data=raw,
            headers=signed(raw) if headers is None else headers) as r:
        return r.status, await r.json()


async def lookup(p: Pipeline, ani: str, token: str | None = TOKEN, *, encode: bool = True) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    query = ani.replace("+", "%2B") if encode else ani
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{p.daemon.http_port}/cti/lookup?ani={query}", headers=headers) as r:
        return r.status, await r.json()


async def ledger(p: Pipeline) -> dict[str, tuple[str, str | None]]:
    """External id → (outcome, rule) of every message the worker handled."""
    assert p.daemon.db is not None
    async with p.daemon.db.session() as s:
        rows = (await s.execute(select(ProcessedMessage.ExternalId, ProcessedMessage.Outcome,
                                       ProcessedMessage.Rule))).all()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_calls_open_a_phone_case_then_log_on_it_and_the_lookup_pops_the_open_cases(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels=channels()))
    try:
        assert await post(p, event("call-1")) == (200, {"accepted": 1})
        [first] = await p.wait_for(lambda cs: len(cs) == 1)
        case = await p.case(first["CaseNumber"])
        assert (case["Origin"], case["Subject"]) == ("Phone", "Inbound call, 3 min 12 s, answered by agent sam "
                                                              "(queue billing)")
        [entry] = case["ConversationEntries"]
        assert (entry["Channel"], entry["EntryType"], entry["ActorIdentifier"], entry["Recipient"],
                entry["MessageIdentifier"]) == ("phone", "Call", ANI, DNIS, "call-1:call.ended")
        details = json.loads(entry["Details"])
        assert {k: details[k] for k in ("call_id", "ani", "dnis", "agent_name", "queue_name", "disposition",
                                        "duration_seconds", "recording_url", "wait_seconds")} == {
            "call_id": "call-1", "ani": ANI, "dnis": DNIS, "agent_name": "sam", "queue_name": "billing",
            "disposition": "completed", "duration_seconds": "192", "recording_url": "s3://recordings/call-1.wav",
            "wait_seconds": "22"}
        assert all(isinstance(v, str) for v in details.values())
        assert p.daemon.db is not None
        async with p.daemon.db.session() as s:
            phones = (await s.execute(select(Contact.Phone, Contact.PhoneKey).where(
                Contact.Id == case["ContactId"]))).one()
        assert tuple(phones) == (ANI, ANI)

        # a second call from the same number (written nationally by the CTI this time) is logged on the
        # open case; the same call delivered again, under another event_id, is one entry
        assert (await post(p, event("call-2", ani="+44 1632 960123", disposition="voicemail")))[0] == 200
        assert (await post(p, event("call-1")))[0] == 200
        await p.wait_idle()
        assert len(await p.cases()) == 1
        entries = (await p.case(first["CaseNumber"]))["ConversationEntries"]
        assert [e["MessageIdentifier"] for e in entries] == ["call-1:call.ended", "call-2:call.ended"]
        assert entries[1]["Message"].startswith("Inbound call, 3 min 12 s, answered by agent sam")
        assert (await ledger(p))["call-2:call.ended"] == ("threaded", "caller's open case")

        # a "callback" disposition always opens its own case: the lookup lists both, most recent first
        assert (await post(p, event("call-3", disposition="callback")))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        second = cases[1]["CaseNumber"]
        status, found = await lookup(p, ANI)
        assert status == 200
        [contact] = found["contacts"]
        assert (found["ani"], contact["Id"], contact["Phone"]) == (ANI, case["ContactId"], ANI)
        assert [c["CaseNumber"] for c in found["cases"]] == [second, first["CaseNumber"]]
        assert set(found["cases"][0]) >= {"CaseNumber", "Subject", "Status", "Priority", "OwnerId", "CreatedDate",
                                          "LastModifiedDate"}
        assert p.daemon.worker is not None
        await p.daemon.worker.service.change_status(second, "Closed")
        assert [c["CaseNumber"] for c in (await lookup(p, ANI))[1]["cases"]] == [first["CaseNumber"]]
    finally:
        await p.daemon.stop()


async def test_a_caller_who_chatted_before_gets_the_call_on_the_chat_case(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        chat = json.dumps({"id": "m-1", "visitor": {"id": "v-9", "name": "Ada Lovelace", "email": "ada@example.org",
                                                     "phone": ANI}, "text": "Please call me about my bill"}).encode()
        ts = str(int(time.time()))
        mac = hmac.new(b"chat-secret", ts.encode() + b"." + chat, hashlib.sha256).hexdigest()
        assert (await post(p, chat, {"X-Casegate-Timestamp": ts, "X-Casegate-Signature": f"sha256={mac}"},
                           path="/hooks/chat"))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        assert case["Origin"] == "Chat"
        assert (await post(p, event("call-7")))[0] == 200
        await p.wait_idle()
        assert len(await p.cases()) == 1
        entries = (await p.case(case["CaseNumber"]))["ConversationEntries"]
        assert [(e["Channel"], e["EntryType"]) for e in entries] == [("chat", "Text"), ("phone", "Call")]
        assert await p.count(Contact) == 1
        assert (await ledger(p))["call-7:call.ended"] == ("threaded", "caller's open case")
    finally:
        await p.daemon.stop()


async def test_disposition_rules_and_the_other_events_of_a_call(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        # abandoned in the queue: kept on the ledger as suppressed, no case
        abandoned = event("call-a", disposition="Abandoned", answered_at=None, agent=None)
        ringing = event("call-b", kind="call.offered", disposition=None, ended_at=None)
        assert (await post(p, {"events": [abandoned, ringing]})) == (200, {"accepted": 2})
        await p.wait_idle()
        assert await p.cases() == []
        assert await ledger(p) == {"call-a:call.ended": ("suppressed", "ignored"),
                                   "call-b:call.offered": ("suppressed", "ignored")}
        # the ended call and its later events: one case, the wrap-up and recording on it
        ended = event("call-b", wrapup_code="billing-dispute", notes="Disputes a duplicate charge")
        wrapup = event("call-b", kind="call.wrapup", wrapup_code="billing-dispute", notes="Disputes a duplicate charge")
        recording = event("call-b", kind="recording.available")
        assert (await post(p, {"events": [ended, wrapup, recording]}))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        entries = (await p.case(case["CaseNumber"]))["ConversationEntries"]
        assert [e["MessageIdentifier"] for e in entries] == ["call-b:call.ended", "call-b:call.wrapup",
                                                              "call-b:recording.available"]
        assert entries[0]["Message"].splitlines()[1:] == ["Wrap-up: billing-dispute", "Disputes a duplicate charge"]
        assert json.loads(entries[2]["MediaUrls"]) == ["s3://recordings/call-b.wav"]
        # callback → a case of its own even though the caller has one open
        assert (await post(p, event("call-c", disposition="callback")))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        assert [c["Origin"] for c in cases] == ["Phone", "Phone"]
        assert (await ledger(p))["call-c:call.ended"] == ("created", "new")
        assert await p.count(Contact) == 1
    finally:
        await p.daemon.stop()


async def test_unsigned_tampered_stale_and_malformed_events_are_refused_and_nothing_is_published(
        tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(bearer_token="eb-key")))
    try:
        raw = json.dumps(event("call-x")).encode()
        now = int(time.time())
        good = signed(raw)
        tampered = raw.replace(b"sam", b"eve")
        cases = [
            (tampered, good, 403),
            (raw, signed(raw, secret="not-the-secret"), 403),
            (raw, {k: v for k, v in good.items() if k != "X-CTI-Timestamp"}, 401),
            (raw, {k: v for k, v in good.items() if k != "X-CTI-Signature"}, 401),
            (raw, {"Content-Type": "application/json"}, 401),
            (raw, signed(raw, stamp=now - 330), 403),
            (raw, signed(raw, stamp=now + 330), 403),
            (raw, {**good, "X-CTI-Timestamp": "yesterday"}, 403),
            (raw, {"Authorization": "Bearer wrong-key"}, 403),
        ]
        for body, headers, status in cases:
            got, answer = await post(p, body, headers)
            assert (got, "error" in answer) == (status, True), headers
        malformed = [
            (event("call-x", ani=None), "call.ani"),
            (event("call-x", ani="not a number"), "call.ani"),
            (event("call-x", started_at="2 June"), "call.started_at"),
            (event("call-x", started_at="2026-06-02T13:59:40"), "call.started_at"),
            (event("call-x", ended_at="2026-06-02T13:00:00Z"), "call.ended_at"),
            ({**event("call-x"), "schema": "cti.call.v2"}, "schema"),
            ({**event("call-x"), "event_type": "call.exploded"}, "event_type"),
            ({"events": [event("call-y"), event("call-x", ani=None)]}, "events[1].call.ani"),
        ]
        for payload, field in malformed:
            status, answer = await post(p, payload)
            assert (status, answer.get("field")) == (400, field)
        # a sender that cannot sign (EventBridge API destination) may use the bearer key instead
        assert (await post(p, event("call-z"), {"Authorization": "Bearer eb-key"}))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert list(await ledger(p)) == ["call-z:call.ended"]
    finally:
        await p.daemon.stop()


async def test_bus_failing_answers_503_and_stores_nothing_then_the_retry_is_one_call(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(),
                                          bus={"local": {"busy_timeout": 0.3}}))
    try:
        raw = json.dumps(event("call-outage")).encode()
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        status, answer = await post(p, raw)
        holder.execute("ROLLBACK")
        holder.close()
        assert status == 503 and "retry" in answer["error"]
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert (await p.count(ProcessedMessage), await p.count(ConversationEntry)) == (0, 0)  # ... nor the store
        assert (await post(p, raw))[0] == 200  # the platform retries (same bytes, new signature time)
        assert (await post(p, raw))[0] == 200  # and once more
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert (len(await p.cases()), await p.count(ConversationEntry)) == (1, 1)
    finally:
        await p.daemon.stop()


async def test_lookup_needs_its_token_a_phone_number_and_answers_empty_for_strangers(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        assert (await lookup(p, ANI, token=None))[0] == 401
        assert (await lookup(p, ANI, token="guess"))[0] == 403
        assert (await lookup(p, ANI, token=SECRET))[0] == 403  # the signing secret is not the lookup token
        status, answer = await lookup(p, "not-a-number")
        assert (status, answer["field"]) == (400, "ani")
        assert await lookup(p, "+15550100999") == (200, {"ani": "+15550100999", "contacts": [], "cases": []})
        assert (await post(p, event("call-1")))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        status, found = await lookup(p, ANI, encode=False)  # a bare "+" in the query reads as a space
        assert status == 200 and [c["CaseNumber"] for c in found["cases"]] == [case["CaseNumber"]]
    finally:
        await p.daemon.stop()


async def test_an_ingest_process_pops_the_screen_from_the_case_store_and_a_worker_process_too(
        deployment_settings: Callable[..., Settings]) -> None:
    """Split roles in one process, each on its own HTTP port: the ingest role takes the call and answers the
    lookup on a read-only connection of its own; the worker role, which takes no call events, answers it
    too. Before the case store exists the ingest answers 503 (retry), and creates nothing."""
    settings = deployment_settings(channels=channels())
    store_file = settings.data_path / "cases.db"
    ingest = await start_pipeline(settings, role="ingest")
    try:
        assert ingest.daemon.db is None and ingest.daemon.worker is None
        if not settings.store.url:  # SQLite: not migrated until a worker starts
            status, answer = await lookup(ingest, ANI)
            assert status == 503 and "retry" in answer["error"] and not store_file.exists()
        assert await post(ingest, event("call-split")) == (200, {"accepted": 1})
        worker = await start_pipeline(settings, role="worker")
        try:
            [case] = await worker.wait_for(lambda cs: len(cs) == 1)
            for p in (ingest, worker):
                status, found = await lookup(p, ANI)
                assert status == 200, found
                assert [c["CaseNumber"] for c in found["cases"]] == [case["CaseNumber"]]
                assert [c["Phone"] for c in found["contacts"]] == [ANI]
            async with aiohttp.ClientSession() as http, http.post(  # the worker takes no call events
                    f"http://127.0.0.1:{worker.daemon.http_port}/hooks/cti", data=b"{}") as r:
                assert r.status == 404
        finally:
            await worker.daemon.stop()
    finally:
        await ingest.daemon.stop()
