"""Benchmark: signed Twilio SMS webhooks in → committed support cases out, against real `casegate run`
processes (the same process handling as smtp_to_case.py, whose helpers it uses).

Each webhook is an inbound SMS shaped and signed exactly as Twilio sends it (form-encoded,
X-Twilio-Signature over the daemon's URL + the sorted fields, computed with twilio's RequestValidator
before the clock starts), from a distinct phone number, so N webhooks make N cases. Per pass:

- webhooks/s accepted: N / (first request → last 200); every answer must be 200 (the bus has it);
- HTTP latency per request (request start → response read): p50 / p99 / max; paced passes also
  report p99 from each request's *scheduled* time (no coordinated omission);
- cases/s: N / (first request → the store holds N cases), i.e. what the worker turned into cases;
- the daemon's peak RSS (VmHWM) and the CPU of the daemon(s) and of this load generator.

Passes (`--modes`): `max` = K connections send back to back (closed loop); `rate<R>` = open loop, request
i is due at t0 + i/R on connection i % K. Configurations (`--config`): `local-sqlite` (embedded bus +
SQLite) and `kafka-postgres` (a private tansu broker + a fresh PostgreSQL database). Roles (`--roles`):
`one` all-roles process, `split` worker + ingest processes (`--worker-nice N` lowers the worker's CPU
priority), `supervisor` (`casegate run`: its ingest processes and worker, measured one by one), or `ingest`
alone (what is accepted into the bus; no cases). Every pass gets a fresh store, bus and daemon.
Targets (issue 4): ≥ 4,000 signed webhooks/s accepted; p99 < 20 ms at 1,000/s.

    .venv/bin/python -m tests.bench.webhooks_to_case                          # both configs, max + rate1000
    .venv/bin/python -m tests.bench.webhooks_to_case --config local-sqlite --n 20000 --k 32
    .venv/bin/python -m tests.bench.webhooks_to_case --modes max --profile /tmp/prof  # cProfile the daemon
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # no py.typed

from tests.bench.smtp_to_case import (
    DEFAULT_PG,
    BenchError,
    DaemonProcess,
    Daemons,
    PgDatabase,
    ProcFigures,
    Tansu,
    apply_settings,
    count_cases,
    fmt,
    free_port,
    log_summary,
    parse_mode,
    percentile,
    proc_cpu_seconds,
    proc_status,
    setting,
    start_deployment,
    tail,
    wait_for_cases,
)

CONFIGS = ("local-sqlite", "kafka-postgres")
TOKEN = "bench0123456789abcdef0123456789ab"
ACCOUNT = "AC" + "b" * 32
PATH = "/hooks/twilio/messaging"
TARGET_ACCEPT = 4000.0
TARGET_RATE = 1000.0
TARGET_P99_MS = 20.0
HTTP_TIMEOUT = 30.0


def signed_requests(port: int, n: int, run_id: str) -> list[tuple[bytes, dict[str, str]]]:
    """(body, headers) of n inbound SMS from n phone numbers, signed for http://127.0.0.1:<port>."""
    validator = RequestValidator(TOKEN)
    url = f"http://127.0.0.1:{port}{PATH}"
    out = []
    for i in range(n):
        sid = f"SM{run_id}{i:024d}"
        fields = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT,
                  "From": f"+1415{i:07d}", "To": "+18005550199", "NumMedia": "0", "NumSegments": "1",
                  "Body": f"bench {run_id} message {i}: my router on floor {i % 7} blinks red, please help",
                  "FromCountry": "US", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": validator.compute_signature(url, fields)}
        out.append((urlencode(fields).encode(), headers))
    return out


@dataclass
class SendResult:
    latency_ms: list[float] = field(default_factory=list)
    sched_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0


async def send_all(port: int, requests: Sequence[tuple[bytes, dict[str, str]]], k: int, rate: float | None,
                   deadline: float) -> SendResult:
    res = SendResult()
    url = f"http://127.0.0.1:{port}{PATH}"
    connector = aiohttp.TCPConnector(limit=k)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)) as http:
        async def warm() -> None:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(k)))  # K keep-alive connections open before the clock
        res.started = time.perf_counter()

        async def connection(idx: int) -> None:
            for i in range(idx, len(requests), k):
                due = res.started + i / rate if rate else None
                if due is not None and (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                if time.perf_counter() > deadline:
                    res.errors["send phase deadline passed"] += 1
                    return
                body, headers = requests[i]
                t = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as e:
                    res.errors[type(e).__name__] += 1
                    continue
                done = time.perf_counter()
                if status != 200:
                    res.errors[f"HTTP {status}"] += 1
                    continue
                res.latency_ms.append((done - t) * 1000)
                if due is not None:
                    res.sched_ms.append((done - due) * 1000)

        await asyncio.gather(*(connection(i) for i in range(k)))
        res.finished = time.perf_counter()
    return res


@dataclass
class PassResult:
    config: str
    roles: str
    mode: str
    n: int
    k: int
    rate: float | None
    ok: bool = False
    error: str = ""
    accept_rate: float = math.nan
    cases_rate: float = math.nan
    cases_at_send_end: int = 0
    p50: float = math.nan
    p99: float = math.nan
    max_ms: float = math.nan
    p99_sched: float = math.nan
    rss: str = "-"
    daemon_cpu: float = math.nan
    client_cpu: float = math.nan
    client_cpu_s: float = math.nan
    """CPU seconds of this load generator over the measured window."""
    procs: list[ProcFigures] = field(default_factory=list)
    """Per casegate process (for the supervisor: `supervisor`, `ingest-1` …, `worker`): CPU and peak RSS."""

    def verdict(self) -> str:
        if not self.ok:
            return "FAILED"
        if self.rate is None:
            return "ok (target met)" if self.accept_rate >= TARGET_ACCEPT else "ok (TARGET MISSED)"
        if self.rate == TARGET_RATE:
            met = self.accept_rate >= 0.97 * self.rate and self.p99 < TARGET_P99_MS
            return "ok (target met)" if met else "ok (TARGET MISSED)"
        return "ok"

    def row(self) -> tuple[str, ...]:
        return (self.config, self.roles, self.mode, str(self.n), str(self.k), fmt(self.accept_rate),
                fmt(self.cases_rate), fmt(self.p50, ".2f"), fmt(self.p99, ".2f"), fmt(self.max_ms),
                fmt(self.p99_sched, ".2f"), self.rss, fmt(self.daemon_cpu, ".0f"), fmt(self.client_cpu, ".0f"),
                self.verdict() + (f": {self.error.splitlines()[0]}" if self.error else ""))


HEAD = ("config", "roles", "mode", "N", "K", "accepted/s", "cases/s", "p50 ms", "p99 ms", "max ms", "p99 sched",
        "RSS MB", "dmn CPU%", "gen CPU%", "status")


def table(results: Sequence[PassResult]) -> str:
    rows = [HEAD, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


async def run_pass(config: str, roles: str, mode: str, args: argparse.Namespace) -> PassResult:
    rate = parse_mode(mode)
    res = PassResult(config, roles, mode, args.n, args.k, rate)
    print(f"\n== {config} / {roles} / {mode}: N={args.n} K={args.k} (host load average "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs)", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix=f"casegate-bench-hooks-{config}-", dir=args.data_root))
    tansu: Tansu | None = None
    pg: PgDatabase | None = None
    daemons = Daemons()
    engine: AsyncEngine | None = None
    try:
        settings: dict[str, Any] = {"data_dir": str(tmp / "data"),
                                    "channels": {"twilio": {"enabled": True, "auth_token": TOKEN}}}
        tansu, pg, store_url = await start_deployment(config, tmp, args.pg, settings)
        apply_settings(settings, args.set)
        # --ingest-processes N > 1: N ingest processes share one HTTP port (http.reuse_port)
        ingests = [("ingest", "ingest" if i == 0 else f"ingest{i + 1}") for i in range(args.ingest_processes)]
        shared_port = free_port() if len(ingests) > 1 else None
        plan = {"one": [("all", "daemon")], "ingest": ingests, "supervisor": [("supervisor", "supervisor")]}.get(
            roles, [("worker", "worker"), *ingests])
        for role, name in plan:
            profile = args.profile / f"hooks-{name}-{config}-{mode}.prof" if args.profile else None
            daemon = DaemonProcess(tmp, settings, role, profile, args.daemon_log_level, name=name,
                                   http_port=shared_port if role == "ingest" else None)
            daemons.procs.append(daemon)
            await daemon.start()
            await daemon.wait_ready()
        # every casegate process: the ones started here and, for the supervisor, its ingest processes and worker
        members = dict(sorted(((name, pid) for d in daemons.procs for name, pid in d.members().items()),
                              key=lambda m: m[0] == "worker"))
        if args.worker_nice and "worker" in members:
            os.setpriority(os.PRIO_PROCESS, members["worker"], args.worker_nice)
        res.procs = [ProcFigures(name) for name in members]
        port = daemons.smtp.http_port  # the process with the ingest role (or the supervisor) serves the webhooks
        engine = create_async_engine(store_url) if roles != "ingest" else None
        requests = signed_requests(port, args.n, os.urandom(3).hex())
        for d in daemons.procs:
            d.profile_window(start=True)
        cpu0, client0 = {name: proc_cpu_seconds(pid) for name, pid in members.items()}, time.process_time()
        deadline = time.perf_counter() + args.timeout
        sent = await send_all(port, requests, args.k, rate, deadline)
        res.cases_at_send_end = await count_cases(engine) if engine is not None else 0
        if sent.latency_ms:
            lat = sorted(sent.latency_ms)
            res.p50, res.p99, res.max_ms = percentile(lat, 50), percentile(lat, 99), lat[-1]
            res.accept_rate = len(lat) / (sent.finished - sent.started)
            if sent.sched_ms:
                res.p99_sched = percentile(sorted(sent.sched_ms), 99)
        print(f"    {len(sent.latency_ms)}/{args.n} answered 200 in {sent.finished - sent.started:.2f} s; "
              f"{res.cases_at_send_end} cases by then", file=sys.stderr)
        if sent.errors:
            raise BenchError(f"{sum(sent.errors.values())} requests failed: {dict(sent.errors)}")
        if engine is None:  # ingest only: what is accepted into the bus, no worker
            window = sent.finished - sent.started
        else:
            done_at, _ = await wait_for_cases(engine, args.n, daemons, args.timeout, args.stall_timeout)
            window = done_at - sent.started
            res.cases_rate = args.n / window
        for d in daemons.procs:
            d.profile_window(start=False)
        for fig in res.procs:
            pid = members[fig.name]
            fig.cpu_s = proc_cpu_seconds(pid) - cpu0[fig.name]
            fig.cpu = fig.cpu_s / window * 100
            fig.rss_mb = float(proc_status(pid).get("VmHWM", "nan kB").split()[0]) / 1024
        res.daemon_cpu = sum(f.cpu for f in res.procs)
        res.client_cpu_s = time.process_time() - client0
        res.client_cpu = res.client_cpu_s / window * 100
        res.rss = "/".join(fmt(f.rss_mb) for f in res.procs)
        for d in sorted(daemons.procs, key=lambda d: d.role == "worker"):
            if (rc := await d.stop()) != 0:
                raise BenchError(f"{d.name} exited with rc={rc} after SIGTERM")
        res.ok = True
    except Exception as e:
        res.error = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        print(f"    FAILED: {res.error}", file=sys.stderr)
        for d in daemons.procs:
            print(f"    --- {d.name} log tail ---\n{tail(d.log_path)}", file=sys.stderr)
    finally:
        for d in daemons.procs:
            await d.kill()
            print(f"    {d.name} log: {log_summary(d.log_path)[1]}", file=sys.stderr)
        if engine is not None:
            await engine.dispose()
        if tansu is not None:
            await tansu.stop()
        if pg is not None:
            await pg.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="webhooks_to_case", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    p.add_argument("--set", type=setting, action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a daemon setting for every pass, e.g. --set http.max_body_size=65536 (repeatable)")
    p.add_argument("--ingest-processes", type=int, default=1, metavar="N",
                   help="ingest processes sharing the HTTP port (http.reuse_port) in split and ingest passes")
    p.add_argument("--roles", choices=["one", "split", "both", "ingest", "supervisor"], default="one",
                   help="ingest = an ingest process alone: webhooks accepted into the bus, no worker; "
                        "supervisor = casegate run (no role: [run] processes ingest processes and a worker)")
    p.add_argument("--n", type=int, default=20000, help="webhooks per pass (default 20000)")
    p.add_argument("--k", type=int, default=32, help="concurrent HTTP connections (default 32)")
    p.add_argument("--modes", default="max,rate1000", help="comma list of max and rate<R> (default max,rate1000)")
    p.add_argument("--pg", default=os.environ.get("CASEGATE_TEST_PG") or DEFAULT_PG)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--stall-timeout", type=float, default=60.0)
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="run the daemon(s) under cProfile in every thread, measured window only "
                        "(tests/bench/profiled.py)")
    p.add_argument("--worker-nice", type=int, default=0, metavar="N",
                   help="split and supervisor: run the worker process at this nice value (e.g. 10), so acknowledging "
                        "webhooks wins the CPU when the worker and the ingest process share too few cores")
    p.add_argument("--daemon-log-level", choices=["debug", "info", "warning", "error"], default="warning")
    p.add_argument("--data-root", default=".", metavar="DIR")
    args = p.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in args.mode_list:
        parse_mode(m)
    if args.profile:
        args.profile = Path(args.profile).resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    args.config_list = list(CONFIGS) if args.config == "all" else [args.config]
    args.roles_list = ["one", "split"] if args.roles == "both" else [args.roles]
    return args


async def amain(args: argparse.Namespace) -> int:
    results = []
    for config in args.config_list:
        for mode in args.mode_list:
            for roles in args.roles_list:
                r = await run_pass(config, roles, mode, args)
                results.append(r)
                print("  ".join(f"{h}={v}" for h, v in zip(HEAD, r.row(), strict=True)), flush=True)
    print("\n" + table(results), flush=True)
    print(f"targets: max pass >= {TARGET_ACCEPT:g} webhooks/s accepted; rate{TARGET_RATE:g} pass p99 < "
          f"{TARGET_P99_MS:g} ms while sustaining >= 97 % of the rate. RSS MB: per process (ingest…/worker).")
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None) -> None:
    try:
        sys.exit(asyncio.run(amain(parse_args(argv))))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
