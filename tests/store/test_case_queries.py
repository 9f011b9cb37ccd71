"""The operator's case list (`store.case_queries.find_cases`) on SQLite and PostgreSQL: newest first
with pages that never overlap (ties on CreatedDate broken by Id), each filter and their combination,
the count of every match, owners found by queue name or user email/name, times compared in UTC, and an
order the CreatedDate index serves."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from casegate.store.case_queries import CaseFilter, OwnerNotFound, _listing, find_cases
from casegate.store.database import Database
from casegate.store.models import Case
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from tests.store.case_seed import T0, Seed, seed_cases

MINUTE = timedelta(minutes=1)


async def numbers(db: Database, where: CaseFilter | None = None, **page: int) -> list[str]:
    return [c["CaseNumber"] for c in (await find_cases(db, where, **page)).records]


async def test_newest_first_in_pages_that_never_overlap(db: Database) -> None:
    opened = await seed_cases(db, [Seed(f"case {i}", T0 + i * MINUTE) for i in range(7)]
                              + [Seed(f"tied {i}", T0 + 3 * MINUTE + MINUTE // 2) for i in range(3)])
    page = await find_cases(db, limit=4)
    assert (page.total, page.offset, page.limit, len(page.records)) == (10, 0, 4, 4)
    assert page.records[0]["CaseNumber"] == opened[6] and page.records[0]["attributes"] == {"type": "Case"}
    assert {"ContactEmail", "OwnerName", "Subject", "CreatedDate"} <= set(page.records[0])
    every = [n for offset in (0, 4, 8) for n in await numbers(db, limit=4, offset=offset)]
    assert sorted(every) == sorted(opened) and len(set(every)) == 10
    created = [(c["CreatedDate"], c["Id"]) for c in (await find_cases(db, limit=10)).records]
    assert created == sorted(created, reverse=True)  # CreatedDate, then Id, both descending
    assert every == [c["CaseNumber"] for c in (await find_cases(db, limit=10)).records]
    past = await find_cases(db, limit=4, offset=12)
    assert (past.records, past.total) == ([], 10)


async def test_each_filter_narrows_the_list_and_its_count(db: Database) -> None:
    new, working, closed, web, sms, old = await seed_cases(db, [
        Seed("new mail", T0 + 5 * MINUTE),
        Seed("working mail", T0 + 4 * MINUTE, status="Working"),
        Seed("closed mail", T0 + 3 * MINUTE, status="Closed"),
        Seed("web form", T0 + 2 * MINUTE, to="web@example.com"),
        Seed("text message", T0 + 1 * MINUTE, to="sms@example.com", status="On Hold"),
        Seed("last week", T0 - timedelta(days=7)),
    ])
    assert await numbers(db, CaseFilter(statuses=("Closed",))) == [closed]
    assert await numbers(db, CaseFilter(statuses=("New", "Working", "On Hold", "Escalated"))) == [
        new, working, web, sms, old]
    assert await numbers(db, CaseFilter(origin="web")) == [web]
    assert await numbers(db, CaseFilter(origin=" SMS ")) == [sms]
    assert await numbers(db, CaseFilter(since=T0 + 3 * MINUTE)) == [new, working, closed]
    # 11:03 at +02:00 is 09:03 UTC: compared in UTC on both databases
    assert await numbers(db, CaseFilter(since=(T0 + 3 * MINUTE).astimezone(timezone(timedelta(hours=2))))) == [
        new, working, closed]
    assert await numbers(db, CaseFilter(since=(T0 + 3 * MINUTE).replace(tzinfo=None))) == [new, working, closed]
    page = await find_cases(db, CaseFilter(statuses=("New",), since=T0 - timedelta(days=1)))
    assert ([c["CaseNumber"] for c in page.records], page.total) == ([new, web], 2)


async def test_owners_are_found_by_queue_name_or_user_email_or_name(db: Database) -> None:
    support, web, sms = await seed_cases(db, [Seed("a", T0 + 3 * MINUTE), Seed("b", T0 + 2 * MINUTE,
                                              to="web@example.com"), Seed("c", T0 + MINUTE, to="sms@example.com")])
    for owner in ("Billing", "billing", "queue:BILLING"):
        assert await numbers(db, CaseFilter(owner=owner)) == [web], owner
    for owner in ("lead@example.com", "Lead@Example.com", "user:lead@example.com", "lead"):
        assert await numbers(db, CaseFilter(owner=owner)) == [sms], owner
    [record] = (await find_cases(db, CaseFilter(owner="Support"))).records
    assert (record["CaseNumber"], record["OwnerName"]) == (support, "Support")
    assert await numbers(db, CaseFilter(owner=record["OwnerId"])) == [support]
    with pytest.raises(OwnerNotFound):  # a queue's name, asked for as a user
        await find_cases(db, CaseFilter(owner="user:Billing"))
    with pytest.raises(OwnerNotFound, match=r"no queue or user is named 'Nobody' \(queues: Billing, Support; "
                                            r"users: lead@example.com\)"):
        await find_cases(db, CaseFilter(owner="Nobody"))


async def test_the_list_is_read_in_created_date_index_order(db: Database) -> None:
    """The newest cases come off the CreatedDate index (no sort of the whole table) on both databases."""
    await seed_cases(db, [Seed(f"case {i}", T0 + i * MINUTE) for i in range(3)])
    query = _listing().order_by(Case.CreatedDate.desc(), Case.Id.desc()).limit(50)
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
            plan = " / ".join(row[-1] for row in (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all())
            # ties on CreatedDate are sorted by Id as they come ("RIGHT PART OF ORDER BY"), never the whole list
            assert "SCAN case USING INDEX ix_case_CreatedDate" in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
        else:
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            await conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(row[0] for row in (await conn.execute(text(f"EXPLAIN {sql}"))).all())
            assert 'Index Scan Backward using "ix_case_CreatedDate"' in plan, plan
