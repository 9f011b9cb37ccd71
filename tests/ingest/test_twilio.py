"""Twilio messaging (SMS, MMS, WhatsApp via Twilio) and voice status callbacks, end to end: requests
signed exactly as Twilio signs them (twilio's RequestValidator) over real HTTP on loopback, through the
bus and the worker into cases; the signature check against Twilio's published test vectors; the media
fetcher against a real local HTTP server."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from casegate.config import Settings
from casegate.ingest.channels.media_fetch import HttpMediaFetcher, MediaFetchError
from casegate.ingest.channels.twilio_messaging import (
    form_params,
    phone_number,
    signature_valid,
    twilio_signature,
    url_variants,
)
from casegate.ingest.channels.webhook import e164
from casegate.store.models import Contact
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # no py.typed

from tests.pipeline import Pipeline, settings_for, start_pipeline

TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "1" * 32
CUSTOMER = "+15551230000"
OURS = "+15550009999"
MESSAGING = "/hooks/twilio/messaging"
VOICE = "/hooks/twilio/voice"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def twilio_section(**more: Any) -> dict[str, Any]:
    return {"twilio": {"enabled": True, "auth_token": TOKEN, **more}}


def sms(body: str, *, sid: str | None = None, sender: str = CUSTOMER, to: str = OURS, **more: str) -> dict[str, str]:
    """An inbound message's fields as Twilio posts them."""
    sid = sid or "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT, "From": sender, "To": to,
            "Body": body, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
            **more}


def call(status: str, *, sid: str = "CA" + "7" * 32, seq: str | None = None, **more: str) -> dict[str, str]:
    """A voice status callback (or, with CallbackSource="" removed, the incoming-call webhook)."""
    fields = {"AccountSid": ACCOUNT, "CallSid": sid, "From": CUSTOMER, "To": OURS, "Caller": CUSTOMER,
              "Called": OURS, "Direction": "inbound", "CallStatus": status, "ApiVersion": "2010-04-01",
              "CallbackSource": "call-progress-events", **more}
    if seq is not None:
        fields["SequenceNumber"] = seq
    return {k: v for k, v in fields.items() if v != ""}


class Twilio:
    """Calls the daemon the way Twilio does: form POSTs signed over the public URL and the fields."""

    def __init__(self, p: Pipeline, http: aiohttp.ClientSession, public_base: str | None = None):
        self.local = f"http://127.0.0.1:{p.daemon.http_port}"
        self.public = public_base or self.local
        self.http = http

    async def post(self, path: str, fields: dict[str, str], *, token: str = TOKEN, sign: bool = True,
                   body: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, body, content type); `body` sends other fields than the ones signed (tampering)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign:
            headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(self.public + path, fields)
        async with self.http.post(self.local + path, data=urlencode(body or fields), headers=headers) as r:
            return r.status, await r.text(), r.content_type


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def local_pipeline(tmp_path: Path, **sections: Any) -> Pipeline:
    channels = sections.pop("channels", twilio_section())
    return await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels, **sections))


def bus_records(p: Pipeline) -> int:
    with sqlite3.connect(p.settings.bus_path) as conn:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


async def contacts(p: Pipeline) -> int:
    assert p.daemon.db is not None
    async with p.daemon.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(Contact))).scalar_one())


def entries(case: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(e["Channel"], e["EntryType"], e["Message"]) for e in case["ConversationEntries"]]


# -- the signature, against Twilio's published vectors (twilio-python's tests and security docs) --------------------
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"CallSid": ["CA1234567890ABCDE"], "Caller": ["+14158675309"], "Digits": ["1234"],
                 "From": ["+14158675309"], "To": ["+18005551212"]}


def test_published_test_vectors() -> None:
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    old_docs = {**VECTOR_PARAMS, "Caller": ["+12349013030"], "From": ["+12349013030"]}
    assert twilio_signature("12345", VECTOR_URL, old_docs) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    repeated = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234"]}
    assert twilio_signature("12345", VECTOR_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS, hashlib.sha256) == \
        "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s="
    body = b'{"property": "value", "boolean": true}'
    assert hashlib.sha256(body).hexdigest() == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    json_url = VECTOR_URL + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
    assert twilio_signature("12345", json_url) == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_port_variants_validate_both_ways() -> None:
    sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature_valid("12345", VECTOR_URL, sig, VECTOR_PARAMS)
    assert signature_valid("12345", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", sig, VECTOR_PARAMS)
    assert signature_valid("12345", VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", VECTOR_PARAMS)  # signed with :443
    assert signature_valid("12345", "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4=",
                           VECTOR_PARAMS)  # signed with :80
    assert not signature_valid("12345", VECTOR_URL, sig, {**VECTOR_PARAMS, "Digits": ["1235"]})
    assert not signature_valid("54321", VECTOR_URL, sig, VECTOR_PARAMS)
    assert list(url_variants("https://u:p@h.example/x?a=1")) == ["https://u:p@h.example/x?a=1",
                                                          "https://u:p@h.example:443/x?a=1"]


def test_agrees_with_twilios_request_validator() -> None:
    fields = {"Body": "Grüße & 100% + more", "From": "whatsapp:+447700900123", "NumMedia": "0", "Empty": ""}
    url = "https://hooks.example.com/hooks/twilio/messaging?tenant=a%20b"
    expected = RequestValidator(TOKEN).compute_signature(url, fields)
    assert twilio_signature(TOKEN, url, {k: [v] for k, v in fields.items()}) == expected


def test_form_parsing_and_phone_numbers_match_the_general_ones() -> None:
    for body in ["a=1&b=&c&d=x+y%2Bz&a=2&&e%20f=%F0%9F%91%8D&g=%zz", urlencode(sms("Grüße + 100%"))]:
        expected: dict[str, list[str]] = {}
        for name, value in parse_qsl(body, keep_blank_values=True):
            expected.setdefault(name, []).append(value)
        assert form_params(body.encode()) == expected
    for raw in ["+14155550123", "whatsapp:+447700900123", "WhatsApp:+447700900123", "+1 (415) 555-0123", "12345",
                "+4407700900123"]:
        assert phone_number(raw) == e164(raw), raw


# -- end to end, on both deployments ---------------------------------------------------------------
async def test_sms_mms_and_a_call_become_one_case(deployment_settings: Callable[..., Settings],
                                                  http: aiohttp.ClientSession) -> None:
    p = await start_pipeline(deployment_settings(channels=twilio_section()))
    try:
        twilio = Twilio(p, http)
        first = sms("My router is broken\nIt blinks red")
        assert await twilio.post(MESSAGING, first) == (200, TWIML, "text/xml")
        assert (await twilio.post(MESSAGING, first))[0] == 200  # a duplicate delivery: one message
        mms = sms("", NumMedia="1", MediaContentType0="image/jpeg",
                  MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1")
        assert (await twilio.post(MESSAGING, mms))[0] == 200
        assert (await twilio.post(MESSAGING, sms("Any news?")))[0] == 200
        status = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered", "AccountSid": ACCOUNT,
                  "From": OURS, "To": CUSTOMER, "SmsStatus": "delivered"}
        assert await twilio.post(MESSAGING, status) == (200, TWIML, "text/xml")  # recorded nowhere, no case
        for progress in ("initiated", "ringing", "in-progress"):
            assert (await twilio.post(VOICE, call(progress)))[0] == 200
        final = call("completed", seq="3", CallDuration="187", RecordingUrl="https://api.twilio.com/rec/RE1")
        assert (await twilio.post(VOICE + "/status", final))[0] == 200
        assert (await twilio.post(VOICE + "/status", final))[0] == 200  # redelivered: one entry
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [case] = await p.cases()
        got = await p.case(case["CaseNumber"])
        assert (got["Origin"], got["Subject"], got["SuppliedPhone"]) == ("SMS", "My router is broken", CUSTOMER)
        assert entries(got) == [("sms", "Text", "My router is broken\nIt blinks red"), ("sms", "Media", ""),
                                ("sms", "Text", "Any news?"), ("phone", "Call", "Inbound call completed, 187 s")]
        media = got["ConversationEntries"][1]
        assert json.loads(media["MediaUrls"]) == [mms["MediaUrl0"]]
        assert media["MessageIdentifier"] == mms["MessageSid"] and media["Recipient"] == OURS
        details = json.loads(got["ConversationEntries"][3]["Details"])
        assert details == {"call_sid": final["CallSid"], "direction": "inbound", "from": CUSTOMER, "to": OURS,
                           "status": "completed", "duration": "187", "recording_url": "https://api.twilio.com/rec/RE1",
                           "account_sid": ACCOUNT}
        assert got["ConversationEntries"][3]["MessageIdentifier"] == f"{final['CallSid']}:completed:3"
        assert await contacts(p) == 1
    finally:
        await p.daemon.stop()


# -- refusals and durability (local bus) -----------------------------------------------------------
async def test_unsigned_wrongly_signed_or_tampered_requests_are_refused_and_nothing_is_published(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    p = await local_pipeline(tmp_path)
    try:
        twilio = Twilio(p, http)
        fields = sms("please refund")
        status, text, _ = await twilio.post(MESSAGING, fields, sign=False)
        assert (status, json.loads(text)) == (401, {"error": "X-Twilio-Signature missing"})
        assert (await twilio.post(MESSAGING, fields, token="f" * 32))[0] == 403
        assert (await twilio.post(MESSAGING, fields, body={**fields, "Body": "please refund 1000"}))[0] == 403
        assert (await twilio.post(MESSAGING, fields, body={**fields, "Extra": "x"}))[0] == 403
        assert (await twilio.post(VOICE, call("completed"), token="f" * 32))[0] == 403
        malformed = {k: v for k, v in fields.items() if k != "From"}
        status, text, _ = await twilio.post(MESSAGING, malformed)
        assert (status, json.loads(text)["field"]) == (400, "From")
        assert bus_records(p) == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert await p.cases() == []  # ... nor the store
    finally:
        await p.daemon.stop()


async def test_bus_failing_answers_503_and_twilios_retry_makes_one_case(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    p = await local_pipeline(tmp_path, bus={"local": {"busy_timeout": 0.3}})
    try:
        twilio = Twilio(p, http)
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        fields = sms("during the outage")
        status, text, _ = await twilio.post(MESSAGING, fields)
        assert status == 503 and "retry" in json.loads(text)["error"]
        assert (await twilio.post(VOICE, call("busy")))[0] == 503
        holder.execute("ROLLBACK")
        holder.close()
        assert bus_records(p) == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert await p.cases() == []  # ... nor the store
        assert (await twilio.post(MESSAGING, fields))[0] == 200  # the retry (connection override #rc)
        assert (await twilio.post(MESSAGING, fields))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [case] = await p.cases()
        assert entries(await p.case(case["CaseNumber"])) == [("sms", "Text", "during the outage")]
    finally:
        await p.daemon.stop()


# -- threading, contacts and the closed-case policy ------------------------------------------------
async def test_whatsapp_threads_apart_from_sms_but_finds_the_same_contact(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    p = await local_pipeline(tmp_path)
    try:
        twilio = Twilio(p, http)
        assert (await twilio.post(MESSAGING, sms("Order 7 is late")))[0] == 200
        wa = sms("Parcel arrived damaged", sender=f"whatsapp:{CUSTOMER}", to=f"whatsapp:{OURS}",
                 ProfileName="Priya", WaId=CUSTOMER[1:])
        assert (await twilio.post(MESSAGING, wa))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 2)
        await p.wait_idle()
        cases = {c["Origin"]: await p.case(c["CaseNumber"]) for c in await p.cases()}
        assert sorted(cases) == ["SMS", "WhatsApp"]
        whatsapp = cases["WhatsApp"]
        assert (whatsapp["SuppliedName"], whatsapp["SuppliedPhone"]) == ("Priya", CUSTOMER)
        entry = whatsapp["ConversationEntries"][0]
        assert (entry["Channel"], entry["ActorIdentifier"], entry["Recipient"]) == ("whatsapp", CUSTOMER, OURS)
        assert json.loads(entry["Details"])["wa_id"] == CUSTOMER[1:]
        assert await contacts(p) == 1
        assert cases["SMS"]["ContactId"] == whatsapp["ContactId"]
    finally:
        await p.daemon.stop()


async def test_after_the_case_closed_the_channel_policy_decides(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    p = await local_pipeline(tmp_path, channels=twilio_section(reopen_within_days=7))
    try:
        assert p.daemon.worker is not None
        service = p.daemon.worker.service
        twilio = Twilio(p, http)
        assert (await twilio.post(MESSAGING, sms("Broken again")))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        number = case["CaseNumber"]
        await service.change_status(number, "Closed")
        assert (await twilio.post(MESSAGING, sms("Still broken")))[0] == 200  # closed minutes ago: reopen
        await p.wait_for(lambda cs: cs[0]["Status"] != "Closed")
        await p.wait_idle()
        assert len(await p.cases()) == 1 and len((await p.case(number))["ConversationEntries"]) == 2
        await service.change_status(number, "Closed", now=datetime.now(UTC) - timedelta(days=10))
        assert (await twilio.post(MESSAGING, sms("And again")))[0] == 200  # closed 10 days ago: a new case
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        [new] = [c for c in cases if c["CaseNumber"] != number]
        assert new["ParentId"] == (await p.case(number))["Id"]
        assert entries(await p.case(new["CaseNumber"])) == [("sms", "Text", "And again")]
    finally:
        await p.daemon.stop()


# -- the other request shapes ----------------------------------------------------------------------
async def test_json_body_get_requests_proxy_url_and_the_incoming_call_webhook(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    public = "https://hooks.example.com"
    voice_twiml = "<Response><Say>Thanks for calling support.</Say></Response>"
    p = await local_pipeline(tmp_path, channels=twilio_section(voice_twiml=voice_twiml),
                             http={"public_base_url": public})
    try:
        local = f"http://127.0.0.1:{p.daemon.http_port}"
        validator = RequestValidator(TOKEN)
        # JSON body: bodySHA256 in the URL, signature over the URL alone (Twilio signs with :443 here)
        body = json.dumps(sms("sent as JSON", sid="SM" + "1" * 32)).encode()
        path = f"{MESSAGING}?tenant=a%20b&bodySHA256={hashlib.sha256(body).hexdigest()}"
        signature = validator.compute_signature(f"https://hooks.example.com:443{path}", {})
        headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}
        async with http.post(local + path, data=body, headers=headers) as r:
            assert (r.status, await r.text()) == (200, TWIML)
        async with http.post(local + path, data=body.replace(b"JSON", b"json"), headers=headers) as r:
            assert r.status == 403  # the body does not match its bodySHA256
        # GET: the fields are in the signed URL
        path = f"{MESSAGING}?{urlencode(sms('sent by GET', sid='SM' + '2' * 32))}"
        async with http.get(local + path, headers={"X-Twilio-Signature": validator.compute_signature(
                public + path, {})}) as r:
            assert r.status == 200
        # the incoming-call webhook asks what to do: the configured TwiML, and nothing recorded
        incoming = call("ringing", CallbackSource="")
        twilio = Twilio(p, http, public_base=public)
        assert await twilio.post(VOICE, incoming) == (200, voice_twiml, "text/xml")
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [case] = await p.cases()
        assert entries(await p.case(case["CaseNumber"])) == [("sms", "Text", "sent as JSON"),
                                                              ("sms", "Text", "sent by GET")]
        assert bus_records(p) == 2
    finally:
        await p.daemon.stop()


# -- media --------------------------------------------------------------------------------------------
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


@pytest.fixture
async def media_server() -> AsyncIterator[str]:
    """A local stand-in for api.twilio.com's Media resource: basic auth, a redirect to storage, a 404
    and a file too large."""

    async def media(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode():
            return web.Response(status=401)
        name = request.match_info["name"]
        if name == "ME1":
            raise web.HTTPFound("/storage/ME1")
        if name == "BIG":
            return web.Response(body=b"x" * 5000, content_type="video/mp4")
        return web.Response(status=404)

    async def storage(request: web.Request) -> web.Response:
        return web.Response(body=JPEG, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/Media/{name}", media)
    app.router.add_get("/storage/ME1", storage)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_media_fetcher_over_http(media_server: str) -> None:
    fetcher = HttpMediaFetcher(["127.0.0.1"])
    try:
        got = await fetcher.fetch(f"{media_server}/Media/ME1", auth=(ACCOUNT, TOKEN), max_bytes=10_000, timeout=5)
        assert (got.data, got.content_type) == (JPEG, "image/jpeg")
        for url, auth, why in [(f"{media_server}/Media/BIG", (ACCOUNT, TOKEN), "larger than 1000 bytes"),
                               (f"{media_server}/Media/ME1", None, "HTTP 401"),
                               (f"{media_server}/Media/GONE", (ACCOUNT, TOKEN), "HTTP 404"),
                               ("http://localhost:1/Media/ME1", (ACCOUNT, TOKEN), "not in media_hosts")]:
            with pytest.raises(MediaFetchError, match=why):
                await fetcher.fetch(url, auth=auth, max_bytes=1000, timeout=5)
    finally:
        await fetcher.close()


async def test_fetched_media_go_to_the_blob_store_and_a_failed_fetch_keeps_the_message(
        tmp_path: Path, http: aiohttp.ClientSession, media_server: str) -> None:
    p = await local_pipeline(tmp_path, channels=twilio_section(fetch_media=True, media_hosts=["127.0.0.1"],
                                                               media_max_bytes=4096))
    try:
        twilio = Twilio(p, http)
        urls = [f"{media_server}/Media/ME1", f"{media_server}/Media/GONE", f"{media_server}/Media/BIG"]
        fields = sms("three pictures", NumMedia="3", **{f"MediaUrl{i}": u for i, u in enumerate(urls)},
                     **{f"MediaContentType{i}": "image/jpeg" for i in range(3)})
        assert (await twilio.post(MESSAGING, fields))[0] == 200
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        shown = await p.case(case["CaseNumber"])
        [entry] = shown["ConversationEntries"]
        assert (entry["EntryType"], json.loads(entry["MediaUrls"])) == ("Media", urls)
        [attached] = shown["Attachments"]  # the fetched one is a case attachment; the failed ones are URLs only
        assert (attached["Sha256"], attached["BodyLength"], attached["EmailMessageId"]) == (
            hashlib.sha256(JPEG).hexdigest(), len(JPEG), None)
        details = json.loads(entry["Details"])
        sha = hashlib.sha256(JPEG).hexdigest()
        assert details["media0_sha256"] == sha and p.daemon.blobs.exists(sha)
        assert details["media1_error"] == "HTTP 404" and "larger than 4096" in details["media2_error"]
        assert details["media_fetch"] == "failed: stored 1 of 3, the URLs are kept"
    finally:
        await p.daemon.stop()
