"""Message-IDs as casegate keys mail by (pure, no I/O): the `<id@host>` tokens of a Message-ID,
In-Reply-To or References header, and the one normalised id a Message-ID header names.

The mail parser (`ingest.mail.mime`) and the worker key and thread mail by `message_id`; the message trace
(`store.message_trace`) turns whatever an operator types into the same id, so a mail is found by the
header as it was written or by its normalised form. A Message-ID written without angle brackets
(`abc@host`), or missing one (`<abc@host`), still names an id: `<abc@host>`.
"""

from __future__ import annotations

import re

_MSGID = re.compile(r"<[^<>\s]+>")
_COMMENT = re.compile(r"\([^()]*\)")
MAX_COMMENT_DEPTH = 4


def message_ids(value: str | None) -> list[str]:
    """The `<id@host>` tokens in a Message-ID, In-Reply-To or References header, in order."""
    return _MSGID.findall(value or "")


def message_id(value: str | None) -> str | None:
    """The normalised id of a Message-ID header: its first `<id@host>` token; else, for an id written
    without its angle brackets or missing one (`abc@host`, `<abc@host`, `abc@host>`, comments in
    parentheses aside), that one token in brackets; None when the header names none (absent, empty,
    `<>`, or words separated by spaces)."""
    if not value:
        return None
    found = _MSGID.search(value)
    if found is not None:
        return found.group()
    text = value
    for _ in range(MAX_COMMENT_DEPTH):  # (nested (comments)) come off one level at a time
        text = _COMMENT.sub(" ", text)
    token = text.strip().strip("<>")
    if not token or any(c.isspace() or c in "<>" for c in token):
        return None
    return f"<{token}>"
