"""`parse(text) -> Query`: SOQL text to the syntax tree of `syntax`, with the input bounded first.

Bounds, so that no query costs unbounded work before the database sees it: the text's length (Salesforce's
100,000 characters), how deeply parentheses nest (checked by a linear scan before the parser runs, so the
tree is never deep), how many values an IN list and the whole query hold, how many comparisons, fields
and sort keys it has. Syntax errors name the token
and its row and column as Salesforce does; constructs casegate does not support (WITH, FOR UPDATE,
TYPEOF, semi-joins ...) are named as such.
"""

from __future__ import annotations

import re
from typing import cast

from casegate.store.soql import literals
from casegate.store.soql.errors import MalformedQuery, NumberOutsideValidRange, Position
from casegate.store.soql.grammar import PARSER
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
    OrderItem,
    Query,
    SelectItem,
)
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

MAX_QUERY_CHARS = 100_000
MAX_NESTING = 20
"""Parentheses inside parentheses (conditions, function calls and subqueries alike)."""
MAX_IN_VALUES = 4_000
MAX_LITERALS = 10_000
"""Values in the whole query: each becomes a bound parameter (PostgreSQL allows 32,767 per statement)."""
MAX_CONDITIONS = 2_000
"""Comparisons in the whole query (each becomes a SQL expression; an IN list is one)."""
MAX_SELECT_ITEMS = 1_000
MAX_SORT_KEYS = 32
"""ORDER BY and GROUP BY keys, each."""
MAX_OFFSET = 2_000
MAX_LIMIT = 2**31 - 1

UNSUPPORTED = {
    "WITH": "WITH clauses (SECURITY_ENFORCED, DATA CATEGORY ...)",
    "USING": "USING SCOPE",
    "FOR": "FOR VIEW, FOR REFERENCE and FOR UPDATE",
    "UPDATE": "UPDATE TRACKING and UPDATE VIEWSTAT",
    "TYPEOF": "TYPEOF",
    "WHEN": "TYPEOF",
    "SELECT": "semi-join and anti-join subqueries (a SELECT inside IN or NOT IN)",
}
"""Words of SOQL casegate does not answer: a syntax error at one names the construct."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse(text: str) -> Query:
    """The query in `text`; MalformedQuery (or NumberOutsideValidRange for LIMIT/OFFSET) if it is not
    SOQL casegate supports. Names are not checked against the store's objects here (`translate` does)."""
    if len(text) > MAX_QUERY_CHARS:
        raise MalformedQuery(f"Query too long: {len(text)} characters, at most {MAX_QUERY_CHARS} are allowed")
    _check_nesting(text)
    try:
        tree = PARSER.parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text) from None
    builder = _Builder(text)
    return builder.query(_tree(tree.children[0]))


def _check_nesting(text: str) -> None:
    """Refuse parentheses nested deeper than MAX_NESTING (those inside string literals do not count)."""
    depth, line, line_start, i, n = 0, 1, 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            i += 1
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise MalformedQuery(f"parentheses nested more than {MAX_NESTING} deep",
                                     Position(line, i - line_start + 1), text)
        elif c == ")":
            depth -= 1
        elif c == "\n":
            line, line_start = line + 1, i + 1
        i += 1


def _syntax_error(e: UnexpectedInput, text: str) -> MalformedQuery:
    position = Position(e.line, e.column) if e.line > 0 else None
    if isinstance(e, UnexpectedToken):
        token = e.token
        shown = "<EOF>" if token.type == "$END" else f"'{token.value}'"
        word = str(token.value).upper()
        construct = UNSUPPORTED.get(word)
        if word == "SELECT" and not text[: token.start_pos or 0].rstrip().endswith("("):
            construct = None  # a misplaced SELECT, not one inside IN (...)
        note = f": {construct} not supported" if construct else ""
        return MalformedQuery(f"unexpected token: {shown}{note}", position, text)
    if isinstance(e, UnexpectedCharacters):
        found = _WORD.match(text, e.pos_in_stream) if e.pos_in_stream is not None else None
        if found is not None:  # a reserved word where none fits (`WITH SECURITY_ENFORCED`)
            construct = UNSUPPORTED.get(found.group().upper())
            note = f": {construct} not supported" if construct else ""
            return MalformedQuery(f"unexpected token: '{found.group()}'{note}", position, text)
        if e.char == "'":
            return MalformedQuery("unterminated string literal", position, text)
        return MalformedQuery(f"unexpected character: {e.char!r}", position, text)
    return MalformedQuery("unexpected end of query", position, text)


def _tree(node: object) -> Tree[Token]:
    assert isinstance(node, Tree), node
    return cast(Tree[Token], node)


def _token(node: object) -> Token:
    assert isinstance(node, Token), node
    return node


def _at(token: Token) -> Position:
    return Position(token.line or 0, token.column or 0)


class _Builder:
    """Lark's tree → `syntax` values, counting literals as it goes."""

    def __init__(self, source: str):
        self.source = source
        self.literals = 0
        self.conditions = 0

    def query(self, tree: Tree[Token]) -> Query:
        select_list, name, *clauses = tree.children
        parts: dict[str, object] = {}
        for clause in clauses:
            c = _tree(clause)
            parts[str(c.data)] = c
        obj = _token(name)
        self.bound(len(_tree(select_list).children), MAX_SELECT_ITEMS, "fields in a SELECT list", obj)
        for keys, words in (("group_by", "GROUP BY keys"), ("order_by", "ORDER BY keys")):
            if keys in parts:
                self.bound(len(_tree(parts[keys]).children), MAX_SORT_KEYS, words, obj)
        return Query(
            select=tuple(self.select_item(_tree(i)) for i in _tree(select_list).children),
            object=str(obj), object_position=_at(obj),
            where=self.condition(_tree(parts["where"]).children[0]) if "where" in parts else None,
            group_by=tuple(self.operand(o) for o in _tree(parts["group_by"]).children) if "group_by" in parts else (),
            having=self.condition(_tree(parts["having"]).children[0]) if "having" in parts else None,
            order_by=tuple(self.order_item(_tree(o)) for o in _tree(parts["order_by"]).children)
            if "order_by" in parts else (),
            limit=self.count(_tree(parts["limit"]), "LIMIT", MAX_LIMIT) if "limit" in parts else None,
            offset=self.count(_tree(parts["offset"]), "OFFSET", MAX_OFFSET) if "offset" in parts else None,
            source=self.source,
        )

    def select_item(self, tree: Tree[Token]) -> SelectItem:
        first = _tree(tree.children[0])
        if first.data == "query":
            return SelectItem(self.query(first))
        alias = str(_tree(tree.children[1]).children[0]) if len(tree.children) > 1 else None
        return SelectItem(self.operand(first), alias)

    def operand(self, node: object) -> FieldPath | Call:
        tree = _tree(node)
        if tree.data == "field_path":
            tokens = [_token(t) for t in tree.children]
            return FieldPath(tuple(str(t) for t in tokens), _at(tokens[0]))
        name = _token(tree.children[0])
        args = tuple(self.operand(a) for a in tree.children[1:] if a is not None)
        return Call(str(name), args, _at(name))

    def order_item(self, tree: Tree[Token]) -> OrderItem:
        expr, *words = tree.children
        kinds = {_token(w).type for w in words}
        nulls_first = True if "FIRST" in kinds else False if "LAST" in kinds else None
        return OrderItem(self.operand(expr), "DESC" in kinds, nulls_first)

    def bound(self, n: int, most: int, what: str, near: Token) -> None:
        if n > most:
            raise MalformedQuery(f"too many {what}: {n}, at most {most}", _at(near), self.source)

    def count(self, tree: Tree[Token], clause: str, most: int) -> int:
        token = _token(tree.children[0])
        value = literals.number(str(token), _at(token), self.source)
        if not isinstance(value, int) or value < 0:
            raise MalformedQuery(f"{clause} must be a non-negative integer, found: {token}", _at(token), self.source)
        if value > most:
            raise NumberOutsideValidRange(f"Maximum SOQL {clause.lower()} allowed is {most}", _at(token),
                                          self.source)
        return value

    def condition(self, node: object) -> Condition:
        tree = _tree(node)
        kind = str(tree.data)
        if kind == "and_cond":
            return And(tuple(self.condition(c) for c in tree.children))
        if kind == "or_cond":
            return Or(tuple(self.condition(c) for c in tree.children))
        if kind == "not_cond":
            return Not(self.condition(tree.children[0]))
        left = self.operand(tree.children[0])
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise MalformedQuery(f"too many conditions: at most {MAX_CONDITIONS}", left.position, self.source)
        if kind == "compare":
            op = str(tree.children[1])
            values: tuple[Literal, ...] = (self.literal(_tree(tree.children[2])),)
            return Comparison(left, "!=" if op == "<>" else op, values, left.position)
        values = tuple(self.literal(_tree(v)) for v in tree.children[1:])
        if len(values) > MAX_IN_VALUES:
            raise MalformedQuery(f"too many values in a list: {len(values)}, at most {MAX_IN_VALUES}",
                                 left.position, self.source)
        op = {"like": "LIKE", "in_list": "IN", "not_in_list": "NOT_IN", "includes": "INCLUDES",
              "excludes": "EXCLUDES"}[kind]
        return Comparison(left, op, values, left.position)

    def literal(self, tree: Tree[Token]) -> Literal:
        self.literals += 1
        first = _token(tree.children[0])
        at = _at(first)
        if self.literals > MAX_LITERALS:
            raise MalformedQuery(f"too many values in the query: at most {MAX_LITERALS}", at, self.source)
        raw = str(first)
        if tree.data == "date_literal":
            return Literal(DateLiteral(raw.upper(), None, at), at)
        if tree.data == "date_literal_n":
            n = literals.number(str(tree.children[1]), at, self.source)
            if not isinstance(n, int):
                raise MalformedQuery(f"date literal {raw}:n needs a whole number, found {tree.children[1]}", at,
                                     self.source)
            return Literal(DateLiteral(raw.upper(), n, at), at)
        match first.type:
            case "STRING":
                return Literal(literals.string(raw, at, self.source), at)
            case "NUMBER":
                return Literal(Number(literals.number(raw, at, self.source)), at)
            case "DATETIME":
                return Literal(DateTimeValue(literals.instant(raw, at, self.source)), at)
            case "DATE":
                return Literal(DateValue(literals.day(raw, at, self.source)), at)
            case "NULL":
                return Literal(Null(), at)
            case _:
                return Literal(Boolean(first.type == "TRUE"), at)

