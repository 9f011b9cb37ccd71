"""Reading an internet mail message (pure, no I/O): the fields a case needs, the threading headers,
the text and HTML bodies and the attachments. Shared by the SMTP and IMAP channels.

Tolerant by design: `parse_mail` never raises. A header, charset or part that cannot be decoded is
replaced or skipped and recorded in `defects`; a message the parser gives up on (e.g. multiparts nested
deeper than CPython's recursion limit) still yields its headers and the first text found in it. Bodies and
headers are bounded by the Salesforce EmailMessage limits, and at most `max_attachments` parts are kept;
each cut is named in `truncated`; the raw original (kept by the caller) holds the rest. Text — bodies,
RFC 2047 encoded words, RFC 2231 parameters (file names, charsets, boundaries) — is decoded only with the
real text charsets of `ingest.mail.charsets`, never with whatever codec a sender names (punycode is quadratic).
The Message-ID is kept twice: as the header was written, and normalised (`store.message_ids`), so a
malformed one (`abc@host`, `<abc@host`) is still keyed, threaded and traced.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, Parser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from casegate.ingest.mail.charsets import text_codec
from casegate.ingest.mail.html import read_html
from casegate.ingest.mail.text import decode_text, rfc2231_text, safe_filename
from casegate.store.message_ids import message_id as message_id  # re-exported: the worker and the bounce reader
from casegate.store.message_ids import message_ids as message_ids

_SURROGATES = re.compile("[\udc80-\udcff]")
THREAD_HEADERS = ("Message-ID", "In-Reply-To", "References", "Thread-Index", "Thread-Topic",
                  "Auto-Submitted", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
                  "Precedence", "List-Id", "Return-Path")
_THREAD_HEADER_KEYS = tuple((name, name.lower()) for name in THREAD_HEADERS)
MAX_HEADERS_TEXT = 32000  # EmailMessage.Headers
MAX_BODY_CHARS = 131072  # EmailMessage.TextBody / HtmlBody
MAX_HEADER_VALUE = 32000
"""Longest header value the parser hands on: CPython's parameter parsing (`get_param`, which also finds
the multipart boundary) is quadratic, 0.9 s for one 700 kB Content-Type."""
MAX_DEFECTS = 20
MAX_ATTACHMENTS = 100
"""Parts kept from one mail by default (`[mail] max_attachments`): each is a blob and an Attachment row,
and 10,000 tiny parts fit in a few megabytes."""
_FEED_SLICE = 1 << 20


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
    """The normalised Message-ID (`store.message_ids.message_id`): what the mail is keyed and threaded by."""
    message_id_header: str | None = None
    """The Message-ID header as the mail wrote it (surrounding white space removed, at most 2,000
    characters), so a malformed one can still be traced; None when the mail has none."""
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    headers_text: str = ""
    text: str | None = None
    """The first text/plain body, or the text of the HTML body when there is none."""
    html: str | None = None
    """The first text/html body, sanitised."""
    parts: list[MailPart] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    """What was cut to its limit: "text", "html", "headers", "attachments"."""
    attachments_left_out: int = 0
    """Parts beyond `max_attachments`, not in `parts` (only in the raw original)."""

    def defect(self, what: str) -> None:
        if len(self.defects) < MAX_DEFECTS and what not in self.defects:
            self.defects.append(what)

    def cut(self, what: str) -> None:
        if what not in self.truncated:
            self.truncated.append(what)


def _decoded(value: object) -> str:
    """A header value with RFC 2047 encoded words decoded; undecodable bytes replaced, never raised."""
    text = _header_text(value)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _header_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Header):
        value = str(value)
    text = str(value)
    if _SURROGATES.search(text):  # raw 8-bit header (RFC 6532): the parser kept the bytes as surrogates
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "=?" not in text:
        return " ".join(text.split()) if "\n" in text else text
    try:
        return str(make_header([_text_chunk(chunk, charset) for chunk, charset in decode_header(text)]))
    except Exception:  # bad base64, bytes not in their charset: decode word by word, or keep it as is
        try:
            return "".join(decode_text(chunk, charset)[0] if isinstance(chunk, bytes) else chunk
                           for chunk, charset in decode_header(text))
        except Exception:
            return text


def _text_chunk(chunk: bytes | str, charset: str | None) -> tuple[bytes | str, str | None]:
    """An encoded word as `make_header` may decode it: one in a charset of `ingest.mail.charsets` as it is, any
    other (unknown, or a codec such as punycode, idna, base64_codec) decoded tolerantly here, as UTF-8."""
    if not isinstance(chunk, bytes) or charset is None or text_codec(charset) is not None:
        return chunk, charset
    return decode_text(chunk, charset)[0].encode("utf-8", "replace"), "utf-8"


_ATOM = r'[^\s"()<>@,:;\[\]\\]+'
_ADDR_SPEC = (r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
              r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_ONE_ADDRESS = re.compile(
    rf'[ \t]*(?:(?:"([^"\\\r\n]*)"|({_ATOM}(?:[ \t]+{_ATOM})*))?[ \t]*<({_ADDR_SPEC})>|({_ADDR_SPEC}))[ \t]*')
"""One address in the forms nearly every mail uses: `local@domain`, `<local@domain>`, `Name <local@domain>`
or `"Name" <local@domain>`, ASCII dot-atoms, no comments, no escapes. For these `getaddresses` gives
(the name with its words joined by one space, or the quoted name as it is; the address as it is)."""


def _addresses(value: str | None) -> list[tuple[str, str]]:
    if not value:
        return []
    one = _ONE_ADDRESS.fullmatch(value)
    if one is not None:  # the same answer as getaddresses, at a tenth of its cost
        quoted, phrase, routed, bare = one.groups()
        name = quoted if quoted is not None else " ".join(phrase.split()) if phrase else ""
        return [(_decoded(name), routed or bare)]
    return [(_decoded(n), a) for n, a in getaddresses([value]) if "@" in a]


class _RawHeaders(Compat32):
    """compat32 that hands header values back as the parser read them (8-bit bytes as surrogates),
    instead of wrapping non-ASCII ones in a Header that can only print them as U+FFFD; and at most
    `MAX_HEADER_VALUE` characters of each, so no header costs quadratic time."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value if len(value) <= MAX_HEADER_VALUE else value[:MAX_HEADER_VALUE]


_POLICY = _RawHeaders()


class _Message(Message):
    """A compat32 message whose multipart boundary lookup cannot raise: CPython's RFC 2231 decoding of a
    `boundary*=` parameter raises on 8-bit bytes or a NUL in its charset, mid-parse, and decodes with any
    codec named (punycode: quadratic). Without a boundary the parser records NoBoundaryInMultipartDefect,
    and `_repaired` guesses the boundary from the body."""

    def get_boundary(self, failobj: Any = None) -> Any:
        boundary = _param(self, "boundary", "content-type")
        return failobj if boundary is None else rfc2231_text(boundary).rstrip()


def parse_mail(raw: bytes, *, max_attachments: int = MAX_ATTACHMENTS) -> ParsedMail:
    """Everything a case needs from `raw`, with at most `max_attachments` parts; never raises. Uses the
    compat32 parser and decodes only the headers it needs: the `email.policy.default` header objects cost
    ten times as much for nothing we use."""
    out = ParsedMail()
    try:
        msg = _parsed(raw)
    except RecursionError:  # multiparts nested deeper than the interpreter's recursion limit
        out.defect("MIME structure too deeply nested: headers and first text only")
        return _salvaged(raw, out)
    except Exception as e:  # no known input gets here; a case with the raw original does
        out.defect(f"unparseable ({type(e).__name__}): headers and first text only")
        return _salvaged(raw, out)
    try:
        _read_headers(msg, out)
        _bodies(msg, out, max_attachments)
    except Exception as e:  # RecursionError on a deep walk, or an unforeseen parser state
        out.defect(f"unreadable ({type(e).__name__}): headers and first text only")
        return _salvaged(raw, ParsedMail(defects=out.defects))
    return out


def _parsed(raw: bytes) -> Message:
    """The compat32 tree of `raw`. A big message is fed in slices: `BytesParser` would first decode all
    of it into one more string as large as the message."""
    if len(raw) <= _FEED_SLICE:
        return _single_part(raw) or BytesParser(_Message, policy=_POLICY).parsebytes(raw)
    parser = BytesFeedParser(_Message, policy=_POLICY)
    for start in range(0, len(raw), _FEED_SLICE):
        parser.feed(raw[start:start + _FEED_SLICE])
    return parser.close()


_HEADER_START = re.compile(r"[\041-\071\073-\176]+:")


def _single_part(raw: bytes) -> Message | None:
    """The tree the feed parser makes of a message of one part (not multipart/*, not message/*) whose
    header lines all end in CRLF and are each a field or its continuation, made without the feed parser
    (at a third of its cost: it reads line by line through a generator); None for any other message."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = raw[:end].decode("ascii", "surrogateescape")  # as BytesParser decodes the whole message
    breaks = head.count("\r\n")
    if head.count("\r") != breaks or head.count("\n") != breaks:
        return None  # a lone CR or LF ends a line for the feed parser too
    fields: list[list[str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1].append(line + "\r\n")
        elif _HEADER_START.match(line):
            fields.append([line + "\r\n"])
        else:  # not a header line (no field name, a `From ` line, a leading continuation): its defects
            return None
    msg = _Message(policy=_POLICY)
    for lines in fields:
        msg.set_raw(*_POLICY.header_source_parse(lines))
    if msg.get_content_maintype() in ("multipart", "message"):
        return None
    msg.set_payload(raw[end + 4:].decode("ascii", "surrogateescape"))
    return msg


def _read_headers(msg: Message, out: ParsedMail) -> None:
    for d in msg.defects:
        out.defect(type(d).__name__)
    items = msg.items()
    first: dict[str, int] = {}
    for i, (name, _) in enumerate(items):  # one pass: Message.get() scans every header on each call
        first.setdefault(name.lower(), i)
    decoded: dict[int, str] = {}

    def get(name: str) -> str | None:
        i = first.get(name)
        return None if i is None else items[i][1]

    def text(name: str) -> str | None:
        """The first `name` header, decoded (once: headers_text below uses it again)."""
        i = first.get(name)
        if i is None:
            return None
        if i not in decoded:
            decoded[i] = _decoded(items[i][1])
        return decoded[i]

    sender = _addresses(text("from"))
    if sender:
        out.from_name, out.from_email = (sender[0][0] or None), sender[0][1].lower()
    out.to = [a.lower() for _, a in _addresses(text("to"))]
    out.cc = [a.lower() for _, a in _addresses(text("cc"))]
    subject = text("subject")
    out.subject = subject.strip() if subject is not None else None
    date = get("date")
    if date:
        try:
            out.date = parsedate_to_datetime(str(date))
        except (TypeError, ValueError, IndexError, OverflowError):
            out.defect("Date: unparseable")
    for name, key in _THREAD_HEADER_KEYS:
        found = text(key)
        if found is not None:
            out.headers[name] = found.strip()[:2000]
    out.message_id_header = out.headers.get("Message-ID")
    out.message_id = message_id(out.message_id_header)
    out.in_reply_to = message_ids(out.headers.get("In-Reply-To"))
    out.references = message_ids(out.headers.get("References"))
    lines, size = [], 0
    for i, (k, v) in enumerate(items):
        line = f"{k}: {decoded[i] if i in decoded else _decoded(v)}\n"
        lines.append(line)
        size += len(line)
        if size > MAX_HEADERS_TEXT:
            out.cut("headers")
            break
    out.headers_text = "".join(lines)[:MAX_HEADERS_TEXT]


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PLAIN_CONTENT_TYPE = re.compile(
    rf'[ \t]*({_TOKEN}/{_TOKEN})[ \t]*'
    r'(?:;[ \t]*[Cc][Hh][Aa][Rr][Ss][Ee][Tt][ \t]*=[ \t]*("?)([A-Za-z0-9._:+-]+)\2[ \t]*)?')
"""A Content-Type with at most a plain charset (`text/plain; charset="utf-8"`): nearly every text part."""


class _Heads:
    """The headers of one part as the body reader asks for them: `Message.get` scans every header on
    each call and `get_param` parses the whole header on each call; here each header is found once and
    each header's parameters parsed once, with the same answers."""

    __slots__ = ("_params", "first", "part")

    def __init__(self, part: Message) -> None:
        self.part = part
        self.first: dict[str, str] = {}
        for name, value in part.items():
            self.first.setdefault(name.lower(), value)
        self._params: dict[str, list[tuple[str, Any]] | None] = {}

    def get(self, name: str) -> str | None:
        """`part.get(name)` (`name` in lower case)."""
        return self.first.get(name)

    def param(self, name: str, header: str) -> object:
        """`part.get_param(name, header=header)`, or None where CPython's RFC 2231 handling fails on it
        (it can raise TypeError, ValueError or UnicodeError on malformed continuations or charsets; it
        then fails for every parameter of that header)."""
        if header not in self._params:
            value = self.first.get(header)
            simple = _PLAIN_CONTENT_TYPE.fullmatch(value) if value is not None and header == "content-type" else None
            if simple is not None:  # what get_params gives for it, without its general parsing
                kind, _, charset = simple.groups()
                self._params[header] = [(kind, ""), *((("charset", charset),) if charset is not None else ())]
            else:
                try:
                    self._params[header] = self.part.get_params(header=header) if value is not None else None
                except Exception:
                    self._params[header] = None
        for k, v in self._params[header] or ():
            if k.lower() == name:
                return v
        return None


def _is_attachment(heads: _Heads) -> bool:
    disposition = heads.get("content-disposition")
    content_type = heads.get("content-type")
    if disposition is None and (content_type is None or "name" not in content_type.lower()):
        return False  # no filename, and no name parameter: nothing below could say otherwise
    return (disposition or "").split(";")[0].strip().lower() == "attachment" \
        or bool(heads.param("filename", "content-disposition")) or bool(heads.param("name", "content-type"))


def _param(part: Message, name: str, header: str) -> object:
    """A header parameter, or None where CPython's RFC 2231 handling fails on it (it can raise
    TypeError, ValueError or UnicodeError on malformed continuations or charsets)."""
    try:
        return part.get_param(name, header=header)
    except Exception:
        return None


def _filename(heads: _Heads) -> str | None:
    """`part.get_filename()`, with RFC 2231 names decoded by `rfc2231_text`, not by any codec named."""
    found = heads.param("filename", "content-disposition")
    if found is None:
        found = heads.param("name", "content-type")
    return None if found is None else rfc2231_text(found).strip()


def _charset_of(heads: _Heads) -> str | None:
    """`part.get_content_charset()`, with an RFC 2231 `charset*=` decoded by `rfc2231_text`."""
    found = heads.param("charset", "content-type")
    if found is None:
        return None
    label = rfc2231_text(found)
    return label.lower() if label.isascii() else None


def _raw_payload(part: Message) -> object:
    """The payload as the parser stored it. `get_payload()` would, for a part with 8-bit bytes, decode
    it with the charset the part declares, which can raise (a `punycode` label, a NUL in the label)."""
    return getattr(part, "_payload", None)


def _bodies(msg: Message, out: ParsedMail, max_attachments: int) -> None:
    """The first text/plain and text/html that are not attachments are the bodies; every other leaf
    part (files, inline images, further texts) is an attachment, up to `max_attachments` of them."""
    html = _leaves(msg, out, None, repair=True, room=max_attachments)
    _finish_bodies(out, html)
    if out.attachments_left_out:
        out.cut("attachments")
        out.defect(f"more than {max_attachments} attachments: {out.attachments_left_out} more not stored "
                   "(they are in the raw original)")


def _leaves(msg: Message, out: ParsedMail, html: str | None, *, repair: bool, room: int) -> str | None:
    """Reads the leaf parts of `msg` into `out`, at most `room` attachments in all (the others are
    counted in `out.attachments_left_out`); the HTML body found so far, or `html`."""
    for part in msg.walk():
        if part is not msg:
            for d in part.defects:
                out.defect(type(d).__name__)
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):  # the parser found no boundary: guess it from the body
            repaired = _repaired(part) if repair else None
            if repaired is not None:
                out.defect("multipart boundary missing or wrong: guessed from the body")
                html = _leaves(repaired, out, html, repair=False, room=room)
                continue
            ctype = "text/plain"
        heads = _Heads(part)
        if ctype in ("text/plain", "text/html") and not _is_attachment(heads) and (
                out.text is None if ctype == "text/plain" else html is None):
            body = _text_of(part, heads, out)
            if ctype == "text/plain":
                out.text = body
            else:
                html = body
            continue
        if len(out.parts) >= room:  # not even decoded: the raw original has it
            if _raw_payload(part) or _is_attachment(heads):
                out.attachments_left_out += 1
            continue
        data = _payload(part, heads)
        if data is None or (not data and not _is_attachment(heads)):
            continue
        cid = heads.get("content-id")
        disposition = (heads.get("content-disposition") or "").split(";")[0].strip().lower()
        out.parts.append(MailPart(
            name=safe_filename(_decoded(_filename(heads)), f"attachment-{len(out.parts) + 1}", ctype),
            content_type=ctype, data=data, content_id=_decoded(cid).strip("<> ") or None if cid else None,
            inline=disposition == "inline" or (cid is not None and disposition != "attachment"),
        ))
        part.set_payload("")  # the decoded bytes are all we keep: free the encoded text now
    return html


_BOUNDARY_GUESS = re.compile(r"^--([0-9A-Za-z'()+_,./:=?][0-9A-Za-z'()+_,./:=? -]{0,69})[ \t]*\r?$", re.MULTILINE)


def _repaired(part: Message) -> Message | None:
    """A multipart whose declared boundary is missing or never occurs, parsed again with the first
    `--boundary` line of its body as the boundary (what mail clients do); None if there is none."""
    payload = _raw_payload(part)
    if not isinstance(payload, str):
        return None
    found = _BOUNDARY_GUESS.search(payload)
    if found is None:
        return None
    boundary = found.group(1).rstrip()
    boundary = boundary[:-2] if boundary.endswith("--") else boundary
    head = f'Content-Type: {part.get_content_type()}; boundary="{boundary}"\n\n'
    return Parser(_Message, policy=_POLICY).parsestr(head + payload)


def _finish_bodies(out: ParsedMail, html: str | None) -> None:
    """Sanitise the HTML, derive text from it if there is no text body, and bound both."""
    if html is not None:
        body = read_html(html, max_chars=MAX_BODY_CHARS, want_text=out.text is None)
        out.html = body.html.strip()
        if body.truncated:
            out.cut("html")
        for d in body.defects:
            out.defect(d)
        if out.text is None:
            out.text = body.text
    if out.text is not None and len(out.text) > MAX_BODY_CHARS:
        out.text = out.text[:MAX_BODY_CHARS]
        out.cut("text")


def _payload(part: Message, heads: _Heads) -> bytes | None:
    """A leaf part's decoded content. Decodes base64 and quoted-printable straight from the parsed text
    (`get_payload(decode=True)` makes three further copies of it: 25 MB attachments make that count), and
    falls back to it for anything unusual (bad padding, 8-bit bytes in base64, uuencode)."""
    payload = _raw_payload(part)
    if not isinstance(payload, str):
        return None
    cte = str(heads.get("content-transfer-encoding") or "").strip().lower()
    try:
        if cte == "base64":
            return binascii.a2b_base64(payload)
        if cte == "quoted-printable":
            return binascii.a2b_qp(payload)
        if cte in ("", "7bit", "8bit", "binary"):
            return payload.encode("ascii", "surrogateescape")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        pass
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else None


def _text_of(part: Message, heads: _Heads, out: ParsedMail) -> str | None:
    data = _payload(part, heads)
    if data is None:
        return None
    text, defect = decode_text(data, _charset_of(heads))
    if defect:
        out.defect(f"{part.get_content_type()}: {defect}")
    return text


def _salvaged(raw: bytes, out: ParsedMail) -> ParsedMail:
    """What can be read of a message the parser cannot take apart: its top headers, and the first
    text/plain (or else text/html) part found by scanning the raw bytes."""
    try:
        _read_headers(BytesHeaderParser(_Message, policy=_POLICY).parsebytes(raw), out)
    except Exception as e:
        out.defect(f"headers unreadable ({type(e).__name__})")
    html = None
    try:
        for subtype in ("plain", "html"):
            found = _scan_text_part(raw, subtype)
            if found is not None:
                text, defect = decode_text(*found)
                if defect:
                    out.defect(f"text/{subtype}: {defect}")
                if subtype == "plain":
                    out.text = text
                    break
                html = text
        _finish_bodies(out, html)
    except Exception as e:
        out.defect(f"no text found ({type(e).__name__})")
    return out


_PART_HEAD = re.compile(rb"^content-type:[ \t]*text/(plain|html)\b", re.IGNORECASE | re.MULTILINE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BOUNDARY_LINE = re.compile(rb"^--", re.MULTILINE)
_CHARSET = re.compile(rb"charset[ \t]*=[ \t]*\"?([A-Za-z0-9_.:+-]{1,40})", re.IGNORECASE)
_CTE = re.compile(rb"^content-transfer-encoding:[ \t]*([A-Za-z0-9-]+)", re.IGNORECASE | re.MULTILINE)


def _scan_text_part(raw: bytes, subtype: str) -> tuple[bytes, str | None] | None:
    """The decoded content and charset of the first text/`subtype` part in `raw`, found by its header
    lines rather than by parsing the MIME tree (linear time, no recursion)."""
    for head in _PART_HEAD.finditer(raw):
        if head.group(1).decode().lower() != subtype:
            continue
        end = _HEAD_END.search(raw, head.start())
        if end is None:
            return None
        header_block = raw[max(raw.rfind(b"\n--", 0, head.start()), 0):end.start()]
        body_end = _BOUNDARY_LINE.search(raw, end.end())
        body = raw[end.end():body_end.start() if body_end else len(raw)]
        if body_end:  # the line break before a boundary belongs to the boundary
            body = body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body
        cte = _CTE.search(header_block)
        encoding = cte.group(1).lower() if cte else b""
        try:
            if encoding == b"base64":
                body = binascii.a2b_base64(body)
            elif encoding == b"quoted-printable":
                body = binascii.a2b_qp(body)
        except ValueError:
            pass
        charset = _CHARSET.search(header_block)
        return body, charset.group(1).decode("ascii") if charset else None
    return None
