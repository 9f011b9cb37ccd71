r"""SOQL literals as written → values: quoted strings with their escape sequences, numbers, dates and
date-times. Each refusal is a `MalformedQuery` at the literal's position.

Escapes (Salesforce's table): \n \r \t \b \f (either case), \" \' \\, \uXXXX, and in LIKE patterns only
\% and \_ (a literal percent sign or underscore). Any other backslash is an error.
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from casegate.store.soql.errors import MalformedQuery, Position
from casegate.store.soql.syntax import String

MAX_NUMBER_CHARS = 40
"""A longer number is refused before it is converted (converting 100,000 digits is quadratic)."""

_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'"}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))", re.I)


def string(raw: str, position: Position, source: str) -> String:
    """The quoted literal `raw` (quotes included) as a String."""
    body = raw[1:-1]
    value: list[str] = []
    like: list[str] = []
    like_escapes = False
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            value.append(c)
            like.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e.lower() in _SIMPLE:
            ch = _SIMPLE[e.lower()] if e not in "\"'" else e
            value.append(ch)
            like.append(ch)
            i += 2
        elif e == "\\":
            value.append("\\")
            like.append("\\\\")
            i += 2
        elif e in "%_":
            like_escapes = True
            value.append(e)
            like.append("\\" + e)
            i += 2
        elif e == "u" and _HEX4.fullmatch(body, i + 2, i + 6):
            ch = chr(int(body[i + 2:i + 6], 16))
            value.append(ch)
            like.append("\\" + ch if ch in "%_\\" else ch)
            i += 6
        else:
            raise MalformedQuery(f"Invalid string literal '{raw[:40]}'. Illegal character sequence '\\{e}' "
                                 "in string literal.", position, source)
    text = "".join(value)
    if "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text):
        raise MalformedQuery("Invalid string literal: it holds a NUL character or an unpaired surrogate",
                             position, source)
    return String(text, "".join(like), like_escapes)


def number(raw: str, position: Position, source: str) -> int | Decimal:
    if len(raw) > MAX_NUMBER_CHARS:
        raise MalformedQuery(f"number too long: at most {MAX_NUMBER_CHARS} characters", position, source)
    return Decimal(raw) if "." in raw else int(raw)


def day(raw: str, position: Position, source: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise MalformedQuery(f"invalid date: {raw}", position, source) from None


def instant(raw: str, position: Position, source: str) -> datetime:
    """A date-time with `Z` or an offset (`+01:00`, `-0800`), as an aware datetime."""
    m = _DATETIME.fullmatch(raw)
    try:
        if m is None:
            raise ValueError(raw)
        y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
        offset = timedelta(0) if z else (1 if sign == "+" else -1) * timedelta(hours=int(oh), minutes=int(om))
        micro = int((frac or "0")[:6].ljust(6, "0"))
        at = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=timezone(offset))
        at.astimezone(UTC)  # OverflowError when it is off the calendar in UTC (0001-01-01T00:00:00+05:00)
        return at
    except (ValueError, OverflowError):
        raise MalformedQuery(f"invalid date-time: {raw}", position, source) from None


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
