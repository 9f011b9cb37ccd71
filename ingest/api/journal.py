"""What an all-or-none request changed, so it can be undone when a later part of it fails.

The record layer (casegate.store.records) runs each create, update and delete as a transaction of its
own, so a composite request or an sObject collection with `allOrNone` is made all-or-none by
compensation: the records it created are deleted and the fields it updated are written back to the
values read just before, newest first. A delete cannot be undone that way; so in an all-or-none
request deletes are checked (the record exists) and held back until everything else has succeeded
(`defer`): a later subrequest still sees the record, and when one of several deletes fails, those
before it stay done. An upsert that updated a record keeps its update (which record it would change
is only known once it is done); one that created a record is undone like a create.

Undoing is done as the request's user with an admin's rights (it only reverses what that user just
did), and is best effort: another client may change the same record in between; an undo that fails is
logged with the record's id, never hidden."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from casegate.ingest.api.errors import ApiError
from casegate.rules.access import ADMIN, Actor
from casegate.store import records
from casegate.store.database import Database
from casegate.store.records import RecordPolicy

log = structlog.get_logger("casegate.api")


@dataclass
class Journal:
    """The changes of one all-or-none request, in the order made: (object, Id, the fields' values
    before the change, or None for a record created)."""

    changes: list[tuple[str, str, dict[str, object] | None]] = field(default_factory=list)
    deferred: list[tuple[int, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    """Deletes held back, each with the `step` that asked for it."""
    step: int = 0
    """Which part of the request is being done (a subrequest's or a record's index)."""

    def made(self, obj: str, record_id: str) -> None:
        self.changes.append((obj, record_id, None))

    def changed(self, obj: str, record_id: str, before: Mapping[str, object]) -> None:
        self.changes.append((obj, record_id, dict(before)))

    def defer(self, delete: Callable[[], Awaitable[None]]) -> None:
        """Hold back a delete of the current step until everything else succeeded (`run_deferred`)."""
        self.deferred.append((self.step, delete))

    async def run_deferred(self) -> tuple[int, ApiError] | None:
        """Run the deletes held back, in order, until one fails: None when all were done, else the step
        whose delete failed and why (the caller answers that step in its own shape and undoes the rest)."""
        deletes, self.deferred = self.deferred, []
        for step, delete in deletes:
            try:
                await delete()
            except ApiError as e:
                return step, e
        return None

    async def undo(self, db: Database, actor: Actor, policy: RecordPolicy) -> None:
        """Reverse every create and update, newest first; the deletes held back are dropped."""
        undoer = Actor(actor.user_id, ADMIN, actor.queue_ids)
        changes, self.changes, self.deferred = self.changes, [], []
        for obj, record_id, before in reversed(changes):
            try:
                if before is None:
                    await records.delete(db, obj, record_id, undoer, policy=policy)
                else:
                    await records.update(db, obj, record_id, before, undoer, policy=policy)
            except Exception as e:  # logged, never hidden: the client is told the request failed anyway
                log.error("api.undo_failed", object=obj, record_id=record_id,
                          action="delete" if before is None else "restore", error=f"{type(e).__name__}: {e}"[:300])
