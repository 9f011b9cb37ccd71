"""Record ids in the Salesforce shape: a 3-character key prefix of the object plus 15 base-62 characters
(18 in all). Made without a round trip, so whole batches are inserted at once.

The 15 characters are 7 of time (milliseconds since the epoch in base 62, so ids sort by creation; good
until the year 2081) and 8 random ones (62^8 ≈ 2e14 per millisecond across processes). Sorting by time
matters for speed: a new row's key lands at the right edge of every index on an Id (and on a ParentId)
instead of on a random page, so a batch rewrites a few index pages instead of one per row and index."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.digits + string.ascii_letters
_TABLE = bytes(ord(_ALPHABET[b % 62]) for b in range(256))  # the slight bias of % 62 is harmless for ids

PREFIX = {
    "Case": "500",
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Queue": "00G",
    "CaseComment": "00a",
    "EmailMessage": "02s",
    "Attachment": "00P",
    "CaseFeed": "0D5",
    "Outbox": "0oX",
    "ConversationEntry": "0Mw",
}


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, digit = divmod(n, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


_clock: tuple[int, str] = (0, "")
"""The last millisecond and its base-62 form: a batch makes thousands of ids within a few of them."""


def new_id(obj: str) -> str:
    """A fresh id for an object named as in `PREFIX` (e.g. `new_id("Case")` → `500…`)."""
    global _clock
    ms = time.time_ns() // 1_000_000
    if ms != _clock[0]:
        _clock = (ms, _base62(ms, 7))
    return PREFIX[obj] + _clock[1] + secrets.token_bytes(8).translate(_TABLE).decode()
