"""The objects SOQL can name, read off `store.models`: each object's fields (every mapped column by its
API name, plus a few fields Salesforce has that the store derives), its parent relationships
(`Contact`, `Owner` ...) and its child relationships (`CaseComments` ...), named as Salesforce names them.

Names are looked up case-insensitively and given back in their API spelling. A relationship whose
key column is missing from the models fails at import, not at a customer's query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from casegate.store.models import (
    Account,
    Asset,
    Attachment,
    Base,
    Case,
    CaseArticle,
    CaseComment,
    CaseFeed,
    Contact,
    ConversationEntry,
    EmailMessage,
    KnowledgeArticle,
    Queue,
    User,
)
from sqlalchemy import BigInteger, Boolean, ColumnElement, DateTime, Integer, String, Text, false, func, inspect, select
from sqlalchemy.orm import aliased

Kind = Literal["id", "string", "boolean", "datetime", "int", "number"]
"""What a field holds; `number` is only ever an average (AVG)."""
Expression = Callable[[Any], ColumnElement[Any]]
"""The field's SQL expression on one (aliased) entity of its object."""

EXACT = frozenset({"CaseNumber", "MessageIdentifier", "ThreadIdentifier", "ClientThreadIdentifier", "InReplyTo",
                   "EmailKey", "PhoneKey", "RawSha256", "Sha256", "ContentId", "ArticleNumber"})
"""Text fields compared and sorted as written. Every other text field compares case-insensitively, as
SOQL does; ids (the `id` kind) are always exact."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    nullable: bool
    expression: Expression
    exact: bool = False
    """Compared and ordered as written (ids, CaseNumber ...), not case-insensitively."""
    long: bool = False
    """A long text (Description, TextBody ...): selected only, never filtered, sorted or grouped, as in
    Salesforce (and a LIKE over 32,000-character bodies is not a cost to offer)."""


@dataclass(frozen=True, slots=True)
class Parent:
    """A lookup to a parent record: `Contact` through `ContactId`; several targets make it polymorphic
    (`Owner` is a User or a Queue, told apart by which one the id names)."""

    name: str
    key: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Child:
    """The records of `object` whose `key` holds this record's Id (`CaseComments`: CaseComment.ParentId)."""

    name: str
    object: str
    key: str


@dataclass(frozen=True, slots=True)
class SObject:
    name: str
    model: type[Base]
    fields: Mapping[str, Field]
    """By lower-case name, in the models' column order (the order FIELDS(ALL) gives)."""
    parents: Mapping[str, Parent] = field(default_factory=dict)
    children: Mapping[str, Child] = field(default_factory=dict)


POLYMORPHIC_TYPE = "Name"
"""Salesforce's type for a polymorphic parent (`attributes.type` of an Owner record)."""
POLYMORPHIC_FIELDS = ("Id", "Name", "Email", "IsActive", "CreatedDate")
"""The fields a polymorphic parent offers: those of its targets' common `Name` object, null where a
target has none (a queue's IsActive), plus `Type` (the target's object name)."""


def _kind(name: str, column: Any) -> Kind | None:
    t = column.type
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, DateTime):
        return "datetime"
    if isinstance(t, Integer | BigInteger):
        return "int"
    if isinstance(t, String | Text):
        is_id = name == "Id" or (name.endswith("Id") and getattr(t, "length", None) == 18)
        return "id" if is_id else "string"
    return None  # bytes and the like are not queryable


def _columns(model: type[Base]) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for attr in inspect(model).column_attrs:
        column = attr.columns[0]
        kind = _kind(attr.key, column)
        if kind is not None:
            out[attr.key.lower()] = Field(attr.key, kind, bool(column.nullable), _attribute(attr.key),
                                          exact=kind == "id" or attr.key in EXACT,
                                          long=isinstance(column.type, Text))
    return out


def _attribute(key: str) -> Expression:
    return lambda entity: getattr(entity, key)


def _contact_field(key: str) -> Expression:
    """Case.ContactEmail and its kind: the contact's field, read through ContactId."""

    def expression(case: Any) -> ColumnElement[Any]:
        contact = aliased(Contact)
        return (select(getattr(contact, key)).where(contact.Id == case.ContactId)
                .correlate_except(contact).scalar_subquery())

    return expression


def _contact_name(contact: Any) -> ColumnElement[Any]:
    return func.coalesce(contact.FirstName + " ", "") + contact.LastName  # type: ignore[no-any-return]


def _derived(obj: str, columns: dict[str, Field]) -> dict[str, Field]:
    """Fields Salesforce has that the store computes from its columns."""
    extra = {"IsDeleted": Field("IsDeleted", "boolean", False, lambda _e: false())}
    modstamp = columns.get("lastmodifieddate") or columns.get("createddate")
    if modstamp is not None:
        extra["SystemModstamp"] = Field("SystemModstamp", "datetime", modstamp.nullable, modstamp.expression)
    if obj == "Contact":
        extra["Name"] = Field("Name", "string", False, _contact_name)
    if obj == "Case":
        extra |= {f"Contact{k}": Field(f"Contact{k}", "string", True, _contact_field(m))
                  for k, m in (("Email", "Email"), ("Phone", "Phone"), ("Mobile", "MobilePhone"))}
    return {name.lower(): f for name, f in extra.items() if name.lower() not in columns}


MODELS: dict[str, type[Base]] = {
    "Case": Case, "Contact": Contact, "Account": Account, "CaseComment": CaseComment, "EmailMessage": EmailMessage,
    "User": User, "Queue": Queue, "ConversationEntry": ConversationEntry, "CaseFeed": CaseFeed,
    "Attachment": Attachment, "Asset": Asset, "Knowledge__kav": KnowledgeArticle, "CaseArticle": CaseArticle,
}
PARENTS: dict[str, tuple[Parent, ...]] = {
    "Case": (Parent("Contact", "ContactId", ("Contact",)), Parent("Account", "AccountId", ("Account",)),
             Parent("Owner", "OwnerId", ("User", "Queue")), Parent("Parent", "ParentId", ("Case",)),
             Parent("Asset", "AssetId", ("Asset",))),
    "Contact": (Parent("Account", "AccountId", ("Account",)),),
    "CaseComment": (Parent("Parent", "ParentId", ("Case",)), Parent("CreatedBy", "CreatedById", ("User",))),
    "EmailMessage": (Parent("Parent", "ParentId", ("Case",)),
                     Parent("ReplyToEmailMessage", "ReplyToEmailMessageId", ("EmailMessage",))),
    "Attachment": (Parent("Parent", "ParentId", ("Case",)),
                   Parent("EmailMessage", "EmailMessageId", ("EmailMessage",))),
    "ConversationEntry": (Parent("Parent", "ParentId", ("Case",)),),
    "CaseFeed": (Parent("Parent", "ParentId", ("Case",)),),
    "Asset": (Parent("Account", "AccountId", ("Account",)), Parent("Contact", "ContactId", ("Contact",))),
    "CaseArticle": (Parent("Case", "CaseId", ("Case",)),
                    Parent("KnowledgeArticleVersion", "KnowledgeArticleVersionId", ("Knowledge__kav",))),
}
CHILDREN: dict[str, tuple[Child, ...]] = {
    "Case": (Child("CaseComments", "CaseComment", "ParentId"), Child("EmailMessages", "EmailMessage", "ParentId"),
             Child("Cases", "Case", "ParentId"), Child("Attachments", "Attachment", "ParentId"),
             Child("Feeds", "CaseFeed", "ParentId"), Child("ConversationEntries", "ConversationEntry", "ParentId"),
             Child("CaseArticles", "CaseArticle", "CaseId")),
    "Contact": (Child("Cases", "Case", "ContactId"), Child("Assets", "Asset", "ContactId")),
    "Account": (Child("Cases", "Case", "AccountId"), Child("Contacts", "Contact", "AccountId"),
                Child("Assets", "Asset", "AccountId")),
    "Asset": (Child("Cases", "Case", "AssetId"),),
    "EmailMessage": (Child("Attachments", "Attachment", "EmailMessageId"),),
}


def _objects() -> dict[str, SObject]:
    out: dict[str, SObject] = {}
    for name, model in MODELS.items():
        columns = _columns(model)
        out[name.lower()] = SObject(
            name, model, columns | _derived(name, columns),
            parents={p.name.lower(): p for p in PARENTS.get(name, ())},
            children={c.name.lower(): c for c in CHILDREN.get(name, ())})
    for obj in out.values():  # a relationship on a column the models do not have is a bug here, not a 400
        for p in obj.parents.values():
            if p.key.lower() not in obj.fields or any(t.lower() not in out for t in p.targets):
                raise RuntimeError(f"SOQL schema: {obj.name}.{p.name} names a missing key or object")
        for c in obj.children.values():
            if c.object.lower() not in out or c.key.lower() not in out[c.object.lower()].fields:
                raise RuntimeError(f"SOQL schema: {obj.name}.{c.name} names a missing key or object")
    return out


OBJECTS: Mapping[str, SObject] = _objects()
"""Every queryable object, by lower-case name."""
