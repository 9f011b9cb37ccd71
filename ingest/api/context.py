"""What every API handler is given: the process's `ApiContext` (settings, its own connections to the
case store, the token cache, the request count), the `Call` being answered (who, which version, the
method and resource path, its query, headers and body), and what it returns: an `Outcome` (status,
JSON body, headers), written as an HTTP response by ingest/api/mount.py or as a subresponse by
ingest/api/composite.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from casegate.config import Settings
from casegate.config.settings import ApiSettings
from casegate.ingest.api.auth import TokenCache
from casegate.ingest.api.errors import unavailable
from casegate.ingest.api.journal import Journal
from casegate.ingest.api.usage import Usage
from casegate.ingest.app.thread_key import thread_secret
from casegate.ingest.replies.configured import build_senders, reply_check
from casegate.ingest.replies.sender import SenderTable
from casegate.rules.access import Actor
from casegate.store.database import Database
from casegate.store.records import RecordPolicy

BASE = "/services/data"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A resource's answer: `body` None means no body (204)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """One request to a resource under `/services/data/v<version>/`, from HTTP or a composite subrequest."""

    actor: Actor
    version: str
    method: str
    segments: tuple[str, ...]
    """The resource path after the version, decoded segment by segment: ("sobjects", "Case", "500…")."""
    query: Mapping[str, str]
    headers: Mapping[str, str]
    """Case-insensitive (a CIMultiDict) for HTTP and for subrequests alike."""
    body: Callable[[], Awaitable[Any]]
    """The JSON body, read (and checked) when the resource asks for it."""
    journal: Journal | None = None
    """Within an all-or-none composite request: what to undo if a later subrequest fails."""
    nested: bool = False
    """A composite subrequest (which may not be a composite request itself)."""

    @property
    def base(self) -> str:
        return f"{BASE}/v{self.version}"


class ApiContext:
    """The API of one process: its settings and its own case store connections, opened when the
    application starts and closed when it stops (`store`, an aiohttp cleanup context)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = RecordPolicy.of(settings)
        """The `[case]` and `[rules]` settings as the record layer applies them (picklists, closing,
        external ids, the assignment of new cases); once started, also how agents' replies are sent and
        checked (`replies_policy`)."""
        self._db: Database | None = None
        self.tokens = TokenCache(lambda: self.db, settings.api.token_cache_seconds)
        self.usage = Usage(settings.api.daily_requests)

    @property
    def api(self) -> ApiSettings:
        return self.settings.api

    @property
    def db(self) -> Database:
        if self._db is None:  # not started, or stopping
            raise unavailable()
        return self._db

    async def store(self, _app: web.Application) -> AsyncIterator[None]:
        s = self.settings
        self._db = Database(s.store_url, pool_size=s.store.pool_size, busy_timeout=s.store.sqlite_busy_timeout)
        session = aiohttp.ClientSession()  # the reply senders are built on one; their checks send nothing
        try:
            self.policy = replies_policy(s, session)
            yield
        finally:
            db, self._db = self._db, None
            await db.dispose()
            await session.close()


def replies_policy(settings: Settings, session: aiohttp.ClientSession) -> RecordPolicy:
    """The record policy with what agents' replies need: the thread-token key (an outgoing EmailMessage is
    sent through the outbox) and the configured reply senders' check (a ConversationEntry its provider would
    refuse — too long, outside its window, no sender for its route — is refused before it is queued). A
    secret that cannot be read stops the API from starting, as it stops the worker's reply sender."""
    check = reply_check(SenderTable(build_senders(settings, session)))
    return RecordPolicy.of(settings, thread_secret(settings), check)


_PATH = re.compile(r"/services/data/v(\d{1,3}\.\d)(?:/(.*))?")
MAX_SEGMENTS = 8


def split_path(raw_path: str) -> tuple[str, tuple[str, ...]] | None:
    """The version and the decoded resource segments of a raw `/services/data/vNN.N/…` path (a
    trailing slash ignored, as Salesforce does); None when it is not one."""
    m = _PATH.fullmatch(raw_path)
    if m is None:
        return None
    tail = (m.group(2) or "").removesuffix("/")
    parts = tail.split("/", MAX_SEGMENTS) if tail else []
    return m.group(1), tuple(unquote(p) for p in parts)
