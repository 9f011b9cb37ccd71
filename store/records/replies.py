"""Agents' replies made through the record layer (`store.agent_replies` writes them): an outgoing EmailMessage
(Incoming false) is a reply sent through the outbox — from a routing address, with the case's thread token,
In-Reply-To and References — whose Status follows its delivery (Q queued, 3 sent, F failed); a
ConversationEntry is a messaging reply queued for the case's channel and provider, checked first against
what the provider would refuse (`RecordPolicy.conversation_check`). A reply the store refuses is a
RecordError with the refusal's status, errorCode, message and fields."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from casegate.store.agent_replies import ReplyRefusedError, queue_conversation_reply, queue_email_reply
from casegate.store.records.call import Call
from casegate.store.records.errors import RecordError

OUTGOING_EMAIL_FIELDS = frozenset({"ParentId", "Incoming", "FromAddress", "ToAddress", "CcAddress", "BccAddress",
                                   "Subject", "TextBody", "HtmlBody"})
"""What a client gives of an email casegate sends; it writes the rest (Status, Message-ID, headers ...)."""


@contextmanager
def reply_refusals() -> Iterator[None]:
    try:
        yield
    except ReplyRefusedError as e:
        raise RecordError(e.status, e.code, e.message, e.fields) from None


def send_email(call: Call, case_id: str, values: Mapping[str, object]) -> str:
    """Queue the outgoing email `values` on the case (whose access the caller checked); the EmailMessage's Id."""
    if extra := [name for name in values if name not in OUTGOING_EMAIL_FIELDS]:
        raise RecordError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to create fields: {', '.join(extra)}. casegate sends an outgoing email and writes "
                          "these itself (its Status follows delivery); to record a mail received, set Incoming true",
                          extra)
    policy = call.policy.replies
    if policy is None:
        raise RecordError(400, "FIELD_INTEGRITY_EXCEPTION", "casegate cannot send this email: the record layer was "
                                                            "given no reply settings ([outbound], the thread-token "
                                                            "key); to record a mail received, set Incoming true",
                          ["Incoming"])
    with reply_refusals():
        return queue_email_reply(
            call.conn, policy, case_id, to=_text(values.get("ToAddress")), cc=_text(values.get("CcAddress")),
            bcc=_text(values.get("BccAddress")), subject=_text(values.get("Subject")),
            text_body=_text(values.get("TextBody")), html_body=_text(values.get("HtmlBody")),
            from_address=_text(values.get("FromAddress")), actor_id=call.actor.user_id, now=call.now)


def send_message(call: Call, case_id: str, text: object) -> str:
    """Queue `text` to the customer of the case (whose access the caller checked) on the channel of their last
    message; the ConversationEntry's Id."""
    with reply_refusals():
        return queue_conversation_reply(call.conn, case_id, text=_text(text), actor_id=call.actor.user_id,
                                        now=call.now, check=call.policy.conversation_check)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
