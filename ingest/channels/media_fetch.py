"""Downloading the media a message links to (MMS pictures, WhatsApp documents, ...) into the blob store,
behind one small protocol so a channel can be given another fetcher (a proxy, an object-store copy).

A failed download never loses the message: the caller publishes it with the URLs, and the outcome
says, per item, what was stored (sha256) and what was not (why). Credentials are sent only to the
allowed hosts, and aiohttp drops them on a redirect to another origin (Twilio redirects to storage).
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from casegate.ingest.bus.blobs import BlobStore, BlobStoreError
from casegate.ingest.envelope import AttachmentRef
from yarl import URL

CHUNK = 65536


class MediaFetchError(Exception):
    """This item could not be downloaded (not allowed, too large, HTTP error, timed out)."""


@dataclass(frozen=True)
class MediaItem:
    url: str
    content_type: str | None = None
    """What the provider said the item is (the download's own Content-Type wins when it says more)."""


@dataclass(frozen=True)
class FetchedMedia:
    data: bytes
    content_type: str


class MediaFetcher(Protocol):
    async def fetch(self, url: str, *, auth: tuple[str, str] | None, max_bytes: int,
                    timeout: float) -> FetchedMedia:
        """The content at `url`, at most `max_bytes`, within `timeout` s; raises MediaFetchError."""
        ...

    async def close(self) -> None: ...


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """`host` is one of `allowed` or a subdomain of one."""
    host = (host or "").lower().rstrip(".")
    return any(host == a.lower() or host.endswith("." + a.lower()) for a in allowed)


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value of HTTP basic auth (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class HttpMediaFetcher:
    """Downloads over HTTP(S) with aiohttp (one session, created on first use), HTTP basic auth,
    following redirects, refusing more than `max_bytes` while the body streams in."""

    def __init__(self, allowed_hosts: Sequence[str]):
        self.allowed_hosts = tuple(allowed_hosts)
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, url: str, *, auth: tuple[str, str] | None, max_bytes: int,
                    timeout: float) -> FetchedMedia:
        target = URL(url)
        if target.scheme not in ("http", "https") or not host_allowed(target.host, self.allowed_hosts):
            raise MediaFetchError(f"host {target.host or '?'} is not in media_hosts")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(target, headers={"Authorization": basic_auth(*auth)} if auth else None,
                                         timeout=aiohttp.ClientTimeout(total=timeout), max_redirects=5) as resp:
                if resp.status != 200:
                    raise MediaFetchError(f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise MediaFetchError(f"larger than {max_bytes} bytes")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        raise MediaFetchError(f"larger than {max_bytes} bytes")
                return FetchedMedia(bytes(data), resp.content_type)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise MediaFetchError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class MediaOutcome:
    attachments: list[AttachmentRef] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    """`media_fetch` (a summary), `media<i>_sha256` for each stored item, `media<i>_error` for each other."""


def media_name(index: int, content_type: str) -> str:
    ext = mimetypes.guess_extension(content_type.split(";", 1)[0].strip()) or ""
    return f"media{index}{ext}"


async def store_media(fetcher: MediaFetcher, blobs: BlobStore, items: Sequence[MediaItem], *,
                      auth: tuple[str, str] | None, max_bytes: int, timeout: float) -> MediaOutcome:
    """Download every item (concurrently) and put each into the blob store; never raises for one item."""

    async def one(index: int, item: MediaItem) -> AttachmentRef | str:
        try:
            got = await fetcher.fetch(item.url, auth=auth, max_bytes=max_bytes, timeout=timeout)
            sha = await blobs.put(got.data)
        except (MediaFetchError, BlobStoreError) as e:
            return str(e) or type(e).__name__
        kind = got.content_type if got.content_type not in ("", "application/octet-stream") else \
            (item.content_type or "application/octet-stream")
        return AttachmentRef(name=media_name(index, kind), content_type=kind, size=len(got.data), sha256=sha)

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    out = MediaOutcome()
    for i, result in enumerate(results):
        if isinstance(result, str):
            out.details[f"media{i}_error"] = result[:200]
        else:
            out.attachments.append(result)
            out.details[f"media{i}_sha256"] = result.sha256
    stored = len(out.attachments)
    out.details["media_fetch"] = (f"stored {stored} of {len(items)}" if stored == len(items)
                                  else f"failed: stored {stored} of {len(items)}, the URLs are kept")
    return out
