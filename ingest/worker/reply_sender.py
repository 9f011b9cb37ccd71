"""The reply sender (worker role): sends agents' queued replies on messaging channels through their
providers (ingest/replies/, one sender per route, built from the settings at start) and records what came
of each (store.agent_replies).

Each round claims the due `reply_outbox` rows with a lease (two worker processes never send one reply at
once), sends each, and records it: sent (the provider's message id names the entry from then on, its
status queued or sent as the provider said), due again after the back-off of `[outbound]` retry_initial /
retry_max — never sooner than the provider's Retry-After — or failed for good (the provider refused it,
or `[outbound] max_attempts` ran out): then the entry reads failed and the case feed says why. A route
with no sender (its credentials were removed) is retried like an outage, so restoring them delivers it.
Each round also applies the delivery statuses that arrived before their reply was recorded as sent.

Known gap: a send that timed out may have been delivered; it is sent again (providers take no
idempotency key). A reply sent but not recorded (the store was down) is sent again after the lease.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog
from casegate.config import Settings
from casegate.ingest.backoff import Backoff, pause
from casegate.ingest.replies.configured import as_reply, build_senders, reply_timeout
from casegate.ingest.replies.delivery_status import DeliveryStatus, advance_status
from casegate.ingest.replies.errors import UnknownRoute
from casegate.ingest.replies.result import Outcome, SendResult, retry_delay
from casegate.ingest.replies.sender import SenderTable
from casegate.store.agent_replies import (
    OutgoingReply,
    claim_due_replies,
    mark_reply_failed,
    mark_reply_retry,
    mark_reply_sent,
    settle_receipts,
)
from casegate.store.database import Database
from sqlalchemy import Connection

log = structlog.get_logger("casegate.replies")


class ReplySender:
    def __init__(self, db: Database, settings: Settings, table: SenderTable, session: aiohttp.ClientSession):
        self.db = db
        self.settings = settings
        self.table = table
        self.session = session
        outbound = settings.outbound
        self.backoff = Backoff(outbound.retry_initial, outbound.retry_max)
        """The delay before a reply's next attempt, by the attempts it had (kept in its row)."""
        self.lease = timedelta(seconds=reply_timeout(settings) * 2 + 5)

    @classmethod
    async def open(cls, db: Database, settings: Settings) -> ReplySender | None:
        """The sender of the configured routes, on a session of its own; None when no route is configured.
        Raises (OSError, ValueError) when a configured secret cannot be read or used."""
        session = aiohttp.ClientSession()
        try:
            table = SenderTable(build_senders(settings, session))
        except BaseException:
            await session.close()
            raise
        if not table.routes:
            await session.close()
            return None
        log.info("replies.routes", routes=[f"{channel} via {provider}" for channel, provider in table.routes])
        return cls(db, settings, table, session)

    async def run(self, stopping: asyncio.Event) -> None:
        """Send due replies until `stopping` is set; closes the session at the end."""
        try:
            while not stopping.is_set():
                try:
                    due = await self.db.transaction(self._round)
                except Exception as e:  # the store is down: the worker says so too; try again later
                    log.warning("replies.claim_failed", error=f"{type(e).__name__}: {e}")
                    due = []
                for reply in due:
                    await self.send(reply)
                if not due:
                    await pause(self.settings.outbound.poll_interval, stopping)
        finally:
            await self.session.close()

    def _round(self, conn: Connection) -> list[OutgoingReply]:
        """One write transaction a round: the due replies claimed, the early statuses settled."""
        now = datetime.now(UTC)
        settle_receipts(conn, now, advance_status)
        return claim_due_replies(conn, now, self.lease)

    async def send(self, reply: OutgoingReply) -> SendResult:
        """One attempt at `reply`, recorded; the result."""
        candidate = as_reply(reply)
        try:
            sender = self.table.sender_for(candidate)
        except UnknownRoute as e:
            result = SendResult.retry_later(str(e))
        else:
            result = await sender.send(candidate, datetime.now(UTC))
        try:
            await self._record(reply, result)
        except Exception as e:  # not recorded: after the lease it is tried (and maybe sent) again
            log.error("replies.not_recorded", entry_id=reply.entry_id, case_id=reply.case_id, outcome=result.outcome,
                      error=f"{type(e).__name__}: {e}")
        return result

    async def _record(self, reply: OutgoingReply, result: SendResult) -> None:
        now = datetime.now(UTC)
        facts = {"entry_id": reply.entry_id, "case_id": reply.case_id, "channel": reply.channel,
                 "provider": reply.provider, "attempts": reply.attempts}
        if result.outcome is Outcome.SENT:
            status = (result.status or DeliveryStatus.SENT).value
            await self.db.transaction(lambda c: mark_reply_sent(c, reply, result.message_id, status, now,
                                                                advance_status))
            log.info("replies.sent", message_id=result.message_id, status=status, **facts)
            return
        error = result.describe()
        if result.outcome is Outcome.RETRY and reply.attempts < self.settings.outbound.max_attempts:
            delay = retry_delay(reply.attempts, result, self.backoff)
            await self.db.transaction(lambda c: mark_reply_retry(c, reply.entry_id, error,
                                                                 now + timedelta(seconds=delay)))
            log.warning("replies.retry", retry_in=delay, error=error, **facts)
            return
        await self.db.transaction(lambda c: mark_reply_failed(c, reply, error, now))
        log.error("replies.failed", error=error, **facts)
