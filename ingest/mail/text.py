"""Bytes and names from mail made safe to use (pure): text in whatever charset a part declares, rightly
or wrongly, and attachment file names a sender chose.

`decode_text` never raises, and costs time linear in its input. Only the real text charsets of
`ingest.mail.charsets` are decoded as declared; any other label — unknown (`unknown-8bit`, `x-unknown`, a typo)
or a codec that is no charset (`base64`, `zlib`, `idna`, `punycode`, whose decoding is quadratic) — is
an unknown charset, read as UTF-8; text that is not what its UTF-8 or ASCII label says is read as UTF-8 if
it looks like UTF-8 (a few bad bytes replaced), else as Windows-1252 (what "Latin-1" mail really is), else
Latin-1. Each such guess is returned as a defect. `rfc2231_text` does the same for RFC 2231 parameters.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata

from casegate.ingest.mail.charsets import text_codec

MAX_FILENAME_BYTES = 255
"""UTF-8 bytes of a file name: what file systems (and Salesforce ContentVersion.Title) take."""

_UTF8_OR_ASCII = frozenset({"utf-8", "ascii"})
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
               "image/webp": ".webp", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
               "message/rfc822": ".eml", "message/delivery-status": ".txt", "text/csv": ".csv"}
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
_UNSAFE_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # format, surrogate, unassigned, line


def decode_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """`data` as text, and a defect saying what was guessed (None if it read as declared). NUL
    characters, which no database text column holds, become U+FFFD."""
    text, defect = _decoded(data, charset)
    return (text.replace("\x00", "\ufffd") if "\x00" in text else text), defect


def _decoded(data: bytes, charset: str | None) -> tuple[str, str | None]:
    codec = text_codec(charset)
    if codec is not None:
        try:
            return data.decode(codec), None
        except (UnicodeError, LookupError):
            if codec not in _UTF8_OR_ASCII:
                return data.decode(codec, "replace"), f"not valid {codec}, bad bytes replaced"
    label = f"charset {charset!r}" if charset else "no charset"
    if codec is None:
        try:
            return data.decode("utf-8"), (f"unknown {label}, read as utf-8" if charset else None)
        except UnicodeDecodeError:
            pass
    if _UTF8_SEQUENCE.search(data):
        return data.decode("utf-8", "replace"), f"{label}: not valid utf-8, bad bytes replaced"
    try:
        return data.decode("cp1252"), f"{label}: not utf-8, read as windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), f"{label}: not utf-8, read as latin-1"


def safe_filename(name: str | None, default: str, content_type: str) -> str:
    """A file name with no path, control or format characters (e.g. U+202E, which shows "exe.pdf" for
    "fdp.exe"), no leading dots or spaces, and at most `MAX_FILENAME_BYTES` long with its extension kept.
    `default` (plus an extension for `content_type`) stands in for a name with nothing left."""
    name = (name or "").replace("\x00", "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_CHARS.sub("_", name)
    if not name.isascii():
        name = "".join(c for c in name if unicodedata.category(c) not in _UNSAFE_CATEGORIES)
    name = name.strip().lstrip(".").strip().rstrip(".")
    if not name:
        name = default + _EXTENSIONS.get(content_type, "")
    if len(name.encode("utf-8")) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    else:
        ext = "." + ext
    room = MAX_FILENAME_BYTES - len(ext.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip() + ext


def rfc2231_text(value: object) -> str:
    """A header parameter as `Message.get_param` hands it over — a string, or (charset, language, text)
    for an RFC 2231 `name*=charset'lang'...` one — as text. `email.utils.collapse_rfc2231_value` would
    decode it with whatever codec the sender names (quadratic punycode, idna that raises); this decodes
    it as `decode_text` does."""
    if isinstance(value, tuple) and len(value) == 3:
        charset, _, text = value
        raw = str(text).encode("raw-unicode-escape")
        return decode_text(raw, charset if isinstance(charset, str) else "us-ascii")[0]
    return email.utils.unquote(str(value))
