"""The municipality admin through the client: the list (search, Kreis/Amt/kind/member filters with
their options, sorting by population), the detail page that gathers one tenant's data, master data
changes through the services, joining and leaving (detail form and bulk actions), the CSV upload
(good file imported and summarised, bad file refused naming every line and writing nothing), the
contact view (create/edit/delete audited), and auditors refused on every write, custom ones too."""

from __future__ import annotations

import html
import io
import json
import re
from datetime import date
from importlib import resources

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact
from tests.auth.helpers import audit_events, translated
from tests.conftest import csrf_token

KIEL, LUEBECK, RD_ECK, ACHTERWEHR, KRUMMWISCH, ALTENHOLZ = (
    "01002000",
    "01003000",
    "01058",
    "010585803",
    "01058093",
    "01058005",
)
ACHTERWEHR_GEMEINDEN = {
    "01058001",
    "01058028",
    "01058050",
    "01058093",
    "01058104",
    "01058126",
    "01058130",
    "01058171",
}
FOUNDED = date(2019, 1, 1)
LIST = "/admin/municipalities/"


def shipped_csv() -> bytes:
    return resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()


@pytest.fixture
def shipped(app):
    """The 1,201 tenants of the shipped list, committed (rolled back after the test)."""
    set_scope(db.session, ALL)
    import_municipalities(db.session, "test", shipped_csv(), source="test")
    db.session.commit()


def tenant(key: str) -> Municipality:
    set_scope(db.session, ALL)
    return services.get_by_key(db.session, key)


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def listed_keys(response) -> list[str]:
    return re.findall(r'<td class="col-key">\s*(\d+)\s*</td>', response.get_data(as_text=True))


def list_count(response) -> int:
    match = re.search(r'class="nav-link active">[^<]*?\((\d+)\)', response.get_data(as_text=True))
    return int(match.group(1)) if match else 0


def token(client) -> str:
    return csrf_token(client, "/logout")


def count(model, *where) -> int:
    statement = select(func.count()).select_from(model)
    for clause in where:
        statement = statement.where(clause)
    return db.session.execute(statement).scalar_one()


def audit_count() -> int:
    return count(AuditEvent)


@pytest.fixture
def staff(client, login_as, shipped):
    return login_as("staff")


# --- the list ---------------------------------------------------------------------------------


def test_list_shows_key_name_kind_kreis_amt_population_and_membership(client, staff):
    services.join(db.session, "test", tenant(KRUMMWISCH), FOUNDED)
    db.session.commit()
    page = client.get(LIST + "?search=Krummwisch")
    assert page.status_code == 200
    assert listed_keys(page) == [KRUMMWISCH]
    row = text_of(page).split('<td class="col-key">')[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    kind = translated(client.application, "Gemeinde")
    assert cells == ["Krummwisch", kind, "Rendsburg-Eckernförde (01058)", "Achterwehr (010585803)", "681", ""]
    assert "Krummwisch" in row and "Rendsburg-Eckernförde (01058)" in row and "Achterwehr (010585803)" in row
    assert re.search(r'col-total_population">\s*681\s*<', row)
    assert "fa-check-circle" in row  # member today


def test_list_search_by_name_and_by_key(client, staff):
    by_name = client.get(LIST + "?search=Krummwisch")
    assert listed_keys(by_name) == [KRUMMWISCH]
    by_key = client.get(LIST + f"?search={ACHTERWEHR}")
    assert listed_keys(by_key) == [ACHTERWEHR]
    prefix = client.get(LIST + "?search=0105809&page_size=100")
    assert set(listed_keys(prefix)) == {k for k in _all_keys() if k.startswith("0105809")}
    assert list_count(client.get(LIST + "?search=no-such-municipality")) == 0


def _all_keys() -> list[str]:
    return list(db.session.execute(select(Municipality.key)).scalars())


def test_list_counts_all_tenants(client, staff):
    assert list_count(client.get(LIST)) == 1201


def test_filter_options_list_every_kreis_and_amt(client, staff):
    page = client.get(LIST).get_data(as_text=True)
    groups = json.loads(
        html.unescape(re.search(r'<div id="filter-groups-data" class="d-none">(.*?)</div>', page, re.S)[1])
    )
    options = {item["arg"]: item["options"] for group in groups.values() for item in group}
    assert set(options) == {"kreis", "amt", "kind", "member"}
    assert len(options["kreis"]) == 11 and len(options["amt"]) == 84
    assert [RD_ECK, "Rendsburg-Eckernförde (01058)"] in options["kreis"]
    assert [ACHTERWEHR, "Achterwehr (010585803)"] in options["amt"]
    assert {o[0] for o in options["kind"]} == {"gemeinde", "stadt", "kreisfreie_stadt", "amt", "kreis"}
    assert {o[0] for o in options["member"]} == {"0", "1"}


def test_filter_by_amt(client, staff):
    page = client.get(LIST + f"?flt0_amt={ACHTERWEHR}")
    assert set(listed_keys(page)) == ACHTERWEHR_GEMEINDEN
    assert list_count(page) == 8


def test_filter_by_kreis(client, staff):
    page = client.get(LIST + f"?flt0_kreis={RD_ECK}&page_size=100")
    in_kreis = count(Municipality, Municipality.kreis_id == tenant(RD_ECK).id)
    assert list_count(page) == in_kreis == 165 + 14  # its Gemeinden and its Ämter
    assert all(key.startswith(RD_ECK) for key in listed_keys(page))
    assert KIEL not in listed_keys(page)


def test_filter_by_kind(client, staff):
    assert list_count(client.get(LIST + "?flt0_kind=kreis")) == 11
    assert list_count(client.get(LIST + "?flt0_kind=amt")) == 84
    page = client.get(LIST + "?flt0_kind=kreisfreie_stadt")
    assert sorted(listed_keys(page)) == ["01001000", KIEL, LUEBECK, "01004000"]


def test_filter_by_membership(client, staff):
    for key in (KIEL, KRUMMWISCH, ACHTERWEHR):
        services.join(db.session, "test", tenant(key), FOUNDED)
    former = tenant(LUEBECK)
    services.join(db.session, "test", former, FOUNDED)
    services.leave(db.session, "test", former, date(2020, 1, 1))
    db.session.commit()
    members = client.get(LIST + "?flt0_member=1")
    assert sorted(listed_keys(members)) == sorted([KIEL, KRUMMWISCH, ACHTERWEHR])
    assert list_count(client.get(LIST + "?flt0_member=0")) == 1201 - 3
    combined = client.get(LIST + f"?flt0_amt={ACHTERWEHR}&flt1_member=1")
    assert listed_keys(combined) == [KRUMMWISCH]
    not_members = client.get(LIST + f"?flt0_amt={ACHTERWEHR}&flt1_member=0")
    assert set(listed_keys(not_members)) == ACHTERWEHR_GEMEINDEN - {KRUMMWISCH}


def test_a_bad_filter_value_is_ignored_with_a_message(client, staff):
    page = client.get(LIST + "?flt0_kreis=abc")
    assert page.status_code == 200
    assert list_count(page) == 1201
    assert "alert-danger" in page.get_data(as_text=True)


def _sort_link(page, column: str) -> str:
    header = (
        page.get_data(as_text=True).split(f'<th class="column-header col-{column}">')[1].split("</th>")[0]
    )
    return html.unescape(re.search(r'href="([^"]+)"', header)[1])


def test_sort_by_population(client, staff):
    page = client.get(LIST + "?flt0_kind=kreis")
    link = _sort_link(page, "total_population")
    ascending = client.get(link)
    descending = client.get(link + "&desc=1")
    totals = {
        kreis.key: kreis.total_population
        for kreis in db.session.execute(select(Municipality).where(Municipality.kind == "kreis")).scalars()
    }
    by_population = sorted(totals, key=totals.get)
    assert listed_keys(ascending) == by_population
    assert listed_keys(descending) == by_population[::-1]
    # the sums are the Kreise's Gemeinden: Rendsburg-Eckernförde, 274,098 on 31.12.2019
    assert totals[RD_ECK] == 274_098
    assert re.search(r"col-total_population\">\s*274\.098\s*<", descending.get_data(as_text=True))


def test_sort_by_name_and_key(client, staff):
    page = client.get(LIST + f"?flt0_amt={ACHTERWEHR}")
    by_name = client.get(_sort_link(page, "name"))
    names = dict(
        db.session.execute(
            select(Municipality.key, Municipality.name).where(Municipality.key.in_(ACHTERWEHR_GEMEINDEN))
        ).all()
    )
    assert [names[k] for k in listed_keys(by_name)] == sorted(names.values())
    by_key = client.get(_sort_link(page, "key") + "&desc=1")
    assert listed_keys(by_key) == sorted(ACHTERWEHR_GEMEINDEN, reverse=True)


# --- the detail page --------------------------------------------------------------------------


def _details(client, key: str):
    return client.get(f"/admin/municipalities/details/?id={tenant(key).id}")


def _section(page_text: str, heading_id: str) -> str:
    return page_text.split(f'id="{heading_id}"')[1].split("</section>")[0]


def test_detail_page_of_a_gemeinde(app, client, staff):
    krummwisch = tenant(KRUMMWISCH)
    services.join(db.session, "test", krummwisch, FOUNDED)
    services.leave(db.session, "test", krummwisch, date(2021, 1, 1))
    services.join(db.session, "test", krummwisch, date(2023, 7, 1), note="rejoined")
    db.session.add(
        MunicipalityContact(municipality=krummwisch, name="Bürgermeisterin K", email="bm@k.example")
    )
    db.session.add(MunicipalityContact(municipality=tenant(KIEL), name="Kiel canary", email="c@kiel.example"))
    db.session.commit()
    page = _details(client, KRUMMWISCH)
    assert page.status_code == 200
    body = text_of(page)
    assert body.count("<h1") == 1 and "Krummwisch" in body
    master = _section(body, "master-data-heading")
    for value in (KRUMMWISCH, "010585803093", "681", "24796", "13,91"):
        assert value in master, value
    hierarchy = _section(body, "hierarchy-heading")
    assert f'href="/admin/municipalities/details/?id={tenant(RD_ECK).id}"' in hierarchy
    assert f'href="/admin/municipalities/details/?id={tenant(ACHTERWEHR).id}"' in hierarchy
    membership = _section(body, "membership-heading")
    days = ["2019-01-01", "2021-01-01", "2023-07-01", date.today().isoformat()]
    assert re.findall(r"\d{4}-\d{2}-\d{2}", membership)[:4] == days
    assert "rejoined" in membership
    contacts = _section(body, "contacts-heading")
    assert "Bürgermeisterin K" in contacts and "bm@k.example" in contacts
    assert "Kiel canary" not in body
    for heading in ("allocations", "payments", "projects", "staff", "ozg"):
        section = _section(body, f"{heading}-heading")
        assert translated(app, "Nothing recorded yet.") in section


def test_detail_page_of_an_amt_lists_its_gemeinden_with_links(client, staff):
    page = _details(client, ACHTERWEHR)
    hierarchy = _section(text_of(page), "hierarchy-heading")
    ids = dict(
        db.session.execute(
            select(Municipality.key, Municipality.id).where(Municipality.key.in_(ACHTERWEHR_GEMEINDEN))
        ).all()
    )
    for key, municipality_id in ids.items():
        assert f'href="/admin/municipalities/details/?id={municipality_id}"' in hierarchy, key
    assert set(re.findall(r"<td>(01058\d{3})</td>", hierarchy)) == ACHTERWEHR_GEMEINDEN
    assert f"?id={tenant(RD_ECK).id}" in hierarchy  # up to its Kreis
    master = _section(text_of(page), "master-data-heading")
    assert "11.487" in master  # the Amt's population: the sum of its Gemeinden


def test_detail_page_of_a_kreis_lists_its_amter_and_gemeinden(client, staff):
    hierarchy = _section(text_of(_details(client, RD_ECK)), "hierarchy-heading")
    amter = hierarchy.split("itvsh-member-amter")[1].split("</table>")[0]
    gemeinden = hierarchy.split("itvsh-member-gemeinden")[1].split("</table>")[0]
    assert len(re.findall(r"<td>(01058\d{4})</td>", amter)) == 14
    assert len(re.findall(r"<td>(01058\d{3})</td>", gemeinden)) == 165
    assert "Achterwehr" in gemeinden  # the Amt column of a Kreis's Gemeinden


@pytest.mark.parametrize("id_", ["999999", "abc", ""])
def test_detail_page_of_an_unknown_id_goes_back_to_the_list(client, staff, id_):
    response = client.get(f"/admin/municipalities/details/?id={id_}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(LIST)


# --- master data ------------------------------------------------------------------------------


def _form(client, url: str) -> dict:
    """The fields of the form on ``url`` as a browser would send them unchanged."""
    page = client.get(url).get_data(as_text=True)
    data = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if name and 'type="submit"' not in tag:
            value = re.search(r'value="([^"]*)"', tag)
            data[name[1]] = html.unescape(value[1]) if value else ""
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', options)
        data[name] = chosen[1] if chosen else ""
    return data


def test_staff_edit_master_data_through_the_service(client, staff):
    krummwisch = tenant(KRUMMWISCH)
    url = f"/admin/municipalities/edit/?id={krummwisch.id}"
    data = _form(client, url)
    assert data["name"] == "Krummwisch" and data["kreis_key"] == RD_ECK and data["amt_key"] == ACHTERWEHR
    data.update(population="700", postcode="24797")
    response = client.post(url, data=data)
    assert response.status_code == 302
    db.session.expire_all()
    assert (tenant(KRUMMWISCH).population, tenant(KRUMMWISCH).postcode) == (700, "24797")
    [event] = audit_events(action="update", entity="municipality")
    assert event.entity_id == KRUMMWISCH
    assert event.before == {"population": 681, "postcode": "24796"}
    assert event.after == {"population": 700, "postcode": "24797"}


def test_edit_refused_by_a_rule_shows_why_and_changes_nothing(app, client, staff):
    amt = tenant(ACHTERWEHR)
    url = f"/admin/municipalities/edit/?id={amt.id}"
    data = _form(client, url)
    data["population"] = "5000"  # an Amt's population is the sum of its Gemeinden
    before = audit_count()
    response = client.post(url, data=data)
    assert response.status_code == 200
    expected = translated(app, "Population belongs to Gemeinden; an Amt's or Kreis's is their sum.")
    assert expected in text_of(response)
    db.session.expire_all()
    assert tenant(ACHTERWEHR).population is None
    assert audit_count() == before


def test_staff_create_a_municipality(client, staff):
    url = "/admin/municipalities/new/"
    data = _form(client, url)
    data.update(key="01058999", name="Neudorf", kind="gemeinde", kreis_key=RD_ECK, amt_key=ACHTERWEHR)
    data.update(population="120", population_date="2024-12-31")
    response = client.post(url, data=data)
    assert response.status_code == 302
    created = tenant("01058999")
    assert (created.name, created.kind, created.kreis.key, created.amt.key) == (
        "Neudorf",
        "gemeinde",
        RD_ECK,
        ACHTERWEHR,
    )
    [event] = audit_events(action="create", entity="municipality")
    assert event.entity_id == "01058999" and event.after["population"] == 120


def test_create_with_a_bad_key_is_refused(app, client, staff):
    url = "/admin/municipalities/new/"
    data = _form(client, url)
    data.update(key="0105899", name="Neudorf", kind="gemeinde")
    response = client.post(url, data=data)
    assert response.status_code == 200
    assert "0105899" in text_of(response)
    assert tenant("0105899") is None
    assert audit_events(action="create", entity="municipality") == []


# --- membership -------------------------------------------------------------------------------


def _membership(client, key: str, change: str, on: str, note: str = ""):
    return client.post(
        "/admin/municipalities/membership/",
        data={"id": tenant(key).id, "change": change, "on": on, "note": note, "csrf_token": token(client)},
        follow_redirects=True,
    )


def test_record_joining_and_leaving_on_the_detail_page(app, client, staff):
    page = _details(client, KRUMMWISCH).get_data(as_text=True)
    assert 'action="/admin/municipalities/membership/"' in page
    response = _membership(client, KRUMMWISCH, "join", "2024-02-01", "council decision")
    assert response.status_code == 200
    assert translated(app, "%(name)s joined on %(day)s.", name="Krummwisch", day="2024-02-01") in text_of(
        response
    )
    response = _membership(client, KRUMMWISCH, "leave", "2025-01-01")
    assert translated(app, "%(name)s left on %(day)s.", name="Krummwisch", day="2025-01-01") in text_of(
        response
    )
    periods = db.session.execute(
        select(Membership.joined_on, Membership.left_on, Membership.note).where(
            Membership.municipality_id == tenant(KRUMMWISCH).id
        )
    ).all()
    assert periods == [(date(2024, 2, 1), date(2025, 1, 1), "council decision")]
    assert [e.action for e in audit_events(entity="municipality", entity_id=KRUMMWISCH)] == ["join", "leave"]


def test_a_refused_membership_change_is_shown_and_writes_nothing(app, client, staff):
    services.join(db.session, "test", tenant(KRUMMWISCH), FOUNDED)
    db.session.commit()
    before = audit_count()
    response = _membership(client, KRUMMWISCH, "join", "2024-01-01")
    expected = translated(
        app, "%(name)s is a member already (since %(day)s).", name="Krummwisch", day="2019-01-01"
    )
    assert expected in text_of(response)
    response = _membership(client, KRUMMWISCH, "leave", "2018-01-01")
    assert translated(app, "Leaving must not be before joining (%(day)s).", day="2019-01-01") in text_of(
        response
    )
    response = _membership(client, KRUMMWISCH, "leave", "not a date")
    assert translated(app, "Please choose joining or leaving and a date (YYYY-MM-DD).") in text_of(response)
    assert audit_count() == before
    assert count(Membership) == 1


def _action(client, action: str, *keys: str):
    return client.post(
        LIST + "action/",
        data={"action": action, "rowid": [str(tenant(k).id) for k in keys], "csrf_token": token(client)},
        follow_redirects=True,
    )


def test_bulk_join_and_leave_today(app, client, staff):
    response = _action(client, "join_today", KIEL, KRUMMWISCH, ACHTERWEHR)
    assert response.status_code == 200
    today = date.today()
    members = db.session.execute(
        select(Municipality.key).join(Membership).where(Membership.joined_on == today)
    )
    assert sorted(members.scalars()) == sorted([KIEL, KRUMMWISCH, ACHTERWEHR])
    assert len(audit_events(action="join")) == 3
    _action(client, "leave_today", KRUMMWISCH)
    left = db.session.execute(
        select(Membership.left_on).where(Membership.municipality_id == tenant(KRUMMWISCH).id)
    )
    assert left.scalar_one() == today
    assert [e.entity_id for e in audit_events(action="leave")] == [KRUMMWISCH]


def test_bulk_change_is_all_or_nothing(app, client, staff):
    services.join(db.session, "test", tenant(KIEL), FOUNDED)
    db.session.commit()
    before = (audit_count(), count(Membership))
    response = _action(client, "join_today", KRUMMWISCH, KIEL, ALTENHOLZ)
    body = text_of(response)
    assert (
        translated(
            app,
            "%(name)s is a member already (since %(day)s).",
            name="Kiel, Landeshauptstadt",
            day="2019-01-01",
        )
        in body
    )
    assert translated(app, "Nothing was changed.") in body
    assert (audit_count(), count(Membership)) == before
    response = _action(client, "leave_today", KIEL, LUEBECK)
    assert translated(app, "%(name)s is not a member.", name="Lübeck, Hansestadt") in text_of(response)
    db.session.expire_all()
    assert db.session.execute(select(Membership.left_on)).scalar_one() is None


# --- the CSV import ---------------------------------------------------------------------------


def _upload(client, data: bytes, filename: str = "list.csv", with_token: bool = True):
    form = {"file": (io.BytesIO(data), filename)}
    if with_token:
        form["csrf_token"] = token(client)
    return client.post(LIST + "import/", data=form, content_type="multipart/form-data")


def test_import_page_has_a_labelled_file_field(client, login_as):
    login_as("staff")
    page = client.get(LIST + "import/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in body and 'name="csrf_token"' in body
    assert re.search(r'<label for="file">', body) and 'id="file"' in body
    assert 'href="/admin/municipalities/import/"' in client.get(LIST).get_data(as_text=True)


def test_upload_of_the_shipped_list_imports_it_and_a_second_upload_changes_nothing(app, client, login_as):
    login_as("staff")
    assert count(Municipality) == 0
    first = _upload(client, shipped_csv())
    assert first.status_code == 200
    body = text_of(first)
    assert re.search(r'itvsh-created">1201<', body) and re.search(r'itvsh-updated">0<', body)
    assert count(Municipality) == 1201
    [event] = audit_events(action="import")
    assert (event.after["created"], event.after["source"]) == (1201, "list.csv")
    second = _upload(client, shipped_csv())
    body = text_of(second)
    assert re.search(r'itvsh-created">0<', body) and re.search(r'itvsh-unchanged">1201<', body)
    assert count(Municipality) == 1201
    assert len(audit_events(action="import")) == 2


def _bad_list() -> tuple[bytes, list[int]]:
    lines = shipped_csv().decode("utf-8").splitlines()
    lines[2] = lines[2].replace("01002000,", "0100200X,", 1)  # line 3: bad AGS
    lines[9] = re.sub(r",\d+,(\d+,\d+,2019-12-31)", r",-5,\1", lines[9], count=1)  # line 10: population
    fields = lines[19].split(",")
    lines[19] = ",".join([fields[0], fields[1], "", *fields[3:]])  # line 20: missing name
    lines.append(lines[30])  # the last line: duplicate AGS
    return ("\n".join(lines) + "\n").encode("utf-8"), [3, 10, 20, len(lines)]


def test_upload_of_a_bad_list_names_every_bad_line_and_writes_nothing(client, login_as):
    login_as("staff")
    data, bad_lines = _bad_list()
    before = audit_count()
    response = _upload(client, data)
    assert response.status_code == 200
    errors = re.findall(r"<li>(line \d+: [^<]*)</li>", text_of(response))
    assert sorted({int(re.match(r"line (\d+)", e)[1]) for e in errors}) == bad_lines, errors
    assert any("duplicate AGS" in e for e in errors) and any("missing name" in e for e in errors)
    assert count(Municipality) == 0
    assert audit_count() == before


def test_a_bad_upload_leaves_existing_tenants_alone(client, staff):
    lines = shipped_csv().decode("utf-8").splitlines()
    lines[2] = lines[2].replace(",246794,", ",999999,")  # Kiel: a change that must not land
    lines[3] = lines[3].replace("01003000,", "1003000,", 1)
    before = audit_count()
    response = _upload(client, ("\n".join(lines) + "\n").encode())
    assert set(re.findall(r"<li>(line \d+):", text_of(response))) == {"line 4"}
    db.session.expire_all()
    assert tenant(KIEL).population == 246_794
    assert audit_count() == before


def test_upload_needs_a_file_and_a_csrf_token(client, login_as):
    login_as("staff")
    assert _upload(client, shipped_csv(), with_token=False).status_code == 400
    response = client.post(LIST + "import/", data={"csrf_token": token(client)})
    assert response.status_code == 200
    assert count(Municipality) == 0


# --- contacts ---------------------------------------------------------------------------------

CONTACTS = "/admin/municipality_contacts/"


def test_staff_create_edit_and_delete_a_contact_audited(client, staff):
    new = _form(client, CONTACTS + f"new/?municipality_key={KRUMMWISCH}")
    assert new["municipality_key"] == KRUMMWISCH
    new.update(role="Bürgermeisterin", name="Anna Beispiel", email="anna@krummwisch.example", phone="0431 1")
    assert client.post(CONTACTS + "new/", data=new).status_code == 302
    set_scope(db.session, ALL)
    contact = db.session.execute(select(MunicipalityContact)).scalar_one()
    assert (contact.municipality.key, contact.name, contact.email) == (
        KRUMMWISCH,
        "Anna Beispiel",
        "anna@krummwisch.example",
    )
    [created] = audit_events(entity="municipality_contact", action="create")
    assert created.after["tenant"] == KRUMMWISCH and created.after["name"] == "Anna Beispiel"

    listing = text_of(client.get(CONTACTS))
    assert "Anna Beispiel" in listing and "Krummwisch" in listing
    assert "Anna Beispiel" in _section(text_of(_details(client, KRUMMWISCH)), "contacts-heading")

    url = CONTACTS + f"edit/?id={contact.id}"
    edit = _form(client, url)
    assert edit["name"] == "Anna Beispiel"
    edit["email"] = "buergermeisterin@krummwisch.example"
    assert client.post(url, data=edit).status_code == 302
    [updated] = audit_events(entity="municipality_contact", action="update")
    assert updated.before == {"tenant": KRUMMWISCH, "email": "anna@krummwisch.example"}
    assert updated.after == {"tenant": KRUMMWISCH, "email": "buergermeisterin@krummwisch.example"}

    response = client.post(CONTACTS + "delete/", data={"id": contact.id, "csrf_token": token(client)})
    assert response.status_code == 302
    assert count(MunicipalityContact) == 0
    [deleted] = audit_events(entity="municipality_contact", action="delete")
    assert (
        deleted.before["tenant"] == KRUMMWISCH
        and deleted.before["email"] == "buergermeisterin@krummwisch.example"
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"municipality_key": "01058999", "name": "X"}, "There is no municipality with the key %(key)s."),
        (
            {"municipality_key": KRUMMWISCH},
            "A contact needs at least a name, a role, an email address or a phone number.",
        ),
        (
            {"municipality_key": KRUMMWISCH, "name": "X", "email": "no-at-sign"},
            "This is not a valid email address.",
        ),
    ],
)
def test_a_refused_contact_is_not_saved(app, client, staff, fields, message):
    data = _form(client, CONTACTS + "new/")
    data.update(fields)
    before = audit_count()
    response = client.post(CONTACTS + "new/", data=data)
    assert response.status_code == 200
    assert translated(app, message, key=fields["municipality_key"]) in text_of(response)
    set_scope(db.session, ALL)
    assert count(MunicipalityContact) == 0
    assert audit_count() == before


def test_bulk_delete_of_contacts_is_audited(client, staff):
    set_scope(db.session, ALL)
    for key in (KIEL, LUEBECK):
        services.save_contact(
            db.session, "test", MunicipalityContact(municipality=tenant(key), name=f"c-{key}"), None
        )
    db.session.commit()
    ids = [str(i) for i in db.session.execute(select(MunicipalityContact.id)).scalars()]
    response = client.post(
        CONTACTS + "action/", data={"action": "delete", "rowid": ids, "csrf_token": token(client)}
    )
    assert response.status_code == 302
    assert count(MunicipalityContact) == 0
    assert sorted(
        e.before["tenant"] for e in audit_events(entity="municipality_contact", action="delete")
    ) == [
        KIEL,
        LUEBECK,
    ]


# --- auditors read, never write ---------------------------------------------------------------


def _snapshot() -> tuple:
    set_scope(db.session, ALL)
    db.session.expire_all()
    return (
        [
            m.public_view()
            for m in db.session.execute(select(Municipality).order_by(Municipality.key)).scalars()
        ],
        db.session.execute(
            select(Membership.municipality_id, Membership.left_on).order_by(Membership.id)
        ).all(),
        db.session.execute(
            select(MunicipalityContact.id, MunicipalityContact.name).order_by(MunicipalityContact.id)
        ).all(),
        audit_count(),
    )


def test_auditor_reads_but_every_write_is_refused(client, login_as, shipped):
    krummwisch = tenant(KRUMMWISCH)
    services.join(db.session, "test", krummwisch, FOUNDED)
    contact = MunicipalityContact(municipality=krummwisch, name="Auditor reads me")
    services.save_contact(db.session, "test", contact, None)
    db.session.commit()
    login_as("auditor")
    listing = client.get(LIST)
    assert listing.status_code == 200
    assert "/admin/municipalities/import/" not in listing.get_data(as_text=True)
    assert 'action="/admin/municipalities/action/"' not in listing.get_data(as_text=True)
    details = _details(client, KRUMMWISCH)
    assert details.status_code == 200
    body = details.get_data(as_text=True)
    assert "Auditor reads me" in body
    assert "/admin/municipalities/membership/" not in body and "/edit/" not in body
    assert "/admin/municipality_contacts/new/" not in body
    contacts = client.get(CONTACTS)
    assert contacts.status_code == 200 and "Auditor reads me" in text_of(contacts)

    csrf = token(client)
    before = _snapshot()
    writes = [
        ("GET", LIST + "import/", {}),
        ("POST", LIST + "import/", {"file": (io.BytesIO(shipped_csv()), "list.csv")}),
        ("POST", LIST + "membership/", {"id": krummwisch.id, "change": "leave", "on": "2024-01-01"}),
        ("POST", LIST + "action/", {"action": "leave_today", "rowid": str(krummwisch.id)}),
        ("POST", LIST + "action/", {"action": "join_today", "rowid": str(tenant(KIEL).id)}),
        ("GET", LIST + "new/", {}),
        ("POST", LIST + "new/", {"key": "01058999", "name": "Neudorf", "kind": "gemeinde"}),
        ("GET", LIST + f"edit/?id={krummwisch.id}", {}),
        ("POST", LIST + f"edit/?id={krummwisch.id}", {"name": "Changed", "kind": "gemeinde"}),
        ("GET", CONTACTS + "new/", {}),
        ("POST", CONTACTS + "new/", {"municipality_key": KRUMMWISCH, "name": "Intruder"}),
        ("GET", CONTACTS + f"edit/?id={contact.id}", {}),
        ("POST", CONTACTS + f"edit/?id={contact.id}", {"name": "Changed"}),
        ("POST", CONTACTS + "delete/", {"id": contact.id}),
        ("POST", CONTACTS + "action/", {"action": "delete", "rowid": str(contact.id)}),
    ]
    for method, url, data in writes:
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={**data, "csrf_token": csrf}, content_type="multipart/form-data")
        assert response.status_code == 403, (method, url, response.status_code)
    assert _snapshot() == before


def test_municipality_users_cannot_open_the_tenant_admin(client, login_as, shipped):
    login_as("municipality", KIEL)
    for url in (LIST, LIST + "import/", CONTACTS, f"{LIST}details/?id={tenant(KIEL).id}"):
        assert client.get(url).status_code == 403, url
    data = {"id": tenant(KIEL).id, "change": "leave", "on": "2024-01-01", "csrf_token": token(client)}
    assert client.post(LIST + "membership/", data=data).status_code == 403
