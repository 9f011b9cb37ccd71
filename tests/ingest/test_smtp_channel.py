"""SMTP channel details a real MTA relies on: EHLO capabilities, STARTTLS, pipelining, 8-bit mail,
and the HTTP readiness that tells an orchestrator when the daemon can take traffic."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest
import trustme
from aiosmtpd.smtp import SMTP
from casegate.ingest.channels.smtp import CasegateSMTP
from casegate.ingest.mail.handoff import PARSE_IN_THREAD
from casegate.store.models import Attachment

from tests.ingest.test_hostile_mail import envelope_of
from tests.pipeline import mail, settings_for, start_pipeline


async def test_starttls_pipelining_and_8bit_mail(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, smtp={
        "tls_cert": str(tmp_path / "server.pem"), "tls_key": str(tmp_path / "server.pem")}))
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=p.daemon.smtp_port, tls_context=ctx, start_tls=False)
        await client.connect()
        await client.ehlo()
        for ext in ("starttls", "pipelining", "8bitmime", "size", "smtputf8"):
            assert client.supports_extension(ext), ext
        await client.starttls()
        assert client.get_transport_info("sslcontext") is not None or client.is_connected
        await client.ehlo()
        assert client.supports_extension("pipelining") and not client.supports_extension("auth")
        raw = "From: Zoë <zoe@example.org>\r\nTo: support@localhost\r\nSubject: Grüße\r\n" \
              "Message-ID: <8bit@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n" \
              "Content-Transfer-Encoding: 8bit\r\n\r\nDie Tür klemmt.\r\n"
        errors, _ = await client.sendmail("zoe@example.org", ["support@localhost"], raw.encode(),
                                          mail_options=["BODY=8BITMIME"])
        await client.quit()
        assert errors == {}
        guard = p.daemon.guards["smtp"]  # the session gave its place back (after STARTTLS the TLS layer,
        end = asyncio.get_running_loop().time() + 5  # not the guarded wrapper, reports the connection lost)
        while guard.open and asyncio.get_running_loop().time() < end:  # noqa: ASYNC110 - set by a loop callback
            await asyncio.sleep(0.02)
        assert guard.open == 0
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert cases[0]["Subject"] == "Grüße" and "Die Tür klemmt." in cases[0]["Description"]
        assert cases[0]["SuppliedName"] == "Zoë"
    finally:
        await p.daemon.stop()


async def test_readyz_reports_each_dependency(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        url = f"http://127.0.0.1:{p.daemon.admin_port}"  # readiness is on the admin listener
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as r:
                assert r.status == 200
            async with http.get(url + "/readyz") as r:
                assert r.status == 200
                assert (await r.json())["checks"] == {"bus": "ok", "blobs": "ok", "store": "ok"}
            shutil.rmtree(p.settings.blob_path)
            p.settings.blob_path.write_text("in the way")
            async with http.get(url + "/readyz") as r:
                body = await r.json()
                assert r.status == 503 and body["checks"]["blobs"].startswith("failing")
        raw, _ = mail("while not ready")
        assert (await p.send(raw))[0] == 451
    finally:
        await p.daemon.stop()


async def test_two_ingest_processes_can_share_the_smtp_port(tmp_path: Path) -> None:
    from tests.services import free_port

    port = free_port()
    daemons = []
    try:
        for _ in range(2):  # a second one would fail with "address in use" without reuse_port
            settings = settings_for("local-sqlite", tmp_path, smtp={"port": port, "reuse_port": True})
            daemons.append(await start_pipeline(settings, role="ingest"))
        assert {p.daemon.smtp_port for p in daemons} == {port}
        for i in range(6):
            assert (await daemons[0].send(mail(f"shared {i}")[0]))[0] == 250
    finally:
        for p in daemons:
            await p.daemon.stop()


@pytest.mark.parametrize("arg", [
    "<ada@example.org>", "<ada@example.org> SIZE=123 BODY=8BITMIME", " <ada@example.org>", "<>",
    "ada@example.org", '<"a b"@example.org>', "<@route:ada@example.org>", "<ada@exämple.org>",
    "<ada@example.org>  SMTPUTF8", "<a..b@example.org>", "<ada@example.org", "<x" + "y" * 70 + "@example.org>",
])
def test_the_address_fast_path_reads_what_aiosmtpd_reads(arg: str) -> None:
    ours = CasegateSMTP.__new__(CasegateSMTP)
    theirs = SMTP.__new__(SMTP)
    for session in (ours, theirs):
        session.local_part_limit = 64
    assert ours._getaddr(arg) == theirs._getaddr(arg)


async def test_large_mails_arriving_together_are_parsed_in_turn_and_all_become_cases(tmp_path: Path) -> None:
    # above PARSE_IN_THREAD each mail is parsed in a thread, LARGE_PARSES_AT_ONCE at a time: the rest wait
    # their turn and are acknowledged after it, none is refused or lost
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        big = "x" * (PARSE_IN_THREAD + 1024)
        raws = [mail(f"large {i}", body=big)[0] for i in range(4)]
        assert all(len(raw) > PARSE_IN_THREAD for raw in raws)
        replies = await asyncio.gather(*(p.send(raw, sender=f"sender{i}@example.org") for i, raw in enumerate(raws)))
        assert [code for code, _ in replies] == [250] * 4
        cases = await p.wait_for(lambda cs: len(cs) == 4)
        assert sorted(c["Subject"] for c in cases) == [f"large {i}" for i in range(4)]
    finally:
        await p.daemon.stop()


def parts_mail(n: int, msgid: str, pad: int = 0) -> bytes:
    """A mail with a text body and `n` small attachments p0.bin …; `pad` bytes more of text (in lines
    SMTP takes) make it large."""
    head = (f"From: Ada <ada@example.org>\r\nTo: support@localhost\r\nSubject: {n} parts ({msgid})\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee the parts\r\n").encode()
    text = (b"x" * 76 + b"\r\n") * (pad // 76 + 1) if pad else b""
    parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=\"p%d.bin\"\r\n\r\n%d\r\n" % (i, i) for i in range(n))
    return head + text + parts + b"--b--\r\n"


async def test_mail_max_attachments_caps_what_is_stored_of_each_mail(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mail={"max_attachments": 5}))
    try:
        small, large = parts_mail(20, "<small@example.org>"), parts_mail(20, "<large@example.org>", PARSE_IN_THREAD)
        assert len(large) > PARSE_IN_THREAD  # parsed in a thread: the cap goes there too
        assert [(await p.send(raw))[0] for raw in (small, large)] == [250, 250]
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        for summary in cases:
            case = await p.case(summary["CaseNumber"])
            assert sorted(a["Name"] for a in case["Attachments"]) == [f"p{i}.bin" for i in range(5)]
        for msgid in ("<small@example.org>", "<large@example.org>"):
            envelope = await envelope_of(p, msgid)
            assert "attachments" in envelope.meta["truncated"].split(",")  # the cut recorded ...
            assert "more than 5 attachments: 15 more not stored" in envelope.meta["defects"]
            assert envelope.raw_sha256 is not None  # ... and the raw original keeps them
            assert (await p.daemon.blobs.get(envelope.raw_sha256)).count(b"filename=") == 20
        assert await p.count(Attachment) == 10
    finally:
        await p.daemon.stop()
