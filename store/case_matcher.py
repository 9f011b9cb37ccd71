"""Threading an inbound message onto an existing case, first hit wins:
(a) our signed thread token; (b) In-Reply-To, then References (JWZ-style: any id a case's messages
carried, ghost parents and our own outbound Message-IDs included); (c) the Outlook Thread-Index
conversation id, only from the sender the case was opened for; no hit means a new case.

A bounce is placed by the Message-ID of the mail that bounced (our outbound mail), nothing else."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from casegate.store import lookups
from casegate.store.inbound import InboundMessage
from casegate.store.lookups import CaseState
from casegate.store.thread_token import find_case_id
from sqlalchemy import Connection


def conversation_index(thread_index: str | None) -> str | None:
    """The conversation id in an Outlook Thread-Index header: its first 22 bytes (a FILETIME and a
    GUID); replies append 5-byte blocks. None when the header is absent or malformed."""
    if not thread_index:
        return None
    try:
        raw = base64.b64decode(thread_index.strip() + "==", validate=False)
    except (binascii.Error, ValueError):
        return None
    return "thread-index:" + base64.b64encode(raw[:22]).decode() if len(raw) >= 22 else None


def thread_keys(m: InboundMessage) -> list[str]:
    """Every key a message ties itself to: its own Message-ID, the ones it answers or references,
    and its Thread-Index conversation."""
    keys = [m.message_id] if m.message_id else []
    conversation = conversation_index(m.thread_index)
    return keys + list(m.in_reply_to) + list(m.references) + ([conversation] if conversation else [])


class CaseMatcher:
    """Finds the case of each message of a batch, knowing the cases earlier messages were put on."""

    def __init__(self, refs: dict[str, str], states: dict[str, CaseState], tokens: dict[int, str],
                 ours: dict[str, tuple[str, str]] | None = None):
        self._refs = refs
        self._states = states
        self._tokens = tokens
        self._ours = ours or {}

    @classmethod
    def load(cls, s: Connection, messages: Sequence[InboundMessage], secret: bytes) -> CaseMatcher:
        tokens = {}
        for i, m in enumerate(messages):
            case_id = find_case_id(secret, m.subject, m.text, m.html)
            if case_id:
                tokens[i] = case_id
        keys = {k for m in messages for k in [*m.in_reply_to, *m.references, *m.bounced_message_ids]}
        keys |= {c for m in messages if (c := conversation_index(m.thread_index))}
        refs = lookups.cases_by_reference(s, keys) if keys else {}
        wanted = set(refs.values()) | set(tokens.values())
        states = lookups.case_states(s, wanted) if wanted else {}
        bounced = {k for m in messages for k in m.bounced_message_ids}
        ours = lookups.outgoing_emails(s, bounced) if bounced else {}
        return cls(refs, states, {id(messages[i]): c for i, c in tokens.items()}, ours)

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
        conversation = conversation_index(m.thread_index)
        if conversation in self._refs:
            state = self._states[self._refs[conversation]]
            if state.conversation_key and state.conversation_key == m.conversation_key:
                return state, "thread-index"
        return None

    def match_bounce(self, m: InboundMessage) -> tuple[CaseState, list[str]] | None:
        """The case of the mail this bounce reports, found by that mail's Message-ID only, and the Ids of
        our outgoing EmailMessages on that case that bounced."""
        for key in m.bounced_message_ids:
            if key in self._refs:
                state = self._states[self._refs[key]]
                ours = [self._ours[mid] for mid in m.bounced_message_ids if mid in self._ours]
                return state, [email_id for email_id, case_id in ours if case_id == state.id]
        return None

    def remember(self, m: InboundMessage, state: CaseState) -> None:
        """Later messages of the batch that reference this one (or what it referenced) find its case."""
        self._states[state.id] = state
        for key in thread_keys(m):
            self._refs.setdefault(key, state.id)
