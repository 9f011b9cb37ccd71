"""The one table of HTTP channels: each channel's name, the envelope channels it publishes on with the
Case Origin each opens by default, and the module that mounts it.

`name` is the channel's config section (`[channels.<name>]`), the envelope's `source` and the label of
its metrics. The table is checked when this module is imported: a name that is no config section, a
config section without a channel, an envelope channel the envelope does not know, a name or module
listed twice, or one envelope channel given two default Origins stops the daemon before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import get_args

from casegate.config import Settings
from casegate.config.channels import ChannelBase, ChannelsSettings
from casegate.ingest.channels import (
    chat_webhook,
    cti_events,
    meta_messaging,
    telegram_bot,
    twilio_messaging,
    web_form,
    x_activity,
)
from casegate.ingest.channels.base import HttpChannel
from casegate.ingest.envelope import Channel

ENVELOPE_CHANNELS: frozenset[str] = frozenset(get_args(Channel))
SECTIONS: tuple[str, ...] = tuple(ChannelsSettings.model_fields)


class ChannelTableError(ValueError):
    """The table of channels contradicts itself, the config sections or the envelope."""


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    """The config section `[channels.<name>]`, the envelope's `source`, the metrics label."""
    origins: Mapping[Channel, str]
    """Envelope channel → the Case Origin its cases get unless the section sets `origin`."""
    module: HttpChannel

    def section(self, settings: Settings) -> ChannelBase:
        found = getattr(settings.channels, self.name)
        assert isinstance(found, ChannelBase), self.name
        return found


def channel_table(specs: Iterable[ChannelSpec], sections: Iterable[str] = SECTIONS) -> dict[str, ChannelSpec]:
    """Name → spec, in the given order; ChannelTableError naming what is unknown, missing or listed twice."""
    table: dict[str, ChannelSpec] = {}
    modules: dict[int, str] = {}
    origins: dict[str, tuple[str, str]] = {}
    known = tuple(sections)
    for spec in specs:
        if spec.name in table:
            raise ChannelTableError(f"channel {spec.name!r} is listed twice")
        if spec.name not in known:
            raise ChannelTableError(f"channel {spec.name!r} is no config section (known: {', '.join(known)})")
        if id(spec.module) in modules:
            raise ChannelTableError(f"channels {modules[id(spec.module)]!r} and {spec.name!r} name the same module")
        if not isinstance(spec.module, HttpChannel):
            raise ChannelTableError(f"channel {spec.name!r}: its module has no mount(app, ctx)")
        if not spec.origins:
            raise ChannelTableError(f"channel {spec.name!r} publishes on no envelope channel")
        for channel, origin in spec.origins.items():
            if channel not in ENVELOPE_CHANNELS:
                raise ChannelTableError(f"channel {spec.name!r}: unknown envelope channel {channel!r}")
            other = origins.setdefault(channel, (spec.name, origin))
            if other[1] != origin:
                raise ChannelTableError(f"envelope channel {channel!r} has two default Origins: {other[1]!r} "
                                        f"({other[0]}) and {origin!r} ({spec.name})")
        table[spec.name] = spec
        modules[id(spec.module)] = spec.name
    if missing := [name for name in known if name not in table]:
        raise ChannelTableError(f"config sections without a channel: {', '.join(missing)}")
    return table


CHANNELS = channel_table([
    ChannelSpec("web_form", {"web": "Web"}, web_form),
    ChannelSpec("twilio", {"sms": "SMS", "whatsapp": "WhatsApp", "phone": "Phone"}, twilio_messaging),
    ChannelSpec("meta", {"whatsapp": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"},
                meta_messaging),
    ChannelSpec("telegram", {"telegram": "Telegram"}, telegram_bot),
    ChannelSpec("x", {"x": "X"}, x_activity),
    ChannelSpec("cti", {"phone": "Phone"}, cti_events),
    ChannelSpec("chat", {"chat": "Chat"}, chat_webhook),
])
"""Every HTTP channel, in the order they are mounted."""
