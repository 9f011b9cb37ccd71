"""The case service: the one place that opens cases, threads messages onto them, appends
EmailMessages, changes status and writes the case feed. The worker and the REST API both use it.

`record_messages` takes a whole batch in ONE transaction: the reads for the batch are done once
(`store.lookups`), the decisions are made in memory in message order (so a reply later in the same
batch finds the case an earlier message opened), and the writes go out as a few multi-row inserts.
The ledger row of each message is written in the same transaction, so redelivery is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from config import RoutingAddress, RulesSettings
from rules.assignment import CaseFacts, assign
from rules.lifecycle import change_status
from store import lookups
from store.batch_writer import BatchWriter, ledger_key
from store.case_matcher import CaseMatcher
from store.database import Database
from store.errors import CaseNotFound, PermanentStoreError, TemporaryStoreError
from store.inbound import InboundMessage, Outcome
from store.models import Case

T = TypeVar("T")


@dataclass(frozen=True)
class CasePolicy:
    """What the service needs from the configuration, resolved once at start."""

    routing: Mapping[str, RoutingAddress]
    rules: RulesSettings
    owner_ids: Mapping[str, str]
    """Owner reference (`queue:Support`) → record Id."""
    thread_secret: bytes

    def routing_for(self, recipients: Sequence[str]) -> RoutingAddress | None:
        for r in recipients:
            if r.lower() in self.routing:
                return self.routing[r.lower()]
        return None


class CaseService:
    def __init__(self, db: Database, policy: CasePolicy):
        self.db = db
        self.policy = policy

    async def record_messages(self, messages: Sequence[InboundMessage],
                              now: datetime | None = None) -> list[Outcome]:
        """Thread or open a case for each message, in order, in one transaction."""
        at = now or datetime.now(UTC)
        return await self._run(lambda conn: self._record(conn, messages, at))

    def _record(self, conn: Connection, messages: Sequence[InboundMessage], now: datetime) -> list[Outcome]:
        writer = BatchWriter(conn, now)
        matcher = CaseMatcher.load(conn, messages, self.policy.thread_secret)
        done = lookups.processed_keys(conn, {ledger_key(m) for m in messages})
        writer.resolve_contacts(messages)
        outcomes = []
        for m in messages:
            key = ledger_key(m)
            if key in done:
                outcomes.append(Outcome(m.channel, m.external_id, "duplicate", None, None, None))
                continue
            done.add(key)
            outcomes.append(self._place(m, matcher, writer))
        numbers = writer.flush()
        return [_numbered(o, numbers) for o in outcomes]

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

    def _place(self, m: InboundMessage, matcher: CaseMatcher, writer: BatchWriter) -> Outcome:
        contact = writer.contact_for(m)
        found = matcher.match(m)
        if found is not None:
            state, rule = found
            if state.is_closed:
                change = change_status(self.policy.rules.reopen_status, state.closed_date, writer.now)
                writer.change_status(state, change, reason=f"customer wrote again ({m.channel})")
            email_id = writer.add_message(state.id, m, contact)
            writer.add_feed(state.id, "ThreadingRule", body=f"{m.channel} message threaded by {rule}",
                            related=email_id)
            writer.add_ledger(m, "threaded", rule, state.id, email_id)
            matcher.remember(m, state)
            return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)
        route = self.policy.routing_for(m.recipients)
        state = writer.open_case(m, route, contact)
        case_id = state.id
        route_owner = route.owner if route and route.owner else None
        owner = assign(self.policy.rules.assignment, route_owner or self.policy.rules.default_owner,
                       CaseFacts(origin=route.origin if route else None,
                                 recipient=next(iter(m.recipients), None), subject=m.subject,
                                 description=m.text, priority=route.priority if route else None,
                                 account=contact.account_name if contact else None))
        if owner.entry:
            why = f"assignment rule entry '{owner.entry}' matched"
        elif route_owner and route:
            why = f"no assignment entry matched: owner of routing address {route.address}"
        else:
            why = "no assignment entry matched: default owner"
        writer.set_owner(case_id, self.policy.owner_ids[owner.owner], owner.owner, why)
        email_id = writer.add_message(case_id, m, contact)
        writer.set_source(case_id, email_id)
        writer.add_ledger(m, "created", "new", case_id, email_id)
        matcher.remember(m, state)
        return Outcome(m.channel, m.external_id, "created", case_id, None, "new")

    async def change_status(self, case_number: str, status: str, now: datetime | None = None) -> None:
        """Set a case's Status (closing stamps ClosedDate, reopening clears it) and record it on the feed."""
        at = now or datetime.now(UTC)

        def change(conn: Connection) -> None:
            row = conn.execute(select(Case.Id).where(Case.CaseNumber == case_number)).scalar()
            if row is None:
                raise CaseNotFound(case_number)
            state = lookups.case_states(conn, [row])[row]
            writer = BatchWriter(conn, at)
            writer.change_status(state, change_status(status, state.closed_date, at), reason="status set")
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

