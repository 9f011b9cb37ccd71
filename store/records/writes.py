"""The checks and statements every object's writes share: references that must name existing records,
unique fields, and inserting, updating and deleting one row with the audit fields the object has
(CreatedDate, CreatedById, LastModifiedDate, LastModifiedById)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from casegate.store.ids import OBJECT_OF_PREFIX, new_id
from casegate.store.models import Base, User
from casegate.store.records.call import Call
from casegate.store.records.errors import RecordError, integrity
from casegate.store.records.objects import OBJECTS
from casegate.store.records.spec import ObjectSpec
from sqlalchemy import Table, delete, func, insert, select, update


def check_references(call: Call, obj: ObjectSpec, values: Mapping[str, object]) -> None:
    """Every reference in `values` names a record that exists (an owner: an active user, or a queue)."""
    for name, value in values.items():
        f = obj.fields[name]
        if f.type != "reference" or value is None or (not f.createable and not f.updateable):
            continue
        target = OBJECTS.get(OBJECT_OF_PREFIX.get(str(value)[:3], ""))
        if target is None or call.find(target, str(value)) is None:
            kind = target.name if target else " or ".join(f.reference_to)
            raise integrity(f"{f.label}: id value of a record that does not exist: {value} (no {kind} has it)",
                            [name])
        if target.name == "User" and name == "OwnerId" and not call.conn.execute(
                select(User.IsActive).where(User.Id == value)).scalar_one():
            raise integrity(f"{f.label}: the user {value} is inactive and cannot own records", [name])


def check_unique(call: Call, obj: ObjectSpec, values: Mapping[str, object], own_id: str | None = None) -> None:
    """No other record has the value of a unique field (DUPLICATE_VALUE naming the record that has it)."""
    table = obj.table
    for name, value in values.items():
        if name == "Id" or not obj.fields[name].unique or value is None:
            continue
        column = table.c[name]
        match = column == value if not isinstance(value, str) else func.lower(column) == value.lower()
        other = call.conn.execute(select(table.c.Id).where(match, table.c.Id != (own_id or ""))).scalar()
        if other is not None:
            raise RecordError(400, "DUPLICATE_VALUE",
                              f"duplicate value found: {name} duplicates value on record with id: {other}", [name])


def insert_row(call: Call, obj: ObjectSpec, values: Mapping[str, object], record_id: str | None = None) -> str:
    record_id = record_id or new_id(obj.name)
    row = {**values, "Id": record_id, **_audit(call, obj, created=True)}
    call.conn.execute(insert(obj.table).values(row))
    return record_id


def update_row(call: Call, obj: ObjectSpec, record_id: str, values: Mapping[str, object]) -> None:
    row = {**values, **_audit(call, obj, created=False)}
    if row:
        call.conn.execute(update(obj.table).where(obj.table.c.Id == record_id).values(row))


def table_of(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


def delete_where(call: Call, table: Table, column: str, ids: Sequence[str]) -> int:
    """Delete the rows of `table` whose `column` is one of `ids`; how many there were."""
    if not ids:
        return 0
    return call.conn.execute(delete(table).where(table.c[column].in_(ids))).rowcount


def _audit(call: Call, obj: ObjectSpec, *, created: bool) -> dict[str, object]:
    columns = obj.table.c
    stamps = {"LastModifiedDate": call.now, "LastModifiedById": call.actor.user_id}
    if created:
        stamps |= {"CreatedDate": call.now, "CreatedById": call.actor.user_id}
    return {k: v for k, v in stamps.items() if k in columns}
