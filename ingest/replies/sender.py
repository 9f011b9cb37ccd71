"""The one interface of a reply sender, and the table that picks the sender of a reply by its route
(channel, provider): built once at start-up from the configured senders, it refuses two senders for one
route and names the route it has no sender for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from casegate.ingest.replies.errors import UnknownRoute
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

Route = tuple[str, str]
"""(channel, provider): the conversation's channel and who delivered it, e.g. ("whatsapp", "twilio")."""


class ReplySender(Protocol):
    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes this sender serves."""
        ...

    def check(self, reply: Reply, now: datetime) -> None:
        """Raise ReplyRefused when the provider would not take this reply (too long, outside its
        messaging window, ...): callers may refuse it before queueing it."""
        ...

    async def send(self, reply: Reply, now: datetime) -> SendResult:
        """One attempt: the reply checked, then sent to the provider; never raises for the provider's or
        the network's failures (they are results). `now` is the current time."""
        ...


class SenderTable:
    def __init__(self, senders: Iterable[ReplySender]):
        self._by_route: dict[Route, ReplySender] = {}
        for sender in senders:
            for route in sender.routes:
                if route in self._by_route:
                    raise ValueError(f"two reply senders for channel {route[0]!r} via {route[1]!r}")
                self._by_route[route] = sender

    @property
    def routes(self) -> list[Route]:
        return sorted(self._by_route)

    def sender_for(self, reply: Reply) -> ReplySender:
        """The sender of this reply's route; UnknownRoute when none is configured."""
        try:
            return self._by_route[reply.channel, reply.provider]
        except KeyError:
            raise UnknownRoute(f"no reply sender for channel {reply.channel!r} via {reply.provider!r}") from None
