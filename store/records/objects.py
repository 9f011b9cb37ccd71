"""The objects the REST API reads and writes, and what the models do not say of their fields: labels,
picklists, polymorphic references, and the fields only the store writes (read-only to clients).

Besides the case and its people: ConversationEntry (an agent writes ParentId and Message: a messaging
reply), Knowledge__kav (knowledge articles, which only admins change) and CaseArticle (an article attached
to a case).

Salesforce's properties of each field are in `reference/salesforce-case.md` §1.1 and §2."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from casegate.rules.access import ROLES
from casegate.store.ids import PREFIX
from casegate.store.models import (
    Account,
    Asset,
    Case,
    CaseArticle,
    CaseComment,
    Contact,
    ConversationEntry,
    EmailMessage,
    KnowledgeArticle,
    PublishStatus,
    Queue,
    QueueMember,
    User,
)
from casegate.store.records.spec import FieldSpec, FieldType, ObjectSpec, Override, build

RO = Override(createable=False, updateable=False)
"""Read-only: set by the store (or by a message), never by a client."""
TABLES = {"account": "Account", "contact": "Contact", "case": "Case", "user": "User", "queue": "Queue",
          "email_message": "EmailMessage", "asset": "Asset", "conversation_entry": "ConversationEntry",
          "knowledge_article": "Knowledge__kav", "case_article": "CaseArticle"}
EMAIL_STATUS = ("0", "1", "2", "3", "4", "5")
"""EmailMessage.Status a client may write: New, Read, Replied, Sent, Forwarded, Draft."""
ASSET_STATUS = ("Purchased", "Shipped", "Installed", "Registered", "Obsolete")
PUBLISH_STATUS = (PublishStatus.DRAFT, PublishStatus.ONLINE, PublishStatus.ARCHIVED)
REPLY_MAX = 131072
"""Characters of an agent's messaging reply and of an article's body (`store.agent_replies.BODY_MAX`)."""
USER = ("User",)
OWNER = ("User", "Queue")


def _ref(*to: str, label: str | None = None, relationship: str | None = None, write: bool = True) -> Override:
    return Override(type="reference", reference_to=to, label=label, relationship_name=relationship,
                    createable=write, updateable=write)


def _derived(name: str, label: str, kind: FieldType = "datetime") -> FieldSpec:
    return FieldSpec(name, label, kind, nillable=kind != "boolean", createable=False, updateable=False, column=None,
                     length=255 if kind == "string" else 0)


AUDIT = {"CreatedDate": Override(label="Created Date"), "LastModifiedDate": Override(label="Last Modified Date"),
         "CreatedById": _ref("User", label="Created By ID", relationship="CreatedBy", write=False),
         "LastModifiedById": _ref("User", label="Last Modified By ID", relationship="LastModifiedBy", write=False)}
COMMON = (_derived("SystemModstamp", "System Modstamp"), _derived("IsDeleted", "Deleted", "boolean"))

CASE = {
    "CaseNumber": Override(label="Case Number", createable=False, updateable=False),
    "Description": Override(length=32000),
    "Type": Override(label="Case Type", type="picklist", picklist="types"),
    "Reason": Override(label="Case Reason", type="picklist", picklist="reasons"),
    "Status": Override(type="picklist", picklist="statuses", defaulted=True),
    "Priority": Override(type="picklist", picklist="priorities", defaulted=True),
    "Origin": Override(label="Case Origin", type="picklist", picklist="origins"),
    "IsClosed": Override(label="Closed", createable=False, updateable=False, defaulted=False),
    "IsClosedOnCreate": Override(label="Closed When Created", createable=False, updateable=False, defaulted=False),
    "ClosedDate": Override(label="Closed Date", createable=False, updateable=False),
    "IsEscalated": Override(label="Escalated"),
    "OwnerId": Override(label="Owner ID", type="reference", reference_to=OWNER, relationship_name="Owner",
                        defaulted=True),
    "ContactId": Override(label="Contact ID"), "AccountId": Override(label="Account ID"),
    "SuppliedName": Override(label="Name"), "SuppliedEmail": Override(label="Email Address", type="email"),
    "SuppliedPhone": Override(label="Phone", type="phone"), "SuppliedCompany": Override(label="Company"),
    "SourceId": _ref("EmailMessage", label="Case Source ID", relationship="Source"),
    "ConversationKey": RO, "RoutingAddress": RO,
    "EntitlementId": _ref("Entitlement", label="Entitlement Name", relationship="Entitlement", write=False),
    "BusinessHoursId": _ref("BusinessHours", label="Business Hours ID", relationship="BusinessHours", write=False),
    "SlaStartDate": Override(label="Entitlement Process Start Time"),
    "SlaExitDate": Override(label="Entitlement Process End Time", createable=False, updateable=False),
    "IsStopped": Override(label="Stopped"),
    "StopStartDate": Override(label="Stopped Since", createable=False, updateable=False),
    "MilestoneStatus": Override(label="Milestone Status", createable=False, updateable=False),
    "Comments": Override(label="Internal Comments", type="textarea", length=4000),
    "ParentId": _ref("Case", label="Parent Case ID", relationship="Parent"),
    "MasterRecordId": _ref("Case", label="Master Record ID", relationship="MasterRecord", write=False),
    "AssetId": _ref("Asset", label="Asset ID", relationship="Asset"),
    "Resolution": Override(length=32000),
    "SatisfactionScore": Override(label="Satisfaction Score", minimum=1, maximum=5),
    "SatisfactionComment": Override(label="Satisfaction Comment", type="textarea"),
    **AUDIT,
}
CASE_DERIVED = (*COMMON, _derived("ContactEmail", "Contact Email", "string"),
                _derived("ContactPhone", "Contact Phone", "string"),
                _derived("ContactMobile", "Contact Mobile", "string"))

CONTACT = {"Email": Override(type="email"), "EmailKey": RO, "Phone": Override(label="Business Phone", type="phone"),
           "MobilePhone": Override(label="Mobile Phone", type="phone"), "PhoneKey": RO, "AccountId":
           Override(label="Account ID"), "FirstName": Override(label="First Name"), "LastName":
           Override(label="Last Name"), **AUDIT}
ACCOUNT = {"Name": Override(label="Account Name"), "Domain": Override(type="url"), **AUDIT}
ASSET = {"Name": Override(label="Asset Name"), "SerialNumber": Override(label="Serial Number"),
         "Status": Override(type="picklist", values=ASSET_STATUS), "InstallDate": Override(label="Install Date"),
         **AUDIT}
USER_FIELDS = {"Name": Override(label="Full Name", defaulted=True), "Email": Override(type="email"),
               "IsActive": Override(label="Active"), "Role": Override(type="picklist", values=ROLES, defaulted=True),
               **AUDIT}
QUEUE = {"Email": Override(type="email"), **AUDIT}
QUEUE_MEMBER = {"QueueId": Override(label="Queue ID", updateable=False),
                "UserId": Override(label="User ID", updateable=False), **AUDIT}
COMMENT = {"ParentId": Override(label="Parent ID", updateable=False),
           "CommentBody": Override(label="Body", type="textarea", in_bytes=True),
           "IsPublished": Override(label="Published"), **AUDIT}
EMAIL = {"ParentId": Override(label="Parent Case ID", updateable=False),
         "Incoming": Override(label="Is Incoming", updateable=False, defaulted=True),
         "Status": Override(type="picklist", values=EMAIL_STATUS, defaulted=True),
         "FromAddress": Override(label="From Address", type="email", updateable=False),
         **{f: Override(updateable=False) for f in (
             "FromName", "ToAddress", "CcAddress", "BccAddress", "Subject", "MessageIdentifier", "ThreadIdentifier",
             "ClientThreadIdentifier", "InReplyTo", "MessageDate")},
         "TextBody": Override(length=131072, updateable=False), "HtmlBody": Override(length=131072, updateable=False),
         "Headers": Override(length=32000, updateable=False), "References": Override(length=32000, updateable=False),
         "ReplyToEmailMessageId": Override(type="reference", reference_to=("EmailMessage",), updateable=False,
                                           label="Replied To Email Message ID",
                                           relationship_name="ReplyToEmailMessage"),
         "HasAttachment": RO, "IsBounced": RO, "RawSha256": RO, **AUDIT}
CONVERSATION = {"ParentId": Override(label="Parent Case ID", updateable=False),
                "Message": Override(type="textarea", length=REPLY_MAX, updateable=False),
                **{f: RO for f in ("Channel", "EntryType", "ActorType", "ActorName", "ActorIdentifier",
                                   "MessageIdentifier", "Recipient", "MediaUrls", "Details", "Source", "Status")},
                "EntryTime": Override(label="Entry Time", createable=False, updateable=False), **AUDIT}
KNOWLEDGE = {"KnowledgeArticleId": _ref("Knowledge__ka", label="Knowledge Article ID", relationship="KnowledgeArticle",
                                        write=False),
             "ArticleNumber": Override(label="Article Number", createable=False, updateable=False),
             "UrlName": Override(label="URL Name", defaulted=True),
             "Body__c": Override(label="Body", type="textarea", length=REPLY_MAX),
             "PublishStatus": Override(label="Publication Status", type="picklist", values=PUBLISH_STATUS,
                                       defaulted=True),
             "Language": Override(defaulted=True),
             "VersionNumber": Override(label="Version Number", createable=False, updateable=False),
             "LastPublishedDate": Override(label="Last Published Date", createable=False, updateable=False), **AUDIT}
CASE_ARTICLE = {"CaseId": Override(label="Case ID", updateable=False),
                "KnowledgeArticleId": Override(type="reference", reference_to=("Knowledge__ka", "Knowledge__kav"),
                                               label="Knowledge Article ID", relationship_name="KnowledgeArticle",
                                               updateable=False),
                "KnowledgeArticleVersionId": _ref("Knowledge__kav", label="Knowledge Article Version ID",
                                                  relationship="KnowledgeArticleVersion", write=False),
                "ArticleLanguage": Override(label="Article Language", createable=False, updateable=False),
                "ArticleVersionNumber": Override(label="Article Version Number", createable=False, updateable=False),
                "IsSharedByEmail": Override(label="Shared by Email", updateable=False), **AUDIT}


def _objects() -> dict[str, ObjectSpec]:
    specs = [
        build("Case", Case, label="Case", label_plural="Cases", prefix=PREFIX["Case"], overrides=CASE,
              derived=CASE_DERIVED, tables=TABLES),
        build("Contact", Contact, label="Contact", label_plural="Contacts", prefix=PREFIX["Contact"],
              overrides=CONTACT, derived=(*COMMON, _derived("Name", "Full Name", "string")), tables=TABLES),
        build("Account", Account, label="Account", label_plural="Accounts", prefix=PREFIX["Account"],
              overrides=ACCOUNT, derived=COMMON, tables=TABLES),
        build("CaseComment", CaseComment, label="Case Comment", label_plural="Case Comments",
              prefix=PREFIX["CaseComment"], overrides=COMMENT, derived=COMMON, tables=TABLES),
        build("EmailMessage", EmailMessage, label="Email Message", label_plural="Email Messages",
              prefix=PREFIX["EmailMessage"], overrides=EMAIL, derived=COMMON, tables=TABLES),
        build("User", User, label="User", label_plural="Users", prefix=PREFIX["User"], overrides=USER_FIELDS,
              derived=COMMON, tables=TABLES, deletable=False, settings=True),
        build("Queue", Queue, label="Queue", label_plural="Queues", prefix=PREFIX["Queue"], overrides=QUEUE,
              derived=COMMON, tables=TABLES, settings=True),
        build("QueueMember", QueueMember, label="Queue Member", label_plural="Queue Members",
              prefix=PREFIX["QueueMember"], overrides=QUEUE_MEMBER, derived=COMMON, tables=TABLES,
              updateable=False, settings=True),
        build("Asset", Asset, label="Asset", label_plural="Assets", prefix=PREFIX["Asset"], overrides=ASSET,
              derived=COMMON, tables=TABLES),
        build("ConversationEntry", ConversationEntry, label="Conversation Entry", label_plural="Conversation Entries",
              prefix=PREFIX["ConversationEntry"], overrides=CONVERSATION, derived=COMMON, tables=TABLES,
              updateable=False, deletable=False),
        build("Knowledge__kav", KnowledgeArticle, label="Knowledge", label_plural="Knowledge",
              prefix=PREFIX["Knowledge__kav"], overrides=KNOWLEDGE, derived=COMMON, tables=TABLES, settings=True),
        build("CaseArticle", CaseArticle, label="Case Article", label_plural="Case Articles",
              prefix=PREFIX["CaseArticle"], overrides=CASE_ARTICLE, derived=COMMON, tables=TABLES, updateable=False),
    ]
    return {s.name: s for s in specs}


OBJECTS: Mapping[str, ObjectSpec] = MappingProxyType(_objects())
"""Every object the record layer serves, by API name."""
_LOWER = {name.lower(): name for name in OBJECTS}


def object_named(name: str) -> ObjectSpec | None:
    """The object named `name` in any letter case (Salesforce's sobject names in URLs are)."""
    api = _LOWER.get(name.lower())
    return OBJECTS[api] if api is not None else None


CHILD_RELATIONSHIPS: Mapping[tuple[str, str], str] = MappingProxyType({
    ("Case", "ParentId"): "Cases", ("CaseComment", "ParentId"): "CaseComments",
    ("EmailMessage", "ParentId"): "EmailMessages", ("Contact", "AccountId"): "Contacts",
    ("Case", "AccountId"): "Cases", ("Case", "ContactId"): "Cases", ("Case", "AssetId"): "Cases",
    ("Asset", "AccountId"): "Assets", ("Asset", "ContactId"): "Assets", ("QueueMember", "QueueId"): "QueueMembers",
    ("QueueMember", "UserId"): "QueueMembers", ("EmailMessage", "ReplyToEmailMessageId"): "Replies",
    ("ConversationEntry", "ParentId"): "ConversationEntries", ("CaseArticle", "CaseId"): "CaseArticles",
    ("CaseArticle", "KnowledgeArticleId"): "CaseArticles",
})
"""(child object, its reference field) → the relationship's name on the parent (`Case.CaseComments`)."""
