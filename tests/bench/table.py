"""The comparison table: casegate against no-op servers driven by the same client, in one run.

Every casegate figure comes with its reference, measured in the same run just before and just after it
(`--ref-runs` runs on each side; the median run is the figure and the range is shown), by the same client
(smtp_to_case's aiosmtplib sender, webhooks_to_case's signed-Twilio aiohttp sender) with the same N and K.
The targets are ratios to it, so a loaded or slower host moves both. The casegate passes are
smtp_to_case's and webhooks_to_case's own `run_pass` (fresh store, bus and processes for each); the
references are tests/bench/reference.py. Rows (`--rows`), reference | casegate pass:

- `smtp`: no-op aiosmtpd, closed loop | `casegate run` (the supervisor: ingest processes + worker),
  local-sqlite, fsync on: mails/s end to end;
- `postfix`: a private Postfix whose transport is `discard:` | the accept rate (first send → last 250)
  of the `smtp` pass;
- `one`: no-op aiosmtpd | `casegate run --role all`, local-sqlite, fsync on;
- `kafka`: no-op aiosmtpd | `casegate run` with `run.processes = 2` on tansu + PostgreSQL;
- `hooks`: no-op aiohttp (reads the body, answers 200), closed loop and at 1,000/s | `casegate run`, signed
  Twilio webhooks: accepted/s (closed loop), p99 at 1,000/s, cases/s end to end (closed-loop pass).

It prints the table (markdown), the CPU milliseconds per mail (or request) of each process over the
measured window (psutil user + system, before/after, divided by N), and every pass's raw figures.

    .venv/bin/python -m tests.bench.table                          # every row: ~2 minutes on 2 cores
    .venv/bin/python -m tests.bench.table --rows smtp,postfix      # some rows only
    .venv/bin/python -m tests.bench.table --mails 3000 --hooks 5000 --smtp-k 32 --hook-k 32

Exit status 1 when a casegate pass failed (the targets do not change it).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench import smtp_to_case, webhooks_to_case
from tests.bench.reference import DiscardPostfix, NoopServer, separate_cores
from tests.bench.smtp_to_case import DEFAULT_PG, BenchError, fmt, percentile

ROWS = ("smtp", "postfix", "one", "kafka", "hooks")
TARGET_SMTP_RATIO = 0.60
TARGET_POSTFIX_RATIO = 1.0
TARGET_HOOK_RATIO = 0.50
TARGET_HOOK_P99_MS = 20.0
TARGET_HOOK_CASES = 1000.0
HOOK_RATE = 1000.0


RefRun = tuple[float, float, float, float, float, str]
"""One run of the client against a reference: (items/s, p50 ms, p99 ms, server CPU s, load generator CPU s,
"before" or "after" the casegate pass)."""


@dataclass
class Reference:
    """Runs of the client against a reference server; the figures are those of the median run (by rate)."""

    name: str
    kind: str  # "mails" or "requests"
    n: int
    k: int
    rate: float | None = None  # None: closed loop
    ok: bool = False
    error: str = ""
    achieved: float = math.nan  # items/s: first send → last answer
    p50: float = math.nan
    p99: float = math.nan
    server_cpu_s: float = math.nan
    client_cpu_s: float = math.nan
    runs: list[RefRun] = field(default_factory=list)

    def settle(self) -> Reference:
        """The figures from the median run (by rate)."""
        self.ok = bool(self.runs) and not self.error
        if self.runs:
            median = sorted(self.runs)[(len(self.runs) - 1) // 2]
            self.achieved, self.p50, self.p99, self.server_cpu_s, self.client_cpu_s, _ = median
        return self

    def merged(self, other: Reference) -> Reference:
        """The runs before and after a casegate pass, as one reference."""
        both = Reference(self.name, self.kind, self.n, self.k, self.rate, error=self.error or other.error,
                         runs=[*self.runs, *other.runs])
        return both.settle()

    def spread(self) -> str:
        rates = sorted(r[0] for r in self.runs)
        return f"{rates[0]:,.0f} to {rates[-1]:,.0f}" if len(rates) > 1 else ""

    def lines(self) -> list[str]:
        """Each run, then the figure (the median run), when there was more than one run."""
        if len(self.runs) < 2:
            return [self.line()]
        return [*(self.line(r) for r in self.runs), self.line()]

    def line(self, run: RefRun | None = None) -> str:
        mode = f"rate{self.rate:g}" if self.rate else "max"
        head = f"[reference: {self.name} / {mode}]"
        if not self.ok and run is None:
            return f"{head} FAILED: {self.error}"
        achieved, p50, p99, server, client, when = run or (self.achieved, self.p50, self.p99, self.server_cpu_s,
                                                           self.client_cpu_s, "")
        if run is None and len(self.runs) > 1:
            which = f" (median of {len(self.runs)} runs, before and after the casegate pass: {self.spread()})"
        else:
            which = f" ({when} the casegate pass)" if when else ""
        return (f"{head} {fmt(achieved)} {self.kind}/s{which} | p50 {fmt(p50, '.2f')} ms, "
                f"p99 {fmt(p99, '.2f')} ms | CPU ms per item: server {fmt(server * 1e3 / self.n, '.3f')}, "
                f"load generator {fmt(client * 1e3 / self.n, '.3f')} | N={self.n} K={self.k}")


async def measure_reference(ref: Reference, cpu: Callable[[], float], send: Any, runs: int, when: str) -> Reference:
    """Run `send()` (the benchmark's own client) `runs` times against a reference server; CPU by `cpu()`
    before/after each run. The figures are the median run's."""
    print(f"\n== reference {ref.name} ({when}): N={ref.n} K={ref.k} rate={ref.rate or 'max'}, {runs} run(s) "
          f"(host load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())})", file=sys.stderr)
    try:
        for _ in range(runs):
            cpu0, client0 = cpu(), time.process_time()
            sent = await send()
            server_s, client_s = cpu() - cpu0, time.process_time() - client0
            lat = sorted(getattr(sent, "ack_ms", None) or getattr(sent, "latency_ms", []))
            if errors := sent.errors:
                raise BenchError(f"{len(errors) if isinstance(errors, list) else sum(errors.values())} errors, "
                                 f"e.g. {list(errors)[:3]}")
            ref.runs.append((len(lat) / (sent.finished - sent.started), percentile(lat, 50), percentile(lat, 99),
                             server_s, client_s, when))
    except Exception as e:
        ref.error = str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {e}"
        print(f"    FAILED: {ref.error}", file=sys.stderr)
    for run in ref.runs:
        print("    " + ref.line(run), file=sys.stderr)
    return ref.settle()


async def smtp_reference(workdir: Path, n: int, k: int, runs: int, when: str, postfix: bool = False,
                         data_root: str | None = None, pin: bool = True) -> Reference:
    ref = Reference("Postfix (discard:)" if postfix else "no-op aiosmtpd", "mails", n, k)
    deadline = time.perf_counter() + 300

    def send(port: int) -> Any:
        return lambda: smtp_to_case.send_all(port, n, k, None, secrets.token_hex(4), deadline)

    if postfix:
        server = DiscardPostfix(data_root)
        try:
            await asyncio.to_thread(server.start)
        except BenchError as e:
            ref.error = str(e)
            print(f"    {ref.name}: {e}", file=sys.stderr)
            return ref
        try:
            # Postfix starts its cleanup and trivial-rewrite processes at the first mail: K mails first,
            # so the clock measures a warm Postfix (a stricter reference)
            await smtp_to_case.send_all(server.port, k, k, None, "warmup", deadline)
            return await measure_reference(ref, server.cpu_seconds, send(server.port), runs, when)
        finally:
            await asyncio.to_thread(server.stop)
    noop = NoopServer("smtp", workdir)
    try:
        await noop.start()
        with separate_cores(noop.pid, pin) as note:
            print(f"    {note}", file=sys.stderr)
            ref.name += ", own core" if note.startswith("client on") else ""
            return await measure_reference(ref, noop.cpu_seconds, send(noop.port), runs, when)
    except BenchError as e:
        ref.error = str(e)
        return ref
    finally:
        await noop.stop()


async def http_reference(workdir: Path, n: int, k: int, rate: float | None, runs: int, when: str,
                         pin: bool = True) -> Reference:
    ref = Reference("no-op aiohttp", "requests", n, k, rate)
    noop = NoopServer("http", workdir)
    try:
        await noop.start()
        requests = webhooks_to_case.signed_requests(noop.port, n, secrets.token_hex(3))
        deadline = time.perf_counter() + 300
        with separate_cores(noop.pid, pin) as note:
            print(f"    {note}", file=sys.stderr)
            ref.name += ", own core" if note.startswith("client on") else ""
            return await measure_reference(
                ref, noop.cpu_seconds, lambda: webhooks_to_case.send_all(noop.port, requests, k, rate, deadline),
                runs, when)
    except BenchError as e:
        ref.error = str(e)
        return ref
    finally:
        await noop.stop()


# -- the table ------------------------------------------------------------------------------------
@dataclass
class Row:
    path: str
    reference: str
    casegate: str
    ratio: str
    target: str


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    cpu: list[tuple[str, str, int, list[tuple[str, float]], float]] = field(default_factory=list)
    """(pass, item, N, [(process, CPU seconds)], load generator CPU seconds)."""
    raw: list[str] = field(default_factory=list)
    failed: bool = False


def verdict(ok: bool, value: float, target: float) -> str:
    if not ok or math.isnan(value):
        return "-"
    return "met" if value >= target else "MISSED"


def pct(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def smtp_figure(r: smtp_to_case.PassResult, which: str = "e2e") -> str:
    if not r.ok:
        return f"FAILED: {r.error.splitlines()[0] if r.error else '?'}"
    if which == "accept":
        return f"{r.accept_rate:,.0f} mails/s accepted (p99 ack {r.p99:.1f} ms)"
    return f"{r.e2e_rate:,.0f} mails/s end to end (accepted {r.accept_rate:,.0f}/s)"


def ratio_text(value: float, ref: Reference, percent: bool = True) -> str:
    """casegate / the reference's median run, and in brackets / its best run (the verdict uses the median)."""
    def show(r: float) -> str:
        return fmt(r * 100, ".0f") + " %" if percent else fmt(r, ".2f")

    median = show(pct(value, ref.achieved))
    if len(ref.runs) < 2:
        return median
    return f"{median} (best run: {show(pct(value, max(r[0] for r in ref.runs)))})"


def ref_figure(ref: Reference, extra: str = "") -> str:
    if not ref.ok:
        return f"FAILED: {ref.error.splitlines()[0] if ref.error else '?'}"
    spread = f"; runs {ref.spread()}" if ref.spread() else ""
    return f"{ref.achieved:,.0f} {ref.kind}/s ({ref.name}{spread}{extra})"


def add_cpu(run: Run, name: str, item: str, n: int, procs: Sequence[Any], client_cpu_s: float) -> None:
    run.cpu.append((name, item, n, [(p.name, p.cpu_s) for p in procs], client_cpu_s))


def add_ref_cpu(run: Run, ref: Reference) -> None:
    if ref.ok:
        run.cpu.append((f"reference: {ref.name}" + (f" at {ref.rate:g}/s" if ref.rate else ""),
                        ref.kind[:-1], ref.n, [(ref.name, ref.server_cpu_s)], ref.client_cpu_s))


async def smtp_pass(config: str, roles: str, args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    sets = [x for s in (*args.set, *extra) for x in ("--set", s)]
    pargs = smtp_to_case.parse_args(["--config", config, "--roles", roles, "--modes", "max", "--n", str(args.mails),
                                     "--k", str(args.smtp_k), "--pg", args.pg, "--data-root", args.data_root,
                                     "--set", "bus.local.fsync=true", "--set", "blobs.fsync=true", *sets])
    r = await smtp_to_case.run_pass(config, roles, "max", pargs)
    print(r.line(), flush=True)
    return r


async def hooks_pass(mode: str, args: argparse.Namespace) -> Any:
    sets = [x for s in args.set for x in ("--set", s)]
    pargs = webhooks_to_case.parse_args(["--config", "local-sqlite", "--roles", args.hook_roles, "--modes", mode,
                                         "--n", str(args.hooks), "--k", str(args.hook_k), "--pg", args.pg,
                                         "--data-root", args.data_root, "--set", "bus.local.fsync=true",
                                         "--set", "blobs.fsync=true", *sets])
    r = await webhooks_to_case.run_pass("local-sqlite", args.hook_roles, mode, pargs)
    print("  ".join(f"{h}={v}" for h, v in zip(webhooks_to_case.HEAD, r.row(), strict=True)), flush=True)
    return r


async def run_table(args: argparse.Namespace) -> Run:
    """Every row; each casegate pass is bracketed by runs of its reference just before and just after it."""
    run = Run()
    workdir = Path(tempfile.mkdtemp(prefix="casegate-bench-table-"))
    roles_text = {"supervisor": "`casegate run`, the supervisor", "one": "`--role all`",
                  "split": "`--role worker` + `--role ingest`", "ingest": "`--role ingest` alone"}

    async def noop_smtp(when: str) -> Reference:
        return await smtp_reference(workdir, args.mails, args.smtp_k, args.ref_runs, when, pin=args.pin)

    async def postfix(when: str) -> Reference:
        return await smtp_reference(workdir, args.mails, args.smtp_k, args.ref_runs, when, postfix=True,
                                    data_root=args.data_root)

    def keep(ref: Reference) -> Reference:
        add_ref_cpu(run, ref)
        run.raw.extend(ref.lines())
        return ref

    def keep_pass(r: Any, line: str, name: str, item: str) -> None:
        run.raw.append(line)
        run.failed |= not r.ok
        if r.ok:
            add_cpu(run, name, item, r.n, r.procs, r.client_cpu_s)

    try:
        if "smtp" in args.rows or "postfix" in args.rows:
            ref_b = await noop_smtp("before")
            pf_b = await postfix("before") if "postfix" in args.rows else None
            supervisor = await smtp_pass("local-sqlite", "supervisor", args)
            pf_a = await postfix("after") if "postfix" in args.rows else None
            ref = keep(ref_b.merged(await noop_smtp("after")))
            keep_pass(supervisor, supervisor.line(), "SMTP, casegate run (local-sqlite)", "mail")
            if "smtp" in args.rows:
                ratio = pct(supervisor.e2e_rate, ref.achieved)
                run.rows.append(Row("SMTP → committed case, embedded default (`casegate run`, the supervisor: "
                                    f"{max(len(supervisor.procs) - 2, 0)} ingest + worker), local-sqlite, fsync on",
                                    ref_figure(ref), smtp_figure(supervisor), ratio_text(supervisor.e2e_rate, ref),
                                    f"≥ {TARGET_SMTP_RATIO:.0%}: {verdict(supervisor.ok, ratio, TARGET_SMTP_RATIO)}"))
            if pf_b is not None and pf_a is not None:
                pf = keep(pf_b.merged(pf_a))
                ratio = pct(supervisor.accept_rate, pf.achieved)
                run.rows.append(Row("SMTP accepted, fsync on (`casegate run`) vs Postfix accepting into its fsync'd "
                                    "queue (private Postfix, transport `discard:`)",
                                    ref_figure(pf), smtp_figure(supervisor, "accept"),
                                    ratio_text(supervisor.accept_rate, pf, percent=False),
                                    f"≥ {TARGET_POSTFIX_RATIO:.1f}: "
                                    f"{verdict(supervisor.ok, ratio, TARGET_POSTFIX_RATIO)}"))
        if "one" in args.rows:
            ref_b = await noop_smtp("before")
            one = await smtp_pass("local-sqlite", "one", args)
            ref = keep(ref_b.merged(await noop_smtp("after")))
            keep_pass(one, one.line(), "SMTP, --role all (local-sqlite)", "mail")
            run.rows.append(Row("SMTP → committed case, one process (`--role all`), local-sqlite, fsync on",
                                ref_figure(ref), smtp_figure(one), ratio_text(one.e2e_rate, ref), "-"))
        if "kafka" in args.rows:
            ref_b = await noop_smtp("before")
            kafka = await smtp_pass("kafka-postgres", "supervisor", args, ["run.processes=2"])
            ref = keep(ref_b.merged(await noop_smtp("after")))
            keep_pass(kafka, kafka.line(), "SMTP, casegate run (kafka-postgres)", "mail")
            ratio = pct(kafka.e2e_rate, ref.achieved)
            run.rows.append(Row("SMTP → committed case, Kafka (tansu) + PostgreSQL, `casegate run` with 1 worker + "
                                "2 ingest", ref_figure(ref), smtp_figure(kafka), ratio_text(kafka.e2e_rate, ref),
                                f"≥ {TARGET_SMTP_RATIO:.0%}: {verdict(kafka.ok, ratio, TARGET_SMTP_RATIO)}"))
        if "hooks" in args.rows:
            ref_b = await http_reference(workdir, args.hooks, args.hook_k, None, args.ref_runs, "before", args.pin)
            hooks = await hooks_pass("max", args)
            ref = keep(ref_b.merged(await http_reference(workdir, args.hooks, args.hook_k, None, args.ref_runs,
                                                         "after", args.pin)))
            keep_pass(hooks, "[webhooks max] " + "  ".join(
                f"{h}={v}" for h, v in zip(webhooks_to_case.HEAD, hooks.row(), strict=True)),
                f"webhooks, {args.hook_roles} (local-sqlite)", "request")
            ref_paced = keep(await http_reference(workdir, args.hooks, args.hook_k, HOOK_RATE, 1, "before", args.pin))
            paced = await hooks_pass(f"rate{HOOK_RATE:g}", args)
            run.raw.append(f"[webhooks rate{HOOK_RATE:g}] " + "  ".join(
                f"{h}={v}" for h, v in zip(webhooks_to_case.HEAD, paced.row(), strict=True)))
            run.failed |= not paced.ok
            ratio = pct(hooks.accept_rate, ref.achieved)
            kept_up = paced.ok and paced.accept_rate >= 0.97 * HOOK_RATE
            p99_ok = kept_up and paced.p99 < TARGET_HOOK_P99_MS
            ref_p99 = f"; p99 at {HOOK_RATE:,.0f}/s {ref_paced.p99:.1f} ms" if ref_paced.ok else ""
            cg = (f"{hooks.accept_rate:,.0f} requests/s accepted" if hooks.ok else f"FAILED: {hooks.error}")
            cg += (f"; p99 at {HOOK_RATE:,.0f}/s {paced.p99:.1f} ms" + ("" if kept_up else " (fell behind)")
                   if paced.ok else f"; paced pass FAILED: {paced.error}")
            ratio_verdict = verdict(hooks.ok, ratio, TARGET_HOOK_RATIO)
            run.rows.append(Row(f"signed Twilio webhooks accepted (ingest; {roles_text[args.hook_roles]}), "
                                "local-sqlite, fsync on", ref_figure(ref, ref_p99), cg,
                                ratio_text(hooks.accept_rate, ref),
                                f"≥ {TARGET_HOOK_RATIO:.0%}: {ratio_verdict}; p99 < {TARGET_HOOK_P99_MS:g} ms: "
                                f"{('met' if p99_ok else 'MISSED') if paced.ok else '-'}"))
            cases_verdict = verdict(hooks.ok, hooks.cases_rate, TARGET_HOOK_CASES)
            run.rows.append(Row("cases end to end from webhooks (same pass)", "-",
                                f"{hooks.cases_rate:,.0f} cases/s" if hooks.ok else "FAILED", "-",
                                f"≥ {TARGET_HOOK_CASES:,.0f}/s: {cases_verdict}"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def markdown(run: Run) -> str:
    out = ["| path | no-op limit (same client) | casegate | ratio | target |", "|---|---|---|---|---|"]
    out += [f"| {r.path} | {r.reference} | {r.casegate} | {r.ratio} | {r.target} |" for r in run.rows]
    out += ["", "ratio: casegate / the reference's median run (what the verdict uses); in brackets, / its best run."]
    out += ["", "CPU milliseconds per mail / request (user + system over the measured window, divided by N); the "
            "last column is the server side's CPU per unit of the load generator's, which moves less with the "
            "host's load than either figure alone (the client does the same work in every pass):", "",
            "| pass | per process | all casegate processes | load generator | per load-generator ms |",
            "|---|---|---|---|---|"]
    for name, _item, n, procs, client in run.cpu:
        per = ", ".join(f"{p} {s * 1e3 / n:.3f}" for p, s in procs)
        total = sum(s for _, s in procs) * 1e3 / n
        cg = "-" if name.startswith("reference") else f"{total:.3f}"
        relative = f"{total / (client * 1e3 / n):.2f}" if client > 0 else "-"
        out.append(f"| {name} (N={n:,}) | {per} | {cg} | {client * 1e3 / n:.3f} | {relative} |")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="table", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)} (default: all)")
    p.add_argument("--mails", type=int, default=3000, help="mails per SMTP pass (default 3000)")
    p.add_argument("--hooks", type=int, default=5000, help="webhooks per pass (default 5000)")
    p.add_argument("--smtp-k", type=int, default=32, help="SMTP connections (default 32)")
    p.add_argument("--hook-k", type=int, default=32, help="HTTP connections (default 32)")
    p.add_argument("--ref-runs", type=int, default=3,
                   help="closed-loop runs of each reference just before and again just after its casegate "
                        "pass (the median of them all is its figure; default 3)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="leave the no-op servers and the client where the scheduler puts them (default: the "
                        "client on one CPU, the no-op server on another while a reference runs; see "
                        "reference.separate_cores)")
    p.add_argument("--hook-roles", choices=["supervisor", "one", "split", "ingest"], default="supervisor",
                   help="the casegate deployment of the webhook rows (default supervisor: `casegate run`)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a daemon setting for every casegate pass (repeatable)")
    p.add_argument("--pg", default=os.environ.get("CASEGATE_TEST_PG") or DEFAULT_PG,
                   help=f"PostgreSQL server for the kafka row (default $CASEGATE_TEST_PG or {DEFAULT_PG})")
    p.add_argument("--data-root", default=".", metavar="DIR",
                   help="where the daemons' data folders (and Postfix's queue) are made (default: here)")
    args = p.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if bad := [r for r in args.rows if r not in ROWS]:
        p.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
    if args.hook_roles == "ingest" and "hooks" in args.rows:
        print("note: --hook-roles ingest has no worker: no cases, the cases row fails", file=sys.stderr)
    return args


async def amain(args: argparse.Namespace) -> int:
    started = time.monotonic()
    load0 = "/".join(f"{x:.2f}" for x in os.getloadavg())
    run = await run_table(args)
    load1 = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n# casegate benchmark table, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"host load average {load0} at the start, {load1} at the end, {time.monotonic() - started:.0f} s\n")
    print(f"N = {args.mails:,} mails over K = {args.smtp_k} SMTP connections, {args.hooks:,} webhooks over "
          f"K = {args.hook_k} HTTP connections; each reference is the median of "
          f"{args.ref_runs} runs just before and {args.ref_runs} just after its casegate pass (the paced one: one "
          "run before).\n")
    print(markdown(run))
    print("\nraw figures:")
    for line in run.raw:
        print("  " + line)
    return 1 if run.failed else 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        sys.exit(asyncio.run(amain(parse_args(argv))))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
