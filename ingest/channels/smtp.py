"""The SMTP channel (aiosmtpd on the daemon's own event loop): mail servers hand mail over here.

Accepts only the configured routing addresses (550 5.1.1 otherwise: never an open relay) and
`postmaster` (RFC 5321 §4.5.1: bare, or at the domain of a routing address), delivered as if sent to
`smtp.postmaster` (the first routing address by default); refuses oversize mail (552), answers 250 only
once the raw message is in the blob store and the envelope on the bus, 451 4.3.0 when either failed (the
sending MTA keeps the mail and retries), 421 while shutting down. A mail is never refused with 5xx for
what it contains: an unexpected error once the raw message is stored makes it a dead letter (accepted,
see ingest/mail/handoff.py), and any error before that, or while dead-lettering, is a 451. STARTTLS is
offered when a certificate is configured. Connections over `smtp.max_connections` or
`smtp.max_connections_per_ip` get `421 4.7.0` at once (ingest/listeners/connection_guard.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Collection
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from casegate.config import SmtpSettings
from casegate.ingest.bus import BusError
from casegate.ingest.bus.blobs import BlobStoreError
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.listeners.connection_guard import (
    ACCEPTS_PER_TURN,
    ConnectionGuard,
    GuardedConnection,
    Slot,
    deepen_backlog,
)
from casegate.ingest.mail.handoff import HANDOFF_ERROR, hand_off_mail
from casegate.ingest.mail.mime import MAX_ATTACHMENTS
from casegate.ingest.mail.smtp_data import read_data
from casegate.ingest.metrics import SMTP_REFUSED

log = structlog.get_logger("casegate.smtp")
aiosmtpd_log = logging.getLogger("mail.log")

REFUSED_RCPT = "550 5.1.1 Recipient address rejected: not a support address of this server"
TEMPFAIL = "451 4.3.0 Temporary ingestion failure, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


class SmtpHandler:
    """aiosmtpd handler: RCPT decides routing, DATA does the durable hand-off."""

    def __init__(self, publisher: Publisher, routing: Collection[str], settings: SmtpSettings,
                 postmaster: str | None = None, *, max_attachments: int = MAX_ATTACHMENTS):
        self.publisher = publisher
        self.max_attachments = max_attachments
        """Parts of one mail stored as attachments (`[mail] max_attachments`)."""
        self.routing = {a.lower() for a in routing}
        self.domains = {a.rpartition("@")[2] for a in self.routing}
        self.postmaster = postmaster.lower() if postmaster else None
        """The routing address mail to postmaster goes to (None: postmaster is refused like any stranger)."""
        self.settings = settings
        self.closing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # no AUTH: mail servers hand mail over unauthenticated to a routing address (aiosmtpd would
        # otherwise advertise LOGIN/PLAIN after STARTTLS and refuse every login)
        offered = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        return [*offered, "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str,
                          mail_options: list[str]) -> str:
        if self.closing:
            SMTP_REFUSED.labels("421").inc()
            return SHUTTING_DOWN
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.closing:
            SMTP_REFUSED.labels("421").inc()
            return SHUTTING_DOWN
        if address.lower() not in self.routing:
            routed = self.postmaster_of(address)
            if routed is None:
                log.info("smtp.rcpt_refused", channel="email", peer=str(session.peer))
                SMTP_REFUSED.labels("550").inc()
                return REFUSED_RCPT
            log.info("smtp.postmaster", channel="email", peer=str(session.peer), routed_to=routed)
            address = routed
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            SMTP_REFUSED.labels("452").inc()
            return "452 4.5.3 Too many recipients"
        if address.lower() not in (r.lower() for r in envelope.rcpt_tos):
            envelope.rcpt_tos.append(address)
        return "250 OK"

    def postmaster_of(self, address: str) -> str | None:
        """The routing address for `address` if it is postmaster: `postmaster` without a domain (any
        case) or `postmaster@<the domain of a routing address>`; else None."""
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if self.postmaster is None or local.lower() != "postmaster":
            return None
        return self.postmaster if not at or domain.lower() in self.domains else None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        if self.closing:
            SMTP_REFUSED.labels("421").inc()
            return SHUTTING_DOWN
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._hand_off(envelope)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def _hand_off(self, smtp_envelope: SmtpEnvelope) -> str:
        raw = smtp_envelope.original_content or b""
        try:
            env = await hand_off_mail(self.publisher, raw, smtp_envelope.mail_from or "",
                                      tuple(a.lower() for a in smtp_envelope.rcpt_tos),
                                      max_attachments=self.max_attachments)
        except (BusError, BlobStoreError) as e:  # not durable: the MTA keeps the mail and retries
            log.warning("smtp.tempfail", channel="email", reason=str(e), size=len(raw))
            SMTP_REFUSED.labels("451").inc()
            return TEMPFAIL
        except Exception:  # never a 5xx for a mail we may not have kept: the MTA keeps it and retries
            log.exception("smtp.tempfail", channel="email", size=len(raw))
            SMTP_REFUSED.labels("451").inc()
            return TEMPFAIL
        log.info("smtp.accepted", channel="email", external_id=env.external_id, envelope_id=env.id,
                 size=len(raw), **({"dead_lettered": True} if HANDOFF_ERROR in env.meta else {}))
        return f"250 2.0.0 OK queued as {env.id}"

    async def drain(self, timeout: float) -> None:
        """Refuse new mail (421) and wait for hand-offs already under way."""
        self.closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("smtp.drain_timeout", in_flight=self.in_flight)


_PLAIN_ANGLE_ADDR = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(?:\s+(.*))?", re.DOTALL)


class CasegateSMTP(SMTP):
    """aiosmtpd's SMTP session with a fast path for the address of MAIL and RCPT: the common
    `<local@domain> [params]` is read with one regular expression instead of the RFC 5322 parser,
    which builds a class on every call (about a tenth of the CPU of a mail). Anything else — quoted
    local parts, source routes, UTF-8, the null sender — goes to aiosmtpd's parser as before. The
    content of DATA is read in bulk (ingest/mail/smtp_data.py) rather than line by line, with the same
    limits and answers.

    `slot` is the session's place under the listener's connection caps, given back when the connection
    is lost (here too: after STARTTLS the transport reports to the TLS layer, which tells this session,
    not the guarded wrapper)."""

    def __init__(self, *args: Any, slot: Slot | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._slot = slot
        self._idle_deadline = 0.0

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd's idle timeout, restarted on every command; its timer is moved only when it fires
        early (aiosmtpd cancels and makes a timer for each command: a tenth of a session's CPU)."""
        seconds = duration or self._timeout_duration
        deadline = self.loop.time() + seconds
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(deadline, self._idle_timer)
        self._idle_deadline = deadline

    def _idle_timer(self) -> None:
        if self.loop.time() < self._idle_deadline:  # a command came meanwhile
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_timer)
        else:
            self._timeout_cb()  # type: ignore[no-untyped-call]  # aiosmtpd's, untyped

    def connection_lost(self, error: Exception | None) -> None:
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (its checks and answers, its DATA hook), the content read by `read_data`. A
        session configured otherwise than casegate's (decoding the content, without a DATA hook or a
        size limit) runs aiosmtpd's own."""
        if self._decode_data or "DATA" not in self._handle_hooks or not self.data_size_limit:
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:  # the connection was reset during DATA
            aiosmtpd_log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if isinstance(content, str):  # a limit was broken: the answer, once the rest was read
            await self.push(content)
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd's, untyped
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd's, untyped
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_ANGLE_ADDR.fullmatch(arg.strip())
        if plain is None:
            return super()._getaddr(arg)
        addr = plain.group(1)
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, plain.group(2) or ""


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


async def start_smtp(handler: SmtpHandler, settings: SmtpSettings, guard: ConnectionGuard) -> asyncio.Server:
    """Listen on the daemon's own loop, each connection admitted by `guard`; returns the server (its
    sockets tell the bound port)."""
    ctx = tls_context(settings)
    loop = asyncio.get_running_loop()

    def session(slot: Slot) -> SMTP:
        return CasegateSMTP(handler, data_size_limit=settings.max_message_size, enable_SMTPUTF8=True,
                            decode_data=False, hostname=settings.hostname, ident="casegate ESMTP",
                            tls_context=ctx, require_starttls=False, loop=loop, slot=slot)

    def factory() -> GuardedConnection:
        return GuardedConnection(guard, session)

    server = await loop.create_server(factory, host=settings.host, port=settings.port,
                                      reuse_port=settings.reuse_port or None, backlog=ACCEPTS_PER_TURN)
    deepen_backlog(server)
    return server
