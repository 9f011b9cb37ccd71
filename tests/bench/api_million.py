"""The large-store part of tests/bench/api_load.py (`--million`, PostgreSQL only): a bulk load of cases
and contacts straight into the case store, the API's common lookups timed at that size, the SQL each one
runs with its EXPLAIN ANALYZE and the indexes it used, and for each lookup that scans, or misses the
20 ms target, a candidate index made in the bench database and the lookup timed again.

The load: `rows` cases (ids from casegate.store.ids.new_id, CaseNumbers reserved from the store's own
counter, so the daemon goes on numbering after them), a contact for every 10 cases and 20 queues as
owners, by COPY through asyncpg in batches of 50,000. Cases are spread over the last 365 days (CreatedDate
grows with CaseNumber), 70 % closed; the open ones are New, Working, On Hold or Escalated. Then
VACUUM ANALYZE.

The SQL of a lookup is what the API runs: the SOQL text through casegate.store.soql `parse` and
`translate`, LIMIT/OFFSET added as `soql.run` adds them, compiled for asyncpg; EXPLAIN (ANALYZE, BUFFERS)
runs it with the lookup's first parameters. The by-Id read is the record layer's `SELECT … WHERE "Id" = $1`.
Lookups are sent over `--lookup-k` connections (default 1: one at a time, so the latency is the call's
own, not a queue's). A candidate index is dropped again once its lookup is measured, so every lookup is
timed against the migrations' indexes plus at most its own candidate."""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from casegate.store.ids import new_id
from casegate.store.models import Case
from casegate.store.soql import parse, translate
from casegate.store.soql.run import MAX_PAGE_SIZE
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from tests.bench.api_client import ApiCall, get_call, send_calls, soql_call
from tests.bench.api_figures import TARGET_P99_MS, Figures, Report, cpu_now, cpu_since, load_average, say
from tests.bench.smtp_to_case import BenchError, fmt

BATCH = 50_000
CASES_PER_CONTACT = 10
OWNERS = 20
SPAN = timedelta(days=365)
OPEN_STATUSES = ("New", "Working", "On Hold", "Escalated")
MANY_REMOVED = 10_000
"""Rows a plan reads and throws away past which the lookup counts as unindexed (tried with its fix)."""
COPIED = ("Id", "CaseNumber", "Subject", "Description", "Status", "Priority", "IsClosed", "IsClosedOnCreate",
          "ClosedDate", "IsEscalated", "OwnerId", "ContactId", "SuppliedName", "SuppliedEmail", "Origin", "IsStopped",
          "CreatedDate", "LastModifiedDate")
_REMOVED = re.compile(r"Rows Removed by Filter: (\d+)")
_USED = re.compile(r"(Index Only Scan(?: Backward)? using|Index Scan(?: Backward)? using|Bitmap Index Scan on|"
                   r"Seq Scan on) (\S+)")


@dataclass
class Loaded:
    """What the bulk load wrote, and samples to look up."""

    rows: int
    seconds: float
    contacts: int
    numbers: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    contact_ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    owner_ids: list[str] = field(default_factory=list)
    newest: datetime = field(default_factory=lambda: datetime.now(UTC))


def libpq_dsn(store_url: str) -> str:
    return make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _email(n: int) -> str:
    return f"Customer{n:07d}@Example.test"  # mixed case: SOQL compares text case-insensitively


async def bulk_load(store_url: str, rows: int, seed: int = 10, sample: int = 20_000) -> Loaded:
    """COPY `rows` cases (and their contacts and owners) into the store at `store_url`."""
    import asyncpg  # type: ignore[import-untyped]

    rnd = random.Random(seed)
    conn = await asyncpg.connect(libpq_dsn(store_url))
    started = time.perf_counter()
    try:
        missing = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'case' AND is_nullable = 'NO' "
            "AND column_default IS NULL AND NOT (column_name = ANY($1::text[]))", list(COPIED))
        if missing:
            raise BenchError(f"bulk load: case columns without a value: {[r[0] for r in missing]}")
        now = datetime.now(UTC)
        owners = [new_id("Queue") for _ in range(OWNERS)]
        await conn.copy_records_to_table("queue", columns=("Id", "Name", "CreatedDate"), records=[
            (q, f"bench-bulk-{i:02d}", now) for i, q in enumerate(owners)])
        n_contacts = max(1, rows // CASES_PER_CONTACT)
        contacts = [new_id("Contact") for _ in range(n_contacts)]
        for lo in range(0, n_contacts, BATCH):
            await conn.copy_records_to_table(
                "contact", columns=("Id", "FirstName", "LastName", "Email", "EmailKey", "CreatedDate"),
                records=[(contacts[j], "Customer", f"No. {j}", _email(j), _email(j).lower(), now - SPAN)
                         for j in range(lo, min(lo + BATCH, n_contacts))])
        last = int(await conn.fetchval('UPDATE counter SET "Value" = "Value" + $1 WHERE "Name" = \'CaseNumber\' '
                                       'RETURNING "Value"', rows))
        first = last - rows + 1
        step = SPAN / rows
        start = now - SPAN
        loaded = Loaded(rows, 0.0, n_contacts, owner_ids=owners, newest=start + step * (rows - 1))
        every = max(1, rows // sample)
        for lo in range(0, rows, BATCH):
            batch = []
            for i in range(lo, min(lo + BATCH, rows)):
                case_id, number, who = new_id("Case"), f"{first + i:08d}", i // CASES_PER_CONTACT
                created = start + step * i
                closed = rnd.random() < 0.7
                status = "Closed" if closed else OPEN_STATUSES[rnd.randrange(len(OPEN_STATUSES))]
                batch.append((case_id, number, f"bulk case {i}: the printer on floor {i % 7} is jammed",
                              "Loaded by the API benchmark.", status, "Medium", closed, False,
                              created + timedelta(days=1) if closed else None, status == "Escalated",
                              owners[rnd.randrange(OWNERS)], contacts[who], f"Customer {who}", _email(who),
                              ("Email", "Web", "Phone")[i % 3], False, created, created))
                if i % every == 0:
                    loaded.numbers.append(number)
                    loaded.ids.append(case_id)
            await conn.copy_records_to_table("case", columns=COPIED, records=batch)
            if (lo // BATCH) % 4 == 3:
                elapsed = time.perf_counter() - started
                say(f"    ... bulk load: {lo + len(batch):,}/{rows:,} cases after {elapsed:.0f} s")
        loaded.contact_ids = contacts[:: max(1, n_contacts // sample)]
        loaded.emails = [_email(j) for j in range(0, n_contacts, max(1, n_contacts // sample))]
        say(f"    COPY done in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …")
        await conn.execute('VACUUM ANALYZE "case"')
        await conn.execute("VACUUM ANALYZE contact")
        await conn.execute("VACUUM ANALYZE queue")
    finally:
        await conn.close()
    loaded.seconds = time.perf_counter() - started
    return loaded


# -- the lookups ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lookup:
    name: str
    soql: str | None
    """With `{value}` for the parameter; None: the by-Id read (`GET …/sobjects/Case/{id}`)."""
    values: str
    """Which samples of `Loaded` fill `{value}`: numbers, ids, contact_ids, emails, owner_ids, days."""
    fix: str | None = None
    """The index that serves it, tried when the lookup scans the table or misses the target."""


FIELDS = "SELECT Id, CaseNumber, Status FROM Case"
LOOKUPS = (
    Lookup("CaseNumber (one row)", f"{FIELDS} WHERE CaseNumber = '{{value}}'", "numbers"),
    Lookup("Id (GET sobjects/Case/{id})", None, "ids"),
    Lookup("ContactId (a contact's cases)", f"{FIELDS} WHERE ContactId = '{{value}}'", "contact_ids"),
    Lookup("OwnerId open, newest 20",
           f"{FIELDS} WHERE OwnerId = '{{value}}' AND IsClosed = false ORDER BY CreatedDate DESC LIMIT 20",
           "owner_ids",
           'CREATE INDEX ix_bench_case_owner_open_created ON "case" ("OwnerId", "IsClosed", '
           '"CreatedDate" DESC NULLS LAST)'),
    Lookup("Status + IsClosed, newest 20",
           f"{FIELDS} WHERE IsClosed = false AND Status = '{{value}}' ORDER BY CreatedDate DESC LIMIT 20",
           "statuses",
           'CREATE INDEX ix_bench_case_open_status_created ON "case" ("IsClosed", lower("Status"), '
           '"CreatedDate" DESC NULLS LAST)'),
    Lookup("open cases, newest 20", f"{FIELDS} WHERE IsClosed = false ORDER BY CreatedDate DESC LIMIT 20", "none",
           'CREATE INDEX ix_bench_case_created_desc ON "case" ("CreatedDate" DESC NULLS LAST)'),
    Lookup("CreatedDate one day, newest 20",
           f"{FIELDS} WHERE CreatedDate >= {{value}} AND CreatedDate < {{value2}} ORDER BY CreatedDate DESC LIMIT 20",
           "days"),
    Lookup("SuppliedEmail", f"{FIELDS} WHERE SuppliedEmail = '{{value}}'", "emails",
           'CREATE INDEX ix_bench_case_lower_suppliedemail ON "case" (lower("SuppliedEmail"))'),
    Lookup("Contact.Email", f"{FIELDS} WHERE Contact.Email = '{{value}}'", "emails",
           'CREATE INDEX ix_bench_contact_lower_email ON contact (lower("Email"))'),
)


def _soql_text(lookup: Lookup, loaded: Loaded, rnd: random.Random) -> tuple[str, str]:
    """(SOQL, the value) for one call of `lookup`."""
    assert lookup.soql is not None
    if lookup.values == "none":
        return lookup.soql, ""
    if lookup.values == "statuses":
        value = rnd.choice(("Escalated", "New", "On Hold"))
        return lookup.soql.format(value=value), value
    if lookup.values == "days":
        day = loaded.newest - timedelta(days=rnd.randrange(1, 360))
        lo, hi = (d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in (day, day + timedelta(days=1)))
        return lookup.soql.format(value=lo, value2=hi), lo
    value = rnd.choice(getattr(loaded, lookup.values))
    return lookup.soql.format(value=value), value


def calls(lookup: Lookup, loaded: Loaded, n: int, seed: int = 7) -> list[ApiCall]:
    rnd = random.Random(seed)
    if lookup.soql is None:
        return [get_call(rnd.choice(loaded.ids)) for _ in range(n)]
    return [soql_call(_soql_text(lookup, loaded, rnd)[0], lookup.name) for _ in range(n)]


def statement(lookup: Lookup, loaded: Loaded, seed: int = 7) -> Select[Any]:
    """The SQLAlchemy statement the API runs for the lookup's first call (as `soql.run` pages it)."""
    rnd = random.Random(seed)
    if lookup.soql is None:
        return select(Case.__table__).where(Case.__table__.c.Id == rnd.choice(loaded.ids))
    plan = translate(parse(_soql_text(lookup, loaded, rnd)[0]), now=datetime.now(UTC))
    size = MAX_PAGE_SIZE if plan.limit is None else min(MAX_PAGE_SIZE, plan.limit)
    return plan.statement.limit(size).offset(plan.offset)


def compiled_sql(stmt: Select[Any]) -> tuple[str, list[Any]]:
    """The SQL text as asyncpg gets it ($1 … placeholders) and its arguments."""
    dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy dialects have no typed __init__
    c = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    names: Sequence[str] = c.positiontup or []
    return str(c), [c.params[name] for name in names]


async def explain(store_url: str, stmt: Select[Any]) -> tuple[str, str, list[str]]:
    """(SQL, EXPLAIN ANALYZE text, what it read: `Index Scan using ix_…`, `Seq Scan on "case"` …)."""
    import asyncpg

    sql, args = compiled_sql(stmt)
    conn = await asyncpg.connect(libpq_dsn(store_url))
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    finally:
        await conn.close()
    text = "\n".join(r[0] for r in rows)
    return sql, text, [f"{m.group(1)} {m.group(2)}" for m in _USED.finditer(text)]


async def execute(store_url: str, sql: str) -> float:
    """Run one statement (CREATE INDEX, ANALYZE); its seconds."""
    import asyncpg

    conn = await asyncpg.connect(libpq_dsn(store_url))
    try:
        t = time.perf_counter()
        await conn.execute(sql)
        return time.perf_counter() - t
    finally:
        await conn.close()


def removed_by_filter(plan: str) -> int:
    """Rows the plan's nodes read and threw away (per worker, for a parallel node)."""
    return sum(int(m.group(1)) for m in _REMOVED.finditer(plan))


def scans_table(used: Sequence[str]) -> bool:
    """Whether a plan reads the case or contact table whole."""
    return any(u in ('Seq Scan on "case"', "Seq Scan on contact") for u in used)


async def measure_lookup(report: Report, lookup: Lookup, loaded: Loaded, port: int, token: str, store_url: str,
                         args: argparse.Namespace, query_ref: Figures, members: dict[str, int],
                         label: str = "") -> tuple[Figures, bool]:
    """The lookup through the API, then its SQL and EXPLAIN ANALYZE; (figures, whether its plan reads a
    table whole or throws many rows away)."""
    cpu0 = cpu_now(members)
    res = await send_calls(port, token, calls(lookup, loaded, args.lookups), args.lookup_k,
                           seconds=args.lookup_seconds)
    if res.errors:
        raise BenchError(f"{lookup.name}: {sum(res.errors.values())} calls failed: {res.error_text()}")
    got = Figures.of(res, None, cpu_since(cpu0, members))
    sql, plan, used = await explain(store_url, statement(lookup, loaded))
    removed = removed_by_filter(plan)
    reads = ", ".join(used) or "-"
    print(f"\n-- {lookup.name} at {loaded.rows:,} cases{label}: {got.calls} calls, K={args.lookup_k}, "
          f"{got.latency()}, CPU ms per call {got.cpu()}\n-- SQL:\n{sql}\n-- EXPLAIN (ANALYZE, BUFFERS):\n{plan}\n"
          f"-- reads: {reads}; rows removed by filter: {removed:,}\n", flush=True)
    report.add(f"{lookup.name} @{loaded.rows:,}{label} p50 / p99 ms", f"{fmt(got.p50, '.2f')} / {fmt(got.p99, '.2f')} "
               f"[{reads}]", f"{fmt(query_ref.p50, '.2f')} / {fmt(query_ref.p99, '.2f')}",
               f"p99 {fmt(got.p99 / query_ref.p99, '.1f')}x; target {'met' if got.p99 < TARGET_P99_MS else 'MISSED'}")
    return got, scans_table(used) or removed > MANY_REMOVED


async def run_lookups(report: Report, port: int, token: str, store_url: str, args: argparse.Namespace,
                      query_ref: Figures, members: dict[str, int]) -> None:
    """Bulk-load, then time every lookup; one that scans or misses the target again with its candidate index."""
    say(f"== bulk load of {args.million_rows:,} cases (host load average {load_average()})")
    loaded = await bulk_load(store_url, args.million_rows)
    report.add("bulk load (COPY, then VACUUM ANALYZE)", f"{loaded.rows:,} cases, {loaded.contacts:,} contacts, "
               f"{OWNERS} queues in {loaded.seconds:.1f} s")
    for lookup in LOOKUPS:
        say(f"== lookup {lookup.name} (host load average {load_average()})")
        before, scans = await measure_lookup(report, lookup, loaded, port, token, store_url, args, query_ref, members)
        if lookup.fix is None or not (scans or before.p99 >= TARGET_P99_MS):
            continue
        seconds = await execute(store_url, lookup.fix)
        await execute(store_url, 'ANALYZE "case"')
        await execute(store_url, "ANALYZE contact")
        name = lookup.fix.split(" ON ")[0].removeprefix("CREATE INDEX ")
        say(f"    made in {seconds:.1f} s: {lookup.fix}")
        after, _ = await measure_lookup(report, lookup, loaded, port, token, store_url, args, query_ref, members,
                                        " with the candidate index")
        report.add(f"{lookup.name}: candidate index ({seconds:.1f} s to build)", lookup.fix.split(" ", 2)[2],
                   ratio=f"p50 {fmt(before.p50, '.1f')} -> {fmt(after.p50, '.1f')} ms, "
                         f"p99 {fmt(before.p99, '.1f')} -> {fmt(after.p99, '.1f')} ms")
        await execute(store_url, f"DROP INDEX {name}")
