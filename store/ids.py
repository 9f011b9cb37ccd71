"""Record ids in the Salesforce shape: a 3-character key prefix of the object plus 15 random base-62
characters (18 in all). Random ids need no round trip, so whole batches are inserted at once."""

from __future__ import annotations

import secrets
import string

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


def new_id(obj: str) -> str:
    """A fresh id for an object named as in `PREFIX` (e.g. `new_id("Case")` → `500…`)."""
    return PREFIX[obj] + secrets.token_bytes(15).translate(_TABLE).decode()
