"""The SMTP channel as real mail software sees it: swaks sessions (8-bit mail, SIZE, STARTTLS,
PIPELINING, the null reverse-path) and a Postfix relay in front of casegate, which must keep and retry a
mail answered 451, keeps the null reverse-path, and sends casegate its own bounce of a refused mail."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import trustme
from casegate.config import Settings
from casegate.ingest.bus.blobs import PACK_SCHEMA
from casegate.store import message_trace
from casegate.store.models import Outbox

from tests.mta import PostfixRelay, Swaks
from tests.pipeline import Pipeline, settings_for, start_pipeline
from tests.services import free_port, service_missing

StartRelay = Callable[[int], Awaitable[PostfixRelay]]

NOISE = Path(__file__).parent.parent / "data" / "noise"

SMALL_LIMIT = 8192  # smtp.max_message_size for the SIZE test (bytes)


def utf8_mail(msgid: str, subject: str = "Grüße aus Köln", body: str = "Die Tür klemmt, schon wieder.") -> bytes:
    """An 8-bit mail as a modern client writes it: UTF-8 headers and body, no transfer encoding."""
    return (f"From: Zoë Müller <zoe@example.org>\r\nTo: support@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n").encode()


def write_mail(tmp_path: Path, raw: bytes) -> str:
    """A file for `swaks --data @file` (swaks sends its bytes unchanged)."""
    path = tmp_path / "mail.eml"
    path.write_bytes(raw)
    return f"@{path}"


def tls_files(tmp_path: Path) -> dict[str, str]:
    """A certificate for 127.0.0.1 from a throwaway CA; smtp settings offering STARTTLS with it."""
    pem = tmp_path / "smtp.pem"
    trustme.CA().issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return {"tls_cert": str(pem), "tls_key": str(pem)}


async def one_case(p: Pipeline) -> dict[str, Any]:
    """The only case, with its messages, once the worker has handled everything."""
    await p.wait_for(lambda cs: len(cs) >= 1)
    await p.wait_idle()
    cases = await p.cases()
    assert len(cases) == 1, cases
    return await p.case(cases[0]["CaseNumber"])


def incoming_ids(case: dict[str, Any]) -> list[str]:
    """Message-IDs of the mails the customer sent (outbound auto-responses are EmailMessages too)."""
    return [m["MessageIdentifier"] for m in case["EmailMessages"] if m["Incoming"]]


def acknowledging(tmp_path: Path) -> Settings:
    """The embedded deployment acknowledging new cases: an acknowledgement is queued in the outbox
    when a case opens (the relay it would go to is not listening: it stays queued)."""
    return settings_for("local-sqlite", tmp_path, outbound={
        "enabled": True, "host": "127.0.0.1", "port": free_port(), "hostname": "cases.example.net",
        "poll_interval": 0.05, "timeout": 5})


async def traced(p: Pipeline, count: int, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The message trace (`casegate messages export`) by Message-ID, once it holds `count` messages."""
    assert p.daemon.db is not None
    end = time.monotonic() + timeout
    while True:
        entries = {e["message_id"]: e async for e in message_trace.export(p.daemon.db)}
        if len(entries) >= count or time.monotonic() > end:
            return entries
        await asyncio.sleep(0.05)


# -- swaks -> casegate ----------------------------------------------------------------------------
# SIZE, STARTTLS and PIPELINING are the SMTP session, the same code for every deployment: they run on
# the embedded one only. Mail that becomes a case runs on both (the hand-off differs).
async def test_swaks_8bit_utf8_mail_becomes_a_case_with_the_right_text(
        deployment_settings: Callable[..., Settings], swaks: Swaks, tmp_path: Path) -> None:
    p = await start_pipeline(deployment_settings())
    try:
        raw = utf8_mail("<swaks-8bit@example.org>")
        assert any(b > 0x7F for b in raw)
        s = await swaks.run(p.daemon.smtp_port, "--from", "zoe@example.org", "--to", "support@localhost",
                            "--data", write_mail(tmp_path, raw))
        assert "250-8BITMIME" in s.replies() and s.final_reply().startswith("250 2.0.0"), s.transcript
        case = await one_case(p)
        assert case["Subject"] == "Grüße aus Köln"
        assert case["SuppliedName"] == "Zoë Müller"
        assert "Die Tür klemmt, schon wieder." in case["Description"]
        assert incoming_ids(case) == ["<swaks-8bit@example.org>"]
    finally:
        await p.daemon.stop()


async def test_size_is_advertised_and_oversize_mail_is_refused_552_at_mail_from_and_in_data(
        swaks: Swaks, tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, smtp={"max_message_size": SMALL_LIMIT}))
    try:
        port = p.daemon.smtp_port
        ehlo = await swaks.run(port, "--quit-after", "EHLO")
        assert f"250-SIZE {SMALL_LIMIT}" in ehlo.replies(), ehlo.transcript

        # swaks 20201014 cannot add MAIL FROM parameters: declare SIZE= with aiosmtplib
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await client.connect()
        try:
            await client.ehlo()
            refused = await client.execute_command(b"MAIL", f"FROM:<zoe@example.org> SIZE={SMALL_LIMIT + 1}".encode())
            assert refused.code == 552, refused
            accepted = await client.execute_command(b"MAIL", f"FROM:<zoe@example.org> SIZE={SMALL_LIMIT // 2}".encode())
            assert accepted.code == 250, accepted
        finally:
            await client.quit()

        # no SIZE= declared: the limit is enforced on the data itself
        big = await swaks.run(port, "--from", "zoe@example.org", "--to", "support@localhost",
                              "--header", "Subject: too big", "--body", ("x" * 70 + "\n") * (SMALL_LIMIT // 70 + 10))
        assert big.final_reply().startswith("552"), big.transcript
        small = await swaks.run(port, "--from", "zoe@example.org", "--to", "support@localhost",
                                "--header", "Subject: small enough", "--body", "fits")
        assert small.final_reply().startswith("250"), small.transcript
        case = await one_case(p)
        assert case["Subject"] == "small enough"
    finally:
        await p.daemon.stop()


async def test_swaks_starttls_delivers_a_case(swaks: Swaks, tmp_path: Path) -> None:
    if not swaks.tls_available():
        service_missing("swaks --tls needs Net::SSLeay (apt-get install libnet-ssleay-perl)")
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, smtp=tls_files(tmp_path)))
    try:
        s = await swaks.run(p.daemon.smtp_port, "--tls", "--from", "zoe@example.org", "--to", "support@localhost",
                            "--data", write_mail(tmp_path, utf8_mail("<swaks-tls@example.org>", "über TLS")))
        assert s.returncode == 0, s.transcript
        assert "=== TLS started with cipher TLSv1." in s.transcript
        assert re.search(r"^ ~> MAIL FROM:<zoe@example.org>$", s.transcript, re.M), "MAIL was not sent inside TLS"
        assert s.final_reply().startswith("250 2.0.0"), s.transcript
        case = await one_case(p)
        assert case["Subject"] == "über TLS"
    finally:
        await p.daemon.stop()


async def test_swaks_pipelining_sends_the_envelope_in_one_flight(swaks: Swaks, tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        s = await swaks.run(p.daemon.smtp_port, "--pipeline", "--from", "zoe@example.org",
                            "--to", "nobody@example.org,support@localhost",
                            "--data", write_mail(tmp_path, utf8_mail("<swaks-pipe@example.org>", "pipelined")))
        assert "250-PIPELINING" in s.replies(), s.transcript
        # MAIL, both RCPTs and DATA went out before the first reply; the replies came back in order
        flight = re.search(r"^ -> MAIL FROM:.*\n -> RCPT TO:<nobody@example.org>\n -> RCPT TO:<support@localhost>\n"
                           r" -> DATA\n<-  250 OK\n<\*\* (550 5\.1\.1 .*)\n<-  250 OK\n<-  354 ", s.transcript, re.M)
        assert flight, s.transcript
        assert s.final_reply().startswith("250 2.0.0"), s.transcript
        case = await one_case(p)
        assert case["Subject"] == "pipelined"
    finally:
        await p.daemon.stop()


async def test_swaks_null_reverse_path_opens_no_case_gets_no_acknowledgement_and_traces_as_null_sender(
        swaks: Swaks, tmp_path: Path) -> None:
    """`MAIL FROM:<>` (RFC 5321 4.5.5: DSNs, auto-replies) is automatic mail whatever its headers say:
    no case, no acknowledgement; the trace names the null path `<>` as sender when the mail has no
    From address (swaks writes an empty From: for --from '<>'), not the hash it is keyed by."""
    p = await start_pipeline(acknowledging(tmp_path))
    try:
        port = p.daemon.smtp_port
        bare = await swaks.run(port, "--from", "<>", "--to", "support@localhost", "--header", "Subject: Your request",
                               "--header", "Message-Id: <null-bare@swaks.test>")
        assert re.search(r"^ -> MAIL FROM:<>$", bare.transcript, re.M), bare.transcript
        assert bare.final_reply().startswith("250 2.0.0"), bare.transcript
        # a shop's acknowledgement: a From address and no marker at all but the null reverse-path (as
        # relayed: the Return-Path: <> that final delivery wrote is not there yet)
        ack = (NOISE / "null-sender-ack.eml").read_bytes().replace(b"Return-Path: <>\n", b"")
        shop = await swaks.run(port, "--from", "<>", "--to", "support@localhost", "--data", write_mail(tmp_path, ack))
        assert shop.final_reply().startswith("250 2.0.0"), shop.transcript
        # a person, after them: a case and its acknowledgement
        person = await swaks.run(port, "--from", "zoe@example.org", "--to", "support@localhost",
                                 "--data", write_mail(tmp_path, utf8_mail("<person@example.org>")))
        assert person.final_reply().startswith("250 2.0.0"), person.transcript
        case = await one_case(p)
        assert incoming_ids(case) == ["<person@example.org>"]
        assert await p.count(Outbox) == 1  # the person's acknowledgement, nobody else's
        trace = await traced(p, 3)
    finally:
        await p.daemon.stop()
    null_path = {k: trace[k] for k in ("<null-bare@swaks.test>", "<ack-88213@shop.customer.test>")}
    assert {k: (e["outcome"], e["suppressed"], e["reason"]) for k, e in null_path.items()} == {
        k: ("suppressed", "auto-reply", "auto-reply: MAIL FROM: <>") for k in null_path}
    assert trace["<null-bare@swaks.test>"]["sender"] == "<>"
    assert trace["<null-bare@swaks.test>"]["raw_sha256"]  # the hash stays in its own field
    assert trace["<ack-88213@shop.customer.test>"]["sender"] == "noreply@shop.customer.test"
    assert (trace["<person@example.org>"]["outcome"], trace["<person@example.org>"]["sender"]) == (
        "created", "zoe@example.org")


# -- swaks -> Postfix -> casegate -----------------------------------------------------------------
async def test_postfix_relays_8bit_mail_over_starttls_to_a_case(
        deployment_settings: Callable[..., Settings], swaks: Swaks, postfix_relay: StartRelay,
        tmp_path: Path) -> None:
    p = await start_pipeline(deployment_settings(smtp=tls_files(tmp_path)))
    try:
        relay = await postfix_relay(p.daemon.smtp_port)
        s = await swaks.run(relay.port, "--from", "zoe@example.org", "--to", "support@localhost",
                            "--data", write_mail(tmp_path, utf8_mail("<via-postfix@example.org>")))
        assert s.final_reply().startswith("250 2.0.0 Ok: queued as"), s.transcript
        await relay.wait_log(r"to=<support@localhost>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                             r"status=sent \(250 2\.0\.0 OK queued as ")
        assert "status=deferred" not in relay.log_text()
        # what Postfix did on the wire: STARTTLS, PIPELINING, and a MAIL FROM declaring SIZE and 8BITMIME
        log = relay.log_text()
        assert re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1", log), log
        assert "Using ESMTP PIPELINING" in log, log
        assert re.search(r"> 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: MAIL FROM:<zoe@example\.org> SIZE=\d+ BODY=8BITMIME",
                         log), log
        assert await relay.queue() == []
        case = await one_case(p)
        assert case["Subject"] == "Grüße aus Köln" and "Die Tür klemmt" in case["Description"]
        [message] = [m for m in case["EmailMessages"] if m["Incoming"]]
        assert message["MessageIdentifier"] == "<via-postfix@example.org>"
        assert "by mta.example.test (Postfix)" in message["Headers"], message["Headers"]  # it came through Postfix
    finally:
        await p.daemon.stop()


async def test_postfix_keeps_a_mail_answered_451_and_a_flush_after_recovery_makes_exactly_one_case(
        deployment_settings: Callable[..., Settings], swaks: Swaks, postfix_relay: StartRelay,
        tmp_path: Path) -> None:
    p = await start_pipeline(deployment_settings(blobs={"busy_timeout": 0.3}))
    holder: sqlite3.Connection | None = None
    try:
        relay = await postfix_relay(p.daemon.smtp_port)
        p.settings.blob_path.mkdir(parents=True, exist_ok=True)
        holder = sqlite3.connect(p.settings.blob_path / "pack.db", isolation_level=None)
        holder.execute(PACK_SCHEMA)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the blob pack: casegate cannot store mail

        s = await swaks.run(relay.port, "--from", "zoe@example.org", "--to", "support@localhost",
                            "--data", write_mail(tmp_path, utf8_mail("<deferred@example.org>", "kept by Postfix")))
        assert s.final_reply().startswith("250 2.0.0 Ok: queued as"), s.transcript
        queue_id = s.final_reply().rsplit(" ", 1)[1]

        tempfail = (r"status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.3\.0 Temporary ingestion "
                    r"failure, try again later \(in reply to end of DATA command\)\)")
        await relay.wait_log(rf"^.* {queue_id}: to=<support@localhost>, .*{tempfail}$")
        queued = await relay.wait_queue(lambda q: len(q) == 1 and q[0]["queue_name"] == "deferred"
                                        and "451 4.3.0" in q[0]["recipients"][0].get("delay_reason", ""))
        assert [(m["queue_id"], m["queue_name"]) for m in queued] == [(queue_id, "deferred")], queued
        # Postfix retries by itself (backoff 3 s) and keeps getting 451 while the outage lasts
        await relay.wait_log(rf"(?s){queue_id}: to=<support@localhost>.*?{tempfail}.*?"
                             rf"{queue_id}: to=<support@localhost>.*?{tempfail}")
        assert await p.cases() == []

        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        # flush only while the mail rests in the deferred queue: a flush ignores the backoff and, during a
        # retry, could take the mail from the delivery agent still holding it (Postfix then parks it 60 s)
        await relay.wait_queue(lambda q: [m["queue_name"] for m in q] == ["deferred"])
        await relay.flush()
        await relay.wait_log(rf"{queue_id}: to=<support@localhost>, .*status=sent \(250 2\.0\.0 OK queued as ")
        assert await relay.wait_queue(lambda q: q == []) == []
        case = await one_case(p)
        assert case["Subject"] == "kept by Postfix"
        assert incoming_ids(case) == ["<deferred@example.org>"]
        assert len(re.findall(rf"{queue_id}: to=<support@localhost>, .*status=sent", relay.log_text())) == 1
    finally:
        if holder is not None:
            holder.close()
        await p.daemon.stop()


async def test_postfix_keeps_the_null_reverse_path_and_its_bounce_of_a_refused_mail_opens_nothing(
        swaks: Swaks, postfix_relay: StartRelay, tmp_path: Path) -> None:
    """Through a real MTA: Postfix hands a null-sender mail on with `MAIL FROM:<>`, and when casegate
    refuses a recipient (550 5.1.1, not a support address) Postfix returns the mail to its sender — a
    routing address — with a DSN of its own, from MAILER-DAEMON with the null reverse-path. Neither
    opens a case or is acknowledged; the trace says where each went."""
    p = await start_pipeline(acknowledging(tmp_path))
    try:
        relay = await postfix_relay(p.daemon.smtp_port)
        null = await swaks.run(relay.port, "--from", "<>", "--to", "support@localhost", "--header",
                               "Subject: Your request", "--header", "Message-Id: <null-via-postfix@swaks.test>")
        assert null.final_reply().startswith("250 2.0.0 Ok: queued as"), null.transcript
        refused = await swaks.run(relay.port, "--from", "support@localhost", "--to", "nobody@example.org",
                                  "--header", "Subject: [Case 00001000] Your order",
                                  "--header", "Message-Id: <refused@cases.example.net>")
        assert refused.final_reply().startswith("250 2.0.0 Ok: queued as"), refused.transcript
        await relay.wait_log(r"to=<nobody@example\.org>, .*status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                             r"said: 550 5\.1\.1 ")
        await relay.wait_log(r"(?s)to=<support@localhost>, .*status=sent.*to=<support@localhost>, .*status=sent")
        log = relay.log_text()
        assert re.search(r"> 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: MAIL FROM:<>", log), log  # on the wire to casegate
        assert re.search(r"postfix-casegate-test/bounce\[\d+\]: \w+: sender non-delivery notification: \w+", log), log
        trace = await traced(p, 2)
        await p.wait_idle()
        assert await p.cases() == []
        assert await p.count(Outbox) == 0
    finally:
        await p.daemon.stop()
    relayed = trace["<null-via-postfix@swaks.test>"]
    assert (relayed["outcome"], relayed["suppressed"], relayed["reason"], relayed["sender"]) == (
        "suppressed", "auto-reply", "auto-reply: MAIL FROM: <>", "<>")
    [dsn] = [e for k, e in trace.items() if k != "<null-via-postfix@swaks.test>"]
    assert (dsn["outcome"], dsn["suppressed"], dsn["sender"], dsn["subject"]) == (
        "suppressed", "bounce", "mailer-daemon@mta.example.test", "Undelivered Mail Returned to Sender")
    assert dsn["reason"] == ("bounce: Content-Type: multipart/report; report-type=delivery-status; "
                             "the bounced mail is not ours")
