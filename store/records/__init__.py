"""The record layer the REST API calls: create, read, update, delete and upsert records of the Salesforce
objects casegate keeps (Case, Contact, Account, CaseComment, EmailMessage, User, Queue, QueueMember,
Asset, ConversationEntry, Knowledge__kav, CaseArticle), describe them, and merge cases. An outgoing
EmailMessage and a ConversationEntry are agents' replies, sent to the customer (`replies`); articles are
`store.knowledge`'s (`articles`). Every field is checked against the object's spec (read off the
models, `spec` and `objects`), every call is one transaction, every refusal a `RecordError` carrying the
HTTP status and Salesforce's errorCode, and every change to a case is on its feed with who made it.

    case_id = await records.create(db, "Case", {"Subject": "Printer on fire"}, actor)
    await records.update(db, "Case", case_id, {"Status": "Closed", "Reason": "Other",
                                               "Resolution": "Put out"}, actor)

What the configuration decides (the `[case]` picklists, what closing requires, the external ids, the
`[rules]` assignment, how replies are sent and checked) comes in a `RecordPolicy`, built once at start
(`RecordPolicy.of(settings, thread_secret, conversation_check)`); a call without one uses the defaults, which
send no email.
"""

from __future__ import annotations

from typing import Any

from casegate.store.records.crud import create, delete, object_spec, read, update
from casegate.store.records.describe import describe_object
from casegate.store.records.errors import RecordError
from casegate.store.records.merge import merge
from casegate.store.records.objects import OBJECTS
from casegate.store.records.policy import DEFAULT_POLICY, RecordPolicy
from casegate.store.records.spec import FieldSpec, ObjectSpec
from casegate.store.records.upsert import upsert


def describe(obj: str, policy: RecordPolicy | None = None) -> dict[str, Any]:
    """Salesforce's sobject describe of `obj`; INVALID_TYPE (404) for an object the API does not serve."""
    return describe_object(object_spec(obj), policy)


__all__ = ["DEFAULT_POLICY", "OBJECTS", "FieldSpec", "ObjectSpec", "RecordError", "RecordPolicy", "create", "delete",
           "describe", "merge", "read", "update", "upsert"]
