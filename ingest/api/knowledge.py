"""Knowledge suggestions (`GET sobjects/Case/suggestedArticles?subject=…&description=…[&language=…][&limit=…]`):
the published articles whose words best match a case being written, best first (`store.knowledge.suggest`:
the database's full-text search), as a list of records with their "attributes".

Salesforce answers with KnowledgeArticleVersion records carrying little more than their Id; casegate's
article object is Knowledge__kav, so each record is one of those, with the fields a client shows a
suggestion by (Title, UrlName, Summary, ArticleNumber, KnowledgeArticleId, Language, VersionNumber,
LastPublishedDate), and its `url` reads the whole article. `subject` or `description` is needed (400
MISSING_ARGUMENT); `language` keeps articles of that language; `limit` (1 to 100, default 5) caps them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from casegate.ingest.api.context import ApiContext, Call, Outcome
from casegate.ingest.api.errors import ApiError, not_found
from casegate.ingest.api.operations import object_name, sobject_url, store_errors
from casegate.store import knowledge
from casegate.store.records import OBJECTS
from casegate.store.records.values import to_json

ARTICLE = "Knowledge__kav"
FIELDS = ("Id", "KnowledgeArticleId", "ArticleNumber", "Title", "Summary", "UrlName", "Language", "VersionNumber",
          "LastPublishedDate")


async def suggested_articles(ctx: ApiContext, call: Call) -> Outcome:
    if object_name(call.segments[1]) != "Case":
        raise not_found()
    subject, description = call.query.get("subject"), call.query.get("description")
    if not (subject or "").strip() and not (description or "").strip():
        raise ApiError(400, "MISSING_ARGUMENT", "subject or description is required: the words articles are "
                                                "suggested by", ["subject", "description"])
    with store_errors():
        rows = await knowledge.suggest(ctx.db, subject, description, _limit(call.query.get("limit")),
                                       call.query.get("language") or None)
    return Outcome(200, [_record(call, row) for row in rows])


def _limit(value: str | None) -> int:
    if value is None:
        return knowledge.DEFAULT_LIMIT
    n = int(value) if value.strip().isdigit() and len(value) <= 9 else 0
    if not 1 <= n <= knowledge.MAX_LIMIT:
        raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                       f"limit: a whole number from 1 to {knowledge.MAX_LIMIT}: {value[:20]}", ["limit"])
    return n


def _record(call: Call, row: dict[str, Any]) -> dict[str, Any]:
    spec = OBJECTS[ARTICLE].fields
    published = row["LastPublishedDate"]
    values = {**row, "LastPublishedDate": datetime.fromisoformat(published) if published else None}
    return {"attributes": {"type": ARTICLE, "url": sobject_url(call.base, ARTICLE, row["Id"])},
            **{name: to_json(spec[name], values[name]) for name in FIELDS}}
