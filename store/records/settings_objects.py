"""Users, queues and queue members: settings objects, which only an admin changes (`rules.access`).
A user is never deleted, only deactivated (IsActive false), as in Salesforce; a queue that still owns
cases is not deleted either; its members go with it."""

from __future__ import annotations

from dataclasses import dataclass

from casegate.store.models import QueueMember
from casegate.store.records.access import check_settings
from casegate.store.records.call import Call
from casegate.store.records.errors import RecordError, not_for_type
from casegate.store.records.handler import Blocker, PlainHandler
from casegate.store.records.objects import OBJECTS
from sqlalchemy import RowMapping, select

USER_NAME_MAX = 121


@dataclass
class UserHandler(PlainHandler):
    def prepare(self, call: Call, values: dict[str, object], row: RowMapping | None) -> dict[str, object]:
        """Emails are kept in lower case (how tokens and owners find users); a new user without a Name is
        named by the local part of their email."""
        out = dict(values)
        email = values.get("Email")
        if isinstance(email, str):
            email = out["Email"] = email.strip().lower()
            if row is None and not values.get("Name"):
                out["Name"] = email.split("@", 1)[0][:USER_NAME_MAX] or email
        return out

    def delete(self, call: Call, row: RowMapping) -> None:
        check_settings(call, self.obj.name)
        raise not_for_type(f"entity type cannot be deleted: User {row['Id']} (deactivate it: IsActive false)")


@dataclass
class QueueMemberHandler(PlainHandler):
    def check(self, call: Call, values: dict[str, object], row: RowMapping | None) -> None:
        super().check(call, values, row)
        other = call.conn.execute(select(QueueMember.Id).where(QueueMember.QueueId == values.get("QueueId"),
                                                               QueueMember.UserId == values.get("UserId"))).scalar()
        if other is not None:
            raise RecordError(400, "DUPLICATE_VALUE",
                              f"duplicate value found: the user is a member of the queue already, on record with "
                              f"id: {other}", ["QueueId", "UserId"])


USER = UserHandler(OBJECTS["User"])
QUEUE = PlainHandler(OBJECTS["Queue"], blockers=(Blocker("case", "OwnerId", "case(s) it owns"),),
                     cascade=(("queue_member", "QueueId"),))
QUEUE_MEMBER = QueueMemberHandler(OBJECTS["QueueMember"])
