"""The supervisor: what `casegate run` without `--role` runs, so the embedded default uses every core
(one process is capped by one GIL).

It runs `[run] processes` ingest processes ("auto": one per CPU it may use) and one worker process,
each `python -m casegate.ingest.app.supervised` (ingest/app/supervised.py) with the same config file and `CASEGATE_*`
environment plus a few overrides of its own:
- ingest processes share the SMTP and HTTP ports (SO_REUSEPORT: the kernel spreads connections over
  them; a port set to 0 is chosen once here); only `ingest-1` fetches the IMAP mailboxes;
- the worker listens on neither port (it would take a share of the webhook connections);
- each process's admin listener is on an ephemeral loopback port, which it reports back on a pipe once
  its listeners are up. The configured `[admin]` port is the supervisor's (ingest/app/supervisor_admin.py):
  one address for probes and scraping, readiness and metrics of every process;
- none migrates the case store: the supervisor has, once, before starting them. It also makes the
  shared SQLite files (bus log, blob pack) first, so processes starting together do not race to create
  them. Those files take several processes by design (SQLite locks; each process group-commits).
Ingest and worker processes meet only through the bus, so either may restart without the other.

A process that dies is restarted after a back-off (ingest/backoff.py: 0.5 s doubling to 30 s; again
0.5 s once it had run a minute), logged as `supervisor.child_exited`. One that exits with code 2 (it
cannot start with these settings: a port taken, the store unusable) stops the supervisor with exit 2
and its message.

SIGTERM or SIGINT: the ingest processes get SIGTERM first (they answer 421, finish the hand-offs under
way, exit), then the worker (it works the bus off, commits, exits), each phase bounded by
`worker.drain_timeout` plus a few seconds before SIGKILL; then exit 0. The processes run in process
groups of their own, so a terminal's Ctrl-C reaches only the supervisor and the order holds; and they
die with it (Linux parent-death signal), so kill -9 of the supervisor is kill -9 of the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time

import structlog
from casegate.config import Settings
from casegate.ingest.app.daemon import StartupError, open_store
from casegate.ingest.app.supervisor_admin import ProcessState, SupervisorAdmin, SupervisorMetrics
from casegate.ingest.backoff import Backoff, pause
from casegate.ingest.bus.base import BusUnavailable
from casegate.ingest.bus.blobs import BlobStore, BlobStoreError
from casegate.ingest.bus.local import LocalBus
from casegate.ingest.bus.sqlite_writer import WriterError
from casegate.ingest.listeners.connection_guard import ConnectionGuard, http_refusal
from casegate.ingest.listeners.http import HttpListener

log = structlog.get_logger("casegate.supervisor")

EXIT_USAGE = 2
RESTART_INITIAL = 0.5
RESTART_MAX = 30.0
STABLE_AFTER = 60.0
"""Seconds a process must have run for its next restart to come after RESTART_INITIAL again."""
EXIT_GRACE = 5.0
"""Seconds beyond worker.drain_timeout a process gets to exit after SIGTERM before it is killed."""


def ingest_processes(settings: Settings) -> int:
    """How many ingest processes to run: `[run] processes`, "auto" = the CPUs this process may use."""
    if settings.run.processes != "auto":
        return settings.run.processes
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def claim_port(section: str, host: str, port: int) -> int:
    """Check that nothing listens on host:port (SO_REUSEPORT would otherwise let our processes share
    it silently with another daemon) and return the port (0: a free one, chosen now)."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, address in infos:
            s = socket.socket(family, kind, proto)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((address[0], port, *address[2:]))
            port = s.getsockname()[1]
        return port
    except OSError as e:
        raise StartupError(f"cannot listen on {host}:{port} ({section}.host / {section}.port): "
                           f"{e.strerror or e}") from None
    finally:
        for s in sockets:
            s.close()


class Child:
    """One supervised process: how to start it, and the process of its current run."""

    def __init__(self, name: str, role: str, command: list[str], env: dict[str, str]):
        self.name = name
        self.role = role
        self.command = command
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.admin_port: int | None = None
        """Its loopback admin port, once this run reported its listeners up."""
        self.error: str | None = None
        """Why this run could not start, as it reported it."""
        self.restarts = 0
        self.backoff = Backoff(RESTART_INITIAL, RESTART_MAX)
        """The wait before its next restart; reset once a run lasted STABLE_AFTER."""
        self.started_at = 0.0
        self.up = asyncio.Event()
        """Set when this run reported its listeners up."""
        self.ever_up = asyncio.Event()
        self._reports: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def state(self) -> ProcessState:
        return ProcessState(self.name, self.role, self.pid, self.admin_port if self.running else None,
                            self.restarts)

    async def spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command, "--report-fd", str(write_fd), stdin=asyncio.subprocess.DEVNULL, env=self.env,
                pass_fds=(write_fd,), process_group=0)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.admin_port, self.error, self.up = None, None, asyncio.Event()
        self.started_at = time.monotonic()
        self._reports = asyncio.create_task(self._read_reports(read_fd), name=f"reports-{self.name}")

    async def _read_reports(self, fd: int) -> None:
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
        try:
            async for line in reader:
                with contextlib.suppress(ValueError, TypeError):
                    report = json.loads(line)
                    if "admin_port" in report:
                        self.admin_port = int(report["admin_port"])
                        self.up.set()
                        self.ever_up.set()
                    if "error" in report:
                        self.error = str(report["error"])
        finally:
            transport.close()

    async def wait(self) -> int:
        """The exit status of this run, once it ended and its last report is read."""
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._reports is not None:  # EOF comes with the exit; bounded in case a descendant holds it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reports), 2)
        return rc

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


class Supervisor:
    def __init__(self, settings: Settings, config_path: str | None = None):
        self.settings = settings
        self.config_path = config_path
        self.children: list[Child] = []
        self.metrics = SupervisorMetrics()
        self.phase = "starting"
        """starting → running → stopping: what /readyz says before the processes' own answers."""
        self.ports: dict[str, int] = {}
        self.admin_port = 0
        self._admin: HttpListener | None = None
        self._stop = asyncio.Event()
        self._fatal: str | None = None

    async def run(self) -> int:
        """Prepare, start every process, supervise until SIGTERM/SIGINT, stop them in order. Returns the
        exit status; raises StartupError (exit 2) saying what to fix."""
        structlog.contextvars.bind_contextvars(process="supervisor")
        await self._prepare()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)
        watchers: list[asyncio.Task[None]] = []
        clean = True
        try:
            await self._start_admin()
            self.children = self._plan()
            watchers = [asyncio.create_task(self._watch(c), name=f"watch-{c.name}") for c in self.children]
            await self._started()
            await self._stop.wait()
        finally:
            self.phase = "stopping"
            self._stop.set()
            clean = await self._stop_children()
            await asyncio.gather(*watchers, return_exceptions=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self._admin is not None:
                await self._admin.stop()
        if self._fatal is not None:
            raise StartupError(self._fatal)
        log.info("supervisor.stopped", clean=clean)
        return 0 if clean else 1

    # -- before any process starts -------------------------------------------------------------
    async def _prepare(self) -> None:
        s = self.settings
        db = await open_store(s)  # migrated here, once (SQLite by default); the processes only check it
        await db.dispose()
        try:
            if s.bus.driver == "local":
                bus = LocalBus(s.bus_path, s.bus.local)
                await bus.start()
                await bus.stop()
            blobs = BlobStore(s.blob_path, fsync=s.blobs.fsync, pack_max_size=s.blobs.pack_max_size,
                              busy_timeout=s.blobs.busy_timeout)
            try:
                blobs.ping()
                if s.blobs.pack_max_size > 0:
                    await blobs.pack.query("SELECT 1")
            finally:
                await blobs.close()
        except (BusUnavailable, BlobStoreError, WriterError) as e:
            raise StartupError(f"cannot start: {type(e).__name__}: {e}") from e
        if s.smtp.enabled:
            self.ports["smtp"] = claim_port("smtp", s.smtp.host, s.smtp.port)
        if s.http.enabled:
            self.ports["http"] = claim_port("http", s.http.host, s.http.port)

    async def _start_admin(self) -> None:
        s = self.settings
        if not s.admin.enabled:
            return
        admin = SupervisorAdmin(lambda: [c.state() for c in self.children], lambda: self.phase, self.metrics)
        guard = ConnectionGuard("admin", s.admin.max_connections, 0, http_refusal)
        self._admin = HttpListener(admin.app(), guard, host=s.admin.host, port=s.admin.port,
                                   header_timeout=s.http.header_timeout, keepalive_timeout=s.http.keepalive_timeout)
        try:
            self.admin_port = await self._admin.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {s.admin.host}:{s.admin.port} (admin.host / admin.port): "
                               f"{e.strerror or e}") from None

    def _plan(self) -> list[Child]:
        s = self.settings
        base = [sys.executable, "-m", "casegate.ingest.app.supervised", "--parent", str(os.getpid())]
        if self.config_path:
            base += ["--config", self.config_path]
        common = {"CASEGATE_STORE__AUTO_MIGRATE": "false"}
        if s.admin.enabled:
            common |= {"CASEGATE_ADMIN__HOST": "127.0.0.1", "CASEGATE_ADMIN__PORT": "0"}
        ingest = {"CASEGATE_SMTP__REUSE_PORT": "true", "CASEGATE_HTTP__REUSE_PORT": "true"}
        for section, port in self.ports.items():
            ingest[f"CASEGATE_{section.upper()}__PORT"] = str(port)
        children = []
        for k in range(1, ingest_processes(s) + 1):
            own = ingest | ({} if k == 1 else {"CASEGATE_MAILBOXES": "[]"})  # one fetcher per mailbox
            children.append(Child(f"ingest-{k}", "ingest", [*base, "--role", "ingest", "--name", f"ingest-{k}"],
                                  {**os.environ, **common, **own}))
        worker = {"CASEGATE_SMTP__ENABLED": "false", "CASEGATE_HTTP__ENABLED": "false"}
        children.append(Child("worker", "worker", [*base, "--role", "worker", "--name", "worker"],
                              {**os.environ, **common, **worker}))
        return children

    # -- running -------------------------------------------------------------------------------
    async def _started(self) -> None:
        """Until every process reported its listeners up once (or a stop came first)."""
        async def all_up() -> None:
            for c in self.children:
                await c.ever_up.wait()

        async def stopped() -> None:
            await self._stop.wait()

        waits = [asyncio.create_task(all_up()), asyncio.create_task(stopped())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits:
                t.cancel()
        if self._stop.is_set():
            return
        self.phase = "running"
        log.info("supervisor.started", processes={c.name: c.pid for c in self.children}, admin_port=self.admin_port,
                 smtp_port=self.ports.get("smtp"), http_port=self.ports.get("http"))

    async def _watch(self, child: Child) -> None:
        """Run `child` until the supervisor stops, restarting it when it dies."""
        while not self._stop.is_set():
            try:
                await child.spawn()
            except OSError as e:
                self._fail(f"cannot start process {child.name}: {e.strerror or e}")
                return
            if self._stop.is_set():  # a stop came while it was being started
                child.signal(signal.SIGTERM)
            exited = asyncio.create_task(child.wait())
            up = asyncio.create_task(child.up.wait())
            await asyncio.wait([exited, up], return_when=asyncio.FIRST_COMPLETED)
            up.cancel()
            if child.up.is_set():
                self.metrics.up.labels(child.name).set(1)
                if child.restarts:
                    log.info("supervisor.child_up", process=child.name, pid=child.pid, restarts=child.restarts)
            pid = child.proc.pid if child.proc is not None else None
            rc = await exited
            self.metrics.up.labels(child.name).set(0)
            if self._stop.is_set():
                return
            if rc == EXIT_USAGE:
                self._fail(child.error or f"process {child.name} exited with code 2 (it cannot run with these "
                                          "settings); see its log")
                return
            ran = time.monotonic() - child.started_at
            if ran >= STABLE_AFTER:
                child.backoff.reset()
            delay = child.backoff.next()
            log.error("supervisor.child_exited", process=child.name, pid=pid, exit_code=rc if rc >= 0 else None,
                      signal=signal.Signals(-rc).name if rc < 0 else None, ran_s=round(ran, 1),
                      restart_in_s=delay)
            if not await pause(delay, self._stop):
                child.restarts += 1
                self.metrics.restarts.labels(child.name).inc()

    def _fail(self, message: str) -> None:
        if self._fatal is None:
            self._fatal = message
            log.error("supervisor.child_failed", error=message)
        self._stop.set()

    def _signalled(self, sig: int) -> None:
        if self._stop.is_set():
            log.info("supervisor.already_stopping", signal=signal.Signals(sig).name)
            return
        log.info("supervisor.stopping", signal=signal.Signals(sig).name)
        self._stop.set()

    # -- stopping ------------------------------------------------------------------------------
    async def _stop_children(self) -> bool:
        """Ingest processes first, then the worker; False if one had to be killed or failed to stop."""
        budget = self.settings.worker.drain_timeout + EXIT_GRACE
        ingest = await self._terminate([c for c in self.children if c.role == "ingest"], budget)
        worker = await self._terminate([c for c in self.children if c.role == "worker"], budget)
        return ingest and worker

    async def _terminate(self, children: list[Child], timeout: float) -> bool:
        running = [c for c in children if c.running and c.proc is not None]
        for c in running:
            c.signal(signal.SIGTERM)
        if not running:
            return True
        waits: list[asyncio.Task[int]] = [asyncio.create_task(c.proc.wait()) for c in running if c.proc is not None]
        await asyncio.wait(waits, timeout=timeout)
        clean = True
        for c in running:
            assert c.proc is not None
            if c.running:
                log.error("supervisor.child_killed", process=c.name, pid=c.proc.pid,
                          reason=f"still running {timeout:g} s after SIGTERM")
                c.signal(signal.SIGKILL)
                await c.proc.wait()
                clean = False
            elif c.proc.returncode not in (0, -signal.SIGTERM):  # -SIGTERM: stopped before its handler was set
                log.error("supervisor.child_stop_failed", process=c.name, pid=c.proc.pid, exit_code=c.proc.returncode)
                clean = False
        for t in waits:
            t.cancel()
        return clean
