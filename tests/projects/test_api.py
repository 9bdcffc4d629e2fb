"""The projects and OZG API: projects with their status, participants, milestones and services; the
catalogue; the OZG status rows -- good input works and is audited, bad input is refused with a
problem+json naming the field and nothing changed; members read the public part of a project and
every status row, report their own status and get 403 for another's; auditors only read; the
OpenAPI document; list statement counts that do not grow with the rows."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import FiscalYear
from itvsh.projects import ozg
from itvsh.projects import services as project_services
from itvsh.projects.models import (
    Milestone,
    OzgService,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    Participation,
    Project,
    ProjectService,
)
from itvsh.staffing import services as staffing
from tests.api.helpers import assert_problem, field_errors
from tests.api.test_query_count import recorded_statements
from tests.projects.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    LUEBECK,
    NON_MEMBER,
    category,
)

TODAY = date.today()
PUBLIC_FIELDS = {"id", "name", "kind", "status", "starts_on", "ends_on", "participants"}
FULL_FIELDS = PUBLIC_FIELDS | {
    "description",
    "lead",
    "lead_name",
    "milestones",
    "services",
    "budget",
    "people",
    "created_at",
    "updated_at",
}


@pytest.fixture
def as_user(client, csrf, login_as):
    """Log in as a new user of ``role`` who reads English (the messages checked are the msgids);
    returns the headers a cookie-session write needs."""
    token = csrf()

    def login(role: str, tenant: str | None = None) -> dict[str, str]:
        login_as(role, tenant, locale="en")
        set_scope(db.session, ALL)
        return {"X-CSRFToken": token}

    return login


@pytest.fixture
def staff(as_user, members):
    return as_user("staff")


def ok(response, status: int = 200):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:800])
    set_scope(db.session, ALL)
    return response.get_json()


def get(client, url: str):
    return ok(client.get(url))


def send(client, method: str, url: str, headers: dict, body=None):
    response = client.open(url, method=method.upper(), json=body, headers=headers)
    set_scope(db.session, ALL)
    return response


def state() -> tuple:
    """Everything a projects or OZG write could change; unchanged after every refusal. Commits
    first, so whatever a refused request left in the (test-shared) session would show."""
    db.session.commit()
    set_scope(db.session, ALL)

    def rows(*columns, order):
        return db.session.execute(select(*columns).order_by(*order)).all()

    counts = tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (
            Project,
            Participation,
            Milestone,
            ProjectService,
            OzgStatus,
            OzgStatusChange,
            AuditEvent,
        )
    )
    return (
        counts,
        rows(
            Project.id,
            Project.name,
            Project.kind,
            Project.description,
            Project.status,
            Project.starts_on,
            Project.ends_on,
            Project.lead_id,
            order=[Project.id],
        ),
        rows(
            Participation.project_id,
            Participation.municipality_id,
            Participation.role,
            order=[Participation.id],
        ),
        rows(
            Milestone.id,
            Milestone.title,
            Milestone.due_on,
            Milestone.done_on,
            Milestone.note,
            order=[Milestone.id],
        ),
        rows(ProjectService.project_id, ProjectService.service_id, order=[ProjectService.service_id]),
        rows(OzgService.ozg_id, OzgService.responsibility, order=[OzgService.ozg_id]),
        rows(
            OzgStatus.municipality_id,
            OzgStatus.service_id,
            OzgStatus.maturity,
            OzgStatus.url,
            OzgStatus.project_id,
            OzgStatus.efa,
            OzgStatus.online_since,
            order=[OzgStatus.id],
        ),
        rows(
            OzgTally.scope,
            OzgTally.scope_id,
            OzgTally.topic,
            OzgTally.possible,
            OzgTally.level1,
            OzgTally.level2,
            OzgTally.level3,
            OzgTally.level4,
            order=[OzgTally.scope, OzgTally.scope_id, OzgTally.topic],
        ),
    )


def refused(response, field: str, before: tuple, *, status: int = 422, contains: str | None = None) -> str:
    """The response is a problem naming ``field`` and nothing changed; returns the field's message."""
    errors = field_errors(response, status)
    assert field in errors, errors
    if contains is not None:
        assert contains in " ".join(errors[field]), errors
    assert state() == before
    return " ".join(errors[field])


def audit_actions(entity: str) -> list[str]:
    return [
        e.action
        for e in db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == entity).order_by(AuditEvent.seq)
        ).scalars()
    ]


def report(municipality, service, maturity: int, **extra) -> None:
    """A status set through the service, committed."""
    set_scope(db.session, ALL)
    ozg.set_status(db.session, ACTOR, municipality, service, maturity=maturity, **extra)
    db.session.commit()
    set_scope(db.session, ALL)


# --- projects ---------------------------------------------------------------------------------------


def test_projects_are_created_listed_read_changed_and_moved_along(client, staff, person):
    body = {
        "name": "Digitale Kita-Anmeldung",
        "kind": "reference_implementation",
        "description": "Eine Referenz für alle",
        "starts_on": "2024-01-01",
        "ends_on": "2026-12-31",
        "lead": person.id,
    }
    response = send(client, "post", "/api/v1/projects", staff, body)
    created = ok(response, 201)
    assert response.headers["Location"].endswith(f"/api/v1/projects/{created['id']}")
    assert set(created) == FULL_FIELDS
    assert {k: created[k] for k in body} == body
    assert (created["status"], created["lead_name"], created["participants"], created["people"]) == (
        "idea",
        "Anna Beispiel",
        [],
        [],
    )
    assert created["budget"] == {"allocated_cents": 0, "committed_cents": 0, "paid_cents": 0}
    listed = get(client, "/api/v1/projects")
    assert [p["id"] for p in listed["items"]] == [created["id"]]
    assert listed["items"][0] == created
    assert get(client, f"/api/v1/projects/{created['id']}") == created
    url = f"/api/v1/projects/{created['id']}"
    changed = ok(send(client, "patch", url, staff, {"name": "Kita-Portal", "lead": None, "ends_on": None}))
    assert (changed["name"], changed["lead"], changed["lead_name"], changed["ends_on"]) == (
        "Kita-Portal",
        None,
        None,
        None,
    )
    assert changed["description"] == "Eine Referenz für alle"
    for status in ("planned", "running"):
        assert ok(send(client, "post", f"{url}/status", staff, {"status": status}))["status"] == status
    completed = ok(send(client, "post", f"{url}/status", staff, {"status": "completed", "on": "2025-06-30"}))
    assert (completed["status"], completed["starts_on"], completed["ends_on"]) == (
        "completed",
        "2024-01-01",
        "2025-06-30",
    )
    assert audit_actions("project") == ["create", "update", "change_status", "change_status", "change_status"]
    set_scope(db.session, ALL)
    assert db.session.get(Project, created["id"]).status == "completed"


def test_project_filters(client, staff, project):
    other = project_services.create_project(db.session, ACTOR, name="Netz", kind="infrastructure")
    project_services.add_participant(db.session, ACTOR, project, tenant(KIEL), "pilot")
    db.session.commit()

    def ids(query: str = "") -> list[int]:
        return [p["id"] for p in get(client, f"/api/v1/projects{query}")["items"]]

    assert ids() == [project.id, other.id]  # by name
    assert ids("?kind=infrastructure") == [other.id]
    assert ids("?status=running") == [project.id]
    assert ids("?status=idea&kind=shared_service") == []
    assert ids(f"?municipality={KIEL}") == [project.id]
    assert ids(f"?municipality={LUEBECK}") == []
    for query, name in (
        ("kind=portal2", "kind"),
        ("status=done", "status"),
        ("municipality=Kiel", "municipality"),
        ("municipality=0100200", "municipality"),
    ):
        assert name in field_errors(client.get(f"/api/v1/projects?{query}")), query


def tenant(key: str):
    from itvsh.tenants import services as tenant_services

    set_scope(db.session, ALL)
    return tenant_services.get_by_key(db.session, key)


def test_bad_project_input_is_refused_naming_the_field(client, staff, project, person):
    project_services.add_milestone(db.session, ACTOR, project, title="Pilot", due_on=date(2021, 6, 1))
    before = state()
    url = "/api/v1/projects"
    good = {"name": "Neu", "kind": "portal"}
    refused(send(client, "post", url, staff, {"kind": "portal"}), "name", before)
    for name in ("", "   ", "x" * 201, None, 5):
        refused(send(client, "post", url, staff, {**good, "name": name}), "name", before)
    refused(
        send(client, "post", url, staff, {**good, "name": "digitaler BAUANTRAG"}),
        "name",
        before,
        contains="Another project",
    )
    for kind in ("app", "", None):
        refused(send(client, "post", url, staff, {**good, "kind": kind}), "kind", before)
    refused(
        send(client, "post", url, staff, {**good, "starts_on": "2024-02-01", "ends_on": "2024-01-31"}),
        "ends_on",
        before,
    )
    refused(send(client, "post", url, staff, {**good, "starts_on": "1999-12-31"}), "starts_on", before)
    refused(send(client, "post", url, staff, {**good, "starts_on": "2024-02-30"}), "starts_on", before)
    refused(send(client, "post", url, staff, {**good, "lead": 999999}), "lead", before, contains="999999")
    for lead in (0, "1", True, 2**31, 1.5):
        refused(send(client, "post", url, staff, {**good, "lead": lead}), "lead", before)
    for unknown in ("status", "id", "budget"):
        refused(send(client, "post", url, staff, {**good, unknown: "running"}), unknown, before)
    refused(send(client, "post", url, staff, {**good, "description": "x" * 10_001}), "description", before)
    assert_problem(send(client, "post", url, staff, ["Neu"]), 400)
    one = f"{url}/{project.id}"
    # The milestone of 2021-06-01 must stay inside the period.
    refused(send(client, "patch", one, staff, {"starts_on": "2022-01-01"}), "due_on", before, contains="2022")
    refused(send(client, "patch", one, staff, {"ends_on": "2019-12-31"}), "ends_on", before)
    refused(send(client, "patch", one, staff, {"name": ""}), "name", before)
    refused(send(client, "patch", one, staff, {"status": "completed"}), "status", before)
    refused(send(client, "patch", one, staff, {"lead": 424242}), "lead", before)
    assert_problem(send(client, "patch", f"{url}/999999", staff, {"name": "X"}), 404)
    assert_problem(client.get(f"{url}/999999"), 404)
    assert_problem(client.get(f"{url}/{2**31}"), 404)
    assert state() == before


def test_status_transitions_out_of_order_are_refused(client, staff, project):
    url = f"/api/v1/projects/{project.id}/status"
    idea = ok(send(client, "post", "/api/v1/projects", staff, {"name": "Idee", "kind": "portal"}), 201)
    before = state()
    idea_url = f"/api/v1/projects/{idea['id']}/status"
    message = refused(send(client, "post", idea_url, staff, {"status": "running"}), "status", before)
    assert "idea" in message and "running" in message
    refused(send(client, "post", idea_url, staff, {"status": "completed"}), "status", before)
    refused(send(client, "post", url, staff, {"status": "planned"}), "status", before)
    refused(send(client, "post", url, staff, {"status": "done"}), "status", before)
    refused(send(client, "post", url, staff, {}), "status", before)
    refused(send(client, "post", url, staff, {"status": "completed", "on": "1999-01-01"}), "on", before)
    refused(send(client, "post", url, staff, {"status": "completed", "force": True}), "force", before)
    assert_problem(send(client, "post", "/api/v1/projects/999999/status", staff, {"status": "planned"}), 404)
    assert ok(send(client, "post", url, staff, {"status": "cancelled"}))["status"] == "cancelled"
    before = state()
    refused(send(client, "post", url, staff, {"status": "running"}), "status", before)
    refused(send(client, "post", url, staff, {"status": "cancelled"}), "status", before)


def test_participants_are_added_and_removed(client, staff, project):
    url = f"/api/v1/projects/{project.id}/participants"
    added = ok(send(client, "post", url, staff, {"municipality": KIEL, "role": "pilot"}), 201)
    assert added == {
        "municipality": KIEL,
        "municipality_name": "Kiel, Landeshauptstadt",
        "role": "pilot",
        "joined_on": TODAY.isoformat(),
    }
    second = ok(
        send(client, "post", url, staff, {"municipality": KRUMMWISCH, "joined_on": "2020-03-01"}), 201
    )
    assert (second["role"], second["joined_on"]) == ("participant", "2020-03-01")
    participants = get(client, f"/api/v1/projects/{project.id}")["participants"]
    assert [(p["municipality"], p["role"]) for p in participants] == [
        (KIEL, "pilot"),
        (KRUMMWISCH, "participant"),
    ]
    before = state()
    refused(
        send(client, "post", url, staff, {"municipality": KIEL}), "municipality", before, contains="already"
    )
    refused(send(client, "post", url, staff, {"municipality": NON_MEMBER}), "municipality", before)
    refused(send(client, "post", url, staff, {"municipality": "01002999"}), "municipality", before)
    for key in ("Kiel", "0100200", None, 1002000, "01002000\n"):
        refused(send(client, "post", url, staff, {"municipality": key}), "municipality", before)
    refused(send(client, "post", url, staff, {"municipality": LUEBECK, "role": "lead"}), "role", before)
    refused(
        send(client, "post", url, staff, {"municipality": LUEBECK, "joined_on": "2018-01-01"}),
        "municipality",
        before,
    )
    refused(send(client, "post", url, staff, {"role": "pilot"}), "municipality", before)
    assert_problem(
        send(client, "post", "/api/v1/projects/999999/participants", staff, {"municipality": KIEL}), 404
    )
    assert ok(send(client, "delete", f"{url}/{KIEL}", staff), 204) is None
    assert [p["municipality"] for p in get(client, f"/api/v1/projects/{project.id}")["participants"]] == [
        KRUMMWISCH
    ]
    before = state()
    for key in (KIEL, LUEBECK, "01002999", "Kiel"):
        assert_problem(send(client, "delete", f"{url}/{key}", staff), 404)
    assert state() == before
    assert audit_actions("participation") == ["create", "create", "delete"]
    # A finished project takes nobody new.
    ok(send(client, "post", f"/api/v1/projects/{project.id}/status", staff, {"status": "completed"}))
    before = state()
    refused(
        send(client, "post", url, staff, {"municipality": LUEBECK}), "project", before, contains="finished"
    )


def test_milestones_are_added_changed_and_removed(client, staff, project):
    url = f"/api/v1/projects/{project.id}/milestones"
    body = {"title": "Pilotbetrieb", "due_on": "2021-06-30", "note": "mit Kiel"}
    created = ok(send(client, "post", url, staff, body), 201)
    assert {k: created[k] for k in body} == body
    assert created["done_on"] is None
    done = ok(send(client, "patch", f"{url}/{created['id']}", staff, {"done_on": "2021-06-28"}))
    assert (done["done_on"], done["title"]) == ("2021-06-28", "Pilotbetrieb")
    assert [m["id"] for m in get(client, f"/api/v1/projects/{project.id}")["milestones"]] == [created["id"]]
    other = project_services.create_project(
        db.session, ACTOR, name="Anderes", kind="portal", starts_on=date(2020, 1, 1)
    )
    db.session.commit()
    before = state()
    one = f"{url}/{created['id']}"
    refused(
        send(client, "post", url, staff, {**body, "due_on": "2019-12-31"}),
        "due_on",
        before,
        contains="2020-01-01",
    )
    refused(
        send(client, "post", url, staff, {**body, "due_on": "2031-01-01"}),
        "due_on",
        before,
        contains="2030-12-31",
    )
    refused(send(client, "post", url, staff, {**body, "title": ""}), "title", before)
    refused(send(client, "post", url, staff, {**body, "title": "x" * 301}), "title", before)
    refused(send(client, "post", url, staff, {"title": "X"}), "due_on", before)
    future = (TODAY + timedelta(days=2)).isoformat()
    refused(
        send(client, "post", url, staff, {**body, "done_on": future}), "done_on", before, contains="future"
    )
    refused(send(client, "patch", one, staff, {"done_on": future}), "done_on", before)
    refused(send(client, "patch", one, staff, {"due_on": "2040-01-01"}), "due_on", before)
    refused(send(client, "patch", one, staff, {"due_on": None}), "due_on", before)
    refused(send(client, "patch", one, staff, {"project_id": other.id}), "project_id", before)
    # A milestone is reached only through its own project.
    for method in ("patch", "delete"):
        wrong = f"/api/v1/projects/{other.id}/milestones/{created['id']}"
        assert_problem(send(client, method, wrong, staff, {"title": "X"} if method == "patch" else None), 404)
        assert_problem(
            send(client, method, f"{url}/999999", staff, {"title": "X"} if method == "patch" else None), 404
        )
    assert state() == before
    assert ok(send(client, "delete", one, staff), 204) is None
    assert get(client, f"/api/v1/projects/{project.id}")["milestones"] == []
    assert audit_actions("milestone") == ["create", "update", "delete"]


def test_the_services_a_project_delivers_are_set_as_a_whole(client, staff, project, catalogue):
    url = f"/api/v1/projects/{project.id}/services"
    body = ok(send(client, "put", url, staff, {"ozg_ids": ["10169", "10000", "10169"]}))
    assert [s["ozg_id"] for s in body["services"]] == ["10000", "10169"]
    assert body["services"][0]["name"] == "Elterngeld"
    before = state()
    message = refused(
        send(client, "put", url, staff, {"ozg_ids": ["10000", "99999", "ABC"]}), "ozg_ids", before
    )
    assert "99999" in message and "ABC" in message
    for bad in ("10000", None, [10000], [""], ["x" * 11], {"a": 1}):
        refused(send(client, "put", url, staff, {"ozg_ids": bad}), "ozg_ids", before)
    refused(send(client, "put", url, staff, {}), "ozg_ids", before)
    assert_problem(send(client, "put", "/api/v1/projects/999999/services", staff, {"ozg_ids": []}), 404)
    assert ok(send(client, "put", url, staff, {"ozg_ids": []}))["services"] == []
    assert audit_actions("project")[-2:] == ["update", "update"]


# --- budget and people: the federation's, never a member's ---------------------------------------


@pytest.fixture
def funded(project, person, secondment, open_year):
    """The project with 10,000.00 € allocated, 2,500.00 € paid, and Anna working half time for it."""
    set_scope(db.session, ALL)
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year, "projekte"),
        recipient_kind="project",
        municipality=None,
        project=project,
        purpose="Betrieb Bauantrag",
        amount_cents=10_000_00,
    )
    ledger.approve(db.session, ACTOR, allocation)
    ledger.disburse(db.session, ACTOR, allocation, 2_500_00)
    assignment = staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2021, 12, 31),
        fte=500,
        role="Projektleitung Bauantrag",
    )
    project_services.add_participant(db.session, ACTOR, project, tenant(KIEL), "pilot")
    project_services.add_milestone(
        db.session, ACTOR, project, title="Geheimer Meilenstein", due_on=date(2022, 1, 1)
    )
    db.session.commit()
    set_scope(db.session, ALL)
    return assignment


def test_staff_read_the_budget_and_people_of_a_project(client, as_user, project, funded, person):
    as_user("staff")
    body = get(client, f"/api/v1/projects/{project.id}")
    assert body["budget"] == {
        "allocated_cents": 10_000_00,
        "committed_cents": 10_000_00,
        "paid_cents": 2_500_00,
    }
    assert body["people"] == [
        {
            "assignment_id": funded.id,
            "staff_id": person.id,
            "name": "Anna Beispiel",
            "starts_on": "2021-01-01",
            "ends_on": "2021-12-31",
            "fte": 500,
            "role": "Projektleitung Bauantrag",
        }
    ]
    assert get(client, "/api/v1/projects")["items"] == [body]
    # Auditors read the same, the person by pseudonym; and they never write.
    headers = as_user("auditor")
    audited = get(client, f"/api/v1/projects/{project.id}")
    assert audited["budget"] == body["budget"]
    assert [p["name"] for p in audited["people"]] == [person.pseudonym]
    text = client.get("/api/v1/projects").get_data(as_text=True)
    assert "Anna" not in text
    before = state()
    for method, url, payload in write_requests(project):
        assert_problem(send(client, method, url, headers, payload), 403)
    assert state() == before


@pytest.mark.parametrize("key", [KIEL, LUEBECK, AMT_ACHTERWEHR, KREIS_RD_ECK])
def test_members_read_only_the_public_part_of_a_project(client, as_user, project, funded, person, key):
    headers = as_user("municipality", key)
    [listed] = get(client, "/api/v1/projects?per_page=500")["items"]
    assert set(listed) == PUBLIC_FIELDS
    assert (listed["name"], listed["kind"], listed["status"], listed["starts_on"], listed["ends_on"]) == (
        "Digitaler Bauantrag",
        "shared_service",
        "running",
        "2020-01-01",
        "2030-12-31",
    )
    assert listed["participants"] == [
        {
            "municipality": KIEL,
            "municipality_name": "Kiel, Landeshauptstadt",
            "role": "pilot",
            "joined_on": TODAY.isoformat(),
        }
    ]
    assert get(client, f"/api/v1/projects/{project.id}") == listed
    text = "".join(
        client.get(url).get_data(as_text=True)
        for url in (
            "/api/v1/projects",
            f"/api/v1/projects/{project.id}",
            f"/api/v1/assignments?project={project.id}",
        )
    )
    set_scope(db.session, ALL)
    for secret in (
        "Anna",
        person.pseudonym,
        "Projektleitung",
        "1000000",
        "250000",
        "Geheimer",
        "Gemeinsames",
    ):
        assert secret not in text, secret
    # The allocation and the assignment to the project belong to no member.
    assert get(client, "/api/v1/allocations?per_page=500")["items"] == []
    assert get(client, "/api/v1/assignments?per_page=500")["items"] == []
    assert_problem(client.get(f"/api/v1/assignments/{funded.id}"), 404)
    before = state()
    for method, url, payload in write_requests(project):
        assert_problem(send(client, method, url, headers, payload), 403)
    assert state() == before


def write_requests(project) -> list[tuple[str, str, dict | None]]:
    base = f"/api/v1/projects/{project.id}"
    milestone_id = project.milestones[0].id if project.milestones else 1
    return [
        ("post", "/api/v1/projects", {"name": "X", "kind": "portal"}),
        ("patch", base, {"name": "X"}),
        ("post", f"{base}/status", {"status": "cancelled"}),
        ("post", f"{base}/participants", {"municipality": LUEBECK}),
        ("delete", f"{base}/participants/{KIEL}", None),
        ("post", f"{base}/milestones", {"title": "X", "due_on": "2025-01-01"}),
        ("patch", f"{base}/milestones/{milestone_id}", {"title": "X"}),
        ("delete", f"{base}/milestones/{milestone_id}", None),
        ("put", f"{base}/services", {"ozg_ids": []}),
        ("patch", "/api/v1/ozg/services/10000", {"responsibility": "bund"}),
    ]


def test_anonymous_gets_401_and_a_session_write_needs_a_csrf_token(client, as_user, project):
    for url in (
        "/api/v1/projects",
        f"/api/v1/projects/{project.id}",
        "/api/v1/ozg/services",
        "/api/v1/ozg/status",
    ):
        assert_problem(client.get(url), 401)
    before = state()
    assert_problem(client.post("/api/v1/projects", json={"name": "X", "kind": "portal"}), 401)
    assert_problem(client.put(f"/api/v1/ozg/status/{KIEL}/10000", json={"maturity": 3}), 401)
    set_scope(db.session, ALL)
    assert state() == before
    as_user("staff")
    before = state()  # the new user's creation is audited
    assert_problem(client.post("/api/v1/projects", json={"name": "X", "kind": "portal"}), 400)
    set_scope(db.session, ALL)
    assert state() == before


# --- the OZG catalogue ------------------------------------------------------------------------------


def test_the_catalogue_is_listed_filtered_and_its_responsibility_marked(client, as_user, members, catalogue):
    as_user("municipality", KIEL)

    def ozg_ids(query: str = "") -> list[str]:
        return [s["ozg_id"] for s in get(client, f"/api/v1/ozg/services{query}")["items"]]

    assert ozg_ids() == ["10000", "10003", "10169", "10170", "10999"]
    assert ozg_ids("?" + urlencode({"topic": "Familie & Kind"})) == ["10000", "10003"]
    assert ozg_ids("?responsibility=land") == ["10999"]
    assert ozg_ids("?q=zulass") == ["10170"]
    assert ozg_ids("?q=1016") == ["10169"]
    assert ozg_ids("?q=%25") == []  # a LIKE wildcard is searched for, not expanded
    assert ozg_ids("?life_event=Geburt") == []
    one = get(client, "/api/v1/ozg/services/10000")
    assert one == {
        "ozg_id": "10000",
        "name": "Elterngeld",
        "topic": "Familie & Kind",
        "life_event": "",
        "leika_keys": [],
        "responsibility": "municipal",
    }
    assert_problem(client.get("/api/v1/ozg/services/99999"), 404)
    for query, name in (("responsibility=kommune", "responsibility"), ("q=" + "x" * 101, "q")):
        assert name in field_errors(client.get(f"/api/v1/ozg/services?{query}")), query
    # Staff mark a service as the Bund's: it leaves the municipal figures.
    headers = as_user("staff")
    ozg.recompute_tallies(db.session)
    report(tenant(KIEL), catalogue["10000"], 3)
    land = db.session.execute(
        select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic == "")
    ).scalar_one()
    assert (land.possible, land.level3) == (1106 * 4, 1)
    changed = ok(send(client, "patch", "/api/v1/ozg/services/10000", headers, {"responsibility": "bund"}))
    assert changed["responsibility"] == "bund"
    db.session.expire_all()
    land = db.session.execute(
        select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic == "")
    ).scalar_one()
    assert (land.possible, land.level3) == (1106 * 3, 0)
    assert audit_actions("ozg_service") == ["update"]
    before = state()
    for bad in ("kommune", "", None, 1):
        refused(
            send(client, "patch", "/api/v1/ozg/services/10000", headers, {"responsibility": bad}),
            "responsibility",
            before,
        )
    refused(send(client, "patch", "/api/v1/ozg/services/10000", headers, {"name": "X"}), "name", before)
    assert_problem(
        send(client, "patch", "/api/v1/ozg/services/99999", headers, {"responsibility": "land"}), 404
    )
    assert state() == before


# --- OZG status -------------------------------------------------------------------------------------


def test_staff_report_a_status_and_the_list_filters_it(client, staff, catalogue, project):
    url = f"/api/v1/ozg/status/{KIEL}/10000"
    body = {
        "maturity": 3,
        "online_since": "2022-05-01",
        "url": "https://kiel.example/elterngeld",
        "project": project.id,
        "efa": True,
    }
    row = ok(send(client, "put", url, staff, body))
    assert {k: row[k] for k in body} == body
    assert (row["municipality"], row["municipality_name"], row["ozg_id"], row["service"], row["topic"]) == (
        KIEL,
        "Kiel, Landeshauptstadt",
        "10000",
        "Elterngeld",
        "Familie & Kind",
    )
    assert (row["maturity_model"], row["project_name"]) == ("1.x", "Digitaler Bauantrag")
    assert row["changed_by"].startswith("staff")
    # The same again changes nothing; a PUT replaces the whole status.
    before = state()
    assert ok(send(client, "put", url, staff, body)) == row
    assert state() == before
    lower = ok(send(client, "put", url, staff, {"maturity": 2}))
    assert (lower["maturity"], lower["url"], lower["project"], lower["efa"], lower["online_since"]) == (
        2,
        "",
        None,
        False,
        None,
    )
    ok(
        send(
            client,
            "put",
            f"/api/v1/ozg/status/{KRUMMWISCH}/10169",
            staff,
            {"maturity": 4, "project": project.id},
        )
    )
    ok(send(client, "put", f"/api/v1/ozg/status/{LUEBECK}/10999", staff, {"maturity": 1}))

    def rows(query: str = "") -> list[tuple[str, str, int]]:
        items = get(client, f"/api/v1/ozg/status{query}")["items"]
        return [(r["municipality"], r["ozg_id"], r["maturity"]) for r in items]

    assert rows() == [(KIEL, "10000", 2), (LUEBECK, "10999", 1), (KRUMMWISCH, "10169", 4)]
    assert rows(f"?municipality={KIEL}") == [(KIEL, "10000", 2)]
    assert rows(f"?kreis={KREIS_RD_ECK}") == [(KRUMMWISCH, "10169", 4)]
    assert rows("?kreis=01002") == [(KIEL, "10000", 2)]  # a kreisfreie Stadt is its own Kreis
    assert rows("?ozg_id=10999") == [(LUEBECK, "10999", 1)]
    assert rows("?" + urlencode({"topic": "Mobilität & Reisen"})) == [
        (LUEBECK, "10999", 1),
        (KRUMMWISCH, "10169", 4),
    ]
    assert rows("?min_maturity=2") == [(KIEL, "10000", 2), (KRUMMWISCH, "10169", 4)]
    assert rows(f"?project={project.id}") == [(KRUMMWISCH, "10169", 4)]
    assert rows(f"?municipality={NON_MEMBER}") == []
    for query, name in (
        ("municipality=01058", "municipality"),
        ("kreis=01058093", "kreis"),
        ("min_maturity=8", "min_maturity"),
        ("min_maturity=-1", "min_maturity"),
        ("min_maturity=x", "min_maturity"),
        ("project=0", "project"),
        ("project=abc", "project"),
        ("ozg_id=" + "1" * 101, "ozg_id"),
    ):
        assert name in field_errors(client.get(f"/api/v1/ozg/status?{query}")), query
    # Maturity 0 with nothing else known: no row any more (no row = maturity 0), history kept.
    response = send(client, "put", url, staff, {"maturity": 0})
    assert response.status_code == 204 and response.get_data() == b""
    assert rows(f"?municipality={KIEL}") == []
    changes = db.session.execute(
        select(OzgStatusChange.maturity)
        .where(OzgStatusChange.municipality_id == tenant(KIEL).id)
        .order_by(OzgStatusChange.id)
    ).scalars()
    assert list(changes) == [3, 2, 0]
    before = state()
    assert send(client, "put", url, staff, {"maturity": 0}).status_code == 204  # nothing to remove
    assert state() == before
    assert audit_actions("ozg_status") == ["ozg_status"] * 5


def test_bad_status_input_is_refused_naming_the_field(client, staff, catalogue, project):
    report(tenant(KIEL), catalogue["10000"], 2)
    before = state()
    url = f"/api/v1/ozg/status/{KIEL}/10000"
    for maturity in (5, -1, 10**30, "3", 3.5, True, None):
        refused(send(client, "put", url, staff, {"maturity": maturity}), "maturity", before)
    refused(send(client, "put", url, staff, {"url": "https://x.example"}), "maturity", before)
    refused(
        send(client, "put", url, staff, {"maturity": 3, "maturity_model": "2.0"}), "maturity_model", before
    )
    for link in ("javascript:alert(1)", "kiel.example", "https://", "https://x.example/" + "a" * 500, 5):
        refused(send(client, "put", url, staff, {"maturity": 3, "url": link}), "url", before)
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    for day in (tomorrow, "1999-12-31", "2022-02-30", "01.05.2022"):
        refused(send(client, "put", url, staff, {"maturity": 3, "online_since": day}), "online_since", before)
    refused(
        send(client, "put", url, staff, {"maturity": 3, "project": 999999}),
        "project",
        before,
        contains="999999",
    )
    for project_id in (0, "1", True):
        refused(send(client, "put", url, staff, {"maturity": 3, "project": project_id}), "project", before)
    for efa in ("yes", 1, 0, None):
        refused(send(client, "put", url, staff, {"maturity": 3, "efa": efa}), "efa", before)
    refused(send(client, "put", url, staff, {"maturity": 3, "changed_by": "x"}), "changed_by", before)
    # Whose status: members that are Gemeinden or Städte.
    refused(
        send(client, "put", f"/api/v1/ozg/status/{NON_MEMBER}/10000", staff, {"maturity": 1}),
        "municipality",
        before,
    )
    for key in (KREIS_RD_ECK, AMT_ACHTERWEHR):
        refused(
            send(client, "put", f"/api/v1/ozg/status/{key}/10000", staff, {"maturity": 1}),
            "municipality",
            before,
        )
    for target in (
        "/api/v1/ozg/status/01002999/10000",
        "/api/v1/ozg/status/Kiel/10000",
        f"/api/v1/ozg/status/{KIEL}/99999",
    ):
        body = assert_problem(send(client, "put", target, staff, {"maturity": 1}), 404)
        assert "01002999" in body["detail"] or "Kiel" in body["detail"] or "99999" in body["detail"]
    assert_problem(send(client, "put", url, staff, [3]), 400)
    assert state() == before


def test_a_municipality_reports_its_own_status_and_gets_403_for_another(client, as_user, members, catalogue):
    report(tenant(LUEBECK), catalogue["10000"], 1)
    headers = as_user("municipality", KIEL)
    own = ok(send(client, "put", f"/api/v1/ozg/status/{KIEL}/10000", headers, {"maturity": 3, "efa": True}))
    assert (own["municipality"], own["maturity"], own["efa"]) == (KIEL, 3, True)
    assert "changed_by" not in own
    set_scope(db.session, ALL)
    row = db.session.execute(
        select(OzgStatus).where(OzgStatus.municipality_id == tenant(KIEL).id)
    ).scalar_one()
    assert row.changed_by.startswith("municipality") and row.changed_by_id is not None
    # Another's row: 403 with a reason, whether it exists or not, and nothing changes.
    before = state()
    for key in (LUEBECK, KRUMMWISCH):
        body = assert_problem(
            send(client, "put", f"/api/v1/ozg/status/{key}/10000", headers, {"maturity": 4}), 403
        )
        assert "own municipality" in body["detail"]
    assert state() == before
    # Every member reads every row (public data), without who changed it.
    items = get(client, "/api/v1/ozg/status")["items"]
    assert [(r["municipality"], r["maturity"]) for r in items] == [(KIEL, 3), (LUEBECK, 1)]
    assert all("changed_by" not in r for r in items)
    # An Amt reports for its Gemeinden, not for others.
    amt = as_user("municipality", AMT_ACHTERWEHR)
    assert (
        ok(send(client, "put", f"/api/v1/ozg/status/{KRUMMWISCH}/10169", amt, {"maturity": 2}))["maturity"]
        == 2
    )
    before = state()
    assert_problem(send(client, "put", f"/api/v1/ozg/status/{KIEL}/10169", amt, {"maturity": 2}), 403)
    assert state() == before
    # Auditors read and never write.
    auditor = as_user("auditor")
    assert len(get(client, "/api/v1/ozg/status")["items"]) == 3
    assert get(client, "/api/v1/ozg/status")["items"][0]["changed_by"]
    before = state()
    assert_problem(send(client, "put", f"/api/v1/ozg/status/{KIEL}/10000", auditor, {"maturity": 0}), 403)
    assert state() == before


# --- robustness, the OpenAPI document and query counts --------------------------------------------


ODD_VALUES = [{"nested": [1]}, [1, 2], "x" * 10_000, "a\x00b", -(10**30), 10**30, 1e308, None, True, "", "ü€"]


def test_odd_input_never_answers_500(client, staff, project, catalogue, person):
    milestone = project_services.add_milestone(db.session, ACTOR, project, title="M", due_on=date(2021, 1, 1))
    db.session.commit()
    base = f"/api/v1/projects/{project.id}"
    writes = [
        (
            "post",
            "/api/v1/projects",
            {"name": "N", "kind": "portal", "starts_on": "2020-01-01", "lead": person.id},
        ),
        ("patch", base, {"name": "N", "description": "d", "ends_on": "2030-12-31"}),
        (
            "post",
            f"{base}/participants",
            {"municipality": LUEBECK, "role": "pilot", "joined_on": "2024-01-01"},
        ),
        ("post", f"{base}/milestones", {"title": "T", "due_on": "2024-01-01", "done_on": None, "note": ""}),
        ("patch", f"{base}/milestones/{milestone.id}", {"title": "T", "due_on": "2024-01-01"}),
        ("put", f"{base}/services", {"ozg_ids": ["10000"]}),
        ("patch", "/api/v1/ozg/services/10000", {"responsibility": "land"}),
        (
            "put",
            f"/api/v1/ozg/status/{KIEL}/10000",
            {"maturity": 3, "url": "https://x.example", "project": project.id},
        ),
        ("post", f"{base}/status", {"status": "cancelled", "on": "2024-01-01"}),  # last: it ends the project
    ]
    for method, target, valid in writes:
        for name in valid:
            for value in ODD_VALUES:
                response = send(client, method, target, staff, {**valid, name: value})
                if response.status_code not in (200, 201, 204):
                    assert 400 <= assert_problem(response, response.status_code)["status"] < 500, (
                        target,
                        name,
                        value,
                    )
                db.session.rollback()
                set_scope(db.session, ALL)
        for raw in ('{"maturity": 1e400}', "{" * 5000, "[]", "null"):
            response = client.open(
                target, method=method.upper(), data=raw, content_type="application/json", headers=staff
            )
            set_scope(db.session, ALL)
            assert 400 <= assert_problem(response, response.status_code)["status"] < 500, (target, raw[:20])
    for url in (
        "/api/v1/projects?kind=%00",
        "/api/v1/ozg/status?municipality=%ED%A0%80",
        "/api/v1/ozg/status?min_maturity=99999999999999999999",
        "/api/v1/ozg/services/%00",
        "/api/v1/projects/99999999999999999999",
        f"/api/v1/ozg/status/{KIEL}/{'9' * 300}",
    ):
        response = client.get(url)
        set_scope(db.session, ALL)
        assert response.status_code < 500, (url, response.status_code)


def test_the_openapi_document_describes_the_projects_and_ozg_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    expected = {
        "/api/v1/projects": {"get", "post"},
        "/api/v1/projects/{project_id}": {"get", "patch"},
        "/api/v1/projects/{project_id}/status": {"post"},
        "/api/v1/projects/{project_id}/participants": {"post"},
        "/api/v1/projects/{project_id}/participants/{key}": {"delete"},
        "/api/v1/projects/{project_id}/milestones": {"post"},
        "/api/v1/projects/{project_id}/milestones/{milestone_id}": {"patch", "delete"},
        "/api/v1/projects/{project_id}/services": {"put"},
        "/api/v1/ozg/services": {"get"},
        "/api/v1/ozg/services/{ozg_id}": {"get", "patch"},
        "/api/v1/ozg/status": {"get"},
        "/api/v1/ozg/status/{key}/{ozg_id}": {"put"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    assert paths["/api/v1/projects"]["post"]["description"] == "Roles: admin, staff"
    assert paths["/api/v1/projects"]["get"]["description"] == "Roles: admin, auditor, municipality, staff"
    assert (
        paths["/api/v1/ozg/status/{key}/{ozg_id}"]["put"]["description"]
        == "Roles: admin, municipality, staff"
    )
    assert "maturity 0" in paths["/api/v1/ozg/status"]["get"]["summary"]
    filters = {p["name"] for p in paths["/api/v1/ozg/status"]["get"]["parameters"]}
    assert {
        "municipality",
        "kreis",
        "ozg_id",
        "topic",
        "min_maturity",
        "project",
        "page",
        "per_page",
    } <= filters
    assert {"topic", "life_event", "responsibility", "q"} <= {
        p["name"] for p in paths["/api/v1/ozg/services"]["get"]["parameters"]
    }
    assert {"kind", "status"} <= {p["name"] for p in paths["/api/v1/projects"]["get"]["parameters"]}
    schemas = spec["components"]["schemas"]
    for name in (
        "ProjectCreate",
        "ProjectUpdate",
        "ProjectStatusChange",
        "ParticipantCreate",
        "MilestoneCreate",
        "MilestoneUpdate",
        "ProjectServices",
        "OzgServiceUpdate",
        "OzgStatusWrite",
    ):
        assert schemas[name]["additionalProperties"] is False, name
    assert set(schemas["ProjectCreate"]["required"]) == {"name", "kind"}
    assert set(schemas["OzgStatusWrite"]["required"]) == {"maturity"}
    budget = schemas["ProjectBudget"]["properties"]
    assert all(
        "integer cents" in budget[f]["description"]
        for f in ("allocated_cents", "committed_cents", "paid_cents")
    )


def test_list_statement_counts_do_not_grow_with_rows(
    client, as_user, project, catalogue, person, secondment, open_year
):
    def statements(url: str) -> int:
        db.session.expunge_all()
        with recorded_statements() as recorded:
            response = client.get(url)
        set_scope(db.session, ALL)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return len(recorded)

    urls = ("/api/v1/projects", "/api/v1/ozg/status", "/api/v1/ozg/services")
    project_id, person_id, year_id = project.id, person.id, open_year.id
    report(tenant(KIEL), catalogue["10000"], 3, project=project)
    as_user("staff")
    few = {"staff": [statements(url) for url in urls]}
    as_user("municipality", KIEL)
    few["municipality"] = [statements(url) for url in urls]

    set_scope(db.session, ALL)
    project = db.session.get(Project, project_id)
    open_year = db.session.get(FiscalYear, year_id)
    for n, key in enumerate((LUEBECK, KRUMMWISCH, "01058001", "01053002", "01054001")):
        report(
            tenant(key),
            db.session.execute(select(OzgService).where(OzgService.ozg_id == "10169")).scalar_one(),
            2,
        )
        set_scope(db.session, ALL)
        other = project_services.create_project(
            db.session, ACTOR, name=f"Projekt {n}", kind="portal", starts_on=date(2020, 1, 1)
        )
        project_services.change_status(db.session, ACTOR, other, "planned")
        project_services.add_participant(db.session, ACTOR, other, tenant(key), "pilot")
        project_services.add_milestone(db.session, ACTOR, other, title="M", due_on=date(2021, 1, 1))
        project_services.set_services(
            db.session, ACTOR, other, list(db.session.execute(select(OzgService)).scalars())
        )
        allocation = ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year, "projekte"),
            recipient_kind="project",
            municipality=None,
            project=other,
            purpose=f"P{n}",
            amount_cents=1_000_00,
        )
        ledger.approve(db.session, ACTOR, allocation)
        staffing.create_assignment(
            db.session,
            ACTOR,
            staff_member=db.session.get(type(person), person_id),
            municipality=None,
            project=other,
            target_kind="project",
            starts_on=date(2021 + n, 1, 1),
            ends_on=date(2021 + n, 6, 30),
            fte=100,
        )
        db.session.add(OzgService(ozg_id=f"2000{n}", name=f"Leistung {n}", topic=f"Thema {n}"))
        db.session.commit()
    as_user("staff")
    many = {"staff": [statements(url) for url in urls]}
    assert get(client, "/api/v1/projects")["meta"]["total"] == 6
    assert len(get(client, "/api/v1/ozg/status")["items"]) == 6
    as_user("municipality", KIEL)
    many["municipality"] = [statements(url) for url in urls]
    assert many == few
    print(
        "\n"
        + "; ".join(
            f"{who} {url}: {n}" for who, counts in many.items() for url, n in zip(urls, counts, strict=True)
        )
    )
