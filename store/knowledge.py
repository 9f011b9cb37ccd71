"""Knowledge: articles (Salesforce's Knowledge__kav), attaching them to cases (CaseArticle), and suggesting
the published ones whose words best match a case (Salesforce's `sobjects/Case/suggestedArticles`).

Writes take the caller's connection, so they run inside its transaction (the record layer's);
`attach` and `suggest` open their own. A refusal is a `KnowledgeError` carrying the HTTP status and
Salesforce's errorCode, as the record layer's errors do.

Search is the database's own full text (migration 0009): on PostgreSQL a generated tsvector (english;
Title weighs most, then Summary, then Body__c) ranked by ts_rank; on SQLite an FTS5 table kept in step by
triggers, ranked by bm25 with the same 5:2:1 weights. A query is the words of the subject, then of the
description: letters and digits only, at most `MAX_TERMS` of them from the first `MAX_QUERY_CHARS`
characters, English stop words dropped, any one matching. Each word is a bound value (PostgreSQL:
plainto_tsquery) or a quoted FTS5 string: nothing a caller writes is query syntax.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from casegate.rules.access import CASE_CHAIN, DENY, LOCKED, Actor, CaseChange
from casegate.rules.decision import run
from casegate.store.database import Database, iso_utc
from casegate.store.errors import StoreError
from casegate.store.ids import OBJECT_OF_PREFIX, MalformedId, new_id, parse_id
from casegate.store.models import Case, CaseArticle, CaseFeed, Counter, KnowledgeArticle, PublishStatus
from sqlalchemy import Connection, DateTime, RowMapping, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

WRITABLE = {"Title": 255, "Summary": 1000, "UrlName": 255, "Body__c": 131072, "Language": 40, "PublishStatus": 30}
"""The fields a client writes, with their lengths; the others are the store's."""
STATUSES = (PublishStatus.DRAFT, PublishStatus.ONLINE, PublishStatus.ARCHIVED)
DEFAULT_LANGUAGE = "en_US"
ARTICLE_COUNTER, FIRST_ARTICLE_NUMBER = "ArticleNumber", 1000
_URL_NAME = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
"""Letters and digits in groups joined by single hyphens."""

MAX_QUERY_CHARS, MAX_TERMS, MIN_TERM_CHARS, MAX_TERM_CHARS = 4000, 32, 2, 64
DEFAULT_LIMIT, MAX_LIMIT = 5, 100
_WORD = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(re.findall(r"\w+",
    "me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself "
    "it its itself they them their theirs themselves what which who whom this that these those am is are was were "
    "be been being have has had having do does did doing an the and but if or because as until while of at by for "
    "with about against between into through during before after above below to from up down in out on off over "
    "under again further then once here there when where why how all any both each few more most other some such "
    "no nor not only own same so than too very can will just don should now"))
"""PostgreSQL's english stop words (Snowball's list): dropped on both databases alike."""

FTS = "knowledge_article_fts"
SEARCH_COLUMN, SEARCH_INDEX = "SearchVector", "ix_knowledge_article_SearchVector"
_COLUMNS = ('a."Id", a."KnowledgeArticleId", a."ArticleNumber", a."Title", a."Summary", a."UrlName", a."Language", '
            'a."VersionNumber", a."LastPublishedDate"')


class KnowledgeError(StoreError):
    """An article or case-article write refused: `status` (400, 403, 404), Salesforce's errorCode, the
    message, and the fields at fault."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, list(fields)


def is_search_object(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Whether `name` is one of the full-text objects migration 0009 makes beside the models (the FTS5 table
    and its shadow tables, the tsvector column and its index): an Alembic `include_name` hook negates it."""
    if type_ == "table":
        return name == FTS or bool(name and name.startswith(FTS + "_"))
    if type_ in ("column", "index") and parent_names.get("table_name") == KnowledgeArticle.__tablename__:
        return name in (SEARCH_COLUMN, SEARCH_INDEX)
    return False


# articles ----------------------------------------------------------------------------------------------
def create_article(conn: Connection, values: Mapping[str, object], now: datetime, user_id: str | None = None) -> str:
    """A new article of `values` (WRITABLE fields; Title required; UrlName made from the Title when not
    given; a Draft in en_US unless told); its Id."""
    fields = _checked(values)
    if not fields.get("Title"):
        raise KnowledgeError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Title]", ["Title"])
    number = _next_article_number(conn)
    url_name = fields.get("UrlName") or _url_name_of(conn, str(fields["Title"]), number)
    _check_url_name(conn, str(url_name), None)
    status = fields.get("PublishStatus") or PublishStatus.DRAFT
    article_id = new_id("Knowledge__kav")
    conn.execute(insert(KnowledgeArticle).values(
        Id=article_id, KnowledgeArticleId=new_id("Knowledge__ka"), ArticleNumber=number, Title=fields["Title"],
        Summary=fields.get("Summary"), UrlName=url_name, Body__c=fields.get("Body__c"), PublishStatus=status,
        Language=fields.get("Language") or DEFAULT_LANGUAGE, VersionNumber=1, CreatedDate=now, CreatedById=user_id,
        LastModifiedDate=now, LastModifiedById=user_id,
        LastPublishedDate=now if status == PublishStatus.ONLINE else None))
    return article_id


def update_article(conn: Connection, article_id: str, values: Mapping[str, object], now: datetime,
                   user_id: str | None = None) -> None:
    """Change the article (its Id or KnowledgeArticleId) to `values`. Publishing it (PublishStatus Online)
    stamps LastPublishedDate, and counts VersionNumber up when it was published before."""
    row = find_article(conn, article_id, lock=True)
    fields = _checked(values)
    for name in ("Title", "UrlName", "Language", "PublishStatus"):
        if name in fields and not fields[name]:
            raise KnowledgeError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name])
    if "UrlName" in fields:
        _check_url_name(conn, str(fields["UrlName"]), row["Id"])
    changes: dict[str, object] = {**fields, "LastModifiedDate": now, "LastModifiedById": user_id}
    if fields.get("PublishStatus") == PublishStatus.ONLINE and row["PublishStatus"] != PublishStatus.ONLINE:
        changes["LastPublishedDate"] = now
        if row["LastPublishedDate"] is not None:
            changes["VersionNumber"] = row["VersionNumber"] + 1
    conn.execute(update(KnowledgeArticle).where(KnowledgeArticle.Id == row["Id"]).values(changes))


def delete_article(conn: Connection, article_id: str) -> None:
    """Delete the article and its attachments to cases."""
    row = find_article(conn, article_id)
    conn.execute(delete(CaseArticle).where(CaseArticle.KnowledgeArticleId == row["KnowledgeArticleId"]))
    conn.execute(delete(KnowledgeArticle).where(KnowledgeArticle.Id == row["Id"]))


def find_article(conn: Connection, article_id: str, *, lock: bool = False) -> RowMapping:
    """The article whose Id (ka0…) or KnowledgeArticleId (kA0…) is `article_id`; NOT_FOUND otherwise."""
    try:
        full = parse_id(article_id)
    except MalformedId as e:
        raise KnowledgeError(400, "MALFORMED_ID", f"Knowledge Article ID: {e}", ["KnowledgeArticleId"]) from None
    column = {"Knowledge__kav": KnowledgeArticle.Id, "Knowledge__ka": KnowledgeArticle.KnowledgeArticleId}.get(
        OBJECT_OF_PREFIX.get(full[:3], ""))
    if column is None:
        raise KnowledgeError(400, "MALFORMED_ID", f"Knowledge Article ID: not an article's id: {article_id}",
                             ["KnowledgeArticleId"])
    stmt = select(KnowledgeArticle.__table__).where(column == full)
    found = conn.execute(stmt.with_for_update() if lock else stmt).mappings().first()
    if found is None:
        raise KnowledgeError(404, "NOT_FOUND", f"no knowledge article has the id {article_id}")
    return found


def _checked(values: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in values.items():
        if name not in WRITABLE:
            raise KnowledgeError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                 f"Unable to create/update fields: {name}. Please check the security settings of "
                                 f"this field and verify that it is read/write", [name])
        if value is not None and not isinstance(value, str):
            raise KnowledgeError(400, "INVALID_FIELD", f"{name}: a text value is expected", [name])
        if value is not None and len(value) > WRITABLE[name]:
            raise KnowledgeError(400, "STRING_TOO_LONG", f"{name}: data value too large (max length="
                                                         f"{WRITABLE[name]})", [name])
        out[name] = value
    status = out.get("PublishStatus")
    if status is not None and status not in STATUSES:
        raise KnowledgeError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"PublishStatus: bad value for restricted picklist field: {status}", ["PublishStatus"])
    url_name = out.get("UrlName")
    if url_name and not _URL_NAME.fullmatch(str(url_name)):
        raise KnowledgeError(400, "FIELD_INTEGRITY_EXCEPTION", "UrlName: only letters, digits and single hyphens "
                                                               "between them", ["UrlName"])
    return out


def _check_url_name(conn: Connection, url_name: str, own_id: str | None) -> None:
    other = conn.execute(select(KnowledgeArticle.Id).where(func.lower(KnowledgeArticle.UrlName) == url_name.lower(),
                                                           KnowledgeArticle.Id != (own_id or ""))).scalar()
    if other is not None:
        raise KnowledgeError(400, "DUPLICATE_VALUE", f"duplicate value found: UrlName duplicates value on record "
                                                     f"with id: {other}", ["UrlName"])


def _url_name_of(conn: Connection, title: str, number: str) -> str:
    """The Title in letters, digits and hyphens (accents dropped); the ArticleNumber is added when another
    article has that name, and stands alone when the Title has no such characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = "-".join(re.findall(r"[A-Za-z0-9]+", ascii_title))[:200].strip("-")
    if not slug:
        return number
    taken = conn.execute(select(KnowledgeArticle.Id).where(func.lower(KnowledgeArticle.UrlName) == slug.lower()))
    return f"{slug}-{number}" if taken.first() is not None else slug


def _next_article_number(conn: Connection) -> str:
    """The next ArticleNumber (nine digits). Its counter row is made with the first article."""
    bump = update(Counter).where(Counter.Name == ARTICLE_COUNTER).values(Value=Counter.Value + 1)
    value = conn.execute(bump.returning(Counter.Value)).scalar_one_or_none()
    if value is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(Counter).values(Name=ARTICLE_COUNTER, Value=FIRST_ARTICLE_NUMBER))
            value = FIRST_ARTICLE_NUMBER
        except IntegrityError:  # another transaction made the row at the same moment
            value = conn.execute(bump.returning(Counter.Value)).scalar_one()
    return f"{value:09d}"


# attaching to cases ------------------------------------------------------------------------------------
async def attach(db: Database, case_id: str, article_id: str, actor: Actor, *, shared_by_email: bool = False,
                 now: datetime | None = None) -> str:
    """Attach the article (its Id or KnowledgeArticleId) to the case, as `actor` may (`rules.access`); the
    CaseArticle's Id. An article the case has already gives the existing one, unchanged."""
    at = now or datetime.now(UTC)
    return await db.transaction(lambda conn: attach_article(conn, case_id, article_id, actor, at,
                                                            shared_by_email=shared_by_email))


def attach_article(conn: Connection, case_id: str, article_id: str, actor: Actor, now: datetime, *,
                   shared_by_email: bool = False) -> str:
    """`attach` inside the caller's transaction. The case's feed says which article (AttachArticleEvent)."""
    case = _case_row(conn, case_id)
    verdict = run(CASE_CHAIN, CaseChange(actor, case["OwnerId"], bool(case["IsClosed"])), now)
    if verdict.action == DENY:
        raise KnowledgeError(403, "INSUFFICIENT_ACCESS_OR_READONLY",
                             f"insufficient access rights on object id {case['Id']}: {verdict.decision.reason}")
    if verdict.action == LOCKED:
        raise KnowledgeError(400, "ENTITY_IS_LOCKED", f"the entity is locked for editing: case "
                                                      f"{case['CaseNumber']} is closed; {verdict.decision.reason}")
    article = find_article(conn, article_id)
    link_id = new_id("CaseArticle")
    made = conn.execute(_insert_new(conn).values(
        Id=link_id, CaseId=case["Id"], KnowledgeArticleId=article["KnowledgeArticleId"],
        KnowledgeArticleVersionId=article["Id"], ArticleLanguage=article["Language"],
        ArticleVersionNumber=article["VersionNumber"], IsSharedByEmail=shared_by_email, CreatedDate=now,
        CreatedById=actor.user_id)).rowcount
    if not made:
        return str(conn.execute(select(CaseArticle.Id).where(
            CaseArticle.CaseId == case["Id"], CaseArticle.KnowledgeArticleId == article["KnowledgeArticleId"])
        ).scalar_one())
    conn.execute(insert(CaseFeed).values(
        Id=new_id("CaseFeed"), ParentId=case["Id"], Type="AttachArticleEvent", RelatedRecordId=link_id,
        Body=f"Knowledge article {article['ArticleNumber']} attached: {article['Title']}"[:4000],
        Seq=0, CreatedById=actor.user_id, CreatedDate=now))
    return link_id


def _case_row(conn: Connection, case_id: str) -> RowMapping:
    try:
        full = parse_id(case_id, "Case")
    except MalformedId as e:
        raise KnowledgeError(400, "MALFORMED_ID", str(e), ["CaseId"]) from None
    found = conn.execute(select(Case.Id, Case.CaseNumber, Case.OwnerId, Case.IsClosed).where(Case.Id == full)
                         ).mappings().first()
    if found is None:
        raise KnowledgeError(404, "NOT_FOUND", f"no case has the id {case_id}")
    return found


def _insert_new(conn: Connection) -> Any:
    """INSERT INTO case_article that does nothing when the case has the article already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(CaseArticle).on_conflict_do_nothing(index_elements=["CaseId", "KnowledgeArticleId"])


# suggestions -------------------------------------------------------------------------------------------
def query_terms(*texts: str | None) -> list[str]:
    """The words a search looks for, in order, each once (see the module's docstring)."""
    joined = " ".join(t for t in texts if t)[:MAX_QUERY_CHARS].lower()
    terms: dict[str, None] = {}
    for word in _WORD.findall(joined):
        if MIN_TERM_CHARS <= len(word) <= MAX_TERM_CHARS and word not in STOP_WORDS:
            terms.setdefault(word)
            if len(terms) == MAX_TERMS:
                break
    return list(terms)


async def suggest(db: Database, subject: str | None, description: str | None, limit: int = DEFAULT_LIMIT,
                  language: str | None = None) -> list[dict[str, Any]]:
    """The published articles (of `language`, when given) whose words best match, best first; at most
    `limit` of them (taken between 1 and MAX_LIMIT)."""
    terms = query_terms(subject, description)
    if not terms:
        return []
    params: dict[str, object] = {"online": PublishStatus.ONLINE, "limit": min(max(limit, 1), MAX_LIMIT)}
    where = ' AND a."Language" = :language' if language is not None else ""
    if language is not None:
        params["language"] = language
    if db.is_sqlite:
        match = "{Title Summary Body} : (" + " OR ".join('"' + t.replace('"', '""') + '"' for t in terms) + ")"
        params["match"] = match
        sql = (f'SELECT {_COLUMNS} FROM {FTS} JOIN knowledge_article a ON a."Id" = {FTS}."Id" '
               f'WHERE {FTS} MATCH :match AND a."PublishStatus" = :online{where} '
               f'ORDER BY bm25({FTS}, 0.0, 5.0, 2.0, 1.0), a."LastPublishedDate" DESC, a."Id" LIMIT :limit')
    else:
        params.update({f"t{i}": t for i, t in enumerate(terms)})
        words = " || ".join(f"plainto_tsquery('english'::regconfig, :t{i})" for i in range(len(terms)))
        sql = (f'SELECT {_COLUMNS} FROM knowledge_article a, (SELECT {words} AS query) q '
               f'WHERE a."{SEARCH_COLUMN}" @@ q.query AND a."PublishStatus" = :online{where} '
               f'ORDER BY ts_rank(a."{SEARCH_COLUMN}", q.query) DESC, a."LastPublishedDate" DESC, a."Id" '
               f'LIMIT :limit')
    async with db.engine.connect() as conn:
        stmt = text(sql).columns(LastPublishedDate=DateTime(timezone=True))
        rows = (await conn.execute(stmt, params)).mappings().all()
    return [{**row, "LastPublishedDate": iso_utc(row["LastPublishedDate"])} for row in rows]
