"""ingest.mail_noise: bounces, auto-replies and list mail over real formats (tests/data/noise, see its
README for where each sample comes from), people's mail that must stay a case, and a bounce made by a
real Postfix."""

from __future__ import annotations

import smtplib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ingest.mail_noise import Noise, NoiseKind, classify
from ingest.mime import parse_mail
from tests.mta import start_postfix_relay
from tests.services import free_port

DATA = Path(__file__).parent.parent / "data" / "noise"
REPORT = "Content-Type: multipart/report; report-type=delivery-status"


def classify_file(name: str, mail_from: str | None) -> Noise | None:
    raw = (DATA / name).read_bytes()
    return classify(parse_mail(raw), raw, mail_from)


# file, reason, bounced Message-IDs, failed recipients, permanent (all arrive with MAIL FROM:<>)
BOUNCES = [
    ("postfix-dsn-failed.eml", REPORT, ("<case-1026.abc@noise.test>",), ("nobody@customer.test",), True),
    ("postfix-dsn-delayed.eml", REPORT, ("<case-1027.def@noise.test>",), ("later@customer.test",), False),
    ("exim-dsn.eml", REPORT, ("<case-2001.x7@noise.test>",), ("j.doe@customer.test",), True),
    ("exim-legacy.eml", "X-Failed-Recipients: sales@customer.test", ("<case-2002.y8@noise.test>",),
     ("sales@customer.test",), True),
    ("exim-delay-legacy.eml", "From: mailer-daemon@mx1.customer.test", (), ("p.novak@customer.test",), False),
    ("sendmail-dsn.eml", REPORT, ("<case-2003.z9@noise.test>",), ("m.rossi@customer.test",), True),
    ("qmail.eml", "From: mailer-daemon@mail.customer.test", ("<case-2004.q1@noise.test>",),
     ("old.customer@customer.test",), True),
    ("exchange-ndr.eml", REPORT, ("<case-2005.e5@noise.test>",), ("a.kumar@customer.test",), True),
    ("gmail-dsn.eml", REPORT, ("<case-2006.g6@noise.test>",), ("no.such.user.4711@gmail.com",), True),
]


@pytest.mark.parametrize(("name", "reason", "ids", "recipients", "permanent"), BOUNCES)
@pytest.mark.parametrize("mail_from", ["", None])
def test_bounces(name: str, reason: str, ids: tuple[str, ...], recipients: tuple[str, ...],
                 permanent: bool, mail_from: str | None) -> None:
    assert classify_file(name, mail_from) == Noise("bounce", reason, ids, recipients, permanent)


# file, envelope sender, kind, reason
AUTOMATIC: list[tuple[str, str | None, NoiseKind, str]] = [
    ("exchange-oof.eml", "jana.svobodova@customer.test", "auto-reply", "Auto-Submitted: auto-generated"),
    ("outlook-rule-reply.eml", "orders@customer.test", "auto-reply", "X-Auto-Response-Suppress: All"),
    ("gmail-vacation.eml", "pedro.alves.1987@gmail.com", "auto-reply", "Auto-Submitted: auto-replied"),
    ("sieve-vacation.eml", "", "auto-reply", "Auto-Submitted: auto-replied (vacation)"),
    ("vacation1.eml", "ken@customer.test", "auto-reply", "Precedence: bulk"),
    ("procmail-autoreply.eml", "info@customer.test", "auto-reply", "X-Autoreply: yes"),
    ("cpanel-autorespond.eml", "sales@customer.test", "auto-reply", "X-Autorespond: [Case 00002015] Price list"),
    ("zendesk-ack.eml", "bounces+1234567-abcd-support=noise.test@em1234.customer.zendesk.com", "auto-reply",
     "Auto-Submitted: auto-generated"),
    ("mdn-read-receipt.eml", "jana.svobodova@customer.test", "auto-reply",
     "Content-Type: multipart/report; report-type=disposition-notification"),
    ("null-sender-ack.eml", None, "auto-reply", "Return-Path: <>"),  # IMAP: no envelope, Return-Path header
    ("null-sender-ack.eml", "", "auto-reply", "MAIL FROM: <>"),
    ("mailman-post.eml", "users-bounces+support=noise.test@lists.example.org", "list",
     "List-Id: Users of Example <users.lists.example.org>"),  # List-Id wins over its Precedence: list
    ("newsletter.eml", "bounce-mc.us21_1234567.8901234-support=noise.test@mail123.atl41.mcdlv.net", "list",
     "Precedence: bulk + List-Unsubscribe"),
]


@pytest.mark.parametrize(("name", "mail_from", "kind", "reason"), AUTOMATIC)
def test_automatic_mail(name: str, mail_from: str | None, kind: NoiseKind, reason: str) -> None:
    assert classify_file(name, mail_from) == Noise(kind, reason)


# people's mail: each must stay a case, whether it came by SMTP (envelope sender) or IMAP (None)
PEOPLE = [
    ("human-thunderbird.eml", "m.kowalski@customer.test"),
    ("human-re-out-of-office.eml", "jana.svobodova@customer.test"),  # "RE: Automatic reply: ..."
    ("human-re-ooo-subject.eml", "t.berg@customer.test"),  # "Re: out of office" + X-A-R-S: DR, OOF, AutoReply
    ("human-quoting-bounce.eml", "r.singh@customer.test"),  # pasted DSN fields and a Message-ID
    ("human-forwarding-autoreply.eml", "purchasing@customer.test"),  # OOF attached as message/rfc822
    ("human-forwarding-dsn.eml", "r.singh@customer.test"),  # a multipart/report attached, not the message
    ("human-auto-submitted-no.eml", "l.meyer@customer.test"),  # RFC 3834: "no" is a person
    ("human-postmaster.eml", "postmaster@customer.test"),  # a person writing from postmaster@
]


@pytest.mark.parametrize(("name", "mail_from"), PEOPLE)
@pytest.mark.parametrize("smtp", [True, False])
def test_people_are_not_noise(name: str, mail_from: str, smtp: bool) -> None:
    assert classify_file(name, mail_from if smtp else None) is None


def test_report_wins_over_auto_submitted_and_null_sender() -> None:
    raw = (DATA / "postfix-dsn-failed.eml").read_bytes()
    assert b"Auto-Submitted: auto-replied" in raw
    found = classify(parse_mail(raw), raw, "")
    assert found is not None and found.kind == "bounce"


def test_success_notification_is_not_a_bounce() -> None:
    """A DSN asked for with NOTIFY=SUCCESS (Action: delivered) is automatic, but nothing bounced."""
    raw = (DATA / "postfix-dsn-failed.eml").read_bytes()
    raw = raw.replace(b"Action: failed\r\nStatus: 5.1.1", b"Action: delivered\r\nStatus: 2.0.0")
    assert classify(parse_mail(raw), raw, "") == Noise("auto-reply", f"{REPORT} (Action: delivered)")


def test_auto_submitted_no_with_comment_is_a_person() -> None:
    raw = (DATA / "human-auto-submitted-no.eml").read_bytes().replace(
        b"Auto-Submitted: no", b"Auto-Submitted: no (sent by a person)")
    assert classify(parse_mail(raw), raw, "l.meyer@customer.test") is None


def test_postmaster_with_null_sender_is_a_bounce() -> None:
    """From postmaster@ counts as a bounce once the envelope sender is null (RFC 5321 4.5.5)."""
    found = classify_file("human-postmaster.eml", "")
    assert found is not None and (found.kind, found.reason) == ("bounce", "From: postmaster@customer.test")


# -- a bounce made by a real Postfix ------------------------------------------------------------
class _Peer:
    """The receiving side: rejects nobody@ for good (550) and later@ for now (450), keeps the rest."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"
        if address.startswith("later@"):
            return f"450 4.2.0 <{address}>: Recipient address rejected: Mailbox temporarily full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


def _outbound(to: str, message_id: str) -> bytes:
    return (f"From: Noise Support <agent@noise.test>\r\nTo: {to}\r\nSubject: [Case 00003001] Your order\r\n"
            f"Message-ID: {message_id}\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n\r\nHello.\r\n").encode()


def test_real_postfix_bounces() -> None:
    """Postfix relays our mail to a peer that refuses it; the DSNs Postfix sends back (one failure,
    one delay warning) are classified with the original Message-ID and recipient."""
    peer = _Peer()
    controller = Controller(peer, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        relay = start_postfix_relay(controller.port)
        try:  # a delay warning at the first deferral, on this private instance only
            subprocess.run(["postconf", "-c", str(relay.config_dir), "-e", "delay_warning_time = 1s"], check=True)
            subprocess.run([relay.postfix, "-c", str(relay.config_dir), "reload"], check=True, capture_output=True)
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
                client.sendmail("agent@noise.test", ["nobody@customer.test"],
                                _outbound("nobody@customer.test", "<case-3001.fail@noise.test>"))
                client.sendmail("agent@noise.test", ["later@customer.test"],
                                _outbound("later@customer.test", "<case-3002.later@noise.test>"))
            end = time.monotonic() + 30
            while len(peer.received) < 2 and time.monotonic() < end:
                time.sleep(0.05)
        finally:
            relay.stop()
    finally:
        controller.stop()
    assert len(peer.received) == 2, peer.received
    found = {}
    for mail_from, rcpts, raw in peer.received:
        assert (mail_from, rcpts) == ("<>", ["agent@noise.test"])
        noise = classify(parse_mail(raw), raw, "")
        assert noise is not None
        found[noise.permanent] = noise
    assert found[True] == Noise("bounce", REPORT, ("<case-3001.fail@noise.test>",), ("nobody@customer.test",), True)
    assert found[False] == Noise("bounce", REPORT, ("<case-3002.later@noise.test>",), ("later@customer.test",),
                                 False)
