"""How the translation orders and aliases: plain ASC/DESC for a value that is never null (so an index
serves either direction), SOQL's NULLS FIRST/LAST for one that can be null; aliases made once and reused
without two places in one SELECT sharing one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from casegate.store.database import Database
from casegate.store.soql import parse, translate
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def order_by(soql: str, dialect: object = postgresql.dialect()) -> str:
    sql = str(translate(parse(soql), now=NOW).statement.compile(dialect=dialect))  # type: ignore[arg-type]
    return sql.split("ORDER BY", 1)[1]


@pytest.mark.parametrize(("clause", "rendered"), [
    ("CreatedDate DESC", "DESC, "),
    ("CreatedDate", "ASC, "),
    ("CreatedDate DESC NULLS FIRST", "DESC, "),  # never null: where nulls go changes nothing
    ("ClosedDate DESC", "DESC NULLS LAST"),
    ("ClosedDate", "ASC NULLS FIRST"),
    ("ClosedDate ASC NULLS LAST", "ASC NULLS LAST"),
    ("Contact.CreatedDate DESC", "DESC NULLS LAST"),  # a parent's field: the parent may be missing
])
def test_nulls_are_placed_only_where_there_can_be_nulls(clause: str, rendered: str) -> None:
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert rendered in order_by(f"SELECT Id FROM Case ORDER BY {clause}", dialect)


def test_a_query_translates_to_the_same_sql_every_time() -> None:
    soql = "SELECT Id, Contact.Email, Owner.Name FROM Case WHERE Contact.Email = 'a@b.c' ORDER BY CreatedDate DESC"
    first, again = (str(translate(parse(soql), now=NOW).statement.compile(dialect=postgresql.dialect()))
                    for _ in range(2))
    assert first == again


def test_each_place_of_one_object_in_a_select_has_its_own_alias() -> None:
    plan = translate(parse("SELECT Id, Parent.Subject, Parent.Parent.Subject FROM Case"), now=NOW)
    sql = str(plan.statement.compile(dialect=postgresql.dialect()))
    assert sql.count('FROM "case" AS case_1') == 1
    assert 'LEFT OUTER JOIN "case" AS case_2' in sql and 'LEFT OUTER JOIN "case" AS case_3' in sql


async def test_newest_first_is_read_backwards_from_the_created_date_index(db: Database) -> None:
    """PostgreSQL cannot read an ascending index backwards for DESC NULLS LAST (a backward scan gives
    nulls first); plain DESC it can. (SQLite knows the column is NOT NULL and serves both.)"""
    if db.is_sqlite:
        pytest.skip("SQLite serves DESC NULLS LAST of a NOT NULL column from the index already")
    statement = translate(parse("SELECT Id FROM Case ORDER BY CreatedDate DESC LIMIT 5"), now=NOW).statement
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with db.reading() as s, s.begin():
        await s.execute(text("SET LOCAL enable_seqscan = off"))  # a few rows: the planner would scan them
        plan = " | ".join(str(r[0]) for r in await s.execute(text(f"EXPLAIN {sql}")))
    assert 'Index Scan Backward using "ix_case_CreatedDate"' in plan, plan
