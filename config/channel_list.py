"""The one list of channels: every envelope channel (the `channel` of a bus record) with the Case Origin
its cases get by default, and every webhook channel (a `[channels.<name>]` section) with the envelope
channels it publishes on. The envelope's `Channel` type, the case store's defaults
(`store.channel_policy`) and the table of HTTP channels (`ingest.channels.table`) are derived from here:
a new channel is a row here (its section class in `channels.py`) and its handler in that table.

`Channel` is the one place the envelope channel values are written. It is a `Literal` because the
envelope validates its `channel` (and states it in its JSON schema) by it and mypy checks every channel
value written in code against it; a type checker cannot read a Literal built at run time, so the rows
are checked against it instead (`typing.get_args`), when this module is imported: every value has
exactly one row, every section named is a field of `ChannelsSettings` and each of those has exactly one
row. A list that contradicts itself stops casegate before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

from casegate.config.channels import ChannelsSettings

Channel = Literal["email", "web", "sms", "whatsapp", "messenger", "instagram", "telegram", "x", "phone", "chat", "api"]
"""The envelope channels: what a message came as, whoever delivered it."""


class ChannelListError(ValueError):
    """The list of channels contradicts itself, the `Channel` type or the config sections."""


@dataclass(frozen=True, slots=True)
class EnvelopeChannel:
    value: Channel
    """The envelope's `channel`, as on the bus and in the ledger."""
    origin: str
    """The Case Origin of the cases it opens, unless the routing address or channel section sets one."""
    section: str | None
    """The `[channels.<section>]` whose policy applies when the message does not name the channel that
    delivered it (its `source`); None: no section (email has its routing addresses)."""


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    name: str
    """The config section `[channels.<name>]`, the envelope's `source`, the metrics label."""
    publishes: tuple[Channel, ...]
    """The envelope channels its messages come as."""


ENVELOPE_CHANNELS: tuple[EnvelopeChannel, ...] = (
    EnvelopeChannel("email", "Email", None),
    EnvelopeChannel("web", "Web", "web_form"),
    EnvelopeChannel("sms", "SMS", "twilio"),
    EnvelopeChannel("whatsapp", "WhatsApp", "meta"),
    EnvelopeChannel("messenger", "Messenger", "meta"),
    EnvelopeChannel("instagram", "Instagram", "meta"),
    EnvelopeChannel("telegram", "Telegram", "telegram"),
    EnvelopeChannel("x", "X", "x"),
    EnvelopeChannel("phone", "Phone", "cti"),
    EnvelopeChannel("chat", "Chat", "chat"),
    EnvelopeChannel("api", "Web", None),
)
"""Every value of `Channel`, once."""

WEBHOOK_CHANNELS: tuple[WebhookChannel, ...] = (
    WebhookChannel("web_form", ("web",)),
    WebhookChannel("twilio", ("sms", "whatsapp", "phone")),
    WebhookChannel("meta", ("whatsapp", "messenger", "instagram")),
    WebhookChannel("telegram", ("telegram",)),
    WebhookChannel("x", ("x",)),
    WebhookChannel("cti", ("phone",)),
    WebhookChannel("chat", ("chat",)),
)
"""Every `[channels.<name>]` section, once, in the order of `ChannelsSettings` (the order they mount in)."""


def check_channel_list(envelope: Iterable[EnvelopeChannel], webhooks: Iterable[WebhookChannel],
                       values: Iterable[str] = get_args(Channel),
                       sections: Iterable[str] = tuple(ChannelsSettings.model_fields)) -> None:
    """ChannelListError naming the first row that is unknown, missing or listed twice."""
    known, names = tuple(values), tuple(sections)
    seen: set[str] = set()
    for row in envelope:
        if row.value not in known:
            raise ChannelListError(f"envelope channel {row.value!r} is not in Channel ({', '.join(known)})")
        if row.value in seen:
            raise ChannelListError(f"envelope channel {row.value!r} is listed twice")
        if row.section is not None and row.section not in names:
            raise ChannelListError(f"envelope channel {row.value!r}: {row.section!r} is no config section")
        seen.add(row.value)
    if missing := [value for value in known if value not in seen]:
        raise ChannelListError(f"Channel values without a row: {', '.join(missing)}")
    order: list[str] = []
    for hook in webhooks:
        if hook.name not in names:
            raise ChannelListError(f"channel {hook.name!r} is no config section (known: {', '.join(names)})")
        if hook.name in order:
            raise ChannelListError(f"channel {hook.name!r} is listed twice")
        if not hook.publishes:
            raise ChannelListError(f"channel {hook.name!r} publishes on no envelope channel")
        if unknown := [value for value in hook.publishes if value not in seen]:
            raise ChannelListError(f"channel {hook.name!r}: unknown envelope channel {unknown[0]!r}")
        order.append(hook.name)
    if missing := [name for name in names if name not in order]:
        raise ChannelListError(f"config sections without a channel: {', '.join(missing)}")
    if order != list(names):
        raise ChannelListError(f"channels listed as {', '.join(order)}; ChannelsSettings has {', '.join(names)}")


check_channel_list(ENVELOPE_CHANNELS, WEBHOOK_CHANNELS)
ORIGINS: Mapping[str, str] = MappingProxyType({row.value: row.origin for row in ENVELOPE_CHANNELS})
"""Envelope channel → the Case Origin its cases get by default."""
