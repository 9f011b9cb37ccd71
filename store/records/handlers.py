"""Which implementation writes each object: one row per object of `OBJECTS`, checked at import."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from casegate.store.records.articles import ARTICLES, CASE_ARTICLES
from casegate.store.records.case_children import COMMENTS, CONVERSATIONS, EMAILS
from casegate.store.records.cases import CASES
from casegate.store.records.handler import Handler
from casegate.store.records.objects import OBJECTS
from casegate.store.records.people import ACCOUNT, ASSET, CONTACT
from casegate.store.records.settings_objects import QUEUE, QUEUE_MEMBER, USER

HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "Case": CASES, "CaseComment": COMMENTS, "EmailMessage": EMAILS, "Contact": CONTACT, "Account": ACCOUNT,
    "Asset": ASSET, "User": USER, "Queue": QUEUE, "QueueMember": QUEUE_MEMBER, "ConversationEntry": CONVERSATIONS,
    "Knowledge__kav": ARTICLES, "CaseArticle": CASE_ARTICLES,
})
if set(HANDLERS) != set(OBJECTS) or any(h.obj is not OBJECTS[name] for name, h in HANDLERS.items()):
    raise RuntimeError(f"records: handlers {sorted(HANDLERS)} do not match the objects {sorted(OBJECTS)}")
