"""The staffing demo, loaded with the whole demo on a fresh migrated database with a fixed today: two
people seconded by the Land from 2019, their assignments through the services (no day over-planned,
each inside a secondment), the cases the rules are about (full time, part time split between two
members, a gap, one assignment ending the day before the next starts), nothing starting after
today, assignments for every demo login's tenant, the federation-borne cost booked into the open
year with the funding limits kept, a second run that makes nothing, and the Kiel login's portal
page naming a person and no cost."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from itvsh import create_app
from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import DEMO_LOGINS, load_demo
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, AllocationStatus, Booking, BudgetCategory, FiscalYear, YearStatus
from itvsh.staffing import services
from itvsh.staffing.demo import ASSIGNMENTS, load_staffing
from itvsh.staffing.models import Assignment, CostBearer, Secondment, StaffCost, StaffMember
from itvsh.staffing.periods import Period, first_excess
from itvsh.tenants.models import Municipality
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for
from tests.tenants.test_query_counts import client_for

TODAY = date(2025, 5, 15)  # the demo's fixed "today": 2019-2024 closed, 2025 open
MODELS = (StaffMember, Secondment, Assignment, StaffCost, Allocation, Booking, AuditEvent)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A fresh database with the demo loaded once (committed); tests read it in an app context."""
    url = migrated_database(tmp_path_factory, "staffdemo")
    app = create_app(config_for(url))
    with app.app_context():
        created = load_demo(db.session, today=TODAY)
        db.session.commit()
        db.session.remove()
    yield app, created
    with app.app_context():
        db.engine.dispose()
    drop_database(url)


@pytest.fixture
def session(demo):
    app, _created = demo
    with app.app_context():
        set_scope(db.session, ALL)
        yield db.session
        db.session.rollback()
        db.session.remove()


def _count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _people(session) -> dict[str, StaffMember]:
    return {m.name: m for m in session.execute(select(StaffMember)).scalars()}


def test_the_demo_reports_what_it_made(demo, session):
    _app, created = demo
    started = sum(1 for plan in ASSIGNMENTS if plan[2] <= TODAY)
    assert started < len(ASSIGNMENTS)  # some planned ones start after the fixed today
    for item in ("2 staff members", "3 secondments", f"{started} assignments"):
        assert item in created
    assert (_count(session, StaffMember), _count(session, Secondment)) == (2, 3)
    assert _count(session, Assignment) == started


def test_a_second_run_creates_nothing(demo, session):
    before = {model: _count(session, model) for model in MODELS}
    assert load_staffing(session, TODAY) == []
    assert load_demo(session, today=TODAY) == []
    session.flush()
    assert {model: _count(session, model) for model in MODELS} == before


def test_the_two_people_and_their_secondments(session):
    people = _people(session)
    assert set(people) == {"Anna Petersen", "Jens Hansen"}
    for person in people.values():
        assert person.work_email.endswith("@itv-sh.example")
        assert person.home_authority and person.annual_cost_cents > 0
    anna = [
        (s.instrument, s.starts_on, s.ends_on, s.fte, s.cost_bearer)
        for s in people["Anna Petersen"].secondments
    ]
    assert anna == [("abordnung", date(2019, 1, 1), None, 1000, "land")]
    jens = [
        (s.instrument, s.starts_on, s.ends_on, s.fte, s.cost_bearer)
        for s in people["Jens Hansen"].secondments
    ]
    assert jens == [
        ("zuweisung", date(2019, 1, 1), date(2020, 12, 31), 1000, "land"),
        ("personalgestellung", date(2021, 7, 1), None, 500, "federation"),
    ]


def test_no_day_is_over_planned_and_every_assignment_lies_in_its_secondment(session):
    people = list(_people(session).values())
    assignments = session.execute(select(Assignment)).scalars().all()
    for person in people:
        for secondment in person.secondments:
            own = [a for a in assignments if a.secondment_id == secondment.id]
            assert own, secondment
            for a in own:
                assert a.staff_member_id == person.id
                assert secondment.starts_on <= a.starts_on
                assert secondment.ends_on is None or (
                    a.ends_on is not None and a.ends_on <= secondment.ends_on
                )
            periods = [Period(a.starts_on, a.ends_on, a.fte, a) for a in own]
            assert first_excess(periods, secondment.fte, secondment.starts_on, secondment.ends_on) is None
    # and as the capacity view sees it, month by month
    for row in services.capacity(session, date(2019, 1, 1), date(2027, 12, 31), people):
        assert not [m.month for m in row.months if m.over or m.state == "over"], row.staff_member.name


def test_the_demo_exercises_the_rules(session):
    people = _people(session)
    capacity = {
        row.staff_member.name: {m.month: m for m in row.months}
        for row in services.capacity(session, date(2019, 1, 1), date(2025, 12, 31), list(people.values()))
    }
    anna, jens = capacity["Anna Petersen"], capacity["Jens Hansen"]
    # full time on one member; a split between two members; a quarter with nothing assigned
    assert (anna[date(2019, 3, 1)].available, anna[date(2019, 3, 1)].assigned) == (1000, 1000)
    assert anna[date(2022, 3, 1)].state == "full"
    assert [anna[date(2023, m, 1)].state for m in (1, 2, 3)] == ["free"] * 3
    # Jens: no secondment in the first half of 2021, then half time
    assert [jens[date(2021, m, 1)].state for m in range(1, 7)] == ["none"] * 6
    assert jens[date(2021, 8, 1)].available == 500
    assignments = session.execute(select(Assignment)).scalars().all()
    by_person: dict[int, list[Assignment]] = {}
    for a in assignments:
        by_person.setdefault(a.staff_member_id, []).append(a)
    split = any(
        a.municipality_id != b.municipality_id and a.starts_on == b.starts_on and a.fte + b.fte == 1000
        for own in by_person.values()
        for a in own
        for b in own
        if a.id < b.id
    )
    assert split, "a person split between two members"
    back_to_back = any(
        a.ends_on is not None and a.ends_on + timedelta(days=1) == b.starts_on
        for own in by_person.values()
        for a in own
        for b in own
    )
    assert back_to_back, "an assignment ending the day before the next starts"
    assert any(a.ends_on is None for a in assignments) and any(
        a.ends_on is not None and a.ends_on > TODAY for a in assignments
    )  # open ends and plans running into the future


def test_nothing_starts_after_today_and_every_demo_tenant_has_staff(session):
    assert session.execute(select(func.max(Assignment.starts_on))).scalar_one() <= TODAY
    assert session.execute(select(func.max(Secondment.starts_on))).scalar_one() <= TODAY
    keys = {tenant for _email, role, tenant, _password in DEMO_LOGINS if role == "municipality"}
    assigned = set(
        session.execute(
            select(Municipality.key).join(Assignment, Assignment.municipality_id == Municipality.id)
        ).scalars()
    )
    assert keys <= assigned


def test_the_federation_borne_cost_is_booked_into_each_year_of_the_secondment(session):
    """The funding demo books it into every year from the secondment's start (2021-07-01) before
    closing the year: the past years' cost is paid in full, the current year's quarter by quarter."""
    (secondment,) = session.execute(
        select(Secondment).where(Secondment.cost_bearer == CostBearer.FEDERATION.value)
    ).scalars()
    costs = session.execute(select(StaffCost).order_by(StaffCost.id)).scalars().all()
    years = [session.get(FiscalYear, cost.fiscal_year_id) for cost in costs]
    assert [year.year for year in years] == list(range(2021, TODAY.year + 1))
    for cost, year in zip(costs, years, strict=True):
        assert cost.secondment_id == secondment.id
        assert cost.amount_cents == services.staff_cost_cents(secondment, year.year) > 0
        allocation = session.get(Allocation, cost.allocation_id)
        assert allocation.recipient_kind == "federation" and allocation.municipality_id is None
        category = session.get(BudgetCategory, allocation.category_id)
        assert category.code == "personal" and category.fiscal_year_id == year.id
        assert secondment.staff_member.name not in allocation.purpose  # the pseudonym, not the name
        figures = ledger.allocation_figures(session, allocation)
        if year.year < TODAY.year:
            assert year.status == YearStatus.CLOSED.value
            assert figures.committed_cents == figures.paid_cents == cost.amount_cents
        else:
            assert allocation.status in (AllocationStatus.APPROVED, AllocationStatus.PARTIALLY_PAID)
            assert figures.committed_cents == cost.amount_cents >= figures.paid_cents > 0  # Q1 paid
        booked = session.execute(select(Booking.booked_on).where(Booking.allocation_id == allocation.id))
        assert all(year.year == day.year and day <= TODAY for day in booked.scalars())
    # 2021: half a year of half of Jens's full-time cost; from 2022 on, half of it
    annual = secondment.staff_member.annual_cost_cents
    assert costs[0].amount_cents == services.staff_cost_cents(secondment, 2021) < annual // 2
    assert costs[-1].amount_cents == annual // 2


def test_the_funding_figures_still_balance(session):
    for year in session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars():
        figures = ledger.year_figures(session, year)
        assert 0 < figures.committed_cents <= figures.available_cents, year.year
        plans = sum(c.planned_cents for c in year.categories)
        assert plans <= year.appropriation_cents, year.year
        for category in year.categories:
            assert ledger.category_committed(session, year, category) <= category.planned_cents, category.code
    # the staff cost did not fit the plan of Personal in 2025: it was raised, another lowered
    current = ledger.get_year(session, TODAY.year)
    plans = {c.code: c.planned_cents for c in current.categories}
    assert plans["personal"] > 150_000_00 and sum(plans.values()) == current.appropriation_cents
    assert verify_chain(session).ok


def _login_client(app, email):
    with app.app_context():
        user = auth_services.find_user(db.session, email)
        db.session.remove()
    return client_for(app, user)


@pytest.mark.parametrize(
    ("email", "sees"),
    [
        ("kiel@itvsh.example", {"Anna Petersen", "Jens Hansen"}),
        ("achterwehr@itvsh.example", {"Anna Petersen", "Jens Hansen"}),
        ("rd-eck@itvsh.example", {"Anna Petersen", "Jens Hansen"}),
    ],
)
def test_the_demo_logins_see_their_staff_and_no_cost(demo, email, sees):
    app, _created = demo
    client = _login_client(app, email)
    with app.app_context():
        response = client.get("/portal/staff/")
        body = response.get_data(as_text=True)
        db.session.remove()
    assert response.status_code == 200
    assert {name for name in ("Anna Petersen", "Jens Hansen") if name in body} == sees
    assert "€" not in body and "Finanzministerium" not in body
