"""What an HTTP channel is, as typing.Protocols: a module with `mount(app, ctx)` that adds its routes to
the daemon's one aiohttp application (ingest.channels.webhook gives it the shared request handling,
ingest.channels.table lists the channels, ingest.channels.registry mounts the enabled ones).

mypy checks every module in the table against `HttpChannel`; the table checks it again when imported.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web
from casegate.ingest.channels.webhook import ChannelContext


@runtime_checkable
class HttpChannel(Protocol):
    """A webhook channel module (e.g. ingest.channels.chat_webhook)."""

    def mount(self, app: web.Application, ctx: ChannelContext, /) -> None:
        """Add every route of the channel (the ingest role)."""


@runtime_checkable
class StoreReadingChannel(HttpChannel, Protocol):
    """A channel some of whose routes read the case store (the CTI screen pop): they are served by
    every process with the public HTTP listener, whatever its role."""

    def mount_reads(self, app: web.Application, ctx: ChannelContext, /) -> None:
        """Add only the routes that read the case store (a process without the ingest role)."""
