"""SOQL against a seeded case store, on SQLite and on PostgreSQL: each query of the tables below gives
exactly the Salesforce-shaped records listed, on both databases.

The store is migrated and seeded once per module and database (through the ORM, fixed ids and dates);
`NOW` is a Friday, 2026-11-27 15:00 UTC, so the date literals have fixed answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from casegate.store.database import Database
from casegate.store.migrate import upgrade
from casegate.store.models import Account, Attachment, Case, CaseComment, Contact, EmailMessage, Queue, User
from casegate.store.soql import Cursor, Page, parse, run, translate

from tests.services import _create_database, _drop_database

T = TypeVar("T")
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
VERSION = "62.0"
BASE = f"/services/data/v{VERSION}/sobjects"


def sfid(prefix: str, n: int) -> str:
    return f"{prefix}{n:015d}"


K1, K2, K3, K4, K5, K6 = (sfid("500", n) for n in range(1, 7))
A1, A2 = sfid("001", 1), sfid("001", 2)
C1, C2, C3 = (sfid("003", n) for n in range(1, 4))
U1, Q1 = sfid("005", 1), sfid("00G", 1)
CC1, CC2, CC3 = (sfid("00a", n) for n in range(1, 4))
E1, E2, E3 = (sfid("02s", n) for n in range(1, 4))
AT1 = sfid("00P", 1)
NUMBERS = {K1: "00001001", K2: "00001002", K3: "00001003", K4: "00001004", K5: "00001005", K6: "00001006"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def seed_rows() -> list[Any]:
    t0 = at("2026-01-05T10:00:00")

    def case(id_: str, created: str, **fields: Any) -> Case:
        values: dict[str, Any] = {"Status": "New", "Priority": "Medium", "OwnerId": Q1} | fields
        return Case(Id=id_, CaseNumber=NUMBERS[id_], CreatedDate=at(created), LastModifiedDate=at(created), **values)

    return [
        Account(Id=A1, Name="Acme", Domain="acme.example", CreatedDate=t0),
        Account(Id=A2, Name="Globex", CreatedDate=t0),
        Contact(Id=C1, AccountId=A1, FirstName="Ada", LastName="Lovelace", Email="ada@example.org", CreatedDate=t0),
        Contact(Id=C2, FirstName="Grace", LastName="Hopper", Email="grace@example.org", CreatedDate=t0),
        Contact(Id=C3, AccountId=A2, LastName="Turing", CreatedDate=t0),
        User(Id=U1, Name="Lead", Email="lead@example.com", IsActive=True, CreatedDate=t0),
        Queue(Id=Q1, Name="Support", CreatedDate=t0),
        case(K1, "2026-11-27T09:00:00", Subject="Printer on fire", Priority="High", Origin="Email", ContactId=C1,
             AccountId=A1, Type="Mechanical", Description="smoke everywhere"),
        case(K2, "2026-11-26T23:30:00", Subject="Refund for order 42", Status="Working", Origin="Web", OwnerId=U1,
             ContactId=C2),
        case(K3, "2026-11-20T10:00:00", Subject="It's broken \\ again", Status="Closed", IsClosed=True,
             ClosedDate=at("2026-11-20T12:00:00"), Priority="Low", Origin="Phone", OwnerId=U1),
        case(K4, "2026-10-15T08:00:00", ContactId=C3, AccountId=A2, ParentId=K1, SuppliedEmail="x@example.net"),
        case(K5, "2025-12-31T23:59:59", Subject="50% off_sale", Status="On Hold", Priority="High", Origin="Email",
             ContactId=C1, AccountId=A1, ParentId=K1, Type="Electrical;Mechanical"),
        case(K6, "2026-11-27T14:59:00", Subject="Ünïcödé ☃ 日本", Priority="Low", OwnerId=U1, IsEscalated=True),
        CaseComment(Id=CC1, ParentId=K1, CommentBody="First comment", IsPublished=True, CreatedById=U1,
                    CreatedDate=at("2026-11-27T09:05:00")),
        CaseComment(Id=CC2, ParentId=K1, CommentBody="Second (internal)", CreatedDate=at("2026-11-27T09:10:00")),
        CaseComment(Id=CC3, ParentId=K2, CommentBody="Only one", CreatedById=U1, CreatedDate=at("2026-11-26T23:45:00")),
        EmailMessage(Id=E1, ParentId=K1, Incoming=True, Status="0", FromAddress="ada@example.org",
                     Subject="Printer on fire", TextBody="help", CreatedDate=at("2026-11-27T09:00:00")),
        EmailMessage(Id=E2, ParentId=K1, Incoming=False, Status="3", FromAddress="support@localhost",
                     Subject="Re: Printer on fire", CreatedDate=at("2026-11-27T09:30:00")),
        EmailMessage(Id=E3, ParentId=K3, Incoming=True, Status="0", Subject="broken",
                     CreatedDate=at("2026-11-20T10:00:00")),
        Attachment(Id=AT1, ParentId=K1, EmailMessageId=E1, Name="photo.jpg", BodyLength=2048, Sha256="a" * 64,
                   CreatedDate=at("2026-11-27T09:00:00")),
    ]


def in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a loop of its own (module fixtures may be set up while a test loop runs)."""

    async def main() -> T:
        return await fn()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def migrated_and_seeded(url: str) -> str:
    upgrade(url)

    async def seed() -> None:
        db = Database(url)
        try:
            async with db.session() as s, s.begin():
                rows = seed_rows()
                s.add_all([r for r in rows if not isinstance(r, Case | CaseComment | EmailMessage | Attachment)])
                await s.flush()
                for model in (Case, CaseComment, EmailMessage, Attachment):
                    for r in rows:
                        if isinstance(r, model):
                            s.add(r)
                            await s.flush()  # in order: a case's parent before the case
        finally:
            await db.dispose()

    in_thread(seed)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with the rows of `seed_rows`, on SQLite or on a PostgreSQL database of this module's own."""
    if request.param == "sqlite":
        yield migrated_and_seeded(f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('soql')) / 'cases.db'}")
        return
    name, url = _create_database()  # skips without PostgreSQL (fails under CASEGATE_REQUIRE_SERVICES=1)
    try:
        yield migrated_and_seeded(url)
    finally:
        _drop_database(name)


@pytest.fixture
async def db(seeded_url: str) -> AsyncIterator[Database]:
    database = Database(seeded_url)
    try:
        yield database
    finally:
        await database.dispose()


async def page(db: Database, soql: str, *, page_size: int = 2000, cursor: Cursor | None = None,
               include_deleted: bool = False, child_records: int = 2000) -> Page:
    plan = translate(parse(soql), now=NOW, include_deleted=include_deleted, child_records=child_records)
    async with db.session() as s:
        return await run(s, plan, api_version=VERSION, page_size=page_size, cursor=cursor)


async def records(db: Database, soql: str) -> list[dict[str, Any]]:
    result = await page(db, soql)
    assert (result.total_size, result.done, result.next_cursor) == (len(result.records), True, None)
    return result.records


def rec(obj: str, id_: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": obj, "url": f"{BASE}/{obj}/{id_}"}, **fields}


def owner(obj: str, id_: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Name", "url": f"{BASE}/{obj}/{id_}"}, **fields}


def children(*items: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    return {"totalSize": len(items) if total is None else total, "done": True, "records": list(items)}


def agg(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "AggregateResult"}, **fields}


# -- which cases each WHERE finds (SELECT CaseNumber ... ORDER BY CaseNumber) --------------------------
FILTERS = [
    ("Status = 'new'", [K1, K4, K6]),  # text compares case-insensitively
    ("Status != 'New'", [K2, K3, K5]),
    ("Origin != 'Email'", [K2, K3, K4, K6]),  # a null differs from every value
    ("Origin <> 'Email'", [K2, K3, K4, K6]),
    ("NOT Origin = 'Email'", [K2, K3, K4, K6]),
    ("Origin NOT IN ('Email', 'Web')", [K3, K4, K6]),
    ("Origin IN ('email', 'WEB')", [K1, K2, K5]),
    ("Origin IN ('Phone', null)", [K3, K4, K6]),
    ("Origin = null", [K4, K6]),
    ("Origin != null", [K1, K2, K3, K5]),
    ("CaseNumber < '00001003'", [K1, K2]),
    ("CaseNumber >= '00001005'", [K5, K6]),
    ("Subject LIKE '%PRINTER%'", [K1]),
    ("Subject LIKE '50\\%%'", [K5]),
    ("Subject LIKE '%off\\_sale'", [K5]),
    ("Subject LIKE '%f_sale'", [K5]),
    ("Subject LIKE 'It\\'s%'", [K3]),
    ("NOT Subject LIKE '%r%'", [K4, K5, K6]),
    ("Subject = 'It\\'s broken \\\\ again'", [K3]),
    ("Subject = 'Ünïcödé ☃ 日本'", [K6]),
    ("Subject = '\\u00dcn\\u00efc\\u00f6d\\u00e9 \\u2603 \\u65e5\\u672c'", [K6]),
    ("Subject = '\\' OR 1=1 --'", []),  # an injection attempt is one harmless value
    ("Subject = '\\'; DROP TABLE \"case\"; --'", []),
    ("Subject LIKE '%\\' OR \\'\\'=\\''", []),
    ("Subject = null", [K4]),
    ("IsClosed = true", [K3]),
    ("IsClosed = null", [K1, K2, K4, K5, K6]),  # on a boolean, null is false
    ("IsEscalated != null", [K6]),
    ("Contact.LastName = null", [K3, K6]),
    ("Contact.Email LIKE '%@EXAMPLE.org'", [K1, K2, K5]),
    ("Contact.Account.Name = 'Acme'", [K1, K5]),
    ("Contact.Account.Name != 'Acme'", [K2, K3, K4, K6]),
    ("Contact.Name = 'Ada Lovelace'", [K1, K5]),
    ("Contact.Name = 'Turing'", [K4]),
    ("ContactEmail = 'grace@example.org'", [K2]),
    ("Owner.Type = 'Queue'", [K1, K4, K5]),
    ("Owner.Name = 'lead'", [K2, K3, K6]),
    ("Parent.CaseNumber = '00001001'", [K4, K5]),
    (f"Id = '{K2}'", [K2]),
    (f"Id IN ('{K2}', '{K4}')", [K2, K4]),
    (f"OwnerId != '{Q1}'", [K2, K3, K6]),
    ("(Status = 'New' OR Status = 'Working') AND NOT (Priority = 'Low')", [K1, K2, K4]),
    ("Status = 'New' AND (Priority = 'Low' OR (Origin = null AND Subject = null))", [K4, K6]),
    ("Type INCLUDES ('Mechanical')", [K1, K5]),
    ("Type INCLUDES ('Electrical;Mechanical')", [K5]),
    ("Type INCLUDES ('Electrical', 'Mechanical')", [K1, K5]),
    ("Type EXCLUDES ('Mechanical')", [K2, K3, K4, K6]),
    ("CreatedDate = TODAY", [K1, K6]),
    ("CreatedDate = YESTERDAY", [K2]),
    ("CreatedDate > YESTERDAY", [K1, K6]),
    ("CreatedDate = TOMORROW", []),
    ("CreatedDate = LAST_N_DAYS:1", [K1, K2, K6]),
    ("CreatedDate = LAST_N_DAYS:7", [K1, K2, K3, K6]),
    ("CreatedDate = NEXT_N_DAYS:3", []),
    ("CreatedDate = N_DAYS_AGO:7", [K3]),
    ("CreatedDate = THIS_WEEK", [K1, K2, K6]),
    ("CreatedDate = LAST_WEEK", [K3]),
    ("CreatedDate = THIS_MONTH", [K1, K2, K3, K6]),
    ("CreatedDate = LAST_MONTH", [K4]),
    ("CreatedDate < THIS_MONTH", [K4, K5]),
    ("CreatedDate <= LAST_MONTH", [K4, K5]),
    ("CreatedDate >= THIS_YEAR", [K1, K2, K3, K4, K6]),
    ("CreatedDate = LAST_YEAR", [K5]),
    ("CreatedDate = LAST_N_MONTHS:2", [K4]),
    ("CreatedDate = THIS_QUARTER", [K1, K2, K3, K4, K6]),
    ("CreatedDate = LAST_90_DAYS", [K1, K2, K3, K4, K6]),
    ("CreatedDate = THIS_FISCAL_YEAR", [K1, K2, K3, K4, K6]),
    ("CreatedDate IN (YESTERDAY, LAST_YEAR)", [K2, K5]),
    ("CreatedDate >= 2026-11-27T09:00:00Z", [K1, K6]),
    ("CreatedDate < 2026-11-27T10:00:00+01:00", [K2, K3, K4, K5]),  # 09:00 UTC
    ("CreatedDate > 2026-11-27T09:00:00.000-0100", [K6]),  # 10:00 UTC
    ("CreatedDate = 2026-11-26", [K2]),
    ("CreatedDate > 2026-11-26", [K1, K6]),
    ("ClosedDate != null", [K3]),
    ("SystemModstamp < 2026-01-01T00:00:00Z", [K5]),
    ("IsDeleted = false", [K1, K2, K3, K4, K5, K6]),
]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[w for w, _ in FILTERS])
async def test_where(db: Database, where: str, expected: list[str]) -> None:
    found = await records(db, f"SELECT CaseNumber FROM Case WHERE {where} ORDER BY CaseNumber")
    assert found == [rec("Case", k, CaseNumber=NUMBERS[k]) for k in expected]


# -- whole records --------------------------------------------------------------------------------
COMMENT_1 = rec("CaseComment", CC1, CommentBody="First comment", CreatedBy=rec("User", U1, Name="Lead"))
COMMENT_2 = rec("CaseComment", CC2, CommentBody="Second (internal)", CreatedBy=None)
QUEUE = owner("Queue", Q1, Name="Support", Type="Queue")
LEAD = owner("User", U1, Name="Lead", Type="User")
SHAPES: list[tuple[str, list[dict[str, Any]]]] = [
    ("select id, casenumber, SUBJECT, createddate, isclosed from CASE where CaseNumber = '00001001'",
     [rec("Case", K1, Id=K1, CaseNumber="00001001", Subject="Printer on fire",
          CreatedDate="2026-11-27T09:00:00.000+0000", IsClosed=False)]),
    ("SELECT CaseNumber, Contact.Email, Contact.Account.Name, Account.Name FROM Case ORDER BY CaseNumber LIMIT 4", [
        rec("Case", K1, CaseNumber="00001001", Contact=rec("Contact", C1, Email="ada@example.org",
            Account=rec("Account", A1, Name="Acme")), Account=rec("Account", A1, Name="Acme")),
        rec("Case", K2, CaseNumber="00001002", Contact=rec("Contact", C2, Email="grace@example.org", Account=None),
            Account=None),
        rec("Case", K3, CaseNumber="00001003", Contact=None, Account=None),
        rec("Case", K4, CaseNumber="00001004", Contact=rec("Contact", C3, Email=None,
            Account=rec("Account", A2, Name="Globex")), Account=rec("Account", A2, Name="Globex")),
    ]),
    ("SELECT CaseNumber, Owner.Name, Owner.Type FROM Case WHERE CaseNumber IN ('00001001', '00001002') "
     "ORDER BY CaseNumber", [rec("Case", K1, CaseNumber="00001001", Owner=QUEUE),
                             rec("Case", K2, CaseNumber="00001002", Owner=LEAD)]),
    ("SELECT CaseNumber, (SELECT CommentBody, CreatedBy.Name FROM CaseComments ORDER BY CreatedDate) FROM Case "
     "WHERE CaseNumber IN ('00001001', '00001002', '00001003') ORDER BY CaseNumber", [
        rec("Case", K1, CaseNumber="00001001", CaseComments=children(COMMENT_1, COMMENT_2)),
        rec("Case", K2, CaseNumber="00001002", CaseComments=children(
            rec("CaseComment", CC3, CommentBody="Only one", CreatedBy=rec("User", U1, Name="Lead")))),
        rec("Case", K3, CaseNumber="00001003", CaseComments=None),
    ]),
    ("SELECT CaseNumber, (SELECT CommentBody FROM CaseComments ORDER BY CreatedDate DESC LIMIT 1) FROM Case "
     "WHERE Id = '500000000000000001'",
     [rec("Case", K1, CaseNumber="00001001", CaseComments=children(
         rec("CaseComment", CC2, CommentBody="Second (internal)")))]),
    ("SELECT CaseNumber, (SELECT Id FROM CaseComments WHERE IsPublished = false) FROM Case WHERE Id = "
     "'500000000000000001'", [rec("Case", K1, CaseNumber="00001001", CaseComments=children(
         rec("CaseComment", CC2, Id=CC2)))]),
    ("SELECT CaseNumber, (SELECT CaseNumber FROM Cases ORDER BY CaseNumber DESC) FROM Case WHERE ParentId = null "
     "AND Origin = 'Email'", [rec("Case", K1, CaseNumber="00001001", Cases=children(
         rec("Case", K5, CaseNumber="00001005"), rec("Case", K4, CaseNumber="00001004")))]),
    ("SELECT Subject, (SELECT Subject, Incoming FROM EmailMessages ORDER BY CreatedDate), "
     "(SELECT Name, BodyLength FROM Attachments) FROM Case WHERE CaseNumber = '00001001'",
     [rec("Case", K1, Subject="Printer on fire", EmailMessages=children(
         rec("EmailMessage", E1, Subject="Printer on fire", Incoming=True),
         rec("EmailMessage", E2, Subject="Re: Printer on fire", Incoming=False)),
         Attachments=children(rec("Attachment", AT1, Name="photo.jpg", BodyLength=2048)))]),
    ("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName), (SELECT CaseNumber FROM Cases WHERE "
     "IsClosed = false ORDER BY CaseNumber) FROM Account ORDER BY Name DESC", [
        rec("Account", A2, Name="Globex", Contacts=children(rec("Contact", C3, LastName="Turing")),
            Cases=children(rec("Case", K4, CaseNumber="00001004"))),
        rec("Account", A1, Name="Acme", Contacts=children(rec("Contact", C1, LastName="Lovelace")),
            Cases=children(rec("Case", K1, CaseNumber="00001001"), rec("Case", K5, CaseNumber="00001005"))),
    ]),
    ("SELECT Subject, Parent.CaseNumber, Parent.Contact.Name FROM EmailMessage ORDER BY CreatedDate DESC LIMIT 1",
     [rec("EmailMessage", E2, Subject="Re: Printer on fire", Parent=rec(
         "Case", K1, CaseNumber="00001001", Contact=rec("Contact", C1, Name="Ada Lovelace")))]),
    ("SELECT Name, EmailMessage.FromAddress, Parent.Owner.Name FROM Attachment",
     [rec("Attachment", AT1, Name="photo.jpg", EmailMessage=rec("EmailMessage", E1, FromAddress="ada@example.org"),
          Parent=rec("Case", K1, Owner=owner("Queue", Q1, Name="Support")))]),
    ("SELECT CaseNumber, Origin FROM Case ORDER BY Origin ASC NULLS LAST, CaseNumber DESC", [
        rec("Case", K5, CaseNumber="00001005", Origin="Email"), rec("Case", K1, CaseNumber="00001001", Origin="Email"),
        rec("Case", K3, CaseNumber="00001003", Origin="Phone"), rec("Case", K2, CaseNumber="00001002", Origin="Web"),
        rec("Case", K6, CaseNumber="00001006", Origin=None), rec("Case", K4, CaseNumber="00001004", Origin=None)]),
    ("SELECT CaseNumber FROM Case ORDER BY Subject", [  # ascending: nulls first, then case-insensitively
        rec("Case", k, CaseNumber=NUMBERS[k]) for k in (K4, K5, K3, K1, K2, K6)]),
    ("SELECT CaseNumber FROM Case ORDER BY Contact.LastName DESC, CaseNumber", [  # descending: nulls last
        rec("Case", k, CaseNumber=NUMBERS[k]) for k in (K4, K1, K5, K2, K3, K6)]),
    ("SELECT CaseNumber FROM Case ORDER BY Owner.Name DESC NULLS FIRST, CreatedDate DESC", [
        rec("Case", k, CaseNumber=NUMBERS[k]) for k in (K1, K4, K5, K6, K2, K3)]),
    ("SELECT CaseNumber FROM Case ORDER BY CaseNumber LIMIT 2 OFFSET 1", [
        rec("Case", K2, CaseNumber="00001002"), rec("Case", K3, CaseNumber="00001003")]),
    ("SELECT CaseNumber FROM Case ORDER BY CaseNumber OFFSET 5", [rec("Case", K6, CaseNumber="00001006")]),
    ("SELECT CaseNumber FROM Case LIMIT 0", []),
    ("SELECT CaseNumber, ContactEmail, Contact.Name, IsDeleted, SystemModstamp FROM Case WHERE Id = "
     "'500000000000000004'", [rec("Case", K4, CaseNumber="00001004", ContactEmail=None,
                                  Contact=rec("Contact", C3, Name="Turing"), IsDeleted=False,
                                  SystemModstamp="2026-10-15T08:00:00.000+0000")]),
    ("SELECT FIELDS(STANDARD) FROM Account WHERE Name = 'Globex'", [rec(
        "Account", A2, Id=A2, Name="Globex", Domain=None, CreatedDate="2026-01-05T10:00:00.000+0000",
        IsDeleted=False, SystemModstamp="2026-01-05T10:00:00.000+0000")]),
    ("SELECT Name, Email FROM Queue", [rec("Queue", Q1, Name="Support", Email=None)]),
    # aggregates: AggregateResult records, unnamed aggregates called expr0, expr1 ...
    ("SELECT Status, COUNT(Id) FROM Case GROUP BY Status ORDER BY Status", [
        agg(Status="Closed", expr0=1), agg(Status="New", expr0=3), agg(Status="On Hold", expr0=1),
        agg(Status="Working", expr0=1)]),
    ("SELECT Owner.Name, COUNT(Id) cases, MAX(CreatedDate) FROM Case GROUP BY Owner.Name ORDER BY Owner.Name", [
        agg(Name="Lead", cases=3, expr0="2026-11-27T14:59:00.000+0000"),
        agg(Name="Support", cases=3, expr0="2026-11-27T09:00:00.000+0000")]),
    ("SELECT COUNT(Id), COUNT(Subject), COUNT_DISTINCT(Priority), MIN(CaseNumber), MAX(ClosedDate) FROM Case", [
        agg(expr0=6, expr1=5, expr2=3, expr3="00001001", expr4="2026-11-20T12:00:00.000+0000")]),
    ("SELECT Priority p, COUNT(Id) n FROM Case WHERE IsClosed = false GROUP BY Priority HAVING COUNT(Id) > 1 "
     "ORDER BY COUNT(Id) DESC, Priority", [agg(p="High", n=2), agg(p="Medium", n=2)]),
    ("SELECT Contact.Account.Name, COUNT(Id) FROM Case GROUP BY Contact.Account.Name "
     "ORDER BY Contact.Account.Name NULLS LAST", [agg(Name="Acme", expr0=2), agg(Name="Globex", expr0=1),
                                                  agg(Name=None, expr0=3)]),
    ("SELECT SUM(BodyLength), AVG(BodyLength), MIN(BodyLength) FROM Attachment",
     [agg(expr0=2048, expr1=2048.0, expr2=2048)]),
    ("SELECT Incoming, COUNT(Id) FROM EmailMessage GROUP BY Incoming ORDER BY Incoming",
     [agg(Incoming=False, expr0=1), agg(Incoming=True, expr0=2)]),
]


@pytest.mark.parametrize(("soql", "expected"), SHAPES, ids=[q for q, _ in SHAPES])
async def test_records(db: Database, soql: str, expected: list[dict[str, Any]]) -> None:
    assert await records(db, soql) == expected


@pytest.mark.parametrize(("soql", "total"), [
    ("SELECT COUNT() FROM Case", 6),
    ("SELECT COUNT() FROM Case WHERE IsClosed = false AND Contact.Account.Name = 'Acme'", 2),
    ("SELECT COUNT() FROM Case LIMIT 4", 4),
    ("SELECT COUNT() FROM Case WHERE Subject = '\\' OR 1=1 --'", 0),
    ("SELECT COUNT() FROM CaseComment WHERE Parent.CaseNumber = '00001001'", 2),
])
async def test_count_gives_the_total_and_no_records(db: Database, soql: str, total: int) -> None:
    assert await page(db, soql) == Page([], total, True, None)


async def test_pages_follow_each_other_without_overlap(db: Database) -> None:
    soql = "SELECT CaseNumber FROM Case ORDER BY Priority"  # ties: the Id orders them
    first = await page(db, soql, page_size=4)
    assert (len(first.records), first.total_size, first.done, first.next_cursor) == (4, 6, False, Cursor(4, 6))
    second = await page(db, soql, page_size=4, cursor=first.next_cursor)
    assert (len(second.records), second.total_size, second.done, second.next_cursor) == (2, 6, True, None)
    every = [r["CaseNumber"] for r in first.records + second.records]
    assert every == [r["CaseNumber"] for r in await records(db, soql)]
    assert sorted(every) == sorted(NUMBERS.values())


async def test_paging_honours_limit_and_offset(db: Database) -> None:
    soql = "SELECT CaseNumber FROM Case ORDER BY CaseNumber DESC LIMIT 3 OFFSET 1"
    got: list[str] = []
    cursor: Cursor | None = None
    while True:
        p = await page(db, soql, page_size=2, cursor=cursor)
        assert p.total_size == 3
        got += [r["CaseNumber"] for r in p.records]
        if p.done:
            break
        cursor = p.next_cursor
    assert got == ["00001005", "00001004", "00001003"]


async def test_a_page_of_groups_counts_every_group(db: Database) -> None:
    p = await page(db, "SELECT Status, COUNT(Id) FROM Case GROUP BY Status ORDER BY Status", page_size=3)
    assert ([r["Status"] for r in p.records], p.total_size, p.done) == (["Closed", "New", "On Hold"], 4, False)
    rest = await page(db, "SELECT Status, COUNT(Id) FROM Case GROUP BY Status ORDER BY Status", page_size=3,
                      cursor=p.next_cursor)
    assert ([r["Status"] for r in rest.records], rest.done) == (["Working"], True)


async def test_query_all_gives_the_same_rows_while_the_store_keeps_no_deleted_records(db: Database) -> None:
    soql = "SELECT Id FROM Case ORDER BY CreatedDate"
    assert (await page(db, soql, include_deleted=True)).records == (await page(db, soql)).records


async def test_children_past_the_cap_say_how_many_there_are_and_that_they_are_not_done(db: Database) -> None:
    p = await page(db, "SELECT CaseNumber, (SELECT CommentBody FROM CaseComments ORDER BY CreatedDate) FROM Case "
                       "WHERE CaseNumber IN ('00001001', '00001002') ORDER BY CaseNumber", child_records=1)
    assert [r["CaseComments"] for r in p.records] == [
        {"totalSize": 2, "done": False, "records": [rec("CaseComment", CC1, CommentBody="First comment")]},
        children(rec("CaseComment", CC3, CommentBody="Only one")),
    ]
