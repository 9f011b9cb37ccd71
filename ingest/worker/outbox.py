"""The outbox sender (worker role): delivers the mail the case service queued (acknowledgements,
closed-case notices) to the configured relay over SMTP with aiosmtplib.

A temporary failure (relay down, 4xx) is retried with exponential back-off (ingest/backoff.py, by the
attempts the outbox row counts); a permanent refusal (5xx) or too many attempts marks the mail failed,
kept in the outbox with the error. The mail's EmailMessage on the case reads Queued until then, and
Sent or Failed after, set in the transaction that marks the outbox row; a failure also goes on the
case feed with the attempts and the last error. Two worker processes never send the same mail: each
claims its rows with a lease first (`store.outbox.claim_due`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiosmtplib
import structlog
from casegate.config import OutboundSettings
from casegate.ingest.backoff import Backoff, pause
from casegate.ingest.metrics import OUTBOUND_MAIL
from casegate.store.database import Database
from casegate.store.outbox import OutgoingMail, claim_due, mark_failed, mark_retry, mark_sent

log = structlog.get_logger("casegate.outbox")


def _permanent(e: Exception) -> bool:
    if isinstance(e, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in e.recipients)
    return isinstance(e, aiosmtplib.SMTPResponseException) and e.code >= 500


class OutboxSender:
    def __init__(self, db: Database, settings: OutboundSettings):
        self.db = db
        self.settings = settings
        self.backoff = Backoff(settings.retry_initial, settings.retry_max)
        """The delay before a mail's next attempt, by the attempts it had (kept in the outbox row)."""

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.timeout * 2 + 5)

    async def run(self, stopping: asyncio.Event) -> None:
        """Send due mail until `stopping` is set."""
        while not stopping.is_set():
            try:
                due = await claim_due(self.db, datetime.now(UTC), self._lease())
            except Exception as e:  # the store is down: the worker says so too; try again later
                log.warning("outbox.claim_failed", error=f"{type(e).__name__}: {e}")
                due = []
            for mail in due:
                await self.send(mail)
            if not due:
                await pause(self.settings.poll_interval, stopping)

    async def send(self, mail: OutgoingMail) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(mail.raw, sender=mail.from_address, recipients=[mail.to_address],
                                  hostname=s.host, port=s.port, start_tls=s.starttls,
                                  username=s.username or None, password=s.password or None, timeout=s.timeout,
                                  local_hostname=s.hostname)
        except (aiosmtplib.SMTPException, OSError) as e:
            await self._failed(mail, e)
            return
        try:
            await mark_sent(self.db, mail, datetime.now(UTC))
        except Exception as e:  # sent but not recorded: after the lease it may go out twice, never zero times
            log.error("outbox.mark_sent_failed", mail_id=mail.id, error=str(e))
            return
        OUTBOUND_MAIL.labels("sent").inc()
        log.info("outbox.sent", kind=mail.kind, case_id=mail.case_id, to=mail.to_address, message_id=mail.message_id)

    async def _failed(self, mail: OutgoingMail, e: Exception) -> None:
        error = f"{type(e).__name__}: {e}"
        give_up = _permanent(e) or mail.attempts >= self.settings.max_attempts
        delay = self.backoff.delay_after(mail.attempts)
        now = datetime.now(UTC)
        try:
            if give_up:
                await mark_failed(self.db, mail, error, now)
            else:
                await mark_retry(self.db, mail.id, error, now + timedelta(seconds=delay))
        except Exception as store_error:  # the store is down: the lease runs out and the mail is tried again
            log.warning("outbox.not_recorded", mail_id=mail.id, outcome="failed" if give_up else "retry",
                        error=f"{type(store_error).__name__}: {store_error}")
        OUTBOUND_MAIL.labels("failed" if give_up else "retry").inc()
        if give_up:
            log.error("outbox.failed", kind=mail.kind, case_id=mail.case_id, to=mail.to_address,
                      attempts=mail.attempts, error=error)
        else:
            log.warning("outbox.retry", kind=mail.kind, case_id=mail.case_id, to=mail.to_address,
                        attempts=mail.attempts, retry_in=delay, error=error)
