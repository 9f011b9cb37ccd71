"""Connection admission for the daemon's listeners (SMTP, public HTTP, admin): how many connections a
listener holds at once, in all and per client address, and what a client over either cap gets — the
listener's refusal (SMTP `421 4.7.0`, HTTP `503`) at once, then the connection closes.

Every listener's protocol factory returns a `GuardedConnection`: when the connection is made it asks
the listener's `ConnectionGuard` for a `Slot`; admitted, it builds the real protocol (aiosmtpd's
session, aiohttp's request handler) and forwards every transport event to it; refused, it writes the
refusal, half-closes and closes shortly after (a lingering close, so the client reads the refusal
instead of a reset), without ever building the real protocol. A slot is held until the connection is
lost, so the caps bound the descriptors the listeners can take (ingest/listeners/descriptor_budget.py sizes
them from the open-file limit)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Callable
from typing import Any

import structlog
from casegate.ingest.listeners.log_throttle import LogThrottle
from casegate.ingest.metrics import CONNECTIONS_LIMIT, CONNECTIONS_OPEN, CONNECTIONS_REFUSED

log = structlog.get_logger("casegate.connections")

LINGER_SECONDS = 1.0
"""How long a refused connection stays half-closed, reading and discarding what the client still sends,
so that closing it does not reset the connection before the client read the refusal."""
MAX_LINGERING = 32
"""Refused connections lingering at once per listener; beyond that a refusal closes at once (the
descriptors of refused connections come out of the reserve, so they must stay few)."""

ACCEPTS_PER_TURN = 64
"""Connections asyncio accepts in one loop turn (its `backlog` argument), each holding a descriptor
before the guard can refuse it: part of the reserve (ingest/listeners/descriptor_budget.py)."""
LISTEN_BACKLOG = 1024
"""The kernel's queue of connections waiting for accept() (capped by net.core.somaxconn): deep, so a
burst of connections is queued and answered instead of its SYNs being dropped and retried seconds later."""

PER_IP = "per_ip"
LISTENER = "listener"

Refusal = Callable[[str], bytes]
"""What a refused client is sent, given the reason (PER_IP or LISTENER)."""


def client_key(peer: Any) -> str:
    """The address a per-client cap counts: the IPv4 address, or the /64 of an IPv6 one (a single
    host is usually given a whole /64). Unknown peers (a Unix socket) share one key."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if not isinstance(host, str):
        return "?"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def smtp_refusal(hostname: str) -> Refusal:
    def refusal(reason: str) -> bytes:
        whose = " from your address" if reason == PER_IP else ""
        return f"421 4.7.0 {hostname} Too many connections{whose}, try again later\r\n".encode()

    return refusal


def http_refusal(reason: str) -> bytes:
    whose = " from your address" if reason == PER_IP else ""
    body = json.dumps({"error": f"too many connections{whose}, try again later"}).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class Slot:
    """One admitted connection's place; `release` is idempotent (the connection may be reported lost
    by the guarded wrapper and, after STARTTLS swapped the transport's protocol, by the session)."""

    __slots__ = ("_guard", "_key", "_released")

    def __init__(self, guard: ConnectionGuard, key: str):
        self._guard = guard
        self._key = key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._guard._release(self._key)


class ConnectionGuard:
    """The caps of one listener: `max_connections` in all, `max_per_ip` per client address (0 = none)."""

    def __init__(self, listener: str, max_connections: int, max_per_ip: int, refusal: Refusal):
        self.listener = listener
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.refusal = refusal
        self.open = 0
        self.lingering = 0
        self._per_client: dict[str, int] = {}
        self.refused = LogThrottle(log, "listener.connections_refused")
        CONNECTIONS_LIMIT.labels(listener).set(max_connections)

    def admit(self, peer: Any) -> Slot | str:
        """A slot for a connection from `peer`, or the reason it is refused (PER_IP or LISTENER)."""
        key = client_key(peer)
        if self.max_per_ip and self._per_client.get(key, 0) >= self.max_per_ip:
            return PER_IP
        if self.open >= self.max_connections:
            return LISTENER
        self.open += 1
        self._per_client[key] = self._per_client.get(key, 0) + 1
        CONNECTIONS_OPEN.labels(self.listener).inc()
        return Slot(self, key)

    def from_client(self, peer: Any) -> int:
        """Connections this listener holds from `peer`'s address."""
        return self._per_client.get(client_key(peer), 0)

    def _release(self, key: str) -> None:
        self.open -= 1
        left = self._per_client.get(key, 1) - 1
        if left > 0:
            self._per_client[key] = left
        else:
            self._per_client.pop(key, None)
        CONNECTIONS_OPEN.labels(self.listener).dec()

    def close(self) -> None:
        self.refused.close()


class GuardedConnection(asyncio.Protocol):
    """The protocol a guarded listener's factory returns: admits the connection or refuses it, and
    forwards everything to the real protocol `make_inner(slot)` builds once admitted."""

    def __init__(self, guard: ConnectionGuard, make_inner: Callable[[Slot], asyncio.Protocol]):
        self.guard = guard
        self._make_inner = make_inner
        self.inner: asyncio.Protocol | None = None
        self.slot: Slot | None = None
        self.transport: asyncio.Transport | None = None
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        admitted = self.guard.admit(peer)
        if isinstance(admitted, str):
            self._refuse(transport, admitted, peer)
            return
        self.slot = admitted
        try:
            self.inner = self._make_inner(admitted)
        except BaseException:
            admitted.release()
            transport.abort()
            raise
        self.inner.connection_made(transport)

    def _refuse(self, transport: asyncio.Transport, reason: str, peer: Any) -> None:
        CONNECTIONS_REFUSED.labels(self.guard.listener, reason).inc()
        self.guard.refused.hit(f"{self.guard.listener}/{reason}", listener=self.guard.listener, reason=reason,
                               client=client_key(peer))
        transport.write(self.guard.refusal(reason))
        if self.guard.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        self.guard.lingering += 1
        transport.write_eof()
        self._linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
        # refused: what the client still sends is read and dropped until it closes or the linger ends

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        if self.transport is not None:
            self.transport.close()
        return False

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.guard.lingering -= 1
        if self.slot is not None:
            self.slot.release()
        if self.inner is not None:
            self.inner.connection_lost(exc)
        self.transport = None


def deepen_backlog(server: asyncio.AbstractServer) -> None:
    """Give `server`'s listening sockets LISTEN_BACKLOG (create it with backlog=ACCEPTS_PER_TURN, which
    asyncio also uses as its per-turn accept count; listen() again only changes the kernel's queue)."""
    for sock in getattr(server, "sockets", None) or ():
        raw = socket.socket(fileno=sock.fileno())  # asyncio's TransportSocket does not offer listen()
        try:
            raw.listen(LISTEN_BACKLOG)
        finally:
            raw.detach()  # the descriptor stays the server's
