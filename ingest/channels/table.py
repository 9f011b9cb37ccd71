"""The table of HTTP channels: the module that mounts each channel of the one list of channels
(`config.channel_list.WEBHOOK_CHANNELS`), which says its name (config section, envelope `source`, metrics
label) and the envelope channels it publishes on, each with its default Case Origin.

The table is checked when this module is imported: a handler for a name the list does not have, a name
or module listed twice, a module without `mount(app, ctx)`, or a channel of the list without a handler
stops the daemon before it starts. (The list itself is checked against the config sections and the
envelope's `Channel` when it is imported.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from casegate.config import Settings
from casegate.config.channel_list import ORIGINS, WEBHOOK_CHANNELS, Channel, WebhookChannel
from casegate.config.channels import ChannelBase
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


class ChannelTableError(ValueError):
    """The table of channels contradicts itself or the list of channels."""


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    """The config section `[channels.<name>]`, the envelope's `source`, the metrics label."""
    origins: Mapping[Channel, str]
    """Envelope channel → the Case Origin its cases get unless the section sets `origin` (from the list)."""
    module: HttpChannel

    def section(self, settings: Settings) -> ChannelBase:
        found = getattr(settings.channels, self.name)
        assert isinstance(found, ChannelBase), self.name
        return found


def channel_table(handlers: Iterable[tuple[str, HttpChannel]],
                  channels: Iterable[WebhookChannel] = WEBHOOK_CHANNELS) -> dict[str, ChannelSpec]:
    """Name → spec, in the order of `channels`; ChannelTableError naming what is unknown, missing or
    listed twice."""
    listed = {c.name: c for c in channels}
    modules: dict[str, HttpChannel] = {}
    owners: dict[int, str] = {}
    for name, module in handlers:
        if name in modules:
            raise ChannelTableError(f"channel {name!r} is listed twice")
        if name not in listed:
            raise ChannelTableError(f"channel {name!r} is not in the list of channels (known: {', '.join(listed)})")
        if id(module) in owners:
            raise ChannelTableError(f"channels {owners[id(module)]!r} and {name!r} name the same module")
        if not isinstance(module, HttpChannel):
            raise ChannelTableError(f"channel {name!r}: its module has no mount(app, ctx)")
        modules[name] = module
        owners[id(module)] = name
    if missing := [name for name in listed if name not in modules]:
        raise ChannelTableError(f"channels without a handler: {', '.join(missing)}")
    return {name: ChannelSpec(name, MappingProxyType({c: ORIGINS[c] for c in row.publishes}), modules[name])
            for name, row in listed.items()}


CHANNELS = channel_table([
    ("web_form", web_form),
    ("twilio", twilio_messaging),
    ("meta", meta_messaging),
    ("telegram", telegram_bot),
    ("x", x_activity),
    ("cti", cti_events),
    ("chat", chat_webhook),
])
"""Every HTTP channel, in the order of the list (the order they are mounted in)."""
