"""Benchmark: IMAP mailbox → committed support case, against a real Dovecot (tests/dovecot.py).

What it prints:

- **drain, 1 mailbox**: N mails are delivered over LMTP into one mailbox first; then the daemon (all
  roles, in this process, on this event loop) starts and the clock runs until the case store holds N
  cases (the clock starts once the daemon has started: Kafka's group join is not counted).
  Messages/s = N / that time; also when the watermarks reached N (everything on the bus).
- **drain, K mailboxes** (default 4): the same N mails spread over K mailboxes, fetched in parallel.
- with `--ingest-only`, both drains again with `--role ingest` (no worker on the same event loop):
  how fast the IMAP channel alone puts mail on the bus.
- **IDLE → case latency**: with the daemon idling (IDLE on, poll interval an hour), M mails are
  delivered one at a time; each one's latency runs from the start of the LMTP delivery to the moment
  its case is committed; p50 / p99 / max. Dovecot itself waits ~0.5 s before it tells an IDLE
  client (NOTIFY_DELAY_MSECS), so that is the floor.
- the process's peak RSS (the daemon and the load generator share it here).

Configurations (`--config`): `local-sqlite` (default: SQLite store + local bus in a temp dir) or
`kafka-postgres` (a private tansu broker + a fresh PostgreSQL database, dropped afterwards).

    .venv/bin/python -m tests.bench.imap_to_case                    # N=2000, K=4, M=40, local-sqlite
    .venv/bin/python -m tests.bench.imap_to_case --n 500 --latency 20 --config kafka-postgres
    .venv/bin/python -m tests.bench.imap_to_case --ingest-only          # + IMAP -> bus without the worker

Needs root and Debian's dovecot-imapd + dovecot-lmtpd (the test peer drops privileges itself).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from casegate.config import Settings
from casegate.ingest.app.daemon import Daemon
from casegate.ingest.app.log_setup import configure_logging
from casegate.store.models import Case
from sqlalchemy import func, select

from tests.dovecot import Dovecot, start_dovecot
from tests.pipeline import mail, migrate, settings_for


def _box(dv: Dovecot, user: str, name: str, batch: int) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": dv.imap_port, "tls": False, "username": user,
            "password": Dovecot.PASSWORD, "routing_address": "support@localhost", "poll_interval": 3600,
            "fetch_batch": batch, "retry_initial": 0.2, "retry_max": 2.0}


async def _count(daemon: Daemon) -> int:
    assert daemon.db is not None
    async with daemon.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(Case))).scalar_one())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def _deployment(kind: str) -> Iterator[Callable[[Path, list[dict[str, Any]]], Settings]]:
    """Settings factory for the configuration; tansu and the database live for the whole run."""
    kafka = pg = None
    cleanup: list[Callable[[], None]] = []
    if kind == "kafka-postgres":
        from tests.services import _create_database, _drop_database, start_tansu

        broker = start_tansu()
        cleanup.append(broker.stop)
        kafka = broker.bootstrap
    try:
        def make(folder: Path, boxes: list[dict[str, Any]]) -> Settings:
            nonlocal pg
            if kind == "kafka-postgres":  # a fresh database per pass: case numbers and counts start at 0
                name, pg = _create_database()
                cleanup.append(lambda: _drop_database(name))
            return settings_for(kind, folder, kafka=kafka, pg=pg, mailboxes=boxes, smtp={"enabled": False},
                                http={"enabled": False})
        yield make
    finally:
        for fn in reversed(cleanup):
            fn()


async def _start(settings: Settings, role: str = "all") -> Daemon:
    if settings.store.url.startswith("postgresql"):
        await migrate(settings.store.url)
    daemon = Daemon(settings, role)
    await daemon.start()
    return daemon


async def drain_pass(dv: Dovecot, make: Callable[..., Settings], folder: Path, n: int, k: int,
                     batch: int, role: str) -> dict[str, float]:
    users = [dv.new_user(f"bench{k}x") for _ in range(k)]
    started = time.monotonic()
    for i in range(k):
        raws = [mail(f"question {i}-{j}", f"body {j}", sender=f"Customer {j % 200} <c{j % 200}@example.org>")[0]
                for j in range(i, n, k)]
        await asyncio.to_thread(dv.deliver_many, users[i], raws)
    delivered = time.monotonic() - started
    settings = make(folder, [_box(dv, u, f"mb{i}", batch) for i, u in enumerate(users)])
    daemon = await _start(settings, role)  # the mailbox tasks start last: the clock starts now
    t0 = time.monotonic()
    bus_done = 0.0
    try:
        assert daemon.imap is not None
        while True:
            if not bus_done and sum(w.status.last_uid for w in daemon.imap.watchers) >= n:
                bus_done = time.monotonic() - t0
                if role == "ingest":
                    break
            if role == "all" and await _count(daemon) >= n:
                break
            if time.monotonic() - t0 > 600:
                    raise RuntimeError(f"not done after 600 s: {[w.status for w in daemon.imap.watchers]}")
            await asyncio.sleep(0.025)
        elapsed = time.monotonic() - t0
    finally:
        await daemon.stop()
    return {"delivered_per_s": n / delivered, "elapsed": elapsed, "rate": n / elapsed,
            "bus_elapsed": bus_done or elapsed, "bus_rate": n / (bus_done or elapsed)}


async def latency_pass(dv: Dovecot, make: Callable[..., Settings], folder: Path, m: int) -> list[float]:
    user = dv.new_user("latency")
    daemon = await _start(make(folder, [_box(dv, user, "latency", 20)]))
    out: list[float] = []
    try:
        assert daemon.imap is not None
        watcher = daemon.imap.watchers[0]
        end = time.monotonic() + 30
        while watcher.status.state != "idle" or watcher.status.last_success_at is None:
            if time.monotonic() > end:
                raise RuntimeError(f"mailbox not idling: {watcher.status}")
            await asyncio.sleep(0.02)
        for i in range(m):
            raw, _ = mail(f"latency {i}", sender=f"Lat {i} <lat{i}@example.org>")
            t0 = time.monotonic()
            await asyncio.to_thread(dv.deliver, user, raw)
            while await _count(daemon) < i + 1:
                if time.monotonic() - t0 > 30:
                    raise RuntimeError(f"mail {i} not a case after 30 s")
                await asyncio.sleep(0.005)
            out.append(time.monotonic() - t0)
            await asyncio.sleep(0.05)
    finally:
        await daemon.stop()
    return out


async def main_async(args: argparse.Namespace) -> None:
    dv = start_dovecot()
    root = Path(tempfile.mkdtemp(prefix="casegate-bench-imap-"))
    try:
        with _deployment(args.config) as make:
            print(f"config {args.config}; N={args.n} mails, fetch_batch={args.batch}; host load "
                  f"{os.getloadavg()[0]:.2f}; Dovecot {dv.imap_port}/{dv.lmtp_port}")
            for role in ("all", "ingest") if args.ingest_only else ("all",):
                for k in (1, args.k):
                    r = await drain_pass(dv, make, root / f"drain-{role}-{k}", args.n, k, args.batch, role)
                    what = (f"{r['rate']:6.0f} msg/s into cases ({args.n} in {r['elapsed']:.2f} s); "
                            if role == "all" else "IMAP -> bus only (no worker): ")
                    print(f"drain, {k} mailbox{'es' if k > 1 else ''}: {what}on the bus after "
                          f"{r['bus_elapsed']:.2f} s ({r['bus_rate']:.0f} msg/s); LMTP delivery beforehand "
                          f"{r['delivered_per_s']:.0f} msg/s")
            lat = await latency_pass(dv, make, root / "latency", args.latency)
            print(f"IDLE -> case latency over {len(lat)} mails: p50 {_pct(lat, .5) * 1000:.0f} ms, "
                  f"p99 {_pct(lat, .99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
                  f"min {min(lat) * 1000:.0f} ms")
            print(f"peak RSS (daemon + load generator, one process): "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        dv.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="mails per drain pass (default 2000)")
    p.add_argument("--k", type=int, default=4, help="mailboxes of the parallel pass (default 4)")
    p.add_argument("--batch", type=int, default=20, help="fetch_batch (default 20, the setting's default)")
    p.add_argument("--latency", type=int, default=40, help="mails of the latency pass (default 40)")
    p.add_argument("--config", choices=["local-sqlite", "kafka-postgres"], default="local-sqlite")
    p.add_argument("--ingest-only", action="store_true",
                   help="also run the drain passes with --role ingest (no worker): the IMAP fetch rate alone")
    args = p.parse_args()
    configure_logging("warning", json=False)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
