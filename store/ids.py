"""Record ids in the Salesforce shape, made without a round trip per record, and read back from clients.

An id is 15 case-sensitive base-62 characters plus Salesforce's 3-character case-safe suffix (18 in all):

    500 Abc 0k2Fq81 Zx ABC
    ^^^ ^^^ ^^^^^^^ ^^ ^^^
    |   |   |       |  the suffix: which of the 15 characters are capitals, 5 bits per 5 characters
    |   |   |       one of 3,844 ids in that millisecond (past them, the next millisecond's are used)
    |   |   milliseconds since 2026-01-01 (good until 2137)
    |   the node: a number this process claimed from the store's `IdNode` counter when it opened the
    |   store (`claim_node`), so no two running processes share one
    the key prefix of the object (500 Case, 003 Contact, ...)

Unique by construction, not by chance: a process's counter only grows, and two processes never hold the
same node at once. Nodes wrap after 200,000 claims; a node used again later counts from a later
millisecond than its last holder could have reached. A process that never
claims (a test, a one-off script) takes a random node from the 38,328 kept apart for that.

Ids grow with time within a process, so a new row's key lands at one right edge per process of every
index on an Id (or a ParentId) instead of on a random page: a batch rewrites a few index pages, not one
per row and index.

`parse_id` reads what a client sends: the 18-character form (in any letter case: the suffix restores
it) or the 15-character one, checked against the object's prefix. Ids written before the suffix
existed (3 + 15 characters with no valid suffix) are still taken as they are.

Ids and the suffix algorithm: https://salesforce.stackexchange.com/questions/1653/what-are-salesforce-ids-composed-of ;
key prefixes: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/api_concepts_ids.htm"""

from __future__ import annotations

import secrets
import string
import time

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
_SUFFIX = string.ascii_uppercase + "012345"

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
    "Asset": "02i",
    "QueueMember": "011",
    "Knowledge__kav": "ka0",  # an article version (Salesforce docs show ka0 version ids)
    "Knowledge__ka": "kA0",  # the article all its versions share (KnowledgeArticleId; community examples)
    "CaseArticle": "0BA",  # UNCONFIRMED: Salesforce's prefix for CaseArticle was not found
}
OBJECT_OF_PREFIX = {p: o for o, p in PREFIX.items()}

NODE_CHARS, MS_CHARS, SEQ_CHARS = 3, 7, 2
CLAIMED_NODES = 200_000
"""Nodes 0-199,999 are claimed from the store; 200,000-238,327 (62³ - 1) are taken at random."""
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PER_MS = 62**SEQ_CHARS
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_PAIR_BITS = [(a.isupper() << 3) | (b.isupper() << 4) for a in _ALPHABET for b in _ALPHABET]
"""The sequence's two characters and their capitals' bits in the last 5-character chunk."""
NODE_COUNTER = "IdNode"


class MalformedId(ValueError):
    """Not an id of the object asked for; the message says why (Salesforce's MALFORMED_ID)."""


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, digit = divmod(n, 62)
        out.append(_ALPHABET[digit])
    if n:
        raise OverflowError(f"{n} does not fit in {width} base-62 characters")
    return "".join(reversed(out))


def suffix(id15: str) -> str:
    """Salesforce's case-safe suffix of a 15-character id: for each 5 characters, a 5-bit number with
    bit i set when character i is a capital A-Z, written as one of A-Z, 0-5."""
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if "A" <= c <= "Z")
        out.append(_SUFFIX[bits])
    return "".join(out)


def _bits(chunk: str) -> int:
    return sum(1 << i for i, c in enumerate(chunk) if "A" <= c <= "Z")


class _Source:
    """This process's node, its current millisecond and sequence, and what of an id they fix: made once
    a millisecond, so an id costs a few string joins (ids are made by the ten thousand a second)."""

    def __init__(self) -> None:
        self.ms = -1
        self.seq = 0
        self.set_node(CLAIMED_NODES + secrets.randbelow(62**NODE_CHARS - CLAIMED_NODES))

    def set_node(self, node: int) -> None:
        self.node = _base62(node, NODE_CHARS)
        self.head: dict[str, str] = {p: p + self.node for p in PREFIX.values()}
        self.first = {p: _SUFFIX[_bits(p + self.node[:2])] for p in PREFIX.values()}
        self._stem()

    def _stem(self) -> None:
        ms = _base62(max(self.ms, 0), MS_CHARS)
        self.body = ms
        self.second = _SUFFIX[_bits(self.node[2] + ms[:4])]
        self.third = _bits(ms[4:])

    def make(self, prefix: str) -> str:
        now = time.time_ns() // 1_000_000 - EPOCH_MS
        if now > self.ms:
            self.ms, self.seq = now, 0
            self._stem()
        elif self.seq == PER_MS - 1:  # 3,844 ids this millisecond already: borrow the next one's
            self.ms, self.seq = self.ms + 1, 0
            self._stem()
        else:
            self.seq += 1
        return (self.head[prefix] + self.body + _PAIRS[self.seq] + self.first[prefix] + self.second
                + _SUFFIX[self.third | _PAIR_BITS[self.seq]])


_source = _Source()


def new_id(obj: str) -> str:
    """A fresh 18-character id for an object named as in `PREFIX` (e.g. `new_id("Case")` → `500…`)."""
    return _source.make(PREFIX[obj])


async def claim_node(conn: AsyncConnection) -> int:
    """Claim this process's node from the store (one row of `counter`, committed by the caller's
    transaction) and make the ids that follow use it. Returns the node."""
    from casegate.store.models import Counter  # models import this module for their id columns

    for _ in range(2):
        value = (await conn.execute(
            update(Counter).where(Counter.Name == NODE_COUNTER).values(Value=Counter.Value + 1)
            .returning(Counter.Value))).scalar_one_or_none()
        if value is not None:
            break
        try:
            async with conn.begin_nested():
                await conn.execute(insert(Counter).values(Name=NODE_COUNTER, Value=0))
        except IntegrityError:  # another process made the row at the same moment
            pass
    else:
        value = (await conn.execute(select(Counter.Value).where(Counter.Name == NODE_COUNTER))).scalar_one()
    node = value % CLAIMED_NODES
    _source.set_node(node)
    return node


def parse_id(value: object, obj: str | None = None) -> str:
    """The stored form of an id a client sent, for object `obj` (any object when None).

    Accepts the 18-character form in any letter case (the suffix restores each letter's case) and the
    15-character case-sensitive form; raises MalformedId for anything else, naming what is wrong."""
    if not isinstance(value, str):
        raise MalformedId(f"id value of incorrect type: {value!r}")
    if len(value) not in (15, 18) or any(c not in _DIGIT for c in value):
        raise MalformedId(f"id value of incorrect type: {value[:40]}")
    if len(value) == 15:
        full = value + suffix(value)
    elif value[15:] == suffix(value[:15]):
        full = value
    else:  # letters' case lost on the way (a case-insensitive system), or an id from before suffixes
        full = _restore_case(value) or value
    if obj is not None and full[:3] != PREFIX[obj]:
        raise MalformedId(f"{obj} ID: id value of incorrect type: {value}")
    return full


def _restore_case(value: str) -> str | None:
    """The 18-character id with each letter's case as its suffix says; None if the suffix cannot be
    one (a character outside A-Z 0-5, or a capital claimed where a digit stands)."""
    tail = value[15:].upper()
    if any(c not in _SUFFIX for c in tail):
        return None
    out = []
    for k, code in enumerate(tail):
        bits = _SUFFIX.index(code)
        for i, c in enumerate(value[5 * k:5 * k + 5]):
            upper = bool(bits >> i & 1)
            if c.isdigit():
                if upper:
                    return None
                out.append(c)
            else:
                out.append(c.upper() if upper else c.lower())
    return "".join(out) + tail
