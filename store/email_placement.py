"""Placing one inbound email: a bounce on the case of the mail that bounced; a threaded reply on its
case (a closed one under the routing address's policy: reopen, new case with ParentId, or reject with a
notice; automatic mail never reopens); automatic mail and loops suppressed; otherwise a new case with
its acknowledgement queued, rate-limited per address."""

from __future__ import annotations

from config import RoutingAddress
from store.batch_writer import BatchWriter
from store.case_matcher import CaseMatcher
from store.case_policy import UNROUTED, CasePolicy
from store.inbound import InboundMessage, Outcome
from store.lookups import CaseState
from store.loop_guard import LoopGuard
from store.placement import Placement
from store.thread_token import make_token


class EmailPlacement(Placement):
    def __init__(self, policy: CasePolicy, writer: BatchWriter, matcher: CaseMatcher, guard: LoopGuard):
        super().__init__(policy, writer)
        self.matcher = matcher
        self.guard = guard

    def place(self, m: InboundMessage) -> Outcome:
        route = self.policy.routing_for(m.recipients) or UNROUTED
        flooding = self.guard.flooding(m)
        if m.auto == "bounce":
            return self._bounce(m)
        found = self.matcher.match(m)
        if found is not None:
            state, rule = found
            if not state.is_closed:
                return self._thread(m, state, rule)
            if m.auto:  # an auto-reply to a closed case is kept on it but never reopens it
                return self._thread(m, state, rule, note=f"automatic mail ({m.auto}) on a closed case: not reopened")
            return self._closed(m, state, rule, route)
        if m.auto and not route.automatic_opens_case:
            return self.suppress(m, m.auto, f"{m.auto}: {m.auto_reason or 'automatic mail'}")
        if flooding:
            loops = self.policy.loops
            return self.suppress(m, "loop", f"more than {loops.max_per_sender_subject} mails from this sender "
                                 f"with this subject within {loops.window_seconds:g} s")
        return self._open(m, route)

    def _thread(self, m: InboundMessage, state: CaseState, rule: str, note: str | None = None) -> Outcome:
        w = self.writer
        email_id = w.add_message(state.id, m, w.contact_for(m))
        w.add_feed(state.id, "ThreadingRule", body=self.threaded_body(m, rule, note), related=email_id)
        w.add_ledger(m, "threaded", rule, state.id, email_id, reason=note)
        self.matcher.remember(m, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)

    def _closed(self, m: InboundMessage, state: CaseState, rule: str, route: RoutingAddress) -> Outcome:
        """A person wrote to a closed case: the routing address's closed-case policy decides."""
        policy = route.closed_case_policy
        if policy == "reject":
            outcome = self._thread(m, state, rule, note="closed-case policy reject: not reopened, sender notified")
            self._send(state, "notice", route, m)
            return outcome
        if self.reopens(policy, route.reopen_within_days, state):
            self.reopen(state, m, policy)
            return self._thread(m, state, rule, note=f"closed-case policy {policy}: reopened")
        return self._open(m, route, parent=state, why=f"closed-case policy {policy}: new case, ParentId {state.number}")

    def _open(self, m: InboundMessage, route: RoutingAddress, parent: CaseState | None = None,
              why: str | None = None) -> Outcome:
        w = self.writer
        contact = w.contact_for(m)
        routed = route is not UNROUTED
        state = w.open_case(m, route if routed else None, contact, parent)
        self.assign(state.id, route.owner if routed else None, contact, via=f"routing address {route.address}")
        email_id = w.add_message(state.id, m, contact)
        w.set_source(state.id, email_id)
        w.add_ledger(m, "created", "new", state.id, email_id, reason=why)
        self.matcher.remember(m, state)
        if not m.auto and route.auto_acknowledge:
            self._send(state, "acknowledgement", route, m)
        return Outcome(m.channel, m.external_id, "created", state.id, None, "new")

    def _bounce(self, m: InboundMessage) -> Outcome:
        """A bounce goes on the case of the mail that bounced, and marks that mail undelivered."""
        found = self.matcher.match_bounce(m)
        if found is None:
            return self.suppress(m, "bounce", f"bounce: {m.auto_reason or 'delivery failure'}; "
                                 "the bounced mail is not ours")
        state, undelivered = found
        for email_id in undelivered:
            self.writer.mark_bounced(email_id)
        return self._thread(m, state, "bounce",
                            note=f"bounce ({m.auto_reason or 'delivery failure'}): our mail marked undelivered")

    def _send(self, state: CaseState, kind: str, route: RoutingAddress, m: InboundMessage) -> None:
        """Queue an acknowledgement or notice to the sender, unless there is no relay, the sender is one
        of our own addresses, or the address had its share of automatic mail."""
        if not self.policy.outbound.enabled or not m.sender_email:
            return
        if m.sender_email.lower() in self.policy.routing:  # never write to ourselves
            return
        loops = self.policy.loops
        if not self.guard.may_acknowledge(m.sender_email):
            self.writer.add_feed(state.id, "OutboundMail", body=f"{kind} to {m.sender_email} not sent: more than "
                                 f"{loops.acknowledgements_per_address} automatic mails to this address within "
                                 f"{loops.acknowledgement_window_minutes:g} min")
            return
        self.writer.queue_mail(state, kind, route, m, make_token(self.policy.thread_secret, state.id),
                               self.policy.outbound.hostname)
