"""ingest.mail.noise and ingest.mail.bounce: bounces, auto-replies and list mail over real formats
(tests/data/noise, see its README for where each sample comes from; the legacy bounce formats of
Mailman's corpus are tests/ingest/test_bounce_corpus.py), people's mail that must stay a case and is
never handed to the bounce detectors, and a bounce made by a real Postfix."""

from __future__ import annotations

import smtplib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from casegate.ingest.mail.bounce import SCAN_LIMIT, bounce_hint, failures, notice, reverse_path
from casegate.ingest.mail.mime import parse_mail
from casegate.ingest.mail.noise import Noise, NoiseKind, classify

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
    ("null-sender-ack.eml", "<>", "auto-reply", "MAIL FROM: <>"),  # the null reverse-path as aiosmtpd gives it
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
    # subjects that open like a failure notice: the bounce detectors look, find no failure, it stays a case
    ("human-delivery-failure-subject.eml", "h.jansen@customer.test"),  # a parcel "could not be delivered"
    ("human-returned-mail-subject.eml", "olaf.berg@customer.test"),  # "Returned mail: RMA 7781" (a return)
    ("human-undeliverable-subject.eml", "it@customer.test"),  # "Undeliverable: your invoices" + 550 5.7.1
]
NOTICE_SUBJECTS = {"human-delivery-failure-subject.eml", "human-returned-mail-subject.eml",
                   "human-undeliverable-subject.eml"}


@pytest.mark.parametrize(("name", "mail_from"), PEOPLE)
@pytest.mark.parametrize("smtp", [True, False])
def test_people_are_not_noise(name: str, mail_from: str, smtp: bool) -> None:
    assert classify_file(name, mail_from if smtp else None) is None


@pytest.mark.parametrize(("name", "mail_from"), PEOPLE)
def test_people_are_not_handed_to_the_bounce_detectors(name: str, mail_from: str) -> None:
    """The cost guard: people's mail gives no hint (null or daemon sender, notice-like subject), so the
    detectors never run on it; a forwarded bounce ("Fwd: Undelivered Mail ...") least of all, where
    they would find the quoted failure (human-forwarding-dsn.eml). Only notice-like subjects look."""
    raw = (DATA / name).read_bytes()
    parsed = parse_mail(raw)
    hint = bounce_hint(parsed, mail_from)
    if name in NOTICE_SUBJECTS:
        assert hint == f"Subject: {parsed.subject}"
    elif name != "human-postmaster.eml":  # From postmaster@: read as a possible bounce, see below
        assert hint is None


def test_a_forwarded_bounce_would_fool_the_detectors() -> None:
    """Why a forward is never handed to them: flufl.bounce finds the failure quoted in it."""
    raw = (DATA / "human-forwarding-dsn.eml").read_bytes()
    tree = notice(raw)
    assert tree is not None and failures(tree) == (("sales@noise.test",), True)
    assert classify(parse_mail(raw), raw, "r.singh@customer.test") is None


@pytest.mark.parametrize(("given", "read"), [("<>", ""), (" <> ", ""), ("< >", ""), ("", ""), (None, None),
                                             ("ada@example.org", "ada@example.org")])
def test_null_reverse_path_spellings(given: str | None, read: str | None) -> None:
    assert reverse_path(given) == read


def test_legacy_notice_is_a_bounce_only_by_the_detectors_verdict() -> None:
    """An SMTP32 "Undeliverable Mail" from postmaster@ with an ordinary envelope sender: the failed
    recipient is what makes it a bounce; the same notice with the address taken out is a person's."""
    raw = (Path(__file__).parent.parent / "data" / "bounces" / "smtp32_05.txt").read_bytes()
    found = classify(parse_mail(raw), raw, "postmaster@jmrpowersports.com")
    assert found == Noise("bounce", "From: postmaster@jmrpowersports.com", (), ("userx@example.com",), True)
    blank = raw.replace(b"userx@example.com", b"someone")
    assert classify(parse_mail(blank), blank, "postmaster@jmrpowersports.com") is None
    # with the null reverse-path it is automatic mail all the same
    assert classify(parse_mail(blank), blank, "<>") == Noise("bounce", "From: postmaster@jmrpowersports.com")


def test_a_subject_alone_never_decides() -> None:
    """A notice-like subject from an ordinary sender, and nothing a detector recognises: a person's."""
    raw = (DATA / "human-thunderbird.eml").read_bytes().replace(
        b"Subject: RX-100 does not start after update", b"Subject: Undelivered Mail Returned to Sender")
    assert classify(parse_mail(raw), raw, "m.kowalski@customer.test") is None


def test_a_large_returned_original_is_read_up_to_the_scan_limit() -> None:
    """qmail returns the whole original inline: 4 MB of it after the notice change nothing (the
    detectors read the first SCAN_LIMIT bytes, the Message-ID scan the whole body)."""
    raw = (DATA / "qmail.eml").read_bytes()
    big = raw.rstrip(b"\r\n") + b"\r\n" + (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 40 + b"\r\n") * 3000
    assert len(big) > 4_000_000 > SCAN_LIMIT
    found = classify(parse_mail(big), big, "")
    assert found == classify_file("qmail.eml", "")


def test_a_report_nested_past_the_recursion_limit_does_not_raise() -> None:
    """parse_mail salvages such a message; reading it as a bounce must not raise either."""
    depth = 3000
    opening = "".join(f'Content-Type: multipart/report; report-type=delivery-status; boundary="b{i}"\r\n\r\n'
                      f"--b{i}\r\n" for i in range(depth))
    raw = ("From: MAILER-DAEMON@mx.customer.test\r\nTo: agent@noise.test\r\nSubject: Undelivered Mail\r\n"
           "MIME-Version: 1.0\r\n" + opening + "Content-Type: text/plain\r\n\r\nfailed\r\n").encode()
    found = classify(parse_mail(raw), raw, "")
    assert found is not None and found.kind == "bounce"


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
        noise = classify(parse_mail(raw), raw, mail_from)  # the null reverse-path as aiosmtpd gives it
        assert noise is not None
        found[noise.permanent] = noise
    assert found[True] == Noise("bounce", REPORT, ("<case-3001.fail@noise.test>",), ("nobody@customer.test",), True)
    assert found[False] == Noise("bounce", REPORT, ("<case-3002.later@noise.test>",), ("later@customer.test",),
                                 False)
