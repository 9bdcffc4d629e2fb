"""The core rules of the staffing services, end to end on the real database."""

from __future__ import annotations

from datetime import date

import pytest

from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.staffing import services
from tests.staffing.conftest import ACTOR, KIEL, KRUMMWISCH, NON_MEMBER


def _assign(person, municipality, start, end, fte):
    return services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=municipality,
        starts_on=start,
        ends_on=end,
        fte=fte,
    )


def test_assignments_fill_a_secondment_but_never_exceed_it(members, person, secondment):
    first = _assign(person, members[KIEL], date(2020, 1, 1), date(2020, 6, 30), 600)
    _assign(person, members[KRUMMWISCH], date(2020, 7, 1), None, 1000)  # ends the day before: no overlap
    with pytest.raises(RuleViolation) as refused:
        _assign(person, members[KRUMMWISCH], date(2020, 6, 1), date(2020, 6, 30), 500)
    assert refused.value.field == "fte"
    assert "2020-06-01" in refused.value.message and f"#{first.id}" in refused.value.message
    _assign(person, members[KRUMMWISCH], date(2020, 6, 1), date(2020, 6, 30), 400)  # exactly 100 %


def test_targets_must_be_members_and_periods_inside_a_secondment(members, person, secondment):
    with pytest.raises(RuleViolation) as refused:
        _assign(person, members[NON_MEMBER], date(2020, 1, 1), date(2020, 1, 31), 100)
    assert refused.value.field == "municipality"
    with pytest.raises(RuleViolation) as refused:
        _assign(person, members[KIEL], date(2018, 12, 31), date(2019, 1, 31), 100)
    assert refused.value.field == "starts_on"
    with pytest.raises(RuleViolation) as refused:
        _assign(person, members[KIEL], date(2020, 1, 31), date(2020, 1, 1), 100)
    assert refused.value.field == "ends_on"


def test_secondments_of_one_person_never_overlap(person, secondment):
    with pytest.raises(RuleViolation) as refused:
        services.create_secondment(
            db.session,
            ACTOR,
            staff_member=person,
            instrument="zuweisung",
            starts_on=date(2030, 1, 1),
            ends_on=None,
            fte=500,
        )
    assert refused.value.field == "starts_on"


def test_cost_is_booked_once_per_year(members, person, secondment, open_year):
    cost = services.book_staff_cost(db.session, ACTOR, secondment, open_year.year)
    assert cost.amount_cents == 80_000_00
    with pytest.raises(RuleViolation):
        services.book_staff_cost(db.session, ACTOR, secondment, open_year.year)


def test_capacity_months(members, person, secondment):
    _assign(person, members[KIEL], date(2020, 1, 1), date(2020, 1, 31), 500)
    [row] = services.capacity(db.session, date(2020, 1, 1), date(2020, 2, 29))
    assert [(m.available, m.assigned, m.state) for m in row.months] == [
        (1000, 500, "planned"),
        (1000, 0, "free"),
    ]
