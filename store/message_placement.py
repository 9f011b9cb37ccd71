"""Placing one message that is not an email (SMS, WhatsApp, Messenger, Instagram, Telegram, X, chat, a
web form, a call): on its conversation's open case within the channel's window; on a closed one under
the channel's policy (reopen, else a new case with ParentId); held back over the web form's daily cap;
otherwise a new case with the channel's Origin, Priority and owner."""

from __future__ import annotations

from store.batch_writer import BatchWriter
from store.case_policy import CasePolicy
from store.channel_policy import origin_of
from store.conversations import Conversations
from store.inbound import InboundMessage, Outcome
from store.lookups import CaseState, ContactRef
from store.placement import Placement


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
        why = None
        if found is not None:
            state, rule = found
            if not state.is_closed and talk.within_window(m, state):
                return self._add(m, state, rule, contact)
            if state.is_closed and self.reopens(policy.closed_case_policy, policy.reopen_within_days, state):
                self.reopen(state, m, policy.closed_case_policy)
                return self._add(m, state, rule, contact, note=f"closed-case policy {policy.closed_case_policy}: "
                                                                "reopened")
            if state.is_closed:
                parent = state
                why = f"closed-case policy {policy.closed_case_policy}: new case, ParentId {state.number}"
            else:
                why = f"conversation window of {policy.window_hours:g} h passed since case {state.number}"
        if talk.over_daily_cap(m):
            w.add_pending(m, "daily cap of web form cases reached")
            return Outcome(m.channel, m.external_id, "pending", None, None, "daily-cap")
        origin = origin_of(policy, m.channel)
        state = w.open_case(m, None, contact, parent, origin=origin, priority=policy.priority)
        self.assign(state.id, policy.owner, contact, via=f"{m.channel} channel")
        entry_id = w.add_entry(state.id, m)
        w.set_source(state.id, entry_id)
        w.add_ledger(m, "created", "new", state.id, entry_id, reason=why)
        talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "created", state.id, None, "new")

    def _add(self, m: InboundMessage, state: CaseState, rule: str, contact: ContactRef | None,
             note: str | None = None) -> Outcome:
        w = self.writer
        entry_id = w.add_entry(state.id, m)
        w.add_feed(state.id, "ThreadingRule", body=self.threaded_body(m, rule, note), related=entry_id)
        w.add_ledger(m, "threaded", rule, state.id, entry_id, reason=note)
        self.talk.opened(m, contact, state)
        return Outcome(m.channel, m.external_id, "threaded", state.id, state.number, rule)
