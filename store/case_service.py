"""The case service: the one place that opens cases, threads messages onto them, appends
EmailMessages, changes status and writes the case feed. The worker and the REST API both use it.

`record_messages` takes a whole batch in ONE transaction: the reads for the batch are done once
(`store.lookups`), the decisions are made in memory in message order (so a reply later in the same
batch finds the case an earlier message opened), and the writes go out as a few multi-row inserts.
The ledger row of each message is written in the same transaction, so redelivery is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from config import LoopSettings, OutboundSettings, RoutingAddress, RulesSettings
from rules.assignment import CaseFacts, assign
from rules.lifecycle import change_status
from store import lookups
from store.batch_writer import BatchWriter, ledger_key
from store.case_matcher import CaseMatcher
from store.database import Database
from store.errors import CaseNotFound, PermanentStoreError, TemporaryStoreError
from store.inbound import InboundMessage, Outcome
from store.lookups import CaseState
from store.loop_guard import LoopGuard
from store.models import Case
from store.thread_token import make_token

T = TypeVar("T")


@dataclass(frozen=True)
class CasePolicy:
    """What the service needs from the configuration, resolved once at start."""

    routing: Mapping[str, RoutingAddress]
    rules: RulesSettings
    owner_ids: Mapping[str, str]
    """Owner reference (`queue:Support`) → record Id."""
    thread_secret: bytes
    loops: LoopSettings = field(default_factory=LoopSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)

    def routing_for(self, recipients: Sequence[str]) -> RoutingAddress | None:
        for r in recipients:
            if r.lower() in self.routing:
                return self.routing[r.lower()]
        return None


_UNROUTED = RoutingAddress(address="unrouted@casegate.invalid", auto_acknowledge=False)
"""The policy of a message that reached none of the routing addresses (e.g. an API message)."""


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
        done, dead = lookups.processed_keys(conn, {ledger_key(m) for m in messages})
        writer.replace_ledger(dead)
        fresh = [m for m in messages if ledger_key(m) not in done]
        guard = LoopGuard.load(conn, fresh, self.policy.loops, now)
        writer.resolve_contacts(fresh)
        outcomes = []
        for m in messages:
            key = ledger_key(m)
            if key in done:
                outcomes.append(Outcome(m.channel, m.external_id, "duplicate", None, None, None))
                continue
            done.add(key)
            outcomes.append(self._place(m, matcher, writer, guard))
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

    def _place(self, m: InboundMessage, matcher: CaseMatcher, writer: BatchWriter, guard: LoopGuard) -> Outcome:
        route = self.policy.routing_for(m.recipients) or _UNROUTED
        flooding = guard.flooding(m)
        if m.auto == "bounce":
            return self._bounce(m, matcher, writer)
        found = matcher.match(m)
        if found is not None:
            state, rule = found
            if not state.is_closed:
                return self._thread(m, state, rule, writer, matcher)
            if m.auto:  # an auto-reply to a closed case is kept on it but never reopens it
                return self._thread(m, state, rule, writer, matcher,
                                    note=f"automatic mail ({m.auto}) on a closed case: not reopened")
            return self._closed(m, state, rule, route, matcher, writer, guard)
        if m.auto and not route.automatic_opens_case:
            return self._suppress(m, writer, m.auto, f"{m.auto}: {m.auto_reason or 'automatic mail'}")
        if flooding:
            return self._suppress(m, writer, "loop", f"more than {self.policy.loops.max_per_sender_subject} "
                                  f"mails from this sender with this subject within "
                                  f"{self.policy.loops.window_seconds:g} s")
        return self._open(m, route, matcher, writer, guard)

    def _thread(self, m: InboundMessage, state: CaseState, rule: str, writer: BatchWriter, matcher: CaseMatcher,
                note: str | None = None) -> Outcome:
        contact = writer.contact_for(m)
        email_id = writer.add_message(state.id, m, contact)
        body = f"{m.channel} message threaded by {rule}" + (f"; {note}" if note else "")
        writer.add_feed(state.id, "ThreadingRule", body=body, related=email_id)
        writer.add_ledger(m, "threaded", rule, state.id, email_id, reason=note)
        matcher.remember(m, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)

    def _closed(self, m: InboundMessage, state: CaseState, rule: str, route: RoutingAddress,
                matcher: CaseMatcher, writer: BatchWriter, guard: LoopGuard) -> Outcome:
        """A person wrote to a closed case: the routing address's closed-case policy decides."""
        policy = route.closed_case_policy
        age = writer.now - _aware(state.closed_date) if state.closed_date else None
        if policy == "reject":
            outcome = self._thread(m, state, rule, writer, matcher,
                                   note="closed-case policy reject: not reopened, sender notified")
            self._send(state, "notice", route, m, writer, guard)
            return outcome
        if policy == "reopen" or (policy == "reopen_within_days" and age is not None
                                  and age <= timedelta(days=route.reopen_within_days)):
            change = change_status(self.policy.rules.reopen_status, state.closed_date, writer.now)
            writer.change_status(state, change, reason=f"customer wrote again ({m.channel}); policy {policy}")
            return self._thread(m, state, rule, writer, matcher, note=f"closed-case policy {policy}: reopened")
        return self._open(m, route, matcher, writer, guard, parent=state,
                          why=f"closed-case policy {policy}: new case, ParentId {state.number}")

    def _open(self, m: InboundMessage, route: RoutingAddress, matcher: CaseMatcher, writer: BatchWriter,
              guard: LoopGuard, parent: CaseState | None = None, why: str | None = None) -> Outcome:
        contact = writer.contact_for(m)
        routed = route is not _UNROUTED
        state = writer.open_case(m, route if routed else None, contact, parent)
        case_id = state.id
        route_owner = route.owner if routed and route.owner else None
        owner = assign(self.policy.rules.assignment, route_owner or self.policy.rules.default_owner,
                       CaseFacts(origin=route.origin if routed else None,
                                 recipient=next(iter(m.recipients), None), subject=m.subject,
                                 description=m.text, priority=route.priority if routed else None,
                                 account=contact.account_name if contact else None))
        if owner.entry:
            reason = f"assignment rule entry '{owner.entry}' matched"
        elif route_owner:
            reason = f"no assignment entry matched: owner of routing address {route.address}"
        else:
            reason = "no assignment entry matched: default owner"
        writer.set_owner(case_id, self.policy.owner_ids[owner.owner], owner.owner, reason)
        email_id = writer.add_message(case_id, m, contact)
        writer.set_source(case_id, email_id)
        writer.add_ledger(m, "created", "new", case_id, email_id, reason=why)
        matcher.remember(m, state)
        if m.channel == "email" and not m.auto and route.auto_acknowledge:
            self._send(state, "acknowledgement", route, m, writer, guard)
        return Outcome(m.channel, m.external_id, "created", case_id, None, "new")

    def _bounce(self, m: InboundMessage, matcher: CaseMatcher, writer: BatchWriter) -> Outcome:
        """A bounce goes on the case of the mail that bounced, and marks that mail undelivered."""
        state = matcher.match_bounce(m)
        if state is None:
            return self._suppress(m, writer, "bounce",
                                  f"bounce: {m.auto_reason or 'delivery failure'}; the bounced mail is not ours")
        for _, (email_id, case_id) in writer.outgoing(m.bounced_message_ids).items():
            if case_id == state.id:
                writer.mark_bounced(email_id)
        return self._thread(m, state, "bounce", writer, matcher,
                            note=f"bounce ({m.auto_reason or 'delivery failure'}): our mail marked undelivered")

    def _suppress(self, m: InboundMessage, writer: BatchWriter, kind: str, reason: str) -> Outcome:
        writer.add_ledger(m, "suppressed", kind, None, None, reason=reason)
        return Outcome(m.channel, m.external_id, "suppressed", None, None, kind)

    def _send(self, state: CaseState, kind: str, route: RoutingAddress, m: InboundMessage, writer: BatchWriter,
              guard: LoopGuard) -> None:
        if not self.policy.outbound.enabled or not m.sender_email:
            return
        if m.sender_email.lower() in self.policy.routing:  # never write to ourselves
            return
        if not guard.may_acknowledge(m.sender_email):
            writer.add_feed(state.id, "OutboundMail", body=f"{kind} to {m.sender_email} not sent: more than "
                            f"{self.policy.loops.acknowledgements_per_address} automatic mails to this address "
                            f"within {self.policy.loops.acknowledgement_window_minutes:g} min")
            return
        writer.queue_mail(state, kind, route, m, make_token(self.policy.thread_secret, state.id),
                          self.policy.outbound.hostname)

    async def record_dead_letter(self, m: InboundMessage, error: str, now: datetime | None = None) -> None:
        """Put a dead-lettered message on the ledger with its error, so the message trace can say where
        it went; a later successful replay replaces the row. A message already processed is left alone."""
        at = now or datetime.now(UTC)

        def record(conn: Connection) -> None:
            done, dead = lookups.processed_keys(conn, {ledger_key(m)})
            if done:
                return
            writer = BatchWriter(conn, at)
            writer.replace_ledger(dead)
            writer.add_ledger(m, lookups.DEAD_LETTERED, None, None, None, reason=error)
            writer.flush()

        await self._run(record)

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


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _numbered(o: Outcome, numbers: Mapping[str, str]) -> Outcome:
    if o.case_id is None or o.case_id not in numbers:
        return o
    return Outcome(o.channel, o.external_id, o.outcome, o.case_id, numbers[o.case_id], o.rule)

