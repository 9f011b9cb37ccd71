"""Acknowledgements and automatic mail end to end: a new case's acknowledgement arrives at a real SMTP
sink (aiosmtpd) with the right headers and the customer's reply to it threads onto the case; a relay
that is down gets the mail once it is back; an auto-reply opens nothing and a real Postfix bounce of
the acknowledgement lands on its case — and `casegate messages show` says where each one went."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session
from sqlalchemy import select

from config import Settings
from store.models import EmailMessage as EmailMessageRow
from store.models import Outbox
from tests.pipeline import mail, settings_for, start_pipeline

NOISE = Path(__file__).parent.parent / "data" / "noise"


class Sink:
    """A real SMTP server that keeps what it is given."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: SmtpEnvelope) -> str:
        self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def outbound(port: int, **more: Any) -> dict[str, Any]:
    return {"enabled": True, "host": "127.0.0.1", "port": port, "poll_interval": 0.05,
            "hostname": "cases.example.net", "timeout": 5, **more}


async def wait_until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while True:
        got = pred()
        done = await got if inspect.isawaitable(got) else got
        if done or time.monotonic() > end:
            return bool(done)
        await asyncio.sleep(0.05)


async def test_acknowledgement_arrives_with_its_headers_and_a_reply_to_it_threads(
        deployment_settings: Callable[..., Settings], sink: tuple[Sink, int]) -> None:
    handler, port = sink
    p = await start_pipeline(deployment_settings(outbound=outbound(port)))
    try:
        raw, first_id = mail("Printer on fire", "It is on fire.")
        assert (await p.send(raw))[0] == 250
        assert await wait_until(lambda: len(handler.received) == 1)
        mail_from, rcpts, data = handler.received[0]
        assert (mail_from, rcpts) == ("support@localhost", ["ada@example.org"])
        ack = message_from_bytes(data, policy=default_policy)
        assert ack["From"] == "support@localhost" and ack["To"] == "Ada Customer <ada@example.org>"
        assert ack["Subject"].startswith("[Case 00001000] Printer on fire thread::500")
        assert (ack["Auto-Submitted"], ack["In-Reply-To"]) == ("auto-replied", first_id)
        assert "case 00001000" in ack.get_content()

        # the customer answers the acknowledgement: a client that edits the subject still threads by
        # the acknowledgement's Message-ID ...
        raw, _ = mail("Re: Printer on fire", "More smoke.", in_reply_to=ack["Message-ID"])
        assert (await p.send(raw))[0] == 250
        # ... and a client that drops the headers still carries the token in the subject
        bare = EmailMessage()
        bare["From"], bare["To"], bare["Subject"] = "ada@example.org", "support@localhost", f"Re: {ack['Subject']}"
        bare.set_content("Sent from my phone")
        assert (await p.send(bytes(bare)))[0] == 250
        await p.wait_idle()
        assert len(await p.cases()) == 1
        case = await p.case("00001000")
        incoming = [m for m in case["EmailMessages"] if m["Incoming"]]
        outgoing = [m for m in case["EmailMessages"] if not m["Incoming"]]
        assert len(incoming) == 3 and [m["MessageIdentifier"] for m in outgoing] == [ack["Message-ID"]]
        rules = [f["Body"] for f in case["Feed"] if f["Type"] == "ThreadingRule"]
        assert rules == ["email message threaded by in-reply-to", "email message threaded by token"]
        assert len(handler.received) == 1  # replies are not acknowledged again
    finally:
        await p.daemon.stop()


async def test_a_relay_that_is_down_gets_the_acknowledgement_once_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path,
                                          outbound=outbound(port, retry_initial=0.2, retry_max=0.5)))
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    started = False
    try:
        assert (await p.send(mail("Relay is down")[0]))[0] == 250
        assert p.daemon.db is not None
        db = p.daemon.db

        async def attempts() -> tuple[str, int, str | None]:
            async with db.session() as s:
                row = (await s.execute(select(Outbox.Status, Outbox.Attempts, Outbox.LastError))).one_or_none()
                return (row[0], row[1], row[2]) if row else ("", 0, None)

        async def tried_twice() -> bool:
            return (await attempts())[1] >= 2

        async def sent() -> bool:
            return (await attempts())[0] == "sent"

        assert await wait_until(tried_twice)
        status, _, error = await attempts()
        assert status == "queued" and error  # connection refused: kept for another try
        controller.start()
        started = True
        assert await wait_until(lambda: len(handler.received) == 1)
        assert await wait_until(sent)
        await asyncio.sleep(0.5)
        assert len(handler.received) == 1
    finally:
        await p.daemon.stop()
        if started:
            controller.stop()


def casegate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASEGATE_DATA_DIR": str(settings.data_path)}
    return subprocess.run([sys.executable, "-m", "ingest", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


async def test_auto_reply_opens_nothing_and_a_real_bounce_marks_the_acknowledgement_undelivered(
        tmp_path: Path, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, outbound=outbound(port)))
    try:
        assert (await p.send(mail("Printer on fire", sender="Ada <ada@customer.test>")[0],
                             sender="ada@customer.test"))[0] == 250
        assert await wait_until(lambda: len(handler.received) == 1)
        ack = message_from_bytes(handler.received[0][2], policy=default_policy)

        ooo = EmailMessage()
        ooo["From"], ooo["To"], ooo["Subject"] = "bob@customer.test", "support@localhost", "Out of office"
        ooo["Message-ID"], ooo["Auto-Submitted"] = "<ooo-1@customer.test>", "auto-replied"
        ooo.set_content("I am away until Monday.")
        assert (await p.send(bytes(ooo), sender="bob@customer.test"))[0] == 250

        # Postfix's own bounce of our acknowledgement (captured from Postfix 3.7), null sender
        dsn = (NOISE / "postfix-dsn-failed.eml").read_bytes().replace(
            b"<case-1026.abc@noise.test>", ack["Message-ID"].encode())
        assert (await p.send(dsn, sender=""))[0] == 250
        await p.wait_idle()

        assert [c["CaseNumber"] for c in await p.cases()] == ["00001000"]
        assert len(handler.received) == 1  # neither the auto-reply nor the bounce was acknowledged
        case = await p.case("00001000")
        assert next(f["Body"] for f in case["Feed"] if f["Type"] == "ThreadingRule").startswith(
            "email message threaded by bounce")
        assert p.daemon.db is not None
        async with p.daemon.db.session() as s:
            bounced = (await s.execute(select(EmailMessageRow.IsBounced).where(
                EmailMessageRow.MessageIdentifier == ack["Message-ID"]))).scalar_one()
        assert bounced is True
    finally:
        await p.daemon.stop()

    shown = casegate(p.settings, "messages", "show", "ooo-1@customer.test")
    assert shown.returncode == 0, shown.stderr
    assert "suppressed (auto-reply): auto-reply: Auto-Submitted: auto-replied" in shown.stdout
    exported = casegate(p.settings, "messages", "export", "--since", "1h")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted((e["outcome"], e["rule"] or e.get("suppressed")) for e in lines) == [
        ("created", "new"), ("suppressed", "auto-reply"), ("threaded", "bounce")]
    assert "3 messages exported" in exported.stderr
    unknown = casegate(p.settings, "messages", "show", "<never@seen.test>")
    assert unknown.returncode == 1 and "no message <never@seen.test> has been processed" in unknown.stderr
    bad = casegate(p.settings, "messages", "export", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "not a date, time or age: 'yesterday-ish'" in bad.stderr
