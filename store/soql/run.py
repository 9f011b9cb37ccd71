"""`run(session, plan, ...)`: one page of a translated query, as the REST `query` resource answers it.

A page holds at most `page_size` records (Salesforce: 2,000), or 200 when the query has child subqueries
(each parent brings up to `translate.MAX_CHILD_RECORDS` children per subquery). `totalSize` counts every
record the query matches (after OFFSET, at most LIMIT); it is counted once, on the first page, and
carried in the cursor. The cursor is a position, not a snapshot: a later page shows the rows as they are
then (ordered with the Id last, so pages never overlap while nothing changes).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from casegate.store.soql.plan import ChildEntry, Plan
from casegate.store.soql.records import aggregate_record, child_result, record
from sqlalchemy.ext.asyncio import AsyncSession

MAX_PAGE_SIZE = 2_000
MAX_PARENTS_WITH_CHILDREN = 200
_VERSION = re.compile(r"v?(\d{1,3}\.\d)")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: how many records were given already, and the total counted."""

    position: int
    total_size: int


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    total_size: int
    done: bool
    next_cursor: Cursor | None
    """None when `done`; else what to pass to `run` for the next page (the REST layer keeps it behind a
    `nextRecordsUrl`)."""


async def run(session: AsyncSession, plan: Plan, *, api_version: str, page_size: int = MAX_PAGE_SIZE,
              cursor: Cursor | None = None) -> Page:
    """One page of `plan`'s records; `api_version` ("62.0") goes into each record's URL."""
    m = _VERSION.fullmatch(api_version)
    if m is None:
        raise ValueError(f"API version like 62.0 expected, not {api_version!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
    base_url = f"/services/data/v{m.group(1)}"
    if plan.kind == "count":
        counted = int((await session.execute(plan.statement)).scalar_one())
        return Page([], _window(counted, plan), True, None)
    children = [e for e in plan.shape.entries if isinstance(e, ChildEntry)] if plan.shape is not None else []
    if children:
        page_size = min(page_size, MAX_PARENTS_WITH_CHILDREN)
    position = cursor.position if cursor is not None else 0
    remaining = cursor.total_size - position if cursor is not None else plan.limit
    size = page_size if remaining is None else max(0, min(page_size, remaining))
    rows = (await session.execute(plan.statement.limit(size).offset(plan.offset + position))).all() if size else []
    if cursor is not None:
        total = cursor.total_size
    elif len(rows) < size or size == remaining:
        total = len(rows)
    else:
        total = _window(int((await session.execute(plan.count_statement)).scalar_one()), plan)
    if plan.kind == "aggregate":
        records = [aggregate_record(r, plan.columns) for r in rows]
    else:
        assert plan.shape is not None
        results = {c.name: await _children(session, c, [r[plan.shape.id_index] for r in rows], base_url)
                   for c in children}
        records = [rec for r in rows if (rec := record(r, plan.shape, base_url, results)) is not None]
    given = position + len(records)
    done = given >= total or not records  # nothing more came: the rows changed under the cursor
    return Page(records, total, done, None if done else Cursor(given, total))


def _window(counted: int, plan: Plan) -> int:
    """How many of `counted` matching rows the query gives: after OFFSET, at most LIMIT."""
    total = max(0, counted - plan.offset)
    return total if plan.limit is None else min(total, plan.limit)


async def _children(session: AsyncSession, child: ChildEntry, parent_ids: list[str], base_url: str
                    ) -> dict[str, dict[str, Any]]:
    """Each parent's child result (parents without children are left out: their entry is null)."""
    if not parent_ids:
        return {}
    plan = child.plan
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    totals: dict[str, int] = {}
    for row in (await session.execute(plan.statement, {"parent_ids": parent_ids})).all():
        parent = row[plan.parent_index]
        rec = record(row, plan.shape, base_url)
        if rec is not None:
            grouped[parent].append(rec)
        totals[parent] = int(row[plan.total_index])
    return {parent: child_result(recs, min(totals[parent], plan.limit) if plan.limit is not None else totals[parent])
            for parent, recs in grouped.items()}
