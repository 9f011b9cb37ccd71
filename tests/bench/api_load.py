"""Benchmark (issue 10): the Salesforce-compatible REST API under load, against real `casegate run`
processes, beside the SMTP load, and at a million cases on PostgreSQL.

Per configuration (`--config`), with fresh daemon process(es), store and bus (smtp_to_case.py's process
handling: its own TOML, ports and log per process; `local-sqlite` = the embedded default, `kafka-postgres`
= a private tansu broker and a fresh PostgreSQL database `casegate_bench_<random>`, dropped afterwards),
an admin user and token made with casegate.store.access, and `--warmup` creates and queries sent first
and not measured (token cache, SQL compile caches, the SOQL grammar):

1. creates: `--creates` N `POST …/sobjects/Case/` (Subject, Description, Origin, SuppliedEmail) over
   `--k` keep-alive connections, back to back: creates/s, latency p50/p99;
2. one-row queries: `--queries` M reads of random cases, alternately the SOQL
   `SELECT Id, CaseNumber, Status FROM Case WHERE CaseNumber = '…'` and `GET …/sobjects/Case/{id}`,
   back to back over K connections (queries/s; latency under saturation), then `--paced` of them at
   `--query-rate` calls/s (open loop: call i due at t0 + i/rate; the latency of a call that does not
   queue behind the client's own): p50/p99 of each (target p99 < 20 ms);
3. `--with-smtp`: api_smtp.py, the SMTP load alone and with the API load beside it;
4. `--million` (PostgreSQL): api_million.py, `--million-rows` cases bulk-loaded, the common lookups
   timed through the API with their SQL, EXPLAIN ANALYZE and indexes, and candidate indexes tried.

The no-op aiohttp reference (tests/bench/reference.py: reads the body, answers 200), driven by the same
client with the same calls, runs before and after phases 1-2 (client and server pinned to separate
cores, as tests/bench/table.py does); its figure is the mean of the two runs and every casegate figure is
printed beside it with the ratio. CPU ms per call: each daemon process's user + system CPU (psutil) over
the phase, divided by its calls. The host's load average is printed at the start and the end of every
phase: on a shared host compare only figures of one run.

    .venv/bin/python -m tests.bench.api_load --config local-sqlite
    .venv/bin/python -m tests.bench.api_load --config kafka-postgres --with-smtp --million
    .venv/bin/python -m tests.bench.api_load --config kafka-postgres --million --million-rows 200000
    .venv/bin/python -m tests.bench.api_load --config local-sqlite --profile /tmp/prof   # cProfile phases 1-2

Exit status 1 when a phase failed (an error answer, a daemon that died or did not exit 0); the targets
do not change it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from casegate.store.access import add_user, issue_token
from casegate.store.database import Database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.bench.api_client import ApiCall, LoadResult, case_number_call, create_call, get_call, send_calls
from tests.bench.api_figures import Figures, Report, cpu_now, cpu_since, load_average, mean, say, table
from tests.bench.api_million import run_lookups
from tests.bench.api_smtp import with_smtp
from tests.bench.reference import NoopServer, separate_cores
from tests.bench.smtp_to_case import (
    DEFAULT_PG,
    BenchError,
    DaemonProcess,
    Daemons,
    PgDatabase,
    Tansu,
    log_summary,
    start_deployment,
    tail,
)

CONFIGS = ("local-sqlite", "kafka-postgres")
DEFAULT_ROLES = {"local-sqlite": "supervisor", "kafka-postgres": "split"}
ADMIN = "bench-admin@example.test"
KINDS = ("create", "soql", "get", "paced soql", "paced get")
"""The figures of phases 1-2, by kind of call."""


def query_calls(cases: Sequence[tuple[str, str]], n: int, seed: int = 5, paced: bool = False) -> list[ApiCall]:
    """n one-row reads of random cases (Id, CaseNumber): the SOQL by CaseNumber and the GET by Id in turn."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        case_id, number = rnd.choice(cases)
        call = case_number_call(number) if i % 2 == 0 else get_call(case_id)
        out.append(ApiCall(f"paced {call.kind}", call.method, call.path) if paced else call)
    return out


def fake_cases(n: int) -> list[tuple[str, str]]:
    """Ids and CaseNumbers shaped as casegate's, for the reference (which has no cases)."""
    return [(f"500{i:015d}", f"{1000 + i:08d}") for i in range(max(1, n))]


async def store_cases(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(Id, CaseNumber) of every case in the store."""
    async with engine.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(text('SELECT "Id", "CaseNumber" FROM "case"'))]


def check(res: LoadResult, what: str) -> None:
    if res.errors:
        raise BenchError(f"{what}: {sum(res.errors.values())} calls failed: {res.error_text()}")


async def api_phases(port: int, token: str, creates: Sequence[ApiCall], engine: AsyncEngine | None,
                     args: argparse.Namespace, members: dict[str, int]) -> tuple[dict[str, Figures], list[str]]:
    """Phases 1-2 against `port`: the creates, then one-row queries of the store's cases (`engine`; None:
    the reference, which has none) back to back and paced. Returns the figures by kind and the ids made."""
    out: dict[str, Figures] = {}
    reference = engine is None

    async def load(name: str, calls: Sequence[ApiCall], **options: Any) -> LoadResult:
        if not reference:
            say(f"== casegate {name} (host load average {load_average()})")
        cpu0 = cpu_now(members)
        res = await send_calls(port, token, calls, any_2xx=reference, **{"k": args.k, **options})
        check(res, name)
        cpu = cpu_since(cpu0, members)
        for kind in res.latency_ms:
            out[kind] = Figures.of(res, kind, cpu)
            say(f"    {kind}: {out[kind].rate:,.0f}/s, {out[kind].latency()}, CPU ms per call {out[kind].cpu()}")
        return res

    made = await load("creates", creates, keep_ids=not reference)
    cases = fake_cases(len(creates)) if engine is None else await store_cases(engine)
    await load("one-row queries, back to back", query_calls(cases, args.queries))
    await load(f"one-row queries at {args.query_rate:g}/s", query_calls(cases, args.paced, paced=True),
               rate=args.query_rate, k=max(args.k, 8))
    return out, made.created


async def reference_run(workdir: Path, creates: Sequence[ApiCall], args: argparse.Namespace,
                        when: str) -> dict[str, Figures]:
    noop = NoopServer("http", workdir)
    await noop.start()
    try:
        with separate_cores(noop.pid, args.pin) as note:
            say(f"== reference: no-op aiohttp, same client and calls ({when}; {note}; host load average "
                f"{load_average()})")
            figures, _ = await api_phases(noop.port, "cg_reference", creates, None, args, {"server": noop.pid})
            return figures
    finally:
        await noop.stop()


async def start_daemons(config: str, roles: str, tmp: Path, settings: dict[str, Any], args: argparse.Namespace,
                        daemons: Daemons) -> dict[str, int]:
    """The casegate processes of `roles`; returns every process (a supervisor's children too) by name."""
    if max(args.k, args.smtp_k) > 50:
        settings["smtp"] = {"max_connections_per_ip": 0}
        settings["http"] = {"max_connections_per_ip": 0}
    plan = {"one": [("all", "daemon")], "supervisor": [("supervisor", "supervisor")]}.get(
        roles, [("worker", "worker"), ("ingest", "ingest")])
    for role, name in plan:
        profile = args.profile / f"api-{name}-{config}.prof" if args.profile else None
        daemon = DaemonProcess(tmp, settings, role, profile, name=name)
        daemons.procs.append(daemon)
        await daemon.start()
        await daemon.wait_ready()
    return {name: pid for d in daemons.procs for name, pid in d.members().items()}


async def run_config(config: str, args: argparse.Namespace) -> tuple[Report, bool]:
    report = Report(config)
    roles = args.roles or DEFAULT_ROLES[config]
    say(f"\n== {config} / {roles}: creates={args.creates} queries={args.queries} K={args.k} "
        f"(host load average {load_average()}, {os.cpu_count()} CPUs)")
    tmp = Path(tempfile.mkdtemp(prefix=f"casegate-bench-api-{config}-", dir=args.data_root))
    tansu: Tansu | None = None
    pg: PgDatabase | None = None
    daemons = Daemons()
    engine: AsyncEngine | None = None
    ok = False
    try:
        settings: dict[str, Any] = {"data_dir": str(tmp / "data")}
        tansu, pg, store_url = await start_deployment(config, tmp, args.pg, settings)
        members = await start_daemons(config, roles, tmp, settings, args, daemons)
        port = daemons.smtp.http_port
        say(f"    processes {members}; API on http :{port}")
        db = Database(store_url)
        try:
            await add_user(db, ADMIN, "admin", name="Bench Admin")
            token = await issue_token(db, ADMIN)
        finally:
            await db.dispose()
        engine = create_async_engine(store_url)

        creates = [create_call(secrets.token_hex(3), i) for i in range(args.creates)]
        refs = [await reference_run(tmp, creates, args, "before")]
        say(f"== warm-up: {args.warmup} creates and {args.warmup} queries, not measured")
        check(await send_calls(port, token, [create_call("warm", i) for i in range(args.warmup)], args.k), "warm-up")
        check(await send_calls(port, token, query_calls(await store_cases(engine), args.warmup), args.k), "warm-up")
        for d in daemons.procs:
            d.profile_window(start=True)
        got, made = await api_phases(port, token, creates, engine, args, members)
        for d in daemons.procs:
            d.profile_window(start=False)
        cases = await store_cases(engine)
        if len(cases) != args.creates + args.warmup or not set(made) <= {c[0] for c in cases}:
            raise BenchError(f"{args.creates} + {args.warmup} creates answered 201; the store holds {len(cases)} cases")
        refs.append(await reference_run(tmp, creates, args, "after"))
        ref = {kind: mean([r[kind] for r in refs]) for kind in KINDS}

        report.compare("API creates", got["create"], ref["create"])
        names = {"soql": "SOQL CaseNumber = (one row)", "get": "GET sobjects/Case/{id}"}
        for kind, name in names.items():
            report.compare(f"{name}, K={args.k} back to back", got[kind], ref[kind], rate=False)
        for kind, name in names.items():
            paced = f"paced {kind}"
            report.compare(f"{name} at {args.query_rate:g}/s", got[paced], ref[paced], rate=False)
            report.target(f"{name} at {args.query_rate:g}/s, {len(cases):,} cases", got[paced])

        if args.with_smtp:
            await with_smtp(report, port, token, args, engine, daemons, members, cases, got)
        if args.million and pg is not None:
            await run_lookups(report, port, token, store_url, args, ref["paced soql"], members)
        for d in daemons.stop_order():
            if (rc := await d.stop()) != 0:
                raise BenchError(f"{d.name} exited with rc={rc} after SIGTERM")
        ok = True
    except Exception as e:
        error = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        say(f"    FAILED: {error}")
        report.add("FAILED", error.splitlines()[0][:200])
        for d in daemons.procs:
            say(f"    --- {d.name} log tail ({d.log_path}) ---\n{tail(d.log_path)}")
    finally:
        for d in daemons.procs:
            await d.kill()
            say(f"    {d.name} log: {log_summary(d.log_path)[1]}")
        if engine is not None:
            await engine.dispose()
        if tansu is not None:
            await tansu.stop()
        if pg is not None:
            await pg.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"== {config} done (host load average {load_average()})")
    return report, ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="api_load", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    p.add_argument("--roles", choices=["one", "split", "supervisor"], default=None,
                   help="one = casegate run --role all; split = --role worker + --role ingest; supervisor = casegate "
                        "run (default: supervisor for local-sqlite, split for kafka-postgres)")
    p.add_argument("--creates", type=int, default=2000, help="API case creates (default 2000)")
    p.add_argument("--queries", type=int, default=2000, help="one-row queries back to back, half SOQL, half GET "
                                                              "(default 2000)")
    p.add_argument("--k", type=int, default=8, help="concurrent API connections (default 8)")
    p.add_argument("--paced", type=int, default=1000, help="one-row queries sent at --query-rate (default 1000)")
    p.add_argument("--query-rate", type=float, default=100.0, help="calls/s of the paced queries (default 100)")
    p.add_argument("--warmup", type=int, default=100, help="creates and queries sent first, not measured (100)")
    p.add_argument("--with-smtp", action="store_true", help="the SMTP load alone, then with the API load beside it")
    p.add_argument("--smtp-n", type=int, default=2000, help="mails per SMTP pass (default 2000)")
    p.add_argument("--smtp-k", type=int, default=8, help="SMTP connections (default 8)")
    p.add_argument("--million", action="store_true", help="kafka-postgres: bulk-load cases, time the common lookups")
    p.add_argument("--million-rows", type=int, default=1_000_000, help="cases bulk-loaded (default 1,000,000)")
    p.add_argument("--lookups", type=int, default=500, help="calls per lookup measurement (default 500)")
    p.add_argument("--lookup-k", type=int, default=1, help="connections for the lookups (default 1: one at a time)")
    p.add_argument("--lookup-seconds", type=float, default=10.0,
                   help="at most this long per lookup measurement: slow lookups send fewer calls (default 10)")
    p.add_argument("--pg", default=os.environ.get("CASEGATE_TEST_PG") or DEFAULT_PG,
                   help=f"a PostgreSQL server that may create databases (default {DEFAULT_PG})")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin the reference server and the client to separate cores")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="cProfile each daemon process (every thread, CPU clock) over phases 1-2: "
                        "DIR/api-<process>-<config>.prof (tests/bench/profiled.py; slows every figure down)")
    p.add_argument("--data-root", default=".", metavar="DIR")
    args = p.parse_args(argv)
    args.config_list = list(CONFIGS) if args.config == "all" else [args.config]
    if args.million and "kafka-postgres" not in args.config_list:
        p.error("--million needs PostgreSQL: --config kafka-postgres (or all)")
    counts = (args.creates, args.queries, args.k, args.paced, args.warmup, args.smtp_n, args.smtp_k, args.lookups,
              args.lookup_k, args.million_rows)
    if min(counts) < 1 or args.query_rate <= 0:
        p.error("counts and rates must be at least 1")
    if args.profile:
        args.profile = Path(args.profile).resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


async def amain(args: argparse.Namespace) -> int:
    say(f"host load average at start {load_average()}")
    results = [await run_config(config, args) for config in args.config_list]
    print("\n" + table([r for r, _ in results]), flush=True)
    print(f"\nhost load average at the end {load_average()}. Ratios: rates casegate / reference; latency and CPU "
          "as multiples of the reference's.", flush=True)
    return 0 if all(ok for _, ok in results) else 1


def main(argv: Sequence[str] | None = None) -> None:
    try:
        sys.exit(asyncio.run(amain(parse_args(argv))))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
