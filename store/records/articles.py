"""Knowledge through the record layer (`store.knowledge` writes it): articles (Knowledge__kav), which everyone
reads and only an admin creates, changes or deletes (`rules.access.SETTINGS_CHAIN`), and articles attached
to cases (CaseArticle): attaching one, or detaching it, is changing the case, so the case's access decides
(a closed case is locked) and its feed says so. A CaseArticle is never changed. A `KnowledgeError` is a
RecordError with its status, errorCode, message and fields."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from casegate.store.knowledge import (
    KnowledgeError,
    attach_article,
    create_article,
    delete_article,
    find_article,
    update_article,
)
from casegate.store.models import CaseArticle
from casegate.store.records.access import check_case, check_settings
from casegate.store.records.body import missing_required
from casegate.store.records.call import Call
from casegate.store.records.case_children import touch
from casegate.store.records.errors import RecordError, not_for_type, required_missing
from casegate.store.records.objects import OBJECTS
from casegate.store.records.spec import ObjectSpec
from casegate.store.records.writes import delete_where
from sqlalchemy import RowMapping, select

CASE = OBJECTS["Case"]


@contextmanager
def knowledge_errors() -> Iterator[None]:
    try:
        yield
    except KnowledgeError as e:
        raise RecordError(e.status, e.code, e.message, e.fields) from None


@dataclass
class ArticleHandler:
    """Knowledge__kav: PublishStatus Online publishes an article (what suggestions offer)."""

    obj: ObjectSpec

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        check_settings(call, self.obj.name)
        if missing := missing_required(self.obj, values):
            raise required_missing(missing)
        with knowledge_errors():
            return create_article(call.conn, values, call.now, call.actor.user_id)

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        check_settings(call, self.obj.name)
        with knowledge_errors():
            update_article(call.conn, row["Id"], values, call.now, call.actor.user_id)

    def delete(self, call: Call, row: RowMapping) -> None:
        """The article and its attachments to cases; each of those cases' feeds says so."""
        check_settings(call, self.obj.name)
        cases = call.conn.execute(select(CaseArticle.CaseId, CaseArticle.Id)
                                  .where(CaseArticle.KnowledgeArticleId == row["KnowledgeArticleId"])).all()
        with knowledge_errors():
            delete_article(call.conn, row["Id"])
        for case_id, link_id in cases:
            call.feed.add(case_id, "TrackedChange", field="CaseArticle", old=row["ArticleNumber"], related=link_id,
                          body=f"knowledge article {row['ArticleNumber']} ({row['Title']}) deleted by {call.who}")


@dataclass
class CaseArticleHandler:
    """CaseArticle: an article (its KnowledgeArticleId kA0…, or a version's Id ka0…) attached to a case;
    attaching one the case has already gives the existing record."""

    obj: ObjectSpec

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        if missing := missing_required(self.obj, values):
            raise required_missing(missing)
        case_id = str(values["CaseId"])
        with knowledge_errors():
            link_id = attach_article(call.conn, case_id, str(values["KnowledgeArticleId"]), call.actor, call.now,
                                     shared_by_email=bool(values.get("IsSharedByEmail")))
        touch(call, case_id)
        return link_id

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        raise not_for_type(f"entity type cannot be updated: {self.obj.name}")

    def delete(self, call: Call, row: RowMapping) -> None:
        """Detach the article from its case."""
        check_case(call, call.row(CASE, row["CaseId"], lock=True))
        with knowledge_errors():
            article = find_article(call.conn, row["KnowledgeArticleId"])
        delete_where(call, self.obj.table, "Id", [row["Id"]])
        call.feed.add(row["CaseId"], "TrackedChange", field="CaseArticle", old=article["ArticleNumber"],
                      related=row["Id"],
                      body=f"knowledge article {article['ArticleNumber']} ({article['Title']}) detached by {call.who}")
        touch(call, row["CaseId"])


ARTICLES = ArticleHandler(OBJECTS["Knowledge__kav"])
CASE_ARTICLES = CaseArticleHandler(OBJECTS["CaseArticle"])
