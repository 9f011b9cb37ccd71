"""Cases through the API: created with a CaseNumber, the default Status and Priority and an owner from the
assignment rules (the worker's, `rules.assignment`) unless the client names one or turns assignment off;
changed as `rules.access` allows and `rules.lifecycle` says (closing needs `[case] close_requires` and stamps
IsClosed and ClosedDate; a closed case is locked until an admin reopens it); every change of a field on
the case's feed, with who, old and new value.

Deleting a case deletes what belongs to it — comments, email messages, attachments, messaging entries,
thread references, outgoing mail and messaging replies, attached articles (the articles stay) and its feed —
as Salesforce deletes a case's related records with it;
its child cases stay, without a parent (their feed says so)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casegate.rules import assignment
from casegate.rules.assignment import CaseFacts
from casegate.rules.decision import Verdict, run
from casegate.rules.lifecycle import Clock, missing_to_close
from casegate.store.database import as_utc
from casegate.store.ids import new_id
from casegate.store.models import (
    Attachment,
    Case,
    CaseArticle,
    CaseComment,
    CaseFeed,
    ConversationEntry,
    EmailMessage,
    Outbox,
    ReplyOutbox,
    ThreadReference,
)
from casegate.store.records.access import check_case
from casegate.store.records.call import Call
from casegate.store.records.case_children import post_comment
from casegate.store.records.case_store import (
    account_name,
    account_of_contact,
    check_ancestry,
    next_case_number,
    owner_id,
)
from casegate.store.records.errors import required_missing
from casegate.store.records.objects import OBJECTS
from casegate.store.records.values import as_text
from casegate.store.records.writes import check_references, delete_where, insert_row, table_of, update_row
from sqlalchemy import RowMapping, select

CASE = OBJECTS["Case"]
UNTRACKED = frozenset({"Comments"})
"""Updateable fields the feed does not record as TrackedChange (Comments posts a comment instead)."""
TO_CLOSE = " (to close a case)"
CHILD_TABLES = (Attachment, Outbox, ReplyOutbox, EmailMessage, ThreadReference, CaseComment, CaseArticle,
                ConversationEntry, CaseFeed)
"""What is deleted with a case, in an order the foreign keys allow; and the column naming the case."""
CASE_COLUMN = {Outbox: "CaseId", ReplyOutbox: "CaseId", ThreadReference: "CaseId", CaseArticle: "CaseId"}


@dataclass(frozen=True)
class CaseHandler:
    obj = CASE

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        check_case(call, None)
        policy, model = call.policy, call.policy.statuses
        case = {"Status": model.default, "Priority": policy.case.default_priority, **values}
        if "Origin" not in case and policy.case.default_origin:
            case["Origin"] = policy.case.default_origin
        if case.get("ContactId") is not None and "AccountId" not in values:
            case["AccountId"] = account_of_contact(call, case["ContactId"])
        check_references(call, CASE, case)
        status = str(case["Status"])
        closed = model.is_closed(status)
        if closed and (missing := missing_to_close(case, policy.case.close_requires)):
            raise required_missing(missing, TO_CLOSE)
        clock = _clock(model.clock(None, status, Clock(False, None), call.now), values, Clock(False, None), call.now)
        case |= {"IsClosed": closed, "IsClosedOnCreate": closed, "ClosedDate": call.now if closed else None,
                 "IsStopped": clock.is_stopped, "StopStartDate": clock.stop_start_date}
        case_id = new_id("Case")
        how, verdict = self._owner(call, case, auto_assign)
        case["CaseNumber"] = next_case_number(call)
        insert_row(call, CASE, case, case_id)
        closed_note = f", closed as {status}" if closed else ""
        call.feed.add(case_id, "CaseCreated", body=f"Case {case['CaseNumber']} created through the API by {call.who}; "
                                                   f"owner {case['OwnerId']} ({how}){closed_note}")
        if verdict is not None:
            call.feed.add(case_id, "AssignmentRule", field="OwnerId", new=verdict.action, body=str(verdict),
                          rule=verdict.decision.rule)
        if case.get("Comments"):
            post_comment(call, case_id, str(case["Comments"]))
        return case_id

    def _owner(self, call: Call, case: dict[str, object], auto_assign: bool) -> tuple[str, Verdict | None]:
        """Who owns the new case, and the assignment verdict when the rules chose."""
        if case.get("OwnerId") is not None:
            return "given", None
        if not auto_assign:
            case["OwnerId"] = call.actor.user_id
            return "the creating user: auto-assignment off", None
        rules = call.policy.rules
        facts = assignment.NewCase(case=CaseFacts.of_case(case, account_name(call, case.get("AccountId"))),
                                   entries=tuple(rules.assignment), source_owner=None, source="the REST API",
                                   default_owner=rules.default_owner)
        verdict = run(assignment.CHAIN, facts, call.now)
        case["OwnerId"] = owner_id(call, verdict.action)
        return f"assignment rules: {verdict.action}", verdict

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        policy, model = call.policy, call.policy.statuses
        status = str(values.get("Status", row["Status"]))
        reopens = bool(row["IsClosed"]) and "Status" in values and not model.is_closed(status)
        verdict = check_case(call, row, reopens=reopens)
        case = dict(values)
        if (case.get("ContactId") is not None and case["ContactId"] != row["ContactId"] and "AccountId" not in values
                and row["AccountId"] is None):
            case["AccountId"] = account_of_contact(call, case["ContactId"])
        changed = {k: v for k, v in case.items() if _differs(row[k], v)}
        check_references(call, CASE, changed)
        if changed.get("ParentId") is not None:
            check_ancestry(call, row["Id"], str(changed["ParentId"]))
        before = Clock(bool(row["IsStopped"]), row["StopStartDate"])
        by_status = before
        if "Status" in changed:
            change = model.change(status, row["ClosedDate"], call.now)
            if change.is_closed and not row["IsClosed"] and (
                    missing := missing_to_close({**row, **case}, policy.case.close_requires)):
                raise required_missing(missing, TO_CLOSE)
            changed |= {"IsClosed": change.is_closed, "ClosedDate": change.closed_date}
            by_status = model.clock(row["Status"], status, before, call.now)
        clock = _clock(by_status, values, before, call.now)
        changed.pop("IsStopped", None)
        if clock != before:
            changed |= {"IsStopped": clock.is_stopped, "StopStartDate": clock.stop_start_date}
        update_row(call, CASE, row["Id"], changed)
        self._record(call, row, changed, reopens, verdict)
        if values.get("Comments"):
            post_comment(call, row["Id"], str(values["Comments"]))

    def _record(self, call: Call, row: RowMapping, changed: dict[str, object], reopens: bool,
                verdict: Verdict) -> None:
        """A TrackedChange entry for each field the client changed: the reopen names the rule that let the
        admin reopen, a closing says so."""
        for name, f in CASE.fields.items():
            if name not in changed or not f.updateable or name in UNTRACKED:
                continue
            body, rule = None, None
            if name == "Status" and reopens:
                body, rule = f"reopened by {call.who}: {verdict.decision.reason}", verdict.decision.rule
            elif name == "Status" and changed.get("IsClosed") and not row["IsClosed"]:
                body = f"closed by {call.who}"
            call.feed.add(row["Id"], "TrackedChange", field=name, old=as_text(f, row[name]),
                          new=as_text(f, changed[name]), body=body, rule=rule)

    def delete(self, call: Call, row: RowMapping) -> None:
        check_case(call, row)
        case_id = row["Id"]
        for child_id in call.conn.execute(select(Case.Id).where(Case.ParentId == case_id)).scalars():
            update_row(call, CASE, child_id, {"ParentId": None})
            call.feed.add(child_id, "TrackedChange", field="ParentId", old=case_id,
                          body=f"parent case {row['CaseNumber']} deleted by {call.who}")
        for model in CHILD_TABLES:
            delete_where(call, table_of(model), CASE_COLUMN.get(model, "ParentId"), [case_id])
        delete_where(call, CASE.table, "Id", [case_id])


def _clock(by_status: Clock, values: dict[str, object], before: Clock, now: datetime) -> Clock:
    """The clock as the status sets it, unless the client sets IsStopped itself."""
    if "IsStopped" not in values:
        return by_status
    stopped = bool(values["IsStopped"])
    if stopped == before.is_stopped:
        return before
    return Clock(stopped, now if stopped else None)


def _differs(old: object, new: object) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return as_utc(old) != as_utc(new)
    return old != new


CASES = CaseHandler()
