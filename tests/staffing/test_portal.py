"""The member portal's staff page: a municipality user sees who works for it — name, work email,
period, share and role, current and planned first, then past — and nothing else about the people:
no cost figure, no home authority, notes, pseudonym or secondment. Never another tenant's
assignment; an Amt user also sees its Gemeinden's, labelled by member; a Kreis user the Kreis's
only. Staff, auditors and admins are refused (it is the members' portal). The page runs the same
number of SQL statements for a few and for many assignments (counted, never timed)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask_babel import force_locale

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import INSTRUMENT_LABELS
from itvsh.tenants.services import get_by_key
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.funding.test_portal import body_rows, tables, text_of
from tests.staffing.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH
from tests.tenants.test_query_counts import client_for

FELDE = "01058050"  # a Gemeinde of Amt Achterwehr
LUEBECK = "01003000"
URL = "/portal/staff/"
OPEN = date(2021, 1, 1)


def _assign(person, key, start, end, fte, role):
    return services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=get_by_key(db.session, key),
        starts_on=start,
        ends_on=end,
        fte=fte,
        role=role,
    )


@pytest.fixture
def staffed(members, person, secondment):
    """Anna Beispiel (full time) and Bernd Kanarienvogel (80 %, with canaries in every field a
    member must not see), assigned to several tenants; returns both people."""
    set_scope(db.session, ALL)
    bernd = services.create_staff_member(
        db.session,
        ACTOR,
        name="Bernd Kanarienvogel",
        work_email="bernd.kanarienvogel@itv-sh.example",
        home_authority="Innenministerium-canary",
        notes="note-canary",
        annual_cost_cents=71_234_56,
    )
    services.create_secondment(
        db.session,
        ACTOR,
        staff_member=bernd,
        instrument="zuweisung",
        starts_on=date(2019, 1, 1),
        ends_on=None,
        fte=800,
        cost_bearer="federation",
        legal_reference="legal-canary",
        note="secondment-note-canary",
    )
    _assign(person, KIEL, date(2019, 1, 1), date(2020, 12, 31), 1000, "kiel-past-role")
    _assign(person, KIEL, OPEN, None, 500, "kiel-current-role")
    _assign(person, KRUMMWISCH, OPEN, None, 333, "krummwisch-role")
    _assign(person, AMT_ACHTERWEHR, OPEN, date(2099, 12, 31), 167, "amt-role")
    _assign(bernd, KREIS_RD_ECK, date(2019, 1, 1), None, 400, "kreis-role")
    _assign(bernd, FELDE, date(2020, 1, 1), date(2020, 12, 31), 250, "felde-role")
    _assign(bernd, LUEBECK, OPEN, None, 400, "luebeck-role")
    db.session.commit()
    set_scope(db.session, ALL)
    return {"anna": person, "bernd": bernd}


ROLES = {"kiel-past-role", "kiel-current-role", "krummwisch-role", "amt-role", "kreis-role", "felde-role"}
ROLES |= {"luebeck-role"}
SEES = {
    KIEL: {"kiel-past-role", "kiel-current-role"},
    KRUMMWISCH: {"krummwisch-role"},
    AMT_ACHTERWEHR: {"amt-role", "krummwisch-role", "felde-role"},
    KREIS_RD_ECK: {"kreis-role"},
}
# What a member never sees of the people (besides any cost figure).
PRIVATE = (
    "Ministerium für Digitalisierung",  # Anna's home authority
    "Innenministerium-canary",
    "note-canary",
    "secondment-note-canary",
    "legal-canary",
    "80.000",
    "71.234",
)


def _page(client):
    response = client.get(URL)
    assert response.status_code == 200
    return response, text_of(response)


@pytest.mark.parametrize("key", list(SEES))
def test_each_member_sees_only_the_assignments_for_it(client, login_as, staffed, key):
    login_as("municipality", key)
    response, body = _page(client)
    assert {role for role in ROLES if role in body} == SEES[key]
    found = tables(response)
    rows = body_rows(found.get("itvsh-staff-current", [])) + body_rows(found.get("itvsh-staff-past", []))
    assert {row[-1] for row in rows} == SEES[key]  # the role is the last column
    people = {"Anna Beispiel"} if key != KREIS_RD_ECK else {"Bernd Kanarienvogel"}
    if key == AMT_ACHTERWEHR:
        people = {"Anna Beispiel", "Bernd Kanarienvogel"}
    assert {row[0] for row in rows} == people
    if "Bernd Kanarienvogel" not in people:
        assert "Kanarienvogel" not in body and "bernd.kanarienvogel" not in body


@pytest.mark.parametrize("key", list(SEES))
def test_no_cost_and_no_other_personal_data(app, client, login_as, staffed, key):
    login_as("municipality", key)
    _response, body = _page(client)
    assert "€" not in body and "EUR" not in body
    assert not re.search(r"\d{1,3}(\.\d{3})*,\d{2}", body), "no amount of money on the page"
    with app.test_request_context(), force_locale("de"):  # the secondment's instrument as shown
        labels = [str(label) for label in INSTRUMENT_LABELS.values()]
    for private in (*PRIVATE, *labels):
        assert private not in body, private
    for person in staffed.values():
        assert person.pseudonym not in body


def test_kiel_sees_name_email_period_share_and_role_current_first(app, client, login_as, staffed):
    login_as("municipality", KIEL)
    response, body = _page(client)
    found = tables(response)
    # name, work email, from, until, share, role
    assert body_rows(found["itvsh-staff-current"]) == [
        [
            "Anna Beispiel",
            "anna.beispiel@itv-sh.example",
            "01.01.2021",
            translated(app, "open end"),
            "50 %",
            "kiel-current-role",
        ]
    ]
    assert body_rows(found["itvsh-staff-past"]) == [
        [
            "Anna Beispiel",
            "anna.beispiel@itv-sh.example",
            "01.01.2019",
            "31.12.2020",
            "100 %",
            "kiel-past-role",
        ]
    ]
    assert body.index("kiel-current-role") < body.index("kiel-past-role")
    assert 'href="mailto:anna.beispiel@itv-sh.example"' in body


def test_an_amt_sees_its_own_and_its_gemeinden_labelled_by_member(client, login_as, staffed):
    login_as("municipality", AMT_ACHTERWEHR)
    response, _body = _page(client)
    found = tables(response)
    # name, work email, works for, from, until, share, role
    current = {row[-1]: (row[0], row[2], row[5]) for row in body_rows(found["itvsh-staff-current"])}
    assert current == {
        "amt-role": ("Anna Beispiel", f"Achterwehr ({AMT_ACHTERWEHR})", "16,7 %"),
        "krummwisch-role": ("Anna Beispiel", f"Krummwisch ({KRUMMWISCH})", "33,3 %"),
    }
    past = body_rows(found["itvsh-staff-past"])
    assert [(row[0], row[2], row[3], row[4], row[-1]) for row in past] == [
        ("Bernd Kanarienvogel", f"Felde ({FELDE})", "01.01.2020", "31.12.2020", "felde-role")
    ]


def test_a_member_without_staff_is_told_so(app, client, login_as, staffed):
    login_as("municipality", "01058001")  # Achterwehr, the Gemeinde: nobody works for it
    _response, body = _page(client)
    assert translated(app, "Nobody is assigned to you at present.") in body
    assert translated(app, "No earlier assignments.") in body
    assert not {role for role in ROLES if role in body}


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_the_page_is_for_municipality_users_only(client, login_as, staffed, role):
    login_as(role)
    response = client.get(URL)
    assert response.status_code == 403
    assert not {r for r in ROLES if r in text_of(response)}


def test_anonymous_visitors_are_sent_to_login(client, staffed):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_the_portal_home_links_to_the_page(client, login_as, staffed):
    login_as("municipality", KRUMMWISCH)
    home = client.get("/portal/").get_data(as_text=True)
    block = home.split('id="staff-heading"')[1].split("</section>")[0]
    assert f'href="{URL}"' in block


def test_the_page_is_german_and_accessible(client, login_as, staffed):
    login_as("municipality", AMT_ACHTERWEHR)
    page = client.get(URL).get_data(as_text=True)
    assert '<html lang="de"' in page
    assert len(re.findall(r"<h1[\s>]", page)) == 1
    sections = re.findall(r'<section aria-labelledby="([^"]+)"', page)
    assert len(sections) == 2  # current and planned, earlier
    for heading in sections:
        assert re.search(rf'<h2 id="{heading}"', page), heading
    assert page.count("<caption") == 2
    assert not re.search(r"<th(?![^>]*scope=\"(col|row)\")[\s>]", page)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!/)', page)


# --- statements ----------------------------------------------------------------------------------


def _statements(client) -> tuple[int, str]:
    db.session.expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(URL)
    assert response.status_code == 200
    return len(seen), response.get_data(as_text=True)


def _more_people(count: int) -> None:
    """``count`` more people, each seconded half time and assigned to Kiel and to Krummwisch (one
    past, one current) — rows for both the Kiel and the Amt page."""
    set_scope(db.session, ALL)
    for n in range(count):
        person = services.create_staff_member(
            db.session, ACTOR, name=f"Person {n:02d}", work_email=f"person{n}@itv-sh.example"
        )
        services.create_secondment(
            db.session,
            ACTOR,
            staff_member=person,
            instrument="abordnung",
            starts_on=date(2019, 1, 1),
            ends_on=None,
            fte=500,
        )
        _assign(person, KIEL, date(2019, 1, 1), date(2020, 12, 31), 250, f"more-kiel-{n}")
        _assign(person, KRUMMWISCH, OPEN, None, 250, f"more-krummwisch-{n}")
    db.session.commit()


def test_the_page_runs_the_same_statements_for_few_and_many_assignments(app, make_user, staffed):
    clients = {key: client_for(app, make_user("municipality", key)) for key in (KIEL, AMT_ACHTERWEHR)}
    small = {key: _statements(client) for key, client in clients.items()}
    _more_people(12)
    large = {key: _statements(client) for key, client in clients.items()}
    for key in clients:
        # not vacuous: the large page lists many more assignments
        assert (
            large[key][1].count('class="itvsh-assignment"')
            >= small[key][1].count('class="itvsh-assignment"') + 12
        )
    counts = {key: (small[key][0], large[key][0]) for key in clients}
    print("\nSQL statements on /portal/staff/ (few / many assignments):", counts)
    assert all(few == many and few > 0 for few, many in counts.values()), counts
