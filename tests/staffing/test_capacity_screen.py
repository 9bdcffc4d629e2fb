"""The capacity screens through the client: the timeline (months x people) with its cells for full,
part-time and gap months and over-planned months, its CSV download, the effort per year, bad
parameters, who may see what (auditors by pseudonym until an admin allows names; municipality
users never), and a statement count that does not grow with people or months."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import Assignment
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.staffing.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER

TIMELINE = "/admin/staffing/capacity/"
EFFORT = "/admin/staffing/effort/"
THIS_YEAR = date.today().year


# --- helpers --------------------------------------------------------------------------------------


def scoped():
    set_scope(db.session, ALL)
    return db.session


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def plain(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def cells(response) -> dict[tuple[str, str], dict[str, str]]:
    """The timeline's cells as {(month, person id): {state, assigned, available, text, title}}."""
    found = {}
    body = text_of(response)
    for month, row in re.findall(r'<tr class="itvsh-cap-row" data-month="([\d-]+)">(.*?)</tr>', body, re.S):
        for attrs, inner in re.findall(r'<td class="itvsh-cap [^"]*"(.*?)>(.*?)</td>', row, re.S):
            values = dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))
            values["title"] = re.search(r'title="([^"]*)"', attrs).group(1)
            values["text"] = plain(
                re.search(r'<span class="itvsh-cap-value">(.*?)</span>', inner, re.S).group(1)
            )
            values["all_text"] = plain(inner)
            found[(month, values["person"])] = values
    classes = re.findall(
        r'<td class="itvsh-cap (itvsh-cap-\w+)" data-person="(\d+)" data-state="(\w+)"', body
    )
    assert all(cls == f"itvsh-cap-{state}" for cls, _person, state in classes)
    return found


def months_shown(response) -> list[str]:
    return re.findall(r'<tr class="itvsh-cap-row" data-month="([\d-]+)">', response.get_data(as_text=True))


def people_shown(response) -> list[str]:
    return [
        plain(label)
        for label in re.findall(
            r'<th scope="col" class="itvsh-cap-person"[^>]*>(.*?)</th>', text_of(response)
        )
    ]


def messages(response) -> str:
    match = re.search(
        r'<div class="alert alert-warning[^"]*"[^>]*>(.*?)</div>\s*(?=<form|<p|<dl)', text_of(response), re.S
    )
    return plain(match.group(1)) if match else ""


def assign(person, municipality, start, end, fte):
    return services.create_assignment(
        scoped(), ACTOR, staff_member=person, municipality=municipality, starts_on=start, ends_on=end, fte=fte
    )


def audit_count(**where) -> int:
    statement = select(func.count()).select_from(AuditEvent)
    for column, value in where.items():
        statement = statement.where(getattr(AuditEvent, column) == value)
    return scoped().execute(statement).scalar_one()


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def staff(client, login_as, members):
    return login_as("staff")


# --- the timeline ---------------------------------------------------------------------------------


def test_cells_show_full_part_time_and_gap_months(app, client, staff, members, person, secondment):
    assign(person, members[KIEL], date(2020, 1, 1), date(2020, 3, 31), 1000)  # full time
    assign(person, members[KRUMMWISCH], date(2020, 4, 1), date(2020, 5, 31), 500)  # part time
    # June is a gap; in July a quarter for half the month averages to an eighth (31 days: 16/31 x 250)
    assign(person, members[KIEL], date(2020, 7, 16), date(2020, 7, 31), 250)
    scoped().commit()
    response = client.get(TIMELINE + "?from=2018-12&to=2020-07")
    assert response.status_code == 200
    found = cells(response)
    pid = str(person.id)
    assert months_shown(response)[0] == "2018-12" and months_shown(response)[-1] == "2020-07"
    assert len(found) == 20
    expected = {
        "2018-12": ("none", "0", "0", "\u2013"),
        "2019-01": ("free", "0", "1000", "0 % / 100 %"),
        "2020-01": ("full", "1000", "1000", "100 % / 100 %"),
        "2020-03": ("full", "1000", "1000", "100 % / 100 %"),
        "2020-04": ("planned", "500", "1000", "50 % / 100 %"),
        "2020-05": ("planned", "500", "1000", "50 % / 100 %"),
        "2020-06": ("free", "0", "1000", "0 % / 100 %"),
        "2020-07": ("planned", "129", "1000", "12,9 % / 100 %"),
    }
    for month, (state, assigned, available, text) in expected.items():
        cell = found[(month, pid)]
        assert (cell["state"], cell["assigned"], cell["available"], cell["text"]) == (
            state,
            assigned,
            available,
            text,
        ), month
        # screen readers get the state as text, and the title names person, month and shares
        assert translated(app, services_state_label(state)) in cell["all_text"], month
        assert "Anna Beispiel" in cell["title"] and month in cell["title"]
    assert "50 %" in found[("2020-04", pid)]["title"]
    # the page agrees with the service, cell by cell
    [row] = services.capacity(scoped(), date(2018, 12, 1), date(2020, 7, 1))
    for month in row.months:
        cell = found[(f"{month.month:%Y-%m}", pid)]
        assert (cell["state"], int(cell["assigned"]), int(cell["available"])) == (
            month.state,
            month.assigned,
            month.available,
        )
    # the legend names every state; no over-planned alert where nothing is over-planned
    body = text_of(response)
    for state in ("none", "free", "planned", "full", "over"):
        assert f'data-state="{state}"' in body.split("itvsh-cap-legend", 1)[1].split("</ul>", 1)[0]
    assert "itvsh-cap-over-alert" not in body
    assert ' style="' not in body.split('<div class="container', 1)[-1]


def services_state_label(state: str) -> str:
    return {
        "none": "not seconded",
        "free": "free",
        "planned": "partly planned",
        "full": "fully planned",
        "over": "over-planned",
    }[state]


def test_the_default_is_the_current_year(client, staff, person, secondment):
    response = client.get(TIMELINE)
    assert response.status_code == 200
    shown = months_shown(response)
    assert shown == [f"{THIS_YEAR}-{m:02d}" for m in range(1, 13)]
    assert people_shown(response) == ["Anna Beispiel"]


def test_an_over_planned_month_stands_out(app, client, staff, members, person, secondment):
    """The service refuses to over-plan; data that is over-planned anyway (written around it) is
    marked, not hidden."""
    assign(person, members[KIEL], date(2021, 3, 1), date(2021, 3, 31), 600)
    scoped().add(
        Assignment(
            staff_member_id=person.id,
            secondment_id=secondment.id,
            municipality_id=members[KRUMMWISCH].id,
            starts_on=date(2021, 3, 10),
            ends_on=date(2021, 3, 12),
            fte=600,
        )
    )
    scoped().commit()
    response = client.get(TIMELINE + "?from=2021-02&to=2021-04")
    found = cells(response)
    pid = str(person.id)
    over = found[("2021-03", pid)]
    assert over["state"] == "over"
    assert translated(app, "over-planned") in over["all_text"]
    assert '<span class="itvsh-cap-flag">' + translated(app, "over-planned") in text_of(response)
    assert found[("2021-02", pid)]["state"] == "free" and found[("2021-04", pid)]["state"] == "free"
    body = text_of(response)
    assert "itvsh-cap-over-alert" in body
    counts = re.search(r'<tr class="itvsh-cap-over-counts">(.*?)</tr>', body, re.S).group(1)
    assert re.search(rf'data-person="{pid}">1</td>', counts)


def test_bad_parameters_give_a_message_and_the_current_year(app, client, staff, person, secondment):
    this_year = [f"{THIS_YEAR}-{m:02d}" for m in range(1, 13)]
    cases = {
        "?from=2024-13": translated(app, "From"),
        "?from=abc&to=2020-01": translated(app, "From"),
        "?to=2020-1": translated(app, "To"),
        "?from=2021-01&to=2020-12": translated(app, "To"),
        "?from=2000-01&to=2010-01": translated(app, "To"),  # 121 months
        "?from=1999-12&to=2000-06": translated(app, "From"),
        "?from=99999999999999999999-01": translated(app, "From"),
        "?from=%00%ff&to=%3Cscript%3E": translated(app, "From"),
    }
    for query, field in cases.items():
        response = client.get(TIMELINE + query)
        assert response.status_code == 200, query
        said = messages(response)
        assert said.startswith(field + ":"), (query, said)
        assert months_shown(response) == this_year, query
        assert "<script>" not in response.get_data(as_text=True).split("<body", 1)[1].split("</nav>", 1)[1]
    # exactly 120 months are fine
    response = client.get(TIMELINE + "?from=2000-01&to=2009-12")
    assert messages(response) == "" and len(months_shown(response)) == 120
    # an unknown format: the page, with a message
    response = client.get(TIMELINE + "?format=xlsx")
    assert response.status_code == 200 and "csv" in messages(response)
    for query in ("?year=abc", "?year=99999999999", "?year=1999", "?year=-1"):
        response = client.get(EFFORT + query)
        assert response.status_code == 200, query
        assert translated(app, "Effort %(year)s", year=THIS_YEAR) in text_of(response)
        error = re.search(r'id="effort-year-error"[^>]*>(.*?)</div>', text_of(response), re.S)
        assert error and error.group(1).startswith(translated(app, "Year") + ":"), query


# --- who sees what --------------------------------------------------------------------------------


def test_auditors_see_pseudonyms_until_names_are_allowed(client, login_as, members, person, secondment):
    login_as("auditor")
    pseudonym = person.pseudonym
    for url in (TIMELINE, TIMELINE + "?format=csv"):
        response = client.get(url)
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert pseudonym in body and "Anna Beispiel" not in body and "anna.beispiel" not in body
    assert people_shown(client.get(TIMELINE)) == [pseudonym]
    services.allow_auditors_names(scoped(), ACTOR, True)
    scoped().commit()
    for url in (TIMELINE, TIMELINE + "?format=csv"):
        body = client.get(url).get_data(as_text=True)
        assert "Anna Beispiel" in body and pseudonym not in body


def test_staff_and_admins_see_names(client, login_as, members, person, secondment):
    for role in ("staff", "admin"):
        login_as(role)
        assert people_shown(client.get(TIMELINE)) == ["Anna Beispiel"]


def test_municipality_users_never_get_in(client, login_as, members, person, secondment):
    login_as("municipality", KIEL)
    before = audit_count(action="export")
    for url in (TIMELINE, TIMELINE + "?format=csv", EFFORT, EFFORT + "?year=2020"):
        assert client.get(url).status_code == 403, url
    assert audit_count(action="export") == before


def test_logged_out_visitors_are_sent_to_the_login(client, members):
    for url in (TIMELINE, EFFORT):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- the download ---------------------------------------------------------------------------------


def test_the_csv_download_is_an_audited_attachment_with_neutralised_cells(
    app, client, staff, members, person, secondment
):
    odd = services.create_staff_member(
        scoped(), ACTOR, name='=HYPERLINK("http://x.example")', work_email="odd@itv-sh.example"
    )
    services.create_secondment(
        scoped(),
        ACTOR,
        staff_member=odd,
        instrument="zuweisung",
        starts_on=date(2020, 2, 1),
        ends_on=None,
        fte=500,
    )
    assign(person, members[KIEL], date(2020, 1, 1), date(2020, 1, 31), 500)
    scoped().commit()
    before = audit_count(action="export", entity="staff_capacity")
    response = client.get(TIMELINE + "?from=2020-01&to=2020-03&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "capacity_2020-01_2020-03.csv" in disposition
    rows = csv_rows(response)
    header = [translated(app, t) for t in ("Person", "Month", "Available", "Assigned", "Free", "State")]
    assert rows[0] == header
    assert len(rows) == 1 + 2 * 3
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    assert by_key[("Anna Beispiel", "2020-01")][2:] == [
        "100 %",
        "50 %",
        "50 %",
        translated(app, "partly planned"),
    ]
    assert by_key[("Anna Beispiel", "2020-02")][2:] == ["100 %", "0 %", "100 %", translated(app, "free")]
    odd_rows = [r for r in rows[1:] if "HYPERLINK" in r[0]]
    assert len(odd_rows) == 3 and all(r[0] == '\'=HYPERLINK("http://x.example")' for r in odd_rows)
    assert odd_rows[0][5] == translated(app, "not seconded")  # seconded from February
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row)
    assert audit_count(action="export", entity="staff_capacity") == before + 1
    event = (
        scoped()
        .execute(
            select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.entity == "staff_capacity")
        )
        .scalar_one()
    )
    assert event.actor_id == staff.id
    # bad parameters: the current year, still a download
    response = client.get(TIMELINE + "?from=nope&format=csv")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert {r[1] for r in csv_rows(response)[1:]} == {f"{THIS_YEAR}-{m:02d}" for m in range(1, 13)}


# --- effort per year ------------------------------------------------------------------------------


def effort_rows(response, kind: str) -> list[tuple[str, Fraction]]:
    body = text_of(response)
    table = re.search(rf'<table class="[^"]*itvsh-effort-{kind}">(.*?)</table>', body, re.S).group(1)
    rows = re.findall(
        r'<tr class="itvsh-effort-row" data-key="(\w+)">.*?data-fraction="(\d+/\d+)"', table, re.S
    )
    total = re.search(r'<tr class="itvsh-effort-total.*?data-fraction="(\d+/\d+)"', table, re.S).group(1)
    return [(key, Fraction(value)) for key, value in rows], Fraction(total)


def test_effort_per_year_matches_the_service(client, staff, members, person, secondment):
    assign(person, members[KIEL], date(2019, 11, 1), date(2020, 3, 31), 500)  # 3 months in 2020
    assign(person, members[KRUMMWISCH], date(2020, 1, 1), date(2020, 12, 31), 250)
    assign(person, members[AMT_ACHTERWEHR], date(2020, 7, 1), date(2020, 7, 31), 500)
    assign(person, members[KIEL], date(2020, 10, 1), None, 250)  # open end
    scoped().commit()
    response = client.get(EFFORT + "?year=2020")
    assert response.status_code == 200
    effort = services.effort_by_target(scoped(), 2020)
    by_id = {m.id: m for m in members.values()}
    municipalities, municipality_total = effort_rows(response, "municipalities")
    kreise, kreis_total = effort_rows(response, "kreise")
    assert dict(municipalities) == {by_id[i].key: v for i, v in effort.by_municipality.items()}
    assert dict(kreise) == {by_id[i].key: v for i, v in effort.by_kreis.items()}
    assert municipality_total == kreis_total == effort.total == sum(v for _k, v in municipalities)
    assert effort.total == Fraction(3, 2) + 3 + Fraction(1, 2) + Fraction(3, 4)
    # most effort first
    assert [v for _k, v in municipalities] == sorted((v for _k, v in municipalities), reverse=True)
    assert [k for k, _v in kreise] == [KREIS_RD_ECK, KIEL]  # 3.5 before 2.25
    # names and the project placeholder without data
    body = text_of(response)
    assert "Kiel" in body and "itvsh-effort-projects" in body
    assert "data-fraction" not in body.split("itvsh-effort-projects", 1)[1].split("</section>", 1)[0]
    # a year without assignments
    empty = client.get(EFFORT + "?year=2005")
    assert effort_rows(empty, "municipalities") == ([], Fraction(0))


# --- statements -----------------------------------------------------------------------------------


def _people(count: int, start: int) -> None:
    """``count`` more people, each seconded from 2016 and assigned to three Gemeinden of their own
    (so that the number of targets grows with the number of people, too)."""
    session = scoped()
    places = list(
        session.execute(
            select(Municipality)
            .where(Municipality.kind == "gemeinde", Municipality.key != NON_MEMBER)
            .order_by(Municipality.key)
            .limit(3 * (start + count))
        ).scalars()
    )
    for n in range(start, start + count):
        member = services.create_staff_member(
            session, ACTOR, name=f"Person {n:02d}", work_email=f"person{n}@itv-sh.example"
        )
        services.create_secondment(
            session,
            ACTOR,
            staff_member=member,
            instrument="abordnung",
            starts_on=date(2016, 1, 1),
            ends_on=None,
            fte=1000,
        )
        for k, year in enumerate((2019, 2020, 2024)):  # members since 2019
            services.create_assignment(
                session,
                ACTOR,
                staff_member=member,
                municipality=places[3 * n + k],
                starts_on=date(year, 2, 1),
                ends_on=date(year + 1, 1, 31),
                fte=400,
            )
    session.commit()
    scoped()


def statements(client, url: str) -> tuple[int, object]:
    scoped().expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(seen), response


@pytest.mark.parametrize("role", ["staff", "auditor"])
def test_statements_do_not_grow_with_people_or_months(client, login_as, members, role):
    login_as(role)
    _people(2, 0)
    small_timeline, small_page = statements(client, TIMELINE + "?from=2020-01&to=2020-12")
    small_csv, _response = statements(client, TIMELINE + "?from=2020-01&to=2020-12&format=csv")
    small_effort, _response = statements(client, EFFORT + "?year=2020")
    _people(18, 2)
    large_timeline, large_page = statements(client, TIMELINE + "?from=2016-01&to=2025-12")
    large_csv, large_download = statements(client, TIMELINE + "?from=2016-01&to=2025-12&format=csv")
    large_effort, _response = statements(client, EFFORT + "?year=2020")
    # not vacuous: the large page really shows 20 people x 120 months
    assert len(cells(small_page)) == 2 * 12 and len(cells(large_page)) == 20 * 120
    assert len(csv_rows(large_download)) == 1 + 20 * 120
    print(
        f"\nstatements: timeline {small_timeline}/{large_timeline}, csv {small_csv}/{large_csv}, "
        f"effort {small_effort}/{large_effort}"
    )
    assert small_timeline == large_timeline
    assert small_csv == large_csv
    assert small_effort == large_effort
    assert small_timeline <= 5 and small_effort <= 5
