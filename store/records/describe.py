"""Salesforce's sobject describe of an object (`GET /sobjects/Case/describe`), generated from its spec:
the object's properties, each field's type, length, properties, references and picklist values (the
configured ones), and the child relationships other objects' references make."""

from __future__ import annotations

from typing import Any

from casegate.store.records.objects import CHILD_RELATIONSHIPS, OBJECTS
from casegate.store.records.policy import DEFAULT_POLICY, RecordPolicy
from casegate.store.records.spec import FieldSpec, ObjectSpec

SOAP_TYPE = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
             "date": "xsd:date", "int": "xsd:int", "double": "xsd:double"}
CASCADE = frozenset({("CaseComment", "ParentId"), ("EmailMessage", "ParentId"), ("QueueMember", "QueueId"),
                     ("ConversationEntry", "ParentId"), ("CaseArticle", "CaseId"),
                     ("CaseArticle", "KnowledgeArticleId")})
"""Children deleted with their parent (a case's comments, emails, messaging entries and attached articles, a
queue's members, an article's attachments to cases)."""
RESTRICTED = frozenset({("Case", "ContactId"), ("Asset", "ContactId"), ("Case", "AccountId"),
                        ("Contact", "AccountId"), ("Asset", "AccountId"), ("Case", "AssetId")})
"""Children that keep their parent from being deleted (DELETE_FAILED)."""
EMAIL_STATUS_LABELS = {"0": "New", "1": "Read", "2": "Replied", "3": "Sent", "4": "Forwarded", "5": "Draft"}


def describe_object(spec: ObjectSpec, policy: RecordPolicy | None = None) -> dict[str, Any]:
    policy = policy or DEFAULT_POLICY
    external = set(policy.external_ids.get(spec.name, ()))
    return {
        "name": spec.name, "label": spec.label, "labelPlural": spec.label_plural, "keyPrefix": spec.key_prefix,
        "custom": False, "createable": spec.createable, "updateable": spec.updateable, "deletable": spec.deletable,
        "queryable": True, "retrieveable": True, "searchable": False, "undeletable": False,
        "fields": [_field(spec, f, policy, f.name in external) for f in spec.fields.values()],
        "childRelationships": _children(spec),
    }


def _field(spec: ObjectSpec, f: FieldSpec, policy: RecordPolicy, external: bool) -> dict[str, Any]:
    text = f.type not in SOAP_TYPE
    return {
        "name": f.name, "label": f.label, "type": f.type, "soapType": SOAP_TYPE.get(f.type, "xsd:string"),
        "length": f.length if text or f.type in ("id", "reference") else 0,
        "byteLength": (f.length * (1 if f.in_bytes else 3)) if text or f.type in ("id", "reference") else 0,
        "digits": 9 if f.type == "int" else 0, "precision": 0, "scale": 0,
        "nillable": f.nillable, "createable": f.createable, "updateable": f.updateable,
        "defaultedOnCreate": f.defaulted_on_create or f.name == "Id", "externalId": external,
        "unique": f.unique, "idLookup": f.name == "Id" or external or f.name == "CaseNumber",
        "nameField": f.name == "Name" or (spec.name == "Case" and f.name == "CaseNumber"),
        "autoNumber": f.name == "CaseNumber", "calculated": f.column is None, "custom": False,
        "filterable": f.type != "textarea", "sortable": f.type != "textarea", "groupable": f.type != "textarea",
        "referenceTo": list(f.reference_to), "relationshipName": f.relationship_name,
        "restrictedPicklist": f.type == "picklist", "picklistValues": _picklist(spec, f, policy),
    }


def _picklist(spec: ObjectSpec, f: FieldSpec, policy: RecordPolicy) -> list[dict[str, Any]]:
    if f.type != "picklist":
        return []
    values = policy.picklists[f.picklist] if f.picklist else f.values
    default = {"statuses": policy.statuses.default, "priorities": policy.case.default_priority,
               "origins": policy.case.default_origin}.get(f.picklist or "")
    if spec.name == "User" and f.name == "Role":
        default = "agent"
    labels = EMAIL_STATUS_LABELS if spec.name == "EmailMessage" else {}
    return [{"value": v, "label": labels.get(v, v), "active": True, "defaultValue": v == default, "validFor": None}
            for v in values]


def _children(spec: ObjectSpec) -> list[dict[str, Any]]:
    out = []
    for child in OBJECTS.values():
        for f in child.fields.values():
            key = (child.name, f.name)
            if f.type == "reference" and spec.name in f.reference_to and key in CHILD_RELATIONSHIPS:
                out.append({"childSObject": child.name, "field": f.name, "relationshipName": CHILD_RELATIONSHIPS[key],
                            "cascadeDelete": key in CASCADE, "restrictedDelete": key in RESTRICTED,
                            "deprecatedAndHidden": False})
    return out
