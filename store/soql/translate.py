"""`translate(query, now=...) -> Plan`: a parsed query resolved against the store's objects and turned
into SQLAlchemy Core statements over `store.models` — never SQL text; every value is a bound parameter.

Here: the record queries (field lists with parent fields, child subqueries, ORDER BY, LIMIT/OFFSET) and
the checks that name a wrong object (INVALID_TYPE) or field (INVALID_FIELD). Aggregate queries and
`COUNT()` are `aggregates.py`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from casegate.store.soql import aggregates
from casegate.store.soql.conditions import Conditions
from casegate.store.soql.errors import InvalidField, InvalidType, MalformedQuery, Position
from casegate.store.soql.plan import ChildEntry, ChildPlan, Entry, FieldEntry, ParentEntry, Plan, Shape
from casegate.store.soql.schema import OBJECTS, POLYMORPHIC_TYPE, SObject
from casegate.store.soql.scope import Operand, Scope, Target
from casegate.store.soql.syntax import Call, FieldPath, OrderItem, Query, SelectItem
from sqlalchemy import ColumnElement, and_, bindparam, func, select, true

MAX_SUBQUERIES = 20
"""Child subqueries in one query (Salesforce's limit)."""
MAX_CHILD_RECORDS = 2_000
"""Child records given per parent and subquery; past it the child result says `done: false`."""
FIELDS_LIMIT = 200
"""FIELDS(ALL) and FIELDS(CUSTOM) need a LIMIT of at most this (Salesforce's rule)."""

_NO_OBJECT = ("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append "
              "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate "
              "names.")
_NO_CHILD = ("Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom "
             "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
             "WSDL or the describe call for the appropriate names.")


def translate(query: Query, *, now: datetime, include_deleted: bool = False,
              child_records: int = MAX_CHILD_RECORDS) -> Plan:
    """The plan of `query`; `now` (aware) anchors date literals such as TODAY; each parent gives at most
    `child_records` records per child subquery. Raises InvalidType, InvalidField, MalformedQuery ... (see
    `errors`) for what the store cannot answer."""
    if now.tzinfo is None:
        raise ValueError("now must be time zone aware (UTC)")
    obj = OBJECTS.get(query.object.lower())
    if obj is None:
        raise InvalidType(_NO_OBJECT.format(query.object), query.object_position, query.source)
    if aggregates.is_aggregate(query):
        return aggregates.translate(query, obj, now, include_deleted)
    if query.having is not None:
        raise MalformedQuery("HAVING needs GROUP BY or an aggregate function", query.object_position, query.source)
    builder = _Records(obj, query, now, child_records)
    shape = builder.shape(query.select, top=True)
    where = builder.where()
    order = builder.order(query.order_by)
    joined = builder.scope.from_clause()  # after every field is resolved: each path's joins are known
    statement = select(*builder.columns).select_from(joined).where(where).order_by(*order)
    count = select(func.count()).select_from(joined).where(where)
    return Plan("records", obj.name, statement, count, shape=shape, limit=query.limit, offset=query.offset or 0,
                include_deleted=include_deleted)


class _Records:
    """The columns, shape, condition and order of one record SELECT (the query or a child subquery)."""

    def __init__(self, obj: SObject, query: Query, now: datetime, child_records: int):
        self.obj = obj
        self.query = query
        self.now = now
        self.child_records = child_records
        self.scope = Scope(obj, query.source)
        self.columns: list[ColumnElement[Any]] = []
        self._index: dict[str, int] = {}

    def column(self, key: str, expression: ColumnElement[Any]) -> int:
        """The row index of `expression`, added once under `key`."""
        if key not in self._index:
            self._index[key] = len(self.columns)
            self.columns.append(expression.label(f"c{len(self.columns)}"))
        return self._index[key]

    def where(self) -> ColumnElement[bool]:
        if self.query.where is None:
            return true()
        return Conditions(self._operand, self.now, self.query.source).translate(self.query.where)

    def _operand(self, expr: FieldPath | Call) -> Operand:
        if isinstance(expr, Call):
            if expr.name.upper() in aggregates.FUNCTIONS:
                raise MalformedQuery(f"aggregate function {expr.name}() is allowed in the SELECT list, HAVING and "
                                     "the ORDER BY of an aggregate query only", expr.position, self.query.source)
            raise MalformedQuery(f"unsupported function: {expr.name}()", expr.position, self.query.source)
        return self.scope.field(expr)

    def order(self, items: tuple[OrderItem, ...]) -> list[ColumnElement[Any]]:
        """ORDER BY, then the Id, so that pages never overlap."""
        out: list[ColumnElement[Any]] = []
        for i in items:
            o = self._operand(i.expr)
            out.append(_ordered(sort_key(o, "sorted", self.query.source, i.expr.position), i, o.nullable))
        return [*out, self.scope.root.Id]

    def shape(self, items: tuple[SelectItem, ...], *, top: bool) -> Shape:
        fields: list[tuple[Operand, Position]] = []
        children: list[Query] = []
        for item in items:
            if isinstance(item.expr, Query):
                if not top:
                    raise MalformedQuery("a subquery inside a subquery is not supported", item.expr.object_position,
                                         self.query.source)
                children.append(item.expr)
            elif isinstance(item.expr, Call) and item.expr.name.upper() == "FIELDS":
                fields += [(o, item.expr.position) for o in self._fields_function(item.expr)]
            elif item.alias is not None:
                raise MalformedQuery(f"an alias ({item.alias}) is allowed on aggregate queries only",
                                     item.expr.position, self.query.source)
            else:
                fields.append((self._operand(item.expr), item.expr.position))
        if len(children) > MAX_SUBQUERIES:
            raise MalformedQuery(f"at most {MAX_SUBQUERIES} subqueries are allowed", None, self.query.source)
        tree = _Tree(self.obj.name, self.obj.name, self.column("id", self.scope.root.Id), self.obj.name, None)
        seen: set[str] = set()
        for o, position in fields:
            if o.path.lower() in seen:
                raise MalformedQuery(f"duplicate field selected: {o.path}", position, self.query.source)
            seen.add(o.path.lower())
            self._place(tree, o)
        for sub in children:
            name, plan = self._child(sub)
            if name.lower() in seen:
                raise MalformedQuery(f"duplicate field selected: {name}", sub.object_position, self.query.source)
            seen.add(name.lower())
            tree.entries[name.lower()] = ChildEntry(name, plan)
        return tree.freeze()

    def _place(self, tree: _Tree, o: Operand) -> None:
        node = tree
        for depth in range(1, len(o.relationships) + 1):
            rels = o.relationships[:depth]
            key = rels[-1].lower()
            if key not in node.entries:
                target = self.scope.target(rels, self.query.object_position)
                assert target is not None
                node.entries[key] = self._parent_tree(target)
            entry = node.entries[key]
            assert isinstance(entry, _Tree)
            node = entry
        node.entries[o.name.lower()] = FieldEntry(o.name, self.column(o.path.lower(), o.expression), o.kind)

    def _parent_tree(self, target: Target) -> _Tree:
        path, name = ".".join(target.relationships).lower(), target.relationships[-1]
        if target.obj is not None:
            entity = target.entities[target.obj.name]
            return _Tree(name, target.obj.name, self.column(f"{path}.id", entity.Id), target.obj.name, None)
        ids = self.scope.field(FieldPath((*target.relationships, "Id"), self.query.object_position))
        kind = self.scope.field(FieldPath((*target.relationships, "Type"), self.query.object_position))
        return _Tree(name, POLYMORPHIC_TYPE, self.column(f"{path}.id", ids.expression), None,
                     self.column(f"{path}.type", kind.expression))

    def _fields_function(self, call: Call) -> list[Operand]:
        which = call.args[0].text.upper() if len(call.args) == 1 and isinstance(call.args[0], FieldPath) else ""
        if which not in ("ALL", "STANDARD", "CUSTOM"):
            raise MalformedQuery("FIELDS() takes ALL, STANDARD or CUSTOM", call.position, self.query.source)
        if which != "STANDARD" and (self.query.limit is None or self.query.limit > FIELDS_LIMIT):
            raise MalformedQuery(f"The SOQL FIELDS function must have a LIMIT of at most {FIELDS_LIMIT}",
                                 call.position, self.query.source)
        if which == "CUSTOM":
            return []  # the store has no custom fields
        return [self.scope.field(FieldPath((f.name,), call.position)) for f in self.obj.fields.values()]

    def _child(self, sub: Query) -> tuple[str, ChildPlan]:
        child = self.obj.children.get(sub.object.lower())
        if child is None:
            raise InvalidType(_NO_CHILD.format(sub.object), sub.object_position, self.query.source)
        if aggregates.is_aggregate(sub) or sub.having is not None:
            raise MalformedQuery("aggregates are not supported in a subquery", sub.object_position, self.query.source)
        if sub.offset is not None:
            raise MalformedQuery("OFFSET in a subquery is not supported", sub.object_position, self.query.source)
        inner = _Records(OBJECTS[child.object.lower()], sub, self.now, self.child_records)
        shape = inner.shape(sub.select, top=False)
        key = inner.scope.field(FieldPath((child.key,), sub.object_position)).expression
        position = func.row_number().over(partition_by=key, order_by=inner.order(sub.order_by))
        where = and_(key.in_(bindparam("parent_ids", expanding=True)), inner.where())
        rows = (select(*inner.columns, key.label("parent"), position.label("n"),
                       func.count().over(partition_by=key).label("total"))
                .select_from(inner.scope.from_clause()).where(where).subquery())
        most = min(sub.limit, self.child_records) if sub.limit is not None else self.child_records
        statement = select(rows).where(rows.c.n <= most).order_by(rows.c.parent, rows.c.n)
        width = len(inner.columns)
        return child.name, ChildPlan(child.name, statement, shape, width, width + 2, sub.limit)


def sort_key(o: Operand, verb: str, source: str, position: Position) -> ColumnElement[Any]:
    """What ORDER BY (or GROUP BY) uses for a field: text case-insensitively, unless it is exact."""
    if o.long:
        raise InvalidField(f"field '{o.path}' can not be {verb} in a query call", position, source)
    return func.lower(o.expression) if o.kind == "string" and not o.exact else o.expression


def _ordered(e: ColumnElement[Any], item: OrderItem, nullable: bool) -> ColumnElement[Any]:
    """The ORDER BY term: nulls first when ascending, last when descending (SOQL's defaults) unless the
    item says otherwise. A value that is never null gets plain ASC/DESC (same rows, same order), which
    an index on it can serve in either direction; `DESC NULLS LAST` would defeat an ascending one."""
    ordered = e.desc() if item.descending else e.asc()
    if not nullable:
        return ordered
    nulls_first = item.nulls_first if item.nulls_first is not None else not item.descending
    return ordered.nulls_first() if nulls_first else ordered.nulls_last()


class _Tree:
    """A Shape while it is being built: entries by lower-case name, in the order first selected."""

    def __init__(self, name: str, type_: str, id_index: int, url_type: str | None, url_type_index: int | None):
        self.name = name
        self.type = type_
        self.id_index = id_index
        self.url_type = url_type
        self.url_type_index = url_type_index
        self.entries: dict[str, Entry | _Tree] = {}

    def freeze(self) -> Shape:
        entries = tuple(ParentEntry(e.name, e.freeze()) if isinstance(e, _Tree) else e for e in self.entries.values())
        return Shape(self.type, self.id_index, self.url_type, self.url_type_index, entries)
