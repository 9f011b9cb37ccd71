"""Telling automatic mail from people's mail (pure, no I/O): bounces (delivery status notifications),
auto-replies (vacation/out-of-office, ticket-system acknowledgements, read receipts) and mailing-list
traffic. `classify` returns what the message is and which header or value decided, or None for mail a
person wrote. Reading a bounce (who failed, for good or not, which mail bounced) is `ingest.mail.bounce`.

The envelope sender is taken as aiosmtpd gives it: the null reverse-path `MAIL FROM:<>` arrives as
`<>` and is read as the null path, like "".

Order, first hit wins:
1. Bounce. Decided by the message's own evidence: a `multipart/report; report-type=delivery-status`
   (RFC 3464; also one without a report-type, as old X.400 gateways send), read here for Action/Status
   (permanence) and the bounced Message-ID; an `X-Failed-Recipients` header (Exim); mail from
   mailer-daemon@/postmaster@ (postmaster@ only with a null sender, a returned message or a failed
   recipient found, since people write from it too). The failed recipients are what flufl.bounce's
   detectors find. Any other report (MDN read receipt, ARF abuse report) is an auto-reply, unless the
   detectors find a failure in an MDN (Dovecot and Sieve refuse mail with one); so is a DSN whose
   recipients were all delivered/relayed/expanded (a success notice). Every other failure notice
   (Exchange/SMTPSVC plain text, GroupWise, SMTP32, Lotus/Domino, Yahoo, AOL, Hotmail, "simple"
   postmaster notices …) is looked at only behind a cheap hint — the null sender, a
   mailer-daemon/postmaster envelope sender or Return-Path, a mail system's From (MDaemon@, "Mail
   Delivery System"), a subject that opens like a notice — and is a bounce only if the detectors find a
   failed recipient in it. Bounces come first because a DSN also carries `Auto-Submitted` and an empty
   return path.
2. Auto-reply markers that describe the message itself: `Auto-Submitted` other than `no` (RFC 3834),
   `X-Autoreply`, `X-Autorespond`, `X-Auto-Response-Suppress: All`.
3. List: `List-Id` (RFC 2919); it wins over `Precedence`. `Precedence: list`, and `Precedence: bulk`
   with `List-Unsubscribe` (a newsletter), are lists too.
4. Auto-reply: `Precedence: bulk|junk|auto_reply`; an empty return path (MAIL FROM `<>` or
   `Return-Path: <>`).
Subjects never decide, not even as a weak signal beside a header: every real auto-replier seen sets one
of the headers above (Exchange since 2007 sets `Auto-Submitted`), so a subject adds nothing but false
positives, and customers do write "Re: out of office", "Out of office: printer broken" or "Delivery
failure" (of a parcel). A false positive loses their case. A notice-like subject only makes the bounce
detectors look; what they find decides, and a reply or a forward ("Re:", "Fwd:") is never looked at.

`X-Auto-Response-Suppress` is a request ("do not auto-reply to me"), not a statement that the message
is automatic. Exchange writes `All` on its own automatic replies and system messages, so `All` counts;
a token list such as `DR, OOF, AutoReply` is also stamped on people's mail (Exchange distribution
groups, university list gateways, helpdesk agents' replies), so it is ignored. Discourse,
osTicket, GLPI and sisimai each dropped it as an auto-reply marker after such false positives.

Cost: the common path is a few dict lookups, `bytes.find` over the header block and three short regex
matches (median ~3.7 µs on people's mail, ~1 µs more than before the bounce hints; ~100-270 µs for
`parse_mail`). Only a report, a mailer-daemon or postmaster From or a bounce hint parses the message
again (its first 64 KiB, attachments left out) and runs the detectors: ~0.2 ms a notice (median of
Mailman's corpus, 1.2 ms at most), ~0.4 ms for a person's mail whose subject reads like a notice, ~22
ms for 64 KiB of text.
Limits: a base64-encoded `message/delivery-status` is not read (the parser splits it undecoded; no MTA
seen encodes it; the returned Message-ID and X-Failed-Recipients still count); headers
beyond the first 64 KiB are not scanned for `multipart/report`/`X-Failed-Recipients`; the detectors read
the text of the first 64 KiB of a notice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from casegate.ingest.mail.bounce import (
    DAEMONS,
    Dsn,
    bounce_hint,
    dsn,
    failures,
    local_part,
    notice,
    notice_subject,
    permanence,
    returned_ids,
    reverse_path,
    unique,
)
from casegate.ingest.mail.mime import ParsedMail

NoiseKind = Literal["auto-reply", "bounce", "list"]


@dataclass(frozen=True, slots=True)
class Noise:
    """What an automatic message is. For bounces: the Message-IDs (`<id@host>`) of the mail that
    bounced, the failed recipients (lowercased) and whether the failure is permanent (5.x.x: True,
    4.x.x delay: False, unknown: None)."""

    kind: NoiseKind
    reason: str
    bounced_message_ids: tuple[str, ...] = ()
    bounced_recipients: tuple[str, ...] = ()
    permanent: bool | None = None


_HEAD_LIMIT = 65536
_REPORT = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?multipart/report\b([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)",
                     re.I | re.M)
_FAILED_RECIPIENTS = re.compile(rb"^x-failed-recipients:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.I | re.M)
_LIST_UNSUBSCRIBE = re.compile(rb"^list-unsubscribe:", re.I | re.M)
_REPORT_TYPE = re.compile(rb"report-type\s*=\s*\"?([\w-]+)", re.I)
_EMAIL = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+[\w\]]")
_KEYWORD = re.compile(r"[\s;(]")


def classify(parsed: ParsedMail, raw: bytes, mail_from: str | None) -> Noise | None:
    """What automatic mail `raw` is, or None for mail a person wrote. `parsed` is `parse_mail(raw)`;
    `mail_from` the SMTP envelope sender, "" or `<>` for the null reverse-path, None when the channel
    has no envelope (IMAP: the delivering MTA's `Return-Path` header stands in for it)."""
    mail_from = reverse_path(mail_from)
    headers = parsed.headers
    head, body_at = _header_block(raw)
    # bytes.find is a memchr-speed scan: the regexes run only when the literal hint is there
    report = _REPORT.search(head) if b"eport" in head or b"EPORT" in head else None
    failed_header = _FAILED_RECIPIENTS.search(head) if b"ailed-" in head or b"AILED-" in head else None
    if report or failed_header or local_part(parsed.from_email) in DAEMONS:
        found = _bounce(parsed, raw, body_at, report, failed_header, mail_from)
        if found is not None:
            return found
    elif (hint := bounce_hint(parsed, mail_from)) is not None:
        found = _detected(parsed, raw, body_at, hint)
        if found is not None:
            return found

    auto = headers.get("Auto-Submitted")
    if auto is not None and _KEYWORD.split(auto.strip(), 1)[0].lower() not in ("no", ""):
        return Noise("auto-reply", f"Auto-Submitted: {auto}")
    for name in ("X-Autoreply", "X-Autorespond"):
        value = headers.get(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return Noise("auto-reply", f"{name}: {value}")
    suppress = headers.get("X-Auto-Response-Suppress")
    if suppress is not None and suppress.strip().lower() == "all":
        return Noise("auto-reply", f"X-Auto-Response-Suppress: {suppress}")

    list_id = headers.get("List-Id")
    if list_id:
        return Noise("list", f"List-Id: {list_id}")
    precedence = (headers.get("Precedence") or "").strip().lower()
    if precedence == "list":
        return Noise("list", "Precedence: list")
    if precedence == "bulk" and _LIST_UNSUBSCRIBE.search(head):
        return Noise("list", "Precedence: bulk + List-Unsubscribe")
    if precedence in ("bulk", "junk", "auto_reply"):
        return Noise("auto-reply", f"Precedence: {precedence}")
    if mail_from == "":
        return Noise("auto-reply", "MAIL FROM: <>")
    if headers.get("Return-Path", "").replace(" ", "") == "<>":
        return Noise("auto-reply", "Return-Path: <>")
    return None


def _header_block(raw: bytes) -> tuple[bytes, int]:
    """The header block of `raw` and where the body starts (LF or CRLF line ends; headers past
    64 KiB are not looked at)."""
    ends = [(i, i + n) for i, n in ((raw.find(b"\n\n", 0, _HEAD_LIMIT), 2), (raw.find(b"\n\r\n", 0, _HEAD_LIMIT), 3))
            if i >= 0]
    if not ends:
        return raw[:_HEAD_LIMIT], min(len(raw), _HEAD_LIMIT)
    start, body_at = min(ends)
    return raw[:start], body_at


def _bounce(parsed: ParsedMail, raw: bytes, body_at: int, report: re.Match[bytes] | None,
            failed_header: re.Match[bytes] | None, mail_from: str | None) -> Noise | None:
    """A bounce, a non-bounce report (auto-reply), or None when the evidence does not hold up."""
    failed = unique(_addresses(failed_header.group(1).decode("latin-1"))) if failed_header else ()
    if report is not None:
        kind = _REPORT_TYPE.search(report.group(1))
        report_type = kind.group(1).decode("ascii").lower() if kind else ""
        reason = f"Content-Type: multipart/report; report-type={report_type or '?'}"
        if report_type == "disposition-notification":  # Dovecot and Sieve refuse mail with an MDN
            return _detected(parsed, raw, body_at, reason) or Noise("auto-reply", reason)
        if report_type not in ("delivery-status", ""):
            return Noise("auto-reply", reason)
        return _rfc3464(parsed, raw, body_at, reason, failed, declared=bool(report_type))
    text = parsed.text or ""
    ids = returned_ids(raw, body_at) or tuple(parsed.in_reply_to)
    if failed_header is not None:
        return Noise("bounce", f"X-Failed-Recipients: {', '.join(failed)}", ids, failed, permanence(text, None))
    sender = parsed.from_email or ""
    # a person may write from postmaster@: without a null sender, a returned message or a failed
    # recipient it is theirs (and the detectors only look when the subject reads like a notice)
    person = sender.startswith("postmaster@") and mail_from != "" and not ids
    if person and not notice_subject(parsed.subject):
        return None
    tree = notice(raw)
    recipients, detected = failures(tree) if tree is not None else ((), None)
    if person and not recipients:
        return None
    return Noise("bounce", f"From: {sender}", ids, recipients, permanence(text, detected))


def _rfc3464(parsed: ParsedMail, raw: bytes, body_at: int, reason: str, failed: tuple[str, ...], *,
             declared: bool) -> Noise:
    """A delivery-status report (`declared`), or a report without a report-type that has status
    fields or in which the detectors find a failure; else a report of some other kind (auto-reply).
    The failed recipients are the detectors' (they read the non-compliant reports too: `Action:
    failure`, fields run together), permanence is the Status codes' when there are any."""
    tree = notice(raw)
    report = dsn(tree) if tree is not None else Dsn((), (), ())
    if report.success:
        return Noise("auto-reply", f"{reason} (Action: {report.actions[0][0]})")
    recipients, detected = failures(tree) if tree is not None else ((), None)
    if not declared and not report.actions and not recipients:
        return Noise("auto-reply", reason)
    # no returned message attached: some NDRs quote its headers in the text, Gmail's and Exchange's
    # answer it (In-Reply-To)
    ids = report.ids or returned_ids(raw, body_at) or tuple(parsed.in_reply_to)
    permanent = report.permanent if report.permanent is not None else detected
    return Noise("bounce", reason, ids, recipients or report.recipients or failed, permanent)


def _detected(parsed: ParsedMail, raw: bytes, body_at: int, hint: str) -> Noise | None:
    """A bounce if the detectors find a failed recipient in a message that gave `hint`, else None."""
    tree = notice(raw)
    recipients, detected = failures(tree) if tree is not None else ((), None)
    if not recipients:
        return None
    ids = returned_ids(raw, body_at) or tuple(parsed.in_reply_to)
    return Noise("bounce", f"{hint} + failed: {', '.join(recipients)}", ids, recipients,
                 permanence(parsed.text or "", detected))


def _addresses(text: str) -> list[str]:
    return [a.lower() for a in _EMAIL.findall(text)]
