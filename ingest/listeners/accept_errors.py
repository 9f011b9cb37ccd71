"""The daemon's event-loop exception handler, for one message: asyncio reports a listening socket whose
accept() fails for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) as "socket.accept() out of
system resource" — up to a hundred times per loop turn, with a traceback each, every second while it
lasts. Here each listener gets one line per interval saying how many more were suppressed, and the
`casegate_accept_failures` counter; every other report goes to the handler that was there before."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import structlog
from casegate.ingest.listeners.log_throttle import DEFAULT_INTERVAL, LogThrottle
from casegate.ingest.metrics import ACCEPT_FAILURES

log = structlog.get_logger("casegate.listener")

ACCEPT_FAILED = "socket.accept() out of system resource"
"""The message asyncio's selector loop gives the exception handler (asyncio/selector_events.py)."""


class AcceptErrorLog:
    """Install on the running loop with `install`, name the listening sockets with `name`."""

    def __init__(self, interval: float = DEFAULT_INTERVAL):
        self.throttle = LogThrottle(log, "listener.accept_failed", interval)
        self._listeners: dict[Any, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None
        self._active = False

    def name(self, server: asyncio.AbstractServer, listener: str) -> None:
        """Lines about `server`'s sockets say `listener` (smtp, http, admin)."""
        for sock in getattr(server, "sockets", None) or ():
            self._listeners[sock.getsockname()] = listener

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._handle)
        self._active = True

    def uninstall(self) -> None:
        """Put the previous handler back (if none was installed after this one), write what is counted."""
        self._active = False
        if self._loop is not None and self._loop.get_exception_handler() == self._handle:
            self._loop.set_exception_handler(self._previous)
        self.throttle.close()

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self._active and context.get("message") == ACCEPT_FAILED:
            listener = self._listener_of(context.get("socket"))
            exc = context.get("exception")
            code = getattr(exc, "errno", None)
            error = f"{errno.errorcode.get(code, code)}: {getattr(exc, 'strerror', exc)}" if code else repr(exc)
            ACCEPT_FAILURES.labels(listener).inc()
            self.throttle.hit(listener, listener=listener, error=error)
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _listener_of(self, sock: Any) -> str:
        try:
            return self._listeners.get(sock.getsockname(), "unknown") if sock is not None else "unknown"
        except OSError:
            return "unknown"
