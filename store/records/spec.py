"""What the record layer knows of an object and its fields, in the shape of Salesforce's describe: read off
the SQLAlchemy models (a column's type, length and nullability) plus a small table of what the models do
not say (`store.records.objects`: labels, picklists, references, which fields clients may write).

A field is looked up by its API name in any letter case, as Salesforce does, and given back spelled as in
the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from casegate.store.models import Base
from sqlalchemy import Boolean, Date, DateTime, Integer, String, Table, Text, inspect

FieldType = Literal["id", "string", "textarea", "picklist", "reference", "boolean", "datetime", "date", "int",
                    "double", "email", "phone", "url"]
STRING_TYPES = frozenset({"id", "string", "textarea", "picklist", "reference", "email", "phone", "url"})
SYSTEM = frozenset({"Id", "CreatedDate", "LastModifiedDate", "CreatedById", "LastModifiedById"})
"""Fields the store sets on every object that has them; never written by a client."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    label: str
    type: FieldType
    length: int = 0
    """Characters (bytes when `in_bytes`) a text holds; 0 for other types."""
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: str | None = None
    """The `[case]` list its values come from (statuses, priorities, types, reasons, origins)."""
    values: tuple[str, ...] = ()
    """A fixed picklist (User.Role, EmailMessage.Status ...) when `picklist` is None."""
    column: str | None = None
    """The stored column; None for a field the store derives (SystemModstamp, Contact.Name ...)."""
    minimum: int | None = None
    maximum: int | None = None
    in_bytes: bool = False

    @property
    def required(self) -> bool:
        """A create must give it: it cannot be null and nothing fills it in."""
        return not self.nillable and self.createable and not self.defaulted_on_create


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    model: type[Base]
    fields: Mapping[str, FieldSpec]
    """By API name, in the models' column order, derived fields last."""
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    settings: bool = False
    """Only an admin changes it (`rules.access.SETTINGS_CHAIN`)."""
    _lower: Mapping[str, str] = field(default_factory=dict)

    @property
    def table(self) -> Table:
        return Base.metadata.tables[self.model.__tablename__]

    def field(self, name: str) -> FieldSpec | None:
        """The field named `name` in any letter case."""
        api = self._lower.get(name.lower())
        return self.fields[api] if api is not None else None

    def columns(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.column is not None]


@dataclass(frozen=True, slots=True)
class Override:
    """What a field's column does not say; unset (None) attributes keep what the column says."""

    label: str | None = None
    type: FieldType | None = None
    length: int | None = None
    createable: bool | None = None
    updateable: bool | None = None
    defaulted: bool | None = None
    reference_to: tuple[str, ...] | None = None
    relationship_name: str | None = None
    picklist: str | None = None
    values: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    in_bytes: bool = False
    nillable: bool | None = None


def label_of(name: str) -> str:
    """`SuppliedEmail` → `Supplied Email`; `ContactId` → `Contact ID`."""
    if name == "Id":
        return "Record ID"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return words[:-3] + " ID" if words.endswith(" Id") else words


def build(name: str, model: type[Base], *, label: str, label_plural: str, prefix: str,
          overrides: Mapping[str, Override], derived: tuple[FieldSpec, ...] = (),
          tables: Mapping[str, str], **flags: Any) -> ObjectSpec:
    """The spec of object `name` stored in `model`; `tables` names the object of each table (for the
    targets of foreign keys)."""
    fields: dict[str, FieldSpec] = {}
    for attr in inspect(model).column_attrs:
        fields[attr.key] = _field(attr.key, attr.columns[0], overrides.get(attr.key, Override()), tables)
    unknown = set(overrides) - set(fields) - SYSTEM
    if unknown:
        raise RuntimeError(f"records spec of {name}: overrides for columns it does not have: {sorted(unknown)}")
    for d in derived:
        fields[d.name] = d
    return ObjectSpec(name, label, label_plural, prefix, model, fields, _lower={n.lower(): n for n in fields},
                      **flags)


def _field(name: str, column: Any, o: Override, tables: Mapping[str, str]) -> FieldSpec:
    t = column.type
    targets = tuple(tables[fk.column.table.name] for fk in column.foreign_keys)
    kind: FieldType
    length = 0
    if isinstance(t, Boolean):
        kind = "boolean"
    elif isinstance(t, DateTime):
        kind = "datetime"
    elif isinstance(t, Date):
        kind = "date"
    elif isinstance(t, Integer):
        kind = "int"
    elif isinstance(t, Text):
        kind, length = "textarea", 32000
    elif isinstance(t, String):
        length = t.length or 255
        kind = "id" if name == "Id" else "reference" if targets or o.reference_to else "string"
    else:
        raise RuntimeError(f"records spec: column {name} has a type the API cannot carry: {t!r}")
    kind = o.type or kind
    system = name in SYSTEM
    nillable = bool(column.nullable) if o.nillable is None else o.nillable
    return FieldSpec(
        name=name, label=o.label or label_of(name), type=kind, length=o.length or length,
        nillable=nillable and kind != "boolean",
        createable=not system if o.createable is None else o.createable,
        updateable=not system if o.updateable is None else o.updateable,
        defaulted_on_create=(kind == "boolean" and not system) if o.defaulted is None else o.defaulted,
        unique=bool(column.unique) or column.primary_key, reference_to=o.reference_to or targets,
        relationship_name=o.relationship_name or (name[:-2] if kind == "reference" else None),
        picklist=o.picklist, values=o.values, column=name, minimum=o.minimum, maximum=o.maximum, in_bytes=o.in_bytes)
