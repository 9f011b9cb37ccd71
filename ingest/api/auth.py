"""Who is calling the API: the token of `Authorization: Bearer <token>` (or `OAuth <token>`, which older
Salesforce clients send) turned into the `Actor` that rules.access judges, by
`casegate.store.access.authenticate`.

A token found good is believed for `[api] token_cache_seconds` (10 s) without asking the store again,
keyed by the token's SHA-256 (the token itself is not kept): so a revoked or expired token, or a
deactivated user, is refused at most that long afterwards — the documented price of not reading the
store on every request. Tokens found bad are not remembered (each costs one indexed lookup); the cache
holds at most `MAX_ENTRIES` tokens, the oldest forgotten first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from casegate.ingest.api.errors import invalid_session
from casegate.rules.access import Actor
from casegate.store.access import authenticate, hash_token
from casegate.store.database import Database

MAX_ENTRIES = 10_000
SCHEMES = ("bearer", "oauth")


def token_of(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` or `OAuth <token>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() in SCHEMES else None


class TokenCache:
    """Actors of tokens recently found good, each believed for `ttl` seconds (0: never remembered)."""

    def __init__(self, db: Callable[[], Database], ttl: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self._db = db
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Actor, float]] = OrderedDict()

    async def actor(self, token: str) -> Actor | None:
        """The actor `token` speaks for, or None."""
        key = hash_token(token)
        now = self.clock()
        hit = self._entries.get(key)
        if hit is not None:
            if hit[1] > now:
                return hit[0]
            del self._entries[key]
        actor = await authenticate(self._db(), token)
        if actor is not None and self.ttl > 0:
            self._entries[key] = (actor, now + self.ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return actor

    async def require(self, authorization: str | None) -> Actor:
        """The actor of an Authorization header; ApiError 401 INVALID_SESSION_ID without a good token."""
        token = token_of(authorization)
        actor = await self.actor(token) if token is not None else None
        if actor is None:
            raise invalid_session()
        return actor
