"""Web-to-Case over real HTTP on loopback, through the whole pipeline: Salesforce's field names become a
`web` case; redirects only to allowed hosts; honeypot; per-IP rate limit; the daily cap keeps
submissions pending; hostile descriptions stored as text; bad input refused naming the field; a failing
bus answers 503 and stores nothing."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings
from casegate.ingest.app.daemon import StartupError
from casegate.ingest.channels.web_form import RateLimiter, redirect_target
from casegate.store.models import Case, PendingMessage, ProcessedMessage

from tests.pipeline import Pipeline, settings_for, start_pipeline

ORG = "00D5g000004XyZ1"
ALLOWED = ["www.example.com", "127.0.0.1:8443"]
FORM = {"orgid": ORG, "name": "Ines Duarte", "email": "ines@example.org", "phone": "+351 210 000 000",
        "company": "Duarte Lda", "subject": "Cannot reset password", "description": "Reset link expires.\r\nAt once.",
        "type": "Problem", "reason": "Other", "priority": "High", "00N5g00000AbCdE": "Portal", "external": "1"}


def web_form(**overrides: Any) -> dict[str, Any]:
    return {"web_form": {"enabled": True, "orgid": ORG, "allowed_redirect_hosts": ALLOWED,
                         "rate_limit_per_minute": 1000, "custom_fields": {"00N5g00000AbCdE": "Comments"},
                         **overrides}}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(settings)
    try:
        yield p
    finally:
        await p.daemon.stop()


async def post(p: Pipeline, data: Any, *, path: str = "/web-to-case", **headers: str) -> tuple[int, Any, Any]:
    """POST `data` (a dict, a list of pairs, FormData or raw bytes); returns (status, headers, body)."""
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}{path}", data=data, headers=headers,
            allow_redirects=False) as r:
        body = await (r.json() if r.content_type == "application/json" else r.text())
        return r.status, r.headers, body


async def only_case(p: Pipeline) -> dict[str, Any]:
    [summary] = await p.wait_for(lambda cs: len(cs) >= 1)
    return await p.case(summary["CaseNumber"])


async def test_a_submission_opens_a_web_case_with_the_form_fields(deployment_settings: Callable[..., Settings]) -> None:
    async with running(deployment_settings(channels=web_form(default_region="PT"))) as p:
        status, headers, _ = await post(p, {**FORM, "phone": "210 000 000", "retURL": "https://www.example.com/thanks?x=1"})
        assert (status, headers["Location"]) == (303, "https://www.example.com/thanks?x=1")
        case = await only_case(p)
        assert {k: case[k] for k in ("Origin", "Subject", "Description", "SuppliedName", "SuppliedEmail",
                                     "SuppliedPhone", "SuppliedCompany", "Type", "Reason", "Priority")} == {
            "Origin": "Web", "Subject": "Cannot reset password", "Description": "Reset link expires.\nAt once.",
            "SuppliedName": "Ines Duarte", "SuppliedEmail": "ines@example.org", "SuppliedPhone": "+351210000000",
            "SuppliedCompany": "Duarte Lda", "Type": "Problem", "Reason": "Other", "Priority": "High"}
        assert case["Comments"] == "Portal"  # custom field 00N… mapped by configuration
        [entry] = case["ConversationEntries"]
        assert (entry["Channel"], entry["EntryType"], entry["ActorName"]) == ("web", "Form", "Ines Duarte")
        # a JSON client, multipart, the orgid in the query as newer Salesforce forms put it
        form = aiohttp.FormData({k: v for k, v in FORM.items() if k != "orgid"} | {"subject": "Zweite Frage ü"})
        form._is_multipart = True
        status, _, body = await post(p, form, path=f"/web-to-case?encoding=UTF-8&orgId={ORG}",
                                     Accept="application/json")
        assert status == 200 and body["status"] == "accepted"
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        second = await p.case(next(c["CaseNumber"] for c in cases if c["Subject"] == "Zweite Frage ü"))
        assert second["ConversationEntries"][0]["MessageIdentifier"] == body["id"]
        # every submission opens its own case, even from the same person a minute later
        assert len({c["CaseNumber"] for c in cases}) == 2


BAD_REDIRECTS = ["https://evil.com/", "javascript:alert(1)", "//evil.com/x", "/\\evil.com", "\\\\evil.com",
                 "https://www.example.com@evil.com/", "https:\\\\www.example.com", "https://www.example.com.evil.com/",
                 "ftp://www.example.com/", "https://127.0.0.1:9443/", "/\t/evil.com", "/ /evil.com",
                 "data:text/html,<script>alert(1)</script>", "https:evil.com", "HTTPS://EVIL.COM", "http://[::1",
                 "http://[evil.com]/", "https://www.example.com:99999/", "https://www.example.com:443.evil.com/"]


def test_redirect_targets() -> None:
    for url in [*BAD_REDIRECTS, " https://www.example.com/"]:  # (the form's values arrive stripped)
        assert redirect_target(url, ALLOWED) is None, url
    for url in ["https://www.example.com/thanks", "http://WWW.example.com:8080/", "https://127.0.0.1:8443/ok",
                "/thanks?x=1"]:
        assert redirect_target(url, ALLOWED) == url


async def test_retURL_is_followed_only_to_allowed_hosts(tmp_path: Path) -> None:
    async with running(settings_for("local-sqlite", tmp_path, channels=web_form())) as p:
        for url in BAD_REDIRECTS:
            status, headers, body = await post(p, {**FORM, "retURL": url})
            assert (status, "Location" in headers, headers["Content-Type"]) == (200, False, "text/html; charset=utf-8")
            assert "Thank you" in body and "evil" not in body
        status, headers, _ = await post(p, {**FORM, "retURL": "/support/thanks"})
        assert (status, headers["Location"]) == (303, "/support/thanks")
        await p.wait_for(lambda cs: len(cs) == len(BAD_REDIRECTS) + 1)  # refused redirects still make cases
        await p.wait_idle()
        assert len(await p.cases()) == len(BAD_REDIRECTS) + 1


async def test_a_filled_honeypot_is_answered_as_accepted_and_dropped(tmp_path: Path) -> None:
    async with running(settings_for("local-sqlite", tmp_path, channels=web_form())) as p:
        spam = {**FORM, "website": "http://cheap.example", "retURL": "https://www.example.com/thanks"}
        assert (await post(p, spam))[0] == 303
        status, _, body = await post(p, spam, Accept="application/json")
        assert (status, body["status"]) == (200, "accepted")
        assert (await post(p, {**FORM, "subject": "real"}))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert [c["Subject"] for c in await p.cases()] == ["real"]
        assert await p.count(ProcessedMessage) == 1  # the spam never reached the bus


def test_rate_limiter_slides() -> None:
    limit = RateLimiter(3, window=60)
    assert [limit.hit("a", now=t) for t in (0, 1, 2)] == [0, 0, 0]
    assert limit.hit("a", now=3) == 57
    assert limit.hit("b", now=3) == 0  # per client
    assert limit.hit("a", now=60.5) == 0  # the first hit left the window
    assert limit.hit("a", now=60.6) == pytest.approx(0.4)


async def test_more_than_the_limit_per_minute_gets_429_per_client(tmp_path: Path) -> None:
    settings = settings_for("local-sqlite", tmp_path, channels=web_form(rate_limit_per_minute=3, trusted_proxies=1))
    async with running(settings) as p:
        statuses = [(await post(p, FORM, **{"X-Forwarded-For": "203.0.113.7"}))[0] for _ in range(3)]
        status, headers, body = await post(p, FORM, **{"X-Forwarded-For": "203.0.113.7"})
        assert (statuses, status, body["error"]) == ([200] * 3, 429, "more than 3 submissions a minute; retry later")
        assert 1 <= int(headers["Retry-After"]) <= 60
        # another client (the proxy's X-Forwarded-For) has its own budget; one IPv6 /64 is one client
        assert (await post(p, FORM, **{"X-Forwarded-For": "spoofed, 2001:db8::1"}))[0] == 200
        assert (await post(p, FORM, **{"X-Forwarded-For": "2001:db8::2"}))[0] == 200
        assert (await post(p, FORM, **{"X-Forwarded-For": "2001:db8::3"}))[0] == 200
        assert (await post(p, FORM, **{"X-Forwarded-For": "2001:db8::4"}))[0] == 429
        await p.wait_for(lambda cs: len(cs) == 6)


async def test_over_the_daily_cap_submissions_wait_and_open_their_case_a_day_later(tmp_path: Path) -> None:
    async with running(settings_for("local-sqlite", tmp_path, channels=web_form(daily_cap=2))) as p:
        for n in range(3):
            assert (await post(p, {**FORM, "subject": f"Form {n}"}))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 2)
        await p.wait_idle()
        assert sorted(c["Subject"] for c in await p.cases()) == ["Form 0", "Form 1"]
        assert await p.count(PendingMessage) == 1
        assert await p.count(ProcessedMessage, ProcessedMessage.Outcome == "pending") == 1
        assert p.daemon.worker is not None
        [released] = await p.daemon.worker.service.release_pending(now=datetime.now(UTC) + timedelta(days=1, minutes=1))
        assert released.outcome == "created"
        assert sorted(c["Subject"] for c in await p.cases()) == ["Form 0", "Form 1", "Form 2"]
        assert await p.count(PendingMessage) == 0


async def test_hostile_descriptions_are_stored_as_text(deployment_settings: Callable[..., Settings]) -> None:
    settings = deployment_settings(channels=web_form(), http={"max_body_size": 4 * 1024 * 1024})
    async with running(settings) as p:
        script = '<script>alert("x")</script><img src=x onerror=alert(1)>\x00 & &amp; "quoted"'
        status, headers, body = await post(p, {**FORM, "subject": "<b>bold</b>", "description": script})
        assert status == 200 and "<script>" not in body and "alert" not in body
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        case = await only_case(p)
        assert (case["Subject"], case["Description"]) == ("<b>bold</b>", script.replace("\x00", ""))
        # a megabyte of text: the case keeps 32,000 characters, the entry 131,072, the blob store all of it
        huge = ("<script>x</script> é 東京 " * 50_000)[:1_000_000]
        raw = aiohttp.FormData({**FORM, "subject": "huge", "description": huge})()._value
        assert len(raw) > 1024 * 1024
        status, _, reply = await post(p, raw, Accept="application/json",
                                      **{"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200
        assert p.daemon.blobs.exists(hashlib.sha256(raw).hexdigest())
        # invalid UTF-8, percent-encoded and raw, becomes U+FFFD
        bad = (b"orgid=" + ORG.encode() + b"&name=Zo%EB+\xff&email=a%40example.org&subject=bad+%C3%28"
               b"&description=%FF%FE\xc3")
        assert (await post(p, bad, **{"Content-Type": "application/x-www-form-urlencoded"}))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 3)
        big = await p.case(next(c["CaseNumber"] for c in cases if c["Subject"] == "huge"))
        assert big["Description"] == huge[:32000]
        [entry] = big["ConversationEntries"]
        assert (entry["Message"], entry["MessageIdentifier"]) == (huge[:131072], reply["id"])
        assert '"description_length": "1000000"' in entry["Details"]
        odd = await p.case(next(c["CaseNumber"] for c in cases if c["Subject"].startswith("bad")))
        assert (odd["SuppliedName"], odd["Subject"], odd["Description"]) == ("Zo\ufffd \ufffd", "bad \ufffd(",
                                                                              "\ufffd\ufffd\ufffd")
        # beyond [http] max_body_size: 413, nothing stored
        too_big = b"description=" + b"x" * (4 * 1024 * 1024)
        assert (await post(p, too_big, **{"Content-Type": "application/x-www-form-urlencoded"}))[0] == 413


BAD_INPUT = [
    ({"email": "not-an-address"}, "email"),
    ({"email": "ada@example.org, eve@example.com"}, "email"),
    ({"email": "", "name": "", "phone": ""}, "email"),
    ({"email": "", "name": "", "phone": "call me"}, "phone"),
    ({"orgid": "00D000000000001"}, "orgid"),
    ({"orgid": ""}, "orgid"),
    ({"priority": "P" * 41}, "priority"),
    ({"subject": "", "description": "  "}, "description"),
]


async def test_bad_input_is_refused_with_400_naming_the_field(tmp_path: Path) -> None:
    async with running(settings_for("local-sqlite", tmp_path, channels=web_form())) as p:
        for change, field in BAD_INPUT:
            status, _, body = await post(p, {**FORM, **change})
            assert (status, body["field"]) == (400, field), change
            assert "eve@" not in body["error"] and "call me" not in body["error"]  # values are never echoed
        upload = aiohttp.FormData(FORM)
        upload.add_field("attachment", b"%PDF-1.4", filename="a.pdf", content_type="application/pdf")
        assert (await post(p, upload))[0::2] == (400, {"error": "files are not accepted", "field": "attachment"})
        status, _, body = await post(p, b'{"subject": "x"}', **{"Content-Type": "application/json"})
        assert status == 415
        status, _, body = await post(p, b"--x\r\n\r\n", **{"Content-Type": "multipart/form-data"})
        assert (status, body["error"]) == (400, "malformed multipart body")
        status, _, body = await post(p, FORM, **{"Idempotency-Key": "not ok"})
        assert (status, body["field"]) == (400, "Idempotency-Key")
        status, _, body = await post(p, FORM, path="/web-to-case?encoding=no-such-charset")
        assert (status, body["field"]) == (400, "encoding")
        # free text is cut, not refused; an invalid phone number is kept as typed
        status, _, _ = await post(p, {**FORM, "subject": "S" * 300, "name": "N" * 100, "phone": "call me"})
        assert status == 200
        case = await only_case(p)
        assert (case["Subject"], case["SuppliedName"], case["SuppliedPhone"]) == ("S" * 255, "N" * 80, None)
        details = case["ConversationEntries"][0]["Details"]
        assert '"phone_raw": "call me"' in details and '"cut": "name,subject"' in details
        await p.wait_idle()
        assert len(await p.cases()) == 1


async def test_bus_failing_answers_503_and_stores_nothing_then_the_retry_makes_one_case(tmp_path: Path) -> None:
    settings = settings_for("local-sqlite", tmp_path, channels=web_form(), bus={"local": {"busy_timeout": 0.3}})
    async with running(settings) as p:
        key = str(uuid.uuid4())
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        status, _, body = await post(p, FORM, **{"Idempotency-Key": key})
        assert (status, body) == (503, {"error": "could not store the message durably; please retry"})
        holder.execute("ROLLBACK")
        holder.close()
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert (await p.count(Case), await p.count(ProcessedMessage)) == (0, 0)  # ... nor the store
        for _ in range(2):  # the client retries; and once more, as if the answer had been lost
            status, _, body = await post(p, FORM, Accept="application/json", **{"Idempotency-Key": key})
            assert (status, body) == (200, {"status": "accepted", "id": key})
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert (await p.count(Case), await p.count(ProcessedMessage)) == (1, 1)


async def test_the_example_form(tmp_path: Path) -> None:
    settings = settings_for("local-sqlite", tmp_path, channels=web_form(thank_you_url="https://www.example.com/t?a=1&b=2"))
    async with running(settings) as p, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{p.daemon.http_port}/web-to-case/form") as r:
            page = await r.text()
            assert (r.status, r.content_type) == (200, "text/html")
        assert '<form action="/web-to-case" method="POST" accept-charset="UTF-8">' in page
        assert f'<input type="hidden" name="orgid" value="{ORG}">' in page
        assert '<input type="hidden" name="retURL" value="https://www.example.com/t?a=1&amp;b=2">' in page
        assert 'name="website" type="text" tabindex="-1"' in page
        for field in ("name", "email", "phone", "company", "type", "priority", "subject", "description"):
            assert f'<label for="{field}">' in page and f'name="{field}"' in page
    no_form = settings_for("local-sqlite", tmp_path / "b", channels=web_form(form_path=""))
    async with running(no_form) as p, aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{p.daemon.http_port}/web-to-case/form") as r:
        assert r.status == 404
    with pytest.raises(StartupError, match="thank_you_url"):
        await start_pipeline(settings_for("local-sqlite", tmp_path / "c",
                                          channels=web_form(thank_you_url="https://evil.com/")))
