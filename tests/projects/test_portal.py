"""The member portal's projects and OZG pages: a member sees the projects it takes part in (an Amt
also its Gemeinden's, labelled) with their milestones, and the other planned or running projects it
could join — never a budget, a staff cost or a person's data beyond the lead's name. The OZG page
shows its own status per Themenfeld beside the Kreis and the Land; an Amt user picks one of its
Gemeinden; a report goes through the status service (audited, with history), and a report for
another municipality or with bad input is refused with the message and changes nothing. Staff,
auditors and admins are refused; each page runs the same number of SQL statements for few and for
many rows (counted, never timed)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.projects import ozg
from itvsh.projects import services as project_services
from itvsh.projects.models import OzgService, OzgStatus, OzgStatusChange
from itvsh.staffing import services as staffing
from itvsh.tenants.services import get_by_key
from tests.api.test_query_count import recorded_statements
from tests.funding.test_portal import body_rows, tables, text_of
from tests.projects.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    LUEBECK,
    category,
)
from tests.tenants.test_query_counts import client_for

FELDE = "01058050"  # a Gemeinde of Amt Achterwehr
ACHTERWEHR_GEMEINDE = "01058001"  # Achterwehr, the Gemeinde: first of the Amt's by name
PROJECTS_URL, OZG_URL = "/portal/projects/", "/portal/ozg/"
BUDGET_CANARY = "budget-canary-purpose"
PRIVATE = (
    BUDGET_CANARY,
    "1.234.567",
    "1,234,567",
    "Ministerium für Digitalisierung",  # the lead's home authority
    "anna.beispiel@itv-sh.example",  # the lead's work email
    "role-canary",  # the lead's assignment to the project
    "80.000",  # the lead's personnel cost
)


def _key(key):
    return get_by_key(db.session, key)


def _new_project(name, kind, status, *, starts_on=date(2021, 1, 1), ends_on=date(2029, 12, 31), lead=None):
    project = project_services.create_project(
        db.session, ACTOR, name=name, kind=kind, starts_on=starts_on, ends_on=ends_on, lead=lead
    )
    for step in {"idea": (), "planned": ("planned",), "running": ("planned", "running")}.get(
        status, ("planned", "running")
    ):
        project_services.change_status(db.session, ACTOR, project, step)
    return project


@pytest.fixture
def world(members, catalogue, project, person, secondment, open_year):
    """Projects with participants across the tenants, milestones, OZG services, a budget and a
    person on the project (the private parts carry canaries); OZG statuses for several places."""
    set_scope(db.session, ALL)
    project_services.update_project(db.session, ACTOR, project, lead=person)
    project_services.add_participant(
        db.session, ACTOR, project, _key(KIEL), "pilot", joined_on=date(2020, 2, 1)
    )
    project_services.add_participant(db.session, ACTOR, project, _key(FELDE), "participant")
    project_services.add_milestone(
        db.session, ACTOR, project, title="Pilot in Kiel", due_on=date(2021, 6, 30), done_on=date(2021, 7, 2)
    )
    project_services.add_milestone(db.session, ACTOR, project, title="Rollout", due_on=date(2029, 6, 30))
    project_services.set_services(db.session, ACTOR, project, [catalogue["10000"]])
    centre = _new_project("Rechenzentrum", "infrastructure", "running")
    project_services.add_participant(db.session, ACTOR, centre, _key(KRUMMWISCH), "pilot")
    project_services.add_participant(db.session, ACTOR, centre, _key(KREIS_RD_ECK), "participant")
    open_one = _new_project("Offenes Portal", "portal", "planned")
    project_services.add_participant(db.session, ACTOR, open_one, _key(LUEBECK), "pilot")
    project_services.set_services(db.session, ACTOR, open_one, [catalogue["10169"]])
    finished = _new_project("Abgeschlossen", "shared_service", "running", ends_on=date(2022, 12, 31))
    project_services.add_participant(db.session, ACTOR, finished, _key(LUEBECK), "pilot")
    project_services.change_status(db.session, ACTOR, finished, "completed")
    _new_project("Nur eine Idee", "portal", "idea")
    # money and people: private, never on the portal
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year, "projekte"),
        recipient_kind="project",
        municipality=None,
        project=project,
        purpose=BUDGET_CANARY,
        amount_cents=1_234_567_00 // 10,
    )
    ledger.approve(db.session, ACTOR, allocation)
    staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2030, 12, 31),
        fte=500,
        role="role-canary",
    )
    for key, ozg_id, maturity in (
        (KIEL, "10000", 3),
        (KIEL, "10169", 1),
        (KIEL, "10999", 4),  # a service of the Land: listed, not counted
        (KRUMMWISCH, "10003", 4),
        (FELDE, "10000", 2),
        (LUEBECK, "10170", 4),
    ):
        ozg.set_status(
            db.session,
            ACTOR,
            _key(key),
            catalogue[ozg_id],
            maturity=maturity,
            online_since=date(2022, 3, 1) if maturity >= 3 else None,
        )
    db.session.commit()
    set_scope(db.session, ALL)
    return {"project": project, "centre": centre, "open": open_one}


def _page(client, url):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response, text_of(response)


def _first_column(table) -> list[str]:
    return [row[0] for row in body_rows(table)]


# --- projects -------------------------------------------------------------------------------------

OWN = {
    KIEL: ["Digitaler Bauantrag"],
    KRUMMWISCH: ["Rechenzentrum"],
    AMT_ACHTERWEHR: ["Digitaler Bauantrag", "Rechenzentrum"],  # through Felde and Krummwisch
    KREIS_RD_ECK: ["Rechenzentrum"],
}


@pytest.mark.parametrize("key", list(OWN))
def test_each_member_sees_the_projects_it_takes_part_in(client, login_as, world, key):
    login_as("municipality", key)
    response, body = _page(client, PROJECTS_URL)
    found = tables(response)
    assert _first_column(found["itvsh-projects-own"]) == OWN[key]
    others = _first_column(found["itvsh-projects-open"])
    # the other planned or running projects; never an idea or a finished one
    assert set(others) == {"Digitaler Bauantrag", "Rechenzentrum", "Offenes Portal"} - set(OWN[key])
    assert "Nur eine Idee" not in body and "Abgeschlossen" not in body


def test_kiel_sees_kind_status_period_lead_role_and_milestones(app, client, login_as, world):
    login_as("municipality", KIEL, locale="en")
    response, body = _page(client, PROJECTS_URL)
    found = tables(response)
    (row,) = body_rows(found["itvsh-projects-own"])
    assert row[:6] == [
        "Digitaler Bauantrag",
        "shared service",
        "running",
        "Jan 1, 2020 to Dec 31, 2030",
        "Anna Beispiel",
        "pilot",
    ]
    assert row[6] == "1"  # one open milestone
    milestones = body_rows(found["itvsh-milestones"])
    assert milestones == [
        ["Pilot in Kiel", "Jun 30, 2021", "Jul 2, 2021"],
        ["Rollout", "Jun 30, 2029", "open"],
    ]
    assert "Elterngeld" in body  # the OZG service it delivers
    (other,) = [r for r in body_rows(found["itvsh-projects-open"]) if r[0] == "Offenes Portal"]
    assert other[1:] == ["portal", "planned", "Jan 1, 2021 to Dec 31, 2029", "—", "1", "10169 Führerschein"]


def test_an_amt_sees_its_gemeinden_roles_labelled(client, login_as, world):
    login_as("municipality", AMT_ACHTERWEHR, locale="en")
    response, _body = _page(client, PROJECTS_URL)
    roles = {row[0]: row[5] for row in body_rows(tables(response)["itvsh-projects-own"])}
    assert roles == {"Digitaler Bauantrag": "Felde: participant", "Rechenzentrum": "Krummwisch: pilot"}


@pytest.mark.parametrize("url", [PROJECTS_URL, OZG_URL])
@pytest.mark.parametrize("key", [KIEL, AMT_ACHTERWEHR])
def test_no_budget_no_staff_cost_no_personal_data(client, login_as, world, key, url):
    login_as("municipality", key)
    _response, body = _page(client, url)
    assert "€" not in body and "EUR" not in body
    assert not re.search(r"\d{1,3}(\.\d{3})*,\d{2}", body), "no amount of money on the page"
    for private in PRIVATE:
        assert private not in body, private


def test_a_member_without_projects_is_told_so(app, client, login_as, world):
    login_as("municipality", "01058005", locale="en")  # Altenholz: takes part in nothing
    _response, body = _page(client, PROJECTS_URL)
    assert "You take part in no project at present." in body


# --- OZG ------------------------------------------------------------------------------------------


def test_kiel_sees_its_status_per_themenfeld_beside_the_land(client, login_as, world):
    login_as("municipality", KIEL, locale="en")
    response, body = _page(client, OZG_URL)
    found = tables(response)
    matrix = {row[0]: row[1:] for row in found["itvsh-ozg-matrix"][1:]}
    # levels 0..4 and the number of municipal services; the Land's service is not counted
    assert matrix == {
        "Familie & Kind": ["1", "0", "0", "1", "0", "2"],
        "Mobilität & Reisen": ["1", "1", "0", "0", "0", "2"],
        "All Themenfelder": ["2", "1", "0", "1", "0", "4"],
    }
    comparison = {row[0]: row[1:] for row in body_rows(found["itvsh-ozg-comparison"])}
    # Kiel is a kreisfreie Stadt (its own Kreis): its share (1 of 4) and the Land's, no Kreis column
    assert comparison["All Themenfelder"][:2] == ["4", "25.0 %"]
    assert len(comparison["All Themenfelder"]) == 3
    statuses = {row[0]: row[1:] for row in body_rows(found["itvsh-ozg-statuses"])}
    assert set(statuses) == {"10000", "10169", "10999"}
    assert statuses["10000"][2:5] == ["3 online service (OZG-compliant)", "Mar 1, 2022", "—"]
    assert "Krummwisch" not in body and "10003" not in statuses


def test_a_gemeinde_sees_its_kreis_beside_the_land(client, login_as, world):
    login_as("municipality", KRUMMWISCH, locale="en")
    response, _body = _page(client, OZG_URL)
    comparison = {row[0]: row[1:] for row in body_rows(tables(response)["itvsh-ozg-comparison"])}
    own, kreis, land = comparison["Familie & Kind"][1:]
    assert own == "50.0 %" and kreis != "—" and land != "—"
    assert 0 < float(kreis.rstrip(" %")) < 50 and 0 < float(land.rstrip(" %")) < float(kreis.rstrip(" %"))


def test_an_amt_picks_one_of_its_gemeinden(client, login_as, world):
    login_as("municipality", AMT_ACHTERWEHR)
    response, body = _page(client, OZG_URL)
    found = tables(response)
    listed = {row[1] for row in body_rows(found["itvsh-ozg-gemeinden"])}
    assert len(listed) == 8 and {FELDE, KRUMMWISCH, ACHTERWEHR_GEMEINDE} <= listed
    assert ACHTERWEHR_GEMEINDE in re.search(r'class="lead itvsh-ozg-subject">(.*?)</p>', body, re.S)[1]
    response, body = _page(client, f"{OZG_URL}?key={KRUMMWISCH}")
    statuses = _first_column(tables(response)["itvsh-ozg-statuses"])
    assert statuses == ["10003"]
    options = re.findall(
        r'<option value="(\d+)"[^>]*>', body.split('name="municipality"')[1].split("</select>")[0]
    )
    assert set(options) == listed  # the report form offers the Amt's Gemeinden only
    for key in (KIEL, AMT_ACHTERWEHR, KREIS_RD_ECK, "01058999", "abc"):
        assert client.get(f"{OZG_URL}?key={key}").status_code == 404, key


def test_a_kreis_sees_its_figures_and_reports_nothing(client, login_as, world, csrf):
    login_as("municipality", KREIS_RD_ECK, locale="en")
    response, body = _page(client, OZG_URL)
    assert "OZG status is reported by Gemeinden and Städte." in body
    comparison = {row[0]: row[1:] for row in body_rows(tables(response)["itvsh-ozg-comparison"])}
    assert comparison["Familie & Kind"][1] != "—"  # the Kreis's share
    assert 'name="service"' not in body
    token = csrf(OZG_URL)
    answer = client.post(
        OZG_URL, data={"municipality": KRUMMWISCH, "service": "10169", "maturity": "3", "csrf_token": token}
    )
    assert answer.status_code == 404


def _status(key, ozg_id):
    set_scope(db.session, ALL)
    return db.session.execute(
        select(OzgStatus)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .where(OzgStatus.municipality_id == _key(key).id, OzgService.ozg_id == ozg_id)
    ).scalar_one_or_none()


def _counts():
    set_scope(db.session, ALL)
    return tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (OzgStatus, OzgStatusChange, AuditEvent)
    )


def _report(client, csrf, to=OZG_URL, **fields):
    data = {"maturity": "0", "online_since": "", "url": "", **fields, "csrf_token": csrf(to)}
    return client.post(to, data=data)


def test_a_gemeinde_reports_a_change(app, client, login_as, world, csrf):
    user = login_as("municipality", KRUMMWISCH, locale="en")
    before = _counts()
    response = _report(
        client,
        csrf,
        municipality=KRUMMWISCH,
        service="10169",
        maturity="3",
        online_since="2024-05-02",
        url="https://krummwisch.example/fuehrerschein",
        efa="y",
    )
    assert response.status_code == 302 and response.headers["Location"] == OZG_URL
    status = _status(KRUMMWISCH, "10169")
    assert (status.maturity, status.online_since, status.url, status.efa) == (
        3,
        date(2024, 5, 2),
        "https://krummwisch.example/fuehrerschein",
        True,
    )
    assert status.changed_by_id == user.id
    statuses, changes, events = _counts()
    assert (statuses, changes) == (before[0] + 1, before[1] + 1) and events > before[2]
    event = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "ozg_status").order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert event.actor_id == user.id and event.entity_id == f"{KRUMMWISCH}/10169"
    page = text_of(client.get(OZG_URL))
    assert "The status of 10169 Führerschein was saved." in page


def test_a_change_keeps_the_delivering_project(client, login_as, world, catalogue, csrf):
    set_scope(db.session, ALL)
    kiel, service = _key(KIEL), catalogue["10000"]
    ozg.set_status(
        db.session, ACTOR, kiel, service, maturity=3, online_since=date(2022, 3, 1), project=world["project"]
    )
    db.session.commit()
    login_as("municipality", KIEL)
    assert _report(client, csrf, municipality=KIEL, service="10000", maturity="4").status_code == 302
    status = _status(KIEL, "10000")
    assert status.maturity == 4 and status.project_id == world["project"].id


@pytest.mark.parametrize(
    ("reporter", "target"),
    [(KRUMMWISCH, KIEL), (KRUMMWISCH, FELDE), (AMT_ACHTERWEHR, KIEL), (KIEL, LUEBECK)],
)
def test_a_report_for_another_municipality_is_refused(client, login_as, world, csrf, reporter, target):
    login_as("municipality", reporter, locale="en")
    before, stored = _counts(), _status(target, "10169")
    to = OZG_URL if reporter != AMT_ACHTERWEHR else f"{OZG_URL}?key={KRUMMWISCH}"
    response = _report(client, csrf, to, municipality=target, service="10169", maturity="4")
    assert response.status_code == 400
    body = text_of(response)
    assert "You may report the status of your own municipality only." in body
    assert "The status was not saved; nothing was changed." in body
    assert _counts() == before
    after = _status(target, "10169")
    assert (after.maturity if after else None) == (stored.maturity if stored else None)


def test_an_amt_reports_for_one_of_its_gemeinden(client, login_as, world, csrf):
    login_as("municipality", AMT_ACHTERWEHR)
    to = f"{OZG_URL}?key={FELDE}"
    response = _report(client, csrf, to, municipality=FELDE, service="10170", maturity="2")
    assert response.status_code == 302 and response.headers["Location"] == to
    assert _status(FELDE, "10170").maturity == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"maturity": "9"}, "The maturity must be a whole number from 0 to 4."),
        ({"maturity": "drei"}, "Please choose a maturity level."),
        ({"service": "99999"}, "Please choose an OZG service."),
        ({"service": ""}, "Please choose an OZG service."),
        ({"online_since": "2999-01-01"}, "Online since must be a day between 2000 and today."),
        ({"online_since": "01.02.2023"}, "This is not a date (YYYY-MM-DD)."),
        ({"url": "ftp://example.org/x"}, "Please enter a full web address starting with https://"),
        ({"municipality": "0100"}, "Please choose a municipality."),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    client, login_as, world, csrf, fields, message
):
    login_as("municipality", KIEL, locale="en")
    before = _counts()
    data = {"municipality": KIEL, "service": "10169", "maturity": "3", **fields}
    response = _report(client, csrf, **data)
    assert response.status_code == 400
    assert message in text_of(response)
    assert _counts() == before and _status(KIEL, "10169").maturity == 1


def test_a_report_without_csrf_token_is_refused(client, login_as, world):
    login_as("municipality", KIEL)
    before = _counts()
    response = client.post(OZG_URL, data={"municipality": KIEL, "service": "10169", "maturity": "4"})
    assert response.status_code == 400
    assert _counts() == before


def test_the_change_link_prefills_the_form(client, login_as, world):
    login_as("municipality", KIEL)
    _response, body = _page(client, f"{OZG_URL}?service=10000")
    form = body.split('class="itvsh-report-form"')[1]
    assert re.search(r'<option value="10000" selected>', form)
    assert re.search(r'<option value="3" selected>', form)
    assert 'value="2022-03-01"' in form


# --- access, structure, statements ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_the_pages_are_for_municipality_users_only(client, login_as, world, csrf, role):
    login_as(role)
    for url in (PROJECTS_URL, OZG_URL):
        assert client.get(url).status_code == 403
    before = _counts()
    token = csrf("/account/password")
    data = {"municipality": KIEL, "service": "10169", "maturity": "4", "csrf_token": token}
    assert client.post(OZG_URL, data=data).status_code == 403
    assert _counts() == before


def test_anonymous_visitors_are_sent_to_login(client, world):
    for url in (PROJECTS_URL, OZG_URL):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
    assert client.post(OZG_URL, data={"municipality": KIEL}).status_code in (400, 401)


def test_the_portal_home_links_to_both_pages(client, login_as, world):
    login_as("municipality", AMT_ACHTERWEHR)
    home = client.get("/portal/").get_data(as_text=True)
    assert f'href="{PROJECTS_URL}"' in home.split('id="projects-heading"')[1].split("</section>")[0]
    assert f'href="{OZG_URL}"' in home.split('id="ozg-heading"')[1].split("</section>")[0]
    gemeinde = client.get(f"/portal/municipalities/{FELDE}").get_data(as_text=True)
    assert f'href="{OZG_URL}?key={FELDE}"' in gemeinde.split('id="ozg-heading"')[1].split("</section>")[0]


@pytest.mark.parametrize("url", [PROJECTS_URL, OZG_URL])
def test_the_pages_are_german_and_accessible(client, login_as, world, url):
    login_as("municipality", AMT_ACHTERWEHR)
    page = client.get(url).get_data(as_text=True)
    assert '<html lang="de"' in page
    assert len(re.findall(r"<h1[\s>]", page)) == 1
    sections = re.findall(r'<section aria-labelledby="([^"]+)"', page)
    assert len(sections) >= 2
    for heading in sections:
        assert re.search(rf'<h2 id="{heading}"', page), heading
    assert not re.search(r"<th(?![^>]*scope=\"(col|row)\")[\s>]", page)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!/)', page)
    labels = set(re.findall(r'<label for="([^"]+)"', page))
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
        if 'type="hidden"' in tag or 'type="submit"' in tag:
            continue
        ident = re.search(r'id="([^"]+)"', tag)
        assert (ident and ident[1] in labels) or "aria-label" in tag, tag


def _statements(client, url) -> tuple[int, str]:
    db.session.expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200
    return len(seen), response.get_data(as_text=True)


def _more(count: int) -> None:
    """``count`` more projects (with participants from Kiel and the Amt's Gemeinden, milestones and
    services), more services and statuses for Kiel and Krummwisch."""
    set_scope(db.session, ALL)
    places = [_key(k) for k in (KIEL, KRUMMWISCH, FELDE)]
    elterngeld = db.session.execute(select(OzgService).where(OzgService.ozg_id == "10000")).scalar_one()
    for n in range(count):
        service = OzgService(ozg_id=f"2{n:04d}", name=f"Leistung {n}", topic=f"Themenfeld {n % 3}")
        db.session.add(service)
        db.session.flush()
        project = _new_project(f"Projekt {n:02d}", "portal", "running" if n % 2 else "planned")
        for place in places:
            project_services.add_participant(db.session, ACTOR, project, place, "participant")
            ozg.set_status(db.session, ACTOR, place, service, maturity=1 + n % 4)
        project_services.add_milestone(db.session, ACTOR, project, title=f"M {n}", due_on=date(2025, 1, 1))
        project_services.set_services(db.session, ACTOR, project, [service, elterngeld])
        other = _new_project(f"Offen {n:02d}", "portal", "running")
        project_services.add_participant(db.session, ACTOR, other, _key(LUEBECK), "pilot")
    ozg.recompute_tallies(db.session)
    db.session.commit()


def test_the_pages_run_the_same_statements_for_few_and_many_rows(app, make_user, world):
    pages = {
        (key, url): client_for(app, make_user("municipality", key))
        for key in (KIEL, AMT_ACHTERWEHR)
        for url in (PROJECTS_URL, OZG_URL, f"{OZG_URL}?service=10000")
    }
    small = {page: _statements(client, page[1]) for page, client in pages.items()}
    _more(10)
    large = {page: _statements(client, page[1]) for page, client in pages.items()}
    # not vacuous: the large pages list many more projects and statuses
    assert large[(KIEL, PROJECTS_URL)][1].count('class="itvsh-project"') >= (
        small[(KIEL, PROJECTS_URL)][1].count('class="itvsh-project"') + 20
    )
    assert large[(KIEL, OZG_URL)][1].count('class="itvsh-ozg-status"') == 13
    counts = {page: (small[page][0], large[page][0]) for page in pages}
    print("\nSQL statements (few / many rows):", counts)
    assert all(few == many and few > 0 for few, many in counts.values()), counts
