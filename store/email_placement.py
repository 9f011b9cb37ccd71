"""Placing one inbound email: a bounce on the case of the mail that bounced; a threaded reply on its
case (a closed one as `rules.closed_case` decides: reopen, new case with ParentId, or keep it there,
with a notice under `reject`); otherwise a new case unless `rules.opening` holds it back (automatic
mail, a flood) as suppressed; the acknowledgement of a new case as `rules.acknowledgement` decides.

Each decision is recorded with its rule and reason: on the message trace (the ledger's Reason), and on
the case feed entry that applies it (the rule's name in `CaseFeed.Rule`)."""

from __future__ import annotations

from casegate.config import RoutingAddress
from casegate.rules import acknowledgement, closed_case, opening
from casegate.rules.decision import Decision, Verdict, run
from casegate.store.batch_writer import BatchWriter
from casegate.store.case_matcher import CaseMatcher
from casegate.store.case_policy import UNROUTED, CasePolicy
from casegate.store.inbound import InboundMessage, Outcome
from casegate.store.lookups import CaseState
from casegate.store.loop_guard import LoopGuard
from casegate.store.placement import Placement
from casegate.store.thread_token import make_token


class EmailPlacement(Placement):
    def __init__(self, policy: CasePolicy, writer: BatchWriter, matcher: CaseMatcher, guard: LoopGuard):
        super().__init__(policy, writer)
        self.matcher = matcher
        self.guard = guard

    def place(self, m: InboundMessage) -> Outcome:
        route = self.policy.routing_for(m.recipients) or UNROUTED
        flood = self.guard.arrived(m)  # every mail counts toward its sender's flood, whatever becomes of it
        if m.auto == "bounce":
            return self._bounce(m)
        found = self.matcher.match(m)
        if found is not None:
            state, rule = found
            return self._closed(m, state, rule, route) if state.is_closed else self._thread(m, state, rule)
        verdict = run(opening.CHAIN, opening.NewMail(automatic=m.auto, automatic_reason=m.auto_reason,
                                                     automatic_opens_case=route.automatic_opens_case, flood=flood),
                      self.writer.now)
        if verdict.action == opening.SUPPRESS:
            return self._suppressed(m, verdict)
        return self._open(m, route)

    def _suppressed(self, m: InboundMessage, verdict: Verdict) -> Outcome:
        """A mail `rules.opening` kept from opening a case, on the trace under its one-word kind."""
        d = verdict.decision
        if d.rule == "loops.flood":
            return self.suppress(m, "loop", str(verdict))
        # automatic mail: the trace keeps its words, `auto-reply: <what showed it>`
        return self.suppress(m, m.auto or "automatic", d.reason)

    def _thread(self, m: InboundMessage, state: CaseState, rule: str, note: str | None = None,
                trace: str | None = None, decided_by: str | None = None) -> Outcome:
        """`m` on the case: `note` goes on the feed entry and (unless `trace` says more) on the trace;
        `decided_by`, the rule whose decision put it there (a closed case's), on the feed entry."""
        w = self.writer
        email_id = w.add_message(state.id, m, w.contact_for(m))
        w.add_feed(state.id, "ThreadingRule", body=self.threaded_body(m, rule, note), related=email_id,
                   rule=decided_by)
        w.add_ledger(m, "threaded", rule, state.id, email_id, reason=trace or note)
        self.matcher.remember(m, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)

    def _closed(self, m: InboundMessage, state: CaseState, rule: str, route: RoutingAddress) -> Outcome:
        """Mail to a closed case: the routing address's closed-case policy decides (`rules.closed_case`)."""
        policy = route.closed_case_policy
        verdict = self.judge_closed(m, state, policy, route.reopen_within_days)
        d = verdict.decision
        if verdict.action == closed_case.KEEP:
            note = f"automatic mail ({m.auto}) on a closed case: not reopened"
            return self._thread(m, state, rule, note=f"{note}; {d}", trace=f"{note}; {verdict}", decided_by=d.rule)
        if verdict.action == closed_case.REJECT:
            note = "closed-case policy reject: not reopened, sender notified"
            outcome = self._thread(m, state, rule, note=f"{note}; {d}", trace=f"{note}; {verdict}",
                                   decided_by=d.rule)
            self._send(state, acknowledgement.NOTICE, route, m)
            return outcome
        if verdict.action == closed_case.REOPEN:
            self.reopen(state, m, policy, d.rule)
            # the reopening's two feed entries keep their words (the policy is named) and record the rule;
            # the trace has the reason
            note = f"closed-case policy {policy}: reopened"
            return self._thread(m, state, rule, note=note, trace=f"{note}; {verdict}", decided_by=d.rule)
        note = f"closed-case policy {policy}: new case, ParentId {state.number}"
        return self._open(m, route, parent=state, decision=d, trace=f"{note}; {verdict}")

    def _open(self, m: InboundMessage, route: RoutingAddress, parent: CaseState | None = None,
              decision: Decision | None = None, trace: str | None = None) -> Outcome:
        """A new case for `m` (with `parent`, the follow-up of that closed case): `decision` ends its
        CaseCreated feed entry (which records its rule), and goes (unless `trace` says more) on the trace."""
        w = self.writer
        contact = w.contact_for(m)
        routed = route is not UNROUTED
        note = str(decision) if decision else None
        state = w.open_case(m, route if routed else None, contact, parent, why=decision)
        self.assign(state.id, route.owner if routed else None, contact, via=f"routing address {route.address}")
        email_id = w.add_message(state.id, m, contact)
        w.set_source(state.id, email_id)
        w.add_ledger(m, "created", "new", state.id, email_id, reason=trace or note)
        self.matcher.remember(m, state)
        self._send(state, acknowledgement.ACKNOWLEDGEMENT, route, m)
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
        """Queue an acknowledgement or notice to the sender as `rules.acknowledgement` decides; one held
        back by the per-address limit is said on the feed."""
        to = m.sender_email
        facts = acknowledgement.Acknowledgement(
            kind=kind, to=to, automatic=m.auto, routing_address_acknowledges=route.auto_acknowledge,
            relay=self.policy.outbound.enabled, own_address=(to or "").lower() in self.policy.routing,
            recent=self.guard.acknowledgements(to))
        verdict = run(acknowledgement.CHAIN, facts, self.writer.now)
        if verdict.action == acknowledgement.WITHHOLD:
            self.writer.add_feed(state.id, "OutboundMail", body=f"{kind} to {to} not sent: {verdict.decision}",
                                 rule=verdict.decision.rule)
        elif verdict.action == acknowledgement.SEND and to:
            self.guard.acknowledged(to)
            self.writer.queue_mail(state, kind, route, m, make_token(self.policy.thread_secret, state.id),
                                   self.policy.outbound.hostname, why=verdict.decision)
