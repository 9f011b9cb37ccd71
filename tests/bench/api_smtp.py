"""`--with-smtp` of tests/bench/api_load.py: does API work stall ingestion? The SMTP load alone (smtp_to_case's
aiosmtplib client: N mails over K connections, back to back, until the store holds them as cases), then
the same SMTP load with the API load beside it (creates, CaseNumber queries and reads by Id in turn, on
the API's K connections, from before the first mail until the last one is a case). Both rates, with the
SMTP figures alone and the API figures alone beside them."""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.bench import smtp_to_case
from tests.bench.api_client import ApiCall, case_number_call, create_call, get_call, send_calls
from tests.bench.api_figures import Figures, Report, cpu_now, cpu_since, load_average, say
from tests.bench.smtp_to_case import BenchError, Daemons, fmt, percentile

SMTP_TIMEOUT = 600.0
STALL_SECONDS = 60.0


async def count_mail_cases(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text('SELECT count(*) FROM "case" WHERE "Origin" = \'Email\''))).scalar_one())


async def wait_mail_cases(engine: AsyncEngine, target: int, daemons: Daemons) -> float:
    """perf_counter when the store holds `target` cases opened by mail."""
    last, changed = -1, time.monotonic()
    while (count := await count_mail_cases(engine)) < target:
        if count != last:
            last, changed = count, time.monotonic()
        if (dead := daemons.first_dead()) is not None:
            raise BenchError(f"{dead.name} exited with {count}/{target} mail cases")
        if time.monotonic() - changed > STALL_SECONDS:
            raise BenchError(f"stalled at {count}/{target} mail cases for {STALL_SECONDS:.0f} s")
        await asyncio.sleep(0.025)
    return time.perf_counter()


@dataclass(frozen=True)
class SmtpFigures:
    accepted: float
    """Mails/s, first send → last 250."""
    cases: float
    """Mails/s, first send → the store holds them all as cases."""
    p50: float
    p99: float
    cpu_pct: float
    """Every daemon process together, % of one core over the window."""

    def text(self) -> str:
        return (f"accepted {self.accepted:,.0f}/s, into cases {self.cases:,.0f}/s, ack p50 {self.p50:.1f} ms / "
                f"p99 {self.p99:.1f} ms, daemon CPU {self.cpu_pct:.0f} %")


async def smtp_pass(port: int, n: int, k: int, engine: AsyncEngine, daemons: Daemons,
                    members: dict[str, int]) -> SmtpFigures:
    base = await count_mail_cases(engine)
    cpu0 = cpu_now(members)
    sent = await smtp_to_case.send_all(port, n, k, None, secrets.token_hex(4), time.perf_counter() + SMTP_TIMEOUT)
    if sent.errors:
        raise BenchError(f"{len(sent.errors)} SMTP errors, e.g. {sent.errors[:3]}")
    window = await wait_mail_cases(engine, base + n, daemons) - sent.started
    lat = sorted(sent.ack_ms)
    cpu = sum(cpu_since(cpu0, members).values())
    return SmtpFigures(n / (sent.finished - sent.started), n / window, percentile(lat, 50), percentile(lat, 99),
                       cpu / window * 100)


def mixed_calls(run_id: str, cases: Sequence[tuple[str, str]], n: int) -> list[ApiCall]:
    """Creates, CaseNumber queries and reads by Id in turn."""
    rnd = random.Random(3)
    out: list[ApiCall] = []
    for i in range(n):
        case_id, number = rnd.choice(cases)
        out.append((create_call(run_id, i), case_number_call(number), get_call(case_id))[i % 3])
    return out


async def with_smtp(report: Report, port: int, token: str, args: argparse.Namespace, engine: AsyncEngine,
                    daemons: Daemons, members: dict[str, int], cases: Sequence[tuple[str, str]],
                    alone: dict[str, Figures]) -> None:
    """The SMTP load alone, then with the API load beside it; `alone` has the API's figures alone."""
    smtp_port = daemons.smtp.smtp_port
    say(f"== SMTP alone: {args.smtp_n} mails, K={args.smtp_k} (host load average {load_average()})")
    solo = await smtp_pass(smtp_port, args.smtp_n, args.smtp_k, engine, daemons, members)
    say(f"    {solo.text()}")
    say(f"== SMTP with the API load beside it: {args.smtp_n} mails, K={args.smtp_k}; API K={args.k} "
        f"(host load average {load_average()})")
    until = asyncio.Event()
    api = asyncio.create_task(send_calls(port, token, mixed_calls(secrets.token_hex(3), cases, 3 * args.creates),
                                         args.k, until=until))
    try:
        both = await smtp_pass(smtp_port, args.smtp_n, args.smtp_k, engine, daemons, members)
    finally:
        until.set()
        res = await api
    if res.errors:
        raise BenchError(f"API beside SMTP: {sum(res.errors.values())} calls failed: {res.error_text()}")
    say(f"    {both.text()}; API {res.count} calls in {res.seconds():.1f} s")
    report.add("SMTP mails accepted /s: alone -> with the API load", f"{solo.accepted:,.0f} -> {both.accepted:,.0f}",
               ratio=fmt(both.accepted / solo.accepted, ".2f"))
    report.add("SMTP mails into cases /s: alone -> with the API load", f"{solo.cases:,.0f} -> {both.cases:,.0f}",
               ratio=fmt(both.cases / solo.cases, ".2f"))
    report.add("SMTP ack p50 / p99 ms: alone -> with the API load",
               f"{solo.p50:.1f} / {solo.p99:.1f} -> {both.p50:.1f} / {both.p99:.1f}",
               ratio=f"p99 {both.p99 / solo.p99:.1f}x")
    report.add("API calls /s beside SMTP (create, CaseNumber query, read by Id in turn)", fmt(res.rate(), ",.0f"),
               f"API alone: creates {fmt(alone['create'].rate, ',.0f')}/s, queries "
               f"{fmt(alone['soql'].rate + alone['get'].rate, ',.0f')}/s")
    for kind, name in (("create", "API create"), ("soql", "API CaseNumber query"), ("get", "API read by Id")):
        f, ref = Figures.of(res, kind, {}), alone[kind]
        report.add(f"{name} beside SMTP p50 / p99 ms", f"{fmt(f.p50, '.2f')} / {fmt(f.p99, '.2f')}",
                   f"API alone: {fmt(ref.p50, '.2f')} / {fmt(ref.p99, '.2f')}",
                   f"p99 {fmt(f.p99 / ref.p99, '.1f')}x alone")
