"""Joda-Time's ``Period`` between two instants, and an instant minus it, in UTC's ISO calendar.

Snowplow's enrich 3.9.0 derives ``derived_tstamp`` as ``collector_tstamp.minus(new Period(dvce_created_tstamp,
dvce_sent_tstamp))`` (``EventEnrichments.getDerivedTimestamp``, Joda-Time 2.10): a period of years, months,
weeks, days, hours, minutes, seconds and milliseconds, each taken in turn as calendar fields, not a count of
milliseconds.  A device clock a month or more out therefore moves the derived time by calendar months and
years (one month back from 31 March is 28 or 29 February), and a period of centuries can end before year 0.
This module reproduces those rules on epoch milliseconds (the proleptic Gregorian calendar with a year 0,
as Joda's ISO chronology has it):

- the difference in years or months is the whole number of them from the earlier instant to the later,
  comparing what is left of the year or month (for years, 29 February counted as 28 February in a year
  that has none; for months, an instant on a month's last day counting as the same day of a longer month);
- adding years keeps the day of the year (29 February becomes 28 February), adding months keeps the day of
  the month where that month has it and takes its last day where it does not, and both keep the time of day;
- weeks, days, hours, minutes, seconds and milliseconds are fixed lengths, divided with truncation.
"""
from __future__ import annotations

from calendar import isleap

from ext.javanum import civil_date, days_from_civil, days_in_month

__all__ = ["SHORTEST_MONTH", "minus_period_between"]

_DAY = 86_400_000
_FEB_29 = (31 + 28) * _DAY  #: from a year's start to 29 February, in a leap year
_PRECISE = (7 * _DAY, _DAY, 3_600_000, 60_000, 1_000, 1)  #: weeks, days, hours, minutes, seconds, millis
#: below this span no calendar month or year fits, and the period is its milliseconds (a caller may subtract
#: them instead of calling :func:`minus_period_between`)
SHORTEST_MONTH = 28 * _DAY


def _ymd(instant: int) -> tuple[int, int, int, int]:
    """(year, month, day, milliseconds of the day)."""
    days, millis = divmod(instant, _DAY)
    return (*civil_date(days), millis)


def _at(year: int, month: int, day: int, millis: int) -> int:
    return days_from_civil(year, month, day) * _DAY + millis


def _years_between(minuend: int, subtrahend: int) -> int:
    if minuend < subtrahend:
        return -_years_between(subtrahend, minuend)
    minuend_year, subtrahend_year = _ymd(minuend)[0], _ymd(subtrahend)[0]
    minuend_rem = minuend - _at(minuend_year, 1, 1, 0)
    subtrahend_rem = subtrahend - _at(subtrahend_year, 1, 1, 0)
    if subtrahend_rem >= _FEB_29:  # a leap day on one side only
        if isleap(subtrahend_year):
            if not isleap(minuend_year):
                subtrahend_rem -= _DAY
        elif minuend_rem >= _FEB_29 and isleap(minuend_year):
            minuend_rem -= _DAY
    difference = minuend_year - subtrahend_year
    return difference - 1 if minuend_rem < subtrahend_rem else difference


def _add_years(instant: int, years: int) -> int:
    year, month, day, millis = _ymd(instant)
    new_year = year + years
    day_of_year = days_from_civil(year, month, day) - days_from_civil(year, 1, 1) + 1
    if day_of_year > 31 + 28:  # after 28 February: the leap day comes or goes
        if isleap(year):
            if not isleap(new_year):
                day_of_year -= 1
        elif isleap(new_year):
            day_of_year += 1
    return (days_from_civil(new_year, 1, 1) + day_of_year - 1) * _DAY + millis


def _months_between(minuend: int, subtrahend: int) -> int:
    if minuend < subtrahend:
        return -_months_between(subtrahend, minuend)
    m_year, m_month, m_day, _ = _ymd(minuend)
    s_year, s_month, s_day, s_millis = _ymd(subtrahend)
    difference = (m_year - s_year) * 12 + m_month - s_month
    if m_day == days_in_month(m_year, m_month) and s_day > m_day:  # the minuend on its month's last day
        subtrahend = _at(s_year, s_month, m_day, s_millis)
    minuend_rem = minuend - _at(m_year, m_month, 1, 0)
    subtrahend_rem = subtrahend - _at(s_year, s_month, 1, 0)
    return difference - 1 if minuend_rem < subtrahend_rem else difference


def _add_months(instant: int, months: int) -> int:
    year, month, day, millis = _ymd(instant)
    new_year, month_index = divmod(year * 12 + month - 1 + months, 12)
    new_month = month_index + 1
    return _at(new_year, new_month, min(day, days_in_month(new_year, new_month)), millis)


def _truncated(a: int, b: int) -> int:
    """``a / b`` as Java's long division rounds: toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def minus_period_between(instant: int, start: int, end: int) -> int:
    """``instant`` minus Joda's standard ``Period(start, end)`` (epoch milliseconds, UTC)."""
    values = []
    for between, add in ((_years_between, _add_years), (_months_between, _add_months)):
        value = between(end, start)
        if value:
            start = add(start, value)
        values.append(value)
    for unit in _PRECISE:
        value = _truncated(end - start, unit)
        start += value * unit
        values.append(value)
    instant = _add_years(instant, -values[0]) if values[0] else instant
    instant = _add_months(instant, -values[1]) if values[1] else instant
    for value, unit in zip(values[2:], _PRECISE):
        instant -= value * unit
    return instant
