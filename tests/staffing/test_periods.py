"""Interval arithmetic of staffing (itvsh/staffing/periods.py) at its edges, without a database:
ends included, open ends, leap days (2020, 2024; 2100 is not a leap year), periods that touch
versus periods that share a day, pieces of constant load, the first over-planned day, months and
FTE-months across month and year borders, and the pro-rata year share rounded half up."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from itvsh.staffing.periods import (
    OPEN_END,
    Period,
    Piece,
    contains,
    end_of,
    first_excess,
    fte_months,
    month_end,
    month_start,
    months,
    overlap_days,
    overlaps,
    pieces,
    year_share_cents,
)

D = date


def _days(start: date, end: date | None, horizon: date) -> set[date]:
    """The days of a period as a set, an open end cut at ``horizon`` (brute force, for comparison)."""
    last = horizon if end is None else end
    return {start + timedelta(days=n) for n in range((last - start).days + 1)}


# --- overlaps, contains, overlap_days -------------------------------------------------------------


def test_a_single_day_period_has_one_day():
    day = D(2021, 3, 14)
    assert overlap_days(day, day, day, day) == 1
    assert overlaps(day, day, day, day)
    assert contains(day, day, day, day)
    assert [(p.start, p.end, p.days) for p in pieces([Period(day, day, 300)], day, day)] == [(day, day, 1)]


def test_ending_the_day_before_is_no_overlap_ending_the_same_day_is():
    assert not overlaps(D(2020, 1, 1), D(2020, 6, 30), D(2020, 7, 1), None)
    assert not overlaps(D(2020, 7, 1), None, D(2020, 1, 1), D(2020, 6, 30))  # symmetric
    assert overlaps(D(2020, 1, 1), D(2020, 7, 1), D(2020, 7, 1), None)
    assert overlap_days(D(2020, 1, 1), D(2020, 7, 1), D(2020, 7, 1), D(2020, 12, 31)) == 1
    assert overlap_days(D(2020, 1, 1), D(2020, 6, 30), D(2020, 7, 1), D(2020, 12, 31)) == 0


def test_open_ends():
    assert end_of(None) == OPEN_END == date.max
    assert end_of(D(2020, 1, 1)) == D(2020, 1, 1)
    # two open ends always overlap from the later start on
    assert overlaps(D(2019, 1, 1), None, D(2099, 12, 31), None)
    # an open period is inside an open period that starts no later, never inside a closed one
    assert contains(D(2019, 1, 1), None, D(2019, 1, 1), None)
    assert contains(D(2019, 1, 1), None, D(2030, 5, 5), D(2031, 1, 1))
    assert not contains(D(2019, 1, 1), D(2099, 12, 31), D(2020, 1, 1), None)
    assert not contains(D(2019, 1, 2), None, D(2019, 1, 1), None)
    # an open first period counts up to the end of the closed second one
    assert overlap_days(D(2020, 12, 1), None, D(2020, 1, 1), D(2020, 12, 31)) == 31
    assert overlap_days(D(2021, 1, 1), None, D(2020, 1, 1), D(2020, 12, 31)) == 0


def test_overlaps_contains_and_overlap_days_agree_with_sets_of_days():
    """Every pair of periods in a window of six days (and open ends) against plain sets of days."""
    base = D(2024, 2, 27)  # across the leap day
    horizon = base + timedelta(days=8)  # open ends are cut here, beyond every closed end
    window = [base + timedelta(days=n) for n in range(6)]
    shapes = [(s, e) for s in window for e in [*window, None] if e is None or e >= s]
    for (a_start, a_end), (b_start, b_end) in itertools.product(shapes, repeat=2):
        a, b = _days(a_start, a_end, horizon), _days(b_start, b_end, horizon)
        assert overlaps(a_start, a_end, b_start, b_end) == bool(a & b), (a_start, a_end, b_start, b_end)
        if a_end is not None or b_end is not None:  # containment of open ends: test_open_ends
            assert contains(a_start, a_end, b_start, b_end) == (b <= a), (a_start, a_end, b_start, b_end)
        if b_end is not None:
            assert overlap_days(a_start, a_end, b_start, b_end) == len(a & b)


# --- leap days ------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2020, 2024])
def test_leap_days(year):
    leap_day = D(year, 2, 29)
    assert month_end(D(year, 2, 1)) == leap_day
    assert overlap_days(leap_day, leap_day, D(year, 2, 1), D(year, 2, 29)) == 1
    assert overlap_days(D(year, 2, 28), D(year, 3, 1), D(year, 1, 1), D(year, 12, 31)) == 3
    assert fte_months(1000, D(year, 2, 1), leap_day) == 1
    assert fte_months(1000, leap_day, leap_day) == Fraction(1, 29)
    assert fte_months(1000, D(year, 1, 1), D(year, 12, 31)) == 12
    assert months(leap_day, D(year, 3, 1)) == [D(year, 2, 1), D(year, 3, 1)]
    # a full year is 366 days: one day of a full-time year of 366.00 € is exactly 1.00 €
    assert year_share_cents(366_00, 1000, leap_day, leap_day, year) == 100
    assert year_share_cents(365_00, 1000, D(year - 1, 2, 28), D(year - 1, 2, 28), year - 1) == 100


def test_2100_is_not_a_leap_year():
    with pytest.raises(ValueError):
        D(2100, 2, 29)
    assert month_end(D(2100, 2, 10)) == D(2100, 2, 28)
    assert months(D(2100, 2, 28), D(2100, 3, 1)) == [D(2100, 2, 1), D(2100, 3, 1)]
    assert fte_months(1000, D(2100, 2, 1), D(2100, 2, 28)) == 1
    assert fte_months(1000, D(2100, 2, 28), D(2100, 2, 28)) == Fraction(1, 28)
    assert overlap_days(D(2100, 1, 1), None, D(2100, 1, 1), D(2100, 12, 31)) == 365
    assert year_share_cents(365_00, 1000, D(2100, 2, 28), D(2100, 3, 1), 2100) == 200


def test_pieces_across_the_leap_day():
    pieces_ = list(
        pieces(
            [Period(D(2024, 2, 28), D(2024, 2, 29), 400, "a"), Period(D(2024, 2, 29), None, 600, "b")],
            D(2024, 2, 1),
            D(2024, 3, 2),
        )
    )
    assert [(p.start, p.end, p.total, p.refs, p.days) for p in pieces_] == [
        (D(2024, 2, 28), D(2024, 2, 28), 400, ["a"], 1),
        (D(2024, 2, 29), D(2024, 2, 29), 1000, ["a", "b"], 1),
        (D(2024, 3, 1), D(2024, 3, 2), 600, ["b"], 2),
    ]


# --- pieces and first_excess ----------------------------------------------------------------------


def test_pieces_split_at_every_change_and_leave_out_empty_days():
    periods = [
        Period(D(2020, 1, 1), D(2020, 1, 10), 300, "a"),
        Period(D(2020, 1, 5), D(2020, 1, 15), 500, "b"),
        Period(D(2020, 1, 20), None, 200, "c"),
    ]
    result = [(p.start, p.end, p.total, p.refs) for p in pieces(periods, D(2020, 1, 3), D(2020, 1, 25))]
    assert result == [
        (D(2020, 1, 3), D(2020, 1, 4), 300, ["a"]),  # cut at the window's start
        (D(2020, 1, 5), D(2020, 1, 10), 800, ["a", "b"]),
        (D(2020, 1, 11), D(2020, 1, 15), 500, ["b"]),
        # 16..19 January: nobody, left out
        (D(2020, 1, 20), D(2020, 1, 25), 200, ["c"]),  # the open end is cut at the window's end
    ]


def test_pieces_outside_the_window_and_of_nothing():
    periods = [Period(D(2020, 1, 1), D(2020, 1, 31), 500)]
    assert list(pieces(periods, D(2020, 2, 1), D(2020, 2, 29))) == []
    assert list(pieces([], D(2020, 1, 1), D(2020, 12, 31))) == []


def test_touching_periods_are_separate_pieces_and_not_an_excess():
    before = Period(D(2020, 1, 1), D(2020, 6, 30), 600, "before")
    after = Period(D(2020, 7, 1), None, 600, "after")
    result = list(pieces([before, after], D(2020, 6, 29), D(2020, 7, 2)))
    assert [(p.start, p.end, p.total) for p in result] == [
        (D(2020, 6, 29), D(2020, 6, 30), 600),
        (D(2020, 7, 1), D(2020, 7, 2), 600),
    ]
    assert first_excess([before, after], 1000, D(2020, 1, 1), None) is None


def test_an_overlap_of_one_day_is_found():
    before = Period(D(2020, 1, 1), D(2020, 7, 1), 600, "before")
    after = Period(D(2020, 7, 1), None, 600, "after")
    excess = first_excess([before, after], 1000, D(2020, 1, 1), None)
    assert excess == Piece(D(2020, 7, 1), D(2020, 7, 1), 1200, ["before", "after"])
    assert excess.days == 1


def test_first_excess_finds_the_first_day_not_the_largest_excess():
    periods = [
        Period(D(2020, 1, 1), D(2020, 12, 31), 600, "base"),
        Period(D(2020, 3, 1), D(2020, 3, 31), 500, "march"),
        Period(D(2020, 5, 1), D(2020, 5, 31), 900, "may"),
    ]
    excess = first_excess(periods, 1000, D(2020, 1, 1), D(2020, 12, 31))
    assert (excess.start, excess.end, excess.total, excess.refs) == (
        D(2020, 3, 1),
        D(2020, 3, 31),
        1100,
        ["base", "march"],
    )
    # from April on, May comes first; a window that ends before any excess finds none
    assert first_excess(periods, 1000, D(2020, 4, 1), None).start == D(2020, 5, 1)
    assert first_excess(periods, 1000, D(2020, 1, 1), D(2020, 2, 29)) is None


def test_exactly_the_limit_is_not_an_excess():
    periods = [Period(D(2020, 1, 1), None, 600), Period(D(2020, 1, 1), D(2020, 1, 31), 400)]
    assert first_excess(periods, 1000, D(2020, 1, 1), None) is None
    assert first_excess(periods, 999, D(2020, 1, 1), None).end == D(2020, 1, 31)


def test_open_ends_meet_far_in_the_future():
    periods = [Period(D(2020, 1, 1), None, 500, "now"), Period(D(2099, 12, 31), None, 600, "later")]
    excess = first_excess(periods, 1000, D(2020, 1, 1), None)
    assert (excess.start, excess.end, excess.total) == (D(2099, 12, 31), OPEN_END, 1100)
    # a closed candidate window before 2099 sees no excess
    assert first_excess(periods, 1000, D(2020, 1, 1), D(2099, 12, 30)) is None


def test_equal_periods_count_twice():
    periods = [Period(D(2020, 1, 1), D(2020, 1, 1), 600), Period(D(2020, 1, 1), D(2020, 1, 1), 600)]
    assert first_excess(periods, 1000, D(2020, 1, 1), D(2020, 1, 1)).total == 1200


# --- months and FTE-months ------------------------------------------------------------------------


def test_months_across_month_and_year_borders():
    assert months(D(2019, 11, 15), D(2020, 2, 1)) == [
        D(2019, 11, 1),
        D(2019, 12, 1),
        D(2020, 1, 1),
        D(2020, 2, 1),
    ]
    assert months(D(2020, 1, 31), D(2020, 1, 31)) == [D(2020, 1, 1)]
    assert months(D(2020, 1, 31), D(2020, 2, 1)) == [D(2020, 1, 1), D(2020, 2, 1)]
    assert len(months(D(2019, 1, 1), D(2028, 12, 31))) == 120
    assert month_start(D(2020, 12, 31)) == D(2020, 12, 1)
    assert month_end(D(2020, 12, 1)) == D(2020, 12, 31)
    assert [month_end(D(2021, m, 1)).day for m in range(1, 13)] == [
        31,
        28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]


def test_fte_months_across_borders():
    # half time from mid-December to mid-January: 16/31 + 15/31 of a month at 50 %
    assert fte_months(500, D(2019, 12, 16), D(2020, 1, 15)) == Fraction(1, 2)
    assert fte_months(1000, D(2020, 1, 31), D(2020, 2, 1)) == Fraction(1, 31) + Fraction(1, 29)
    assert fte_months(333, D(2021, 1, 1), D(2021, 12, 31)) == Fraction(333 * 12, 1000)
    assert fte_months(1000, D(2021, 4, 1), D(2021, 4, 1)) == Fraction(1, 30)
    # exact: no float anywhere
    assert isinstance(fte_months(1, D(2021, 1, 1), D(2021, 1, 1)), Fraction)


# --- the year share of an annual amount -----------------------------------------------------------


def _reference_cents(annual: int, share: int, start: date, end: date | None, year: int) -> int:
    first, last = D(year, 1, 1), D(year, 12, 31)
    held = len(_days(start, end, last) & _days(first, last, last))
    exact = Decimal(annual * share * held) / Decimal(1000 * ((last - first).days + 1))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_year_share_rounds_half_up():
    year = (D(2021, 1, 1), D(2021, 12, 31))
    assert year_share_cents(3, 500, *year, 2021) == 2  # 1.5 -> 2
    assert year_share_cents(5, 100, *year, 2021) == 1  # 0.5 -> 1
    assert year_share_cents(1, 499, *year, 2021) == 0  # 0.499 -> 0
    assert year_share_cents(1, 500, *year, 2021) == 1  # 0.5 -> 1
    assert year_share_cents(80_000_00, 1000, *year, 2021) == 80_000_00
    # one day of 1,000,001 cents a year: 2739.7 -> 2740
    assert year_share_cents(1_000_001, 1000, D(2021, 6, 1), D(2021, 6, 1), 2021) == 2740


def test_year_share_of_periods_around_the_year():
    assert year_share_cents(80_000_00, 1000, D(2019, 1, 1), None, 2021) == 80_000_00
    assert year_share_cents(80_000_00, 1000, D(2022, 1, 1), None, 2021) == 0
    assert year_share_cents(80_000_00, 1000, D(2019, 1, 1), D(2020, 12, 31), 2021) == 0
    # from 1 July at half time: 184 of 365 days of 40,000.00 €
    assert year_share_cents(80_000_00, 500, D(2021, 7, 1), None, 2021) == 2_016_438
    assert year_share_cents(80_000_00, 500, D(2021, 7, 1), None, 2021) == _reference_cents(
        80_000_00, 500, D(2021, 7, 1), None, 2021
    )
    # the same in a leap year: 184 of 366 days
    assert year_share_cents(80_000_00, 500, D(2024, 7, 1), None, 2024) == 2_010_929


@pytest.mark.parametrize("year", [2020, 2021, 2024, 2100])
def test_year_share_matches_decimal_half_up(year):
    for annual, share, start, end in itertools.product(
        [1, 7, 99_999, 80_000_00, 123_456_789],
        [1, 333, 500, 999, 1000],
        [D(year - 1, 12, 31), D(year, 2, 28), D(year, 7, 1)],
        [None, D(year, 3, 1), D(year, 12, 31)],
    ):
        if end is not None and end < start:
            continue
        assert year_share_cents(annual, share, start, end, year) == _reference_cents(
            annual, share, start, end, year
        ), (annual, share, start, end, year)
