"""Case owners named in the config (`queue:<Name>`, `user:<email>`): made to exist in the store and
resolved to record Ids once at start, so rules can name owners and cases store their Ids."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from casegate.store.database import Database
from casegate.store.ids import new_id
from casegate.store.models import Queue, User
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError


async def ensure_owners(db: Database, refs: Iterable[str]) -> dict[str, str]:
    """Ids of the named owners, creating the queues and users that do not exist yet."""
    wanted = sorted(set(refs))
    for attempt in range(2):  # another process may create the same owner at the same moment
        try:
            return await _ensure(db, wanted)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _ensure(db: Database, refs: list[str]) -> dict[str, str]:
    queues = [r.split(":", 1)[1] for r in refs if r.startswith("queue:")]
    users = [r.split(":", 1)[1].lower() for r in refs if r.startswith("user:")]
    now = datetime.now(UTC)
    async with db.session() as s, s.begin():
        q_rows = await s.execute(select(Queue.Name, Queue.Id).where(Queue.Name.in_(queues)))
        u_rows = await s.execute(select(User.Email, User.Id).where(User.Email.in_(users)))
        have_q: dict[str, str] = {n: i for n, i in q_rows}
        have_u: dict[str, str] = {e: i for e, i in u_rows}
        for name in queues:
            if name not in have_q:
                have_q[name] = new_id("Queue")
                s.add(Queue(Id=have_q[name], Name=name, CreatedDate=now))
        for email in users:
            if email not in have_u:
                have_u[email] = new_id("User")
                s.add(User(Id=have_u[email], Name=email.split("@")[0], Email=email, IsActive=True,
                           CreatedDate=now))
    out = {f"queue:{n}": i for n, i in have_q.items()}
    out.update({f"user:{e}": i for e, i in have_u.items()})
    return {r: out[r if r.startswith("queue:") else "user:" + r.split(":", 1)[1].lower()] for r in refs}
