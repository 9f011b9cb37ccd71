"""SOQL date literals (`TODAY`, `LAST_N_DAYS:30`, `THIS_QUARTER` ...) as ranges of instants
[start, end) in UTC, relative to a given `now`.

Salesforce evaluates them in the user's time zone; casegate's store keeps UTC and has no users' zones,
so days begin at 00:00 UTC. Weeks begin on Sunday (Salesforce's default, en_US locale). The fiscal year
is the calendar year (Salesforce's default), so FISCAL_QUARTER and FISCAL_YEAR literals equal the
calendar ones. A date value (`2026-01-01`) is the range of that day.
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from casegate.store.soql.errors import MalformedQuery, NumberOutsideValidRange
from casegate.store.soql.syntax import DateLiteral

Range = tuple[datetime, datetime]
MAX_N = 100_000
"""The largest n of `LAST_N_DAYS:n` and its kind (Salesforce's own bound is not documented)."""


def day_range(d: date) -> Range:
    start = datetime.combine(d, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _week_start(d: date) -> date:
    return d - timedelta(days=(d.weekday() + 1) % 7)  # Monday is 0; Sunday begins the week


def _add_months(d: date, months: int) -> date:
    """The first of the month `months` after d's month."""
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _quarter_start(d: date) -> date:
    return date(d.year, (d.month - 1) // 3 * 3 + 1, 1)


def _year_start(d: date) -> date:
    return date(d.year, 1, 1)


def _span(start: date, end: date) -> Range:
    return day_range(start)[0], day_range(end)[0]


Unit = tuple[Callable[[date], date], Callable[[date, int], date]]
"""Where the unit holding a day begins, and that start moved by n units."""
_UNITS: dict[str, Unit] = {
    "DAY": (lambda d: d, lambda d, n: d + timedelta(days=n)),
    "WEEK": (_week_start, lambda d, n: d + timedelta(weeks=n)),
    "MONTH": (_month_start, _add_months),
    "QUARTER": (_quarter_start, lambda d, n: _add_months(d, 3 * n)),
    "YEAR": (_year_start, lambda d, n: _add_months(d, 12 * n)),
}
_PLAIN: dict[str, tuple[str, int]] = {"TODAY": ("DAY", 0), "YESTERDAY": ("DAY", -1), "TOMORROW": ("DAY", 1)}
"""Literals without n: the unit and how many units from the current one."""
_WITH_N: dict[str, tuple[str, str]] = {}
"""Literals with n (`LAST_N_DAYS:n`): LAST, NEXT or AGO, and the unit."""
for _unit in _UNITS:
    for _fiscal in ("", "FISCAL_") if _unit in ("QUARTER", "YEAR") else ("",):
        if _unit != "DAY":
            _PLAIN.update({f"THIS_{_fiscal}{_unit}": (_unit, 0), f"LAST_{_fiscal}{_unit}": (_unit, -1),
                           f"NEXT_{_fiscal}{_unit}": (_unit, 1)})
        _WITH_N.update({f"LAST_N_{_fiscal}{_unit}S": ("LAST", _unit), f"NEXT_N_{_fiscal}{_unit}S": ("NEXT", _unit),
                        f"N_{_fiscal}{_unit}S_AGO": ("AGO", _unit)})
_NINETY = {"LAST_90_DAYS": "LAST_N_DAYS", "NEXT_90_DAYS": "NEXT_N_DAYS"}


def date_range(literal: DateLiteral, now: datetime, source: str) -> Range:
    """The instants `literal` stands for at `now` (aware, any zone: taken in UTC)."""
    today = now.astimezone(UTC).date()
    name, n = literal.name, literal.n
    if name in _NINETY and n is None:
        name, n = _NINETY[name], 90
    if name in _PLAIN and n is None:
        unit, shift = _PLAIN[name]
        begin, move = _UNITS[unit]
        start = move(begin(today), shift)
        return _span(start, move(start, 1))
    if name in _WITH_N and n is not None:
        if not 0 <= n <= MAX_N:
            raise NumberOutsideValidRange(f"{name}:n needs 0 <= n <= {MAX_N}, found {n}", literal.position, source)
        try:
            return _n_range(*_WITH_N[name], n, today)
        except (OverflowError, ValueError):
            raise NumberOutsideValidRange(f"{name}:{n} reaches past the calendar", literal.position,
                                          source) from None
    if name in _WITH_N:
        raise MalformedQuery(f"date literal {name} needs a number: {name}:n", literal.position, source)
    if name in _PLAIN or name in _NINETY:
        raise MalformedQuery(f"date literal {name} takes no number", literal.position, source)
    raise MalformedQuery(f"unexpected token: '{literal.name}' (not a value or a date literal)", literal.position,
                         source)


def _n_range(kind: str, unit: str, n: int, today: date) -> Range:
    begin, move = _UNITS[unit]
    current = begin(today)
    if kind == "AGO":  # the one unit n units back
        start = move(current, -n)
        return _span(start, move(start, 1))
    if kind == "NEXT":  # from the next unit on, n units
        return _span(move(current, 1), move(current, 1 + n))
    if unit == "DAY":  # LAST_N_DAYS:n counts today and the n days before it
        return _span(move(current, -n), move(current, 1))
    return _span(move(current, -n), current)  # LAST_N_WEEKS:n and longer end where this unit begins
