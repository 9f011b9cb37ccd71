"""Reading an internet mail message (pure, no I/O): the fields a case needs, the threading headers,
the text and HTML bodies and the attachments. Shared by the SMTP and IMAP channels.

Tolerant by design: a header or part that cannot be decoded is skipped or replaced, never raised, so
a broken message still becomes a case (its raw original is always kept in the blob store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

_MSGID = re.compile(r"<[^<>\s]+>")
THREAD_HEADERS = ("Message-ID", "In-Reply-To", "References", "Thread-Index", "Thread-Topic",
                  "Auto-Submitted", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
                  "Precedence", "List-Id", "Return-Path")
MAX_HEADERS_TEXT = 32000


@dataclass(frozen=True, slots=True)
class MailPart:
    name: str
    content_type: str
    data: bytes
    content_id: str | None
    inline: bool


@dataclass(slots=True)
class ParsedMail:
    from_name: str | None = None
    from_email: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    headers_text: str = ""
    text: str | None = None
    html: str | None = None
    parts: list[MailPart] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def message_ids(value: str | None) -> list[str]:
    """The `<id@host>` tokens in a Message-ID, In-Reply-To or References header, in order."""
    return _MSGID.findall(value or "")


def _header(msg: Message, name: str, out: ParsedMail) -> str | None:
    try:
        value = msg.get(name)
        return None if value is None else str(value).strip()
    except Exception as e:  # a malformed header must not lose the message
        out.defects.append(f"{name}: {type(e).__name__}")
        raw = msg.get_all(name, failobj=[None]) if hasattr(msg, "get_all") else [None]
        return str(raw[0]) if raw and raw[0] is not None else None


def _addresses(value: str | None) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value]) if "@" in a] if value else []


def _text_of(part: Message) -> str | None:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except (LookupError, ValueError, AssertionError):
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def parse_mail(raw: bytes) -> ParsedMail:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    out = ParsedMail()
    sender = _addresses(_header(msg, "From", out))
    if sender:
        out.from_name, out.from_email = (sender[0][0] or None), sender[0][1].lower()
    out.to = [a.lower() for _, a in _addresses(_header(msg, "To", out))]
    out.cc = [a.lower() for _, a in _addresses(_header(msg, "Cc", out))]
    out.subject = _header(msg, "Subject", out)
    date = _header(msg, "Date", out)
    if date:
        try:
            out.date = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            out.defects.append("Date: unparseable")
    for name in THREAD_HEADERS:
        value = _header(msg, name, out)
        if value is not None:
            out.headers[name] = value[:2000]
    ids = message_ids(out.headers.get("Message-ID"))
    out.message_id = ids[0] if ids else None
    out.in_reply_to = message_ids(out.headers.get("In-Reply-To"))
    out.references = message_ids(out.headers.get("References"))
    out.headers_text = "".join(f"{k}: {v}\n" for k, v in msg.items())[:MAX_HEADERS_TEXT]
    _bodies(msg, out)
    return out


def _bodies(msg: EmailMessage, out: ParsedMail) -> None:
    try:
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
    except Exception as e:
        out.defects.append(f"body: {type(e).__name__}")
        plain = html = None
    out.text = _text_of(plain) if plain is not None else None
    out.html = _text_of(html) if html is not None else None
    if not msg.is_multipart() and plain is None and html is None:
        out.text = _text_of(msg)
    try:
        attachments = list(msg.iter_attachments())
    except Exception as e:
        out.defects.append(f"attachments: {type(e).__name__}")
        attachments = []
    for i, part in enumerate(attachments):
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        cid = part.get("Content-ID")
        out.parts.append(MailPart(
            name=_safe_name(part.get_filename() or f"attachment-{i + 1}"),
            content_type=part.get_content_type(), data=data,
            content_id=str(cid).strip("<> ") if cid else None,
            inline=part.get_content_disposition() == "inline",
        ))


def _safe_name(name: str) -> str:
    """A file name with no path, control characters or leading dots."""
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "_", name).strip().lstrip(".")
    return name[:255] or "attachment"
