"""The webhook channels: configured section (`[channels.<name>]`) → the module that mounts its routes
on the daemon's one aiohttp application. Only enabled channels are imported and mounted."""

from __future__ import annotations

import importlib

from aiohttp import web

from ingest.channels.webhook import ChannelContext

MODULES = {
    "web_form": "ingest.channels.web_form",
    "twilio": "ingest.channels.twilio_messaging",
    "meta": "ingest.channels.meta_messaging",
    "telegram": "ingest.channels.telegram_bot",
    "x": "ingest.channels.x_activity",
    "cti": "ingest.channels.cti_events",
    "chat": "ingest.channels.chat_webhook",
}


def mount_channels(app: web.Application, ctx: ChannelContext) -> list[str]:
    """Mount every enabled channel's routes; returns the names of the channels mounted."""
    mounted = []
    for name, module in MODULES.items():
        if getattr(ctx.settings.channels, name).enabled:
            importlib.import_module(module).mount(app, ctx)
            mounted.append(name)
    return mounted
