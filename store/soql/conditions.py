"""WHERE and HAVING conditions as SQLAlchemy expressions, with every value a bound parameter.

SOQL's logic is two-valued where SQL's is three-valued: a null field simply differs from every value.
So `Subject != 'x'`, `NOT Subject = 'x'` and `Subject NOT IN (...)` all keep cases without a subject,
and `Contact.LastName = null` finds cases without a contact. Each positive comparison is made never to
be NULL (`field IS NOT NULL AND ...`) and the negative ones are its NOT. On a boolean field null counts
as false (Salesforce: `= null` is `= false`).

Text compares case-insensitively (lower() on both sides, in the database) except ids and the fields of
`schema.EXACT`; LIKE is case-insensitive with `%`, `_` and the escapes `\\%`, `\\_`. A date literal or
a date value on a date-time field stands for its range of days: `= TODAY` is within today,
`> TODAY` after it, `<= TODAY` before its end.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from casegate.store.soql.date_literals import Range, date_range, day_range
from casegate.store.soql.errors import InvalidField, InvalidFilterOperator, MalformedQuery, NumberOutsideValidRange
from casegate.store.soql.scope import Operand
from casegate.store.soql.syntax import (
    And,
    Boolean,
    Call,
    Comparison,
    Condition,
    DateLiteral,
    DateTimeValue,
    DateValue,
    FieldPath,
    Literal,
    Not,
    Null,
    Number,
    Or,
)
from casegate.store.soql.syntax import (
    String as StringValue,
)
from sqlalchemy import BigInteger, ColumnElement, Numeric, String, and_, cast, false, func, literal, not_, or_, true

MAX_LIKE_CHARS = 1_000
"""A LIKE pattern's length: matching costs up to pattern times text per row, so the pattern is bounded."""
INT64 = 2**63 - 1

Resolve = Callable[[FieldPath | Call], Operand]
_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_TYPE_NAMES = {"string": "string", "id": "id", "boolean": "boolean", "datetime": "dateTime", "int": "integer",
               "number": "double"}


class Conditions:
    """Translates the conditions of one SELECT: `resolve` names its operands, `now` anchors date literals."""

    def __init__(self, resolve: Resolve, now: datetime, source: str):
        self.resolve = resolve
        self.now = now
        self.source = source

    def translate(self, c: Condition) -> ColumnElement[bool]:
        if isinstance(c, And):
            return and_(*(self.translate(i) for i in c.items))
        if isinstance(c, Or):
            return or_(*(self.translate(i) for i in c.items))
        if isinstance(c, Not):
            return not_(self.translate(c.item))
        return self._comparison(c, self.resolve(c.left))

    def _comparison(self, c: Comparison, o: Operand) -> ColumnElement[bool]:
        if o.long:
            raise InvalidField(f"field '{o.path}' can not be filtered in a query call", c.position, self.source)
        if c.op in ("IN", "NOT_IN"):
            positive = self._in(o, c.values)
            return positive if c.op == "IN" else not_(positive)
        if c.op in ("INCLUDES", "EXCLUDES"):
            positive = self._includes(o, c)
            return positive if c.op == "INCLUDES" else not_(positive)
        [value] = c.values
        if c.op == "LIKE":
            return self._like(o, value)
        if isinstance(value.value, Null):
            return self._null(o, c.op, value)
        if c.op == "!=":
            return not_(self._compare(o, "=", value))
        return self._compare(o, c.op, value)

    # -- one value ---------------------------------------------------------------------------------
    def _compare(self, o: Operand, op: str, lit: Literal) -> ColumnElement[bool]:
        """`o op value`, never NULL."""
        self._check_type(o, lit)
        v = lit.value
        e = o.expression
        if o.kind == "boolean":
            if op != "=":
                raise InvalidFilterOperator(f"invalid operator on boolean field: {op}", lit.position, self.source)
            assert isinstance(v, Boolean)
            return _boolean(o) == (true() if v.value else false())
        if o.kind == "datetime":
            if isinstance(v, DateTimeValue):
                sql = _COMPARE[op](e, v.value.astimezone(UTC))
            else:
                sql = _in_range(e, op, self._range(v))
        elif o.kind == "int":
            assert isinstance(v, Number)
            sql = _compare_int(e, op, v.value, lit, self.source)
        elif o.kind == "number":
            assert isinstance(v, Number)
            sql = _COMPARE[op](e, literal(v.value, Numeric()))
        else:
            assert isinstance(v, StringValue)
            sql = _COMPARE[op](*_text(o, v.value))
        return and_(e.is_not(None), sql) if o.nullable else sql

    def _null(self, o: Operand, op: str, lit: Literal) -> ColumnElement[bool]:
        if o.kind == "boolean" and op in ("=", "!="):
            return _boolean(o) == (false() if op == "=" else true())
        if op == "=":
            return o.expression.is_(None)
        if op == "!=":
            return o.expression.is_not(None)
        raise InvalidFilterOperator(f"operator {op} cannot compare with null", lit.position, self.source)

    def _like(self, o: Operand, lit: Literal) -> ColumnElement[bool]:
        v = lit.value
        if o.kind != "string":
            raise InvalidFilterOperator(f"invalid operator on {_TYPE_NAMES[o.kind]} field: LIKE", lit.position,
                                        self.source)
        if not isinstance(v, StringValue):
            raise InvalidField(f"value of filter criterion for field '{o.path}' must be of type string and should "
                               "be enclosed in quotes", lit.position, self.source)
        if len(v.like_pattern) > MAX_LIKE_CHARS:
            raise MalformedQuery(f"LIKE pattern too long: at most {MAX_LIKE_CHARS} characters", lit.position,
                                 self.source)
        e = o.expression
        sql = e.like(v.like_pattern, escape="\\") if o.exact else e.ilike(v.like_pattern, escape="\\")
        return and_(e.is_not(None), sql) if o.nullable else sql

    # -- lists ---------------------------------------------------------------------------------------
    def _in(self, o: Operand, values: tuple[Literal, ...]) -> ColumnElement[bool]:
        """`o IN (values)`, never NULL; a null in the list matches a null field."""
        present = [v for v in values if not isinstance(v.value, Null)]
        with_null = len(present) < len(values)
        for v in present:
            self._check_type(o, v)
        e = o.expression
        if o.kind == "boolean":
            wanted = {v.value.value for v in present if isinstance(v.value, Boolean)}
            wanted |= {False} if with_null else set()
            return or_(false(), *(_boolean(o) == (true() if b else false()) for b in sorted(wanted)))
        if o.kind == "datetime":
            sql: ColumnElement[bool] = or_(false(), *(
                e == v.value.value.astimezone(UTC) if isinstance(v.value, DateTimeValue)
                else _in_range(e, "=", self._range(v.value)) for v in present))
        elif o.kind == "int":
            sql = or_(false(), *(_compare_int(e, "=", v.value.value, v, self.source)
                                 for v in present if isinstance(v.value, Number)))
        elif o.kind == "number":
            sql = or_(false(), *(e == literal(v.value.value, Numeric())
                                 for v in present if isinstance(v.value, Number)))
        else:
            texts = [v.value.value for v in present if isinstance(v.value, StringValue)]
            sql = e.in_(texts) if o.exact else func.lower(e).in_([func.lower(literal(t, String())) for t in texts])
        if not present:
            sql = false()
        elif o.nullable:
            sql = and_(e.is_not(None), sql)
        return or_(e.is_(None), sql) if with_null else sql

    def _includes(self, o: Operand, c: Comparison) -> ColumnElement[bool]:
        """INCLUDES on a text of `;`-separated values: each listed value (itself `a;b` = a and b) is there."""
        if o.kind != "string":
            raise InvalidFilterOperator(f"INCLUDES or EXCLUDES operator only valid on multipicklist field, not "
                                        f"'{o.path}'", c.position, self.source)
        wrapped = literal(";", String()) + o.expression + literal(";", String())
        alternatives = []
        for v in c.values:
            if not isinstance(v.value, StringValue):
                raise InvalidField(f"value of filter criterion for field '{o.path}' must be of type string and "
                                   "should be enclosed in quotes", v.position, self.source)
            parts = [p.strip() for p in v.value.value.split(";") if p.strip()]
            alternatives.append(and_(true(), *(wrapped.contains(f";{p};", autoescape=True) for p in parts)))
        sql = or_(*alternatives)
        return and_(o.expression.is_not(None), sql) if o.nullable else sql

    # -- values --------------------------------------------------------------------------------------
    def _range(self, v: object) -> Range:
        if isinstance(v, DateLiteral):
            return date_range(v, self.now, self.source)
        assert isinstance(v, DateValue)
        return day_range(v.value)

    def _check_type(self, o: Operand, lit: Literal) -> None:
        v = lit.value
        if isinstance(v, StringValue) and v.like_only:
            raise MalformedQuery("\\% and \\_ are escapes of LIKE patterns only", lit.position, self.source)
        fits = {
            "string": isinstance(v, StringValue), "id": isinstance(v, StringValue),
            "boolean": isinstance(v, Boolean), "int": isinstance(v, Number), "number": isinstance(v, Number),
            "datetime": isinstance(v, DateTimeValue | DateValue | DateLiteral),
        }[o.kind]
        if isinstance(v, DateLiteral) and o.kind != "datetime":
            raise InvalidField(f"date literal {v.name} used on field '{o.path}' of type {_TYPE_NAMES[o.kind]}",
                               lit.position, self.source)
        if not fits:
            quoted = "be" if o.kind in ("string", "id") else "not be"
            raise InvalidField(f"value of filter criterion for field '{o.path}' must be of type "
                               f"{_TYPE_NAMES[o.kind]} and should {quoted} enclosed in quotes", lit.position,
                               self.source)


def _boolean(o: Operand) -> ColumnElement[Any]:
    return func.coalesce(o.expression, false()) if o.nullable else o.expression


def _text(o: Operand, value: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    if o.exact:
        return o.expression, literal(value, String())
    return func.lower(o.expression), func.lower(literal(value, String()))


def _in_range(e: ColumnElement[Any], op: str, r: Range) -> ColumnElement[bool]:
    start, end = r
    return {"=": lambda: and_(e >= start, e < end), "<": lambda: e < start, "<=": lambda: e < end,
            ">": lambda: e >= end, ">=": lambda: e >= start}[op]()


def _compare_int(e: ColumnElement[Any], op: str, value: int | Decimal, lit: Literal, source: str
                 ) -> ColumnElement[bool]:
    """An integer field against a number: a fraction rounds the way that keeps the comparison's meaning."""
    if isinstance(value, Decimal) and value != value.to_integral_value():
        if op == "=":
            return false()
        value = math.ceil(value) if op in ("<", ">=") else math.floor(value)
    number = int(value)
    if abs(number) > INT64:
        raise NumberOutsideValidRange(f"number outside the range of an integer: {number}", lit.position, source)
    return _COMPARE[op](e, cast(literal(number, BigInteger()), BigInteger()))
