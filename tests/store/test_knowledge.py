"""Knowledge articles on SQLite and PostgreSQL: writing them (numbers, URL names, publishing), full-text
suggestions of the published ones ranked by where the words are, searches that stay in step with edits and
deletes, query text that is never query syntax, attaching articles to cases as the access rules allow,
and the search objects migration 0009 makes beside the models."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from casegate.config import RulesSettings
from casegate.rules.access import Actor
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.knowledge import (
    MAX_TERMS,
    KnowledgeError,
    attach,
    create_article,
    delete_article,
    find_article,
    is_search_object,
    query_terms,
    suggest,
    update_article,
)
from casegate.store.migrate import downgrade, upgrade
from casegate.store.models import Base, CaseArticle, CaseFeed
from casegate.store.owners import ensure_owners
from sqlalchemy import Connection, inspect, select

from tests.store.test_migrations import on_sync_connection, schema_diff

T = TypeVar("T")
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ADMIN = Actor("005000000000001AAA", "admin")


async def run(db: Database, fn: Callable[[Connection], T]) -> T:
    return await db.transaction(fn)


async def write(db: Database, values: Mapping[str, object], at: datetime = T0) -> str:
    return await run(db, lambda conn: create_article(conn, values, at, ADMIN.user_id))


async def change(db: Database, article_id: str, values: Mapping[str, object], at: datetime = T0) -> None:
    await run(db, lambda conn: update_article(conn, article_id, values, at, ADMIN.user_id))


async def article(db: Database, article_id: str) -> dict[str, Any]:
    return dict(await run(db, lambda conn: find_article(conn, article_id)))


async def titles(db: Database, subject: str | None, description: str | None = None, **kw: Any) -> list[str]:
    return [a["Title"] for a in await suggest(db, subject, description, **kw)]


async def published(db: Database, title: str, summary: str = "", body: str = "", **more: object) -> str:
    return await write(db, {"Title": title, "Summary": summary or None, "Body__c": body or None,
                            "PublishStatus": "Online", **more})


# writing articles --------------------------------------------------------------------------------------
async def test_articles_are_numbered_named_after_their_title_and_drafts_until_published(db: Database) -> None:
    first = await write(db, {"Title": "Réinitialiser le mot de passe", "Body__c": "<p>Cliquez</p>"})
    second = await write(db, {"Title": "Réinitialiser le mot de passe!", "Language": "fr"})
    a, b = await article(db, first), await article(db, second)
    assert (a["ArticleNumber"], b["ArticleNumber"]) == ("000001000", "000001001")
    assert a["Id"].startswith("ka0") and a["KnowledgeArticleId"].startswith("kA0")
    assert (a["UrlName"], b["UrlName"]) == ("Reinitialiser-le-mot-de-passe", "Reinitialiser-le-mot-de-passe-000001001")
    assert (a["PublishStatus"], a["Language"], b["Language"], a["VersionNumber"]) == ("Draft", "en_US", "fr", 1)
    assert a["LastPublishedDate"] is None and a["CreatedById"] == ADMIN.user_id
    assert (await article(db, a["KnowledgeArticleId"]))["Id"] == first  # found by either id

    later = T0 + timedelta(hours=1)
    await change(db, first, {"PublishStatus": "Online"}, later)
    assert (await article(db, first))["VersionNumber"] == 1
    await change(db, first, {"PublishStatus": "Archived"}, later)
    await change(db, first, {"PublishStatus": "Online", "Summary": "again"}, later + timedelta(hours=1))
    again = await article(db, first)
    assert again["VersionNumber"] == 2 and again["Summary"] == "again"
    assert again["LastPublishedDate"].replace(tzinfo=UTC) == later + timedelta(hours=1)


@pytest.mark.parametrize(("values", "code", "field"), [
    ({"Summary": "no title"}, "REQUIRED_FIELD_MISSING", "Title"),
    ({"Title": "x", "PublishStatus": "Published"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "PublishStatus"),
    ({"Title": "x", "UrlName": "has space"}, "FIELD_INTEGRITY_EXCEPTION", "UrlName"),
    ({"Title": "x", "UrlName": "double--hyphen"}, "FIELD_INTEGRITY_EXCEPTION", "UrlName"),
    ({"Title": "x" * 256}, "STRING_TOO_LONG", "Title"),
    ({"Title": "x", "ArticleNumber": "1"}, "INVALID_FIELD_FOR_INSERT_UPDATE", "ArticleNumber"),
    ({"Title": 7}, "INVALID_FIELD", "Title"),
])
async def test_bad_article_values_are_refused_naming_the_field(db: Database, values: dict[str, object], code: str,
                                                             field: str) -> None:
    with pytest.raises(KnowledgeError) as e:
        await write(db, values)
    assert (e.value.status, e.value.code, e.value.fields) == (400, code, [field])


async def test_url_names_are_unique_whatever_their_case(db: Database) -> None:
    first = await write(db, {"Title": "One", "UrlName": "Printer-Help"})
    other = await write(db, {"Title": "Two"})
    for attempt in (lambda: write(db, {"Title": "Three", "UrlName": "printer-help"}),
                    lambda: change(db, other, {"UrlName": "PRINTER-HELP"})):
        with pytest.raises(KnowledgeError) as e:
            await attempt()
        assert e.value.code == "DUPLICATE_VALUE" and first in e.value.message
    await change(db, first, {"UrlName": "printer-help"})  # its own name, in another case
    with pytest.raises(KnowledgeError) as e:
        await change(db, "ka0" + "0" * 15, {"Title": "x"})
    assert (e.value.status, e.value.code) == (404, "NOT_FOUND")


# suggestions ---------------------------------------------------------------------------------------------
async def test_published_articles_are_suggested_best_match_first(db: Database) -> None:
    await published(db, "Paper jam", "Clearing paper from a printer", "<p>Open the printer cover.</p>")
    await published(db, "Printer on fire", "What to do when smoke comes out", "<p>Unplug it.</p>")
    await published(db, "Toner", "Replacing the toner", "<p>A <b>printer</b> needs toner.</p>")
    await published(db, "Password reset", "Forgotten passwords", "<p>Click reset.</p>")
    await write(db, {"Title": "Printer draft", "Summary": "printers printing printed"})  # a draft: never offered
    await write(db, {"Title": "Printer archive", "PublishStatus": "Archived"})

    assert await titles(db, "My printer!", "The printer is printing nothing") == [
        "Printer on fire", "Paper jam", "Toner"]  # in the title, then the summary, then only the body
    assert await titles(db, "Printers", None, limit=1) == ["Printer on fire"]
    assert await titles(db, None, "smoke") == ["Printer on fire"]
    assert await titles(db, "the is of and", "a") == []  # only stop words: nothing to look for
    assert await titles(db, "", None) == [] and await titles(db, "quantum entanglement") == []


async def test_suggestions_follow_edits_publishing_and_deletes(db: Database) -> None:
    one = await published(db, "Invoice copy", "Download an invoice")
    assert await titles(db, "invoice") == ["Invoice copy"]
    await change(db, one, {"Title": "Receipt copy", "Summary": "Download a receipt"})
    assert await titles(db, "invoice") == [] and await titles(db, "receipt") == ["Receipt copy"]
    await change(db, one, {"PublishStatus": "Archived"})
    assert await titles(db, "receipt") == []
    await change(db, one, {"PublishStatus": "Online", "Body__c": "<p>Also: refunds</p>"})
    assert await titles(db, "refund") == ["Receipt copy"]
    await run(db, lambda conn: delete_article(conn, one))
    assert await titles(db, "receipt") == []


async def test_suggestions_of_one_language(db: Database) -> None:
    await published(db, "Printer setup")
    await published(db, "Printer setup guide", Language="de", UrlName="printer-setup-de")
    assert sorted(await titles(db, "printer setup")) == ["Printer setup", "Printer setup guide"]
    assert await titles(db, "printer setup", language="de") == ["Printer setup guide"]
    assert await titles(db, "printer setup", language="fr") == []


@pytest.mark.parametrize("hostile", [
    '"', '""', "printer\"", "NEAR(printer toner)", "printer OR", "AND", "printer*", "^printer", "Title: printer",
    "{Title Summary Body}: printer", "Id : ka0", "'; DROP TABLE knowledge_article; --", "printer & toner | !x",
    "(printer", "printer)", "-printer", "printer:*", "\x00printer\x00", "\\", "%_",
])
async def test_query_text_is_only_ever_words(db: Database, hostile: str) -> None:
    await published(db, "Printer on fire")
    found = await suggest(db, hostile, hostile)
    assert [a["Title"] for a in found] in ([], ["Printer on fire"])
    assert ("printer" in query_terms(hostile)) == bool(found)


async def test_ids_are_not_searched_words(db: Database) -> None:
    one = await published(db, "Battery", body='<div class="note">Charge it</div>')
    assert await titles(db, one) == [] and await titles(db, one.lower()) == []
    assert await titles(db, "charge") == ["Battery"]


def test_query_terms_are_bounded() -> None:
    many = " ".join(f"word{i}" for i in range(200))
    assert query_terms(many) == [f"word{i}" for i in range(MAX_TERMS)]
    assert query_terms("Printer, PRINTER and printer_toner", "x" * 65 + " ok") == ["printer", "toner", "ok"]
    assert query_terms("late", "y " * 5000 + "never") == ["late"]  # past the first 4,000 characters
    assert query_terms(None, None) == []


async def test_a_long_description_is_searched_within_bounds(db: Database) -> None:
    await published(db, "Printer on fire")
    assert await titles(db, "printer", "lorem ipsum " * 20000) == ["Printer on fire"]


# attaching to cases ----------------------------------------------------------------------------------------
async def open_case(db: Database) -> tuple[CaseService, str, str]:
    owners = await ensure_owners(db, ["queue:Support"])
    service = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k"))
    msgid = f"<{uuid.uuid4().hex}@example.org>"
    [out] = await service.record_messages([InboundMessage(
        channel="email", external_id=msgid, envelope_id=str(uuid.uuid4()), received_at=T0,
        conversation_key="ada@example.org", sender_email="ada@example.org", subject="Printer on fire",
        message_id=msgid)], now=T0)
    assert out.case_id is not None and out.case_number is not None
    return service, out.case_id, out.case_number


async def test_an_article_is_attached_to_a_case_once_with_a_feed_entry(db: Database) -> None:
    _, case_id, _ = await open_case(db)
    one = await published(db, "Printer on fire")
    master = (await article(db, one))["KnowledgeArticleId"]
    link = await attach(db, case_id, master, ADMIN, shared_by_email=True, now=T0)
    assert link.startswith("0BA")
    assert await attach(db, case_id.lower(), one, ADMIN, now=T0) == link  # the same article again: the same record

    async with db.session() as s:
        rows = (await s.execute(select(CaseArticle))).scalars().all()
        feed = (await s.execute(select(CaseFeed.Type, CaseFeed.Body, CaseFeed.RelatedRecordId, CaseFeed.CreatedById)
                                .where(CaseFeed.Type == "AttachArticleEvent"))).all()
    assert [(r.CaseId, r.KnowledgeArticleId, r.KnowledgeArticleVersionId, r.ArticleLanguage, r.ArticleVersionNumber,
             r.IsSharedByEmail, r.CreatedById) for r in rows] == [(case_id, master, one, "en_US", 1, True,
                                                                   ADMIN.user_id)]
    assert [tuple(f) for f in feed] == [("AttachArticleEvent", "Knowledge article 000001000 attached: Printer on fire",
                                         link, ADMIN.user_id)]
    await run(db, lambda conn: delete_article(conn, one))  # its attachments go with it
    async with db.session() as s:
        assert (await s.execute(select(CaseArticle))).first() is None


async def test_attaching_follows_the_access_rules(db: Database) -> None:
    service, case_id, number = await open_case(db)
    one = await published(db, "Printer on fire")
    agent = Actor("005000000000002AAA", "agent")
    with pytest.raises(KnowledgeError) as e:
        await attach(db, case_id, one, agent, now=T0)
    assert (e.value.status, e.value.code) == (403, "INSUFFICIENT_ACCESS_OR_READONLY")
    for case, art, status, code in ((case_id, "ka0" + "0" * 15, 404, "NOT_FOUND"),
                                    ("500" + "0" * 15, one, 404, "NOT_FOUND"),
                                    (case_id, case_id, 400, "MALFORMED_ID"), ("nonsense", one, 400, "MALFORMED_ID")):
        with pytest.raises(KnowledgeError) as e:
            await attach(db, case, art, ADMIN, now=T0)
        assert (e.value.status, e.value.code) == (status, code)
    await service.change_status(number, "Closed", now=T0)
    with pytest.raises(KnowledgeError) as e:
        await attach(db, case_id, one, ADMIN, now=T0)
    assert (e.value.status, e.value.code) == (400, "ENTITY_IS_LOCKED")
    async with db.session() as s:
        assert (await s.execute(select(CaseArticle))).first() is None  # nothing was attached


# the search objects ------------------------------------------------------------------------------------------
def search_objects(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT type, name FROM sqlite_master WHERE name LIKE 'knowledge_article_fts%'")
        return {f"{kind}:{name}" for kind, name in rows if kind == "trigger" or name == "knowledge_article_fts"}
    if "knowledge_article" not in inspect(conn).get_table_names():
        return set()
    columns = {f"column:{c['name']}" for c in inspect(conn).get_columns("knowledge_article")}
    indexes = {f"index:{i['name']}" for i in inspect(conn).get_indexes("knowledge_article")}
    return (columns | indexes) & {"column:SearchVector", "index:ix_knowledge_article_SearchVector"}


def unfiltered_diff(conn: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata))


def test_0009_makes_the_search_objects_the_comparison_leaves_out(store_url: str) -> None:
    upgrade(store_url)
    made = on_sync_connection(store_url, search_objects)
    if store_url.startswith("sqlite"):
        assert made == {"table:knowledge_article_fts", "trigger:knowledge_article_fts_insert",
                        "trigger:knowledge_article_fts_update", "trigger:knowledge_article_fts_delete"}
    else:
        assert made == {"column:SearchVector", "index:ix_knowledge_article_SearchVector"}
    assert on_sync_connection(store_url, schema_diff) == []
    left_out = on_sync_connection(store_url, unfiltered_diff)  # exactly the search objects, and nothing else
    assert left_out and all(is_search_object(_name_of(d), _kind_of(d), {"table_name": "knowledge_article"})
                            for d in left_out), left_out
    downgrade(store_url, "0008")
    assert on_sync_connection(store_url, search_objects) == set()
    upgrade(store_url)
    assert on_sync_connection(store_url, search_objects) == made


def _kind_of(diff: Any) -> str:
    entry = diff[0] if isinstance(diff, list) else diff
    kinds = {"remove_table": "table", "remove_column": "column", "remove_index": "index"}
    return kinds.get(str(entry[0]), str(entry[0]))


def _name_of(diff: Any) -> str:
    entry = diff[0] if isinstance(diff, list) else diff
    if entry[0] == "remove_column":
        return str(entry[3].name)
    return str(entry[1].name)

