"""Merging duplicate cases into a master case, as Salesforce's case merge keeps the merged records
(`keepCaseMergeRecords`): each duplicate gets MasterRecordId, is closed (`[case] merged_status`, without
what closing otherwise requires), and its email messages, comments, messaging entries, attachments,
outgoing mail, thread references (so later replies thread to the master) and child cases move to the
master, and so do its queued messaging replies and its attached articles (one the master has already is
dropped from the duplicate). Both feeds say what moved, and who merged. Up to two duplicates at once (three
cases in all)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from casegate.rules.access import Actor
from casegate.store.database import Database
from casegate.store.models import (
    Attachment,
    Base,
    Case,
    CaseArticle,
    CaseComment,
    ConversationEntry,
    EmailMessage,
    Outbox,
    ReplyOutbox,
    ThreadReference,
)
from casegate.store.records.access import check_case
from casegate.store.records.call import Call
from casegate.store.records.case_children import touch
from casegate.store.records.crud import record_id_of, write
from casegate.store.records.errors import RecordError, integrity
from casegate.store.records.objects import OBJECTS
from casegate.store.records.policy import RecordPolicy
from casegate.store.records.writes import table_of, update_row
from sqlalchemy import RowMapping, delete, insert, select, update

CASE = OBJECTS["Case"]
MAX_DUPLICATES = 2
MOVED: tuple[tuple[type[Base], str, str], ...] = (
    (EmailMessage, "ParentId", "email message"), (CaseComment, "ParentId", "case comment"),
    (ConversationEntry, "ParentId", "messaging entry"), (Attachment, "ParentId", "attachment"),
    (Outbox, "CaseId", "outgoing mail"), (ReplyOutbox, "CaseId", "outgoing message"))


async def merge(db: Database, master_id: str, duplicate_ids: Sequence[str], actor: Actor, *,
                now: datetime | None = None, policy: RecordPolicy | None = None) -> None:
    """Merge the cases `duplicate_ids` into the case `master_id` (one transaction)."""
    master = record_id_of(CASE, master_id)
    duplicates = [record_id_of(CASE, d) for d in duplicate_ids]
    if not duplicates:
        raise RecordError(400, "REQUIRED_FIELD_MISSING", "a merge needs at least one duplicate case", ["Id"])
    if len(duplicates) > MAX_DUPLICATES:
        raise RecordError(400, "LIMIT_EXCEEDED", f"up to {MAX_DUPLICATES} duplicate cases are merged at once "
                                                 f"({MAX_DUPLICATES + 1} cases in all); {len(duplicates)} were given")
    if master in duplicates or len(set(duplicates)) != len(duplicates):
        raise integrity("a case cannot be merged with itself: each case may be named once", ["Id"])

    def go(call: Call) -> None:
        master_row = call.row(CASE, master, lock=True)
        check_case(call, master_row)
        rows = [call.row(CASE, d, lock=True) for d in duplicates]
        for row in rows:
            check_case(call, row)
        ancestors = _ancestors(call, master)
        for row in rows:
            _merge_one(call, master_row, row, ancestors)
        touch(call, master)

    await write(db, actor, now, policy, go)


def _merge_one(call: Call, master: RowMapping, dup: RowMapping, ancestors: set[str]) -> None:
    moved: list[str] = []
    for model, column, what in MOVED:
        table = table_of(model)
        n = call.conn.execute(update(table).where(table.c[column] == dup["Id"]).values({column: master["Id"]})
                              ).rowcount
        if n:
            moved.append(f"{n} {what}{'s' if n != 1 else ''}")
    _move_thread_references(call, master["Id"], dup["Id"])
    if articles := _move_case_articles(call, master["Id"], dup["Id"]):
        moved.append(f"{articles} attached article{'s' if articles != 1 else ''}")
    children = [c for c in call.conn.execute(select(Case.Id).where(Case.ParentId == dup["Id"])).scalars()
                if c != master["Id"] and c not in ancestors]
    for child in children:
        update_row(call, CASE, child, {"ParentId": master["Id"]})
        call.feed.add(child, "TrackedChange", field="ParentId", old=dup["Id"], new=master["Id"],
                      body=f"parent case {dup['CaseNumber']} merged into case {master['CaseNumber']} by {call.who}")
    if children:
        moved.append(f"{len(children)} child case{'s' if len(children) != 1 else ''}")
    status = call.policy.merged_status
    update_row(call, CASE, dup["Id"], {"MasterRecordId": master["Id"], "Status": status, "IsClosed": True,
                                       "ClosedDate": call.now, "IsStopped": False, "StopStartDate": None})
    what = ", ".join(moved) or "nothing"
    call.feed.add(dup["Id"], "TrackedChange", field="Status", old=dup["Status"], new=status,
                  body=f"merged into case {master['CaseNumber']} by {call.who}")
    call.feed.add(dup["Id"], "TrackedChange", field="MasterRecordId", new=master["Id"])
    call.feed.add(dup["Id"], "CaseMerged", related=master["Id"],
                  body=f"Merged into case {master['CaseNumber']} by {call.who}; moved there: {what}")
    call.feed.add(master["Id"], "CaseMerged", related=dup["Id"],
                  body=f"Case {dup['CaseNumber']} merged into this case by {call.who}; moved here: {what}")


def _move_thread_references(call: Call, master: str, dup: str) -> None:
    """The duplicate's Message-IDs now lead to the master (a reply to its mail threads there)."""
    refs = table_of(ThreadReference)
    have = set(call.conn.execute(select(ThreadReference.MessageKey).where(ThreadReference.CaseId == master))
               .scalars())
    rows = [{"MessageKey": key, "CaseId": master, "CreatedDate": call.now}
            for key in call.conn.execute(select(ThreadReference.MessageKey).where(ThreadReference.CaseId == dup))
            .scalars() if key not in have]
    if rows:
        call.conn.execute(insert(refs), rows)
    call.conn.execute(refs.delete().where(refs.c.CaseId == dup))


def _move_case_articles(call: Call, master: str, dup: str) -> int:
    """The duplicate's attached articles now are the master's (one it has already is dropped); how many moved."""
    have = select(CaseArticle.KnowledgeArticleId).where(CaseArticle.CaseId == master)
    call.conn.execute(delete(CaseArticle).where(CaseArticle.CaseId == dup, CaseArticle.KnowledgeArticleId.in_(have)))
    return int(call.conn.execute(update(CaseArticle).where(CaseArticle.CaseId == dup).values(CaseId=master)).rowcount)


def _ancestors(call: Call, case_id: str) -> set[str]:
    out: set[str] = set()
    current = call.conn.execute(select(Case.ParentId).where(Case.Id == case_id)).scalar_one_or_none()
    while current is not None and current not in out:
        out.add(current)
        current = call.conn.execute(select(Case.ParentId).where(Case.Id == current)).scalar_one_or_none()
    return out
