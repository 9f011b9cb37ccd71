"""Which case a message from a messaging channel or a call belongs to, for one batch.

A conversation (the same person on the same channel: the conversation key) stays on its case while
the case is open and the last activity is within the channel's window. A call goes on the caller's
most recently active open case, whatever channel opened it. A web form submission always opens a case,
up to the daily cap; beyond it submissions are kept pending. Cases opened earlier in the batch count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from casegate.store import lookups
from casegate.store.channel_policy import ChannelPolicy, origin_of, policy_for
from casegate.store.database import as_utc
from casegate.store.inbound import InboundMessage
from casegate.store.lookups import CaseState, ContactRef
from sqlalchemy import Connection

CALL_CHANNEL = "phone"
FORM_CHANNEL = "web"


class Conversations:
    def __init__(self, policies: Mapping[str, ChannelPolicy], by_key: dict[str, CaseState],
                 by_contact: dict[str, CaseState], forms_today: int, now: datetime):
        self.policies = policies
        self._by_key = by_key
        self._by_contact = by_contact
        self._forms_today = forms_today
        self.now = now

    @classmethod
    def load(cls, conn: Connection, messages: Sequence[InboundMessage], contacts: Sequence[ContactRef | None],
             policies: Mapping[str, ChannelPolicy], now: datetime) -> Conversations:
        keys = {m.conversation_key for m in messages if m.channel not in ("email", CALL_CHANNEL, FORM_CHANNEL)}
        callers = {c.id for m, c in zip(messages, contacts, strict=True) if m.channel == CALL_CHANNEL and c}
        forms = [m for m in messages if m.channel == FORM_CHANNEL]
        cap_origin = origin_of(policy_for(policies, FORM_CHANNEL, None), FORM_CHANNEL)
        return cls(policies,
                   lookups.latest_cases_by_conversation(conn, keys) if keys else {},
                   lookups.open_cases_by_contact(conn, callers) if callers else {},
                   lookups.cases_opened_since(conn, cap_origin, now - timedelta(days=1)) if forms else 0, now)

    def policy(self, m: InboundMessage) -> ChannelPolicy:
        return policy_for(self.policies, m.channel, m.source)

    def case_of(self, m: InboundMessage, contact: ContactRef | None) -> tuple[CaseState, str] | None:
        """The case this message continues and the rule that says so, or None."""
        if m.action == "new_case" or m.channel == FORM_CHANNEL:
            return None
        if m.channel == CALL_CHANNEL:
            state = self._by_contact.get(contact.id) if contact else None
            return (state, "caller's open case") if state else None
        state = self._by_key.get(m.conversation_key)
        return (state, "conversation") if state else None

    def within_window(self, m: InboundMessage, state: CaseState) -> bool:
        last = as_utc(state.last_activity) if state.last_activity else None
        return m.channel == CALL_CHANNEL or last is None or \
            self.now - last <= timedelta(hours=self.policy(m).window_hours)

    def over_daily_cap(self, m: InboundMessage) -> bool:
        cap = self.policy(m).daily_cap
        return m.channel == FORM_CHANNEL and cap is not None and self._forms_today >= cap

    def opened(self, m: InboundMessage, contact: ContactRef | None, state: CaseState) -> None:
        """A case was opened or continued for `m`: later messages of the batch find it."""
        state.last_activity = self.now
        if contact and not state.is_closed:
            self._by_contact[contact.id] = state
        if m.channel == FORM_CHANNEL:
            self._forms_today += 1
        elif m.channel != CALL_CHANNEL:
            self._by_key[m.conversation_key] = state
