"""Errors of SOQL queries, each carrying the errorCode Salesforce gives for the same mistake, so the REST
edge answers `[{"message": e.message, "errorCode": e.error_code}]` without translating.

`message` is shaped like Salesforce's: when the mistake has a place in the query, the line of the query,
a caret under the place and `ERROR at Row:r:Column:c`, then what is wrong. None of these errors is worth
retrying: the same query fails the same way."""

from __future__ import annotations

from dataclasses import dataclass

from casegate.store.errors import StoreError

ECHO_WIDTH = 120
"""How much of the offending line a message repeats (a query may be one 100,000-character line)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where in the query text (1-based, as Salesforce counts rows and columns)."""

    line: int
    column: int


class SoqlError(StoreError):
    """Root of the query errors: `error_code` is Salesforce's, `detail` says what is wrong, `position`
    where (None when the mistake is the query as a whole)."""

    error_code = "MALFORMED_QUERY"

    def __init__(self, detail: str, position: Position | None = None, query: str | None = None):
        self.detail = detail
        self.position = position
        self.message = _located(detail, position, query)
        super().__init__(self.message)


class MalformedQuery(SoqlError):
    """Not SOQL, or SOQL that casegate does not support (the message names the construct)."""

    error_code = "MALFORMED_QUERY"


class InvalidField(SoqlError):
    """A field or relationship the object does not have, or a value of the wrong type for a field."""

    error_code = "INVALID_FIELD"


class InvalidType(SoqlError):
    """An object (or child relationship in a subquery's FROM) that does not exist."""

    error_code = "INVALID_TYPE"


class InvalidFilterOperator(SoqlError):
    """An operator the field's type does not allow (LIKE on a date, INCLUDES on a boolean)."""

    error_code = "INVALID_QUERY_FILTER_OPERATOR"


class NumberOutsideValidRange(SoqlError):
    """LIMIT or OFFSET (or a date literal's N) beyond what is allowed."""

    error_code = "NUMBER_OUTSIDE_VALID_RANGE"


def _located(detail: str, position: Position | None, query: str | None) -> str:
    if position is None:
        return detail
    where = f"ERROR at Row:{position.line}:Column:{position.column}\n{detail}"
    if query is None:
        return where
    lines = query.splitlines() or [""]
    text = lines[position.line - 1] if position.line <= len(lines) else ""
    start = max(0, position.column - 1 - ECHO_WIDTH // 2)
    shown = text[start:start + ECHO_WIDTH]
    caret = " " * (position.column - 1 - start) + "^"
    return f"\n{shown}\n{caret}\n{where}"
