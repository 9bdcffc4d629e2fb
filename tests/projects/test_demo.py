"""The projects and OZG demo, loaded with the whole demo once on a fresh migrated database with a
fixed today: the catalogue, projects of every kind across the lifecycle with the demo tenants as
pilots, milestones and delivered services, the demo people on projects without over-planning,
the projects' money within the ledger's limits, OZG statuses only for members (reported on a day
they were members, never after today), tallies equal to a rebuild, monthly snapshots whose last
month is the tallies, one audit event for the bulk load, and a second run that makes nothing."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from itertools import pairwise

import pytest
from sqlalchemy import func, select

from itvsh import create_app
from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import DEMO_LOGINS, load_demo
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, Booking, BudgetCategory, FiscalYear, RecipientKind
from itvsh.projects import ozg
from itvsh.projects.demo import PROJECTS, fund_projects, load_projects
from itvsh.projects.models import (
    Milestone,
    OzgService,
    OzgSnapshot,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    Participation,
    Project,
    ProjectService,
    Responsibility,
)
from itvsh.projects.services import project_budgets
from itvsh.staffing import services as staffing
from itvsh.staffing.models import Assignment, StaffMember
from itvsh.tenants.models import LOCAL_KINDS, Membership, Municipality
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for
from tests.tenants.test_query_counts import client_for

TODAY = date(2026, 3, 16)  # 2019-2025 closed, 2026 open; both project assignments have started
MODELS = (
    Project,
    Participation,
    Milestone,
    ProjectService,
    OzgService,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    OzgSnapshot,
    Assignment,
    Allocation,
    Booking,
    AuditEvent,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A fresh database with the demo loaded once (committed); tests read it in an app context."""
    url = migrated_database(tmp_path_factory, "projectsdemo")
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


def _projects(session) -> dict[str, Project]:
    return {p.name: p for p in session.execute(select(Project)).scalars()}


def test_the_demo_reports_what_it_made(demo, session):
    _app, created = demo
    for item in ("557 OZG services", f"{len(PROJECTS)} projects", "2 project assignments"):
        assert item in created
    statuses = next(int(item.split()[0]) for item in created if item.endswith(" OZG statuses"))
    assert statuses == _count(session, OzgStatus) > 50_000


def test_a_second_run_creates_nothing(demo, session):
    before = {model: _count(session, model) for model in MODELS}
    assert load_projects(session, TODAY) == []
    assert load_demo(session, today=TODAY) == []
    session.flush()
    assert {model: _count(session, model) for model in MODELS} == before


def test_projects_of_every_kind_across_the_lifecycle(session):
    projects = _projects(session)
    assert set(projects) == {plan.name for plan in PROJECTS}
    assert {p.kind for p in projects.values()} == {
        "shared_service",
        "reference_implementation",
        "infrastructure",
        "portal",
    }
    statuses = {name: p.status for name, p in projects.items()}
    assert set(statuses.values()) == {"idea", "planned", "running", "completed", "cancelled"}
    assert statuses["Serviceportal Schleswig-Holstein"] == "completed"  # ended 2023
    assert statuses["Digitaler Bauantrag SH"] == "running"
    assert statuses["E-Akte Kommunal"] == "planned"  # starts 2027
    people = {m.id: m.name for m in session.execute(select(StaffMember)).scalars()}
    leads = {people[p.lead_id] for p in projects.values() if p.lead_id is not None}
    assert leads == {"Anna Petersen", "Jens Hansen"}
    for project in projects.values():
        for milestone in project.milestones:
            assert project.starts_on <= milestone.due_on <= project.ends_on
            assert milestone.done_on is None or milestone.done_on <= TODAY
    milestones = [m for p in projects.values() for m in p.milestones]
    assert any(m.done_on for m in milestones) and any(m.done_on is None for m in milestones)
    delivered = session.execute(select(func.count()).select_from(ProjectService)).scalar_one()
    assert delivered >= 10


def test_the_demo_tenants_are_pilots(session):
    keys = {tenant for _email, role, tenant, _password in DEMO_LOGINS if role == "municipality"}
    pilots = set(
        session.execute(
            select(Municipality.key)
            .join(Participation, Participation.municipality_id == Municipality.id)
            .where(Participation.role == "pilot")
        ).scalars()
    )
    assert keys <= pilots
    # every participant was a member on the day it joined
    for participation in session.execute(select(Participation)).scalars():
        assert any(
            period.covers(participation.joined_on) for period in participation.municipality.memberships
        )
        assert participation.joined_on <= TODAY


def test_the_demo_people_work_on_projects_without_over_planning(session):
    people = list(session.execute(select(StaffMember).order_by(StaffMember.name)).scalars())
    on_projects = (
        session.execute(select(Assignment).where(Assignment.target_kind == "project")).scalars().all()
    )
    assert {a.staff_member.name for a in on_projects} == {"Anna Petersen", "Jens Hansen"}
    for assignment in on_projects:
        project = assignment.project
        assert assignment.municipality_id is None and project.status in ("planned", "running")
        assert project.starts_on <= assignment.starts_on <= TODAY
        assert assignment.ends_on is not None and assignment.ends_on <= project.ends_on
    for row in staffing.capacity(session, date(2019, 1, 1), date(2028, 12, 31), people):
        assert not [m.month for m in row.months if m.over or m.state == "over"], row.staff_member.name
    # the free share is used: Anna is fully planned in 2026
    anna = next(row for row in staffing.capacity(session, date(2026, 2, 1), date(2026, 2, 28), people[:1]))
    assert anna.staff_member.name == "Anna Petersen" and anna.months[0].state == "full"


def test_the_projects_money_keeps_the_ledgers_limits(session):
    for year in session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars():
        figures = ledger.year_figures(session, year)
        assert 0 < figures.committed_cents <= figures.available_cents, year.year
        assert sum(c.planned_cents for c in year.categories) <= year.appropriation_cents, year.year
        for category in year.categories:
            assert ledger.category_committed(session, year, category) <= category.planned_cents, category.code
    allocations = (
        session.execute(select(Allocation).where(Allocation.recipient_kind == RecipientKind.PROJECT.value))
        .scalars()
        .all()
    )
    assert len(allocations) >= 15
    projects = {p.id: p for p in _projects(session).values()}
    for allocation in allocations:
        project, year = projects[allocation.project_id], session.get(FiscalYear, allocation.fiscal_year_id)
        assert session.get(BudgetCategory, allocation.category_id).code == "projekte"
        assert project.starts_on.year <= year.year <= project.ends_on.year, (project.name, year.year)
        figures = ledger.allocation_figures(session, allocation)
        assert 0 <= figures.paid_cents <= figures.committed_cents <= allocation.amount_cents
        days = session.execute(
            select(Booking.booked_on).where(Booking.allocation_id == allocation.id)
        ).scalars()
        assert all(day <= TODAY for day in days)
    budgets = project_budgets(session, list(projects))
    funded = {projects[pid].name for pid, budget in budgets.items() if budget.allocated_cents}
    assert funded == {
        "Serviceportal Schleswig-Holstein",
        "Digitaler Bauantrag SH",
        "Rechenzentrumsbetrieb Kommunen",
        "OZG-Referenzimplementierung Gewerbeanmeldung",
    }
    for pid, budget in budgets.items():
        if projects[pid].status == "completed":  # paid in full, nothing left open
            assert budget.paid_cents == budget.committed_cents == budget.allocated_cents > 0
        else:
            assert budget.paid_cents <= budget.committed_cents


def test_a_year_without_room_funds_nothing(session):
    """fund_projects stays within the category's plan: with the plan used up it makes nothing."""
    year = ledger.get_year(session, TODAY.year)
    projekte = next(c for c in year.categories if c.code == "projekte")
    used = ledger.category_committed(session, year, projekte)
    ledger.save_category(
        session, "test", projekte, year, code=projekte.code, name=projekte.name, planned_cents=used
    )
    before = _count(session, Allocation)
    assert fund_projects(session, "test", year, TODAY) == 0
    assert _count(session, Allocation) == before


def _local_member_days(session) -> dict[int, list[Membership]]:
    periods = defaultdict(list)
    for membership in session.execute(select(Membership)).scalars():
        periods[membership.municipality_id].append(membership)
    return periods


def test_statuses_only_for_members_on_the_days_they_were_reported(session):
    cutoff = TODAY.replace(day=1)
    local = set(
        session.execute(
            select(Municipality.id).where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
        ).scalars()
    )
    periods = _local_member_days(session)
    municipal = set(
        session.execute(
            select(OzgService.id).where(OzgService.responsibility == Responsibility.MUNICIPAL.value)
        ).scalars()
    )
    rows = session.execute(
        select(
            OzgStatus.municipality_id,
            OzgStatus.service_id,
            OzgStatus.maturity,
            OzgStatus.online_since,
            OzgStatus.changed_at,
        )
    ).all()
    places = set()
    for municipality_id, service_id, maturity, online_since, changed_at in rows:
        assert municipality_id in local and service_id in municipal
        assert 1 <= maturity <= 4
        assert date(2019, 1, 1) <= online_since < cutoff
        reported = changed_at.date()
        assert online_since <= reported < cutoff
        for day in (online_since, reported):
            assert any(m.covers(day) for m in periods[municipality_id]), (municipality_id, day)
        places.add(municipality_id)
    never = {mid for mid in local if not periods.get(mid)}
    assert never and not never & places  # the Gemeinden that never joined report nothing
    assert len(places) > 900
    # one history row per status, with the same values
    history = session.execute(
        select(
            OzgStatusChange.municipality_id,
            OzgStatusChange.service_id,
            OzgStatusChange.maturity,
            OzgStatusChange.online_since,
            OzgStatusChange.changed_at,
        )
    ).all()
    assert sorted(history) == sorted(rows)


def test_ottendorf_reports_only_while_a_member(session):
    ottendorf = session.execute(select(Municipality).where(Municipality.key == "01058126")).scalar_one()
    days = session.execute(
        select(OzgStatus.online_since).where(OzgStatus.municipality_id == ottendorf.id)
    ).scalars()
    days = list(days)
    assert days
    assert not [d for d in days if date(2021, 1, 1) <= d < date(2023, 7, 1)]


def test_progress_is_plausible(session):
    """Bigger towns further than villages; the services of the projects further than the rest."""
    tallies = {
        (t.scope, t.scope_id): t
        for t in session.execute(select(OzgTally).where(OzgTally.topic == "")).scalars()
    }
    kiel = session.execute(select(Municipality).where(Municipality.key == "01002000")).scalar_one()
    villages = session.execute(
        select(Municipality.id).where(Municipality.kind == "gemeinde", Municipality.population < 500)
    ).scalars()
    village_shares = [ozg.compliant_share(tallies[("municipality", mid)]) for mid in villages]
    average = sum(village_shares) / len(village_shares)
    assert ozg.compliant_share(tallies[("municipality", kiel.id)]) > 2 * average > 0
    land = ozg.compliant_share(tallies[("land", ozg.LAND_ID)])
    assert 0.03 < land < 0.5
    delivered = select(ProjectService.service_id)
    project_rows = session.execute(
        select(func.count()).select_from(OzgStatus).where(OzgStatus.service_id.in_(delivered))
    ).scalar_one()
    services = session.execute(select(func.count(func.distinct(ProjectService.service_id)))).scalar_one()
    other_rows = _count(session, OzgStatus) - project_rows
    others = session.execute(
        select(func.count()).select_from(OzgService).where(OzgService.responsibility == "municipal")
    ).scalar_one()
    assert project_rows / services > 3 * other_rows / (others - services)
    assert session.execute(select(func.count()).where(OzgStatus.efa.is_(True))).scalar_one() > 0


def test_services_of_the_land_and_the_bund_are_marked(session):
    marked = session.execute(
        select(OzgService.ozg_id, OzgService.responsibility).where(
            OzgService.responsibility != Responsibility.MUNICIPAL.value
        )
    ).all()
    assert {r for _o, r in marked} == {"land", "bund"} and len(marked) >= 3


def _tally_rows(session) -> dict:
    return {
        (t.scope, t.scope_id, t.topic): (t.possible, t.level1, t.level2, t.level3, t.level4)
        for t in session.execute(select(OzgTally)).scalars()
    }


def test_the_tallies_equal_a_rebuild(session):
    stored = _tally_rows(session)
    assert len(stored) > 1000
    ozg.recompute_tallies(session)
    session.expire_all()
    assert _tally_rows(session) == stored


def test_the_snapshots_grow_month_by_month_and_end_at_the_tallies(session):
    snapshots = defaultdict(list)
    for s in session.execute(select(OzgSnapshot).order_by(OzgSnapshot.month)).scalars():
        snapshots[(s.scope, s.scope_id, s.topic)].append(s)
    months = (TODAY.year - 2019) * 12 + TODAY.month
    tallies = _tally_rows(session)
    wanted = {key for key in tallies if key[0] in ("land", "kreis")}
    assert set(snapshots) == wanted
    for key, series in snapshots.items():
        assert [s.month for s in series] == [date(2019 + i // 12, i % 12 + 1, 1) for i in range(months)]
        for earlier, later in pairwise(series):
            for level in (1, 2, 3, 4):  # each level only grows (counted from online_since)
                assert getattr(later, f"level{level}") >= getattr(earlier, f"level{level}"), key
        last = series[-1]
        assert (last.possible, last.level1, last.level2, last.level3, last.level4) == tallies[key], key
    land = snapshots[("land", ozg.LAND_ID, "")]
    assert land[0].compliant == 0 < land[12].compliant < land[36].compliant < land[-1].compliant


def test_one_audit_event_for_the_bulk_load(session):
    events = session.execute(select(AuditEvent).where(AuditEvent.entity == "ozg_status")).scalars().all()
    assert len(events) == 1
    (event,) = events
    assert event.action == "import" and event.actor == "demo"
    assert event.after["statuses"] == _count(session, OzgStatus)
    assert event.after["history"] == _count(session, OzgStatusChange)
    assert event.after["snapshots"] == _count(session, OzgSnapshot)
    assert verify_chain(session).ok


def _login_client(app, email):
    with app.app_context():
        user = auth_services.find_user(db.session, email)
        db.session.remove()
    return client_for(app, user)


@pytest.mark.parametrize(
    ("email", "sees"),
    [
        ("kiel@itvsh.example", "Digitaler Bauantrag SH"),
        ("krummwisch@itvsh.example", "OZG-Referenzimplementierung Gewerbeanmeldung"),
        ("achterwehr@itvsh.example", "Rechenzentrumsbetrieb Kommunen"),
        ("rd-eck@itvsh.example", "E-Akte Kommunal"),
    ],
)
def test_the_demo_logins_see_their_projects_and_ozg_status(demo, email, sees):
    app, _created = demo
    client = _login_client(app, email)
    with app.app_context():
        projects = client.get("/portal/projects/")
        status = client.get("/portal/ozg/")
        db.session.remove()
    assert projects.status_code == status.status_code == 200
    own = projects.get_data(as_text=True).split('id="projects-open-heading"')[0]
    assert sees in own
    assert "€" not in projects.get_data(as_text=True) and "€" not in status.get_data(as_text=True)
