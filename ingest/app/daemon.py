"""The daemon: builds the parts a process's roles need from the settings, runs them on one event
loop, and stops them in order on SIGTERM — stop accepting (421), finish the hand-offs under way,
let the worker finish and commit its batch, close the bus and the store, exit 0.

Roles: `ingest` (channels → bus), `worker` (bus → case store); `all` runs both (the embedded default).
Listeners: SMTP (ingest role), the public HTTP port (`/healthz`; webhooks in the ingest role, the
routes that read the case store, such as the CTI screen pop, in every role) and the admin port
(`/healthz`, `/readyz`, `/metrics`; started last, so a ready answer means every listener is up). Each
has a cap on open connections fitted into the open-file limit at start (ingest/listeners/descriptor_budget.py),
and accept() failures are logged once per interval (ingest/listeners/accept_errors.py). The daemon holds
them, the IMAP mailboxes too, as `Listener`s (ingest/listeners/base.py) in the order started, and stops
them in two phases: each drains before the worker's last batch, each is closed after it commits. SMTP
and the HTTP listeners fit that protocol through the two small adapters here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from casegate.config import Settings, SmtpSettings
from casegate.ingest.app.health import Check, admin_app, public_app
from casegate.ingest.app.thread_key import thread_secret
from casegate.ingest.backoff import pause
from casegate.ingest.bus import Bus, open_bus
from casegate.ingest.bus.blobs import BlobStore
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.channels.imap import ImapChannel
from casegate.ingest.channels.imap_state import state_path
from casegate.ingest.channels.registry import mount_channels
from casegate.ingest.channels.smtp import SmtpHandler, start_smtp
from casegate.ingest.channels.webhook import ChannelContext
from casegate.ingest.listeners.accept_errors import AcceptErrorLog
from casegate.ingest.listeners.base import Listener
from casegate.ingest.listeners.connection_guard import ConnectionGuard, http_refusal, smtp_refusal
from casegate.ingest.listeners.descriptor_budget import (
    ConnectionCaps,
    DescriptorBudgetError,
    plan_caps,
    raise_descriptor_limit,
)
from casegate.ingest.listeners.http import HttpListener, count_responses
from casegate.ingest.worker.consumer import Worker
from casegate.ingest.worker.outbox import OutboxSender
from casegate.ingest.worker.reply_sender import ReplySender
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.channel_policy import channel_policies
from casegate.store.database import Database
from casegate.store.migrate import current_revision, head_revision, known_revision, sqlite_file, store_name, upgrade
from casegate.store.owners import ensure_owners

log = structlog.get_logger("casegate.daemon")
ROLES = ("all", "ingest", "worker")


class StartupError(Exception):
    """The daemon cannot start with these settings; the message says what to do."""


DATA_DIR_HINT = "run casegate in the folder it uses, or pass --config / set CASEGATE_DATA_DIR"
"""What to do when a file of the embedded default is not where the settings say: they are relative to the
working directory, so a command run from another folder looks for them there."""


async def open_store(settings: Settings, *, migrate: bool | None = None, create: bool = True) -> Database:
    """The case store, migrated if the settings say so, else checked to be at the current schema.

    `create=False` (the commands that only read): a SQLite file that is not there is a StartupError
    naming it, never created."""
    url = settings.store_url
    path = sqlite_file(url)
    if not create and path is not None and not path.exists():
        if settings.store.url:
            raise StartupError(f"no case store at {path} (store.url) — check store.url, or run `casegate db "
                               "upgrade` to create it")
        raise StartupError(f"no case store at {path} — {DATA_DIR_HINT} (`casegate run` or `casegate db upgrade` "
                           "creates a new one)")
    db = Database(url, pool_size=settings.store.pool_size, busy_timeout=settings.store.sqlite_busy_timeout)
    try:
        if settings.auto_migrate if migrate is None else migrate:
            await asyncio.to_thread(upgrade, url)
        async with db.engine.connect() as conn:
            have = await conn.run_sync(lambda c: current_revision(c))
    except StartupError:
        raise
    except Exception as e:
        await db.dispose()
        raise StartupError(f"case store {store_name(url)} unusable: {type(e).__name__}: {e}") from e
    if have != head_revision():
        await db.dispose()
        raise StartupError(_schema_advice(settings, have))
    return db


def _schema_advice(settings: Settings, have: str | None) -> str:
    """Why the store at the wrong schema cannot be used, naming it, and what migrates it."""
    name, head = store_name(settings.store_url), head_revision()
    if have is not None and not known_revision(have):
        return (f"case store {name} is at schema revision {have}, which this casegate does not know (it knows up "
                f"to {head}): it was migrated by a newer casegate; use that")
    state = "has never been migrated" if have is None else f"is at schema revision {have}"
    sqlite = sqlite_file(settings.store_url) is not None
    if settings.auto_migrate:
        how = "`casegate run` migrates it at start, or run `casegate db upgrade`"
    elif sqlite:
        how = "run `casegate db upgrade` (store.auto_migrate is false, so `casegate run` does not migrate it)"
    else:
        how = "run `casegate db upgrade` (PostgreSQL is never migrated implicitly)"
    return f"case store {name} {state}, this casegate needs {head}: {how}"


def owner_refs(settings: Settings) -> set[str]:
    """Every owner the settings name (rules, routing addresses, channel sections): resolved at start, so
    no message meets an owner the worker does not know."""
    refs = {settings.rules.default_owner, *(e.owner for e in settings.rules.assignment)}
    channels = settings.channels
    sections = [getattr(channels, name) for name in type(channels).model_fields]
    return refs | {r.owner for r in settings.routing if r.owner} | {c.owner for c in sections if c.owner}


async def make_worker(settings: Settings, db: Database, bus: Bus, blobs: BlobStore) -> Worker:
    """A worker on `bus` writing to `db`, its consumer started and the configured owners resolved; its cases
    follow `[case]` (statuses, defaults) and its contacts' Accounts `[accounts]`."""
    owners = await ensure_owners(db, owner_refs(settings))
    policy = CasePolicy({r.address: r for r in settings.routing}, settings.rules, owners, thread_secret(settings),
                        settings.loops, settings.outbound, channel_policies(settings), case=settings.case,
                        accounts=settings.accounts)
    consumer = bus.consumer(_group(settings), settings.bus.topic)
    await consumer.start()
    return Worker(bus, consumer, CaseService(db, policy), blobs, settings.worker, settings.bus.dead_letter_topic)


class SmtpListener:
    """The SMTP channel as a Listener: `handler` on the `[smtp]` port, each connection admitted by `guard`."""

    name = "smtp"

    def __init__(self, handler: SmtpHandler, settings: SmtpSettings, guard: ConnectionGuard) -> None:
        self.handler = handler
        self.settings = settings
        self.guard = guard
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await start_smtp(self.handler, self.settings, self.guard)

    @property
    def port(self) -> int:
        """The bound port (0 before `start`)."""
        return self.server.sockets[0].getsockname()[1] if self.server is not None else 0

    async def drain(self, timeout: float) -> None:
        """421 to new mail, the hand-offs under way finished (within `timeout`), then the port closed."""
        await self.handler.drain(timeout)
        if self.server is not None:
            self.server.close()
        self.guard.close()

    async def stop(self) -> None:
        """Nothing is left: `drain` closed the port."""


class ServingListener:
    """An HttpListener (the public or the admin port) as a Listener. It serves on while the worker
    drains (health, readiness, the routes reading the case store), so it has nothing to drain; `stop`
    lets the requests under way finish and closes it."""

    def __init__(self, name: str, http: HttpListener) -> None:
        self.name = name
        self.http = http

    async def start(self) -> None:
        await self.http.start()

    async def drain(self, timeout: float) -> None:
        """Nothing: it serves until the worker has committed."""

    async def stop(self) -> None:
        await self.http.stop()


class Daemon:
    def __init__(self, settings: Settings, role: str = "all"):
        if role not in ROLES:
            raise StartupError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        self.settings = settings
        self.ingest = role in ("all", "ingest")
        self.work = role in ("all", "worker")
        self.drain_bus = self.ingest
        """On SIGTERM the worker goes on until the bus is empty (bounded by drain_timeout): in one process
        with the channels, and in a supervised worker, stopped after its ingest processes (supervisor.py)."""
        self.bus: Bus = open_bus(settings)
        self.blobs = BlobStore(settings.blob_path, fsync=settings.blobs.fsync,
                               pack_max_size=settings.blobs.pack_max_size, busy_timeout=settings.blobs.busy_timeout)
        self.db: Database | None = None
        self.worker: Worker | None = None
        self.smtp: SmtpHandler | None = None
        self.imap: ImapChannel | None = None
        self.listeners: list[Listener] = []
        """Every listener started (or being started), in that order: drained, then stopped, in it too."""
        self.guards: dict[str, ConnectionGuard] = {}
        """The connection caps of each running listener (smtp, http, admin) and what they hold."""
        self.accept_errors = AcceptErrorLog()
        self.caps = ConnectionCaps(limit=0)
        self._worker_task: asyncio.Task[None] | None = None
        self.outbox: OutboxSender | None = None
        self._outbox_task: asyncio.Task[None] | None = None
        self.replies: ReplySender | None = None
        """Agents' replies on messaging channels, through their providers (worker role, when one is configured)."""
        self._replies_task: asyncio.Task[None] | None = None
        self._pending_task: asyncio.Task[None] | None = None
        self.channels: ChannelContext | None = None
        self.webhooks: list[str] = []
        self._stopping = asyncio.Event()
        self.smtp_port = 0
        self.http_port = 0
        self.admin_port = 0

    async def start(self) -> None:
        """Open the store and the bus, then start the roles; any failure undoes what was started and
        becomes a StartupError saying what to fix."""
        try:
            await self._start()
        except Exception as e:
            await self.stop()
            if isinstance(e, StartupError):
                raise
            raise StartupError(f"cannot start: {type(e).__name__}: {e}") from e

    async def _start(self) -> None:
        s = self.settings
        limit = raise_descriptor_limit()
        try:
            self.caps = plan_caps(s, limit, smtp=self.ingest and s.smtp.enabled, http=s.http.enabled,
                                  admin=s.admin.enabled)
        except DescriptorBudgetError as e:
            raise StartupError(str(e)) from None
        self.accept_errors.install(asyncio.get_running_loop())
        self.blobs.ping()
        if self.work:
            self.db = await open_store(s)
        await self.bus.start()

        async def blobs_ready() -> None:
            self.blobs.ping()

        checks: dict[str, Check] = {"bus": self.bus.ping, "blobs": blobs_ready}
        if self.db is not None:
            checks["store"] = self.db.ping
        if self.work:
            await self._start_worker()
        if self.ingest and s.smtp.enabled:
            publisher = Publisher(self.bus, self.blobs, s.bus.topic)
            self.smtp = SmtpHandler(publisher, [r.address for r in s.routing], s.smtp, s.postmaster_address,
                                    max_attachments=s.mail.max_attachments)
            guard = self.guards["smtp"] = ConnectionGuard("smtp", self.caps.smtp, s.smtp.max_connections_per_ip,
                                                          smtp_refusal(s.smtp.hostname))
            smtp = SmtpListener(self.smtp, s.smtp, guard)
            await self._listen(smtp, s.smtp.host, s.smtp.port)
            assert smtp.server is not None
            self.smtp_port = smtp.port
            self.accept_errors.name(smtp.server, "smtp")
        if self.ingest and s.mailboxes:  # one task per mailbox; a broken one degrades /readyz, never blocks
            self.imap = ImapChannel(s.mailboxes, Publisher(self.bus, self.blobs, s.bus.topic),
                                    state_path(s.data_path), max_attachments=s.mail.max_attachments)
            self.listeners.append(self.imap)
            await self.imap.start()
        if s.http.enabled:
            app = public_app()  # the ingest role: every webhook; the worker role: the routes reading the store
            self.channels = ChannelContext(Publisher(self.bus, self.blobs, s.bus.topic), s, self.db)
            self.webhooks = mount_channels(app, self.channels, ingest=self.ingest)
            count_responses(app)
            guard = self.guards["http"] = ConnectionGuard("http", self.caps.http, s.http.max_connections_per_ip,
                                                          http_refusal)
            http = HttpListener(app, guard, host=s.http.host, port=s.http.port, reuse_port=s.http.reuse_port,
                                header_timeout=s.http.header_timeout, keepalive_timeout=s.http.keepalive_timeout)
            await self._listen(ServingListener("http", http), s.http.host, s.http.port)
            assert http.server is not None
            self.http_port = http.port
            self.accept_errors.name(http.server, "http")
            if self.channels is not None:
                self.channels.port = self.http_port
        if s.admin.enabled:  # last: /readyz answers once every listener is up
            reports = {"mailboxes": self.imap.report} if self.imap is not None else None
            guard = self.guards["admin"] = ConnectionGuard("admin", self.caps.admin, 0, http_refusal)
            admin = HttpListener(admin_app(checks, reports=reports), guard, host=s.admin.host, port=s.admin.port,
                                 header_timeout=s.http.header_timeout, keepalive_timeout=s.http.keepalive_timeout)
            await self._listen(ServingListener("admin", admin), s.admin.host, s.admin.port)
            assert admin.server is not None
            self.admin_port = admin.port
            self.accept_errors.name(admin.server, "admin")
        log.info("daemon.started", ingest=self.ingest, worker=self.work, smtp_port=self.smtp_port,
                 http_port=self.http_port, admin_port=self.admin_port, bus=s.bus.driver,
                 store=s.store_url.split(":", 1)[0],
                 mailboxes=len(self.imap.watchers) if self.imap is not None else 0, webhooks=self.webhooks,
                 open_file_limit=self.caps.limit,
                 max_connections={"smtp": self.caps.smtp, "http": self.caps.http, "admin": self.caps.admin})

    async def _start_worker(self) -> None:
        assert self.db is not None
        self.worker = await make_worker(self.settings, self.db, self.bus, self.blobs)
        self._worker_task = asyncio.create_task(self._run_worker(self.worker), name="worker")
        if self.settings.outbound.enabled:
            self.outbox = OutboxSender(self.db, self.settings.outbound)
            self._outbox_task = asyncio.create_task(self.outbox.run(self._stopping), name="outbox")
        self.replies = await ReplySender.open(self.db, self.settings)
        if self.replies is not None:
            self._replies_task = asyncio.create_task(self.replies.run(self._stopping), name="replies")
        self._pending_task = asyncio.create_task(self._release_pending(self.worker), name="pending")

    async def _release_pending(self, worker: Worker) -> None:
        """Held-back web form submissions become cases as the daily cap allows (checked every minute)."""
        while not self._stopping.is_set():
            try:
                released = await worker.service.release_pending()
                if released:
                    log.info("worker.pending_released", cases=len(released))
            except Exception as e:
                log.warning("worker.pending_release_failed", error=f"{type(e).__name__}: {e}")
            await pause(60, self._stopping)

    async def _run_worker(self, worker: Worker) -> None:
        # All roles in one process: on SIGTERM, finish what the channels already put on the bus
        # (bounded by drain_timeout), so a stopped embedded daemon leaves nothing half-way.
        await worker.run(self._stopping)
        if self.drain_bus:
            deadline = asyncio.get_running_loop().time() + self.settings.worker.drain_timeout / 2
            await worker.run(self._stopping, drain_until=deadline)

    async def stop(self) -> None:
        """Stop accepting, drain, commit, close (in that order)."""
        timeout = self.settings.worker.drain_timeout
        for listener in self.listeners:  # SMTP: 421, its hand-offs finished, port closed; IMAP: each mailbox
            await listener.drain(timeout)  # finishes its batch (hand-off, flag, watermark), logs out
        self._stopping.set()
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(self._worker_task, timeout)
            except TimeoutError:
                log.warning("daemon.worker_drain_timeout")
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await self.worker.consumer.stop()
        if self._outbox_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._outbox_task, self.settings.outbound.timeout)
        if self._replies_task is not None and self.replies is not None:  # the send under way finishes
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._replies_task, self.replies.lease.total_seconds())
        if self._pending_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pending_task, 10)
        for listener in self.listeners:  # what is left: the HTTP ports (they served until now), IMAP's state file
            await listener.stop()
        await self._close_resources()
        self.accept_errors.uninstall()
        log.info("daemon.stopped")

    async def _close_resources(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.stop()
        with contextlib.suppress(Exception):
            await self.blobs.close()
        if self.db is not None:
            await self.db.dispose()

    async def _listen(self, listener: Listener, host: str, port: int) -> None:
        """Start `listener` on host:port (kept first, so that `stop` undoes a start that failed half-way);
        a StartupError naming its settings if the address cannot be had."""
        self.listeners.append(listener)
        try:
            await listener.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {host}:{port} ({listener.name}.host / {listener.name}.port): "
                               f"{e.strerror or e}") from e

    async def serve(self) -> None:
        """Start, run until SIGTERM or SIGINT, stop cleanly."""
        await self.start()
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        watch: list[asyncio.Task[object]] = [asyncio.create_task(done.wait())]
        if self._worker_task is not None:
            watch.append(self._worker_task)
        await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        if self._worker_task is not None and self._worker_task.done() and not done.is_set():
            log.error("daemon.worker_died", error=repr(self._worker_task.exception()))
        await self.stop()


def _group(settings: Settings) -> str:
    return settings.bus.kafka.group_id if settings.bus.driver == "kafka" else "casegate-worker"

