"""The staffing admin through the client: the staff register (create and edit with money text, bad
input refused at its field), a person's detail page (audited as a sensitive read, no values in the
trail), secondments (share in percent, overlaps refused, booking of personnel cost into the ledger),
assignments (over-planning refused naming the day and the conflicting assignment), auditors (read,
never write; exports by pseudonym until an admin allows names), municipality users (shut out), the
list pages' statement counts, and the staff section of a municipality's detail page.

Every refused request must leave the staffing tables, the ledger and the audit trail as they were."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.money import format_money
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding.models import Allocation, BudgetCategory
from itvsh.staffing import services
from itvsh.staffing.models import Assignment, Secondment, StaffCost, StaffMember
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.conftest import csrf_token
from tests.staffing.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KRUMMWISCH

STAFF = "/admin/staffing/staff/"
SECONDMENTS = "/admin/staffing/secondments/"
ASSIGNMENTS = "/admin/staffing/assignments/"
MUNICIPALITIES = "/admin/municipalities/"
LIST_LIMIT = 4  # the user, the person filter options (or the names switch), the count, the page


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
        count(StaffMember),
        count(Secondment),
        count(Assignment),
        count(StaffCost),
        count(Allocation),
        count(AuditEvent),
    )


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


def t(client, msgid: str, **variables) -> str:
    return translated(client.application, msgid, **variables)


def exported(client, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, url
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def fresh(obj):
    scoped().refresh(obj)
    return obj


def assign(person, municipality, start, end, fte, role=""):
    assignment = services.create_assignment(
        scoped(),
        ACTOR,
        staff_member=person,
        municipality=municipality,
        starts_on=start,
        ends_on=end,
        fte=fte,
        role=role,
    )
    db.session.commit()
    scoped()
    return assignment


@pytest.fixture
def staff(client, login_as, members):
    return login_as("staff")


STAFF_FORM = {
    "name": "Bernd Muster",
    "work_email": "Bernd.Muster@ITV-SH.example",
    "home_authority": "Finanzministerium",
    "notes": "",
    "annual_cost": "",
}


# --- the staff register ---------------------------------------------------------------------------------


def test_staff_create_and_edit_a_person_with_money_text(client, staff):
    assert client.get(STAFF + "new/").status_code == 200
    events = count(AuditEvent)
    response = post(client, STAFF + "new/", {**STAFF_FORM, "annual_cost": "85.000,50 €"})
    assert response.status_code == 302, flashes(client.get(STAFF))
    member = scoped().execute(select(StaffMember).where(StaffMember.name == "Bernd Muster")).scalar_one()
    assert response.headers["Location"].endswith(f"{STAFF}details/?id={member.id}")
    assert member.work_email == "bernd.muster@itv-sh.example"
    assert member.annual_cost_cents == 8_500_050
    assert re.fullmatch(r"MA-[A-Z2-9]{6}", member.pseudonym)
    created = scoped().execute(select(AuditEvent).where(AuditEvent.action == "create")).scalars().all()
    assert [e.entity for e in created][-1:] == ["staff_member"] and count(AuditEvent) == events + 1

    form = client.get(f"{STAFF}edit/?id={member.id}").get_data(as_text=True)
    assert 'value="85.000,50"' in form  # the cost as a German user types it
    response = post(
        client, f"{STAFF}edit/?id={member.id}", {**STAFF_FORM, "name": "Bernd Muster-Lang", "annual_cost": ""}
    )
    assert response.status_code == 302
    member = fresh(member)
    assert (member.name, member.annual_cost_cents) == ("Bernd Muster-Lang", None)
    update = scoped().execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
    assert update.action == "update" and "8500050" not in update.payload  # the figure stays out

    rows = cells(client.get(STAFF + "?search=muster-lang"))
    assert [(r["name"], r["work_email"], r["pseudonym"]) for r in rows] == [
        ("Bernd Muster-Lang", "bernd.muster@itv-sh.example", member.pseudonym)
    ]


@pytest.mark.parametrize(
    ("changes", "field", "msgid", "variables"),
    [
        ({"work_email": "not-an-email"}, "work_email", "This is not a valid email address.", {}),
        (
            {"work_email": "ANNA.beispiel@itv-sh.example"},
            "work_email",
            "Another person in the register has this work email.",
            {},
        ),
        ({"annual_cost": "-5,00"}, "annual_cost", "The personnel cost cannot be negative.", {}),
        (
            {"annual_cost": "1,234"},
            "annual_cost",
            "An amount has at most two decimal places (whole cents).",
            {},
        ),
        ({"name": "   "}, "name", "Please fill in this field.", {}),
    ],
)
def test_bad_staff_input_is_refused_at_its_field_and_changes_nothing(
    client, staff, person, changes, field, msgid, variables
):
    before = state()
    response = post(client, STAFF + "new/", {**STAFF_FORM, **changes})
    assert response.status_code == 200
    assert t(client, msgid, **variables) in field_errors(response, field)
    assert state() == before
    # the same on editing another person: nothing changes
    other = services.create_staff_member(
        scoped(), ACTOR, name="Carla Test", work_email="carla@itv-sh.example"
    )
    scoped().commit()
    before = state()
    response = post(
        client, f"{STAFF}edit/?id={other.id}", {**STAFF_FORM, "work_email": "carla@itv-sh.example", **changes}
    )
    assert response.status_code == 200
    assert t(client, msgid, **variables) in field_errors(response, field)
    assert state() == before
    assert (fresh(other).name, other.annual_cost_cents) == ("Carla Test", None)


def test_the_register_has_no_delete(client, staff, person):
    before = state()
    assert post(client, STAFF + "delete/", {"id": person.id}).status_code == 302
    assert post(client, STAFF + "action/", {"action": "delete", "rowid": person.id}).status_code == 302
    assert state() == before
    assert "/delete/" not in client.get(STAFF).get_data(as_text=True)


# --- a person's detail page ------------------------------------------------------------------------------


def test_the_detail_page_shows_everything_and_is_recorded_as_a_sensitive_read(
    client, staff, members, person, secondment
):
    assign(person, members[KIEL], date(2020, 1, 1), None, 500, role="OZG-Lotsin")
    reads = count(AuditEvent, AuditEvent.action == "sensitive_read")
    response = client.get(f"{STAFF}details/?id={person.id}")
    assert response.status_code == 200
    page = text_of(response)
    assert "Anna Beispiel" in page and person.pseudonym in page and "Ministerium für Digitalisierung" in page
    assert format_money(80_000_00, "de") in page  # personnel cost: federation users and auditors
    assert "§ 14 LBG" in page and "OZG-Lotsin" in page and "Kiel" in page
    months = re.findall(r'data-month="(\d{4}-\d\d)" data-state="(\w+)"', page)
    assert len(months) == 12 and months[0][0] == f"{date.today().year}-01"
    assert {s for _m, s in months} == {"planned"}  # 50 % of a full-time secondment all year
    assert f"{SECONDMENTS}edit/?id={secondment.id}" in page and "itvsh-book-cost" not in page  # no open year

    events = (
        scoped()
        .execute(select(AuditEvent).where(AuditEvent.action == "sensitive_read").order_by(AuditEvent.seq))
        .scalars()
        .all()
    )
    assert len(events) == reads + 1
    event = events[-1]
    assert (event.entity, event.entity_id, event.actor_id) == ("staff_member", str(person.id), staff.id)
    assert "8000000" not in event.payload and "80000" not in event.payload
    assert "Beispiel" not in event.payload and "annual" not in event.payload  # who read whom, no values
    client.get(f"{STAFF}details/?id={person.id}")
    assert count(AuditEvent, AuditEvent.action == "sensitive_read") == reads + 2  # every read

    assert client.get(f"{STAFF}details/?id=999999").status_code == 404
    assert client.get(f"{STAFF}details/?id=abc").status_code == 404


# --- secondments -----------------------------------------------------------------------------------------


def secondment_form(person, **changes) -> dict:
    return {
        "staff_member": str(person.id),
        "instrument": "zuweisung",
        "starts_on": "2031-01-01",
        "ends_on": "",
        "fte": "50",
        "cost_bearer": "land",
        "legal_reference": "§ 20 BeamtStG",
        "note": "",
        **changes,
    }


def test_an_overlapping_secondment_is_refused_with_the_services_message(client, staff, person, secondment):
    before = state()
    response = post(client, SECONDMENTS + "new/", secondment_form(person, starts_on="2024-01-01"))
    assert response.status_code == 200
    message = field_errors(response, "starts_on")
    assert "2019-01-01" in message and "Anna Beispiel" in message
    assert message in flashes(response)
    assert state() == before


def test_secondments_are_created_edited_and_deleted_through_the_services(client, staff, person, secondment):
    # end the open secondment, then add a part-time one after it with an open end
    response = post(
        client,
        f"{SECONDMENTS}edit/?id={secondment.id}",
        {
            **secondment_form(
                person,
                instrument="abordnung",
                starts_on="2019-01-01",
                ends_on="2030-12-31",
                cost_bearer="federation",
            )
        },
    )
    assert response.status_code == 302
    assert fresh(secondment).ends_on == date(2030, 12, 31)
    response = post(client, SECONDMENTS + "new/", secondment_form(person, fte="33,3"))
    assert response.status_code == 302
    added = scoped().execute(select(Secondment).where(Secondment.starts_on == date(2031, 1, 1))).scalar_one()
    assert (added.fte, added.ends_on, added.instrument, added.cost_bearer) == (333, None, "zuweisung", "land")
    rows = cells(client.get(SECONDMENTS + f"?flt0_person={person.id}&flt1_instrument=zuweisung"))
    assert [(r["staff_member"], r["fte"], r["ends_on"]) for r in rows] == [
        ("Anna Beispiel", "33,3 %", t(client, "open end"))
    ]
    assert len(cells(client.get(SECONDMENTS + "?flt0_cost_bearer=federation"))) == 1

    before = state()
    for share, msgid, variables in (
        ("33,33", "A share has at most one decimal place (e.g. 33,3).", {}),
        ("150", "The share cannot be above 100 %.", {}),
        ("0", "The share must be above 0 %.", {}),
        ("-5", "The share must be above 0 %.", {}),
        ("halb", '"%(text)s" is not a share in percent. Write e.g. 50 or 33,3.', {"text": "halb"}),
    ):
        response = post(client, f"{SECONDMENTS}edit/?id={added.id}", secondment_form(person, fte=share))
        assert response.status_code == 200
        assert t(client, msgid, **variables) in field_errors(response, "fte"), share
    response = post(
        client, SECONDMENTS + "new/", secondment_form(person, starts_on="2035-01-01", ends_on="2034-12-31")
    )
    assert t(client, "The last day cannot be before the first day.") in field_errors(response, "ends_on")
    assert state() == before and fresh(added).fte == 333

    assert post(client, SECONDMENTS + "delete/", {"id": added.id}).status_code == 302
    assert scoped().get(Secondment, added.id) is None


def test_a_secondment_with_assignments_is_not_deleted(client, staff, members, person, secondment):
    assign(person, members[KIEL], date(2020, 1, 1), None, 500)
    before = state()
    response = post(client, SECONDMENTS + "delete/", {"id": secondment.id}, follow_redirects=True)
    assert t(client, "This secondment has assignments; remove them first.") in flashes(response)
    assert state() == before


def test_staff_book_the_personnel_cost_of_a_federation_borne_secondment(
    client, staff, person, secondment, open_year
):
    year = open_year.year
    page = client.get(f"{SECONDMENTS}details/?id={secondment.id}").get_data(as_text=True)
    assert "itvsh-book-cost" in page
    expected = services.staff_cost_cents(secondment, year)
    assert expected == 80_000_00  # full time, the whole year
    response = post(client, SECONDMENTS + "book/", {"id": secondment.id, "year": year}, follow_redirects=True)
    cost = scoped().execute(select(StaffCost)).scalar_one()
    allocation = scoped().get(Allocation, cost.allocation_id)
    personal = scoped().get(BudgetCategory, allocation.category_id)
    assert (cost.amount_cents, allocation.amount_cents) == (expected, expected)
    assert (personal.code, allocation.recipient_kind, allocation.status) == (
        "personal",
        "federation",
        "approved",
    )
    assert person.pseudonym in allocation.purpose and "Anna" not in allocation.purpose
    assert t(
        client,
        "The personnel cost of %(amount)s for %(year)s was booked as allocation %(id)s.",
        amount=format_money(expected, "de"),
        year=year,
        id=allocation.id,
    ) in flashes(response)
    assert f"/admin/funding/allocations/details/?id={allocation.id}" in response.get_data(as_text=True)

    before = state()
    response = post(client, SECONDMENTS + "book/", {"id": secondment.id, "year": year}, follow_redirects=True)
    assert t(
        client,
        "The cost of this secondment for %(year)s is already booked (allocation %(id)s).",
        year=year,
        id=allocation.id,
    ) in flashes(response)
    response = post(
        client, SECONDMENTS + "book/", {"id": secondment.id, "year": "zwanzig"}, follow_redirects=True
    )
    assert t(client, "Please choose a fiscal year.") in flashes(response)
    response = post(client, SECONDMENTS + "book/", {"id": secondment.id, "year": 1999}, follow_redirects=True)
    assert t(client, "There is no fiscal year %(year)s.", year=1999) in flashes(response)
    assert post(client, SECONDMENTS + "book/", {"id": 999999, "year": year}).status_code == 404
    assert state() == before


def test_a_land_borne_secondment_books_nothing(client, staff, person, secondment, open_year):
    services.update_secondment(scoped(), ACTOR, secondment, cost_bearer="land")
    scoped().commit()
    assert "itvsh-book-cost" not in client.get(f"{SECONDMENTS}details/?id={secondment.id}").get_data(
        as_text=True
    )
    before = state()
    response = post(
        client, SECONDMENTS + "book/", {"id": secondment.id, "year": open_year.year}, follow_redirects=True
    )
    assert t(client, "The Land bears the cost of this secondment; there is nothing to book.") in flashes(
        response
    )
    assert state() == before


# --- assignments -----------------------------------------------------------------------------------------


def assignment_form(person, **changes) -> dict:
    return {
        "staff_member": str(person.id),
        "member": f"Krummwisch ({KRUMMWISCH})",
        "starts_on": "2020-06-01",
        "ends_on": "2020-06-30",
        "fte": "50",
        "role": "Beratung",
        **changes,
    }


def test_an_over_planned_assignment_is_refused_naming_the_day_and_the_conflict(
    client, staff, members, person, secondment
):
    first = assign(person, members[KIEL], date(2020, 1, 1), date(2020, 6, 30), 600)
    form = client.get(ASSIGNMENTS + "new/").get_data(as_text=True)
    assert f'value="{members[KIEL].name} ({KIEL})"' in form  # the member list offers today's members
    before = state()
    response = post(client, ASSIGNMENTS + "new/", assignment_form(person))
    assert response.status_code == 200
    message = field_errors(response, "fte")
    assert "2020-06-01" in message and f"#{first.id}" in message and "Kiel" in message
    assert "110 %" in message and "100 %" in message
    assert state() == before

    response = post(client, ASSIGNMENTS + "new/", assignment_form(person, fte="40"))  # exactly 100 %
    assert response.status_code == 302
    added = (
        scoped()
        .execute(select(Assignment).where(Assignment.municipality_id == members[KRUMMWISCH].id))
        .scalar_one()
    )
    assert (added.fte, added.role, added.secondment_id) == (400, "Beratung", secondment.id)

    # editing the first one up refuses the same way, naming the other
    before = state()
    response = post(
        client,
        f"{ASSIGNMENTS}edit/?id={first.id}",
        assignment_form(person, member=KIEL, starts_on="2020-01-01", fte="70"),
    )
    assert response.status_code == 200
    message = field_errors(response, "fte")
    assert "2020-06-01" in message and f"#{added.id}" in message
    assert state() == before and fresh(first).fte == 600


def test_assignments_choose_the_member_by_key_or_name_and_refuse_unknown_ones(
    client, staff, members, person, secondment
):
    response = post(client, ASSIGNMENTS + "new/", assignment_form(person, member=AMT_ACHTERWEHR, ends_on=""))
    assert response.status_code == 302
    response = post(client, ASSIGNMENTS + "new/", assignment_form(person, member="krummwisch", fte="10"))
    assert response.status_code == 302
    targets = {a.municipality_id: a for a in scoped().execute(select(Assignment)).scalars()}
    assert set(targets) == {members[AMT_ACHTERWEHR].id, members[KRUMMWISCH].id}
    assert targets[members[AMT_ACHTERWEHR].id].ends_on is None

    before = state()
    for text, msgid, variables in (
        ("09999999", "There is no municipality with the key %(key)s.", {"key": "09999999"}),
        ("Nirgendwo", "Please enter the official key of the member or choose it from the list.", {}),
        ("", "Please choose the member the person works for.", {}),
    ):
        response = post(client, ASSIGNMENTS + "new/", assignment_form(person, member=text, fte="1"))
        assert response.status_code == 200
        assert t(client, msgid, **variables) in field_errors(response, "member"), text
    response = post(client, ASSIGNMENTS + "new/", assignment_form(person, starts_on="2018-06-01", fte="1"))
    assert t(
        client,
        "%(name)s is not seconded to the federation on %(day)s.",
        name="Anna Beispiel",
        day="2018-06-01",
    ) in field_errors(response, "starts_on")
    assert state() == before

    rows = cells(client.get(ASSIGNMENTS + f"?flt0_member={KRUMMWISCH}"))
    assert [(r["staff_member"], r["member"], r["fte"]) for r in rows] == [
        ("Anna Beispiel", f"Krummwisch ({KRUMMWISCH})", "10 %")
    ]
    assert len(cells(client.get(ASSIGNMENTS + "?flt0_period=past"))) == 1
    assert len(cells(client.get(ASSIGNMENTS + "?flt0_period=current"))) == 1
    assert len(cells(client.get(ASSIGNMENTS + f"?flt0_person={person.id}"))) == 2

    removed = targets[members[KRUMMWISCH].id]
    assert post(client, ASSIGNMENTS + "delete/", {"id": removed.id}).status_code == 302
    assert scoped().get(Assignment, removed.id) is None
    assert count(AuditEvent, AuditEvent.action == "delete", AuditEvent.entity == "assignment") == 1


def _project(name: str, status: str, ends_on: date | None = date(2025, 12, 31)):
    """A project from 2020-01-01 (idea, or moved on to ``status``)."""
    from itvsh.projects import services as project_services

    session = scoped()
    project = project_services.create_project(
        session, ACTOR, name=name, kind="infrastructure", starts_on=date(2020, 1, 1), ends_on=ends_on
    )
    for step in {
        "idea": (),
        "planned": ("planned",),
        "running": ("planned", "running"),
        "completed": ("planned", "running", "completed"),
    }[status]:
        project_services.change_status(session, ACTOR, project, step)
    session.commit()
    scoped()
    return project


def test_an_assignment_to_a_shared_project_through_the_form(client, staff, members, person, secondment):
    running = _project("Landesrechenzentrum", "running")
    done = _project("Altprojekt", "completed", ends_on=date(2021, 12, 31))
    form = text_of(client.get(ASSIGNMENTS + f"new/?target_kind=project&project={running.id}"))
    assert f'<option selected value="{running.id}">Landesrechenzentrum</option>' in form
    assert '<option selected value="project">' in form and "Altprojekt" not in form
    data = assignment_form(person, target_kind="project", member="", project=str(running.id), role="Betrieb")
    response = post(client, ASSIGNMENTS + "new/", data)
    assert response.status_code == 302, flashes(client.get(ASSIGNMENTS))
    added = scoped().execute(select(Assignment)).scalar_one()
    assert (added.target_kind, added.project_id, added.municipality_id, added.role) == (
        "project",
        running.id,
        None,
        "Betrieb",
    )
    rows = cells(client.get(ASSIGNMENTS))
    assert [(r["staff_member"], r["member"], r["fte"]) for r in rows] == [
        ("Anna Beispiel", "Landesrechenzentrum", "50 %")
    ]
    assert f"/admin/projects/details/?id={running.id}" in text_of(client.get(ASSIGNMENTS))
    assert len(cells(client.get(ASSIGNMENTS + "?flt0_target_kind=project"))) == 1
    assert len(cells(client.get(ASSIGNMENTS + "?flt0_target_kind=member"))) == 0
    assert client.get(f"{STAFF}details/?id={person.id}").status_code == 200
    export = exported(client, ASSIGNMENTS + "export/csv/")
    columns = [t(client, label) for label in ("Kind of target", "Official key", "Works for")]
    assert [tuple(r[c] for c in columns) for r in export] == [("project", "", "Landesrechenzentrum")]

    # editing: the project stays a project; no member field
    edit = text_of(client.get(f"{ASSIGNMENTS}edit/?id={added.id}"))
    assert 'name="member"' not in edit and f'<option selected value="{running.id}">' in edit
    response = post(client, f"{ASSIGNMENTS}edit/?id={added.id}", {**data, "fte": "20"})
    assert response.status_code == 302 and fresh(added).fte == 200

    before = state()
    for changes, field, msgid, variables in (
        (
            {"project": str(done.id)},
            "project",
            "The project %(name)s is %(status)s; people work only for planned or running projects.",
            {"name": "Altprojekt", "status": translated(client.application, "completed")},
        ),
        ({"project": ""}, "project", "Please choose the project the person works for.", {}),
        ({"project": "999999"}, "project", "There is no such project.", {}),
        (
            {"ends_on": "2026-01-31", "starts_on": "2025-12-01"},
            "ends_on",
            "The project %(name)s ends on %(day)s.",
            {"name": "Landesrechenzentrum", "day": "2025-12-31"},
        ),
    ):
        response = post(client, ASSIGNMENTS + "new/", {**data, "fte": "10", **changes})
        assert response.status_code == 200, changes
        assert t(client, msgid, **variables) in field_errors(response, field), changes
    assert state() == before


# --- auditors, municipality users, exports ---------------------------------------------------------------


def _write_requests(person, secondment, assignment) -> list[tuple[str, str, dict]]:
    return [
        ("GET", STAFF + "new/", {}),
        ("POST", STAFF + "new/", STAFF_FORM),
        ("GET", f"{STAFF}edit/?id={person.id}", {}),
        ("POST", f"{STAFF}edit/?id={person.id}", {**STAFF_FORM, "name": "HACKED"}),
        ("POST", STAFF + "delete/", {"id": person.id}),
        ("POST", STAFF + "auditor-names/", {"allowed": "1"}),
        ("GET", SECONDMENTS + "new/", {}),
        ("POST", SECONDMENTS + "new/", secondment_form(person)),
        ("GET", f"{SECONDMENTS}edit/?id={secondment.id}", {}),
        ("POST", f"{SECONDMENTS}edit/?id={secondment.id}", secondment_form(person, legal_reference="HACKED")),
        ("POST", SECONDMENTS + "delete/", {"id": secondment.id}),
        ("POST", SECONDMENTS + "action/", {"action": "delete", "rowid": secondment.id}),
        ("POST", SECONDMENTS + "book/", {"id": secondment.id, "year": date.today().year}),
        ("GET", ASSIGNMENTS + "new/", {}),
        ("POST", ASSIGNMENTS + "new/", assignment_form(person, fte="1")),
        ("GET", f"{ASSIGNMENTS}edit/?id={assignment.id}", {}),
        ("POST", f"{ASSIGNMENTS}edit/?id={assignment.id}", assignment_form(person, role="HACKED")),
        ("POST", ASSIGNMENTS + "delete/", {"id": assignment.id}),
    ]


def _read_urls(person, secondment) -> list[str]:
    return [
        STAFF,
        f"{STAFF}details/?id={person.id}",
        STAFF + "export/csv/",
        STAFF + "export/xlsx/",
        SECONDMENTS,
        f"{SECONDMENTS}details/?id={secondment.id}",
        SECONDMENTS + "export/csv/",
        ASSIGNMENTS,
        ASSIGNMENTS + "export/xlsx/",
    ]


def test_auditors_read_everything_and_write_nothing(client, login_as, members, person, secondment, open_year):
    assignment = assign(person, members[KIEL], date(2020, 1, 1), None, 500)
    login_as("auditor")
    for url in _read_urls(person, secondment):
        assert client.get(url).status_code == 200, url
    page = text_of(client.get(f"{STAFF}details/?id={person.id}"))
    assert format_money(80_000_00, "de") in page  # auditors see personnel cost
    assert "/edit/" not in page and "itvsh-book-cost" not in page and "/new/" not in page
    assert "itvsh-book-cost" not in text_of(client.get(f"{SECONDMENTS}details/?id={secondment.id}"))
    listing = text_of(client.get(STAFF))
    assert "/new/" not in listing and "itvsh-auditor-names-form" not in listing
    before = state()
    for method, url, data in _write_requests(person, secondment, assignment):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before
    assert fresh(person).name == "Anna Beispiel" and fresh(assignment).role == ""


def test_municipality_users_get_403_everywhere_in_the_staffing_admin(
    client, login_as, members, person, secondment
):
    assignment = assign(person, members[KIEL], date(2020, 1, 1), None, 500)
    login_as("municipality", KIEL)  # even the member the person works for
    before = state()
    for url in _read_urls(person, secondment):
        assert client.get(url).status_code == 403, url
    for method, url, data in _write_requests(person, secondment, assignment):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before


def test_auditors_exports_show_pseudonyms_until_an_admin_allows_names(
    client, login_as, members, person, secondment
):
    assign(person, members[KIEL], date(2020, 1, 1), None, 500)
    name, email = t(client, "Name"), t(client, "Work email")
    person_column = t(client, "Person")
    auditor = login_as("auditor")
    staff_rows = exported(client, STAFF + "export/csv/")
    assert [(r[name], r[email]) for r in staff_rows] == [(person.pseudonym, person.pseudonym)]
    assert staff_rows[0][t(client, "Personnel cost per full-time year (cents)")] == "8000000"
    assert staff_rows[0][t(client, "Home authority")] == ""  # it would name one of so few people
    for url in (SECONDMENTS + "export/csv/", ASSIGNMENTS + "export/csv/"):
        body = client.get(url).get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [r[person_column] for r in rows] == [person.pseudonym], url
        assert "Anna" not in body and "anna.beispiel" not in body, url
    sheet = load_workbook(io.BytesIO(client.get(ASSIGNMENTS + "export/xlsx/").get_data())).active
    values = [[str(cell) for cell in row] for row in sheet.iter_rows(values_only=True)]
    assert len(values) == 2 and person.pseudonym in values[1]
    assert not any("Anna" in cell or "anna.beispiel" in cell for row in values for cell in row)
    assert 'data-allowed="0"' in client.get(STAFF).get_data(as_text=True)

    admin = login_as("admin")
    page = client.get(STAFF).get_data(as_text=True)
    assert "itvsh-auditor-names-form" in page
    events = count(AuditEvent, AuditEvent.entity == "setting")
    response = post(client, STAFF + "auditor-names/", {"allowed": "1"}, follow_redirects=True)
    assert t(client, "Auditors' exports now show the names of staff.") in flashes(response)
    event = scoped().execute(select(AuditEvent).where(AuditEvent.entity == "setting")).scalars().all()[-1]
    assert count(AuditEvent, AuditEvent.entity == "setting") == events + 1 and event.actor_id == admin.id

    login_as("auditor")
    assert auditor.id  # a second auditor, same rule
    staff_rows = exported(client, STAFF + "export/csv/")
    assert [(r[name], r[email]) for r in staff_rows] == [("Anna Beispiel", "anna.beispiel@itv-sh.example")]
    assert staff_rows[0][t(client, "Home authority")] == person.home_authority
    assert [r[person_column] for r in exported(client, ASSIGNMENTS + "export/csv/")] == ["Anna Beispiel"]

    login_as("admin")
    post(client, STAFF + "auditor-names/", {"allowed": "0"})
    login_as("auditor")
    assert [r[name] for r in exported(client, STAFF + "export/csv/")] == [person.pseudonym]
    login_as("staff")  # federation staff always see names
    assert [r[name] for r in exported(client, STAFF + "export/csv/")] == ["Anna Beispiel"]


def test_only_admins_switch_names_for_auditors(client, login_as, members, person):
    login_as("staff")
    assert "itvsh-auditor-names-form" not in client.get(STAFF).get_data(as_text=True)
    before = state()
    assert post(client, STAFF + "auditor-names/", {"allowed": "1"}).status_code == 403
    assert state() == before


# --- statement counts ----------------------------------------------------------------------------------


def _grow(members, people: int) -> None:
    """``people`` more persons, each seconded from 2019 with two assignments."""
    session = scoped()
    keys = [KIEL, KRUMMWISCH, AMT_ACHTERWEHR]
    targets = {
        m.key: m for m in session.execute(select(Municipality).where(Municipality.key.in_(keys))).scalars()
    }
    start = count(StaffMember)
    for n in range(start, start + people):
        member = services.create_staff_member(
            session,
            ACTOR,
            name=f"Person {n:03d}",
            work_email=f"person{n}@itv-sh.example",
            annual_cost_cents=1,
        )
        services.create_secondment(
            session,
            ACTOR,
            staff_member=member,
            instrument="abordnung",
            starts_on=date(2019, 1, 1),
            ends_on=None,
            fte=1000,
            cost_bearer="land" if n % 2 else "federation",
        )
        for i, (first, last) in enumerate(((date(2019, 1, 1), date(2020, 12, 31)), (date(2021, 1, 1), None))):
            services.create_assignment(
                session,
                ACTOR,
                staff_member=member,
                municipality=targets[keys[(n + i) % 3]],
                starts_on=first,
                ends_on=last,
                fte=500,
            )
    session.commit()
    scoped()


def statements(client, url: str) -> int:
    scoped().expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(seen)


PAGES = (
    STAFF + "?page_size=100",
    STAFF + "?page_size=100&search=person",
    SECONDMENTS + "?page_size=100",
    SECONDMENTS + "?page_size=100&flt0_instrument=abordnung&flt1_cost_bearer=land",
    ASSIGNMENTS + "?page_size=100",
    ASSIGNMENTS + f"?page_size=100&flt0_member={KIEL}&flt1_period=current",
)


def test_the_list_pages_run_the_same_few_statements_however_many_rows(client, staff, members):
    _grow(members, 2)
    small = {url: statements(client, url) for url in PAGES}
    _grow(members, 30)
    large = {url: statements(client, url) for url in PAGES}
    assert len(cells(client.get(ASSIGNMENTS + "?page_size=100"))) == 64  # not vacuous
    assert len(cells(client.get(STAFF + "?page_size=100"))) == 32
    assert small == large, (small, large)
    assert all(0 < n <= LIST_LIMIT for n in large.values()), large


def test_the_counter_notices_a_query_per_row(client, staff, members, monkeypatch):
    """Proves the measurement can fail: a column that reads each row's person itself costs one
    statement per listed row."""
    _grow(members, 5)
    view = client.application.extensions["itvsh_admin_views"]["assignments"]
    baseline = statements(client, ASSIGNMENTS)

    def per_row(v, c, m, n):
        return db.session.execute(
            select(StaffMember.name).where(StaffMember.id == m.staff_member_id)
        ).scalar()

    monkeypatch.setattr(view, "column_formatters", {**view.column_formatters, "role": per_row})
    assert statements(client, ASSIGNMENTS) == baseline + 10


# --- the municipality's detail page ---------------------------------------------------------------------


def test_the_municipality_detail_page_shows_who_works_for_it(client, staff, members, person, secondment):
    assign(person, members[KIEL], date(2020, 1, 1), date(2020, 12, 31), 300, role="Vergabe")
    assign(person, members[KIEL], date(2021, 1, 1), None, 500, role="OZG-Lotsin")
    page = text_of(client.get(f"{MUNICIPALITIES}details/?id={members[KIEL].id}"))
    section = page.split('id="staff-heading"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr class="itvsh-staff-assignment([^"]*)"(.*?)</tr>', section, re.S)
    assert len(rows) == 2
    (current_class, newest), (past_class, oldest) = rows
    assert "itvsh-current" in current_class and "itvsh-current" not in past_class
    assert "OZG-Lotsin" in newest and "50 %" in newest and "2021-01-01" in newest
    assert "Vergabe" in oldest and "30 %" in oldest and "2020-12-31" in oldest
    assert f"{STAFF}details/?id={person.id}" in newest and "anna.beispiel@itv-sh.example" in newest
    assert format_money(80_000_00, "de") not in section  # no cost in this section
    other = text_of(client.get(f"{MUNICIPALITIES}details/?id={members[KRUMMWISCH].id}"))
    staff_section = other.split('id="staff-heading"', 1)[1].split("</section>", 1)[0]
    assert "itvsh-staff-assignment" not in staff_section and "itvsh-nothing-yet" in staff_section
