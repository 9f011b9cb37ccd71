"""The interface every object's writes implement, and the plain implementation most objects use: the
values as checked (`store.records.body`), required fields, references, unique fields, then one row;
deleting refuses while other records still point at the record (Salesforce's DELETE_FAILED), or takes its
dependent rows with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from casegate.store.models import Base
from casegate.store.records.access import check_settings
from casegate.store.records.body import missing_required
from casegate.store.records.call import Call
from casegate.store.records.errors import delete_failed, required_missing
from casegate.store.records.spec import ObjectSpec
from casegate.store.records.writes import check_references, check_unique, delete_where, insert_row, update_row
from sqlalchemy import RowMapping, Table, func, select


class Handler(Protocol):
    obj: ObjectSpec

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        """Write a new record of `values` (checked by `parse_body`); its Id."""

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        """Change the stored record `row` to `values` (checked by `parse_body`)."""

    def delete(self, call: Call, row: RowMapping) -> None:
        """Delete the stored record `row`."""


@dataclass(frozen=True)
class Blocker:
    """Records of `table` whose `column` names the record keep it from being deleted."""

    table: str
    column: str
    label: str


@dataclass
class PlainHandler:
    obj: ObjectSpec
    blockers: Sequence[Blocker] = ()
    cascade: Sequence[tuple[str, str]] = ()
    """(table, column): rows that go with the record when it is deleted."""

    def create(self, call: Call, values: dict[str, object], auto_assign: bool) -> str:
        self.authorize(call)
        values = self.prepare(call, values, None)
        if missing := missing_required(self.obj, values):
            raise required_missing(missing)
        self.check(call, values, None)
        return insert_row(call, self.obj, values)

    def update(self, call: Call, row: RowMapping, values: dict[str, object]) -> None:
        self.authorize(call)
        values = self.prepare(call, values, row)
        self.check(call, values, row)
        update_row(call, self.obj, row["Id"], values)

    def delete(self, call: Call, row: RowMapping) -> None:
        self.authorize(call)
        for b in self.blockers:
            table = _table(b.table)
            count = call.conn.execute(select(func.count()).where(table.c[b.column] == row["Id"])).scalar_one()
            if count:
                raise delete_failed(f"Your attempt to delete {self.obj.label} {row['Id']} could not be completed "
                                    f"because it is associated with {count} {b.label}")
        for table_name, column in self.cascade:
            delete_where(call, _table(table_name), column, [row["Id"]])
        delete_where(call, self.obj.table, "Id", [row["Id"]])

    # hooks ------------------------------------------------------------------------------------------
    def authorize(self, call: Call) -> None:
        """Everyone with a token changes contacts, accounts and assets; settings objects only admins."""
        if self.obj.settings:
            check_settings(call, self.obj.name)

    def prepare(self, call: Call, values: dict[str, object], row: RowMapping | None) -> dict[str, object]:
        """The values to store, with what the object derives or defaults (`row`: None on create)."""
        return values

    def check(self, call: Call, values: dict[str, object], row: RowMapping | None) -> None:
        check_references(call, self.obj, values)
        check_unique(call, self.obj, values, row["Id"] if row is not None else None)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]

