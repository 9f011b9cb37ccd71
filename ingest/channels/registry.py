"""Mounts the enabled webhook channels of the table (ingest.channels.table) on the daemon's one aiohttp
application.

Each role serves what it owns. The ingest role mounts every route of a channel (`mount`); a process
without it (the worker role) mounts only a channel's routes that read the case store (`mount_reads`,
e.g. the CTI screen pop), so that such a route answers on whichever process of a shared public port
(`http.reuse_port`) takes the request.

The same holds for the Salesforce-compatible REST API (ingest/api/, `[api] enabled`): it reads and writes
the case store through connections of its own, so every role mounts it. And when `[http] tls_cert` is
set the public application is marked to be served over TLS only (ingest/listeners/http.py)."""

from __future__ import annotations

from aiohttp import web
from casegate.ingest.api import mount_api
from casegate.ingest.channels.base import StoreReadingChannel
from casegate.ingest.channels.table import CHANNELS
from casegate.ingest.channels.webhook import ChannelContext
from casegate.ingest.listeners.http import TLS_CONTEXT, server_tls


def mount_channels(app: web.Application, ctx: ChannelContext, *, ingest: bool = True) -> list[str]:
    """Mount every enabled channel's routes (with `ingest` False: only those that read the case store)
    and the REST API; returns the names of the channels that mounted any."""
    http = ctx.settings.http
    if http.tls_cert and http.tls_key:
        app[TLS_CONTEXT] = server_tls(http.tls_cert, http.tls_key)
    if ctx.settings.api.enabled:
        mount_api(app, ctx.settings)
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
