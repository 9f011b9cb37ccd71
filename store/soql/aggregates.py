"""Aggregate queries: `SELECT COUNT() FROM ...` (a count, no records) and GROUP BY with COUNT, COUNT_DISTINCT,
MIN, MAX, SUM and AVG, optional aliases and HAVING; records of type AggregateResult whose unnamed
aggregates are called `expr0`, `expr1` ... in the order written, as Salesforce names them.

Every selected field must be grouped, and a grouped parent field is given flat by its own name
(`Owner.Name` → `"Name"`), as in Salesforce's aggregate results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from casegate.store.soql.conditions import Conditions, Resolve
from casegate.store.soql.errors import InvalidField, MalformedQuery
from casegate.store.soql.plan import AggregateColumn, Plan
from casegate.store.soql.schema import SObject
from casegate.store.soql.scope import Operand, Scope
from casegate.store.soql.syntax import Call, FieldPath, Query
from sqlalchemy import ColumnElement, distinct, func, select, true

FUNCTIONS = ("COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM", "AVG")


def is_aggregate(query: Query) -> bool:
    return bool(query.group_by) or any(
        isinstance(i.expr, Call) and i.expr.name.upper() in FUNCTIONS for i in query.select)


def translate(query: Query, obj: SObject, now: datetime, include_deleted: bool) -> Plan:
    scope = Scope(obj, query.source)
    where = (Conditions(_fields_only(scope, query), now, query.source).translate(query.where)
             if query.where is not None else true())
    if any(isinstance(i.expr, Call) and i.expr.name.upper() == "COUNT" and not i.expr.args for i in query.select):
        if len(query.select) != 1 or query.group_by:
            raise MalformedQuery("COUNT() must be the only element in the SELECT list, without GROUP BY",
                                 query.object_position, query.source)
        matching = select(scope.root.Id).select_from(scope.from_clause()).where(where)
        count = select(func.count()).select_from(matching.subquery())
        return Plan("count", obj.name, count, count, limit=query.limit, offset=query.offset or 0,
                    include_deleted=include_deleted)
    groups = _groups(scope, query)
    columns: list[ColumnElement[Any]] = []
    out: list[AggregateColumn] = []
    unnamed = 0
    for item in query.select:
        if isinstance(item.expr, Query):
            raise MalformedQuery("a subquery is not allowed in an aggregate query", item.expr.object_position,
                                 query.source)
        if isinstance(item.expr, FieldPath):
            o = scope.field(item.expr)
            if o.path.lower() not in groups:
                raise MalformedQuery(f"Field must be grouped or aggregated: {o.path}", item.expr.position,
                                     query.source)
            name = item.alias or o.name
        else:
            o = aggregate(scope, item.expr, query.source)
            name = item.alias or f"expr{unnamed}"
            unnamed += item.alias is None
        if any(c.name.lower() == name.lower() for c in out):
            raise MalformedQuery(f"duplicate alias: {name}", item.expr.position, query.source)
        out.append(AggregateColumn(name, len(columns), o.kind))
        columns.append(o.expression.label(f"c{len(columns)}"))
    by = [o.expression for o in groups.values()]
    having = (Conditions(_grouped_or_aggregate(scope, groups, query), now, query.source).translate(query.having)
              if query.having is not None else true())
    orders = []
    for order in query.order_by:
        o = _grouped_or_aggregate(scope, groups, query)(order.expr)
        e = func.lower(o.expression) if o.kind == "string" and not o.exact else o.expression
        nulls_first = order.nulls_first if order.nulls_first is not None else not order.descending
        ordered = e.desc() if order.descending else e.asc()
        orders.append(ordered.nulls_first() if nulls_first else ordered.nulls_last())
    grouped = select(*columns).select_from(scope.from_clause()).where(where).group_by(*by).having(having)
    count = select(func.count()).select_from(grouped.subquery())
    return Plan("aggregate", obj.name, grouped.order_by(*orders, *by), count, columns=tuple(out),
                limit=query.limit, offset=query.offset or 0, include_deleted=include_deleted)


def aggregate(scope: Scope, call: Call, source: str) -> Operand:
    """COUNT(f), COUNT_DISTINCT(f), MIN(f), MAX(f), SUM(f), AVG(f) as an operand."""
    name = call.name.upper()
    if name not in FUNCTIONS:
        raise MalformedQuery(f"unsupported function: {call.name}", call.position, source)
    if len(call.args) != 1 or not isinstance(call.args[0], FieldPath):
        raise MalformedQuery(f"{name}() takes one field", call.position, source)
    o = scope.field(call.args[0])
    label = f"{name}({o.path})"
    if o.long:
        raise InvalidField(f"field '{o.path}' can not be aggregated in a query call", call.position, source)
    if name in ("COUNT", "COUNT_DISTINCT"):
        counted = func.count(o.expression) if name == "COUNT" else func.count(distinct(o.expression))
        return Operand(counted, "int", False, True, False, label, ())
    if (name in ("SUM", "AVG") and o.kind != "int") or o.kind == "boolean":
        raise InvalidField(f"field {o.path} does not support aggregate operator {name}", call.position, source)
    e: ColumnElement[Any] = getattr(func, name.lower())(o.expression)  # min, max, sum or avg
    return Operand(e, "number" if name == "AVG" else o.kind, True, o.exact, False, label, ())


def _groups(scope: Scope, query: Query) -> dict[str, Operand]:
    groups: dict[str, Operand] = {}
    for g in query.group_by:
        if isinstance(g, Call):
            raise MalformedQuery(f"GROUP BY {g.name}() is not supported", g.position, query.source)
        o = scope.field(g)
        if o.long:
            raise InvalidField(f"field '{o.path}' can not be grouped in a query call", g.position, query.source)
        groups[o.path.lower()] = o
    return groups


def _fields_only(scope: Scope, query: Query) -> Resolve:
    def resolve(expr: FieldPath | Call) -> Operand:
        if isinstance(expr, Call):
            raise MalformedQuery(f"function {expr.name}() is not allowed in WHERE (aggregates belong in HAVING)",
                                 expr.position, query.source)
        return scope.field(expr)

    return resolve


def _grouped_or_aggregate(scope: Scope, groups: dict[str, Operand], query: Query) -> Resolve:
    def resolve(expr: FieldPath | Call) -> Operand:
        if isinstance(expr, Call):
            return aggregate(scope, expr, query.source)
        o = scope.field(expr)
        if o.path.lower() not in groups:
            raise MalformedQuery(f"Field must be grouped or aggregated: {o.path}", expr.position, query.source)
        return o

    return resolve

