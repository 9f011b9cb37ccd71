"""Acknowledgements and automatic mail end to end: a new case's acknowledgement arrives at a real SMTP
sink (aiosmtpd) with the right headers and the customer's reply to it threads onto the case; a relay
that is down gets the mail once it is back; an auto-reply opens nothing and a real Postfix bounce of
the acknowledgement lands on its case — and `casegate messages show` says where each one went.

The acknowledgement's EmailMessage on the case follows its delivery: Queued until the relay has it,
then Sent; Failed when the relay refuses it for good or the attempts run out, with the failure on the
case feed (the outbox sender against a real sink, on SQLite and PostgreSQL, and through the daemon)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session
from casegate.config import OutboundSettings, RoutingAddress, RulesSettings, Settings
from casegate.ingest.worker.outbox import OutboxSender
from casegate.store.case_policy import CasePolicy
from casegate.store.case_queries import show_case
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.migrate import upgrade
from casegate.store.models import EmailMessage as EmailMessageRow
from casegate.store.models import EmailStatus, Outbox
from casegate.store.owners import ensure_owners
from sqlalchemy import select

from tests.pipeline import Pipeline, mail, settings_for, start_pipeline

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


class RefusingRelay(Sink):
    """A real SMTP server that refuses every recipient for good (550), as a relay does for an unknown user."""

    async def handle_RCPT(self, server: Any, session: Session, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


def serve(handler: Sink) -> Iterator[tuple[Sink, int]]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    yield from serve(Sink())


@pytest.fixture
def refusing_relay() -> Iterator[tuple[Sink, int]]:
    yield from serve(RefusingRelay())


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
        assert await wait_until(lambda: outgoing_statuses(p, [EmailStatus.SENT]))  # Sent, once the relay has it

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
        assert await outgoing_statuses(p, [EmailStatus.QUEUED])  # and the case says so
        controller.start()
        started = True
        assert await wait_until(lambda: len(handler.received) == 1)
        assert await wait_until(sent)
        assert await outgoing_statuses(p, [EmailStatus.SENT])
        await p.wait_idle()  # the worker has nothing left to queue another acknowledgement for ...
        assert await p.count(Outbox, Outbox.Status != "sent") == 0  # ... and the outbox nothing left to send
        assert len(handler.received) == 1
    finally:
        await p.daemon.stop()
        if started:
            controller.stop()


async def outgoing_statuses(p: Pipeline, expected: list[str]) -> bool:
    """The Status of every outgoing EmailMessage is as `expected` (in the order they were written)."""
    return [r[0] for r in await p.rows(EmailMessageRow.Status) if r[0] != EmailStatus.NEW] == expected


async def test_a_relay_refusing_the_acknowledgement_for_good_marks_it_failed_on_the_case(
        deployment_settings: Callable[..., Settings], refusing_relay: tuple[Sink, int]) -> None:
    _, port = refusing_relay
    p = await start_pipeline(deployment_settings(outbound=outbound(port)))
    try:
        assert (await p.send(mail("Printer on fire")[0]))[0] == 250
        assert await wait_until(lambda: outgoing_statuses(p, [EmailStatus.FAILED]))
        case = await p.case("00001000")
        [ack] = [m for m in case["EmailMessages"] if not m["Incoming"]]
        assert (ack["Status"], ack["ToAddress"]) == ("F", "ada@example.org")
        [failure] = [f for f in case["Feed"] if f["Type"] == "OutboundMail"]
        assert failure["RelatedRecordId"] == ack["Id"]
        assert failure["Body"].startswith("Acknowledgement to ada@example.org failed after 1 attempt: "
                                          "SMTPRecipientsRefused")
        assert "550" in failure["Body"] and "User unknown" in failure["Body"]
        assert await p.rows(Outbox.Status, Outbox.Attempts) == [("failed", 1)]
    finally:
        await p.daemon.stop()


# -- the outbox sender on its own: the Status before it runs, and after ------------------------------
ROUTE = RoutingAddress(address="support@localhost")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty case store on each database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_db_url")
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()


def relay(port: int, **more: Any) -> OutboundSettings:
    return OutboundSettings(**outbound(port, **more))


async def open_case(db: Database, settings: OutboundSettings) -> str:
    """A mail to support@localhost opens case 00001000 and queues its acknowledgement; its Id."""
    owners = await ensure_owners(db, ["queue:Support"])
    service = CaseService(db, CasePolicy({ROUTE.address: ROUTE}, RulesSettings(), owners, b"k", outbound=settings))
    [out] = await service.record_messages([InboundMessage(
        channel="email", external_id="<m1@example.org>", envelope_id="env-1", received_at=datetime.now(UTC),
        conversation_key="ada@example.org", sender_email="ada@example.org", sender_name="Ada Customer",
        subject="Printer on fire", text="It is on fire.", recipients=(ROUTE.address,),
        message_id="<m1@example.org>")])
    assert out.case_number == "00001000" and out.case_id
    return out.case_id


async def acknowledgement(db: Database) -> dict[str, Any]:
    [ack] = [m for m in (await show_case(db, "00001000"))["EmailMessages"] if not m["Incoming"]]
    return ack


async def outbox_feed(db: Database) -> list[str]:
    return [f["Body"] for f in (await show_case(db, "00001000"))["Feed"] if f["Type"] == "OutboundMail"]


@asynccontextmanager
async def sending(db: Database, settings: OutboundSettings) -> AsyncIterator[None]:
    """The outbox sender running (as the worker runs it) until the block ends."""
    stopping = asyncio.Event()
    task = asyncio.create_task(OutboxSender(db, settings).run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def test_the_acknowledgement_reads_queued_until_the_relay_has_it_then_sent(
        store: Database, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    settings = relay(port)
    await open_case(store, settings)
    queued = await acknowledgement(store)
    assert (queued["Status"], queued["Incoming"]) == (EmailStatus.QUEUED, False)
    assert handler.received == []

    async def sent() -> bool:
        return (await acknowledgement(store))["Status"] == EmailStatus.SENT

    async with sending(store, settings):
        assert await wait_until(sent)
    assert [rcpts for _, rcpts, _ in handler.received] == [["ada@example.org"]]
    done = await acknowledgement(store)
    assert datetime.fromisoformat(done["MessageDate"]) >= datetime.fromisoformat(queued["MessageDate"])  # sent at
    assert await outbox_feed(store) == []
    async with store.session() as s:
        assert (await s.execute(select(Outbox.Status, Outbox.SentDate.is_not(None)))).one() == ("sent", True)


async def test_out_of_attempts_against_a_closed_port_it_reads_failed_and_the_feed_says_why(
        store: Database) -> None:
    settings = relay(free_port(), retry_initial=0.05, retry_max=0.1, max_attempts=3)
    await open_case(store, settings)

    async def failed() -> bool:
        return (await acknowledgement(store))["Status"] == EmailStatus.FAILED

    async with sending(store, settings):
        assert await wait_until(failed)
    [failure] = await outbox_feed(store)
    assert failure.startswith("Acknowledgement to ada@example.org failed after 3 attempts: ")
    async with store.session() as s:
        status, attempts, error = (await s.execute(select(Outbox.Status, Outbox.Attempts, Outbox.LastError))).one()
    assert (status, attempts) == ("failed", 3) and error and failure.endswith(error)


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
