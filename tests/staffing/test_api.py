"""The staffing API: the staff register, secondments with their booked cost, assignments and
capacity -- good input works, bad input is refused with a problem+json naming the field and
nothing changed; who may write; what a municipality user sees of the people working for it (only
its own assignments, only name, work email, period, share and role); auditors read pseudonyms;
reading a person is audited; the OpenAPI document; no query per row in the lists."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding.models import Allocation, Booking
from itvsh.staffing import services
from itvsh.staffing.models import Assignment, Secondment, StaffCost, StaffMember
from tests.api.helpers import assert_problem, field_errors
from tests.api.test_query_count import recorded_statements
from tests.staffing.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER

LUEBECK = "01003000"
MEMBER_FIELDS = {
    "id",
    "municipality",
    "municipality_name",
    "name",
    "work_email",
    "starts_on",
    "ends_on",
    "fte",
    "role",
}
PRIVATE_FIELDS = {"pseudonym", "home_authority", "annual_cost_cents", "notes", "secondment", "staff_id"}


@pytest.fixture
def as_user(client, csrf, login_as):
    """Log in as a new user of ``role`` who reads English (the messages checked below are the
    msgids); returns the headers a cookie-session write needs."""
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
    """Everything a staffing write could change; unchanged after every refusal. Commits first, so
    whatever a refused request left in the (test-shared) session would be written and show."""
    db.session.commit()
    set_scope(db.session, ALL)
    counts = tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (StaffMember, Secondment, Assignment, StaffCost, AuditEvent, Allocation, Booking)
    )
    people = db.session.execute(
        select(
            StaffMember.id,
            StaffMember.name,
            StaffMember.work_email,
            StaffMember.home_authority,
            StaffMember.notes,
            StaffMember.annual_cost_cents,
        ).order_by(StaffMember.id)
    ).all()
    secondments = db.session.execute(
        select(
            Secondment.id,
            Secondment.instrument,
            Secondment.starts_on,
            Secondment.ends_on,
            Secondment.fte,
            Secondment.cost_bearer,
            Secondment.legal_reference,
        ).order_by(Secondment.id)
    ).all()
    assignments = db.session.execute(
        select(
            Assignment.id,
            Assignment.municipality_id,
            Assignment.secondment_id,
            Assignment.starts_on,
            Assignment.ends_on,
            Assignment.fte,
            Assignment.role,
        ).order_by(Assignment.id)
    ).all()
    return counts, people, secondments, assignments


def assign(person, key: str, start: date, end: date | None, fte: int, role: str = "") -> Assignment:
    """An assignment made through the service, committed."""
    set_scope(db.session, ALL)
    from itvsh.tenants import services as tenant_services

    assignment = services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=tenant_services.get_by_key(db.session, key),
        starts_on=start,
        ends_on=end,
        fte=fte,
        role=role,
    )
    db.session.commit()
    set_scope(db.session, ALL)
    return assignment


def refused(response, field: str, before: tuple, *, status: int = 422, contains: str | None = None) -> str:
    """The response is a problem naming ``field`` and nothing changed; returns the field's message."""
    errors = field_errors(response, status)
    assert field in errors, errors
    if contains is not None:
        assert contains in " ".join(errors[field]), errors
    assert state() == before
    return " ".join(errors[field])


# --- the staff register ---------------------------------------------------------------------------


def test_staff_are_added_listed_read_and_changed(client, staff):
    body = {
        "name": "Bernd Muster",
        "work_email": "Bernd.Muster@itv-sh.example",
        "home_authority": "Staatskanzlei",
        "notes": "Teilzeit möglich",
        "annual_cost_cents": 72_500_00,
    }
    response = send(client, "post", "/api/v1/staff", staff, body)
    created = ok(response, 201)
    assert response.headers["Location"].endswith(f"/api/v1/staff/{created['id']}")
    assert created["work_email"] == "bernd.muster@itv-sh.example"
    assert (created["name"], created["annual_cost_cents"], created["secondments"]) == (
        "Bernd Muster",
        72_500_00,
        [],
    )
    assert created["pseudonym"].startswith("MA-")
    listed = get(client, "/api/v1/staff")
    assert [p["name"] for p in listed["items"]] == ["Bernd Muster"]
    assert listed["meta"]["total"] == 1
    changed = ok(
        send(
            client,
            "patch",
            f"/api/v1/staff/{created['id']}",
            staff,
            {"name": "Bernd Neu", "annual_cost_cents": None},
        )
    )
    assert (changed["name"], changed["annual_cost_cents"], changed["notes"]) == (
        "Bernd Neu",
        None,
        "Teilzeit möglich",
    )
    set_scope(db.session, ALL)
    assert db.session.get(StaffMember, created["id"]).name == "Bernd Neu"


def test_reading_a_person_is_audited_as_a_sensitive_read(client, as_user, person, secondment):
    for role in ("staff", "auditor", "admin"):
        as_user(role)
        user_count = db.session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "sensitive_read")
        ).scalar_one()
        body = get(client, f"/api/v1/staff/{person.id}")
        assert body["id"] == person.id
        assert [s["id"] for s in body["secondments"]] == [secondment.id]
        events = (
            db.session.execute(
                select(AuditEvent).where(AuditEvent.action == "sensitive_read").order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        assert len(events) == user_count + 1
        event = events[-1]
        assert (event.entity, event.entity_id, event.after) == (
            "staff_member",
            str(person.id),
            {"view": "api"},
        )
        assert event.actor.startswith(role)
        assert event.actor_id is not None
    # The list is no read of a person's record; an unknown id records nothing.
    before = state()
    get(client, "/api/v1/staff")
    assert_problem(client.get("/api/v1/staff/999999"), 404)
    set_scope(db.session, ALL)
    assert state() == before


def test_bad_staff_input_is_refused_naming_the_field(client, staff, person):
    before = state()
    url = "/api/v1/staff"
    good = {"name": "Carla", "work_email": "carla@itv-sh.example"}
    refused(send(client, "post", url, staff, {"work_email": "x@itv-sh.example"}), "name", before)
    refused(send(client, "post", url, staff, {**good, "name": "   "}), "name", before)
    refused(send(client, "post", url, staff, {**good, "name": "x" * 201}), "name", before)
    refused(send(client, "post", url, staff, {**good, "work_email": "no-email"}), "work_email", before)
    refused(
        send(client, "post", url, staff, {**good, "work_email": "ANNA.beispiel@itv-sh.example"}),
        "work_email",
        before,
        contains="email",
    )
    for cost in (-1, 12.5, "1000", True, 10**13):
        refused(
            send(client, "post", url, staff, {**good, "annual_cost_cents": cost}), "annual_cost_cents", before
        )
    refused(send(client, "post", url, staff, {**good, "birth_date": "1970-01-01"}), "birth_date", before)
    patch_url = f"/api/v1/staff/{person.id}"
    refused(send(client, "patch", patch_url, staff, {"name": ""}), "name", before)
    refused(send(client, "patch", patch_url, staff, {"pseudonym": "MA-AAAAAA"}), "pseudonym", before)
    refused(send(client, "patch", patch_url, staff, {"annual_cost_cents": -5}), "annual_cost_cents", before)
    assert_problem(send(client, "patch", "/api/v1/staff/999999", staff, {"name": "X"}), 404)
    assert_problem(send(client, "post", url, staff, [1, 2]), 400)
    assert state() == before


# --- secondments ------------------------------------------------------------------------------------


def test_secondments_are_recorded_listed_changed_and_removed(client, staff, person, secondment):
    other = ok(
        send(client, "post", "/api/v1/staff", staff, {"name": "Dora", "work_email": "dora@itv-sh.example"}),
        201,
    )
    body = {
        "staff_id": other["id"],
        "instrument": "zuweisung",
        "starts_on": "2020-01-01",
        "ends_on": "2022-12-31",
        "fte": 500,
        "cost_bearer": "land",
        "legal_reference": "§ 20 BeamtStG",
    }
    response = send(client, "post", "/api/v1/secondments", staff, body)
    created = ok(response, 201)
    assert response.headers["Location"].endswith(f"/api/v1/secondments/{created['id']}")
    assert {k: created[k] for k in body} == body
    assert (created["name"], created["costs"]) == ("Dora", [])
    everyone = get(client, "/api/v1/secondments")["items"]
    assert [s["id"] for s in everyone] == [secondment.id, created["id"]]
    assert [s["id"] for s in get(client, f"/api/v1/secondments?staff_id={other['id']}")["items"]] == [
        created["id"]
    ]
    assert get(client, "/api/v1/secondments?staff_id=999999")["items"] == []
    assert get(client, f"/api/v1/secondments/{secondment.id}")["staff_id"] == person.id
    changed = ok(
        send(client, "patch", f"/api/v1/secondments/{created['id']}", staff, {"ends_on": None, "fte": 750})
    )
    assert (changed["ends_on"], changed["fte"], changed["instrument"]) == (None, 750, "zuweisung")
    assert ok(send(client, "delete", f"/api/v1/secondments/{created['id']}", staff), 204) is None
    assert db.session.get(Secondment, created["id"]) is None
    assert_problem(client.get(f"/api/v1/secondments/{created['id']}"), 404)


def test_bad_secondments_are_refused_naming_the_field(client, staff, person, secondment):
    a = assign(person, KIEL, date(2020, 1, 1), date(2020, 12, 31), 600)
    before = state()
    url = "/api/v1/secondments"
    good = {
        "staff_id": person.id,
        "instrument": "abordnung",
        "starts_on": "2015-01-01",
        "ends_on": "2015-12-31",
        "fte": 500,
    }
    ok_shape = send(client, "post", url, staff, {**good, "starts_on": "2016-01-01", "ends_on": "2016-01-31"})
    assert ok_shape.status_code == 201  # the good body is good
    before = state()
    # Overlapping the open-ended secondment from 2019.
    refused(
        send(client, "post", url, staff, {**good, "ends_on": "2019-01-01"}),
        "starts_on",
        before,
        contains="overlap",
    )
    refused(send(client, "post", url, staff, {**good, "ends_on": "2014-12-31"}), "ends_on", before)
    refused(send(client, "post", url, staff, {**good, "fte": 1001}), "fte", before, contains="100 %")
    for share in (0, -5):
        refused(send(client, "post", url, staff, {**good, "fte": share}), "fte", before, contains="above 0 %")
    for share in (500.5, "500", None, True):
        refused(send(client, "post", url, staff, {**good, "fte": share}), "fte", before)
    refused(
        send(client, "post", url, staff, {**good, "staff_id": 999999}), "staff_id", before, contains="999999"
    )
    for bad_id in (0, 2**31, "1", None):
        refused(send(client, "post", url, staff, {**good, "staff_id": bad_id}), "staff_id", before)
    refused(send(client, "post", url, staff, {**good, "instrument": "leihe"}), "instrument", before)
    refused(send(client, "post", url, staff, {**good, "cost_bearer": "bund"}), "cost_bearer", before)
    refused(send(client, "post", url, staff, {**good, "starts_on": "2015-02-30"}), "starts_on", before)
    refused(send(client, "post", url, staff, {**good, "starts_on": "1999-12-31"}), "starts_on", before)
    one = f"{url}/{secondment.id}"
    # The secondment must still hold its assignment and cover its share.
    refused(
        send(client, "patch", one, staff, {"ends_on": "2020-06-30"}), "ends_on", before, contains=f"#{a.id}"
    )
    refused(
        send(client, "patch", one, staff, {"starts_on": "2020-02-01"}),
        "starts_on",
        before,
        contains=f"#{a.id}",
    )
    refused(send(client, "patch", one, staff, {"fte": 500}), "fte", before, contains=f"#{a.id}")
    refused(send(client, "patch", one, staff, {"staff_id": person.id}), "staff_id", before)
    refused(send(client, "delete", one, staff), "secondment", before, contains="assignments")
    assert_problem(send(client, "patch", f"{url}/999999", staff, {"fte": 500}), 404)
    assert_problem(send(client, "delete", f"{url}/999999", staff), 404)
    assert state() == before


def test_personnel_cost_is_booked_once_per_year(client, staff, person, secondment, open_year):
    year = open_year.year
    url = f"/api/v1/secondments/{secondment.id}/costs"
    booked = ok(send(client, "post", url, staff, {"year": year}), 201)
    assert booked["amount_cents"] == 80_000_00  # a full year, full time
    assert (booked["year"], booked["secondment_id"]) == (year, secondment.id)
    allocation = db.session.get(Allocation, booked["allocation_id"])
    assert (allocation.recipient_kind, allocation.amount_cents, allocation.status) == (
        "federation",
        80_000_00,
        "approved",
    )
    assert person.pseudonym in allocation.purpose and person.name not in allocation.purpose
    detail = get(client, f"/api/v1/secondments/{secondment.id}")
    assert [(c["year"], c["allocation_id"], c["amount_cents"]) for c in detail["costs"]] == [
        (year, booked["allocation_id"], 80_000_00)
    ]
    before = state()
    refused(send(client, "post", url, staff, {"year": year}), "year", before, contains="already booked")
    refused(send(client, "post", url, staff, {"year": year + 5}), "year", before)
    for bad in ("2025", 2025.0, None, 10**12):
        refused(send(client, "post", url, staff, {"year": bad}), "year", before)
    refused(send(client, "post", url, staff, {"year": year, "amount_cents": 1}), "amount_cents", before)
    # Cost of a secondment the Land pays is not the federation's to book.
    ok(send(client, "patch", f"/api/v1/secondments/{secondment.id}", staff, {"cost_bearer": "land"}))
    before = state()
    refused(send(client, "post", url, staff, {"year": year - 1}), "cost_bearer", before)
    # A booked cost keeps its secondment on record.
    refused(send(client, "delete", f"/api/v1/secondments/{secondment.id}", staff), "secondment", before)
    assert_problem(send(client, "post", "/api/v1/secondments/999999/costs", staff, {"year": year}), 404)


# --- assignments ------------------------------------------------------------------------------------


def test_assignments_are_made_filtered_changed_and_removed(client, staff, person, secondment):
    body = {
        "staff_id": person.id,
        "municipality": KIEL,
        "starts_on": "2020-01-01",
        "ends_on": "2020-06-30",
        "fte": 600,
        "role": "E-Akte-Einführung",
    }
    response = send(client, "post", "/api/v1/assignments", staff, body)
    created = ok(response, 201)
    assert response.headers["Location"].endswith(f"/api/v1/assignments/{created['id']}")
    assert {k: created[k] for k in body} == body
    assert created["secondment"]["id"] == secondment.id
    assert (created["name"], created["annual_cost_cents"], created["municipality_name"]) == (
        "Anna Beispiel",
        80_000_00,
        "Kiel, Landeshauptstadt",
    )
    second = ok(
        send(
            client,
            "post",
            "/api/v1/assignments",
            staff,
            {**body, "municipality": KRUMMWISCH, "starts_on": "2020-07-01", "ends_on": None, "fte": 1000},
        ),
        201,
    )
    assert second["ends_on"] is None

    def ids(query: str = "") -> list[int]:
        return [a["id"] for a in get(client, f"/api/v1/assignments{query}")["items"]]

    assert ids() == [created["id"], second["id"]]
    assert ids(f"?municipality={KIEL}") == [created["id"]]
    assert ids("?municipality=01003000") == []
    assert ids("?active_on=2020-06-30") == [created["id"]]
    assert ids("?active_on=2020-07-01") == [second["id"]]
    assert ids("?active_on=2030-01-01") == [second["id"]]
    assert ids("?active_on=2019-12-31") == []
    assert ids(f"?staff_id={person.id}&active_on=2020-03-01") == [created["id"]]
    assert ids("?staff_id=999999") == []
    changed = ok(
        send(client, "patch", f"/api/v1/assignments/{created['id']}", staff, {"fte": 1000, "role": "Leitung"})
    )
    assert (changed["fte"], changed["role"]) == (1000, "Leitung")
    moved = ok(
        send(client, "patch", f"/api/v1/assignments/{created['id']}", staff, {"municipality": LUEBECK})
    )
    assert moved["municipality"] == LUEBECK
    assert ok(send(client, "delete", f"/api/v1/assignments/{created['id']}", staff), 204) is None
    assert ids() == [second["id"]]
    kinds = [
        e.action
        for e in db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "assignment").order_by(AuditEvent.seq)
        ).scalars()
    ]
    assert kinds == ["create", "create", "update", "update", "delete"]


def test_bad_assignments_are_refused_naming_the_field(client, staff, person, secondment, members):
    first = assign(person, KIEL, date(2020, 1, 1), date(2020, 6, 30), 600)
    before = state()
    url = "/api/v1/assignments"
    good = {
        "staff_id": person.id,
        "municipality": KRUMMWISCH,
        "starts_on": "2020-06-01",
        "ends_on": "2020-06-30",
        "fte": 400,
    }
    # Over-planned: 600 + 500 on 2020-06-01; the message names the day and the conflicting one.
    message = refused(
        send(client, "post", url, staff, {**good, "fte": 500}), "fte", before, contains="2020-06-01"
    )
    assert f"#{first.id}" in message
    refused(send(client, "post", url, staff, {**good, "municipality": NON_MEMBER}), "municipality", before)
    refused(send(client, "post", url, staff, {**good, "municipality": "01002999"}), "municipality", before)
    for key in ("Kiel", "0100200", "01002000\n", 1002000, None):
        refused(send(client, "post", url, staff, {**good, "municipality": key}), "municipality", before)
    refused(send(client, "post", url, staff, {**good, "ends_on": "2020-05-31"}), "ends_on", before)
    refused(send(client, "post", url, staff, {**good, "fte": 1001}), "fte", before, contains="100 %")
    refused(send(client, "post", url, staff, {**good, "fte": 0}), "fte", before, contains="0 %")
    refused(send(client, "post", url, staff, {**good, "starts_on": "2018-12-01"}), "starts_on", before)
    refused(send(client, "post", url, staff, {**good, "staff_id": 424242}), "staff_id", before)
    refused(
        send(client, "post", url, staff, {**good, "secondment_id": secondment.id}), "secondment_id", before
    )
    del good["starts_on"]
    refused(send(client, "post", url, staff, good), "starts_on", before)
    one = f"{url}/{first.id}"
    second = assign(person, KRUMMWISCH, date(2020, 7, 1), None, 500)
    before = state()
    refused(
        send(client, "patch", one, staff, {"ends_on": "2020-07-31"}), "fte", before, contains=f"#{second.id}"
    )
    refused(send(client, "patch", one, staff, {"starts_on": "2020-07-01"}), "ends_on", before)
    refused(send(client, "patch", one, staff, {"municipality": NON_MEMBER}), "municipality", before)
    refused(send(client, "patch", one, staff, {"staff_id": person.id}), "staff_id", before)
    refused(send(client, "patch", one, staff, {"fte": 1200}), "fte", before)
    assert_problem(send(client, "patch", f"{url}/999999", staff, {"fte": 100}), 404)
    assert_problem(send(client, "delete", f"{url}/{2**31}", staff), 404)
    assert state() == before


def test_bad_assignment_filters_are_refused_naming_the_parameter(client, staff):
    for query, name in (
        ("staff_id=abc", "staff_id"),
        ("staff_id=0", "staff_id"),
        ("municipality=Kiel", "municipality"),
        ("active_on=2020-13-01", "active_on"),
        ("active_on=20200101", "active_on"),
        ("active_on=yesterday", "active_on"),
    ):
        assert name in field_errors(client.get(f"/api/v1/assignments?{query}")), query
    assert "staff_id" in field_errors(client.get("/api/v1/secondments?staff_id=-1"))


# --- what a municipality user sees ----------------------------------------------------------------


@pytest.fixture
def spread(person, secondment):
    """Anna for Kiel (half), Krummwisch (in Amt Achterwehr) and the Kreis Rendsburg-Eckernförde."""
    return {
        KIEL: assign(person, KIEL, date(2020, 1, 1), None, 500, "Kiel-Rolle"),
        KRUMMWISCH: assign(person, KRUMMWISCH, date(2020, 1, 1), date(2020, 12, 31), 300, "Amt-Rolle"),
        KREIS_RD_ECK: assign(person, KREIS_RD_ECK, date(2021, 1, 1), None, 200, "Kreis-Rolle"),
    }


def test_a_municipality_user_sees_only_its_own_assignments_with_few_fields(client, as_user, spread, person):
    headers = as_user("municipality", KIEL)
    items = get(client, "/api/v1/assignments?per_page=500")["items"]
    assert [a["id"] for a in items] == [spread[KIEL].id]
    [own] = items
    assert set(own) == MEMBER_FIELDS
    assert (own["name"], own["work_email"], own["fte"], own["role"], own["starts_on"], own["ends_on"]) == (
        "Anna Beispiel",
        "anna.beispiel@itv-sh.example",
        500,
        "Kiel-Rolle",
        "2020-01-01",
        None,
    )
    detail = get(client, f"/api/v1/assignments/{spread[KIEL].id}")
    assert detail == own
    text = client.get(f"/api/v1/assignments/{spread[KIEL].id}").get_data(as_text=True)
    set_scope(db.session, ALL)
    for secret in (person.pseudonym, "Ministerium", "8000000", "federation", "abordnung"):
        assert secret not in text
    for other in (KRUMMWISCH, KREIS_RD_ECK):
        assert_problem(client.get(f"/api/v1/assignments/{spread[other].id}"), 404)
        set_scope(db.session, ALL)
    assert get(client, f"/api/v1/assignments?municipality={KRUMMWISCH}")["items"] == []
    # The federation's registers are closed to members; so is every write.
    before = state()
    for url in (
        "/api/v1/staff",
        f"/api/v1/staff/{person.id}",
        f"/api/v1/staff/{person.id}/capacity?from=2020-01-01&to=2020-12-31",
        "/api/v1/secondments",
        f"/api/v1/secondments/{spread[KIEL].secondment_id}",
    ):
        assert_problem(client.get(url), 403)
    for method, url, body in write_requests(person, spread[KIEL]):
        assert_problem(send(client, method, url, headers, body), 403)
    assert state() == before


def test_an_amt_user_sees_the_assignments_of_its_gemeinden(client, as_user, spread):
    as_user("municipality", AMT_ACHTERWEHR)
    items = get(client, "/api/v1/assignments")["items"]
    assert [(a["id"], a["municipality"]) for a in items] == [(spread[KRUMMWISCH].id, KRUMMWISCH)]
    assert set(items[0]) == MEMBER_FIELDS
    assert_problem(client.get(f"/api/v1/assignments/{spread[KIEL].id}"), 404)


def write_requests(person, assignment) -> list[tuple[str, str, dict | None]]:
    secondment_id = assignment.secondment_id
    return [
        ("post", "/api/v1/staff", {"name": "X", "work_email": "x@itv-sh.example"}),
        ("patch", f"/api/v1/staff/{person.id}", {"name": "X"}),
        (
            "post",
            "/api/v1/secondments",
            {"staff_id": person.id, "instrument": "abordnung", "starts_on": "2010-01-01", "fte": 1},
        ),
        ("patch", f"/api/v1/secondments/{secondment_id}", {"note": "X"}),
        ("delete", f"/api/v1/secondments/{secondment_id}", None),
        ("post", f"/api/v1/secondments/{secondment_id}/costs", {"year": date.today().year}),
        (
            "post",
            "/api/v1/assignments",
            {"staff_id": person.id, "municipality": KIEL, "starts_on": "2030-01-01", "fte": 1},
        ),
        ("patch", f"/api/v1/assignments/{assignment.id}", {"role": "X"}),
        ("delete", f"/api/v1/assignments/{assignment.id}", None),
    ]


# --- auditors ---------------------------------------------------------------------------------------


def test_auditors_read_everything_by_pseudonym_and_never_write(client, as_user, make_user, spread, person):
    headers = as_user("auditor")
    pseudonym = person.pseudonym
    [listed] = get(client, "/api/v1/staff")["items"]
    assert (listed["name"], listed["work_email"], listed["annual_cost_cents"]) == (
        pseudonym,
        pseudonym,
        80_000_00,
    )
    detail = get(client, f"/api/v1/staff/{person.id}")
    assert (detail["name"], detail["work_email"]) == (pseudonym, pseudonym)
    assert "notes" not in detail and detail["home_authority"] is None
    assert {s["name"] for s in get(client, "/api/v1/secondments")["items"]} == {pseudonym}
    assignments = get(client, "/api/v1/assignments")["items"]
    assert len(assignments) == 3
    assert {(a["name"], a["work_email"], a["annual_cost_cents"]) for a in assignments} == {
        (pseudonym, pseudonym, 80_000_00)
    }
    assert (
        get(client, f"/api/v1/staff/{person.id}/capacity?from=2021-01-01&to=2021-01-31")["name"] == pseudonym
    )
    text = "".join(
        client.get(url).get_data(as_text=True)
        for url in (
            "/api/v1/staff",
            "/api/v1/secondments",
            "/api/v1/assignments",
            f"/api/v1/staff/{person.id}",
        )
    )
    set_scope(db.session, ALL)
    assert "Anna" not in text and "anna.beispiel" not in text
    before = state()
    for method, url, body in write_requests(person, spread[KIEL]):
        assert_problem(send(client, method, url, headers, body), 403)
    assert state() == before
    # An admin allows names: auditors now read them.
    services.allow_auditors_names(db.session, make_user("admin"), True)
    db.session.commit()
    set_scope(db.session, ALL)
    [listed] = get(client, "/api/v1/staff")["items"]
    assert (listed["name"], listed["work_email"]) == ("Anna Beispiel", "anna.beispiel@itv-sh.example")
    assert get(client, f"/api/v1/staff/{person.id}")["notes"] == ""
    assert get(client, f"/api/v1/staff/{person.id}")["home_authority"] == person.home_authority


# --- capacity ---------------------------------------------------------------------------------------


def test_capacity_month_by_month(client, staff, person, secondment):
    assign(person, KIEL, date(2020, 1, 1), date(2020, 1, 31), 500)
    assign(person, KRUMMWISCH, date(2020, 2, 1), date(2020, 2, 29), 1000)
    body = get(client, f"/api/v1/staff/{person.id}/capacity?from=2019-12-15&to=2020-03-01")
    assert (body["staff_id"], body["name"], body["from"], body["to"]) == (
        person.id,
        "Anna Beispiel",
        "2019-12-15",
        "2020-03-01",
    )
    assert [
        (m["month"], m["available"], m["assigned"], m["free"], m["state"], m["over"]) for m in body["months"]
    ] == [
        ("2019-12", 1000, 0, 1000, "free", False),
        ("2020-01", 1000, 500, 500, "planned", False),
        ("2020-02", 1000, 1000, 0, "full", False),
        ("2020-03", 1000, 0, 1000, "free", False),
    ]
    before_secondment = get(client, f"/api/v1/staff/{person.id}/capacity?from=2018-11-01&to=2018-12-31")
    assert {m["state"] for m in before_secondment["months"]} == {"none"}
    ten_years = get(client, f"/api/v1/staff/{person.id}/capacity?from=2020-01-01&to=2029-12-31")
    assert len(ten_years["months"]) == 120


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("to=2020-12-31", "from"),
        ("from=2020-01-01", "to"),
        ("", "from"),
        ("from=2020-02-30&to=2020-12-31", "from"),
        ("from=01.01.2020&to=2020-12-31", "from"),
        ("from=2020-01-01&to=2020-12", "to"),
        ("from=2020-06-01&to=2020-05-31", "to"),
        ("from=2020-01-01&to=2030-01-01", "to"),
        ("from=0001-01-01&to=9999-12-31", "from"),
        ("from=2020-01-01&to=9999-12-31", "to"),
        ("from=1999-12-31&to=2000-01-31", "from"),
    ],
)
def test_bad_capacity_ranges_are_refused_naming_the_parameter(client, staff, person, query, name):
    errors = field_errors(client.get(f"/api/v1/staff/{person.id}/capacity?{query}"))
    assert name in errors, errors


def test_capacity_of_an_unknown_person_answers_404(client, staff):
    assert_problem(client.get("/api/v1/staff/999999/capacity?from=2020-01-01&to=2020-12-31"), 404)


# --- who may call at all ----------------------------------------------------------------------------


def test_anonymous_gets_401_and_a_session_write_needs_a_csrf_token(client, as_user, person, secondment):
    for url in ("/api/v1/staff", "/api/v1/secondments", "/api/v1/assignments", f"/api/v1/staff/{person.id}"):
        assert_problem(client.get(url), 401)
    body = {"name": "X", "work_email": "x@itv-sh.example"}
    before = state()
    assert_problem(client.post("/api/v1/staff", json=body), 401)
    set_scope(db.session, ALL)
    assert state() == before
    as_user("staff")
    before = state()
    assert_problem(client.post("/api/v1/staff", json=body), 400)
    set_scope(db.session, ALL)
    assert state() == before


def test_a_bearer_token_writes_without_csrf(client, make_user, person, secondment):
    token = auth_services.issue_token(db.session, "test", make_user("admin"))
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    created = ok(
        client.post(
            "/api/v1/assignments",
            json={"staff_id": person.id, "municipality": KIEL, "starts_on": "2024-01-01", "fte": 250},
            headers=headers,
        ),
        201,
    )
    assert (created["fte"], created["ends_on"], created["role"]) == (250, None, "")


ODD_VALUES = [{"nested": [1]}, [1, 2], "x" * 10_000, "a\x00b", -(10**30), 10**30, 1e308, None, True, "", "ü€"]


def test_odd_input_never_answers_500(client, staff, person, secondment, open_year):
    a = assign(person, KIEL, date(2020, 1, 1), date(2020, 12, 31), 500)
    writes = [
        ("post", "/api/v1/staff", {"name": "N", "work_email": "n@itv-sh.example", "annual_cost_cents": 1}),
        ("patch", f"/api/v1/staff/{person.id}", {"name": "N", "notes": "n", "annual_cost_cents": 1}),
        (
            "post",
            "/api/v1/secondments",
            {
                "staff_id": person.id,
                "instrument": "abordnung",
                "starts_on": "2010-01-01",
                "ends_on": "2010-12-31",
                "fte": 1,
            },
        ),
        ("patch", f"/api/v1/secondments/{secondment.id}", {"fte": 1000, "ends_on": None, "note": "n"}),
        ("post", f"/api/v1/secondments/{secondment.id}/costs", {"year": open_year.year}),
        (
            "post",
            "/api/v1/assignments",
            {
                "staff_id": person.id,
                "municipality": KIEL,
                "starts_on": "2021-01-01",
                "ends_on": None,
                "fte": 1,
            },
        ),
        ("patch", f"/api/v1/assignments/{a.id}", {"municipality": KIEL, "fte": 500, "ends_on": "2020-12-31"}),
    ]
    for method, target, valid in writes:
        for name in valid:
            for value in ODD_VALUES:
                response = send(client, method, target, staff, {**valid, name: value})
                if response.status_code not in (200, 201):
                    assert 400 <= assert_problem(response, response.status_code)["status"] < 500, (
                        target,
                        name,
                        value,
                    )
                db.session.rollback()
                set_scope(db.session, ALL)
        for raw in ('{"fte": 1e400}', "{" * 5000, "[]", "null"):
            response = client.open(
                target, method=method.upper(), data=raw, content_type="application/json", headers=staff
            )
            set_scope(db.session, ALL)
            assert 400 <= assert_problem(response, response.status_code)["status"] < 500, (target, raw[:20])
    for url in (
        "/api/v1/assignments?active_on=%00",
        "/api/v1/assignments?municipality=%ED%A0%80",
        f"/api/v1/staff/{person.id}/capacity?from=9999-12-01&to=9999-12-31",
        f"/api/v1/staff/{person.id}/capacity?from=0001-01-01&to=0001-01-31",
        "/api/v1/staff/99999999999999999999",
    ):
        response = client.get(url)
        set_scope(db.session, ALL)
        assert response.status_code < 500, (url, response.status_code)


# --- the OpenAPI document and query counts ---------------------------------------------------------


def test_the_openapi_document_describes_the_staffing_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    expected = {
        "/api/v1/staff": {"get", "post"},
        "/api/v1/staff/{staff_id}": {"get", "patch"},
        "/api/v1/staff/{staff_id}/capacity": {"get"},
        "/api/v1/secondments": {"get", "post"},
        "/api/v1/secondments/{secondment_id}": {"get", "patch", "delete"},
        "/api/v1/secondments/{secondment_id}/costs": {"post"},
        "/api/v1/assignments": {"get", "post"},
        "/api/v1/assignments/{assignment_id}": {"get", "patch", "delete"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    assert paths["/api/v1/staff"]["post"]["description"] == "Roles: admin, staff"
    assert paths["/api/v1/staff"]["get"]["description"] == "Roles: admin, auditor, staff"
    assert "municipality" in paths["/api/v1/assignments"]["get"]["description"]
    assert {"staff_id", "municipality", "active_on", "page", "per_page"} <= {
        p["name"] for p in paths["/api/v1/assignments"]["get"]["parameters"]
    }
    capacity = {p["name"]: p for p in paths["/api/v1/staff/{staff_id}/capacity"]["get"]["parameters"]}
    assert capacity["from"]["required"] and capacity["to"]["required"]
    schemas = spec["components"]["schemas"]
    for name in (
        "StaffMemberCreate",
        "SecondmentCreate",
        "AssignmentCreate",
        "AssignmentUpdate",
        "StaffCostRequest",
    ):
        assert schemas[name]["additionalProperties"] is False, name
    # The target is a member (municipality) or a project: one of the two, checked by the schema.
    assert set(schemas["AssignmentCreate"]["required"]) == {"staff_id", "starts_on", "fte"}
    assert {"municipality", "project"} <= set(schemas["AssignmentCreate"]["properties"])
    fte = schemas["AssignmentCreate"]["properties"]["fte"]
    assert (fte["type"], fte["minimum"], fte["maximum"]) == ("integer", 1, 1000)
    assert {"annual_cost_cents", "pseudonym"} <= set(schemas["Assignment"]["properties"])
    assert "amount_cents" in schemas["StaffCost"]["properties"]


def test_list_statement_counts_do_not_grow_with_rows(client, staff, person, secondment, members):
    def statements(url: str) -> int:
        db.session.expunge_all()
        with recorded_statements() as recorded:
            response = client.get(url)
        set_scope(db.session, ALL)
        assert response.status_code == 200
        return len(recorded)

    urls = ("/api/v1/assignments", "/api/v1/secondments", "/api/v1/staff")
    person_id = person.id
    assign(person, KIEL, date(2020, 1, 1), date(2020, 1, 31), 500)
    few = [statements(url) for url in urls]
    person = db.session.get(StaffMember, person_id)
    for n, key in enumerate((LUEBECK, KRUMMWISCH, KREIS_RD_ECK, AMT_ACHTERWEHR)):
        assign(person, key, date(2021 + n, 1, 1), date(2021 + n, 12, 31), 300)
    for n in range(3):
        other = services.create_staff_member(
            db.session, ACTOR, name=f"P{n}", work_email=f"p{n}@itv-sh.example"
        )
        services.create_secondment(
            db.session,
            ACTOR,
            staff_member=other,
            instrument="zuweisung",
            starts_on=date(2020, 1, 1),
            ends_on=None,
            fte=500,
        )
    db.session.commit()
    set_scope(db.session, ALL)
    assert [statements(url) for url in urls] == few


# --- shared projects as targets ---------------------------------------------------------------------


def new_project(name: str = "Digitaler Bauantrag", *, running: bool = True, ends_on: date | None = None):
    """A shared project from 2020-01-01 (running, or still an idea); committed."""
    from itvsh.projects import services as project_services

    set_scope(db.session, ALL)
    project = project_services.create_project(
        db.session, ACTOR, name=name, kind="shared_service", starts_on=date(2020, 1, 1), ends_on=ends_on
    )
    if running:
        project_services.change_status(db.session, ACTOR, project, "planned")
        project_services.change_status(db.session, ACTOR, project, "running")
    db.session.commit()
    set_scope(db.session, ALL)
    return project


def targets_on_record() -> list[tuple]:
    """Each assignment's kind of target, member and project (what ``state`` leaves out)."""
    set_scope(db.session, ALL)
    return db.session.execute(
        select(
            Assignment.id, Assignment.target_kind, Assignment.municipality_id, Assignment.project_id
        ).order_by(Assignment.id)
    ).all()


def test_a_person_is_assigned_to_a_project(client, staff, person, secondment):
    project, other = new_project(), new_project("Netz")
    body = {
        "staff_id": person.id,
        "project": project.id,
        "starts_on": "2021-01-01",
        "ends_on": "2021-12-31",
        "fte": 500,
        "role": "Projektleitung",
    }
    created = ok(send(client, "post", "/api/v1/assignments", staff, body), 201)
    assert {k: created[k] for k in body} == body
    assert (
        created["target_kind"],
        created["project_name"],
        created["municipality"],
        created["municipality_name"],
    ) == (
        "project",
        "Digitaler Bauantrag",
        None,
        None,
    )
    member = assign(person, KIEL, date(2021, 1, 1), date(2021, 12, 31), 300)
    assert get(client, f"/api/v1/assignments/{member.id}")["project"] is None

    def ids(query: str = "") -> list[int]:
        return [a["id"] for a in get(client, f"/api/v1/assignments{query}")["items"]]

    assert ids() == [created["id"], member.id]
    assert ids(f"?project={project.id}") == [created["id"]]
    assert ids(f"?project={other.id}") == []
    assert ids("?project=999999") == []
    assert "project" in field_errors(client.get("/api/v1/assignments?project=x"))
    moved = ok(send(client, "patch", f"/api/v1/assignments/{created['id']}", staff, {"project": other.id}))
    assert (moved["project"], moved["project_name"]) == (other.id, "Netz")
    # Its people are the assignments to it.
    from itvsh.projects.services import project_people

    set_scope(db.session, ALL)
    assert [a.id for a in project_people(db.session, other)] == [created["id"]]


def test_bad_project_targets_are_refused_naming_the_field(client, staff, person, secondment):
    project = new_project(ends_on=date(2022, 12, 31))
    idea = new_project("Nur eine Idee", running=False)
    to_project = services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2021, 6, 30),
        fte=200,
    )
    db.session.commit()
    to_member = assign(person, KIEL, date(2021, 1, 1), date(2021, 6, 30), 200)
    before, on_record = state(), targets_on_record()
    url = "/api/v1/assignments"
    good = {
        "staff_id": person.id,
        "project": project.id,
        "starts_on": "2022-01-01",
        "ends_on": "2022-06-30",
        "fte": 100,
    }
    for change, field in (
        ({"municipality": KIEL}, "project"),  # a member or a project, not both
        ({"project": 999999}, "project"),
        ({"project": idea.id}, "project"),  # only planned or running projects
        ({"project": None}, "project"),
        ({"project": 0}, "project"),
        ({"project": "1"}, "project"),
        ({"project": True}, "project"),
        ({"starts_on": "2019-06-01"}, "starts_on"),  # before the project starts
        ({"ends_on": "2023-01-31"}, "ends_on"),  # after it ends
        ({"ends_on": None}, "ends_on"),
    ):
        errors = field_errors(send(client, "post", url, staff, {**good, **change}))
        assert field in errors, (change, errors)
    del good["project"]
    assert "municipality" in field_errors(send(client, "post", url, staff, good))  # neither
    assert "999999" in " ".join(
        field_errors(send(client, "post", url, staff, {**good, "project": 999999}))["project"]
    )
    for target, change, field in (
        (to_project, {"municipality": KIEL}, "municipality"),  # a project's assignment stays a project's
        (to_member, {"project": project.id}, "project"),  # a member's stays a member's
        (to_project, {"project": idea.id}, "project"),
        (to_project, {"project": 999999}, "project"),
        (to_project, {"project": None}, "project"),
        (to_project, {"ends_on": "2023-06-30"}, "ends_on"),
    ):
        errors = field_errors(send(client, "patch", f"{url}/{target.id}", staff, change))
        assert field in errors, (change, errors)
    assert state() == before
    assert targets_on_record() == on_record


def test_a_member_never_sees_an_assignment_to_a_project(client, as_user, person, secondment):
    project = new_project()
    to_project = services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=None,
        fte=200,
        role="Bauantrag-Leitung",
    )
    db.session.commit()
    own = assign(person, KIEL, date(2021, 1, 1), None, 200, "Kiel-Rolle")
    as_user("municipality", KIEL)
    assert [a["id"] for a in get(client, "/api/v1/assignments?per_page=500")["items"]] == [own.id]
    assert_problem(client.get(f"/api/v1/assignments/{to_project.id}"), 404)
    set_scope(db.session, ALL)
    as_user("auditor")
    items = get(client, "/api/v1/assignments")["items"]
    assert {(a["target_kind"], a["project"]) for a in items} == {("project", project.id), ("member", None)}
