"""Giving the C heap's free memory back to the operating system after a large mail.

Parsing a large mail allocates about twice its size (ingest/mail/handoff.py). CPython frees those
blocks to the C library, but glibc keeps free memory in its arenas (a worker thread's arena above
all) instead of returning it, so the daemon's RSS stays up by that much after the mail is gone.
glibc's `malloc_trim(0)` returns every whole free page of every arena (a few milliseconds).
Only with glibc: elsewhere (musl, macOS) `release_free_memory` does nothing. `release_soon` runs it
on the event loop a little later, once for a burst of large mails.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import weakref
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        trim = ctypes.CDLL(None).malloc_trim
    except (ValueError, OSError, AttributeError):  # no such confstr name, or no such symbol
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """malloc_trim(0): True if glibc returned memory to the system; False if it had none to return
    or the C library is not glibc. Never raises; safe from any thread (glibc locks each arena)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


RELEASE_DELAY = 1.0
"""Seconds from a large mail's hand-off to the release: the channel has dropped the message by then."""
_scheduled: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def release_soon(delay: float = RELEASE_DELAY) -> None:
    """`release_free_memory` on this event loop `delay` seconds from now, unless one is already due:
    a stream of large mails costs at most one release per `delay` (each a few milliseconds)."""
    loop = asyncio.get_running_loop()
    if loop in _scheduled:
        return
    _scheduled.add(loop)

    def release() -> None:
        _scheduled.discard(loop)
        release_free_memory()

    loop.call_later(delay, release)
