"""`casegate cases list` as an operator uses it, the real command against a real store: newest first, a
page of 50 by default with a line saying which cases these are and how to get the next page, filters by
status, owner, origin and age that combine, `--json` a list of Case records for the page, and wrong
values refused with the reason (exit 2) or, for an owner no one has, the owners there are (exit 1)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from casegate.store.database import Database
from casegate.store.migrate import upgrade

from tests.ingest.test_cli_newcomer import casegate, one_line
from tests.store.case_seed import Seed, seed_cases

NOW = datetime.now(UTC).replace(microsecond=0)
SEEDS = [
    Seed("ancient", NOW - timedelta(days=10)),
    *(Seed(f"mail {i:02}", NOW - timedelta(hours=100 - i)) for i in range(52)),  # 4 to 2 days old
    Seed("web form", NOW - timedelta(hours=3), to="web@example.com"),
    Seed("text message", NOW - timedelta(hours=2), to="sms@example.com", status="On Hold"),
    Seed("closed", NOW - timedelta(hours=1), status="Closed"),
]
NEWEST_FIRST = [s.subject for s in reversed(SEEDS)]


def seeded(url: str) -> None:
    async def seed() -> None:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        try:
            await seed_cases(db, SEEDS)
        finally:
            await db.dispose()

    asyncio.run(seed())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder whose ./casegate-data holds a SQLite store with SEEDS in it."""
    path = tmp_path_factory.mktemp("cases-list")
    seeded(f"sqlite+aiosqlite:///{path / 'casegate-data' / 'cases.db'}")
    yield path


def table(r: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    """The subjects of the listed rows, in order, and the line under them."""
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").splitlines()
    header, rows, summary = lines[0], lines[1:-1], lines[-1]
    assert header.split()[:2] == ["CaseNumber", "Status"] and header.split()[-1] == "Subject"
    at = header.index("Subject")
    return [row[at:].strip() for row in rows], summary


def json_page(r: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    assert all(rec["attributes"] == {"type": "Case"} and rec["CaseNumber"] for rec in records)
    return [rec["Subject"] for rec in records], r.stderr.strip()


def test_newest_first_fifty_at_a_time_with_the_next_page_named(folder: Path) -> None:
    subjects, summary = table(casegate(folder, "cases", "list"))
    assert subjects == NEWEST_FIRST[:50]
    assert summary == "showing 1\u201350 of 56 cases; next: --page 2"
    subjects, summary = table(casegate(folder, "cases", "list", "--page", "2"))
    assert (subjects, summary) == (NEWEST_FIRST[50:], "showing 51\u201356 of 56 cases")
    subjects, summary = table(casegate(folder, "cases", "list", "--offset", "54", "--limit", "1"))
    assert (subjects, summary) == (["mail 00"], "showing 55 of 56 cases; next: --offset 55")
    past = casegate(folder, "cases", "list", "--page", "4")
    assert past.returncode == 0
    assert past.stdout == "no cases on page 4: there are 56 cases, the last page is --page 2\n"


def test_json_is_the_list_of_case_records_of_the_page(folder: Path) -> None:
    subjects, summary = json_page(casegate(folder, "cases", "list", "--json", "--page", "2", "--limit", "20"))
    assert (subjects, summary) == (NEWEST_FIRST[20:40], "showing 21\u201340 of 56 cases; next: --page 3")
    records = json.loads(casegate(folder, "cases", "list", "--json", "--limit", "3").stdout)
    assert [r["Status"] for r in records] == ["Closed", "On Hold", "New"]
    assert {"Id", "CaseNumber", "Origin", "OwnerId", "OwnerName", "ContactEmail", "CreatedDate"} <= set(records[0])


def test_filters_combine_and_the_count_is_of_what_matches(folder: Path) -> None:
    assert table(casegate(folder, "cases", "list", "--status", "open", "--since", "7d", "--limit", "100")) == (
        NEWEST_FIRST[1:-1], "54 cases")
    assert table(casegate(folder, "cases", "list", "--status", "on hold", "--status", "CLOSED")) == (
        ["closed", "text message"], "2 cases")
    assert table(casegate(folder, "cases", "list", "--owner", "billing")) == (["web form"], "1 case")
    assert json_page(casegate(folder, "cases", "list", "--owner", "lead@example.com", "--json")) == (
        ["text message"], "1 case")
    assert table(casegate(folder, "cases", "list", "--origin", "sms"))[0] == ["text message"]
    since = (NOW - timedelta(hours=2, minutes=30)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert table(casegate(folder, "cases", "list", "--since", since))[0] == ["closed", "text message"]
    assert table(casegate(folder, "cases", "list", "--status", "new", "--origin", "Email", "--since", "7d",
                          "--limit", "10", "--page", "6")) == (["mail 01", "mail 00"], "showing 51\u201352 of 52 cases")
    none = casegate(folder, "cases", "list", "--origin", "fax", "--since", "1h")
    assert (none.returncode, none.stdout) == (0, "no cases match these filters\n")


def test_an_owner_no_one_has_lists_the_owners_there_are(folder: Path) -> None:
    r = casegate(folder, "cases", "list", "--owner", "Nobody")
    assert r.returncode == 1 and r.stdout == ""
    assert one_line(r) == ("casegate: no queue or user is named 'Nobody' (queues: Billing, Support; "
                           "users: lead@example.com)")


@pytest.mark.parametrize(("args", "reason"), [
    (["--status", "Pending"], "argument --status: unknown status 'Pending' (one of New, Working, On Hold, "
                              "Escalated, Closed, or open)"),
    (["--page", "0"], "argument --page: not a whole number of at least 1: '0'"),
    (["--limit", "many"], "argument --limit: not a whole number of at least 1: 'many'"),
    (["--offset", "-1"], "argument --offset: not a whole number of at least 0: '-1'"),
    (["--page", "2", "--offset", "3"], "argument --offset: not allowed with argument --page"),
    (["--since", "yesterday"], "argument --since: not a date, time or age: 'yesterday'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_wrong_values_are_refused_with_the_reason(folder: Path, args: list[str], reason: str) -> None:
    r = casegate(folder, "cases", "list", *args)
    assert r.returncode == 2 and reason in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_messages_export_since_a_time_with_an_offset_compares_in_utc(folder: Path) -> None:
    since = (NOW - timedelta(hours=2, minutes=30)).astimezone(timezone(timedelta(hours=2))).isoformat()
    r = casegate(folder, "messages", "export", "--since", since)
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(line)["subject"] for line in r.stdout.splitlines()) == ["closed", "text message"]


@pytest.mark.postgres
def test_the_list_on_postgresql(tmp_path: Path, pg_db_url: str) -> None:
    seeded(pg_db_url)
    env = {"CASEGATE_STORE__URL": pg_db_url}
    assert table(casegate(tmp_path, "cases", "list", **env)) == (NEWEST_FIRST[:50],
                                                                 "showing 1\u201350 of 56 cases; next: --page 2")
    assert json_page(casegate(tmp_path, "cases", "list", "--json", "--status", "open", "--owner", "queue:Support",
                              "--since", "5d", "--offset", "40", **env)) == (
        NEWEST_FIRST[43:55], "showing 41\u201352 of 52 cases")
