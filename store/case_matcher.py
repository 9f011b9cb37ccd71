"""Threading an inbound message onto an existing case, first hit wins:
our signed thread token, then In-Reply-To, then References (JWZ-style: any id a case's messages
carried, ghost parents included); no hit means a new case."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from store import lookups
from store.inbound import InboundMessage
from store.lookups import CaseState
from store.thread_token import find_case_id


def thread_keys(m: InboundMessage) -> list[str]:
    """Every Message-ID a message ties itself to: its own and the ones it answers or references."""
    keys = [m.message_id] if m.message_id else []
    return keys + list(m.in_reply_to) + list(m.references)


class CaseMatcher:
    """Finds the case of each message of a batch, knowing the cases earlier messages were put on."""

    def __init__(self, secret: bytes, refs: dict[str, str], states: dict[str, CaseState],
                 tokens: dict[int, str]):
        self._secret = secret
        self._refs = refs
        self._states = states
        self._tokens = tokens

    @classmethod
    def load(cls, s: Connection, messages: Sequence[InboundMessage], secret: bytes) -> CaseMatcher:
        tokens = {}
        for i, m in enumerate(messages):
            case_id = find_case_id(secret, m.subject, m.text, m.html)
            if case_id:
                tokens[i] = case_id
        keys = {k for m in messages for k in [*m.in_reply_to, *m.references]}
        refs = lookups.cases_by_reference(s, keys) if keys else {}
        wanted = set(refs.values()) | set(tokens.values())
        states = lookups.case_states(s, wanted) if wanted else {}
        return cls(secret, refs, states, {id(messages[i]): c for i, c in tokens.items()})

    def match(self, m: InboundMessage) -> tuple[CaseState, str] | None:
        """The case this message belongs to and the rule that said so, or None for a new case."""
        token_case = self._tokens.get(id(m))
        if token_case and token_case in self._states:
            return self._states[token_case], "token"
        for key in m.in_reply_to:
            if key in self._refs:
                return self._states[self._refs[key]], "in-reply-to"
        for key in reversed(m.references):
            if key in self._refs:
                return self._states[self._refs[key]], "references"
        return None

    def remember(self, m: InboundMessage, state: CaseState) -> None:
        """Later messages of the batch that reference this one (or what it referenced) find its case."""
        self._states[state.id] = state
        for key in thread_keys(m):
            self._refs.setdefault(key, state.id)
