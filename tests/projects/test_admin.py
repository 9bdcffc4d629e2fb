"""The projects admin through the client: create and edit (refusals at their field), the status
transitions (only the allowed next states offered, others refused), participants (non-members
refused), milestones (inside the project's period), the OZG services delivered, the detail page's
budget (equal to ``project_budgets``) and people, the list's statement count, auditors (read, never
write) and municipality users (shut out), and the projects section of a municipality's page.

Every refused request must leave the project tables and the audit trail as they were."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.money import format_money
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import FiscalYear
from itvsh.projects import services
from itvsh.projects.models import Milestone, Participation, Project, ProjectService
from itvsh.staffing import services as staffing_services
from itvsh.staffing.models import StaffMember
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.conftest import csrf_token
from tests.projects.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KRUMMWISCH, LUEBECK, NON_MEMBER, category

PROJECTS = "/admin/projects/"
ALLOCATIONS = "/admin/funding/allocations/"
MUNICIPALITIES = "/admin/municipalities/"
LIST_LIMIT = 5  # the user, the count, the page (lead, participants), the two budget queries


# --- helpers ------------------------------------------------------------------------------------------


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def post(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={"csrf_token": csrf_token(client, "/logout"), **(data or {})}, **kwargs)


def scoped():
    set_scope(db.session, ALL)
    return db.session


def count(model, *where) -> int:
    statement = select(func.count()).select_from(model)
    for clause in where:
        statement = statement.where(clause)
    return scoped().execute(statement).scalar_one()


def state() -> tuple[int, ...]:
    """What a refused request must leave unchanged."""
    return (
        count(Project),
        count(Participation),
        count(Milestone),
        count(ProjectService),
        count(AuditEvent),
    )


def snapshot(project: Project) -> dict:
    scoped().expire_all()
    project = scoped().get(Project, project.id)
    return {**project.audit_view(), "description": project.description}


def flashes(response) -> str:
    return " ".join(
        re.sub("<[^>]+>|&times;|\u00d7", "", m).strip()
        for m in re.findall(
            r'<div class="alert alert-\w+ alert-dismissable">(.*?)</div>', text_of(response), re.S
        )
    )


def cells(response) -> list[dict[str, str]]:
    """The rows of a Flask-Admin list as {column: text}."""
    rows = []
    for row in text_of(response).split("<tr")[1:]:
        found = dict(re.findall(r'<td class="col-(\w+)">(.*?)</td>', row, re.S))
        if found:
            rows.append({k: re.sub(r"<[^>]+>", "", v).strip() for k, v in found.items()})
    return rows


def field_errors(response, field: str) -> str:
    """The error messages Flask-Admin shows under a form field."""
    body = text_of(response)
    if f'id="{field}"' not in body:
        return ""
    group = body.split(f'id="{field}"', 1)[1].split('<div class="form-group', 1)[0]
    match = re.search(r'<div class="invalid-feedback">\s*<ul[^>]*>(.*?)</ul>', group, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def section(response, heading: str) -> str:
    return text_of(response).split(f'id="{heading}"', 1)[1].split("</section>", 1)[0]


def details(client, project):
    return client.get(f"{PROJECTS}details/?id={project.id}")


def new_project(
    name="Portal SH", kind="portal", status="idea", starts_on=date(2021, 1, 1), ends_on=None, lead=None
):
    session = scoped()
    project = services.create_project(
        session, ACTOR, name=name, kind=kind, starts_on=starts_on, ends_on=ends_on, lead=lead
    )
    for step in {"idea": (), "planned": ("planned",), "running": ("planned", "running")}[status]:
        services.change_status(session, ACTOR, project, step)
    session.commit()
    scoped()
    return project


@pytest.fixture
def staff(client, login_as, members):
    return login_as("staff", locale="en")


PROJECT_FORM = {
    "name": "Digitale Kita-Anmeldung",
    "kind": "reference_implementation",
    "description": "Ein Verfahren für alle",
    "starts_on": "2024-01-01",
    "ends_on": "2026-12-31",
    "lead": "",
}


# --- create and edit ----------------------------------------------------------------------------------


def test_staff_create_and_edit_a_project_with_a_lead_from_the_register(client, staff, person):
    form = text_of(client.get(PROJECTS + "new/"))
    assert f'<option value="{person.id}">Anna Beispiel (anna.beispiel@itv-sh.example)</option>' in form
    response = post(client, PROJECTS + "new/", {**PROJECT_FORM, "lead": str(person.id)})
    assert response.status_code == 302, flashes(client.get(PROJECTS))
    project = scoped().execute(select(Project)).scalar_one()
    assert response.headers["Location"].endswith(f"{PROJECTS}details/?id={project.id}")
    assert (project.name, project.kind, project.status, project.lead_id) == (
        "Digitale Kita-Anmeldung",
        "reference_implementation",
        "idea",
        person.id,
    )
    assert (project.starts_on, project.ends_on) == (date(2024, 1, 1), date(2026, 12, 31))
    assert count(AuditEvent, AuditEvent.action == "create", AuditEvent.entity == "project") == 1

    edit = text_of(client.get(f"{PROJECTS}edit/?id={project.id}"))
    assert f'<option selected value="{person.id}">' in edit or f'value="{person.id}" selected' in edit
    response = post(
        client,
        f"{PROJECTS}edit/?id={project.id}",
        {**PROJECT_FORM, "name": "Kita-Anmeldung SH", "ends_on": "", "lead": "", "kind": "portal"},
    )
    assert response.status_code == 302
    project = scoped().get(Project, project.id)
    scoped().refresh(project)
    assert (project.name, project.kind, project.ends_on, project.lead_id) == (
        "Kita-Anmeldung SH",
        "portal",
        None,
        None,
    )
    assert count(AuditEvent, AuditEvent.action == "update", AuditEvent.entity == "project") == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "Please fill in this field."),
        ({"name": "x" * 201}, "name", "At most 200 characters."),
        ({"kind": "castle"}, "kind", "Please choose one of the offered values."),
        ({"ends_on": "2023-12-31"}, "ends_on", "The project cannot end before it starts."),
        ({"starts_on": "1999-12-31"}, "starts_on", "The day must lie between 2000 and 2100."),
        ({"lead": "999999"}, "lead", "The lead must be a person in the staff register."),
        ({"lead": "abc"}, "lead", "The lead must be a person in the staff register."),
        ({"starts_on": "2024-13-01"}, "starts_on", "Not a valid date value."),
    ],
)
def test_bad_project_input_is_refused_at_its_field(client, staff, changes, field, message):
    before = state()
    response = post(client, PROJECTS + "new/", {**PROJECT_FORM, **changes})
    assert response.status_code == 200
    assert message in field_errors(response, field)
    assert state() == before


def test_a_name_is_taken_once_and_edits_keep_milestones_inside_the_period(client, staff, project):
    other = new_project("Anderes Projekt")
    before, kept = state(), snapshot(other)
    response = post(client, f"{PROJECTS}edit/?id={other.id}", {**PROJECT_FORM, "name": "digitaler bauantrag"})
    assert "Another project has this name." in field_errors(response, "name")
    assert state() == before and snapshot(other) == kept

    services.add_milestone(scoped(), ACTOR, project, title="Pilot live", due_on=date(2025, 6, 30))
    scoped().commit()
    before, kept = state(), snapshot(project)
    response = post(
        client,
        f"{PROJECTS}edit/?id={project.id}",
        {**PROJECT_FORM, "name": project.name, "starts_on": "2020-01-01", "ends_on": "2024-12-31"},
    )
    assert response.status_code == 200
    assert "The milestone is due after the project ends (2024-12-31)." in flashes(response)
    assert state() == before and snapshot(project) == kept


def test_there_is_no_delete(client, staff, project):
    before = state()
    assert post(client, PROJECTS + "delete/", {"id": project.id}).status_code in (302, 403, 404, 405)
    assert state() == before
    assert "delete" not in text_of(client.get(PROJECTS)).lower().split("<table", 1)[1].split("</table>")[0]


# --- status transitions --------------------------------------------------------------------------------


def status_buttons(response) -> list[str]:
    body = section(response, "project-heading")
    return re.findall(r'<button type="submit" name="status" value="(\w+)"', body)


def test_only_the_allowed_next_states_are_offered_and_others_refused(client, staff, members):
    project = new_project()
    assert status_buttons(details(client, project)) == ["planned", "cancelled"]

    before, kept = state(), snapshot(project)
    for wanted, current in (("running", "idea"), ("completed", "idea"), ("idea", "idea"), ("bogus", "idea")):
        response = post(
            client, PROJECTS + "status/", {"id": project.id, "status": wanted}, follow_redirects=True
        )
        assert response.status_code == 200
        assert f"A project that is {current} cannot become" in flashes(response), wanted
    assert state() == before and snapshot(project) == kept

    response = post(
        client, PROJECTS + "status/", {"id": project.id, "status": "planned"}, follow_redirects=True
    )
    assert "The project is now planned." in flashes(response)
    assert status_buttons(response) == ["running", "cancelled"]
    post(client, PROJECTS + "status/", {"id": project.id, "status": "running"})
    assert snapshot(project)["status"] == "running"
    response = post(
        client, PROJECTS + "status/", {"id": project.id, "status": "completed"}, follow_redirects=True
    )
    assert snapshot(project)["status"] == "completed"
    assert snapshot(project)["ends_on"] == date.today()  # completing sets the end day
    assert status_buttons(response) == [] and "itvsh-status-form" not in text_of(response)
    before = state()
    response = post(
        client, PROJECTS + "status/", {"id": project.id, "status": "cancelled"}, follow_redirects=True
    )
    assert "A project that is completed cannot become cancelled." in flashes(response)
    assert state() == before
    assert count(AuditEvent, AuditEvent.action == "change_status", AuditEvent.entity == "project") == 3


# --- participants ---------------------------------------------------------------------------------------


def test_participants_are_added_by_key_and_removed(client, staff, members, project):
    page = text_of(details(client, project))
    assert f'value="{members[KRUMMWISCH].name} ({KRUMMWISCH})"' in page  # the member list
    response = post(
        client,
        PROJECTS + "participants/add/",
        {"id": project.id, "member": f"Kiel ({KIEL})", "role": "pilot", "joined_on": "2020-02-01"},
        follow_redirects=True,
    )
    kiel_name = members[KIEL].name
    assert f"{kiel_name} takes part in the project." in flashes(response)
    post(
        client,
        PROJECTS + "participants/add/",
        {"id": project.id, "member": AMT_ACHTERWEHR, "role": "participant"},
    )
    rows = re.findall(
        r'<tr class="itvsh-participant"[^>]*data-key="(\d+)">(.*?)</tr>',
        text_of(details(client, project)),
        re.S,
    )
    assert [key for key, _row in rows] == [AMT_ACHTERWEHR, KIEL]  # by name
    assert "pilot" in rows[1][1] and "2020-02-01" in rows[1][1]
    assert "participant" in rows[0][1] and date.today().isoformat() in rows[0][1]

    before = state()
    for member, role, message in (
        (NON_MEMBER, "participant", f"{members[NON_MEMBER].name} is not a member of the federation on"),
        (KIEL, "pilot", f"{kiel_name} takes part already."),
        ("01999999", "pilot", "There is no municipality with the key 01999999."),
        ("Nirgendwo", "pilot", "Please enter the official key of the member or choose it from the list."),
        ("", "pilot", "Please choose a member."),
        (LUEBECK, "boss", "Please choose one of the offered values."),
    ):
        response = post(
            client,
            PROJECTS + "participants/add/",
            {"id": project.id, "member": member, "role": role},
            follow_redirects=True,
        )
        assert message in flashes(response), member
    response = post(
        client,
        PROJECTS + "participants/add/",
        {"id": project.id, "member": LUEBECK, "role": "pilot", "joined_on": "01.02.2020"},
        follow_redirects=True,
    )
    assert "Joined on: please enter a date as YYYY-MM-DD." in flashes(response)
    assert state() == before

    kiel = (
        scoped()
        .execute(select(Participation).where(Participation.municipality_id == members[KIEL].id))
        .scalar_one()
    )
    response = post(
        client, PROJECTS + "participants/remove/", {"participation_id": kiel.id}, follow_redirects=True
    )
    assert f"{kiel_name} no longer takes part in the project." in flashes(response)
    assert count(Participation) == 1
    assert count(AuditEvent, AuditEvent.action == "delete", AuditEvent.entity == "participation") == 1


def test_a_finished_project_takes_no_participants(client, staff, members):
    project = new_project(status="planned")
    services.change_status(scoped(), ACTOR, project, "cancelled")
    scoped().commit()
    assert "itvsh-participant-form" not in text_of(details(client, project))
    before = state()
    response = post(
        client,
        PROJECTS + "participants/add/",
        {"id": project.id, "member": KIEL, "role": "pilot"},
        follow_redirects=True,
    )
    assert "The project is finished; nobody joins it any more." in flashes(response)
    assert state() == before


# --- milestones ----------------------------------------------------------------------------------------


def test_milestones_inside_the_period_are_added_edited_and_deleted(client, staff, project):
    response = post(
        client,
        PROJECTS + "milestones/add/",
        {"id": project.id, "title": "Pilotbetrieb", "due_on": "2021-03-31", "done_on": "", "note": "Kiel"},
        follow_redirects=True,
    )
    assert "The milestone Pilotbetrieb was added." in flashes(response)
    milestone = scoped().execute(select(Milestone)).scalar_one()
    assert (milestone.due_on, milestone.done_on, milestone.note) == (date(2021, 3, 31), None, "Kiel")

    before = state()
    for changes, message in (
        ({"due_on": "2019-12-31"}, "The milestone is due before the project starts (2020-01-01)."),
        ({"due_on": "2031-01-01"}, "The milestone is due after the project ends (2030-12-31)."),
        ({"due_on": ""}, "Please enter the day the milestone is due."),
        ({"due_on": "2021-02-30"}, "Due on: please enter a date as YYYY-MM-DD."),
        ({"title": " "}, "Please fill in this field."),
        (
            {"done_on": (date.today() + timedelta(days=1)).isoformat()},
            "A milestone cannot be done in the future.",
        ),
    ):
        form = {
            "id": project.id,
            "title": "Rollout",
            "due_on": "2022-01-31",
            "done_on": "",
            "note": "",
            **changes,
        }
        response = post(client, PROJECTS + "milestones/add/", form, follow_redirects=True)
        assert message in flashes(response), changes
        form = {**form, "milestone_id": milestone.id}
        response = post(client, PROJECTS + "milestones/edit/", form, follow_redirects=True)
        assert message in flashes(response), changes
    assert state() == before
    scoped().refresh(milestone)
    assert (milestone.title, milestone.due_on) == ("Pilotbetrieb", date(2021, 3, 31))

    response = post(
        client,
        PROJECTS + "milestones/edit/",
        {
            "milestone_id": milestone.id,
            "title": "Pilotbetrieb",
            "due_on": "2021-04-30",
            "done_on": "2021-04-15",
        },
        follow_redirects=True,
    )
    assert "The milestone Pilotbetrieb was saved." in flashes(response)
    scoped().refresh(milestone)
    assert (milestone.due_on, milestone.done_on, milestone.note) == (date(2021, 4, 30), date(2021, 4, 15), "")
    row = section(response, "milestones-heading")
    assert "itvsh-milestone itvsh-done" in row and "2021-04-15" in row

    response = post(
        client, PROJECTS + "milestones/delete/", {"milestone_id": milestone.id}, follow_redirects=True
    )
    assert "The milestone Pilotbetrieb was deleted." in flashes(response)
    assert count(Milestone) == 0
    assert count(AuditEvent, AuditEvent.entity == "milestone") == 3  # create, update, delete


# --- OZG services ---------------------------------------------------------------------------------------


def delivered(project) -> list[str]:
    scoped().expire_all()
    return [s.ozg_id for s in scoped().get(Project, project.id).services]


def test_the_services_are_set_by_ozg_id(client, staff, project, catalogue):
    response = post(
        client,
        PROJECTS + "services/",
        {"id": project.id, "ozg_ids": "10169, 10000;10169"},
        follow_redirects=True,
    )
    assert "The project delivers 2 OZG services." in flashes(response)
    assert delivered(project) == ["10000", "10169"]
    listed = re.findall(r'data-ozg-id="(\d+)"', section(response, "services-heading"))
    assert listed == ["10000", "10169"]
    assert ">10000, 10169</textarea>" in section(response, "services-heading")

    before = state()
    response = post(
        client,
        PROJECTS + "services/",
        {"id": project.id, "ozg_ids": "10000 99999 abc"},
        follow_redirects=True,
    )
    assert "The catalogue has no service with the OZG-ID 99999, abc." in flashes(response)
    assert state() == before and delivered(project) == ["10000", "10169"]

    post(client, PROJECTS + "services/", {"id": project.id, "ozg_ids": "10003\n10999"})
    assert delivered(project) == ["10003", "10999"]
    post(client, PROJECTS + "services/", {"id": project.id, "ozg_ids": " "})
    assert delivered(project) == []


# --- budget and people -----------------------------------------------------------------------------------


def fund(project, year, amount, *, approve=True, paid=0):
    session = scoped()
    allocation = ledger.create_allocation(
        session,
        ACTOR,
        fiscal_year=year,
        category=category(year, "projekte"),
        recipient_kind="project",
        municipality=None,
        project=project,
        purpose=f"Projektmittel {project.name}",
        amount_cents=amount,
    )
    if approve:
        ledger.approve(session, ACTOR, allocation)
    if paid:
        ledger.disburse(session, ACTOR, allocation, paid)
    session.commit()
    scoped()
    return allocation


def figure(response, name: str) -> int:
    return int(re.search(rf'itvsh-budget-{name}" data-cents="(-?\d+)"', text_of(response))[1])


def test_the_detail_page_shows_the_budget_of_the_ledger_and_the_people(
    client, staff, members, project, open_year, person, secondment
):
    first = fund(project, open_year, 200_000_00, paid=120_000_00)
    fund(project, open_year, 80_000_00)
    fund(project, open_year, 7_000_00, approve=False)  # a draft binds nothing
    ledger.release(scoped(), ACTOR, first, 30_000_00)
    scoped().commit()
    other = new_project("Anderes Projekt", status="running")
    fund(other, open_year, 1_000_00, paid=1_000_00)
    staffing_services.create_assignment(
        scoped(),
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2022, 12, 31),
        fte=500,
        role="Projektleitung",
    )
    scoped().commit()

    budget = services.project_budgets(scoped(), [project.id])[project.id]
    assert (budget.allocated_cents, budget.committed_cents, budget.paid_cents) == (
        280_000_00,
        250_000_00,
        120_000_00,
    )
    response = details(client, project)
    assert response.status_code == 200
    assert figure(response, "allocated") == budget.allocated_cents
    assert figure(response, "committed") == budget.committed_cents
    assert figure(response, "paid") == budget.paid_cents
    assert format_money(250_000_00, "en") in section(response, "budget-heading")

    people = re.findall(
        r'<tr class="itvsh-project-person"[^>]*>(.*?)</tr>', section(response, "people-heading"), re.S
    )
    assert len(people) == 1
    assert "Anna Beispiel" in people[0] and "50 %" in people[0] and "Projektleitung" in people[0]
    assert "2021-01-01" in people[0] and "2022-12-31" in people[0]

    # the link to the allocation list, filtered by the project
    link = re.search(r'class="itvsh-project-allocations" href="([^"]+)"', text_of(response))[1]
    rows = cells(client.get(link))
    assert len(rows) == 3 and {r["recipient"] for r in rows} == {"Digitaler Bauantrag"}


def test_the_list_shows_participants_and_budget_and_filters(
    client, staff, members, project, open_year, person
):
    fund(project, open_year, 250_000_00, paid=100_000_00)
    for key in (KIEL, KRUMMWISCH):
        services.add_participant(scoped(), ACTOR, project, members[key], "pilot")
    services.update_project(scoped(), ACTOR, project, lead=person)
    scoped().commit()
    new_project("Landesportal", kind="portal")
    rows = {r["name"]: r for r in cells(client.get(PROJECTS))}
    assert set(rows) == {"Digitaler Bauantrag", "Landesportal"}
    row = rows["Digitaler Bauantrag"]
    assert (row["kind"], row["status"], row["lead"], row["participants"]) == (
        "shared service",
        "running",
        "Anna Beispiel",
        "2",
    )
    assert row["period"] == "2020-01-01 \u2013 2030-12-31"
    assert (row["allocated"], row["paid"]) == (format_money(250_000_00, "en"), format_money(100_000_00, "en"))
    assert rows["Landesportal"]["participants"] == "0" and rows["Landesportal"]["allocated"] == format_money(
        0, "en"
    )

    assert [r["name"] for r in cells(client.get(PROJECTS + "?flt0_kind=portal"))] == ["Landesportal"]
    assert [r["name"] for r in cells(client.get(PROJECTS + "?flt0_status=running"))] == [
        "Digitaler Bauantrag"
    ]
    assert [r["name"] for r in cells(client.get(PROJECTS + "?search=bauantrag"))] == ["Digitaler Bauantrag"]
    exported = list(csv.DictReader(io.StringIO(client.get(PROJECTS + "export/csv/").get_data(as_text=True))))
    mine = next(r for r in exported if r["Name"] == "Digitaler Bauantrag")
    assert (mine["Allocated (cents)"], mine["Paid (cents)"], mine["Participants"]) == (
        "25000000",
        "10000000",
        "2",
    )


def _grow(members, projects: int, person_id: int, year_id: int) -> None:
    """``projects`` more planned projects, each with a lead, two participants and an allocation."""
    session = scoped()
    person = session.get(StaffMember, person_id)
    year = session.get(FiscalYear, year_id)
    members = {key: session.get(Municipality, members[key]) for key in (KIEL, KRUMMWISCH)}
    start = count(Project)
    for n in range(start, start + projects):
        project = services.create_project(
            session,
            ACTOR,
            name=f"Projekt {n:03d}",
            kind="infrastructure",
            starts_on=date(2020, 1, 1),
            lead=person,
        )
        services.change_status(session, ACTOR, project, "planned")
        for key in (KIEL, KRUMMWISCH):
            services.add_participant(session, ACTOR, project, members[key], "participant")
        fund(project, year, 1_000_00 + n, paid=n)
    session.commit()
    scoped()


def statements(client, url: str) -> int:
    scoped().expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(seen)


PAGES = (
    PROJECTS + "?page_size=100",
    PROJECTS + "?page_size=100&flt0_kind=infrastructure&flt1_status=planned",
    PROJECTS + "?page_size=100&search=projekt",
)


def test_the_list_runs_the_same_few_statements_for_2_and_20_projects(
    client, staff, members, person, open_year
):
    ids, person_id, year_id = {key: members[key].id for key in (KIEL, KRUMMWISCH)}, person.id, open_year.id
    _grow(ids, 2, person_id, year_id)
    small = {url: statements(client, url) for url in PAGES}
    _grow(ids, 18, person_id, year_id)
    large = {url: statements(client, url) for url in PAGES}
    assert len(cells(client.get(PROJECTS + "?page_size=100"))) == 20  # not vacuous
    assert small == large, (small, large)
    assert all(0 < n <= LIST_LIMIT for n in large.values()), large


def test_the_counter_notices_a_query_per_row(client, staff, members, person, open_year, monkeypatch):
    """Proves the measurement can fail: a column reading each row's participants itself costs one
    statement per listed row."""
    _grow({key: members[key].id for key in (KIEL, KRUMMWISCH)}, 4, person.id, open_year.id)
    view = client.application.extensions["itvsh_admin_views"]["projects"]
    baseline = statements(client, PROJECTS)

    def per_row(v, c, m, n):
        return db.session.execute(
            select(func.count()).select_from(Participation).where(Participation.project_id == m.id)
        ).scalar()

    monkeypatch.setattr(view, "column_formatters", {**view.column_formatters, "participants": per_row})
    assert statements(client, PROJECTS) == baseline + 4


# --- access ------------------------------------------------------------------------------------------------


def _write_requests(project, participation, milestone) -> list[tuple[str, str, dict]]:
    return [
        ("GET", PROJECTS + "new/", {}),
        ("POST", PROJECTS + "new/", PROJECT_FORM),
        ("GET", f"{PROJECTS}edit/?id={project.id}", {}),
        ("POST", f"{PROJECTS}edit/?id={project.id}", {**PROJECT_FORM, "name": "HACKED"}),
        ("POST", PROJECTS + "delete/", {"id": project.id}),
        ("POST", PROJECTS + "status/", {"id": project.id, "status": "cancelled"}),
        ("POST", PROJECTS + "participants/add/", {"id": project.id, "member": LUEBECK, "role": "pilot"}),
        ("POST", PROJECTS + "participants/remove/", {"participation_id": participation.id}),
        ("POST", PROJECTS + "milestones/add/", {"id": project.id, "title": "HACKED", "due_on": "2022-01-01"}),
        (
            "POST",
            PROJECTS + "milestones/edit/",
            {"milestone_id": milestone.id, "title": "HACKED", "due_on": "2022-01-01"},
        ),
        ("POST", PROJECTS + "milestones/delete/", {"milestone_id": milestone.id}),
        ("POST", PROJECTS + "services/", {"id": project.id, "ozg_ids": "10000"}),
    ]


def _read_urls(project) -> list[str]:
    return [
        PROJECTS,
        f"{PROJECTS}details/?id={project.id}",
        PROJECTS + "export/csv/",
        PROJECTS + "export/xlsx/",
    ]


@pytest.fixture
def furnished(members, project, catalogue):
    participation = services.add_participant(scoped(), ACTOR, project, members[KIEL], "pilot")
    milestone = services.add_milestone(scoped(), ACTOR, project, title="Start", due_on=date(2020, 3, 1))
    scoped().commit()
    return project, participation, milestone


def test_auditors_read_everything_and_write_nothing(client, login_as, furnished):
    project, participation, milestone = furnished
    login_as("auditor")
    for url in _read_urls(project):
        assert client.get(url).status_code == 200, url
    page = text_of(details(client, project))
    assert "Kiel" in page and "Start" in page
    assert "<form" not in page.split("<h1", 1)[1]
    assert "/edit/" not in page and "/new/" not in page
    before, kept = state(), snapshot(project)
    for method, url, data in _write_requests(project, participation, milestone):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before and snapshot(project) == kept


def test_municipality_users_get_403_everywhere_in_the_projects_admin(client, login_as, furnished):
    project, participation, milestone = furnished
    login_as("municipality", KIEL)
    before = state()
    for url in _read_urls(project):
        assert client.get(url).status_code == 403, url
    for method, url, data in _write_requests(project, participation, milestone):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before


def test_unknown_or_crafted_ids_answer_404_and_posts_need_csrf(client, staff, furnished):
    project, _participation, _milestone = furnished
    for url in (
        f"{PROJECTS}details/?id=999999",
        f"{PROJECTS}details/?id=abc",
        f"{PROJECTS}details/?id=99999999999",
    ):
        assert client.get(url).status_code == 404, url
    before = state()
    for url, field in (
        ("status/", "id"),
        ("participants/add/", "id"),
        ("participants/remove/", "participation_id"),
        ("milestones/add/", "id"),
        ("milestones/edit/", "milestone_id"),
        ("milestones/delete/", "milestone_id"),
        ("services/", "id"),
    ):
        for value in ("", "abc", "999999", "-1"):
            assert post(client, PROJECTS + url, {field: value}).status_code == 404, (url, value)
    response = client.post(PROJECTS + "status/", data={"id": project.id, "status": "cancelled"})
    assert response.status_code == 400
    assert state() == before


def test_text_from_users_is_escaped(client, staff, members):
    post(
        client,
        PROJECTS + "new/",
        {**PROJECT_FORM, "name": "<script>x()</script>", "description": "<b>fett</b>"},
    )
    project = scoped().execute(select(Project)).scalar_one()
    for body in (
        client.get(PROJECTS).get_data(as_text=True),
        details(client, project).get_data(as_text=True),
    ):
        assert "<script>x()</script>" not in body and "&lt;script&gt;" in body
    assert "<b>fett</b>" not in details(client, project).get_data(as_text=True)


def test_the_projects_menu(client, staff):
    body = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/projects/"' in body


# --- the municipality's detail page -----------------------------------------------------------------------


def test_the_municipality_detail_page_lists_its_projects_with_one_query(client, staff, members, project):
    services.add_participant(scoped(), ACTOR, project, members[KIEL], "pilot", joined_on=date(2020, 5, 1))
    other = new_project("Anderes Projekt", status="planned")
    services.add_participant(scoped(), ACTOR, other, members[KIEL], "participant")
    services.add_participant(scoped(), ACTOR, other, members[LUEBECK], "participant")
    scoped().commit()
    body = section(client.get(f"{MUNICIPALITIES}details/?id={members[KIEL].id}"), "projects-heading")
    rows = re.findall(r'<tr class="itvsh-project-participation" data-project="(\d+)">(.*?)</tr>', body, re.S)
    assert [int(id_) for id_, _row in rows] == [other.id, project.id]  # by name
    assert "participant" in rows[0][1] and "planned" in rows[0][1]
    assert "pilot" in rows[1][1] and "running" in rows[1][1] and "2020-05-01" in rows[1][1]
    assert f"{PROJECTS}details/?id={project.id}" in rows[1][1]
    empty = section(client.get(f"{MUNICIPALITIES}details/?id={members[KRUMMWISCH].id}"), "projects-heading")
    assert "itvsh-project-participation" not in empty and "itvsh-nothing-yet" in empty

    from itvsh.projects.admin import municipality_projects

    kiel = scoped().get(Municipality, members[KIEL].id)
    with recorded_statements() as seen:
        found = municipality_projects(scoped(), kiel)
    assert len(found["project_participations"]) == 2 and len(seen) == 1
