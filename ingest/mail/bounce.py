"""Reading bounces (pure, no I/O): what a delivery failure notice says — who failed, whether for good,
and which mail bounced — and the cheap signals that say a message is worth reading as one.

- `failures`: flufl.bounce (Mailman's detectors: RFC 3464 including non-compliant reports, and 16
  other formats with some 40 "simple" layouts: Exchange/SMTPSVC plain-text NDRs, GroupWise, SMTP32,
  Lotus/Domino, Yahoo, AOL, Hotmail, qmail, Exim, postmaster notices quoting the original …) finds
  the failed recipients and tells temporary from permanent. Only its public `all_failures` is used.
  It reads the text of the first `SCAN_LIMIT` bytes (`notice`: the notice comes first; the returned
  original can be megabytes, and every line is tried against every layout); an exception in a
  detector counts as "nothing found". Its SimpleMatch layouts call everything permanent, Exim's delay
  warnings too: a notice that says it keeps trying is a delay whatever a detector said (`permanence`).
- `dsn`: an RFC 3464 `message/delivery-status` report (Postfix, Sendmail, Exim 4, Exchange/Office
  365, Gmail), read here for what flufl.bounce does not tell: the Status codes (permanent, a delay,
  or a success notice) and the returned message's Message-ID.
- `bounce_hint`: whether to look at all. The detectors go over every line of the body (~0.2 ms a
  notice, ~20 ms for 64 KiB of text) and, run on people's mail, find the quoted bounce in a forwarded
  one; so they run only behind a cheap signal: the null reverse-path or a mailer-daemon/postmaster
  envelope sender, a `Return-Path` of either, a mail system's From (MDaemon@, ndr@, "Mail Delivery
  System"), or a subject that opens like a failure notice ("Undeliverable:", "Delivery Status
  Notification", "Returned mail", "failure notice", "Mail delivery failed" …). A subject is only a
  reason to look: the detectors' verdict decides, and a reply or a forward ("Re:", "Fwd:" …) never
  matches, since that is a person passing a bounce on.
- `returned_ids`: the Message-IDs quoted in a notice's body (the mail that bounced).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

from casegate.ingest.mail.mime import ParsedMail, message_ids
from flufl.bounce import all_failures

SCAN_LIMIT = 64 * 1024
"""Bytes of a message the detectors read: the notice and the start of the returned mail (the largest
notice of Mailman's corpus is 22 KiB; 64 KiB of text costs them ~20 ms at most)."""

DAEMONS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster"})

# flufl.bounce logs every detector it runs at info: 17 lines a bounce in the daemon's log
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
_RETURNED_MSGID = re.compile(rb"^[ \t]*message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>)", re.I | re.M)
_STATUS_CODE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_PERMANENT_WORDS = re.compile(r"permanent (?:error|failure)|given up|giving up|could not be delivered", re.I)
_DELAY_WORDS = re.compile(
    r"warning only|still being retried|will (?:keep|continue) trying|not yet been delivered|delayed", re.I)
_NDR_SUBJECT = re.compile(
    r"(?:\[[^\]\r\n]{1,40}\][ \t]*)?(?:"
    r"undeliver|non-?deliver|not delivered|returned mail|failure notice|failure delivery|failed mail"
    r"|delayed mail|delivery (?:status|failure|failed|has failed|report|notification|problem|warning)"
    r"|(?:e-?mail|mail|message) (?:delivery|not delivered|could not be delivered|failed|failure|error"
    r"|delayed|system error)"
    r"|warning: message|permanent delivery failure)", re.I)
_SYSTEM_LOCAL = re.compile(r"mdaemon|ndr|mail[._-]?delivery[._-]?(?:system|subsystem|service)?|mail[._-]?daemon")
_SYSTEM_NAME = re.compile(r"mail delivery|delivery (?:sub)?system|mailer[ _-]?daemon|postmaster", re.I)


@dataclass(frozen=True, slots=True)
class Dsn:
    """What an RFC 3464 report says: (Action, Status) per recipient block, the recipients that failed
    or are delayed, and the Message-IDs of the returned message."""

    actions: tuple[tuple[str, str], ...]
    recipients: tuple[str, ...]
    ids: tuple[str, ...]

    @property
    def success(self) -> bool:
        """Every recipient delivered, relayed or expanded: a success notice (NOTIFY=SUCCESS), no bounce."""
        return bool(self.actions) and all(a in ("delivered", "relayed", "expanded") for a, _ in self.actions)

    @property
    def permanent(self) -> bool | None:
        if any(a == "failed" or s.startswith("5") for a, s in self.actions):
            return True
        if any(a == "delayed" or s.startswith("4") for a, s in self.actions):
            return False
        return None


def reverse_path(mail_from: str | None) -> str | None:
    """The SMTP envelope sender as `classify` reads it: "" for the null reverse-path, which aiosmtpd
    hands over as `<>`; None (no envelope: IMAP) stays None."""
    if mail_from is None:
        return None
    return "" if mail_from.replace(" ", "") in ("<>", "") else mail_from


def local_part(address: str | None) -> str:
    """`MAILER-DAEMON@host`, `<MAILER-DAEMON>` → `mailer-daemon`."""
    return (address or "").strip().strip("<>").rsplit("@", 1)[0].lower()


def bounce_hint(parsed: ParsedMail, mail_from: str | None) -> str | None:
    """The cheap signal that makes a message worth handing to the detectors, as `header: value`, or
    None (people's mail: nothing more is done). `mail_from` as `reverse_path` gives it."""
    if mail_from == "":
        return "MAIL FROM: <>"
    if mail_from is not None and local_part(mail_from) in DAEMONS:
        return f"MAIL FROM: <{mail_from}>"
    return_path = parsed.headers.get("Return-Path")
    if return_path is not None and (return_path.replace(" ", "") == "<>" or local_part(return_path) in DAEMONS):
        return f"Return-Path: {return_path}"
    if _SYSTEM_LOCAL.fullmatch(local_part(parsed.from_email)) or _SYSTEM_NAME.search(parsed.from_name or ""):
        return f"From: {parsed.from_email or parsed.from_name}"
    subject = parsed.subject
    if notice_subject(subject):
        return f"Subject: {(subject or '')[:200]}"
    return None


def notice_subject(subject: str | None) -> bool:
    """Whether a subject opens like a failure notice (a reason to look, never a verdict)."""
    return subject is not None and _NDR_SUBJECT.match(subject) is not None


def notice(raw: bytes) -> Message | None:
    """The compat32 tree of the first `SCAN_LIMIT` bytes of `raw` (a cut multipart just lacks its
    end) with its text only: attachments emptied, since the detectors would try each of their base64
    lines against every layout (3 MB of PDF cost 22 ms, nothing, 0.4 ms). None if the parser gives up
    (nesting deeper than the recursion limit)."""
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw[:SCAN_LIMIT])
        for part in msg.walk():
            if not part.is_multipart() and part.get_content_maintype() not in ("text", "message"):
                part.set_payload("")
        return msg
    except Exception:
        return None


def failures(msg: Message) -> tuple[tuple[str, ...], bool | None]:
    """flufl.bounce's verdict on a notice: the failed recipients (lowercased, sorted; only addresses)
    and whether any failure is permanent (True) or all are temporary (False); ((), None) when it finds
    no address."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over a malformed notice: nothing found
        return (), None
    found = {a.decode("ascii", "replace").strip().lower() for a in temporary | permanent}
    addresses = sorted(a for a in found if "@" in a)  # SMTP32's detector hands back bare words too
    if not addresses:
        return (), None
    return tuple(addresses), any(b"@" in a for a in permanent)


def permanence(text: str, detected: bool | None) -> bool | None:
    """For notices that are not RFC 3464: a delay said in words wins (Exim's "Warning: message …
    delayed", "still being retried"); then the detectors' verdict; then the words and the first
    status code of the text."""
    if _DELAY_WORDS.search(text):
        return False
    if detected is not None:
        return detected
    if _PERMANENT_WORDS.search(text):
        return True
    code = _STATUS_CODE.search(text)
    return None if code is None or code.group(1) == "2" else code.group(1) == "5"


def returned_ids(raw: bytes, body_at: int) -> tuple[str, ...]:
    """The Message-IDs quoted in the body (the returned message's header block, or a notice's text)."""
    return unique(m.decode("ascii", "replace") for m in _RETURNED_MSGID.findall(raw, body_at))


def dsn(msg: Message) -> Dsn:
    """Read the delivery-status parts and the returned message of an RFC 3464 report (`notice`)."""
    recipients: list[str] = []
    ids: list[str] = []
    actions: list[tuple[str, str]] = []
    try:
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype in _STATUS_TYPES:
                for block in _status_blocks(part)[1:]:
                    action = (block.get("Action") or "").strip().lower()
                    status = (block.get("Status") or "").strip()
                    actions.append((action, status))
                    if action in ("failed", "delayed") or status[:1] in ("4", "5"):
                        address = _recipient(block.get("Final-Recipient") or block.get("Original-Recipient"))
                        if address:
                            recipients.append(address)
            elif ctype in _ORIGINAL_TYPES and not ids:
                ids.extend(_original_ids(part))
    except Exception:  # a malformed part (a bad charset or encoding): what was read so far
        pass
    return Dsn(tuple(actions), unique(recipients), unique(ids))


def _status_blocks(part: Message) -> list[Message]:
    """The field groups of a delivery-status part: per-message first, then one per recipient. The
    parser splits `message/delivery-status` itself; an encoded or `global` one is split here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
    return [HeaderParser().parsestr(chunk.strip() + "\n") for chunk in re.split(r"\r?\n[ \t]*\r?\n", text)
            if chunk.strip()]


def _original_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = [p for p in payload if isinstance(p, Message)]
        return message_ids(str(inner[0].get("Message-ID", ""))) if inner else []
    data = part.get_payload(decode=True)
    headers = HeaderParser().parsestr(data.decode("utf-8", "replace") if isinstance(data, bytes) else "",
                                      headersonly=True)
    return message_ids(str(headers.get("Message-ID", "")))


def _recipient(value: object) -> str | None:
    """`rfc822; User@Example.com` → `user@example.com`."""
    if value is None:
        return None
    address = str(value).split(";", 1)[-1].strip().strip("<>").strip().lower()
    return address if "@" in address else None


def unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
