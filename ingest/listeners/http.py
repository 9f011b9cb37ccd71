"""The daemon's HTTP listeners — the public webhook port and the admin port — each an asyncio server of
its own around an aiohttp application, rather than aiohttp's TCPSite, so that every connection goes
through the listener's ConnectionGuard (503 at once over its caps, ingest/listeners/connection_guard.py) and
has to send complete request headers within `header_timeout`: counted from connecting, and on a
kept-alive connection from the first byte of its next request; a client that has not is disconnected
(a slow-headers client otherwise holds its connection, and a descriptor, for ever). An application
middleware stops the clock when a request reaches the application. Between requests aiohttp's own
`keepalive_timeout` closes idle connections; the body has `http.body_timeout` (the webhook reader).

`count_responses` makes the public application count every response it sends by route template and
status (`casegate_http_responses_total`), 500s of failed handlers included."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from casegate.ingest.listeners.connection_guard import (
    ACCEPTS_PER_TURN,
    ConnectionGuard,
    GuardedConnection,
    deepen_backlog,
)
from casegate.ingest.listeners.log_throttle import LogThrottle
from casegate.ingest.metrics import HEADER_TIMEOUTS, HTTP_RESPONSES

log = structlog.get_logger("casegate.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpConnection(GuardedConnection):
    """A guarded connection to aiohttp's request handler, with the header deadline."""

    def __init__(self, guard: ConnectionGuard, server: web.Server, header_timeout: float,
                 timeouts: LogThrottle):
        super().__init__(guard, lambda _slot: server())
        self.header_timeout = header_timeout
        self._timeouts = timeouts
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.inner is not None:
            self._arm()

    def data_received(self, data: bytes) -> None:
        # the first byte of a request on an idle kept-alive connection starts its header clock (armed
        # before the data is handed on: the handler may start at once)
        if self.inner is not None and data and not self._in_request and self._deadline is None:
            self._arm()
        super().data_received(data)

    def request_started(self) -> None:
        """The request's headers are complete and it reached the application."""
        self._disarm()
        self._in_request = True

    def request_finished(self) -> None:
        """The application answered; the connection may carry another request."""
        self._in_request = False

    def _arm(self) -> None:
        self._deadline = asyncio.get_running_loop().call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        listener = self.guard.listener
        HEADER_TIMEOUTS.labels(listener).inc()
        self._timeouts.hit(listener, listener=listener, header_timeout=self.header_timeout)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


@web.middleware
async def _header_clock(request: web.Request, handler: Handler) -> web.StreamResponse:
    transport = request.transport
    conn = transport.get_protocol() if transport is not None else None
    if not isinstance(conn, HttpConnection):
        return await handler(request)
    conn.request_started()
    try:
        return await handler(request)
    finally:
        conn.request_finished()


def route_label(request: web.Request) -> str:
    """The matched route's template (`/hooks/chat`, `/cases/{number}`), or "unmatched": never the raw
    path, so the label set stays as small as the route table."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def count_responses(app: web.Application) -> None:
    """Count every response `app` sends, by route and status (call before the app is started)."""

    async def counted(request: web.Request, response: web.StreamResponse) -> None:
        HTTP_RESPONSES.labels(route_label(request), str(response.status)).inc()

    app.on_response_prepare.append(counted)


class HttpListener:
    """`app` served on host:port behind `guard`; `start` returns the bound port."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, *, host: str, port: int,
                 reuse_port: bool = False, header_timeout: float, keepalive_timeout: float):
        app.middlewares.insert(0, _header_clock)
        self.runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_timeout)
        self.guard = guard
        self.host = host
        self.requested_port = port
        self.reuse_port = reuse_port
        self.header_timeout = header_timeout
        self.timeouts = LogThrottle(log, "http.header_timeout")
        self.server: asyncio.Server | None = None
        self.port = 0
        self._set_up = False

    async def start(self) -> int:
        await self.runner.setup()
        self._set_up = True
        server = self.runner.server
        assert server is not None

        def factory() -> HttpConnection:
            return HttpConnection(self.guard, server, self.header_timeout, self.timeouts)

        self.server = await asyncio.get_running_loop().create_server(
            factory, self.host, self.requested_port, reuse_port=self.reuse_port or None, backlog=ACCEPTS_PER_TURN)
        deepen_backlog(self.server)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def stop(self) -> None:
        """Stop accepting, let requests under way finish (aiohttp's shutdown), close every connection."""
        self.stop_accepting()
        if self._set_up:
            await self.runner.cleanup()
        self.timeouts.close()
        self.guard.close()
