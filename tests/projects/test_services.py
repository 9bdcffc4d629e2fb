"""The project services (``itvsh.projects.services``) without HTTP: create and update, every status
transition (each invalid one refused), participants, milestones inside and outside the project's
period, the OZG services a project delivers, budgets from the ledger (incl. a reversal and a
cancelled draft) and people from the assignments. Every refusal names the field and leaves the rows
and the audit trail as they were."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from flask_babel import force_locale
from sqlalchemy import event, func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, Booking
from itvsh.projects import services
from itvsh.projects.models import (
    TRANSITIONS,
    Milestone,
    Participation,
    Project,
    ProjectService,
    ProjectStatus,
)
from itvsh.staffing import services as staffing
from itvsh.staffing.models import Assignment
from tests.projects.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KRUMMWISCH,
    LUEBECK,
    NON_MEMBER,
    category,
)

_names = itertools.count(1)


@pytest.fixture
def english(app):
    with app.test_request_context("/"), force_locale("en"):
        yield


def state() -> tuple:
    """Everything a project write could change. Commits first, so whatever a refused call left in
    the session would be written and show."""
    db.session.commit()
    set_scope(db.session, ALL)
    projects = db.session.execute(
        select(
            Project.id,
            Project.name,
            Project.kind,
            Project.description,
            Project.status,
            Project.starts_on,
            Project.ends_on,
            Project.lead_id,
        ).order_by(Project.id)
    ).all()
    participations = db.session.execute(
        select(
            Participation.id,
            Participation.project_id,
            Participation.municipality_id,
            Participation.role,
            Participation.joined_on,
        ).order_by(Participation.id)
    ).all()
    milestones = db.session.execute(
        select(Milestone.id, Milestone.title, Milestone.due_on, Milestone.done_on, Milestone.note).order_by(
            Milestone.id
        )
    ).all()
    delivered = db.session.execute(
        select(ProjectService.project_id, ProjectService.service_id).order_by(
            ProjectService.project_id, ProjectService.service_id
        )
    ).all()
    events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    return projects, participations, milestones, delivered, events


def refused(field: str | None, call, *args, **kwargs) -> RuleViolation:
    """``call`` is refused naming ``field``, and nothing changed."""
    before = state()
    with pytest.raises(RuleViolation) as caught:
        call(*args, **kwargs)
    assert caught.value.field == field, (caught.value.field, caught.value.message)
    assert state() == before
    return caught.value


def events_for(entity: str) -> list[AuditEvent]:
    db.session.commit()
    set_scope(db.session, ALL)
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.entity == entity).order_by(AuditEvent.seq))
        .scalars()
        .all()
    )


def new_project(status: str = "idea", **fields) -> Project:
    """A project walked along the valid transitions to ``status``."""
    fields.setdefault("name", f"Projekt {next(_names)}")
    fields.setdefault("kind", "portal")
    fields.setdefault("starts_on", date(2021, 1, 1))
    fields.setdefault("ends_on", date(2024, 12, 31))
    project = services.create_project(db.session, ACTOR, **fields)
    path = {
        "idea": [],
        "planned": ["planned"],
        "running": ["planned", "running"],
        "completed": ["planned", "running", "completed"],
        "cancelled": ["cancelled"],
    }[status]
    for step in path:
        services.change_status(db.session, ACTOR, project, step)
    db.session.commit()
    set_scope(db.session, ALL)
    return project


# --- create and update -----------------------------------------------------------------------------


def test_create_project_starts_as_idea_and_is_audited(app, person):
    project = services.create_project(
        db.session,
        ACTOR,
        name="  Zentrales Serviceportal ",
        kind="portal",
        description="Ein Portal für alle",
        starts_on=date(2022, 1, 1),
        ends_on=None,
        lead=person,
    )
    assert (project.name, project.status, project.lead_id, project.ends_on) == (
        "Zentrales Serviceportal",
        "idea",
        person.id,
        None,
    )
    (created,) = events_for("project")
    assert (created.action, created.actor, created.entity_id) == ("create", ACTOR, str(project.id))
    assert created.after["name"] == "Zentrales Serviceportal" and created.after["lead_id"] == person.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 12}, "name"),
        ({"name": "digitaler bauantrag"}, "name"),  # taken (the fixture's), in any case
        ({"kind": "other"}, "kind"),
        ({"description": "x" * 10_001}, "description"),
        ({"starts_on": "2021-01-01"}, "starts_on"),
        ({"starts_on": date(1999, 12, 31)}, "starts_on"),
        ({"ends_on": date(2101, 1, 1)}, "ends_on"),
        ({"starts_on": date(2022, 1, 2), "ends_on": date(2022, 1, 1)}, "ends_on"),
        ({"lead": "Anna Beispiel"}, "lead"),
    ],
)
def test_create_project_refuses_bad_input(project, fields, field):
    values = {"name": "Neues Projekt", "kind": "infrastructure", **fields}
    refused(field, services.create_project, db.session, ACTOR, **values)


def test_update_project_changes_fields_and_audits_before_and_after(project, person):
    services.update_project(
        db.session, ACTOR, project, name="Bauantrag online", kind="reference_implementation", lead=person
    )
    assert (project.name, project.kind, project.lead_id) == (
        "Bauantrag online",
        "reference_implementation",
        person.id,
    )
    services.update_project(db.session, ACTOR, project, name="Bauantrag online")  # no change: no event
    services.update_project(db.session, ACTOR, project, lead=None)
    updates = [e for e in events_for("project") if e.action == "update"]
    assert len(updates) == 2
    assert (updates[0].before["name"], updates[0].after["name"]) == (
        "Digitaler Bauantrag",
        "Bauantrag online",
    )
    assert (updates[1].before["lead_id"], updates[1].after["lead_id"]) == (person.id, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"kind": "bogus"}, "kind"),
        ({"starts_on": date(2031, 1, 1)}, "ends_on"),  # after the end
        ({"ends_on": date(2019, 12, 31)}, "ends_on"),
        ({"starts_on": "heute"}, "starts_on"),
        ({"lead": 7}, "lead"),
        ({"status": "completed"}, None),  # only change_status moves the status
        ({"created_at": date(2020, 1, 1)}, None),
    ],
)
def test_update_project_refuses_bad_input(project, changes, field):
    refused(field, services.update_project, db.session, ACTOR, project, **changes)


def test_update_project_refuses_a_name_another_project_has(project):
    new_project(name="Serviceportal")
    refused("name", services.update_project, db.session, ACTOR, project, name="SERVICEPORTAL")


# --- status transitions --------------------------------------------------------------------------


VALID = {(source.value, target.value) for source, targets in TRANSITIONS.items() for target in targets}
ALL_PAIRS = [(s.value, t.value) for s in ProjectStatus for t in ProjectStatus]


def test_the_transitions_are_the_documented_ones():
    assert {
        ("idea", "planned"),
        ("idea", "cancelled"),
        ("planned", "running"),
        ("planned", "cancelled"),
        ("running", "completed"),
        ("running", "cancelled"),
    } == VALID


@pytest.mark.parametrize(("source", "target"), sorted(VALID))
def test_every_valid_transition_is_taken_and_audited(app, source, target):
    project = new_project(source)
    services.change_status(db.session, ACTOR, project, target, on=date(2022, 6, 1))
    assert project.status == target
    last = events_for("project")[-1]
    assert (last.action, last.before["status"], last.after["status"]) == ("change_status", source, target)


@pytest.mark.parametrize(("source", "target"), [pair for pair in ALL_PAIRS if pair not in VALID])
def test_every_invalid_transition_is_refused(english, source, target):
    project = new_project(source)
    violation = refused("status", services.change_status, db.session, ACTOR, project, target)
    assert violation.message.startswith(f"A project that is {source} cannot become {target}")


@pytest.mark.parametrize("target", ["", "bogus", None, "IDEA"])
def test_an_unknown_status_is_refused(app, target):
    refused("status", services.change_status, db.session, ACTOR, new_project("idea"), target)


def test_running_sets_a_missing_start_and_completing_a_missing_end(app):
    project = new_project("planned", starts_on=None, ends_on=None)
    services.change_status(db.session, ACTOR, project, "running", on=date(2022, 3, 1))
    assert (project.starts_on, project.ends_on) == (date(2022, 3, 1), None)
    services.change_status(db.session, ACTOR, project, "completed", on=date(2023, 9, 30))
    assert (project.starts_on, project.ends_on) == (date(2022, 3, 1), date(2023, 9, 30))
    kept = new_project("running", starts_on=date(2021, 1, 1), ends_on=date(2021, 6, 30))
    services.change_status(db.session, ACTOR, kept, "completed", on=date(2023, 1, 1))
    assert kept.ends_on == date(2021, 6, 30)  # a planned end stays


# --- participants --------------------------------------------------------------------------------


def test_participants_join_with_a_role_and_leave(project, members):
    pilot = services.add_participant(
        db.session, ACTOR, project, members[KIEL], "pilot", joined_on=date(2020, 2, 1)
    )
    other = services.add_participant(db.session, ACTOR, project, members[AMT_ACHTERWEHR])
    assert (pilot.role, pilot.joined_on) == ("pilot", date(2020, 2, 1))
    assert (other.role, other.joined_on) == ("participant", date.today())
    db.session.expire(project, ["participations"])
    assert [p.municipality.key for p in project.participations] == [KIEL, AMT_ACHTERWEHR]
    services.remove_participant(db.session, ACTOR, pilot)
    events = [(e.action, e.after or e.before) for e in events_for("participation")]
    assert [action for action, _ in events] == ["create", "create", "delete"]
    assert events[2][1]["municipality_id"] == members[KIEL].id
    db.session.expire(project, ["participations"])
    assert [p.municipality.key for p in project.participations] == [AMT_ACHTERWEHR]


def test_a_non_member_cannot_take_part(english, project, members):
    violation = refused(
        "municipality", services.add_participant, db.session, ACTOR, project, members[NON_MEMBER]
    )
    assert "is not a member of the federation on" in violation.message


def test_a_member_cannot_take_part_before_it_joined(project, members):
    refused(
        "municipality",
        services.add_participant,
        db.session,
        ACTOR,
        project,
        members[KIEL],
        joined_on=date(2018, 12, 31),
    )


def test_a_member_takes_part_once(english, project, members):
    services.add_participant(db.session, ACTOR, project, members[LUEBECK])
    violation = refused(
        "municipality", services.add_participant, db.session, ACTOR, project, members[LUEBECK], "pilot"
    )
    assert violation.message.endswith("takes part already.")


@pytest.mark.parametrize(
    ("role", "key", "joined_on", "field"),
    [
        ("captain", KIEL, None, "role"),
        ("participant", None, None, "municipality"),
        ("participant", KIEL, "2021-01-01", "joined_on"),
        ("participant", KIEL, date(1999, 1, 1), "joined_on"),
    ],
)
def test_participant_bad_input_is_refused(project, members, role, key, joined_on, field):
    municipality = members[key] if key else None
    refused(
        field, services.add_participant, db.session, ACTOR, project, municipality, role, joined_on=joined_on
    )


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_nobody_joins_a_finished_project(members, status):
    refused("project", services.add_participant, db.session, ACTOR, new_project(status), members[KIEL])


# --- milestones ----------------------------------------------------------------------------------


def test_milestones_inside_the_period_incl_its_first_and_last_day(project):
    first = services.add_milestone(db.session, ACTOR, project, title="Start", due_on=date(2020, 1, 1))
    last = services.add_milestone(
        db.session, ACTOR, project, title="Ende", due_on=date(2030, 12, 31), note="Abnahme"
    )
    middle = services.add_milestone(
        db.session, ACTOR, project, title="Pilot", due_on=date(2021, 6, 1), done_on=date(2021, 5, 28)
    )
    db.session.expire(project, ["milestones"])
    assert project.milestones == [first, middle, last]
    services.update_milestone(db.session, ACTOR, middle, due_on=date(2022, 1, 1), done_on=None)
    services.update_milestone(db.session, ACTOR, middle, title="Pilot")  # unchanged: no event
    services.delete_milestone(db.session, ACTOR, first)
    events = events_for("milestone")
    assert [e.action for e in events] == ["create", "create", "create", "update", "delete"]
    assert (events[3].before["due_on"], events[3].after["due_on"]) == ("2021-06-01", "2022-01-01")
    assert db.session.execute(select(Milestone.title).order_by(Milestone.due_on)).scalars().all() == [
        "Pilot",
        "Ende",
    ]


def test_a_project_without_a_period_takes_any_day(app):
    project = new_project("idea", starts_on=None, ends_on=None)
    milestone = services.add_milestone(
        db.session, ACTOR, project, title="Irgendwann", due_on=date(2099, 1, 1)
    )
    assert milestone.due_on == date(2099, 1, 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"due_on": date(2019, 12, 31)}, "due_on"),  # the day before the start
        ({"due_on": date(2031, 1, 1)}, "due_on"),  # the day after the end
        ({"due_on": None}, "due_on"),
        ({"due_on": "2021-01-01"}, "due_on"),
        ({"title": ""}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"done_on": date.today() + timedelta(days=1)}, "done_on"),
        ({"note": "x" * 5001}, "note"),
    ],
)
def test_milestone_bad_input_is_refused(english, project, fields, field):
    values = {"title": "Meilenstein", "due_on": date(2022, 1, 1), **fields}
    violation = refused(field, services.add_milestone, db.session, ACTOR, project, **values)
    if field == "due_on" and isinstance(values["due_on"], date):
        assert violation.message in (
            "The milestone is due before the project starts (2020-01-01).",
            "The milestone is due after the project ends (2030-12-31).",
        )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"due_on": date(2019, 6, 1)}, "due_on"),
        ({"due_on": None}, "due_on"),
        ({"done_on": date.today() + timedelta(days=30)}, "done_on"),
        ({"title": " "}, "title"),
        ({"project_id": 1}, None),
    ],
)
def test_milestone_updates_are_checked(project, changes, field):
    milestone = services.add_milestone(db.session, ACTOR, project, title="Pilot", due_on=date(2022, 1, 1))
    refused(field, services.update_milestone, db.session, ACTOR, milestone, **changes)


def test_the_period_cannot_shrink_past_a_milestone(project):
    services.add_milestone(db.session, ACTOR, project, title="Spät", due_on=date(2029, 1, 1))
    refused("due_on", services.update_project, db.session, ACTOR, project, ends_on=date(2028, 12, 31))
    refused("due_on", services.update_project, db.session, ACTOR, project, starts_on=date(2029, 1, 2))
    services.update_project(db.session, ACTOR, project, ends_on=date(2029, 1, 1))  # the day itself is fine
    assert project.ends_on == date(2029, 1, 1)


# --- OZG services delivered ----------------------------------------------------------------------


def test_set_services_replaces_the_list_and_audits_changes_only(project, catalogue):
    elterngeld, fuehrerschein, zulassung = catalogue["10000"], catalogue["10169"], catalogue["10170"]
    services.set_services(db.session, ACTOR, project, [elterngeld, fuehrerschein])
    assert [s.ozg_id for s in project.services] == ["10000", "10169"]
    services.set_services(db.session, ACTOR, project, [fuehrerschein, elterngeld])  # same set: no event
    services.set_services(db.session, ACTOR, project, [zulassung, fuehrerschein, zulassung])
    assert [s.ozg_id for s in project.services] == ["10169", "10170"]
    services.set_services(db.session, ACTOR, project, [])
    assert project.services == []
    updates = [(e.before, e.after) for e in events_for("project") if e.action == "update"]
    assert updates == [
        ({"services": []}, {"services": sorted([elterngeld.id, fuehrerschein.id])}),
        (
            {"services": sorted([elterngeld.id, fuehrerschein.id])},
            {"services": sorted([fuehrerschein.id, zulassung.id])},
        ),
        ({"services": sorted([fuehrerschein.id, zulassung.id])}, {"services": []}),
    ]


# --- budget ---------------------------------------------------------------------------------------


class Statements:
    def __init__(self):
        self.selects = 0

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects += 1


def _allocate(year, project, amount: int, *, approve: bool = True, municipality=None):
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=year,
        category=category(year, "projekte"),
        recipient_kind="project" if municipality is None else "member",
        municipality=municipality,
        project=project,
        purpose="Betrieb",
        amount_cents=amount,
    )
    if approve:
        ledger.approve(db.session, ACTOR, allocation)
    return allocation


def test_project_budgets_are_the_ledger_sums_of_its_allocations(open_year, project, members):
    other = new_project("planned")
    idle = new_project("planned")
    main = _allocate(open_year, project, 40_000_00)
    paid = ledger.disburse(db.session, ACTOR, main, 10_000_00)
    ledger.disburse(db.session, ACTOR, main, 5_000_00)
    ledger.reverse(db.session, ACTOR, paid, note="doppelt gebucht")  # the 10,000 paid is reversed
    draft = _allocate(open_year, project, 7_000_00, approve=False)  # a draft binds nothing
    cancelled = _allocate(open_year, project, 3_000_00, approve=False)
    ledger.cancel(db.session, ACTOR, cancelled, reason="doch nicht")
    withdrawn = _allocate(open_year, project, 2_000_00)  # approved, then its commitment reversed
    commitment = db.session.execute(
        select(Booking).where(Booking.allocation_id == withdrawn.id).order_by(Booking.id)
    ).scalar()
    ledger.reverse(db.session, ACTOR, commitment, note="Bescheid aufgehoben")
    _allocate(open_year, other, 1_234_56)
    _allocate(open_year, None, 99_000_00, municipality=members[KIEL])  # a member's: no project's
    db.session.commit()
    set_scope(db.session, ALL)
    assert db.session.get(Allocation, draft.id).status == "draft"
    assert db.session.get(Allocation, withdrawn.id).status == "draft"
    ids = [project.id, other.id, idle.id]  # loaded before counting
    with Statements() as seen:
        budgets = services.project_budgets(db.session, ids)
    assert seen.selects == 2
    assert budgets[project.id] == services.ProjectBudget(40_000_00, 40_000_00, 5_000_00)
    assert budgets[other.id] == services.ProjectBudget(1_234_56, 1_234_56, 0)
    assert budgets[idle.id] == services.ProjectBudget(0, 0, 0)
    with Statements() as seen:
        assert services.project_budgets(db.session, []) == {}
    assert seen.selects == 0


def test_a_finished_or_unplanned_project_receives_no_allocation(open_year):
    for status in ("idea", "completed", "cancelled"):
        target = new_project(status)
        before = db.session.execute(select(func.count()).select_from(Allocation)).scalar_one()
        with pytest.raises(RuleViolation) as caught:
            _allocate(open_year, target, 1_000_00, approve=False)
        assert caught.value.field == "project"
        assert db.session.execute(select(func.count()).select_from(Allocation)).scalar_one() == before


# --- people ---------------------------------------------------------------------------------------


def test_project_people_are_the_assignments_to_it(project, person, secondment, members):
    def assign(starts_on, ends_on, fte, target=project):
        return staffing.create_assignment(
            db.session,
            ACTOR,
            staff_member=person,
            municipality=None if target is project else members[KRUMMWISCH],
            project=target if target is project else None,
            target_kind="project" if target is project else "member",
            starts_on=starts_on,
            ends_on=ends_on,
            fte=fte,
        )

    early = assign(date(2020, 1, 1), date(2020, 12, 31), 500)
    late = assign(date(2022, 1, 1), date(2030, 12, 31), 200)  # an open end would outlast the project
    assign(date(2021, 1, 1), date(2021, 12, 31), 300, target=None)  # to a member: not the project's
    assert services.project_people(db.session, project) == [late, early]
    assert services.project_people(db.session, new_project("planned")) == []
    assert {a.staff_member.name for a in services.project_people(db.session, project)} == {"Anna Beispiel"}
    assert db.session.execute(select(func.count()).select_from(Assignment)).scalar_one() == 3
