"""Day-interval arithmetic for staffing: periods with both ends included and open ends, the first
day a set of shares exceeds a limit, and pieces of constant load for the capacity views.

Pure functions over ``(start, end, share, ref)`` tuples (``end`` None = open), no database. The
sweeps cost O(n log n) in the number of periods, never a loop over days.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction

OPEN_END = date.max


def end_of(end: date | None) -> date:
    """An end as a day (an open end is the last representable day)."""
    return OPEN_END if end is None else end


def overlaps(a_start: date, a_end: date | None, b_start: date, b_end: date | None) -> bool:
    """Whether two periods share at least one day (ends included)."""
    return a_start <= end_of(b_end) and b_start <= end_of(a_end)


def contains(outer_start: date, outer_end: date | None, start: date, end: date | None) -> bool:
    """Whether [start, end] lies inside [outer_start, outer_end]."""
    return outer_start <= start and end_of(end) <= end_of(outer_end)


def overlap_days(a_start: date, a_end: date | None, b_start: date, b_end: date) -> int:
    """Number of days both periods share (``b`` is closed)."""
    first = max(a_start, b_start)
    last = min(end_of(a_end), b_end)
    return (last - first).days + 1 if first <= last else 0


def _day_after(day: date) -> date | None:
    return None if day == OPEN_END else day + timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """A share (per mille) held from ``start`` to ``end`` (both included; None = open)."""

    start: date
    end: date | None
    share: int
    ref: object = None


@dataclass
class Piece:
    """Days ``start``..``end`` on which the same periods apply: their total share and their refs."""

    start: date
    end: date
    total: int
    refs: list = field(default_factory=list)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def pieces(periods: Iterable[Period], start: date, end: date) -> Iterator[Piece]:
    """Split ``start``..``end`` into maximal runs of days with the same set of periods; days with
    no period are left out."""
    boundaries: dict[date, list[tuple[int, Period]]] = {}
    for period in periods:
        first = max(period.start, start)
        last = min(end_of(period.end), end)
        if first > last:
            continue
        boundaries.setdefault(first, []).append((+1, period))
        after = _day_after(last)
        if after is not None:
            boundaries.setdefault(after, []).append((-1, period))
    active: dict[int, Period] = {}
    days = sorted(boundaries)
    for index, day in enumerate(days):
        for sign, period in boundaries[day]:
            if sign > 0:
                active[id(period)] = period
            else:
                active.pop(id(period), None)
        if not active or day > end:
            continue
        next_day = days[index + 1] if index + 1 < len(days) else _day_after(end)
        last = min(end, next_day - timedelta(days=1)) if next_day is not None else end
        ordered = sorted(active.values(), key=lambda p: (p.start, getattr(p.ref, "id", None) or 0))
        yield Piece(day, last, sum(p.share for p in ordered), [p.ref for p in ordered])


def first_excess(periods: Iterable[Period], limit: int, start: date, end: date | None) -> Piece | None:
    """The first run of days in ``start``..``end`` on which the shares add up to more than
    ``limit``, or None."""
    for piece in pieces(periods, start, end_of(end)):
        if piece.total > limit:
            return piece
    return None


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def months(start: date, end: date) -> list[date]:
    """The first days of the months from ``start``'s to ``end``'s, both included."""
    result, current = [], month_start(start)
    while current <= end:
        result.append(current)
        current = month_end(current) + timedelta(days=1)
    return result


def fte_months(share: int, start: date, end: date) -> Fraction:
    """Full-time-equivalent months of a share (per mille) held on ``start``..``end`` (closed):
    each month counts the days held over the days it has."""
    total = Fraction(0)
    for first in months(start, end):
        last = month_end(first)
        days = overlap_days(start, end, first, last)
        total += Fraction(share * days, 1000 * last.day)
    return total


def year_share_cents(annual_cents: int, share: int, start: date, end: date | None, year: int) -> int:
    """A yearly amount for a share (per mille) held in ``year`` on the days of ``start``..``end``:
    ``annual x share/1000 x days/days_in_year``, rounded half up to whole cents."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    days = overlap_days(start, end, first, last)
    numerator = annual_cents * share * days
    denominator = 1000 * ((last - first).days + 1)
    return (2 * numerator + denominator) // (2 * denominator)
