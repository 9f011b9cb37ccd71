"""What an agent's reply is, for a sender: the values of the new ConversationEntry and of the
conversation it answers, plain and frozen (no store objects cross into the senders)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Template:
    """A message template the provider approved: the only thing WhatsApp lets a business send outside
    the 24-hour window. Meta: `name` and `language` as approved in WhatsApp Manager, `parameters` fill the
    body's {{1}}, {{2}} ... Twilio: `name` is the Content SID (HX...), `parameters` its variables 1, 2 ..."""

    name: str
    language: str = "en_US"
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    entry_id: str
    """Our ConversationEntry id: the idempotency key on our side (and the chat callback's message id)."""
    channel: str
    """The conversation's channel (envelope Channel): sms, whatsapp, messenger, instagram, telegram, x, chat."""
    provider: str
    """Who delivered the customer's messages (the entries' `source`): twilio, meta, telegram, x, chat."""
    to: str
    """The customer on that channel: E.164 number (SMS, WhatsApp), PSID/IGSID (Messenger, Instagram),
    chat id (Telegram), user id (X), visitor id (chat)."""
    text: str | None = None
    template: Template | None = None
    """Sent instead of `text` where the provider has templates (WhatsApp)."""
    last_inbound_at: datetime | None = None
    """When the customer's last message on this conversation arrived: opens the messaging window."""
    from_id: str | None = None
    """Ours, when not the sender's configured default: the number (Twilio) or phone number id (WhatsApp
    Cloud) the customer wrote to."""
    thread: str | None = None
    """The conversation within the channel, where the provider has one: Telegram's message_thread_id
    (forum topic), the chat widget's conversation_id."""
    case_id: str | None = None
