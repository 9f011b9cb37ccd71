"""SOQL over the case store, as Salesforce integrations send it to `GET …/query?q=`.

    query = parse(text)                      # syntax: MalformedQuery
    plan = translate(query, now=now)         # names and types: InvalidType, InvalidField ...
    page = await run(session, plan, api_version="62.0", page_size=2000, cursor=None)
    page.records, page.total_size, page.done, page.next_cursor

`parse` reads the text with a lark grammar (`grammar.py`), `translate` resolves it against the store's
objects (`schema.py`) into SQLAlchemy statements (never SQL text: values are bound parameters), `run`
executes one page and shapes Salesforce records (`records.py`). Every error is a `SoqlError` carrying
Salesforce's `error_code` and a Salesforce-like `message`.
"""

from __future__ import annotations

from casegate.store.soql.errors import (
    InvalidField,
    InvalidFilterOperator,
    InvalidType,
    MalformedQuery,
    NumberOutsideValidRange,
    Position,
    SoqlError,
)
from casegate.store.soql.parse import parse
from casegate.store.soql.plan import Plan
from casegate.store.soql.run import Cursor, Page, run
from casegate.store.soql.syntax import Query
from casegate.store.soql.translate import translate

__all__ = [
    "Cursor",
    "InvalidField",
    "InvalidFilterOperator",
    "InvalidType",
    "MalformedQuery",
    "NumberOutsideValidRange",
    "Page",
    "Plan",
    "Position",
    "Query",
    "SoqlError",
    "parse",
    "run",
    "translate",
]
