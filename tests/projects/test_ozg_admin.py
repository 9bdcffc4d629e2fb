"""The OZG admin through the client: the catalogue (search, filters, responsibility changes that move
the tallies, the catalogue upload), the matrix of one municipality (values shown, bulk edit all or
nothing, history), the status list (filters, audited CSV/XLSX export), auditors (read, 403 on every
write) and municipality users (shut out), and the matrix's statement count (the same for the small
catalogue and a larger one). Every refused request must leave statuses, history, tallies and the
audit trail as they were."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date
from importlib import resources

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, insert, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.models import OzgService, OzgStatus, OzgStatusChange, OzgTally
from tests.api.test_query_count import recorded_statements
from tests.conftest import csrf_token
from tests.projects.conftest import ACTOR, KIEL, KREIS_RD_ECK, KRUMMWISCH, LUEBECK, NON_MEMBER

SERVICES = "/admin/ozg/services/"
MATRIX = "/admin/ozg/matrix/"
HISTORY = "/admin/ozg/matrix/history/"
STATUSES = "/admin/ozg/statuses/"
AMT_ACHTERWEHR = "010585803"
MATRIX_LIMIT = 5  # the user, the municipality, the services, its statuses, the projects


# --- helpers ------------------------------------------------------------------------------------------


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def scoped():
    set_scope(db.session, ALL)
    return db.session


def count(model, *where) -> int:
    statement = select(func.count()).select_from(model)
    for clause in where:
        statement = statement.where(clause)
    return scoped().execute(statement).scalar_one()


def state() -> tuple:
    """What a refused request must leave unchanged."""
    statuses = (
        scoped()
        .execute(
            select(
                OzgStatus.municipality_id,
                OzgStatus.service_id,
                OzgStatus.maturity,
                OzgStatus.url,
                OzgStatus.project_id,
                OzgStatus.efa,
            ).order_by(OzgStatus.id)
        )
        .all()
    )
    tallies = (
        scoped()
        .execute(
            select(
                OzgTally.scope, OzgTally.scope_id, OzgTally.topic, OzgTally.level3, OzgTally.level4
            ).order_by(OzgTally.id)
        )
        .all()
    )
    services = (
        scoped().execute(select(OzgService.ozg_id, OzgService.responsibility).order_by(OzgService.id)).all()
    )
    return statuses, tallies, services, count(OzgStatusChange), count(AuditEvent)


def post(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={"csrf_token": csrf_token(client, "/logout"), **(data or {})}, **kwargs)


def list_count(response) -> int:
    match = re.search(r'class="nav-link active">[^<]*?\((\d+)\)', response.get_data(as_text=True))
    return int(match.group(1)) if match else 0


def listed_ids(response) -> list[str]:
    """The OZG-IDs in a catalogue list page."""
    return re.findall(r'<td class="col-ozg_id">\s*(\d+)\s*</td>', response.get_data(as_text=True))


def matrix_row(response, ozg_id: str) -> str:
    body = text_of(response)
    match = re.search(rf'<tr id="service-\d+"[^>]*data-ozg-id="{ozg_id}".*?</tr>', body, re.S)
    assert match, f"no row for {ozg_id}"
    return match.group(0)


def land_tally() -> tuple[int, int, int, int, int]:
    tally = (
        scoped()
        .execute(
            select(OzgTally).where(
                OzgTally.scope == "land", OzgTally.scope_id == ozg.LAND_ID, OzgTally.topic == ""
            )
        )
        .scalar_one()
    )
    return tally.possible, tally.level1, tally.level2, tally.level3, tally.level4


def exported(client, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, url
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def row_fields(service: OzgService, **values) -> dict[str, str]:
    """The form fields of one matrix row (unchecked EfA: not sent, as a browser does)."""
    fields = {
        f"s{service.id}-maturity": str(values.get("maturity", 0)),
        f"s{service.id}-online_since": values.get("online_since", ""),
        f"s{service.id}-url": values.get("url", ""),
        f"s{service.id}-project": str(values.get("project", "")),
    }
    if values.get("efa"):
        fields[f"s{service.id}-efa"] = "1"
    return fields


@pytest.fixture
def staff(login_as):
    return login_as("staff", locale="en")


@pytest.fixture
def tallied(members, catalogue):
    """Members and the small catalogue with their tally rows built."""
    ozg.recompute_tallies(scoped())
    db.session.commit()
    set_scope(db.session, ALL)
    return catalogue


def set_status(members, service, key=KIEL, **values):
    result = ozg.set_status(scoped(), ACTOR, members[key], service, **values)
    db.session.commit()
    set_scope(db.session, ALL)
    return result


# --- the catalogue --------------------------------------------------------------------------------


def test_catalogue_searches_by_id_name_and_leika_key_and_filters(client, staff, catalogue):
    catalogue["10169"].leika_keys = "99086001000000;99086002000000"
    db.session.commit()
    page = client.get(SERVICES)
    assert page.status_code == 200
    assert listed_ids(page) == ["10000", "10003", "10169", "10170", "10999"]
    assert listed_ids(client.get(SERVICES + "?search=Elterngeld")) == ["10000"]
    assert listed_ids(client.get(SERVICES + "?search=10170")) == ["10170"]
    assert listed_ids(client.get(SERVICES + "?search=99086002000000")) == ["10169"]
    mobility = client.get(SERVICES + "?flt0_topic=Mobilität+%26+Reisen")
    assert listed_ids(mobility) == ["10169", "10170", "10999"]
    assert listed_ids(client.get(SERVICES + "?flt0_responsibility=land")) == ["10999"]
    assert listed_ids(
        client.get(SERVICES + "?flt0_responsibility=municipal&flt1_topic=Familie+%26+Kind")
    ) == [
        "10000",
        "10003",
    ]
    assert "Familie &amp; Kind" in page.get_data(as_text=True)  # the Themenfeld filter offers it
    details = client.get(f"{SERVICES}details/?id={catalogue['10169'].id}")
    assert details.status_code == 200 and "99086001000000, 99086002000000" in text_of(details)
    assert client.get(f"{SERVICES}details/?id=abc").status_code in (200, 302)
    # No create, no delete: the catalogue comes from the import.
    assert "/admin/ozg/services/new/" not in page.get_data(as_text=True)
    before = count(OzgService)
    client.get(SERVICES + "new/")
    post(client, SERVICES + "new/", {"ozg_id": "12345", "name": "Neu"})
    post(client, SERVICES + "delete/", {"id": str(catalogue["10000"].id)})
    assert count(OzgService) == before


def test_responsibility_change_moves_the_tallies_and_is_audited(client, staff, members, tallied):
    set_status(members, tallied["10000"], KIEL, maturity=3)
    set_status(members, tallied["10000"], KRUMMWISCH, maturity=4)
    set_status(members, tallied["10169"], KRUMMWISCH, maturity=3)
    gemeinden = land_tally()[0] // 4
    assert land_tally() == (gemeinden * 4, 0, 0, 2, 1)
    edit = f"{SERVICES}edit/?id={tallied['10000'].id}"
    form = client.get(edit)
    assert form.status_code == 200 and "Elterngeld" in text_of(form)
    events = count(AuditEvent, AuditEvent.entity == "ozg_service")
    response = post(client, edit, {"responsibility": "land"}, follow_redirects=True)
    assert response.status_code == 200
    assert "responsibility set to the Land" in text_of(response)
    assert scoped().get(OzgService, tallied["10000"].id).responsibility == "land"
    assert land_tally() == (gemeinden * 3, 0, 0, 1, 0)  # Elterngeld no longer counts
    assert count(AuditEvent, AuditEvent.entity == "ozg_service") == events + 1
    # ... and back: the counts return.
    post(client, edit, {"responsibility": "municipal"})
    assert land_tally() == (gemeinden * 4, 0, 0, 2, 1)

    before = state()
    refused = post(client, edit, {"responsibility": "city"})
    assert refused.status_code == 200
    assert "Not a valid choice" in text_of(refused)
    assert state() == before


def shipped_catalogue() -> bytes:
    return resources.files("itvsh.data").joinpath("ozg_services.csv").read_bytes()


def upload(client, data: bytes, filename: str = "ozg.csv"):
    return client.post(
        SERVICES + "import/",
        data={"csrf_token": csrf_token(client, "/logout"), "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def test_catalogue_upload_shows_counts_and_every_bad_line(client, staff, members, catalogue):
    listing = client.get(SERVICES).get_data(as_text=True)
    assert 'href="/admin/ozg/services/import/"' in listing
    assert client.get(SERVICES + "import/").status_code == 200

    bad = (
        b"id,name,themenfeld,lebenslage,leika_key,leika_keys\n"
        b"10000,Elterngeld neu,Familie & Kind,Geburt,,99041006000000\n"
        b"1234,Kurz,Familie & Kind,Geburt,,\n"
        b"10001,,Familie & Kind,Geburt,,\n"
    )
    before = state()
    refused = upload(client, bad)
    assert refused.status_code == 200
    page = text_of(refused)
    assert "nothing was imported" in page
    errors = re.findall(r"<li>(line \d+: [^<]*)</li>", page)
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4"]
    assert "OZG-ID" in errors[0] and "name" in errors[1]
    assert state() == before
    assert scoped().get(OzgService, catalogue["10000"].id).name == "Elterngeld"

    events = count(AuditEvent, AuditEvent.action == "import", AuditEvent.entity == "ozg_services")
    response = upload(client, shipped_catalogue(), "ozg_services.csv")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    created = int(re.search(r'itvsh-created">(\d+)<', body).group(1))
    unchanged = int(re.search(r'itvsh-unchanged">(\d+)<', body).group(1))
    updated = int(re.search(r'itvsh-updated">(\d+)<', body).group(1))
    assert created + unchanged + updated == 557
    assert created == 557 - 3  # 10000, 10003 and 10169 were there (and get the file's LeiKa keys)
    missing = re.search(r'itvsh-missing">(\d+)</span>: ([^<]*)<', body)
    assert missing.groups() == ("2", "10170, 10999")  # kept, not deleted
    assert count(OzgService) == 559
    assert count(AuditEvent, AuditEvent.action == "import", AuditEvent.entity == "ozg_services") == events + 1
    again = upload(client, shipped_catalogue())
    assert re.search(r'itvsh-unchanged">557<', again.get_data(as_text=True))


# --- the matrix -------------------------------------------------------------------------------------


def test_matrix_shows_the_values_by_themenfeld(client, staff, members, tallied, project):
    set_status(
        members,
        tallied["10000"],
        KIEL,
        maturity=3,
        online_since=date(2021, 5, 1),
        url="https://kiel.example/elterngeld",
        project=project,
        efa=True,
    )
    set_status(members, tallied["10169"], KIEL, maturity=1)
    set_status(members, tallied["10170"], KRUMMWISCH, maturity=4)  # another municipality
    response = client.get(MATRIX + f"?municipality={KIEL}")
    assert response.status_code == 200
    body = text_of(response)
    assert body.count("<h1") == 1 and "Kiel" in body
    row = matrix_row(response, "10000")
    assert 'data-maturity="3"' in row
    assert 'value="2021-05-01"' in row and 'value="https://kiel.example/elterngeld"' in row
    assert re.search(rf'<option value="{project.id}" selected>Digitaler Bauantrag</option>', row)
    assert re.search(r'name="s\d+-efa" value="1" checked', row)
    assert 'data-maturity="1"' in matrix_row(response, "10169")
    assert 'data-maturity="0"' in matrix_row(response, "10170")  # no row = 0
    assert "the Land" in matrix_row(response, "10999")  # not municipal: marked
    # Grouped by Themenfeld, one section each.
    assert re.findall(r'<h2 id="topic-\d+" class="h5">([^<]*)</h2>', body) == [
        "Familie & Kind",
        "Mobilität & Reisen",
    ]
    assert 'data-compliant="1" data-possible="4"' in body
    # A Themenfeld alone.
    only = text_of(client.get(MATRIX + f"?municipality={KIEL}&topic=Familie+%26+Kind"))
    assert "10169" not in re.sub(r"<select id=\"ozg-topic\".*?</select>", "", only, flags=re.S)

    # Chosen by name; a name of several asks which; an Amt, a Kreis or an unknown key are explained.
    assert 'data-ozg-id="10000"' in client.get(MATRIX + "?municipality=kiel").get_data(as_text=True)
    several = text_of(client.get(MATRIX + "?municipality=Buchholz"))
    assert "Several municipalities match" in several and several.count("?municipality=01") == 2
    assert 'data-ozg-id="' not in several
    for key in (AMT_ACHTERWEHR, KREIS_RD_ECK):
        page = text_of(client.get(MATRIX + f"?municipality={key}"))
        assert "OZG status is kept for Gemeinden and Städte" in page and 'data-ozg-id="' not in page
    assert "There is no municipality with the key 01999999" in text_of(
        client.get(MATRIX + "?municipality=01999999")
    )
    assert "No Gemeinde or Stadt is called" in text_of(client.get(MATRIX + "?municipality=Atlantis"))
    assert client.get(MATRIX).status_code == 200


def test_bulk_edit_writes_every_row_in_one_go_and_keeps_history(client, staff, members, tallied, project):
    set_status(members, tallied["10003"], KRUMMWISCH, maturity=2)
    events = count(AuditEvent, AuditEvent.entity == "ozg_status")
    data = {
        "municipality": KRUMMWISCH,
        **row_fields(
            tallied["10000"],
            maturity=4,
            online_since="2022-02-01",
            url="https://krummwisch.example/eg",
            project=project.id,
            efa=True,
        ),
        **row_fields(tallied["10003"], maturity=3),
        **row_fields(tallied["10169"], maturity=0),  # unchanged: not written
    }
    response = post(client, MATRIX, data)
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "2 statuses were changed." in text_of(page)
    krummwisch = members[KRUMMWISCH]
    rows = {
        s.service_id: s
        for s in scoped()
        .execute(select(OzgStatus).where(OzgStatus.municipality_id == krummwisch.id))
        .scalars()
    }
    first = rows[tallied["10000"].id]
    assert (first.maturity, first.online_since, first.url, first.project_id, first.efa) == (
        4,
        date(2022, 2, 1),
        "https://krummwisch.example/eg",
        project.id,
        True,
    )
    assert first.changed_by_id == staff.id
    assert rows[tallied["10003"].id].maturity == 3 and tallied["10169"].id not in rows
    assert count(AuditEvent, AuditEvent.entity == "ozg_status") == events + 2
    assert land_tally()[1:] == (0, 0, 1, 1)

    history = client.get(HISTORY + f"?municipality={KRUMMWISCH}&service=10003")
    assert history.status_code == 200
    assert re.findall(r'class="itvsh-ozg-change" data-maturity="(\d)"', history.get_data(as_text=True)) == [
        "3",
        "2",
    ]
    assert client.get(HISTORY + f"?municipality={KRUMMWISCH}&service=99999").status_code == 404
    assert client.get(HISTORY + "?municipality=01999999&service=10003").status_code == 404

    # Back to nothing known: the row goes, the history keeps the step.
    post(client, MATRIX, {"municipality": KRUMMWISCH, **row_fields(tallied["10003"], maturity=0)})
    assert count(OzgStatus, OzgStatus.service_id == tallied["10003"].id) == 0
    assert count(OzgStatusChange, OzgStatusChange.service_id == tallied["10003"].id) == 3


def test_bulk_edit_is_all_or_nothing(client, staff, members, tallied, project):
    set_status(members, tallied["10003"], KIEL, maturity=2)
    before = state()
    data = {
        "municipality": KIEL,
        **row_fields(tallied["10000"], maturity=3, url="https://kiel.example/ok"),
        **row_fields(tallied["10003"], maturity=4),
        **row_fields(tallied["10169"], maturity=3, url="javascript:alert(1)"),
    }
    response = post(client, MATRIX, data)
    assert response.status_code == 200
    body = text_of(response)
    assert "1 row was refused; nothing was changed." in body
    refused = re.findall(r'<li data-ozg-id="(\d+)" data-field="(\w+)">.*?: (URL): ([^<]*)</li>', body, re.S)
    assert [(r[0], r[1], r[2]) for r in refused] == [("10169", "url", "URL")]
    assert "https://" in refused[0][3]
    row = matrix_row(response, "10169")
    assert "is-invalid" in row and 'aria-invalid="true"' in row and 'value="javascript:alert(1)"' in row
    assert 'value="https://kiel.example/ok"' in matrix_row(response, "10000")  # what was sent stays
    assert state() == before

    # Values that cannot be read are refused at their field, too; and a non-member cannot be changed.
    data = {
        "municipality": KIEL,
        f"s{tallied['10000'].id}-maturity": "9",
        **{k: v for k, v in row_fields(tallied["10169"], maturity=1).items() if not k.endswith("maturity")},
        f"s{tallied['10169'].id}-maturity": "x",
        f"s{tallied['10170'].id}-maturity": "1",
        f"s{tallied['10170'].id}-online_since": "2021-13-01",
        f"s{tallied['10170'].id}-project": "999999",
    }
    body = text_of(post(client, MATRIX, data))
    fields = re.findall(r'<li data-ozg-id="(\d+)" data-field="(\w+)">', body)
    assert sorted(fields) == [
        ("10000", "maturity"),
        ("10169", "maturity"),
        ("10170", "online_since"),
        ("10170", "project"),
    ]
    assert state() == before
    response = post(client, MATRIX, {"municipality": NON_MEMBER, **row_fields(tallied["10000"], maturity=1)})
    assert "not a member" in text_of(response)
    assert state() == before


# --- who may do what ----------------------------------------------------------------------------------


def test_auditors_read_and_get_403_on_every_write(client, login_as, members, tallied):
    set_status(members, tallied["10000"], KIEL, maturity=3, url="https://kiel.example/eg")
    login_as("auditor", locale="en")
    page = client.get(MATRIX + f"?municipality={KIEL}")
    assert page.status_code == 200
    row = matrix_row(page, "10000")
    assert "3 online service" in row and 'href="https://kiel.example/eg"' in row
    assert 'name="s' not in page.get_data(as_text=True) and 'method="post"' not in row
    assert client.get(SERVICES).status_code == 200
    assert "/admin/ozg/services/import/" not in client.get(SERVICES).get_data(as_text=True)
    assert client.get(STATUSES).status_code == 200
    before = state()
    edit = f"{SERVICES}edit/?id={tallied['10000'].id}"
    assert client.get(edit).status_code == 403
    assert post(client, edit, {"responsibility": "land"}).status_code == 403
    assert client.get(SERVICES + "import/").status_code == 403
    assert upload(client, shipped_catalogue()).status_code == 403
    response = post(client, MATRIX, {"municipality": KIEL, **row_fields(tallied["10000"], maturity=4)})
    assert response.status_code == 403
    assert state() == before


def test_municipality_users_are_shut_out_of_the_ozg_admin(client, login_as, members, tallied):
    login_as("municipality", KIEL)
    before = state()
    for url in (
        SERVICES,
        SERVICES + "import/",
        f"{SERVICES}edit/?id={tallied['10000'].id}",
        MATRIX + f"?municipality={KIEL}",
        HISTORY + f"?municipality={KIEL}&service=10000",
        STATUSES,
        STATUSES + "export/csv/",
    ):
        assert client.get(url).status_code == 403, url
    response = post(client, MATRIX, {"municipality": KIEL, **row_fields(tallied["10000"], maturity=4)})
    assert response.status_code == 403
    assert state() == before


# --- the matrix's statement count ----------------------------------------------------------------------


def matrix_statements(client) -> tuple[int, int]:
    db.session.expunge_all()  # a cold session, as a new request in production has
    with recorded_statements() as statements:
        response = client.get(MATRIX + f"?municipality={KIEL}")
    assert response.status_code == 200
    return len(statements), response.get_data(as_text=True).count('class="itvsh-ozg-row')


def test_matrix_statement_count_does_not_grow_with_the_catalogue(client, staff, members, tallied, project):
    set_status(members, tallied["10000"], KIEL, maturity=3, project=project)
    kiel, project_id = members[KIEL].id, project.id
    small, rows = matrix_statements(client)
    assert rows == 5
    scoped().execute(
        insert(OzgService),
        [
            {
                "ozg_id": f"2{n:04d}",
                "name": f"Leistung {n}",
                "topic": f"Themenfeld {n % 7}",
                "life_event": "X",
            }
            for n in range(300)
        ],
    )
    ids = scoped().execute(select(OzgService.id).where(OzgService.ozg_id.like("2%"))).scalars().all()
    scoped().execute(
        insert(OzgStatus),
        [
            {
                "municipality_id": kiel,
                "service_id": service_id,
                "maturity": n % 5,
                "url": f"https://kiel.example/{n}",
                "project_id": project_id if n % 2 else None,
                "efa": bool(n % 3),
                "changed_by": "test",
            }
            for n, service_id in enumerate(ids)
        ],
    )
    db.session.commit()
    large, rows = matrix_statements(client)
    assert rows == 305
    assert large == small <= MATRIX_LIMIT


# --- the status list -------------------------------------------------------------------------------------


def test_status_list_filters_and_audited_exports(client, staff, members, tallied, project):
    set_status(members, tallied["10000"], KIEL, maturity=3, project=project, efa=True)
    set_status(members, tallied["10169"], KIEL, maturity=1)
    set_status(members, tallied["10000"], KRUMMWISCH, maturity=4)
    set_status(members, tallied["10170"], LUEBECK, maturity=2, url="https://luebeck.example/kfz")
    page = client.get(STATUSES)
    assert page.status_code == 200 and list_count(page) == 4
    assert list_count(client.get(STATUSES + f"?flt0_municipality={KIEL}")) == 2
    assert list_count(client.get(STATUSES + f"?flt0_kreis={KREIS_RD_ECK}")) == 1
    assert list_count(client.get(STATUSES + f"?flt0_kreis={KIEL}")) == 2  # a kreisfreie Stadt is its Kreis
    assert list_count(client.get(STATUSES + "?flt0_topic=Familie+%26+Kind")) == 2
    assert list_count(client.get(STATUSES + "?flt0_maturity=4")) == 1
    assert list_count(client.get(STATUSES + "?flt0_efa=1")) == 1
    assert list_count(client.get(STATUSES + f"?flt0_project={project.id}")) == 1
    assert list_count(client.get(STATUSES + f"?flt0_municipality={KIEL}&flt1_maturity=1")) == 1
    for sort in ("0", "1", "2", "5"):  # municipality, service (joined), maturity, changed at
        for desc in ("0", "1"):
            sorted_page = client.get(STATUSES + f"?sort={sort}&desc={desc}")
            assert sorted_page.status_code == 200 and list_count(sorted_page) == 4
    # Read-only: no create, edit or delete.
    body = page.get_data(as_text=True)
    assert "/admin/ozg/statuses/new/" not in body and "/admin/ozg/statuses/edit/" not in body

    events = count(AuditEvent, AuditEvent.action == "export", AuditEvent.entity == "ozg_statuses")
    rows = exported(client, STATUSES + f"export/csv/?flt0_municipality={KIEL}")
    assert sorted((r["AGS"], r["OZG-ID"], r["Maturity"], r["Project"], r["EfA"]) for r in rows) == [
        (KIEL, "10000", "3", "Digitaler Bauantrag", "1"),
        (KIEL, "10169", "1", "", "0"),
    ]
    assert {r["Themenfeld"] for r in rows} == {"Familie & Kind", "Mobilität & Reisen"}
    assert all(r["Maturity model"] == "1.x" for r in rows)
    luebeck = exported(client, STATUSES + "export/csv/?flt0_maturity=2")
    assert [(r["AGS"], r["URL"], r["Kreis"]) for r in luebeck] == [
        (LUEBECK, "https://luebeck.example/kfz", members[LUEBECK].name)
    ]
    sheet = load_workbook(io.BytesIO(client.get(STATUSES + "export/xlsx/").get_data())).active
    assert sheet.max_row == 5
    assert count(AuditEvent, AuditEvent.action == "export", AuditEvent.entity == "ozg_statuses") == events + 3


def test_exports_neutralise_spreadsheet_formulas(client, staff, members, tallied):
    service = OzgService(ozg_id="19999", name="=HYPERLINK(1)", topic="@Themenfeld")
    scoped().add(service)
    db.session.commit()
    set_status(members, service, KIEL, maturity=1)
    rows = exported(client, STATUSES + f"export/csv/?flt0_municipality={KIEL}")
    assert [(r["Service"], r["Themenfeld"]) for r in rows] == [("'=HYPERLINK(1)", "'@Themenfeld")]
    catalogue_rows = exported(client, SERVICES + "export/csv/?search=19999")
    assert catalogue_rows[0]["Name"] == "'=HYPERLINK(1)"
