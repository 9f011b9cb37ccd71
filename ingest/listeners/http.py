"""The daemon's HTTP listeners — the public webhook port and the admin port — each an asyncio server of
its own around an aiohttp application, rather than aiohttp's TCPSite, so that every connection goes
through the listener's ConnectionGuard (503 at once over its caps, ingest/listeners/connection_guard.py) and
has to send complete request headers within `header_timeout`: counted from connecting, and on a
kept-alive connection from the first byte of its next request; a client that has not is disconnected
(a slow-headers client otherwise holds its connection, and a descriptor, for ever). An application
middleware stops the clock when a request reaches the application. Between requests aiohttp's own
`keepalive_timeout` closes idle connections; the body has `http.body_timeout` (the webhook reader).

TLS (`[http] tls_cert`/`tls_key`): the listener accepts plain TCP, admits the connection through its
guard first, and only then negotiates TLS on it (`loop.start_tls`), so a connection in its handshake
holds a slot like any other and the handshake runs on the same header clock: handshake and request
headers together within `header_timeout`. Decrypted bytes reach the same HttpConnection, which keeps
forwarding them to aiohttp. The public application asks for TLS by carrying `TLS_CONTEXT`
(`server_tls` makes it from the PEM files).

`count_responses` makes the public application count every response it sends by route template and
status (`casegate_http_responses_total`), 500s of failed handlers included."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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
TLS_CONTEXT = web.AppKey("tls_context", ssl.SSLContext)
"""Set on an application that must be served over TLS only (the public one, when `[http] tls_cert` is set)."""


def server_tls(cert: str, key: str) -> ssl.SSLContext:
    """A server context from PEM files: TLS 1.2 or later, HTTP/1.1 offered by ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class HttpConnection(GuardedConnection):
    """A guarded connection to aiohttp's request handler, with the header deadline; with `tls`, the
    handshake first (a `_TlsHandshake` stands in for the handler until it is done)."""

    def __init__(self, guard: ConnectionGuard, server: web.Server, header_timeout: float,
                 timeouts: LogThrottle, tls: TlsSide | None = None):
        super().__init__(guard, lambda _slot: server() if tls is None else _TlsHandshake(self, server, tls))
        self.header_timeout = header_timeout
        self._timeouts = timeouts
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False
        self.tls = tls

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
        # with TLS this may come twice (the handshake failing, then TLS reporting the loss): the slot's
        # release is idempotent and the stand-in ignores a second call
        self._disarm()
        if self.tls is not None:
            self.tls.secured.discard(self)
        super().connection_lost(exc)


@dataclass(eq=False)
class TlsSide:
    """TLS on a listener: its context, the handshakes under way and the connections it secured. `stop`
    cuts both off: closing a TLS connection waits for the client's close_notify, which a client holding
    a kept-alive connection may never send."""

    context: ssl.SSLContext
    handshakes: set[asyncio.Task[None]] = field(default_factory=set)
    secured: set[HttpConnection] = field(default_factory=set)

    async def cancel_handshakes(self) -> None:
        for handshake in list(self.handshakes):
            handshake.cancel()
        await asyncio.gather(*self.handshakes, return_exceptions=True)

    def abort_secured(self) -> None:
        for conn in list(self.secured):
            if conn.transport is not None:
                conn.transport.abort()
        self.secured.clear()


class _TlsHandshake(asyncio.Protocol):
    """The inner protocol of a TLS connection while its handshake runs: starts it on the admitted TCP
    connection, with the HttpConnection as the protocol TLS hands decrypted bytes to, then puts
    aiohttp's request handler in its own place (with what arrived in between: TLS may pass on the
    first request bytes before this task resumes). A handshake that fails, runs out of time or is cut
    off closes the connection and releases its slot."""

    def __init__(self, conn: HttpConnection, server: web.Server, tls: TlsSide):
        self.conn = conn
        self.server = server
        self.tls = tls
        self.task: asyncio.Task[None] | None = None
        self.early = bytearray()
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # no byte of the client's hello reaches anyone but TLS
        self.task = asyncio.get_running_loop().create_task(self._negotiate(transport))
        self.tls.handshakes.add(self.task)
        self.task.add_done_callback(self.tls.handshakes.discard)

    async def _negotiate(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(transport, self.conn, self.tls.context, server_side=True,
                                          ssl_handshake_timeout=self.conn.header_timeout)
        except (OSError, ssl.SSLError, asyncio.CancelledError):  # refused, cut off, out of time, stopped
            secure = None
        if secure is None or secure.is_closing():
            self.task = None  # finished: losing the connection now must not cancel this task
            transport.abort()
            self.conn.connection_lost(None)
            return
        self.task = None
        self.tls.secured.add(self.conn)
        handler = self.server()
        self.conn.inner = handler
        handler.connection_made(secure)
        if self.early:
            handler.data_received(bytes(self.early))
        if self.eof:
            handler.eof_received()

    def data_received(self, data: bytes) -> None:
        # only between the handshake's end and this task's next step: one read of TLS (at most 256 KiB)
        self.early += data

    def eof_received(self) -> bool | None:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()


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
                 reuse_port: bool = False, header_timeout: float, keepalive_timeout: float,
                 tls: ssl.SSLContext | None = None):
        app.middlewares.insert(0, _header_clock)
        self.app = app
        self.tls = tls
        """TLS for every connection; None: the application's TLS_CONTEXT, if it carries one."""
        self.tls_side: TlsSide | None = None
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
        tls = self.tls or self.app.get(TLS_CONTEXT)
        self.tls_side = side = TlsSide(tls) if tls is not None else None

        def factory() -> HttpConnection:
            return HttpConnection(self.guard, server, self.header_timeout, self.timeouts, side)

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
        if self.tls_side is not None:  # TLS handshakes under way: cut off, their slots released
            await self.tls_side.cancel_handshakes()
        if self._set_up:
            await self.runner.cleanup()
        if self.tls_side is not None:  # what is left of TLS connections aiohttp closed: no close_notify awaited
            self.tls_side.abort_secured()
        self.timeouts.close()
        self.guard.close()
