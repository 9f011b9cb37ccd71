"""Reading the body of an HTML form submission (pure, no I/O): `application/x-www-form-urlencoded` and
`multipart/form-data` (RFC 7578) into field name → values, in time linear in the body.

Refused early, before the work is done: the charset (the `?encoding=` of Salesforce's forms, else the
Content-Type's `charset`, else UTF-8; and each multipart part's own `charset`) must be a real text charset
(`ingest.mail.charsets.form_codec`) and is checked before anything is decoded with it — punycode decodes in
quadratic time (a 1 MB form: half a minute of a frozen daemon), idna and undefined raise. Fields are
counted as they are read and reading stops past `max_fields`. A multipart body is walked once with
`bytes.find`, never parsed as MIME: a nested multipart part (form-data has no nesting; RFC 7578 deprecates
multipart/mixed inside it) is refused rather than descended into, and so is a file. Undecodable bytes
become U+FFFD.
"""

from __future__ import annotations

import binascii
import functools
import re
from urllib.parse import unquote_to_bytes

from casegate.ingest.channels.webhook import Rejected
from casegate.ingest.mail.charsets import form_codec

Fields = dict[str, list[str]]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS = 1000
MAX_BOUNDARY = 200
"""RFC 2046 allows 70 characters; a longer boundary is malformed."""
MAX_PART_HEAD = 16384
"""Bytes of the header lines of one multipart part (browsers send one or two short lines)."""

_PAIR = re.compile(rb"[^&]+")
_PARAM = re.compile(r';[ \t]*([^\s=;"]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"?|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_FOLD = re.compile(r"\r?\n[ \t]+")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def parse_form(body: bytes, header: str, encoding: str | None = None, *,
               max_fields: int = MAX_FIELDS) -> Fields:
    """The fields of a form posted with Content-Type `header` and `?encoding=` `encoding`. Rejected: 415
    for another content type; 400 naming `encoding` or `charset` for a charset that is not a text
    charset; 400 for more than `max_fields` fields, a file (naming its field), a nested multipart or a
    malformed multipart body."""
    content_type, params = _header_params(header)
    if content_type not in FORM_TYPES:
        raise Rejected(415, "send application/x-www-form-urlencoded or multipart/form-data", None)
    codec = _form_codec(encoding, params.get("charset"))
    if content_type == "application/x-www-form-urlencoded":
        return _urlencoded(body, codec, max_fields)
    return _multipart(body, params.get("boundary", ""), codec, max_fields)


def _form_codec(encoding: str | None, charset: str | None) -> str:
    """The codec of the form: `encoding` (the query), else `charset` (the header), else UTF-8."""
    label, field = (encoding, "encoding") if encoding else (charset, "charset") if charset else ("utf-8", None)
    codec = form_codec(label)
    if codec is None:
        raise Rejected(400, f"unknown character set {label[:40]!r}: send a text charset such as UTF-8", field)
    return codec


def _too_many(max_fields: int) -> Rejected:
    return Rejected(400, f"more than {max_fields} fields", None)


def _urlencoded(body: bytes, codec: str, max_fields: int) -> Fields:
    fields: Fields = {}
    for count, pair in enumerate(_PAIR.finditer(body), 1):
        if count > max_fields:
            raise _too_many(max_fields)
        key, _, value = pair.group().partition(b"=")
        fields.setdefault(_plus_decoded(key, codec), []).append(_plus_decoded(value, codec))
    return fields


def _plus_decoded(raw: bytes, codec: str) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode(codec, "replace")


def _multipart(body: bytes, boundary: str, codec: str, max_fields: int) -> Fields:
    """The parts of a multipart/form-data body, one field each, found by their delimiter lines."""
    if not boundary or len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise Rejected(400, "malformed multipart body", None)
    delimiter = b"--" + boundary.encode("ascii")
    line = re.compile(rb"(?:\A|\n)(" + re.escape(delimiter) + rb")(?:--|[ \t]*(?:\r|\n|\Z))")
    at = _next_delimiter(body, line, 0)
    if at < 0:
        raise Rejected(400, "malformed multipart body", None)
    fields: Fields = {}
    count = 0
    while not body.startswith(b"--", at + len(delimiter)):  # until the close delimiter
        line_end = body.find(b"\n", at + len(delimiter))
        if line_end < 0:  # a delimiter line at the very end, with nothing after it
            break
        count += 1
        if count > max_fields:
            raise _too_many(max_fields)
        start = line_end + 1
        at = _next_delimiter(body, line, start)
        if at < 0:  # no close delimiter: the last part runs to the end of the body
            _add_part(fields, body[start:], codec)
            break
        end = at - 2 if body[at - 2:at] == b"\r\n" else at - 1  # its line break belongs to the delimiter
        _add_part(fields, body[start:max(start, end)], codec)
    return fields


def _next_delimiter(body: bytes, line: re.Pattern[bytes], start: int) -> int:
    """The offset of the next delimiter line (`--boundary`, then `--` or blanks to the end of the line)
    that begins at or after the line start `start` (its line break may be at `start - 1`); -1 if none."""
    found = line.search(body, max(start - 1, 0))
    return found.start(1) if found else -1


def _add_part(fields: Fields, part: bytes, codec: str) -> None:
    """One part: its header lines, then a blank line, then its content."""
    if part.startswith((b"\r\n", b"\n")):
        head, content = b"", part[1 if part[:1] == b"\n" else 2:]
    else:
        blank = _BLANK_LINE.search(part, 0, MAX_PART_HEAD + 4)
        if blank is None:
            if len(part) > MAX_PART_HEAD:
                raise Rejected(400, f"multipart part headers over {MAX_PART_HEAD} bytes", None)
            head, content = part, b""
        else:
            head, content = part[:blank.start()], part[blank.end():]
    headers = _part_headers(head, codec)
    _, disposition = _header_params(headers.get("content-disposition", ""))
    name = _param_text(disposition, "name")
    content_type, type_params = _header_params(headers.get("content-type", "text/plain"))
    if content_type.startswith("multipart/"):
        raise Rejected(400, "nested multipart parts are not accepted", name or None)
    if "filename" in disposition or "filename*" in disposition or "name" in type_params:
        raise Rejected(400, "files are not accepted", name or "file")
    part_codec = _form_codec(None, type_params["charset"]) if type_params.get("charset") else codec
    cte = headers.get("content-transfer-encoding", "").strip().lower()
    try:
        if cte == "base64":
            content = binascii.a2b_base64(content)
        elif cte == "quoted-printable":
            content = binascii.a2b_qp(content)
    except binascii.Error:
        pass  # kept as sent
    fields.setdefault(name, []).append(content.decode(part_codec, "replace"))


def _part_headers(head: bytes, codec: str) -> dict[str, str]:
    """Header name (lower case) → its first value, unfolded. Browsers write field names in the form's
    charset, so the lines are read in it when it is ASCII-compatible, else as UTF-8."""
    text = _FOLD.sub(" ", head.decode(codec if _ascii_compatible(codec) else "utf-8", "replace"))
    headers: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


@functools.lru_cache(maxsize=128)
def _ascii_compatible(codec: str) -> bool:
    sample = 'Content-Disposition: form-data; name="a_1"\r\n'
    try:
        return sample.encode("ascii").decode(codec) == sample
    except UnicodeError:
        return False


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """A header's value (lower case) and its parameters (names in lower case, the first of each)."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for found in _PARAM.finditer(";" + rest):
        raw = found.group(2)
        if raw.startswith('"'):
            text = _QUOTED_PAIR.sub(r"\1", raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:])
        else:
            text = raw.strip()
        params.setdefault(found.group(1).lower(), text)
    return main.strip().lower(), params


def _param_text(params: dict[str, str], name: str) -> str:
    """A parameter's text: the RFC 5987 `name*=charset'lang'%xx` form if given (its charset must be a
    text charset: else 400 naming `charset`), else the plain one."""
    extended = params.get(name + "*")
    if extended is not None and extended.count("'") >= 2:
        charset, _, rest = extended.partition("'")
        _, _, encoded = rest.partition("'")
        return unquote_to_bytes(encoded).decode(_form_codec(None, charset or "utf-8"), "replace")
    return params.get(name, "")


__all__ = ["FORM_TYPES", "MAX_FIELDS", "Fields", "parse_form"]
