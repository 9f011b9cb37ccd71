"""SOQL without a database: what the parser makes of queries, how literals and date literals read, the
bounds on hostile input, every refusal with Salesforce's errorCode and position, and that values never
reach the SQL text (they are bound parameters)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from casegate.store.soql import (
    InvalidField,
    InvalidFilterOperator,
    InvalidType,
    MalformedQuery,
    NumberOutsideValidRange,
    Position,
    SoqlError,
    parse,
    translate,
)
from casegate.store.soql.date_literals import date_range
from casegate.store.soql.parse import (
    MAX_CONDITIONS,
    MAX_IN_VALUES,
    MAX_LITERALS,
    MAX_NESTING,
    MAX_QUERY_CHARS,
    MAX_SELECT_ITEMS,
)
from casegate.store.soql.plan import ChildEntry
from casegate.store.soql.schema import OBJECTS
from casegate.store.soql.syntax import (
    And,
    Boolean,
    Call,
    Comparison,
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
    String,
)
from sqlalchemy.dialects import postgresql, sqlite

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # a Friday


def where(soql_condition: str) -> object:
    query = parse(f"SELECT Id FROM Case WHERE {soql_condition}")
    assert query.where is not None
    return query.where


def value(literal_text: str) -> object:
    c = where(f"Subject = {literal_text}")
    assert isinstance(c, Comparison)
    return c.values[0].value


# -- the syntax tree --------------------------------------------------------------------------------
def test_a_query_with_every_clause_parses_into_its_parts() -> None:
    q = parse("select Id, Contact.Email, (SELECT Id FROM CaseComments ORDER BY CreatedDate DESC LIMIT 5)\n"
              "FROM Case WHERE Status <> 'Closed' AND (Priority IN ('High', null) OR NOT IsClosed = true)\n"
              "ORDER BY Owner.Name DESC NULLS LAST, CreatedDate LIMIT 10 OFFSET 20")
    p = Position
    assert q.select[:2] == (SelectItem(FieldPath(("Id",), p(1, 8))),
                            SelectItem(FieldPath(("Contact", "Email"), p(1, 12))))
    sub = q.select[2].expr
    assert isinstance(sub, Query)
    assert (sub.object, sub.limit, sub.order_by) == (
        "CaseComments", 5, (OrderItem(FieldPath(("CreatedDate",), p(1, 65)), True, None),))
    assert (q.object, q.object_position, q.limit, q.offset) == ("Case", p(2, 6), 10, 20)
    assert q.where == And((
        Comparison(FieldPath(("Status",), p(2, 17)), "!=", (Literal(String("Closed", "Closed"), p(2, 27)),),
                   p(2, 17)),
        Or((Comparison(FieldPath(("Priority",), p(2, 41)), "IN",
                       (Literal(String("High", "High"), p(2, 54)), Literal(Null(), p(2, 62))), p(2, 41)),
            Not(Comparison(FieldPath(("IsClosed",), p(2, 75)), "=", (Literal(Boolean(True), p(2, 86)),),
                           p(2, 75))))),
    ))
    assert q.order_by == (OrderItem(FieldPath(("Owner", "Name"), p(3, 10)), True, False),
                          OrderItem(FieldPath(("CreatedDate",), p(3, 38)), False, None))


def test_functions_are_parsed_by_shape_with_their_alias() -> None:
    q = parse("SELECT Status, COUNT(Id) n, COUNT() FROM Case GROUP BY Status HAVING COUNT(Id) > 1")
    assert q.select[1] == SelectItem(Call("COUNT", (FieldPath(("Id",), Position(1, 22)),), Position(1, 16)), "n")
    assert q.select[2] == SelectItem(Call("COUNT", (), Position(1, 29)))
    assert q.group_by == (FieldPath(("Status",), Position(1, 56)),)
    assert isinstance(q.having, Comparison) and isinstance(q.having.left, Call)


@pytest.mark.parametrize(("condition", "op"), [
    ("Subject LIKE 'a%'", "LIKE"), ("Subject NOT IN ('a')", "NOT_IN"), ("Type INCLUDES ('a;b')", "INCLUDES"),
    ("Type EXCLUDES ('a')", "EXCLUDES"), ("Subject <> 'a'", "!="), ("Subject != 'a'", "!="),
    ("CreatedDate <= TODAY", "<="), ("CreatedDate >= TODAY", ">="), ("Seq < 3", "<"), ("Seq > 3", ">"),
])
def test_operators(condition: str, op: str) -> None:
    c = where(condition)
    assert isinstance(c, Comparison) and c.op == op


def test_keywords_and_names_are_case_insensitive_but_kept_as_written() -> None:
    q = parse("sElEcT id FrOm cAsE wHeRe subject lIkE 'x' aNd isclosed = FALSE oRdEr By id AsC nUlLs FiRsT")
    assert (q.object, q.select[0].expr) == ("cAsE", FieldPath(("id",), Position(1, 8)))
    assert q.order_by[0] == OrderItem(FieldPath(("id",), Position(1, 74)), False, True)


# -- literals -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("written", "text", "like"), [
    ("'plain'", "plain", "plain"),
    ("'Bob\\'s BBQ'", "Bob's BBQ", "Bob's BBQ"),
    ("'a\\\\b'", "a\\b", "a\\\\b"),  # a literal backslash; doubled in the LIKE pattern
    ("'\\n\\N\\r\\R\\t\\T\\b\\B\\f\\F'", "\n\n\r\r\t\t\b\b\f\f", "\n\n\r\r\t\t\b\b\f\f"),
    ("'say \\\"hi\\\"'", 'say "hi"', 'say "hi"'),
    ("'caf\\u00e9 \\u2603'", "café ☃", "café ☃"),
    ("'50%_'", "50%_", "50%_"),  # unescaped: wildcards in LIKE, plain characters elsewhere
    ("'日本語 ünïcödé'", "日本語 ünïcödé", "日本語 ünïcödé"),
    ("'line\nbreak'", "line\nbreak", "line\nbreak"),
    ("''", "", ""),
])
def test_string_escapes(written: str, text: str, like: str) -> None:
    assert value(written) == String(text, like)


def test_like_only_escapes_are_marked_and_refused_outside_like() -> None:
    assert value("'50\\%\\_'") == String("50%_", "50\\%\\_", like_only=True)
    translate(parse("SELECT Id FROM Case WHERE Subject LIKE '50\\%'"), now=NOW)
    with pytest.raises(MalformedQuery, match="escapes of LIKE patterns only"):
        translate(parse("SELECT Id FROM Case WHERE Subject = '50\\%'"), now=NOW)


@pytest.mark.parametrize(("written", "parsed"), [
    ("42", Number(42)), ("-7", Number(-7)), ("3.25", Number(Decimal("3.25"))), (".5", Number(Decimal("0.5"))),
    ("true", Boolean(True)), ("FALSE", Boolean(False)), ("null", Null()), ("NULL", Null()),
    ("2026-01-01", DateValue(date(2026, 1, 1))),
    ("2026-01-01T09:30:00Z", DateTimeValue(datetime(2026, 1, 1, 9, 30, tzinfo=UTC))),
    ("2026-01-01T09:30:00.250+01:00", DateTimeValue(datetime(2026, 1, 1, 9, 30, 0, 250000,
                                                             tzinfo=timezone(timedelta(hours=1))))),
    ("2026-01-01T09:30:00-0800", DateTimeValue(datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=-8))))),
    ("TODAY", DateLiteral("TODAY", None, Position(1, 37))),
    ("last_n_days:30", DateLiteral("LAST_N_DAYS", 30, Position(1, 37))),
])
def test_values(written: str, parsed: object) -> None:
    assert value(written) == parsed


def d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("name", "n", "start", "end"), [
    ("TODAY", None, "2026-11-27", "2026-11-28"),
    ("YESTERDAY", None, "2026-11-26", "2026-11-27"),
    ("TOMORROW", None, "2026-11-28", "2026-11-29"),
    ("THIS_WEEK", None, "2026-11-22", "2026-11-29"),  # weeks begin on Sunday
    ("LAST_WEEK", None, "2026-11-15", "2026-11-22"),
    ("NEXT_WEEK", None, "2026-11-29", "2026-12-06"),
    ("THIS_MONTH", None, "2026-11-01", "2026-12-01"),
    ("LAST_MONTH", None, "2026-10-01", "2026-11-01"),
    ("NEXT_MONTH", None, "2026-12-01", "2027-01-01"),
    ("THIS_QUARTER", None, "2026-10-01", "2027-01-01"),
    ("LAST_QUARTER", None, "2026-07-01", "2026-10-01"),
    ("THIS_YEAR", None, "2026-01-01", "2027-01-01"),
    ("LAST_YEAR", None, "2025-01-01", "2026-01-01"),
    ("NEXT_FISCAL_YEAR", None, "2027-01-01", "2028-01-01"),
    ("LAST_90_DAYS", None, "2026-08-29", "2026-11-28"),  # today and the 90 days before
    ("NEXT_90_DAYS", None, "2026-11-28", "2027-02-26"),
    ("LAST_N_DAYS", 1, "2026-11-26", "2026-11-28"),  # yesterday and today
    ("LAST_N_DAYS", 0, "2026-11-27", "2026-11-28"),
    ("NEXT_N_DAYS", 2, "2026-11-28", "2026-11-30"),  # not today
    ("N_DAYS_AGO", 3, "2026-11-24", "2026-11-25"),
    ("LAST_N_WEEKS", 2, "2026-11-08", "2026-11-22"),  # whole weeks before this one
    ("NEXT_N_WEEKS", 1, "2026-11-29", "2026-12-06"),
    ("N_WEEKS_AGO", 1, "2026-11-15", "2026-11-22"),
    ("LAST_N_MONTHS", 2, "2026-09-01", "2026-11-01"),
    ("NEXT_N_MONTHS", 2, "2026-12-01", "2027-02-01"),
    ("N_MONTHS_AGO", 11, "2025-12-01", "2026-01-01"),
    ("LAST_N_QUARTERS", 1, "2026-07-01", "2026-10-01"),
    ("N_QUARTERS_AGO", 4, "2025-10-01", "2026-01-01"),
    ("NEXT_N_YEARS", 2, "2027-01-01", "2029-01-01"),
    ("LAST_N_FISCAL_YEARS", 1, "2025-01-01", "2026-01-01"),
    ("N_YEARS_AGO", 3, "2023-01-01", "2024-01-01"),
])
def test_date_literal_ranges(name: str, n: int | None, start: str, end: str) -> None:
    assert date_range(DateLiteral(name, n, Position(1, 1)), NOW, "") == (d(start), d(end))


def test_date_literals_are_taken_in_utc_whatever_the_zone_of_now() -> None:
    late_in_new_york = datetime(2026, 11, 27, 22, 0, tzinfo=timezone(timedelta(hours=-5)))  # 03:00 UTC, the 28th
    assert date_range(DateLiteral("TODAY", None, Position(1, 1)), late_in_new_york, "") == (
        d("2026-11-28"), d("2026-11-29"))


# -- refusals ------------------------------------------------------------------------------------
ERRORS: list[tuple[str, type[SoqlError], str, tuple[int, int] | None]] = [
    # syntax, and constructs casegate does not answer, named
    ("SELECT Id FROM", MalformedQuery, "unexpected token: <EOF>", (1, 11)),
    ("SELECT FROM Case", MalformedQuery, "unexpected token: 'FROM'", (1, 8)),
    ("SELECT Id FROM Case WHERE a = 1 AND b = 2 OR c = 3", MalformedQuery, "unexpected token: 'OR'", (1, 43)),
    ("SELECT Id FROM Case WHERE NOT NOT Subject = 'x'", MalformedQuery, "unexpected token", (1, 31)),
    ("SELECT Id FROM Case WHERE Subject IN ()", MalformedQuery, "unexpected token: ')'", (1, 39)),
    ("SELECT Id FROM Case WHERE Subject = 'abc", MalformedQuery, "unterminated string literal", (1, 37)),
    ('SELECT Id FROM Case WHERE Subject = "abc"', MalformedQuery, "unexpected character: '\"'", (1, 37)),
    ("SELECT Id FROM Case WITH SECURITY_ENFORCED", MalformedQuery, "WITH clauses", (1, 21)),
    ("SELECT Id FROM Case FOR UPDATE", MalformedQuery, "FOR UPDATE not supported", (1, 21)),
    ("SELECT Id FROM Case USING SCOPE mine", MalformedQuery, "USING SCOPE not supported", (1, 21)),
    ("SELECT TYPEOF What WHEN Account THEN Phone END FROM Event", MalformedQuery, "TYPEOF not supported", (1, 20)),
    ("SELECT Id FROM Case WHERE Id IN (SELECT CaseId FROM X)", MalformedQuery, "semi-join", (1, 34)),
    ("SELECT Id FROM Case WHERE Subject = 'a\\qb'", MalformedQuery, "Illegal character sequence '\\q'", (1, 37)),
    ("SELECT Id FROM Case WHERE Subject = 'a\\u0000'", MalformedQuery, "NUL character", (1, 37)),
    ("SELECT Id FROM Case WHERE Subject = 'a\\ud800'", MalformedQuery, "unpaired surrogate", (1, 37)),
    ("SELECT Id FROM Case WHERE CreatedDate > 2026-02-30", MalformedQuery, "invalid date: 2026-02-30", (1, 41)),
    ("SELECT Id FROM Case WHERE CreatedDate > 2026-02-03T25:00:00Z", MalformedQuery, "invalid date-time", (1, 41)),
    ("SELECT Id FROM Case LIMIT -1", MalformedQuery, "LIMIT must be a non-negative integer", (1, 27)),
    ("SELECT Id FROM Case LIMIT 1.5", MalformedQuery, "LIMIT must be a non-negative integer", (1, 27)),
    ("SELECT Id FROM Case OFFSET 2001", NumberOutsideValidRange, "Maximum SOQL offset allowed is 2000", (1, 28)),
    ("SELECT Id FROM Case LIMIT 1" + "0" * 40, MalformedQuery, "number too long", (1, 27)),
    # names
    ("SELECT Id FROM Foo", InvalidType, "sObject type 'Foo' is not supported.", (1, 16)),
    ("SELECT Foo FROM Case", InvalidField, "No such column 'Foo' on entity 'Case'.", (1, 8)),
    ("SELECT Id\nFROM Case\nWHERE Foo = 1", InvalidField, "No such column 'Foo' on entity 'Case'", (3, 7)),
    ("SELECT Id, Bar.Name FROM Case", InvalidField, "Didn't understand relationship 'Bar' in field path.", (1, 12)),
    ("SELECT Contact.Foo FROM Case", InvalidField, "No such column 'Foo' on entity 'Contact'", (1, 8)),
    ("SELECT Owner.Phone FROM Case", InvalidField, "No such column 'Phone' on entity 'Name'", (1, 8)),
    ("SELECT Owner.Profile.Name FROM Case", InvalidField, "Didn't understand relationship 'Profile'", (1, 8)),
    ("SELECT Id, (SELECT Id FROM Comments) FROM Case", InvalidType,
     "Didn't understand relationship 'Comments' in FROM part of query call.", (1, 28)),
    ("SELECT Parent.Parent.Parent.Parent.Parent.Parent.Id FROM Case", InvalidField, "at most 5 relationships",
     (1, 8)),
    ("SELECT Id, id FROM Case", MalformedQuery, "duplicate field selected: Id", (1, 12)),
    ("SELECT Id x FROM Case", MalformedQuery, "alias (x) is allowed on aggregate queries only", (1, 8)),
    # values of the wrong type, operators the field does not take
    ("SELECT Id FROM Case WHERE IsClosed = 'true'", InvalidField,
     "value of filter criterion for field 'IsClosed' must be of type boolean and should not be enclosed in quotes",
     (1, 38)),
    ("SELECT Id FROM Case WHERE Subject = 5", InvalidField,
     "field 'Subject' must be of type string and should be enclosed in quotes", (1, 37)),
    ("SELECT Id FROM Case WHERE CreatedDate = '2026-01-01'", InvalidField, "must be of type dateTime", (1, 41)),
    ("SELECT Id FROM Case WHERE Contact.Email = true", InvalidField, "field 'Contact.Email' must be of type string",
     (1, 43)),
    ("SELECT Id FROM Case WHERE Subject = TODAY", InvalidField, "date literal TODAY used on field 'Subject'", (1, 37)),
    ("SELECT Id FROM Attachment WHERE BodyLength = 'big'", InvalidField, "must be of type integer", (1, 46)),
    ("SELECT Id FROM Case WHERE CreatedDate LIKE 'x'", InvalidFilterOperator, "invalid operator on dateTime field",
     (1, 44)),
    ("SELECT Id FROM Case WHERE Id LIKE '500%'", InvalidFilterOperator, "invalid operator on id field", (1, 35)),
    ("SELECT Id FROM Case WHERE IsClosed > true", InvalidFilterOperator, "invalid operator on boolean field: >",
     (1, 38)),
    ("SELECT Id FROM Case WHERE IsClosed INCLUDES ('a')", InvalidFilterOperator,
     "INCLUDES or EXCLUDES operator only valid on multipicklist field", (1, 27)),
    ("SELECT Id FROM Case WHERE CreatedDate > null", InvalidFilterOperator, "operator > cannot compare with null",
     (1, 41)),
    ("SELECT Id FROM Case WHERE Subject LIKE '" + "%" * 1001 + "'", MalformedQuery, "LIKE pattern too long",
     (1, 40)),
    ("SELECT Id FROM Attachment WHERE BodyLength > 99999999999999999999", NumberOutsideValidRange,
     "outside the range of an integer", (1, 46)),
    # long text areas are selected only
    ("SELECT Id FROM Case WHERE Description = 'x'", InvalidField, "field 'Description' can not be filtered",
     (1, 27)),
    ("SELECT Id FROM Case ORDER BY Description", InvalidField, "field 'Description' can not be sorted", (1, 30)),
    ("SELECT COUNT(Id) FROM Case GROUP BY Description", InvalidField, "can not be grouped", (1, 37)),
    # date literals
    ("SELECT Id FROM Case WHERE CreatedDate = SOMEDAY", MalformedQuery, "unexpected token: 'SOMEDAY'", (1, 41)),
    ("SELECT Id FROM Case WHERE CreatedDate = LAST_N_DAYS", MalformedQuery, "needs a number", (1, 41)),
    ("SELECT Id FROM Case WHERE CreatedDate = TODAY:3", MalformedQuery, "TODAY takes no number", (1, 41)),
    ("SELECT Id FROM Case WHERE CreatedDate = LAST_N_DAYS:100001", NumberOutsideValidRange, "0 <= n <= 100000",
     (1, 41)),
    ("SELECT Id FROM Case WHERE CreatedDate = NEXT_N_YEARS:9000", NumberOutsideValidRange, "past the calendar",
     (1, 41)),
    # aggregates and functions
    ("SELECT Subject, COUNT(Id) FROM Case GROUP BY Status", MalformedQuery,
     "Field must be grouped or aggregated: Subject", (1, 8)),
    ("SELECT COUNT(), Id FROM Case", MalformedQuery, "COUNT() must be the only element", (1, 25)),
    ("SELECT SUM(Subject) FROM Case", InvalidField, "field Subject does not support aggregate operator SUM", (1, 8)),
    ("SELECT MAX(IsClosed) FROM Case", InvalidField, "does not support aggregate operator MAX", (1, 8)),
    ("SELECT COUNT(Id, Subject) FROM Case", MalformedQuery, "COUNT() takes one field", (1, 8)),
    ("SELECT toLabel(Status) FROM Case", MalformedQuery, "unsupported function: toLabel()", (1, 8)),
    ("SELECT Id FROM Case WHERE COUNT(Id) > 1", MalformedQuery, "aggregate function COUNT()", (1, 27)),
    ("SELECT Id FROM Case WHERE CALENDAR_YEAR(CreatedDate) = 2026", MalformedQuery,
     "unsupported function: CALENDAR_YEAR()", (1, 27)),
    ("SELECT Status, COUNT(Id) FROM Case WHERE COUNT(Id) > 1 GROUP BY Status", MalformedQuery,
     "not allowed in WHERE", (1, 42)),
    ("SELECT Status FROM Case GROUP BY ROLLUP(Status)", MalformedQuery, "GROUP BY ROLLUP() is not supported",
     (1, 34)),
    ("SELECT Id FROM Case HAVING COUNT(Id) > 1", MalformedQuery, "HAVING needs GROUP BY", (1, 16)),
    ("SELECT Status, COUNT(Id) FROM Case GROUP BY Status HAVING Priority = 'x'", MalformedQuery,
     "Field must be grouped or aggregated: Priority", (1, 59)),
    ("SELECT Status, COUNT(Id) expr0, COUNT(Subject) FROM Case GROUP BY Status", MalformedQuery,
     "duplicate alias: expr0", (1, 33)),
    ("SELECT Id FROM Case ORDER BY COUNT(Id)", MalformedQuery, "aggregate function COUNT()", (1, 30)),
    ("SELECT FIELDS(ALL) FROM Case", MalformedQuery, "FIELDS function must have a LIMIT of at most 200", (1, 8)),
    ("SELECT FIELDS(EVERYTHING) FROM Case LIMIT 1", MalformedQuery, "FIELDS() takes ALL, STANDARD or CUSTOM",
     (1, 8)),
    # subqueries
    ("SELECT Id, (SELECT Id, (SELECT Id FROM Cases) FROM Cases) FROM Case", MalformedQuery,
     "a subquery inside a subquery", (1, 40)),
    ("SELECT Id, (SELECT Id FROM Cases OFFSET 1) FROM Case", MalformedQuery, "OFFSET in a subquery", (1, 28)),
    ("SELECT Id, (SELECT COUNT(Id) FROM Cases) FROM Case", MalformedQuery, "aggregates are not supported", (1, 35)),
    ("SELECT Status, (SELECT Id FROM Cases) FROM Case GROUP BY Status", MalformedQuery,
     "subquery is not allowed in an aggregate query", (1, 32)),
    ("SELECT Id, (SELECT Foo FROM CaseComments) FROM Case", InvalidField,
     "No such column 'Foo' on entity 'CaseComment'", (1, 20)),
]


@pytest.mark.parametrize(("soql", "error", "detail", "where"), ERRORS, ids=[e[0][:70] for e in ERRORS])
def test_refusals_carry_salesforce_error_codes_and_positions(soql: str, error: type[SoqlError], detail: str,
                                                             where: tuple[int, int] | None) -> None:
    with pytest.raises(error) as caught:
        translate(parse(soql), now=NOW)
    e = caught.value
    assert type(e) is error
    assert detail in e.detail
    assert e.position == (Position(*where) if where else None)
    assert e.error_code == {MalformedQuery: "MALFORMED_QUERY", InvalidField: "INVALID_FIELD",
                            InvalidType: "INVALID_TYPE", InvalidFilterOperator: "INVALID_QUERY_FILTER_OPERATOR",
                            NumberOutsideValidRange: "NUMBER_OUTSIDE_VALID_RANGE"}[error]


def test_a_message_shows_the_line_and_a_caret_under_the_mistake() -> None:
    with pytest.raises(InvalidField) as caught:
        translate(parse("SELECT Id,\n  Foo FROM Case"), now=NOW)
    assert caught.value.message.startswith("\n  Foo FROM Case\n  ^\nERROR at Row:2:Column:3\nNo such column 'Foo'")


def test_a_message_shows_only_a_window_of_a_very_long_line() -> None:
    soql = "SELECT Id FROM Case WHERE " + " OR ".join(["Subject = 'x'"] * 500) + " OR Foo = 1"
    with pytest.raises(InvalidField) as caught:
        translate(parse(soql), now=NOW)
    shown, caret = caught.value.message.split("\n")[1:3]
    assert len(shown) <= 120 and shown[len(caret) - 1:].startswith("Foo = 1")


# -- bounds ---------------------------------------------------------------------------------------
def test_the_query_length_is_bounded() -> None:
    fits = "SELECT Id FROM Case WHERE Subject = '" + "x" * (MAX_QUERY_CHARS - 38) + "'"
    assert len(fits) == MAX_QUERY_CHARS
    translate(parse(fits), now=NOW)
    with pytest.raises(MalformedQuery, match="Query too long"):
        parse(fits + " ")


def test_parentheses_nest_at_most_max_nesting_deep_outside_strings() -> None:
    def nested(depth: int) -> str:
        return "SELECT Id FROM Case WHERE " + "NOT (" * depth + "Subject = '((((((((((((((((((((((('" + ")" * depth

    translate(parse(nested(MAX_NESTING)), now=NOW)
    with pytest.raises(MalformedQuery, match=f"nested more than {MAX_NESTING} deep") as caught:
        parse(nested(MAX_NESTING + 1))
    assert caught.value.position == Position(1, 27 + 5 * MAX_NESTING + 4)
    with pytest.raises(MalformedQuery, match="nested more than"):
        parse("SELECT Id FROM Case WHERE Subject = 'x' AND " + "(" * 99_000)


def test_in_lists_values_conditions_and_fields_are_bounded() -> None:
    def in_list(n: int) -> str:
        return "SELECT Id FROM Case WHERE Subject IN (" + ",".join(["'a'"] * n) + ")"

    translate(parse(in_list(MAX_IN_VALUES)), now=NOW)
    with pytest.raises(MalformedQuery, match="too many values in a list"):
        parse(in_list(MAX_IN_VALUES + 1))
    lists = MAX_LITERALS // MAX_IN_VALUES + 1
    many = " OR ".join(f"Seq IN ({','.join(['1'] * MAX_IN_VALUES)})" for _ in range(lists))
    with pytest.raises(MalformedQuery, match="too many values in the query"):
        parse(f"SELECT Id FROM CaseFeed WHERE {many}")
    with pytest.raises(MalformedQuery, match="too many conditions"):
        parse("SELECT Id FROM Case WHERE " + " OR ".join(["Seq = 1"] * (MAX_CONDITIONS + 1)))
    with pytest.raises(MalformedQuery, match="too many fields in a SELECT list"):
        parse("SELECT " + ",".join(["Id"] * (MAX_SELECT_ITEMS + 1)) + " FROM Case")
    with pytest.raises(MalformedQuery, match="too many ORDER BY keys"):
        parse("SELECT Id FROM Case ORDER BY " + ",".join(["Id"] * 33))


def test_a_long_flat_condition_translates_without_recursion_trouble() -> None:
    plan = translate(parse("SELECT Id FROM Case WHERE " + " OR ".join(["Subject = 'x'"] * MAX_CONDITIONS)), now=NOW)
    assert str(plan.statement.compile(dialect=postgresql.dialect())).count("lower(") == 2 * MAX_CONDITIONS


# -- values are bound parameters -----------------------------------------------------------------
@pytest.mark.parametrize("hostile", [
    "' OR 1=1 --", "'; DROP TABLE \"case\"; --", "\\' OR \\'\\'=\\'", "\\\\'; SELECT 1; --", "ü\"`$$;--",
    "Robert'); DROP TABLE Students;--", "%' OR '%'='",
])
def test_injection_attempts_are_one_bound_value(hostile: str) -> None:
    written = hostile.replace("\\", "\\\\").replace("'", "\\'")
    query = parse(f"SELECT Id FROM Case WHERE Subject = '{written}' OR Subject LIKE '{written}'")
    assert isinstance(query.where, Or)
    for c in query.where.items:  # the same single value, for = and for LIKE
        assert isinstance(c, Comparison) and c.values[0].value == String(hostile, hostile.replace("\\", "\\\\"))
    plan = translate(query, now=NOW)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        compiled = plan.statement.compile(dialect=dialect)
        assert hostile not in str(compiled) and "DROP" not in str(compiled) and "1=1" not in str(compiled)
        assert hostile in compiled.params.values()


def test_string_values_never_appear_in_the_sql_text_of_any_clause() -> None:
    plan = translate(parse(
        "SELECT Id, (SELECT Id FROM CaseComments WHERE CommentBody = 'secret-1') FROM Case "
        "WHERE Subject IN ('secret-2') AND Type INCLUDES ('secret-3') AND Contact.Email LIKE 'secret-4%'"), now=NOW)
    text = str(plan.statement.compile(dialect=postgresql.dialect()))
    assert "secret" not in text
    assert plan.shape is not None
    [child] = [e for e in plan.shape.entries if isinstance(e, ChildEntry)]
    assert "secret" not in str(child.plan.statement.compile(dialect=postgresql.dialect()))


# -- the objects -----------------------------------------------------------------------------------
def test_the_objects_of_the_store_are_queryable_by_their_api_names() -> None:
    assert {o.name for o in OBJECTS.values()} == {
        "Case", "Contact", "Account", "CaseComment", "EmailMessage", "User", "Queue", "ConversationEntry",
        "CaseFeed", "Attachment", "Asset", "Knowledge__kav", "CaseArticle"}
    assert {c.name for c in OBJECTS["case"].children.values()} >= {"CaseComments", "EmailMessages", "Cases"}
    assert OBJECTS["case"].parents["owner"].targets == ("User", "Queue")
    case = OBJECTS["case"].fields
    assert (case["casenumber"].name, case["ownerid"].kind, case["createddate"].kind, case["isclosed"].kind) == (
        "CaseNumber", "id", "datetime", "boolean")
    assert case["description"].long and not case["subject"].long


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone aware"):
        translate(parse("SELECT Id FROM Case"), now=datetime(2026, 1, 1))
