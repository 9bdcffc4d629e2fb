"""Property-based tests of the capacity rule (issue 5), checked by brute force -- day by day, with
plain sets of days -- independent of itvsh/staffing/periods.py:

- for any sequence of proposed assignments and changes (in, around and across a secondment, some
  open-ended), the ones the service accepts never make a day's sum exceed the secondment's share,
  and every refusal is right: an over-planned refusal names a day on which the sum really would
  exceed it, the first such day, and the assignments on it; any other refusal names a rule the
  proposal really breaks;
- first_excess finds the first day on which random periods exceed a limit, and its run of days.

Examples are kept modest (a small date range, 40-60 examples) so that the suite stays fast."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import Assignment
from itvsh.staffing.periods import OPEN_END, Period, first_excess
from tests.staffing.conftest import ACTOR, KIEL, KRUMMWISCH

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE = date(2020, 1, 1)  # offsets count days from here; the range includes the leap day
HORIZON = 150  # beyond every closed end: from here on nothing changes any more
SECONDMENT_START, SECONDMENT_END = 20, 80  # 2020-01-21 .. 2020-03-21 (or open)

_emails = itertools.count(1)


def day(offset: int) -> date:
    return BASE + timedelta(days=offset)


def covers(start: date, end: date | None, on: date) -> bool:
    return start <= on and (end is None or on <= end)


def load_on(assignments: dict, on: date, without=None) -> int:
    """The sum of the shares held on ``on`` (brute force)."""
    return sum(
        fte for key, (start, end, fte) in assignments.items() if key != without and covers(start, end, on)
    )


@pytest.fixture
def english(app):
    with app.test_request_context("/"), force_locale("en"):
        yield


# --- the service against brute force --------------------------------------------------------------

limits = st.one_of(st.sampled_from([500, 750, 1000]), st.integers(1, 1000))


def shares(limit: int):
    """Shares that fill the limit exactly or miss it by one per mille, most of the time."""
    half = max(1, limit // 2)
    near = {1, half, limit - half or 1, min(limit - half + 1, 1000), limit, max(limit - 1, 1), 250, 500, 1000}
    return st.one_of(st.sampled_from(sorted(near)), st.integers(1, 1000))


# A period is placed freely, or against an accepted one (the ``anchor``-th): starting on its last
# day or the day after, or ending on its first day or the day before -- the edges that matter.
PLACEMENTS = ["free", "on_its_end", "after_its_end", "to_its_start", "before_its_start"]
periods = st.tuples(
    st.sampled_from(PLACEMENTS),
    st.integers(0, 20),  # anchor
    st.one_of(st.integers(2, 18).map(lambda n: 5 * n), st.integers(10, 90)),  # free: first day's offset
    st.one_of(st.none(), st.sampled_from([0, 4, 5, 9, 10, 60]), st.integers(0, 45)),  # length - 1
)


@st.composite
def proposals(draw):
    """The secondment's share, whether it is open-ended, and the operations to try on it."""
    limit = draw(limits)
    operation = st.tuples(st.sampled_from(["create", "update"]), st.integers(0, 20), periods, shares(limit))
    return limit, draw(st.booleans()), draw(st.lists(operation, min_size=1, max_size=10))


def _place(placement: str, anchor: int, offset: int, length: int | None, accepted: dict):
    """The proposal's first and last day."""
    closed = [accepted[key] for key in sorted(accepted) if accepted[key][1] is not None]
    if placement in ("on_its_end", "after_its_end") and closed:
        start = closed[anchor % len(closed)][1] + timedelta(days=placement == "after_its_end")
        return start, None if length is None else start + timedelta(days=length)
    if placement in ("to_its_start", "before_its_start") and accepted:
        end = accepted[sorted(accepted)[anchor % len(accepted)]][0]
        end -= timedelta(days=placement == "before_its_start")
        return end - timedelta(days=length or 0), end
    return day(offset), None if length is None else day(offset + length)


def _secondment_days(open_end: bool) -> tuple[date, date | None]:
    return day(SECONDMENT_START), None if open_end else day(SECONDMENT_END)


def _check_refusal(refusal: RuleViolation, accepted: dict, own, start, end, fte, limit, seconded) -> None:
    """A refusal must be right: the rule it names is really broken by the proposal."""
    s_start, s_end = seconded
    inside = s_start <= start and (s_end is None or (end is not None and end <= s_end))
    if refusal.field == "fte":
        assert inside, refusal.message
        match = re.match(r"On (\d{4}-\d{2}-\d{2}) ", refusal.message)
        assert match, refusal.message
        named_day = date.fromisoformat(match.group(1))
        assert covers(start, end, named_day)
        # on the named day the sum really exceeds the limit ...
        assert load_on(accepted, named_day, without=own) + fte > limit, refusal.message
        # ... and on no earlier day of the proposal
        on = start
        while on < named_day:
            assert load_on(accepted, on, without=own) + fte <= limit, (on, refusal.message)
            on += timedelta(days=1)
        # the conflicting assignments named are the others held on that day (not the changed one)
        held = {key for key, (a, b, _) in accepted.items() if key != own and covers(a, b, named_day)}
        assert {int(n) for n in re.findall(r"#(\d+)", refusal.message)} == held, refusal.message
        assert "Nothing was changed." in refusal.message
    elif refusal.field == "starts_on":
        assert not (s_start <= start and (s_end is None or start <= s_end)), refusal.message
    elif refusal.field == "ends_on":
        assert s_start <= start and not inside, refusal.message
    else:
        pytest.fail(f"unexpected refusal on {refusal.field}: {refusal.message}")


def _check_accepted(accepted: dict, limit: int, seconded) -> None:
    """No day of the accepted set exceeds the limit; every assignment lies in the secondment."""
    s_start, s_end = seconded
    for start, end, _fte in accepted.values():
        assert s_start <= start and (s_end is None or (end is not None and end <= s_end))
    for offset in range(HORIZON + 1):
        assert load_on(accepted, day(offset)) <= limit, day(offset)


@PROPERTY
@given(proposal=proposals())
def test_accepted_assignments_never_exceed_the_secondment(english, members, proposal):
    limit, open_end, ops = proposal
    set_scope(db.session, ALL)
    targets = [members[KIEL], members[KRUMMWISCH]]
    person = services.create_staff_member(
        db.session, ACTOR, name="Eva Eigenschaft", work_email=f"eva{next(_emails)}@itv-sh.example"
    )
    seconded = _secondment_days(open_end)
    services.create_secondment(
        db.session,
        ACTOR,
        staff_member=person,
        instrument="zuweisung",
        starts_on=seconded[0],
        ends_on=seconded[1],
        fte=limit,
    )
    accepted: dict[int, tuple[date, date | None, int]] = {}
    objects: dict[int, Assignment] = {}
    for n, (kind, pick, (placement, anchor, offset, length), fte) in enumerate(ops):
        start, end = _place(placement, anchor, offset, length, accepted)
        own = sorted(accepted)[pick % len(accepted)] if kind == "update" and accepted else None
        try:
            if own is None:
                assignment = services.create_assignment(
                    db.session,
                    ACTOR,
                    staff_member=person,
                    municipality=targets[n % 2],
                    starts_on=start,
                    ends_on=end,
                    fte=fte,
                )
            else:
                assignment = services.update_assignment(
                    db.session, ACTOR, objects[own], starts_on=start, ends_on=end, fte=fte
                )
        except RuleViolation as refusal:
            event(f"refused on {refusal.field}")
            _check_refusal(refusal, accepted, own, start, end, fte, limit, seconded)
            continue
        event("accepted an update" if own else "accepted a new one")
        accepted[assignment.id] = (start, end, fte)
        objects[assignment.id] = assignment
        _check_accepted(accepted, limit, seconded)
    db.session.commit()
    set_scope(db.session, ALL)
    # what the database holds is exactly the accepted set
    stored = db.session.execute(
        select(Assignment.id, Assignment.starts_on, Assignment.ends_on, Assignment.fte).where(
            Assignment.staff_member_id == person.id
        )
    ).all()
    assert {row.id: (row.starts_on, row.ends_on, row.fte) for row in stored} == accepted


# --- first_excess against brute force -------------------------------------------------------------

random_periods = st.lists(
    st.tuples(st.integers(0, 60), st.one_of(st.none(), st.integers(0, 30)), st.integers(1, 700)),
    min_size=0,
    max_size=7,
)


def _active(periods_: list[Period], on: date) -> list[int]:
    return sorted(p.ref for p in periods_ if covers(p.start, p.end, on))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    raw=random_periods,
    limit=st.integers(0, 1500),
    window_start=st.integers(0, 70),
    window_length=st.one_of(st.none(), st.integers(0, 40)),
)
def test_first_excess_agrees_with_brute_force(raw, limit, window_start, window_length):
    periods_ = [
        Period(day(s), None if length is None else day(s + length), share, ref)
        for ref, (s, length, share) in enumerate(raw)
    ]
    start = day(window_start)
    end = None if window_length is None else day(window_start + window_length)
    last = end if end is not None else day(120)  # beyond every closed end
    shares_ = {p.ref: p.share for p in periods_}

    def total(on: date) -> int:
        return sum(shares_[ref] for ref in _active(periods_, on))

    expected, on = None, start
    while on <= last:
        if total(on) > limit:
            expected = on
            break
        on += timedelta(days=1)

    excess = first_excess(periods_, limit, start, end)
    if expected is None:
        assert excess is None
        return
    assert excess is not None and excess.start == expected
    assert excess.total == total(expected)
    assert sorted(excess.refs) == _active(periods_, expected)
    # the run: the same periods on every day of it, and a change (or the window's end) after it
    on = expected
    while on < min(excess.end, last):
        on += timedelta(days=1)
        assert _active(periods_, on) == _active(periods_, expected), on
    if excess.end == OPEN_END:
        assert end is None and _active(periods_, last) == _active(periods_, expected)
    elif excess.end < last:
        assert _active(periods_, excess.end + timedelta(days=1)) != _active(periods_, expected)
    else:
        assert excess.end == end
