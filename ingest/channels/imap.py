"""The IMAP channel: one task per configured mailbox, all in parallel, each fetching new mail into
the bus as the SMTP channel's mail is (`hand_off_mail`, the mailbox's routing address as recipient).

Per mailbox, in a loop: connect and log in; compare UIDVALIDITY with the watermark in the state file
(changed: rescan the whole folder — the worker dedupes by Message-ID, so republishing is harmless);
fetch every UID above the watermark with BODY.PEEK[], `fetch_batch` at a time; hand the messages off
one by one in UID order (so a reply never overtakes its original on the bus); only once the bus has
them, flag them \\Seen or move them, then advance the watermark. The \\Seen flag is never read, so another
client reading the mail hides nothing. Then wait for new mail: IDLE when the server offers it
(re-issued every `idle_renew` s, each time with a full scan), else a poll every `poll_interval` s.

The bus or the blob store failing leaves the message as it was and the watermark where it was; it is
fetched again after a back-off. An unexpected error once the raw message is stored makes it a dead
letter (ingest/mail/handoff.py): it is flagged or moved like any other, once that record is on the
bus. A lost connection or a refused login reconnects after an exponential back-off (capped at
`retry_max`; ingest/backoff.py, as is the hand-off's). One mailbox failing never stops another. Each
watcher's status is kept in memory for `/readyz` and written to the state file for `casegate mailboxes
status`. `ImapChannel` is one of the daemon's listeners (ingest/listeners/base.py): started with the
ingest role, drained before the worker's last batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from casegate.config import MailboxSettings
from casegate.ingest.backoff import Backoff, pause
from casegate.ingest.bus import BusError
from casegate.ingest.bus.blobs import BlobStoreError
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.channels.imap_session import ImapAuthFailed, ImapSession, ImapTemporary
from casegate.ingest.channels.imap_state import ImapState, MailboxStatus
from casegate.ingest.mail.handoff import HANDOFF_ERROR, hand_off_mail
from casegate.ingest.mail.mime import MAX_ATTACHMENTS
from casegate.ingest.metrics import IMAP_AUTH_FAILURES, IMAP_CONNECTED, IMAP_FETCHED, IMAP_RECONNECTS

log = structlog.get_logger("casegate.imap")


def source_of(settings: MailboxSettings) -> str:
    return f"{settings.username}@{settings.host}:{settings.port}/{settings.folder}"


class MailboxWatcher:
    """Fetches one mailbox's new mail until `stop()`; never raises out of `run()`."""

    def __init__(self, settings: MailboxSettings, publisher: Publisher, state: ImapState, *,
                 max_attachments: int = MAX_ATTACHMENTS) -> None:
        self.settings = settings
        self.publisher = publisher
        self.state = state
        self.max_attachments = max_attachments
        self.status = MailboxStatus(name=settings.name, source=source_of(settings))
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch under way (hand-off, flag, watermark), then log out."""
        self._stop.set()

    async def _set(self, **changes: Any) -> None:
        self.status = replace(self.status, updated_at=time.time(), **changes)
        IMAP_CONNECTED.labels(self.settings.name).set(1 if self.status.connected else 0)
        await self.state.save(self.status)

    async def _failed(self, state: str, error: Exception, **changes: Any) -> None:
        await self._set(state=state, connected=False, last_error=f"{type(error).__name__}: {error}"[:500],
                        last_error_at=time.time(), **changes)

    async def run(self) -> None:
        s = self.settings
        stored = await self.state.load(s.name)
        if stored is not None:
            self.status = replace(stored, state="starting", connected=False)
        backoff = Backoff(s.retry_initial, s.retry_max)
        while not self._stop.is_set():
            session = ImapSession(s)
            try:
                if self.status.state not in ("auth_failed", "reconnecting"):  # a retry keeps showing why
                    await self._set(state="connecting", connected=False)
                await session.open()
                backoff.reset()
                await self._serve(session)
            except ImapAuthFailed as e:
                log.error("imap.login_refused", mailbox=s.name, auth=s.auth, error=str(e),
                          retry_in=backoff.upcoming)
                IMAP_AUTH_FAILURES.labels(s.name).inc()
                await self._failed("auth_failed", e, auth_failures=self.status.auth_failures + 1)
            except ImapTemporary as e:
                log.warning("imap.connection_failed", mailbox=s.name, error=str(e), retry_in=backoff.upcoming)
                IMAP_RECONNECTS.labels(s.name).inc()
                await self._failed("reconnecting", e, reconnects=self.status.reconnects + 1)
            except Exception as e:  # a bug or the state file failing: this mailbox retries, the others go on
                log.exception("imap.watcher_failed", mailbox=s.name, retry_in=backoff.upcoming)
                IMAP_RECONNECTS.labels(s.name).inc()
                with contextlib.suppress(Exception):
                    await self._failed("reconnecting", e, reconnects=self.status.reconnects + 1)
            finally:
                await session.close()
            if self._stop.is_set():
                break
            await pause(backoff.next(), self._stop)
        with contextlib.suppress(Exception):
            await self._set(state="stopped", connected=False)
        log.info("imap.stopped", mailbox=s.name)

    async def _serve(self, session: ImapSession) -> None:
        s = self.settings
        st = self.status
        if st.source != source_of(s) or st.uidvalidity != session.uidvalidity:
            if st.uidvalidity is not None:
                log.warning("imap.uidvalidity_changed", mailbox=s.name, old=st.uidvalidity, new=session.uidvalidity,
                            old_source=st.source, action="rescanning the whole folder")
            self.status = replace(st, source=source_of(s), uidvalidity=session.uidvalidity, last_uid=0)
        use_idle = s.idle and session.can_idle
        waiting = "idle" if use_idle else "polling"
        await self._set(state=waiting, connected=True)
        log.info("imap.connected", mailbox=s.name, uidvalidity=session.uidvalidity, last_uid=self.status.last_uid,
                 mode=waiting)
        retry = Backoff(s.retry_initial, s.retry_max)
        while not self._stop.is_set():
            if not await self._scan(session):
                await self._set(state="retrying")
                delay = retry.next()
                log.warning("imap.handoff_retry", mailbox=s.name, retry_in=delay)
                await pause(delay, self._stop)
                continue
            retry.reset()
            await self._set(state=waiting, last_success_at=time.time())
            if self._stop.is_set():
                return
            if use_idle:
                await session.wait_for_mail(s.idle_renew, self._stop)
            else:
                await pause(s.poll_interval, self._stop)

    async def _scan(self, session: ImapSession) -> bool:
        """Hand off everything above the watermark; False if some message could not be (bus down)."""
        uids = await session.uids_after(self.status.last_uid)
        for i in range(0, len(uids), self.settings.fetch_batch):
            if self._stop.is_set():
                return True
            if not await self._take(session, uids[i:i + self.settings.fetch_batch]):
                return False
        return True

    async def _take(self, session: ImapSession, uids: Sequence[int]) -> bool:
        if self.status.state != "fetching":
            await self._set(state="fetching")
        raws = await session.fetch(uids)
        present = [u for u in uids if u in raws]
        handed: set[int] = set()
        for uid in present:  # one at a time, in UID (arrival) order: a reply never overtakes its original
            if not await self._hand_off(session.uidvalidity, uid, raws[uid]):
                break  # the bus is failing: the rest waits for the retry too
            handed.add(uid)
        changes: dict[str, Any] = {}
        if handed:
            refusal = await session.mark_done(sorted(handed))
            if refusal is not None:  # the bus has them: advancing the watermark keeps them from repeating
                log.error("imap.mark_failed", mailbox=self.settings.name, error=refusal,
                          after_fetch=self.settings.after_fetch)
                changes.update(last_error=refusal, last_error_at=time.time())
        last = self.status.last_uid
        for uid in uids:  # only over a gapless run of handed-off (or meanwhile expunged) messages
            if uid in raws and uid not in handed:
                break
            last = uid
        IMAP_FETCHED.labels(self.settings.name).inc(len(handed))
        await self._set(last_uid=last, fetched=self.status.fetched + len(handed), **changes)
        return len(handed) == len(present)

    async def _hand_off(self, uidvalidity: int, uid: int, raw: bytes) -> bool:
        s = self.settings
        try:
            env = await hand_off_mail(self.publisher, raw, None, (s.routing_address,),
                                      {"imap_mailbox": s.name, "imap_uidvalidity": str(uidvalidity),
                                       "imap_uid": str(uid)}, max_attachments=self.max_attachments)
        except (BusError, BlobStoreError) as e:  # not durable: left as it was, fetched again later
            log.warning("imap.handoff_failed", channel="email", mailbox=s.name, uid=uid, reason=str(e))
            self._note_error(e)
            return False
        except Exception as e:  # before the raw was stored, or while dead-lettering: retried, and visible
            log.exception("imap.handoff_error", channel="email", mailbox=s.name, uid=uid)
            self._note_error(e)
            return False
        log.info("imap.accepted", channel="email", mailbox=s.name, uid=uid, external_id=env.external_id,
                 envelope_id=env.id, size=len(raw), **({"dead_lettered": True} if HANDOFF_ERROR in env.meta else {}))
        return True

    def _note_error(self, error: Exception) -> None:
        self.status = replace(self.status, last_error=f"{type(error).__name__}: {error}"[:500],
                              last_error_at=time.time())


class ImapChannel:
    """All configured mailboxes, one watcher task each, sharing one state file: a Listener
    (ingest/listeners/base.py) to the daemon."""

    name = "imap"

    def __init__(self, mailboxes: Sequence[MailboxSettings], publisher: Publisher, state_file: Path, *,
                 max_attachments: int = MAX_ATTACHMENTS) -> None:
        self.state = ImapState(state_file)
        self.watchers = [MailboxWatcher(m, publisher, self.state, max_attachments=max_attachments)
                         for m in mailboxes]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """One task per mailbox; a mailbox that cannot be reached retries in its task, never fails this."""
        self._tasks = [asyncio.create_task(w.run(), name=f"imap-{w.settings.name}") for w in self.watchers]

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(all mailboxes healthy, per-mailbox status) for `/readyz`."""
        detail = {w.settings.name: {k: v for k, v in w.status.as_dict().items() if k not in ("name", "pid")}
                  for w in self.watchers}
        return all(d["healthy"] for d in detail.values()), detail

    async def drain(self, timeout: float) -> None:
        """Let each watcher finish its batch (hand-off, flag, watermark) and log out, within `timeout`."""
        for w in self.watchers:
            w.stop()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                log.warning("imap.drain_timeout", task=task.get_name())
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def stop(self) -> None:
        """Close the state file (after `drain`: no watcher writes to it any more)."""
        await self.state.close()


__all__ = ["ImapChannel", "MailboxWatcher", "source_of"]
