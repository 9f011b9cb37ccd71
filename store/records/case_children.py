"""Records that belong to a case — its comments, its email messages and its messaging entries: changing one is
changing the case, so the case's access decides (its owner, its queue, and a closed case is locked), the
case's feed records it, and the case's LastModifiedDate moves (except for an email's Status, which is
reading, not changing). An outgoing email and a messaging entry are agents' replies, sent to the customer
(`store.records.replies`)."""

from __future__ import annotations

from dataclasses import dataclass

from casegate.rules.access import ADMIN
from casegate.store.models import Attachment, Outbox
from casegate.store.records.access import check_case
from casegate.store.records.body import missing_required
from casegate.store.records.call import Call
from casegate.store.records.errors import RecordError, not_for_type, required_missing
from casegate.store.records.objects import OBJECTS
from casegate.store.records.replies import send_email, send_message
from casegate.store.records.spec import ObjectSpec
from casegate.store.records.values import as_text
from casegate.store.records.writes import check_references, delete_where, insert_row, table_of, update_row
from sqlalchemy import RowMapping

CASE = OBJECTS["Case"]
COMMENT = OBJECTS["CaseComment"]
EMAIL = OBJECTS["EmailMessage"]
CONVERSATION = OBJECTS["ConversationEntry"]


def touch(call: Call, case_id: str) -> None:
    """The case was changed now, by this user."""
    update_row(call, CASE, case_id, {})


def post_comment(call: Call, case_id: str, body: str, published: bool = False) -> str:
    """A CaseComment on the case, and its CaseCommentPost entry on the case's feed."""
    comment_id = insert_row(call, COMMENT, {"ParentId": case_id, "CommentBody": body, "IsPublished": published})
    kind = "public" if published else "internal"
    call.feed.add(case_id, "CaseCommentPost", body=f"{kind} comment by {call.who}: {body}", related=comment_id)
    return comment_id


@dataclass
class ChildHandler:
    obj: ObjectSpec

    def _case(self, call: Call, case_id: object) -> RowMapping:
        """The parent case, locked for this transaction, once the user may change it."""
        case = call.row(CASE, str(case_id), lock=True)
        check_case(call, case)
        return case

    def _create_checks(self, call: Call, values: dict[str, object]) -> RowMapping:
        if missing := missing_required(self.obj, values):
            raise required_missing(missing)
        check_references(call, self.obj, values)
        return self._case(call, values["ParentId"])

    def _changes(self, call: Call, row: RowMapping, values: dict[str, object], case_id: str) -> dict[str, object]:
        """The values that differ from `row`, each recorded on the case's feed as `Object.Field`."""
        changed = {k: v for k, v in values.items() if row[k] != v}
        for name, value in changed.items():
            f = self.obj.fields[name]
            call.feed.add(case_id, "TrackedChange", field=f"{self.obj.name}.{name}", old=as_text(f, row[name]),
                          new=as_text(f, value), related=row["Id"])
        return changed

    def _deleted(self, call: Call, row: RowMapping, what: str) -> None:
        call.feed.add(row["ParentId"], "TrackedChange", field=self.obj.name, old=what,
                      body=f"{self.obj.label} {row['Id']} deleted by {call.who}", related=row["Id"])
        delete_where(call, self.obj.table, "Id", [row["Id"]])
        touch(call, row["ParentId"])


@dataclass
class CommentHandler(ChildHandler):
    """CaseComment: after it is posted only IsPublished changes, unless an admin changes the body too
    (Salesforce: "Modify All Data")."""

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        case = self._create_checks(call, values)
        comment_id = post_comment(call, case["Id"], str(values["CommentBody"]), bool(values.get("IsPublished")))
        touch(call, case["Id"])
        return comment_id

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        self._case(call, row["ParentId"])
        if values.get("CommentBody", row["CommentBody"]) != row["CommentBody"] and call.actor.role != ADMIN:
            raise RecordError(403, "INSUFFICIENT_ACCESS_OR_READONLY",
                              f"insufficient access rights on object id {row['Id']}: only an admin changes the body "
                              "of a posted comment; IsPublished may change", ["CommentBody"])
        if changed := self._changes(call, row, values, row["ParentId"]):
            update_row(call, self.obj, row["Id"], changed)
            touch(call, row["ParentId"])

    def delete(self, call: Call, row: RowMapping) -> None:
        self._case(call, row["ParentId"])
        self._deleted(call, row, row["CommentBody"])


@dataclass
class EmailHandler(ChildHandler):
    """EmailMessage: written whole; afterwards only its Status changes (New → Read ...). An incoming one is
    recorded; an outgoing one (Incoming false, the default) is sent to the customer."""

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        case = self._create_checks(call, values)
        if not values.get("Incoming"):
            return send_email(call, case["Id"], values)
        email_id = insert_row(call, self.obj, {**values, "Status": values.get("Status") or "0"})
        call.feed.add(case["Id"], "EmailMessageEvent", related=email_id,
                      body=f"Email from {values.get('FromAddress') or '?'}: {values.get('Subject') or ''} "
                           f"(added through the API by {call.who})")
        touch(call, case["Id"])
        return email_id

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        self._case(call, row["ParentId"])
        if changed := self._changes(call, row, values, row["ParentId"]):
            update_row(call, self.obj, row["Id"], changed)

    def delete(self, call: Call, row: RowMapping) -> None:
        self._case(call, row["ParentId"])
        delete_where(call, table_of(Attachment), "EmailMessageId", [row["Id"]])
        delete_where(call, table_of(Outbox), "EmailMessageId", [row["Id"]])
        self._deleted(call, row, row["Subject"])


@dataclass
class ConversationHandler(ChildHandler):
    """ConversationEntry: an agent's messaging reply (ParentId, Message), queued to the customer; never changed
    or deleted afterwards (it may be on its way)."""

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        case = self._create_checks(call, values)
        return send_message(call, case["Id"], values.get("Message"))

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        raise not_for_type(f"entity type cannot be updated: {self.obj.name}")

    def delete(self, call: Call, row: RowMapping) -> None:
        raise not_for_type(f"entity type cannot be deleted: {self.obj.name} {row['Id']}")


COMMENTS = CommentHandler(COMMENT)
EMAILS = EmailHandler(EMAIL)
CONVERSATIONS = ConversationHandler(CONVERSATION)
