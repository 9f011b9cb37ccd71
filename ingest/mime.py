"""Reading an internet mail message (pure, no I/O): the fields a case needs, the threading headers,
the text and HTML bodies and the attachments. Shared by the SMTP and IMAP channels.

Tolerant by design: a header or part that cannot be decoded is skipped or replaced, never raised, so
a broken message still becomes a case (its raw original is always kept in the blob store).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

_MSGID = re.compile(r"<[^<>\s]+>")
_SURROGATES = re.compile("[\udc80-\udcff]")
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


def _decoded(value: object) -> str:
    """A header value with RFC 2047 encoded words decoded; undecodable bytes replaced, never raised."""
    if value is None:
        return ""
    if isinstance(value, Header):
        value = str(value)
    text = str(value)
    if _SURROGATES.search(text):  # raw 8-bit header (RFC 6532): the parser kept the bytes as surrogates
        text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    if "=?" not in text:
        return " ".join(text.split()) if "\n" in text else text
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, ValueError, UnicodeError, HeaderParseError):
        out = []
        for chunk, charset in decode_header(text):
            if isinstance(chunk, bytes):
                out.append(chunk.decode(_charset(charset), errors="replace"))
            else:
                out.append(chunk)
        return "".join(out)


def _charset(name: str | None) -> str:
    try:
        return str(codecs.lookup(name or "utf-8").name)
    except LookupError:
        return "utf-8"


def _addresses(value: str | None) -> list[tuple[str, str]]:
    return [(_decoded(n), a) for n, a in getaddresses([value]) if "@" in a] if value else []


def _text_of(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    return payload.decode(_charset(part.get_content_charset()), errors="replace")


class _RawHeaders(Compat32):
    """compat32 that hands header values back as the parser read them (8-bit bytes as surrogates),
    instead of wrapping non-ASCII ones in a Header that can only print them as U+FFFD."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaders()


def parse_mail(raw: bytes) -> ParsedMail:
    """Everything a case needs from `raw`. Uses the compat32 parser and decodes only the headers it
    needs: the `email.policy.default` header objects cost ten times as much for nothing we use."""
    msg = BytesParser(policy=_POLICY).parsebytes(raw)
    out = ParsedMail(defects=[type(d).__name__ for d in msg.defects])
    first: dict[str, str] = {}
    for name, value in msg.items():  # one pass: Message.get() scans every header on each call
        first.setdefault(name.lower(), value)
    get = first.get
    sender = _addresses(_decoded(get("from")))
    if sender:
        out.from_name, out.from_email = (sender[0][0] or None), sender[0][1].lower()
    out.to = [a.lower() for _, a in _addresses(_decoded(get("to")))]
    out.cc = [a.lower() for _, a in _addresses(_decoded(get("cc")))]
    subject = get("subject")
    out.subject = _decoded(subject).strip() if subject is not None else None
    date = get("date")
    if date:
        try:
            out.date = parsedate_to_datetime(str(date))
        except (TypeError, ValueError, IndexError):
            out.defects.append("Date: unparseable")
    for name in THREAD_HEADERS:
        found = get(name.lower())
        if found is not None:
            out.headers[name] = _decoded(found).strip()[:2000]
    ids = message_ids(out.headers.get("Message-ID"))
    out.message_id = ids[0] if ids else None
    out.in_reply_to = message_ids(out.headers.get("In-Reply-To"))
    out.references = message_ids(out.headers.get("References"))
    out.headers_text = "".join(f"{k}: {_decoded(v)}\n" for k, v in msg.items())[:MAX_HEADERS_TEXT]
    _bodies(msg, out)
    return out


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return disposition == "attachment" or bool(part.get_param("filename", header="content-disposition")) \
        or bool(part.get_param("name"))


def _bodies(msg: Message, out: ParsedMail) -> None:
    """The first text/plain and text/html that are not attachments are the bodies; every other leaf
    part (files, inline images, further texts) is an attachment."""
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype in ("text/plain", "text/html") and not _is_attachment(part):
            if ctype == "text/plain" and out.text is None:
                out.text = _text_of(part)
                continue
            if ctype == "text/html" and out.html is None:
                out.html = _text_of(part)
                continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or (not data and not _is_attachment(part)):
            continue
        cid = part.get("Content-ID")
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        out.parts.append(MailPart(
            name=_safe_name(_decoded(part.get_filename()) or f"attachment-{i}"),
            content_type=ctype, data=data, content_id=str(cid).strip("<> ") if cid else None,
            inline=disposition == "inline" or (cid is not None and disposition != "attachment"),
        ))


def _safe_name(name: str) -> str:
    """A file name with no path, control characters or leading dots."""
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "_", name).strip().lstrip(".")
    return name[:255] or "attachment"
