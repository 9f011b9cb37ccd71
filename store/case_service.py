"""The case service: the one place that opens cases, threads messages onto them, appends
EmailMessages, changes status and writes the case feed. The worker and the REST API both use it.

`record_messages` takes a whole batch in ONE transaction: the reads for the batch are done once
(`store.lookups`), the decisions are made in memory in message order (so a reply later in the same
batch finds the case an earlier message opened), and the writes go out as a few multi-row inserts.
The ledger row of each message is written in the same transaction, so redelivery is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from config import LoopSettings, OutboundSettings, RoutingAddress, RulesSettings
from rules.assignment import CaseFacts, assign
from rules.lifecycle import change_status
from store import lookups
from store.batch_writer import BatchWriter, ledger_key
from store.case_matcher import CaseMatcher
from store.channel_policy import ChannelPolicy, origin_of, policy_for
from store.conversations import Conversations
from store.database import Database
from store.errors import CaseNotFound, PermanentStoreError, TemporaryStoreError
from store.inbound import InboundMessage, Outcome, from_json
from store.lookups import CaseState, ContactRef
from store.loop_guard import LoopGuard
from store.models import Case, PendingMessage
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
    channels: Mapping[str, ChannelPolicy] = field(default_factory=dict)
    """Configured channel section (`twilio`, `meta`, `web_form` ...) → how its messages become cases."""

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

    def _record(self, conn: Connection, messages: Sequence[InboundMessage], now: datetime,
                releasing: Collection[tuple[str, str]] = ()) -> list[Outcome]:
        writer = BatchWriter(conn, now)
        emails = [m for m in messages if m.channel == "email"]
        matcher = CaseMatcher.load(conn, emails, self.policy.thread_secret)
        done, dead = lookups.processed_keys(conn, {ledger_key(m) for m in messages})
        done -= set(releasing)  # pending messages being released: their ledger row is replaced
        writer.replace_ledger(dead | set(releasing))
        fresh = [m for m in messages if ledger_key(m) not in done]
        guard = LoopGuard.load(conn, fresh, self.policy.loops, now)
        writer.resolve_contacts(fresh)
        others = [m for m in fresh if m.channel != "email"]
        talk = Conversations.load(conn, others, [writer.contact_for(m) for m in others], self.policy.channels, now)
        outcomes = []
        for m in messages:
            key = ledger_key(m)
            if key in done:
                outcomes.append(Outcome(m.channel, m.external_id, "duplicate", None, None, None))
                continue
            done.add(key)
            if m.channel == "email":
                outcomes.append(self._place(m, matcher, writer, guard))
            else:
                outcomes.append(self._place_message(m, talk, writer))
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

    def _place_message(self, m: InboundMessage, talk: Conversations, writer: BatchWriter) -> Outcome:
        """A message that is not an email: continue its conversation's case, or open one."""
        if m.action == "ignore":
            return self._suppress(m, writer, "ignored", m.details.get("reason") or "the channel's rules ignore it")
        contact = writer.contact_for(m)
        policy = talk.policy(m)
        found = talk.case_of(m, contact)
        parent = None
        why = None
        if found is not None:
            state, rule = found
            closed_at = _aware(state.closed_date) if state.closed_date else None
            if not state.is_closed and talk.within_window(m, state):
                return self._add_entry(m, state, rule, writer, talk, contact)
            if state.is_closed and (policy.closed_case_policy == "reopen" or (
                    policy.closed_case_policy == "reopen_within_days" and closed_at is not None
                    and writer.now - closed_at <= timedelta(days=policy.reopen_within_days))):
                change = change_status(self.policy.rules.reopen_status, state.closed_date, writer.now)
                writer.change_status(state, change, reason=f"customer wrote again ({m.channel}); "
                                                           f"policy {policy.closed_case_policy}")
                return self._add_entry(m, state, rule, writer, talk, contact,
                                       note=f"closed-case policy {policy.closed_case_policy}: reopened")
            if state.is_closed:
                parent = state
                why = f"closed-case policy {policy.closed_case_policy}: new case, ParentId {state.number}"
            else:
                why = f"conversation window of {policy.window_hours:g} h passed since case {state.number}"
        if talk.over_daily_cap(m):
            writer.add_pending(m, "daily cap of web form cases reached")
            return Outcome(m.channel, m.external_id, "pending", None, None, "daily-cap")
        state = writer.open_case(m, None, contact, parent, origin=origin_of(policy, m.channel),
                                 priority=policy.priority)
        self._assign(state.id, m, policy.owner, origin_of(policy, m.channel), policy.priority, contact, writer)
        entry_id = writer.add_entry(state.id, m)
        writer.set_source(state.id, entry_id)
        writer.add_ledger(m, "created", "new", state.id, entry_id, reason=why)
        talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "created", state.id, None, "new")

    def _add_entry(self, m: InboundMessage, state: CaseState, rule: str, writer: BatchWriter, talk: Conversations,
                   contact: ContactRef | None, note: str | None = None) -> Outcome:
        entry_id = writer.add_entry(state.id, m)
        body = f"{m.channel} message threaded by {rule}" + (f"; {note}" if note else "")
        writer.add_feed(state.id, "ThreadingRule", body=body, related=entry_id)
        writer.add_ledger(m, "threaded", rule, state.id, entry_id, reason=note)
        talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)

    def _assign(self, case_id: str, m: InboundMessage, route_owner: str | None, origin: str | None,
                priority: str | None, contact: ContactRef | None, writer: BatchWriter, via: str | None = None) -> None:
        owner = assign(self.policy.rules.assignment, route_owner or self.policy.rules.default_owner,
                       CaseFacts(origin=origin, recipient=next(iter(m.recipients), None), subject=m.subject,
                                 description=m.text, priority=priority,
                                 account=contact.account_name if contact else None))
        if owner.entry:
            reason = f"assignment rule entry '{owner.entry}' matched"
        elif route_owner:
            reason = f"no assignment entry matched: owner of {via or m.channel + ' channel'}"
        else:
            reason = "no assignment entry matched: default owner"
        writer.set_owner(case_id, self.policy.owner_ids[owner.owner], owner.owner, reason)

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
        self._assign(case_id, m, route.owner if routed and route.owner else None, route.origin if routed else None,
                     route.priority if routed else None, contact, writer, via=f"routing address {route.address}")
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

