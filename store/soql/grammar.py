"""The SOQL grammar (the subset casegate answers, plus the shapes of the constructs it refuses by name)
and the one parser built from it.

LALR(1) with lark's contextual lexer: parsing time grows linearly with the query, whatever its shape.
Keywords are case-insensitive; SOQL's reserved words are never names. Functions are parsed
by shape (`name(arguments)`) and checked by `translate`, so `toLabel(Status)` is refused by name rather
than as a syntax error. A condition mixes AND and OR only through parentheses, as in Salesforce.
"""

from __future__ import annotations

from lark import Lark

RESERVED = ("AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES", "LAST", "LIKE",
            "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH")
"""SOQL's reserved words: never a name (`SELECT FROM Case` is an error at FROM, not a field called FROM)."""

GRAMMAR = r"""
start: query

query: _SELECT select_list _FROM NAME where? group_by? having? order_by? limit? offset?

select_list: select_item ("," select_item)*
select_item: field_path alias?
           | call alias?
           | "(" query ")"
alias: NAME

field_path: NAME ("." NAME)*
call: NAME "(" [_call_arg ("," _call_arg)*] ")"
_call_arg: field_path | call
_operand: field_path | call

where: _WHERE _condition
having: _HAVING _condition

_condition: and_cond | or_cond | _term
and_cond: _term (_AND _term)+
or_cond: _term (_OR _term)+
_term: comparison | not_cond | "(" _condition ")"
not_cond: _NOT (comparison | "(" _condition ")")

comparison: _operand COMPARE literal            -> compare
          | _operand _LIKE literal              -> like
          | _operand _IN "(" _literals ")"      -> in_list
          | _operand _NOT _IN "(" _literals ")" -> not_in_list
          | _operand _INCLUDES "(" _literals ")" -> includes
          | _operand _EXCLUDES "(" _literals ")" -> excludes
_literals: literal ("," literal)*

literal: STRING | NUMBER | DATETIME | DATE | TRUE | FALSE | NULL
       | NAME                                   -> date_literal
       | NAME ":" NUMBER                        -> date_literal_n

group_by: _GROUP _BY _operand ("," _operand)*
order_by: _ORDER _BY order_item ("," order_item)*
order_item: _operand (ASC | DESC)? (_NULLS (FIRST | LAST))?
limit: _LIMIT NUMBER
offset: _OFFSET NUMBER

_SELECT: "SELECT"i
_FROM: "FROM"i
_WHERE: "WHERE"i
_HAVING: "HAVING"i
_AND: "AND"i
_OR: "OR"i
_NOT: "NOT"i
_LIKE: "LIKE"i
_IN: "IN"i
_INCLUDES: "INCLUDES"i
_EXCLUDES: "EXCLUDES"i
_GROUP: "GROUP"i
_ORDER: "ORDER"i
_BY: "BY"i
_NULLS: "NULLS"i
_LIMIT: "LIMIT"i
_OFFSET: "OFFSET"i
ASC: "ASC"i
DESC: "DESC"i
FIRST: "FIRST"i
LAST: "LAST"i
TRUE: "TRUE"i
FALSE: "FALSE"i
NULL: "NULL"i

COMPARE: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
NAME: /(?!(?:RESERVED_WORDS)\b)[a-z_][a-z0-9_]*/i
STRING: /'(?:[^'\\]|\\.)*'/s
DATETIME.3: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})/i
DATE.2: /\d{4}-\d{2}-\d{2}/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)/

%ignore /\s+/
""".replace("RESERVED_WORDS", "|".join(w.lower() for w in RESERVED))

PARSER = Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)
"""Built once at import (tens of milliseconds); immutable and safe to share between tasks."""
