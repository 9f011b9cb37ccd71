"""The webhook channels: configured section (`[channels.<name>]`) → the module that mounts its routes
on the daemon's one aiohttp application. Only enabled channels are imported and mounted.

Each role serves what it owns. The ingest role mounts every route of a channel (`mount`); a process
without it (the worker role) mounts only a channel's routes that read the case store (`mount_reads`,
e.g. the CTI screen pop), so that such a route answers on whichever process of a shared public port
(`http.reuse_port`) takes the request."""

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


def mount_channels(app: web.Application, ctx: ChannelContext, *, ingest: bool = True) -> list[str]:
    """Mount every enabled channel's routes (with `ingest` False: only those that read the case store);
    returns the names of the channels that mounted any."""
    mounted = []
    for name, module_name in MODULES.items():
        if not getattr(ctx.settings.channels, name).enabled:
            continue
        module = importlib.import_module(module_name)
        if ingest:
            module.mount(app, ctx)
        elif hasattr(module, "mount_reads"):
            module.mount_reads(app, ctx)
        else:
            continue
        mounted.append(name)
    return mounted
