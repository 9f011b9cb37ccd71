"""One call of the record layer inside its transaction: the connection, who asks, when, the policy, and the
feed entries it writes (sent at the end, in one statement). Also claiming this process's id node once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casegate.rules.access import Actor
from casegate.store.database import Database
from casegate.store.ids import claim_node, new_id
from casegate.store.models import CaseFeed, User
from casegate.store.records.errors import not_found
from casegate.store.records.policy import RecordPolicy
from casegate.store.records.spec import ObjectSpec
from sqlalchemy import Connection, RowMapping, insert, select

FEED_VALUE, FEED_BODY, FEED_FIELD = 255, 4000, 80


@dataclass
class Feed:
    """Entries on case timelines, written in order; CreatedById is the user the call is for."""

    now: datetime
    user_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, case_id: str, kind: str, *, field: str | None = None, old: str | None = None,
            new: str | None = None, body: str | None = None, related: str | None = None,
            rule: str | None = None) -> None:
        self.rows.append({
            "Id": new_id("CaseFeed"), "ParentId": case_id, "Type": kind, "Field": _cut(field, FEED_FIELD),
            "OldValue": _cut(old, FEED_VALUE), "NewValue": _cut(new, FEED_VALUE), "Body": _cut(body, FEED_BODY),
            "RelatedRecordId": related, "Rule": _cut(rule, 80), "Seq": len(self.rows), "CreatedById": self.user_id,
            "CreatedDate": self.now})

    def flush(self, conn: Connection) -> None:
        if self.rows:
            conn.execute(insert(CaseFeed), self.rows)
            self.rows.clear()


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


@dataclass
class Call:
    conn: Connection
    actor: Actor
    now: datetime
    policy: RecordPolicy
    feed: Feed
    _who: str | None = None

    @property
    def who(self) -> str:
        """The asking user as the feed names them: `Ann Agent (005…)`."""
        if self._who is None:
            name = self.conn.execute(select(User.Name).where(User.Id == self.actor.user_id)).scalar_one_or_none()
            self._who = f"{name} ({self.actor.user_id})" if name else self.actor.user_id
        return self._who

    def row(self, obj: ObjectSpec, record_id: str, *, lock: bool = False) -> RowMapping:
        """The stored record (every column by API name); NOT_FOUND when there is none."""
        found = self.find(obj, record_id, lock=lock)
        if found is None:
            raise not_found()
        return found

    def find(self, obj: ObjectSpec, record_id: str, *, lock: bool = False) -> RowMapping | None:
        stmt = select(obj.table).where(obj.table.c.Id == record_id)
        return self.conn.execute(stmt.with_for_update() if lock else stmt).mappings().first()


_claimed: list[int] = []
"""The id node this process claimed (ids are per process, whichever store they go to). Two first writes
at once may both claim: harmless, the later node is used."""


async def ensure_node(db: Database) -> None:
    """Claim this process's id node from the store before its first write (`store.ids.claim_node`)."""
    if not _claimed:
        async with db.engine.begin() as conn:
            _claimed.append(await claim_node(conn))
