"""An agent's email reply end to end: queued on the case (store.agent_replies) in the running daemon, it
reaches a real SMTP sink (aiosmtpd) through the outbox with the case's thread token in the subject,
In-Reply-To and References of the conversation and its own Message-ID; the customer's answers to it,
sent over SMTP to the daemon, thread back onto the same case — by its Message-ID when the client keeps
the headers, by the token when it keeps only the subject. On each deployment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from casegate.config import Settings
from casegate.ingest.app.daemon import thread_secret
from casegate.store.access import add_user
from casegate.store.agent_replies import ReplyPolicy, queue_email_reply
from casegate.store.models import EmailMessage as EmailMessageRow
from casegate.store.models import EmailStatus, Outbox
from casegate.store.thread_token import make_token

from tests.ingest.test_acknowledgement import Sink, outbound, serve, wait_until
from tests.pipeline import mail, start_pipeline


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    yield from serve(Sink())


async def test_an_email_reply_reaches_the_sink_threaded_and_the_customers_answer_threads_back(
        deployment_settings: Callable[..., Settings], sink: tuple[Sink, int]) -> None:
    handler, port = sink
    settings = deployment_settings(outbound=outbound(port),
                                   routing=[{"address": "support@localhost", "auto_acknowledge": False}])
    p = await start_pipeline(settings)
    try:
        raw, first_id = mail("Printer on fire", "It is on fire.")
        assert (await p.send(raw))[0] == 250
        [case] = await p.wait_for(lambda cs: len(cs) == 1)
        assert p.daemon.db is not None
        db = p.daemon.db
        ann = await add_user(db, "ann@example.com", "agent", "Ann Agent")
        policy = ReplyPolicy.of(p.settings, thread_secret(p.settings))
        email_id = await db.transaction(lambda c: queue_email_reply(
            c, policy, case["Id"], to=None, text_body="We are sending a technician.\n\nAnn",
            actor_id=ann.id, now=datetime.now(UTC)))

        assert await wait_until(lambda: len(handler.received) == 1)
        mail_from, rcpts, data = handler.received[0]
        assert (mail_from, rcpts) == ("support@localhost", ["ada@example.org"])
        reply = message_from_bytes(data, policy=default_policy)
        token = make_token(thread_secret(p.settings), case["Id"])
        assert (reply["From"], reply["To"]) == ("support@localhost", "ada@example.org")
        assert reply["Subject"] == f"Re: Printer on fire {token}"
        assert (reply["In-Reply-To"], reply["References"]) == (first_id, first_id)
        assert reply.get_content().splitlines() == ["We are sending a technician.", "", "Ann"]

        async def sent() -> bool:
            return await p.rows(EmailMessageRow.Id, EmailMessageRow.Status, EmailMessageRow.MessageIdentifier) \
                == [(case["SourceId"], EmailStatus.NEW, first_id), (email_id, EmailStatus.SENT, reply["Message-ID"])]

        assert await wait_until(sent)  # Queued until the relay took it, then Sent, under its own Message-ID

        # the customer's client keeps the headers but not the subject: threaded by the reply's Message-ID
        raw, _ = mail("Still burning", "More smoke.", in_reply_to=reply["Message-ID"],
                      references=[first_id, reply["Message-ID"]])
        assert (await p.send(raw))[0] == 250
        # a client that drops the headers still carries the token in the subject
        bare = EmailMessage()
        bare["From"], bare["To"], bare["Subject"] = "ada@example.org", "support@localhost", f"Re: {reply['Subject']}"
        bare.set_content("Sent from my phone")
        assert (await p.send(bytes(bare)))[0] == 250
        await p.wait_idle()
        assert len(await p.cases()) == 1
        shown = await p.case(case["CaseNumber"])
        assert [(m["Incoming"], m["Status"]) for m in shown["EmailMessages"]] == [
            (True, EmailStatus.NEW), (False, EmailStatus.SENT), (True, EmailStatus.NEW), (True, EmailStatus.NEW)]
        rules = [f["Body"] for f in shown["Feed"] if f["Type"] == "ThreadingRule"]
        assert rules == ["email message threaded by in-reply-to", "email message threaded by token"]
        assert await p.count(Outbox, Outbox.Status != "sent") == 0
        assert len(handler.received) == 1  # the answers are not acknowledged, and the reply went once
    finally:
        await p.daemon.stop()
