"""Which character sets casegate decodes text with (pure): an explicit allow-list of real text charsets,
matched after `codecs.lookup()` normalisation, shared by mail (bodies, RFC 2047 words, RFC 2231
parameters) and the web form.

Python's codec registry holds more than charsets: codecs that are not text encodings at all (base64,
zlib, bz2, uu, hex, quopri, rot13), and text codecs that are no charset of anyone's mail or form and
cost more than a charset should: punycode decodes in time quadratic in its input (1 MB: half a minute),
idna and undefined raise UnicodeError whatever the input, unicode-escape interprets backslashes. A label
that does not name one of `TEXT_CODECS` is an unknown charset: mail reads it tolerantly, the web form
refuses it.
"""

from __future__ import annotations

import codecs
import functools

TEXT_CODECS = frozenset({
    "ascii", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le",
    "utf-7",
    # ISO-8859 and windows-125x
    "iso8859-1", "iso8859-2", "iso8859-3", "iso8859-4", "iso8859-5", "iso8859-6", "iso8859-7", "iso8859-8",
    "iso8859-9", "iso8859-10", "iso8859-11", "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16",
    "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
    # Cyrillic, Thai and other single-byte sets
    "koi8-r", "koi8-u", "koi8-t", "kz1048", "ptcp154", "cp1125", "tis-620", "cp874", "hp-roman8",
    "mac-roman", "mac-cyrillic", "mac-greek", "mac-iceland", "mac-latin2", "mac-turkish", "mac-arabic",
    "mac-croatian", "mac-farsi", "mac-romanian",
    # DOS and EBCDIC code pages
    "cp437", "cp720", "cp737", "cp775", "cp850", "cp852", "cp855", "cp856", "cp857", "cp858", "cp860",
    "cp861", "cp862", "cp863", "cp864", "cp865", "cp866", "cp869",
    "cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140",
    # Japanese, Korean, Chinese
    "shift_jis", "shift_jis_2004", "shift_jisx0213", "cp932", "euc_jp", "euc_jis_2004", "euc_jisx0213",
    "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext",
    "euc_kr", "cp949", "johab", "iso2022_kr",
    "gb2312", "gbk", "gb18030", "hz", "big5", "big5hkscs", "cp950",
})
"""`codecs.lookup(label).name` of every charset decoded: each is a C codec, linear in its input."""
NOT_FOR_FORMS = frozenset({"utf-7"})
"""Text charsets no browser submits a form in (the WHATWG Encoding Standard has no UTF-7)."""
MAX_LABEL = 100
"""Longer labels name no charset (the longest alias, of euc_jp, has 45 characters)."""


def text_codec(label: str | None) -> str | None:
    """The codec name of a text charset label (`UTF8`, `"latin1"`, `Shift-JIS` ...), or None when the
    label names no charset of `TEXT_CODECS`: unknown, malformed, or a codec that is not one."""
    if not label or len(label) > MAX_LABEL:
        return None
    return _lookup(label.strip().strip("\"'").lower())


def form_codec(label: str | None) -> str | None:
    """`text_codec`, less the charsets a form is never sent in."""
    codec = text_codec(label)
    return None if codec in NOT_FOR_FORMS else codec


@functools.lru_cache(maxsize=512)
def _lookup(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name
    except Exception:  # LookupError; ValueError or TypeError for a NUL or other junk in the label
        return None
    return name if name in TEXT_CODECS else None
