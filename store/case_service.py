"""The case service: the one place that opens cases, threads messages onto them, appends
EmailMessages, changes status and writes the case feed. The worker and the REST API both use it.

`record_messages` takes a whole batch in ONE transaction: the reads for the batch are done once
(`store.lookups`), the decisions are made in memory in message order (so a reply later in the same
batch finds the case an earlier message opened), and the writes go out as a few multi-row inserts.
The ledger row of each message is written in the same transaction, so redelivery is a no-op.
Statuses, the defaults of new cases and contacts' Accounts follow the policy's `[case]` and `[accounts]`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from casegate.store import lookups
from casegate.store.agent_replies import Advance, DeliveryUpdate, apply_delivery_statuses
from casegate.store.batch_writer import BatchWriter, ledger_key
from casegate.store.case_matcher import CaseMatcher
from casegate.store.case_policy import CasePolicy
from casegate.store.channel_policy import origin_of, policy_for
from casegate.store.conversations import Conversations
from casegate.store.database import Database
from casegate.store.email_placement import EmailPlacement
from casegate.store.errors import CaseNotFound, PermanentStoreError, TemporaryStoreError
from casegate.store.inbound import InboundMessage, Outcome, from_json
from casegate.store.loop_guard import LoopGuard
from casegate.store.message_placement import MessagePlacement
from casegate.store.models import Case, PendingMessage
from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

T = TypeVar("T")


class CaseService:
    def __init__(self, db: Database, policy: CasePolicy):
        self.db = db
        self.policy = policy

    async def record_messages(self, messages: Sequence[InboundMessage],
                              now: datetime | None = None) -> list[Outcome]:
        """Thread or open a case for each message, in order, in one transaction."""
        at = now or datetime.now(UTC)
        return await self._run(lambda conn: self._record(conn, messages, at))

    def _record(self, conn: Connection, messages: Sequence[InboundMessage], now: datetime,
                releasing: Collection[tuple[str, str]] = ()) -> list[Outcome]:
        writer = self._writer(conn, now)
        emails = [m for m in messages if m.channel == "email"]
        matcher = CaseMatcher.load(conn, emails, self.policy.thread_secret)
        done, dead = lookups.processed_keys(conn, {ledger_key(m) for m in messages})
        done -= set(releasing)  # pending messages being released: their ledger row is replaced
        writer.replace_ledger(dead | set(releasing))
        fresh = [m for m in messages if ledger_key(m) not in done]
        fresh_mail = [m for m in fresh if m.channel == "email"]  # the loop breaker and acknowledgements are mail's
        guard = LoopGuard.load(conn, fresh_mail, self.policy.loops, now, acknowledging=self.policy.outbound.enabled)
        writer.resolve_contacts(fresh)
        others = [m for m in fresh if m.channel != "email"]
        talk = Conversations.load(conn, others, [writer.contact_for(m) for m in others], self.policy.channels, now)
        mail = EmailPlacement(self.policy, writer, matcher, guard)
        other = MessagePlacement(self.policy, writer, talk)
        outcomes = []
        for m in messages:
            key = ledger_key(m)
            if key in done:
                outcomes.append(Outcome(m.channel, m.external_id, "duplicate", None, None, None))
                continue
            done.add(key)
            outcomes.append(mail.place(m) if m.channel == "email" else other.place(m))
        numbers = writer.flush()
        return [_numbered(o, numbers) for o in outcomes]

    def _writer(self, conn: Connection, now: datetime) -> BatchWriter:
        return BatchWriter(conn, now, self.policy.accounts, self.policy.case)

    async def _run(self, fn: Callable[[Connection], T]) -> T:
        """`fn` in one transaction, its database failures sorted into permanent and temporary."""
        try:
            return await self.db.transaction(fn)
        except DBAPIError as e:
            if _refused(e):
                raise PermanentStoreError(f"{type(e).__name__}: {e.orig}") from e
            raise TemporaryStoreError(str(e)) from e  # connection lost, locked, not migrated yet: retry later
        except OSError as e:
            raise TemporaryStoreError(str(e)) from e

    async def release_pending(self, now: datetime | None = None, limit: int = 500) -> list[Outcome]:
        """Open the cases of held-back web form submissions, oldest first, as far as the daily cap allows."""
        at = now or datetime.now(UTC)
        policy = policy_for(self.policy.channels, "web", None)
        if policy.daily_cap is None:
            return []
        cap = policy.daily_cap

        def release(conn: Connection) -> list[Outcome]:
            room = cap - lookups.cases_opened_since(conn, origin_of(policy, "web"), at - timedelta(days=1))
            if room <= 0:
                return []
            rows = conn.execute(select(PendingMessage.Id, PendingMessage.Payload)
                                .order_by(PendingMessage.Id).limit(min(room, limit))).all()
            if not rows:
                return []
            conn.execute(delete(PendingMessage).where(PendingMessage.Id.in_([r[0] for r in rows])))
            messages = [from_json(r[1]) for r in rows]
            return self._record(conn, messages, at, releasing={ledger_key(m) for m in messages})

        return await self._run(release)

    async def record_dead_letter(self, m: InboundMessage, error: str, now: datetime | None = None) -> None:
        """Put a dead-lettered message on the ledger with its error, so the message trace can say where
        it went; a later successful replay replaces the row. A message already processed is left alone."""
        at = now or datetime.now(UTC)

        def record(conn: Connection) -> None:
            done, dead = lookups.processed_keys(conn, {ledger_key(m)})
            if done:
                return
            writer = self._writer(conn, at)
            writer.replace_ledger(dead)
            writer.add_ledger(m, lookups.DEAD_LETTERED, None, None, None, reason=error)
            writer.flush()

        await self._run(record)

    async def apply_delivery_statuses(self, updates: Sequence[DeliveryUpdate], advance: Advance,
                                      now: datetime | None = None) -> int:
        """Providers' delivery statuses onto the agents' replies they name, in one transaction
        (`store.agent_replies`); how many named a reply of ours."""
        at = now or datetime.now(UTC)
        return await self._run(lambda conn: apply_delivery_statuses(conn, updates, at, advance))

    async def change_status(self, case_number: str, status: str, now: datetime | None = None) -> None:
        """Set a case's Status, one of the `[case]` statuses (closing stamps ClosedDate, reopening clears it),
        and record it on the feed; ValueError for a Status the settings do not have."""
        at = now or datetime.now(UTC)

        def change(conn: Connection) -> None:
            row = conn.execute(select(Case.Id).where(Case.CaseNumber == case_number)).scalar()
            if row is None:
                raise CaseNotFound(case_number)
            state = lookups.case_states(conn, [row])[row]
            writer = self._writer(conn, at)
            writer.set_status(state, status, reason="status set")
            writer.flush()

        await self._run(change)


def _refused(e: DBAPIError) -> bool:
    """The database refused this data (it will refuse it again), as opposed to being unavailable.
    asyncpg's errors reach us as plain DBAPIError, so look at the SQLSTATE class too:
    22 = data exception, 23 = integrity constraint violation."""
    if isinstance(e, IntegrityError | DataError):
        return True
    state = getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def _numbered(o: Outcome, numbers: Mapping[str, str]) -> Outcome:
    if o.case_id is None or o.case_id not in numbers:
        return o
    return Outcome(o.channel, o.external_id, o.outcome, o.case_id, numbers[o.case_id], o.rule)

