"""Mounts the enabled webhook channels of the table (ingest.channels.table) on the daemon's one aiohttp
application.

Each role serves what it owns. The ingest role mounts every route of a channel (`mount`); a process
without it (the worker role) mounts only a channel's routes that read the case store (`mount_reads`,
e.g. the CTI screen pop), so that such a route answers on whichever process of a shared public port
(`http.reuse_port`) takes the request."""

from __future__ import annotations

from aiohttp import web
from casegate.ingest.channels.base import StoreReadingChannel
from casegate.ingest.channels.table import CHANNELS
from casegate.ingest.channels.webhook import ChannelContext


def mount_channels(app: web.Application, ctx: ChannelContext, *, ingest: bool = True) -> list[str]:
    """Mount every enabled channel's routes (with `ingest` False: only those that read the case store);
    returns the names of the channels that mounted any."""
    mounted = []
    for name, spec in CHANNELS.items():
        if not spec.section(ctx.settings).enabled:
            continue
        if ingest:
            spec.module.mount(app, ctx)
        elif isinstance(spec.module, StoreReadingChannel):
            spec.module.mount_reads(app, ctx)
        else:
            continue
        mounted.append(name)
    return mounted
