"""Placing one message that is not an email (SMS, WhatsApp, Messenger, Instagram, Telegram, X, chat, a
web form, a call): on its conversation's open case within the channel's window; on a closed one under
the channel's closed-case policy (`rules.closed_case`: reopen, else a new case with ParentId); held back
over the web form's daily cap; otherwise a new case with the channel's Origin, Priority and owner."""

from __future__ import annotations

from casegate.rules import closed_case
from casegate.rules.decision import Decision
from casegate.store.batch_writer import BatchWriter
from casegate.store.case_policy import CasePolicy
from casegate.store.channel_policy import origin_of
from casegate.store.conversations import Conversations
from casegate.store.inbound import InboundMessage, Outcome
from casegate.store.lookups import CaseState, ContactRef
from casegate.store.placement import Placement


class MessagePlacement(Placement):
    def __init__(self, policy: CasePolicy, writer: BatchWriter, talk: Conversations):
        super().__init__(policy, writer)
        self.talk = talk

    def place(self, m: InboundMessage) -> Outcome:
        if m.action == "ignore":
            return self.suppress(m, "ignored", m.details.get("reason") or "the channel's rules ignore it")
        w, talk = self.writer, self.talk
        contact = w.contact_for(m)
        policy = talk.policy(m)
        found = talk.case_of(m, contact)
        parent = None
        why: str | None = None  # the trace's reason
        decided: Decision | None = None  # the decision ending the new case's CaseCreated feed entry
        if found is not None:
            state, rule = found
            if not state.is_closed and talk.within_window(m, state):
                return self._add(m, state, rule, contact)
            if state.is_closed:
                closed = policy.closed_case_policy
                verdict = self.judge_closed(m, state, closed, policy.reopen_within_days)
                if verdict.action == closed_case.REOPEN:
                    self.reopen(state, m, closed, verdict.decision.rule)
                    reopened = f"closed-case policy {closed}: reopened"  # as email's: the trace has the reason
                    return self._add(m, state, rule, contact, note=reopened, trace=f"{reopened}; {verdict}",
                                     decided_by=verdict.decision.rule)
                # anything else opens a follow-up (channels have no `reject`, and no automatic mail)
                parent = state
                why = f"closed-case policy {closed}: new case, ParentId {state.number}; {verdict}"
                decided = verdict.decision
            else:
                why = f"conversation window of {policy.window_hours:g} h passed since case {state.number}"
        if talk.over_daily_cap(m):
            w.add_pending(m, "daily cap of web form cases reached")
            return Outcome(m.channel, m.external_id, "pending", None, None, "daily-cap")
        origin = origin_of(policy, m.channel)
        state = w.open_case(m, None, contact, parent, origin=origin, priority=policy.priority, why=decided)
        self.assign(state.id, policy.owner, contact, via=f"{m.channel} channel")
        entry_id = w.add_entry(state.id, m)
        w.set_source(state.id, entry_id)
        w.add_ledger(m, "created", "new", state.id, entry_id, reason=why)
        talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "created", state.id, None, "new")

    def _add(self, m: InboundMessage, state: CaseState, rule: str, contact: ContactRef | None,
             note: str | None = None, trace: str | None = None, decided_by: str | None = None) -> Outcome:
        """`m` on the case: `note` goes on the feed entry and (unless `trace` says more) on the trace;
        `decided_by`, the rule whose decision put it there (a closed case's), on the feed entry."""
        w = self.writer
        entry_id = w.add_entry(state.id, m)
        w.add_feed(state.id, "ThreadingRule", body=self.threaded_body(m, rule, note), related=entry_id,
                   rule=decided_by)
        w.add_ledger(m, "threaded", rule, state.id, entry_id, reason=trace or note)
        self.talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)
