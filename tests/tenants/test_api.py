"""The municipalities API: public master data for every logged-in role (filters, pagination),
contacts only within the caller's tenant scope, staff and admins create and change municipalities
and their membership -- every refusal a problem+json naming the field, writing nothing -- and a list
whose SQL statement count does not grow with the number of municipalities."""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import lazyload

from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import shipped_list
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact
from itvsh.tenants.schemas import MunicipalitySchema
from tests.api.helpers import assert_problem, field_errors
from tests.api.test_query_count import recorded_statements

KIEL = "01002000"  # kreisfreie Stadt
FLENSBURG = "01001000"
RD_ECK = "01058"  # Kreis Rendsburg-Eckernförde
ACHTERWEHR = "010585803"  # Amt in RD-Eck
KRUMMWISCH = "01058093"  # Gemeinde in Amt Achterwehr
WESTENSEE = "01058171"  # Gemeinde in Amt Achterwehr
RENDSBURG = "01058135"  # Stadt in RD-Eck, in no Amt
ACHTERWEHR_GEMEINDEN = {
    "01058001",
    "01058028",
    "01058050",
    KRUMMWISCH,
    "01058104",
    "01058126",
    "01058130",
    WESTENSEE,
}
LIST_FIELDS = {
    "key",
    "ars",
    "name",
    "kind",
    "kreis",
    "amt",
    "population",
    "total_population",
    "population_date",
    "area_km2",
    "postcode",
    "member",
}
FOUNDED = date(2019, 1, 1)
_LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def canary(key: str) -> str:
    """A private string only the contact of ``key`` carries."""
    return f"canary-contact-{key}@private.example"


@pytest.fixture
def tenants(app):
    """The 1,201 tenants of the shipped list; Kiel, the Amt Achterwehr with its Gemeinden and
    Rendsburg members; one contact (with a canary) for each of several tenants."""
    set_scope(db.session, ALL)
    import_municipalities(db.session, "test", shipped_list(), source="sh_municipalities.csv")
    for key in (KIEL, ACHTERWEHR, KRUMMWISCH, WESTENSEE, RENDSBURG, RD_ECK, FLENSBURG):
        municipality = services.get_by_key(db.session, key)
        db.session.add(
            MunicipalityContact(
                municipality=municipality, role="OZG", name=f"Kontakt {key}", email=canary(key)
            )
        )
    for key in (KIEL, ACHTERWEHR, *ACHTERWEHR_GEMEINDEN, RENDSBURG):
        services.join(db.session, "test", services.get_by_key(db.session, key), FOUNDED)
    db.session.commit()


@pytest.fixture
def as_user(client, csrf, login_as):
    """Log in as a new user of ``role``; returns the headers a write needs (the CSRF token)."""
    token = csrf()

    def login(role: str, tenant: str | None = None) -> dict[str, str]:
        login_as(role, tenant)
        return {"X-CSRFToken": token}

    return login


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(response.headers.get("Link", ""))}


def listing(client, query: str = "") -> dict:
    response = client.get(f"/api/v1/municipalities{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def all_keys(client, query: str) -> list[str]:
    body = listing(client, query + ("&" if query else "?") + "per_page=500")
    assert body["meta"]["pages"] == 1
    return [item["key"] for item in body["items"]]


def state() -> tuple:
    """Everything a write could change: unchanged after every refusal. Commits first, so whatever a
    refused request left in the (test-shared) session -- changed objects, pending audit events --
    would be written and show."""
    db.session.commit()
    return (
        db.session.execute(select(func.count()).select_from(Municipality)).scalar_one(),
        db.session.execute(select(func.count()).select_from(Membership)).scalar_one(),
        db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
        db.session.execute(select(func.max(Municipality.updated_at))).scalar_one(),
        [
            m.public_view()
            for m in db.session.execute(
                select(Municipality).where(Municipality.key.in_([KIEL, RENDSBURG, RD_ECK]))
            ).scalars()
        ],
        [
            (m.municipality_id, m.joined_on, m.left_on, m.note)
            for m in db.session.execute(select(Membership).order_by(Membership.id)).scalars()
        ],
    )


def audit_events(action: str, key: str) -> list[AuditEvent]:
    return list(
        db.session.execute(
            select(AuditEvent)
            .where(
                AuditEvent.action == action, AuditEvent.entity == "municipality", AuditEvent.entity_id == key
            )
            .order_by(AuditEvent.seq)
        ).scalars()
    )


# --- list: public master data ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "staff", "auditor", "municipality"])
def test_every_role_lists_the_public_master_data(client, tenants, as_user, role):
    as_user(role, FLENSBURG if role == "municipality" else None)
    body = listing(client, "?per_page=3")
    assert body["meta"] == {"page": 1, "per_page": 3, "total": 1201, "pages": 401}
    assert [item["key"] for item in body["items"]] == [FLENSBURG, KIEL, "01003000"]  # by key; no Kreis 01001
    for item in body["items"]:
        assert set(item) == LIST_FIELDS
    kiel = next(i for i in listing(client, "?q=Kiel")["items"] if i["key"] == KIEL)
    assert kiel == {
        "key": KIEL,
        "ars": "010020000000",
        "name": "Kiel, Landeshauptstadt",
        "kind": "kreisfreie_stadt",
        "kreis": None,
        "amt": None,
        "population": 246794,
        "total_population": 246794,
        "population_date": "2019-12-31",
        "area_km2": "118.65",
        "postcode": "24103",
        "member": True,
    }
    assert canary(KIEL) not in str(listing(client, "?per_page=500"))  # contacts are not in the list


def test_hierarchy_and_population_sums_in_the_list(client, tenants, as_user):
    as_user("municipality", KRUMMWISCH)
    items = {i["key"]: i for i in listing(client, "?q=010585803")["items"]}
    assert items[ACHTERWEHR]["kind"] == "amt"
    assert items[ACHTERWEHR]["kreis"] == RD_ECK
    assert items[ACHTERWEHR]["population"] is None
    assert items[ACHTERWEHR]["total_population"] == 11487  # the sum of its eight Gemeinden
    westensee = next(i for i in listing(client, "?q=Westensee")["items"] if i["key"] == WESTENSEE)
    assert (westensee["kreis"], westensee["amt"], westensee["kind"]) == (RD_ECK, ACHTERWEHR, "gemeinde")
    assert westensee["ars"] == "010585803171"
    rd_eck = next(i for i in listing(client, "?kind=kreis")["items"] if i["key"] == RD_ECK)
    assert rd_eck["total_population"] == 274098
    assert rd_eck["member"] is False


def test_anonymous_gets_401(client, tenants):
    response = client.get("/api/v1/municipalities")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.get(f"/api/v1/municipalities/{KIEL}"), 401)


def test_bearer_token_reads_the_list(client, tenants, make_user):
    token = auth_services.issue_token(db.session, "test", make_user("auditor"))
    db.session.commit()
    response = client.get("/api/v1/municipalities?kind=kreis", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["meta"]["total"] == 11


# --- list: filters ---------------------------------------------------------------------------------


def test_filter_by_kreis_gives_its_gemeinden_and_aemter(client, tenants, as_user):
    as_user("staff")
    body = listing(client, f"?kreis={RD_ECK}&per_page=500")
    assert body["meta"]["total"] == 165 + 14
    assert {i["kreis"] for i in body["items"]} == {RD_ECK}
    kinds = {i["kind"] for i in body["items"]}
    assert kinds == {"gemeinde", "stadt", "amt"}
    assert sum(1 for i in body["items"] if i["kind"] == "amt") == 14
    assert RD_ECK not in {i["key"] for i in body["items"]}  # the Kreis is not its own child


def test_filter_by_amt_gives_its_gemeinden(client, tenants, as_user):
    as_user("auditor")
    assert set(all_keys(client, f"?amt={ACHTERWEHR}")) == ACHTERWEHR_GEMEINDEN


@pytest.mark.parametrize(
    ("kind", "total"),
    [("kreis", 11), ("amt", 84), ("kreisfreie_stadt", 4), ("stadt", 59), ("gemeinde", 1043)],
)
def test_filter_by_kind(client, tenants, as_user, kind, total):
    as_user("staff")
    body = listing(client, f"?kind={kind}&per_page=500")
    assert body["meta"]["total"] == total
    assert {i["kind"] for i in body["items"]} == {kind}


def test_filter_by_membership_today(client, tenants, as_user):
    set_scope(db.session, ALL)
    # Rendsburg leaves today (no longer a member); Flensburg joins tomorrow (not yet a member).
    services.leave(db.session, "test", services.get_by_key(db.session, RENDSBURG), date.today())
    services.join(db.session, "test", services.get_by_key(db.session, FLENSBURG), date.today() + timedelta(1))
    db.session.commit()
    as_user("staff")
    members = all_keys(client, "?member=true")
    assert set(members) == {KIEL, ACHTERWEHR, *ACHTERWEHR_GEMEINDEN}
    non_members = listing(client, "?member=false")
    assert non_members["meta"]["total"] == 1201 - len(members)
    assert all(i["member"] is False for i in non_members["items"])
    assert set(all_keys(client, f"?member=false&kreis={RD_ECK}")) >= {RENDSBURG}
    assert FLENSBURG in all_keys(client, "?member=false&kind=kreisfreie_stadt")


def test_search_by_name_or_key(client, tenants, as_user):
    as_user("municipality", KIEL)
    assert all_keys(client, "?q=kiel") == [KIEL]  # any case
    assert all_keys(client, "?q=KIEL,%20LANDES") == [KIEL]
    assert all_keys(client, "?q=0585803") == [ACHTERWEHR]  # part of a key
    assert all_keys(client, "?q=01058093") == [KRUMMWISCH]
    dorf = listing(client, "?q=dorf")
    assert dorf["meta"]["total"] == 124 + 2  # Gemeinden and the Ämter Bokhorst-Wankendorf, Kisdorf
    assert all("dorf" in i["name"].lower() for i in dorf["items"])
    # LIKE wildcards are searched for literally, not as wildcards.
    assert listing(client, "?q=%25")["meta"]["total"] == 0
    assert listing(client, "?q=_")["meta"]["total"] == 0
    assert listing(client, "?q=%20%20")["meta"]["total"] == 1201  # blank: no filter


def test_filters_combine(client, tenants, as_user):
    as_user("staff")
    assert all_keys(client, f"?kreis={RD_ECK}&kind=amt&q=achterwehr") == [ACHTERWEHR]
    assert all_keys(client, f"?amt={ACHTERWEHR}&member=true&q=westensee") == [WESTENSEE]
    assert all_keys(client, f"?amt={ACHTERWEHR}&member=false") == []
    staedte = listing(client, f"?kreis={RD_ECK}&kind=stadt")["items"]
    assert {RENDSBURG, "01058043"} <= {i["key"] for i in staedte}  # Rendsburg, Eckernförde
    assert {(i["kind"], i["kreis"]) for i in staedte} == {("stadt", RD_ECK)}


def test_well_formed_keys_of_no_kreis_or_amt_filter_to_nothing(client, tenants, as_user):
    as_user("staff")
    assert listing(client, "?kreis=01099")["meta"]["total"] == 0
    assert listing(client, "?amt=010999999")["meta"]["total"] == 0
    assert listing(client, "?amt=010580000")["meta"]["total"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kreis=abc", "kreis"),
        (f"kreis={KIEL}", "kreis"),
        ("kreis=010580", "kreis"),
        ("kreis=01058%0A", "kreis"),
        ("kreis=%EF%BC%90%EF%BC%91%EF%BC%90%EF%BC%95%EF%BC%98", "kreis"),  # full-width digits
        ("amt=01058", "amt"),
        (f"amt={ACHTERWEHR}0", "amt"),
        ("kind=dorf", "kind"),
        ("kind=AMT", "kind"),
        ("member=yes", "member"),
        ("member=1", "member"),
        ("q=" + "x" * 101, "q"),
    ],
)
def test_bad_filters_are_refused_naming_the_parameter(client, tenants, as_user, query, field):
    as_user("staff")
    errors = field_errors(client.get(f"/api/v1/municipalities?{query}"))
    assert set(errors) == {field}


@pytest.mark.parametrize("query", ["page=0", "per_page=501", "per_page=x", "q=a%00b"])
def test_bad_paging_and_unstorable_text_answer_400(client, tenants, as_user, query):
    as_user("staff")
    assert_problem(client.get(f"/api/v1/municipalities?{query}"), 400)


# --- list: pagination ------------------------------------------------------------------------------


def test_pagination_walks_a_filtered_list_once(client, tenants, as_user):
    as_user("auditor")
    first = client.get(f"/api/v1/municipalities?kreis={RD_ECK}&per_page=50")
    body = first.get_json()
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 179, "pages": 4}
    assert set(links(first)) == {"next"}
    seen, response = [], first
    while True:
        seen += [i["key"] for i in response.get_json()["items"]]
        if "next" not in links(response):
            break
        next_url = links(response)["next"]
        assert parse_qs(urlsplit(next_url).query)["kreis"] == [RD_ECK]  # the filter stays
        response = client.get(next_url)
        assert response.status_code == 200
    assert response.get_json()["meta"]["page"] == 4
    assert set(links(response)) == {"prev"}
    assert seen == sorted(seen)  # ordered by key
    assert len(seen) == len(set(seen)) == 179
    assert listing(client, f"?kreis={RD_ECK}&per_page=50&page=5")["items"] == []


# --- detail and contacts -----------------------------------------------------------------------------


def detail(client, key: str) -> dict:
    response = client.get(f"/api/v1/municipalities/{key}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def contact_emails(body: dict) -> set[str]:
    return {c["email"] for c in body["contacts"]}


@pytest.mark.parametrize("role", ["admin", "staff", "auditor"])
def test_federation_and_auditors_see_every_contact(client, tenants, as_user, role):
    as_user(role)
    body = detail(client, KIEL)
    assert set(body) == LIST_FIELDS | {"memberships", "contacts"}
    assert body["name"] == "Kiel, Landeshauptstadt"
    assert body["memberships"] == [{"joined_on": "2019-01-01", "left_on": None, "note": ""}]
    assert body["contacts"] == [
        {
            "id": body["contacts"][0]["id"],
            "role": "OZG",
            "name": f"Kontakt {KIEL}",
            "email": canary(KIEL),
            "phone": "",
            "address": "",
            "website": "",
        }
    ]
    for key in (ACHTERWEHR, KRUMMWISCH, RD_ECK, FLENSBURG):
        assert contact_emails(detail(client, key)) == {canary(key)}


def test_municipality_user_sees_own_contacts_and_only_master_data_of_others(client, tenants, as_user):
    as_user("municipality", KIEL)
    assert contact_emails(detail(client, KIEL)) == {canary(KIEL)}
    flensburg = detail(client, FLENSBURG)  # public master data: 200, private contacts: none
    assert flensburg["name"] == "Flensburg, Stadt"
    assert flensburg["contacts"] == []
    assert canary(FLENSBURG) not in str(flensburg)
    for key in (ACHTERWEHR, KRUMMWISCH, RD_ECK):
        assert detail(client, key)["contacts"] == []


def test_amt_user_sees_contacts_of_the_amt_and_its_gemeinden_only(client, tenants, as_user):
    as_user("municipality", ACHTERWEHR)
    for key in (ACHTERWEHR, KRUMMWISCH, WESTENSEE):
        assert contact_emails(detail(client, key)) == {canary(key)}
    for key in (RENDSBURG, RD_ECK, KIEL, FLENSBURG):  # same Kreis, its Kreis, elsewhere
        body = detail(client, key)
        assert body["contacts"] == [], key
        assert body["key"] == key


def test_kreis_user_sees_only_the_kreis_contacts(client, tenants, as_user):
    as_user("municipality", RD_ECK)
    assert contact_emails(detail(client, RD_ECK)) == {canary(RD_ECK)}
    for key in (ACHTERWEHR, KRUMMWISCH, RENDSBURG, KIEL):  # not even the Kreis's own Gemeinden
        assert detail(client, key)["contacts"] == [], key


def test_gemeinde_user_of_an_amt_does_not_see_its_amt_or_neighbours(client, tenants, as_user):
    as_user("municipality", KRUMMWISCH)
    assert contact_emails(detail(client, KRUMMWISCH)) == {canary(KRUMMWISCH)}
    assert detail(client, ACHTERWEHR)["contacts"] == []
    assert detail(client, WESTENSEE)["contacts"] == []


def test_membership_history_in_order(client, tenants, as_user):
    set_scope(db.session, ALL)
    rendsburg = services.get_by_key(db.session, RENDSBURG)
    services.leave(db.session, "test", rendsburg, date(2021, 1, 1), "Austritt")
    services.join(db.session, "test", rendsburg, date(2023, 7, 1), "Wiedereintritt")
    db.session.commit()
    as_user("municipality", KIEL)
    body = detail(client, RENDSBURG)
    assert body["memberships"] == [
        {"joined_on": "2019-01-01", "left_on": "2021-01-01", "note": "Austritt"},
        {"joined_on": "2023-07-01", "left_on": None, "note": "Wiedereintritt"},
    ]
    assert body["member"] is True
    assert detail(client, FLENSBURG)["memberships"] == []


@pytest.mark.parametrize(
    "key",
    [
        "01099000",  # well-formed, unknown
        "01099",
        "010999999",
        "abc",
        "0100200",
        "010020000",
        "0100200000000",
        "01002000%20",
        "%EF%BC%90%EF%BC%91%EF%BC%90%EF%BC%90%EF%BC%92%EF%BC%90%EF%BC%90%EF%BC%90",  # full-width
        "01002000%00",
        "-1",
    ],
)
@pytest.mark.parametrize("role", ["staff", "municipality"])
def test_unknown_or_malformed_key_is_404(client, tenants, as_user, key, role):
    headers = as_user(role, KIEL if role == "municipality" else None)
    assert_problem(client.get(f"/api/v1/municipalities/{key}"), 404)
    if role == "staff":
        before = state()
        assert_problem(
            client.patch(f"/api/v1/municipalities/{key}", json={"name": "X"}, headers=headers), 404
        )
        assert_problem(
            client.post(
                f"/api/v1/municipalities/{key}/membership",
                json={"action": "join", "on": "2024-01-01"},
                headers=headers,
            ),
            404,
        )
        assert state() == before


# --- writes: who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "tenant"), [("municipality", KIEL), ("municipality", ACHTERWEHR), ("auditor", None)]
)
def test_municipality_users_and_auditors_may_not_write(client, tenants, as_user, role, tenant):
    headers = as_user(role, tenant)
    before = state()
    requests = [
        ("post", "/api/v1/municipalities", {"key": "01099000", "kind": "gemeinde", "name": "Neu"}),
        ("patch", f"/api/v1/municipalities/{KIEL}", {"name": "Gekapert"}),
        ("patch", f"/api/v1/municipalities/{KRUMMWISCH}", {"population": 1}),
        ("post", f"/api/v1/municipalities/{KIEL}/membership", {"action": "leave", "on": "2024-01-01"}),
        ("post", f"/api/v1/municipalities/{FLENSBURG}/membership", {"action": "join", "on": "2024-01-01"}),
    ]
    for method, url, body in requests:
        assert_problem(getattr(client, method)(url, json=body, headers=headers), 403)
    assert state() == before


def test_session_write_needs_csrf_token(client, tenants, as_user):
    as_user("staff")
    before = state()
    assert_problem(client.patch(f"/api/v1/municipalities/{KIEL}", json={"name": "Kiel"}), 400)
    assert state() == before


def test_bearer_write_needs_no_csrf_token(client, tenants, make_user):
    token = auth_services.issue_token(db.session, "test", make_user("staff"))
    db.session.commit()
    response = client.patch(
        f"/api/v1/municipalities/{RENDSBURG}",
        json={"postcode": "24769"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.get_json()["postcode"] == "24769"


# --- writes: create --------------------------------------------------------------------------------


NEW = {
    "key": "01058999",
    "kind": "gemeinde",
    "name": "Neudorf",
    "ars": "010585803999",
    "kreis": RD_ECK,
    "amt": ACHTERWEHR,
    "population": 120,
    "population_date": "2023-12-31",
    "area_km2": "4.5",
    "postcode": "24259",
}


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_and_admin_create_a_municipality(client, tenants, as_user, role):
    headers = as_user(role)
    response = client.post("/api/v1/municipalities", json=NEW, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"].endswith("/api/v1/municipalities/01058999")
    body = response.get_json()
    assert body == {
        **NEW,
        "area_km2": "4.50",
        "total_population": 120,
        "member": False,
        "memberships": [],
        "contacts": [],
    }
    assert detail(client, "01058999")["name"] == "Neudorf"
    assert "01058999" in all_keys(client, f"?amt={ACHTERWEHR}")
    assert detail(client, ACHTERWEHR)["total_population"] == 11487 + 120
    [event_] = audit_events("create", "01058999")
    assert event_.actor.startswith(role)
    assert event_.after["name"] == "Neudorf"
    assert event_.after["amt"] == ACHTERWEHR


def test_create_with_only_the_required_fields(client, tenants, as_user):
    headers = as_user("staff")
    response = client.post(
        "/api/v1/municipalities", json={"key": "01099", "kind": "kreis", "name": "Neukreis"}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["kreis"], body["amt"], body["population"], body["total_population"]) == (
        None,
        None,
        None,
        None,
    )
    assert body["area_km2"] is None


def test_area_accepts_a_number_too(client, tenants, as_user):
    headers = as_user("staff")
    response = client.post("/api/v1/municipalities", json={**NEW, "area_km2": 12.25}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["area_km2"] == "12.25"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"id": 5}, "id"),
        ({"member": True}, "member"),
        ({"key": "abc"}, "key"),
        ({"key": "0105899"}, "key"),  # 7 digits
        ({"key": "01058999\n"}, "key"),
        ({"key": "".join(chr(0xFF10 + int(d)) for d in "01058999")}, "key"),  # full-width digits
        ({"key": 1058999}, "key"),
        ({"key": "010589999"}, "key"),  # 9 digits: an Amt key, not a Gemeinde's
        ({"key": "02058999"}, "key"),  # not Schleswig-Holstein
        ({"key": KIEL}, "key"),  # exists
        ({"kind": "dorf"}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": None}, "name"),
        ({"name": "Neu\x00dorf"}, "name"),
        ({"kreis": "01099"}, "kreis"),  # well-formed, no such Kreis
        ({"kreis": KIEL}, "kreis"),  # malformed for a Kreis
        ({"kreis": "1058"}, "kreis"),
        ({"amt": "010999999"}, "amt"),  # well-formed, no such Amt
        ({"amt": RD_ECK}, "amt"),
        ({"ars": "01058580399"}, "ars"),
        ({"ars": "020585803999"}, "ars"),  # does not begin with the Kreis key
        ({"ars": "010585803171"}, "ars"),  # Westensee's: an ARS is unique
        ({"population": -1}, "population"),
        ({"population": "120"}, "population"),
        ({"population": 1.5}, "population"),
        ({"population": True}, "population"),
        ({"population": 2**31}, "population"),
        ({"population_date": "2023-02-30"}, "population_date"),
        ({"population_date": "31.12.2023"}, "population_date"),
        ({"area_km2": "4.555"}, "area_km2"),
        ({"area_km2": "-1"}, "area_km2"),
        ({"area_km2": "NaN"}, "area_km2"),
        ({"area_km2": "Infinity"}, "area_km2"),
        ({"area_km2": "1e9"}, "area_km2"),
        ({"area_km2": "1e-9"}, "area_km2"),
        ({"area_km2": "vier"}, "area_km2"),
        ({"postcode": "2425"}, "postcode"),
        ({"postcode": "24 59"}, "postcode"),
    ],
)
def test_create_refuses_bad_input_naming_the_field(client, tenants, as_user, change, field):
    headers = as_user("staff")
    before = state()
    errors = field_errors(client.post("/api/v1/municipalities", json={**NEW, **change}, headers=headers))
    assert set(errors) == {field}, errors
    assert state() == before
    assert services.get_by_key(db.session, "01058999") is None


@pytest.mark.parametrize("missing", ["key", "kind", "name"])
def test_create_requires_key_kind_and_name(client, tenants, as_user, missing):
    headers = as_user("admin")
    before = state()
    body = {k: v for k, v in NEW.items() if k != missing}
    assert set(field_errors(client.post("/api/v1/municipalities", json=body, headers=headers))) == {missing}
    assert state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "01099", "kind": "kreis", "name": "K", "kreis": RD_ECK}, "kreis"),  # a Kreis in a Kreis
        ({"key": "01058999", "kind": "kreisfreie_stadt", "name": "S", "kreis": RD_ECK}, "kreis"),
        ({"key": "010589999", "kind": "amt", "name": "A", "amt": ACHTERWEHR}, "amt"),
        ({"key": "010589999", "kind": "amt", "name": "A", "population": 5}, "population"),
    ],
)
def test_create_refuses_a_broken_hierarchy(client, tenants, as_user, body, field):
    headers = as_user("staff")
    before = state()
    assert set(field_errors(client.post("/api/v1/municipalities", json=body, headers=headers))) == {field}
    assert state() == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("not json", "application/json"), ("[1, 2]", "application/json"), ('{"key": 1}', "text/plain")],
)
def test_create_refuses_a_body_that_is_no_json_object(client, tenants, as_user, data, content_type):
    headers = as_user("staff")
    before = state()
    response = client.post("/api/v1/municipalities", data=data, content_type=content_type, headers=headers)
    assert_problem(response, 400)
    assert state() == before


# --- writes: update --------------------------------------------------------------------------------


def test_update_changes_master_data_and_audits_the_difference(client, tenants, as_user):
    headers = as_user("staff")
    response = client.patch(
        f"/api/v1/municipalities/{RENDSBURG}",
        json={"name": "Rendsburg, Stadt", "population": 29000, "area_km2": "23.80"},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["population"], body["total_population"], body["area_km2"]) == (29000, 29000, "23.80")
    assert body["contacts"] == [{**body["contacts"][0], "email": canary(RENDSBURG)}]
    [event_] = audit_events("update", RENDSBURG)
    assert event_.before == {"population": 28896, "area_km2": "23.75"}  # unchanged name: not recorded
    assert event_.after == {"population": 29000, "area_km2": "23.80"}
    assert detail(client, RD_ECK)["total_population"] == 274098 + 104


def test_update_moves_a_gemeinde_into_an_amt_and_out_again(client, tenants, as_user):
    headers = as_user("admin")
    url = f"/api/v1/municipalities/{RENDSBURG}"
    assert client.patch(url, json={"amt": ACHTERWEHR}, headers=headers).get_json()["amt"] == ACHTERWEHR
    assert RENDSBURG in all_keys(client, f"?amt={ACHTERWEHR}")
    assert client.patch(url, json={"amt": None}, headers=headers).get_json()["amt"] is None
    assert RENDSBURG not in all_keys(client, f"?amt={ACHTERWEHR}")
    assert [e.after for e in audit_events("update", RENDSBURG)] == [{"amt": ACHTERWEHR}, {"amt": None}]


def test_update_without_changes_audits_nothing(client, tenants, as_user):
    headers = as_user("staff")
    before = state()
    for body in ({}, {"name": "Rendsburg, Stadt", "postcode": "24768"}):
        response = client.patch(f"/api/v1/municipalities/{RENDSBURG}", json=body, headers=headers)
        assert response.status_code == 200
    assert state() == before
    assert audit_events("update", RENDSBURG) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key": "01058136"}, "key"),  # the key is the identity
        ({"member": False}, "member"),
        ({"contacts": []}, "contacts"),
        ({"kreis": "01099"}, "kreis"),  # no such Kreis
        ({"kreis": "0105"}, "kreis"),
        ({"amt": "010999999"}, "amt"),
        ({"amt": "01058580"}, "amt"),
        ({"kind": "amt"}, "kind"),  # an 8-digit key is no Amt's
        ({"kind": "kreisfreie_stadt"}, "kreis"),  # it has a Kreis
        ({"kind": "kreis"}, "kind"),
        ({"name": " "}, "name"),
        ({"population": -5}, "population"),
        ({"postcode": "123456"}, "postcode"),
        ({"ars": "010580135"}, "ars"),
        ({"ars": "010585803171"}, "ars"),  # Westensee's: an ARS is unique
    ],
)
def test_update_refuses_bad_input_and_writes_nothing(client, tenants, as_user, change, field):
    headers = as_user("staff")
    before = state()
    # A valid change in the same body must not be written either.
    body = {"name": "Umbenannt", **change}
    errors = field_errors(client.patch(f"/api/v1/municipalities/{RENDSBURG}", json=body, headers=headers))
    assert set(errors) == {field}, errors
    assert state() == before
    assert detail(client, RENDSBURG)["name"] == "Rendsburg, Stadt"


def test_update_of_a_kreis_population_is_refused(client, tenants, as_user):
    headers = as_user("staff")
    before = state()
    errors = field_errors(
        client.patch(f"/api/v1/municipalities/{RD_ECK}", json={"population": 5}, headers=headers)
    )
    assert set(errors) == {"population"}
    assert state() == before


# --- writes: membership ------------------------------------------------------------------------------


def membership(client, key: str, headers: dict, **body):
    return client.post(f"/api/v1/municipalities/{key}/membership", json=body, headers=headers)


def test_join_leave_and_rejoin_through_the_api(client, tenants, as_user):
    headers = as_user("staff")
    response = membership(client, FLENSBURG, headers, action="join", on="2020-01-01", note="Beschluss 1/2019")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["member"] is True
    assert body["memberships"] == [{"joined_on": "2020-01-01", "left_on": None, "note": "Beschluss 1/2019"}]
    assert contact_emails(body) == {canary(FLENSBURG)}

    left = membership(client, FLENSBURG, headers, action="leave", on="2022-01-01").get_json()
    assert left["member"] is False
    assert left["memberships"][0]["left_on"] == "2022-01-01"
    assert left["memberships"][0]["note"] == "Beschluss 1/2019"  # no note: the old one stays

    rejoined = membership(client, FLENSBURG, headers, action="join", on="2024-01-01").get_json()
    assert [(m["joined_on"], m["left_on"]) for m in rejoined["memberships"]] == [
        ("2020-01-01", "2022-01-01"),
        ("2024-01-01", None),
    ]
    assert rejoined["member"] is True
    assert FLENSBURG in all_keys(client, "?member=true&kind=kreisfreie_stadt")
    assert [e.after for e in audit_events("join", FLENSBURG)] == [
        {"joined_on": "2020-01-01", "note": "Beschluss 1/2019"},
        {"joined_on": "2024-01-01", "note": ""},
    ]
    [leave_event] = audit_events("leave", FLENSBURG)
    assert leave_event.after == {"left_on": "2022-01-01"}
    assert leave_event.actor.startswith("staff")


@pytest.mark.parametrize(
    ("key", "body", "field"),
    [
        (FLENSBURG, {"action": "pause", "on": "2024-01-01"}, "action"),
        (FLENSBURG, {"on": "2024-01-01"}, "action"),
        (FLENSBURG, {"action": "join"}, "on"),
        (FLENSBURG, {"action": "join", "on": "01.01.2024"}, "on"),
        (FLENSBURG, {"action": "join", "on": "2024-02-30"}, "on"),
        (FLENSBURG, {"action": "join", "on": None}, "on"),
        (FLENSBURG, {"action": "join", "on": "2024-01-01", "note": "x" * 501}, "note"),
        (FLENSBURG, {"action": "join", "on": "2024-01-01", "until": "2025-01-01"}, "until"),
        (FLENSBURG, {"action": "leave", "on": "2024-01-01"}, "on"),  # not a member
        (KIEL, {"action": "join", "on": "2024-01-01"}, "on"),  # a member already
        (KIEL, {"action": "leave", "on": "2018-12-31"}, "on"),  # before joining
    ],
)
def test_membership_change_refuses_bad_input(client, tenants, as_user, key, body, field):
    headers = as_user("admin")
    before = state()
    errors = field_errors(membership(client, key, headers, **body))
    assert set(errors) == {field}, errors
    assert state() == before


def test_rejoin_must_not_overlap_the_history(client, tenants, as_user):
    headers = as_user("staff")
    assert membership(client, KIEL, headers, action="leave", on="2022-01-01").status_code == 200
    before = state()
    errors = field_errors(membership(client, KIEL, headers, action="join", on="2021-06-01"))
    assert set(errors) == {"on"}
    assert state() == before


# --- OpenAPI -----------------------------------------------------------------------------------------


def test_the_openapi_document_describes_the_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert set(paths["/api/v1/municipalities"]) == {"get", "post"}
    assert set(paths["/api/v1/municipalities/{key}"]) == {"get", "patch"}
    assert set(paths["/api/v1/municipalities/{key}/membership"]) == {"post"}
    listing_op = paths["/api/v1/municipalities"]["get"]
    assert {"kreis", "amt", "kind", "member", "q", "page", "per_page"} <= {
        p["name"] for p in listing_op["parameters"]
    }
    assert "municipality" in listing_op["description"]  # every role reads
    create = paths["/api/v1/municipalities"]["post"]
    assert create["description"] == "Roles: admin, staff"
    assert "201" in create["responses"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["Municipality"]["properties"]) == LIST_FIELDS
    assert {"memberships", "contacts"} <= set(schemas["MunicipalityDetail"]["properties"])
    body = schemas["MunicipalityCreate"]
    assert set(body["required"]) == {"key", "kind", "name"}
    assert body["additionalProperties"] is False
    assert body["properties"]["kreis"]["pattern"] == "^([0-9]{5})$"
    assert body["properties"]["key"]["pattern"] == "^([0-9]{5}|[0-9]{8}|[0-9]{9})$"
    area = body["properties"]["area_km2"]
    assert (area["minimum"], area["maximum"]) == (0, 9999999.99)  # JSON numbers, not strings
    assert schemas["Municipality"]["properties"]["area_km2"]["type"] == "string"  # dumped as "118.65"
    assert schemas["Municipality"]["properties"]["kreis"]["type"] == "string"
    assert set(schemas["MembershipChange"]["properties"]["action"]["enum"]) == {"join", "leave"}
    assert "key" not in schemas["MunicipalityUpdate"]["properties"]


# --- SQL statements: as many for 10,000 municipalities as for 100 --------------------------------------

SYNTHETIC_ID = 1_000_000  # far above anything the sequence hands out in a test


def synthetic_rows(total: int) -> tuple[list[dict], list[dict]]:
    """``total`` municipalities (Kreise of 10 Ämter of 20 Gemeinden each, in key order) and a
    membership for every other one; ids are explicit so parents can be named without a query."""
    rows, memberships = [], []
    kreis_no = 0
    while len(rows) < total:
        kreis_key = f"01{100 + kreis_no:03d}"
        kreis_id = SYNTHETIC_ID + len(rows)
        rows.append({"id": kreis_id, "key": kreis_key, "name": f"Kreis {kreis_no}", "kind": "kreis"})
        for amt_no in range(10):
            if len(rows) >= total:
                break
            amt_id = SYNTHETIC_ID + len(rows)
            rows.append(
                {
                    "id": amt_id,
                    "key": f"{kreis_key}{5000 + amt_no}",
                    "name": f"Amt {kreis_no}-{amt_no}",
                    "kind": "amt",
                    "kreis_id": kreis_id,
                }
            )
            for gemeinde_no in range(20):
                if len(rows) >= total:
                    break
                number = amt_no * 20 + gemeinde_no
                rows.append(
                    {
                        "id": SYNTHETIC_ID + len(rows),
                        "key": f"{kreis_key}{number:03d}",
                        "ars": f"{kreis_key}{5000 + amt_no}{number:03d}",
                        "name": f"Gemeinde {kreis_no}-{number}",
                        "kind": "gemeinde",
                        "kreis_id": kreis_id,
                        "amt_id": amt_id,
                        "population": 100 + number,
                        "population_date": date(2019, 12, 31),
                        "postcode": "24000",
                    }
                )
        kreis_no += 1
    columns = ("ars", "kreis_id", "amt_id", "population", "population_date", "postcode")
    rows = [{**dict.fromkeys(columns), **row} for row in rows]
    for index, row in enumerate(rows):
        if index % 2:
            memberships.append({"municipality_id": row["id"], "joined_on": FOUNDED, "note": ""})
    return rows, memberships


def insert_synthetic(rows: list[dict], memberships: list[dict]) -> None:
    db.session.execute(insert(Municipality.__table__), rows)
    if memberships:
        db.session.execute(insert(Membership.__table__), memberships)
    db.session.commit()


def list_statements(client, query: str) -> tuple[list[str], dict]:
    db.session.expunge_all()  # a cold session, as a new request in production has
    with recorded_statements() as statements:
        response = client.get(f"/api/v1/municipalities{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return statements, response.get_json()


@pytest.mark.parametrize("role", ["staff", "amt"])
def test_list_statement_count_does_not_grow_with_municipalities(client, as_user, role):
    rows, memberships = synthetic_rows(10_000)
    insert_synthetic(rows[:100], [m for m in memberships if m["municipality_id"] < SYNTHETIC_ID + 100])
    as_user(*(("municipality", rows[1]["key"]) if role == "amt" else ("staff",)))
    query = "?per_page=100"

    small, body = list_statements(client, query)
    assert body["meta"]["total"] == 100
    items = body["items"]
    assert len(items) == 100
    # The page really holds what a per-row query would load: parents, sums and membership flags.
    assert {i["kind"] for i in items} == {"kreis", "amt", "gemeinde"}
    assert all(i["kreis"] and i["amt"] for i in items if i["kind"] == "gemeinde")
    assert {i["member"] for i in items} == {True, False}
    assert all(i["total_population"] for i in items)

    insert_synthetic(rows[100:], [m for m in memberships if m["municipality_id"] >= SYNTHETIC_ID + 100])
    large, body = list_statements(client, query)
    assert body["meta"]["total"] == 10_000
    assert len(body["items"]) == 100
    assert all(i["kreis"] and i["amt"] for i in body["items"] if i["kind"] == "gemeinde")
    filtered, body = list_statements(client, f"{query}&member=true&kind=gemeinde&q=Gemeinde")
    assert body["meta"]["total"] == sum(1 for n, r in enumerate(rows) if r["kind"] == "gemeinde" and n % 2)

    assert small  # the listener does see the endpoint's statements
    assert len(large) == len(small) == len(filtered), (small, large)
    print(f"\nGET /api/v1/municipalities as {role}: {len(small)} statements for 100, {len(large)} for 10,000")


def test_the_counter_sees_a_query_per_row_when_there_is_one(app):
    """Proves the measurement can fail: lazily loading each Gemeinde's Amt shows up in the count."""
    rows, memberships = synthetic_rows(30)
    insert_synthetic(rows, memberships)
    db.session.expunge_all()
    with recorded_statements() as statements:
        municipalities = (
            db.session.execute(
                select(Municipality)
                .where(Municipality.kind == "gemeinde")
                .options(lazyload(Municipality.amt))
            )
            .scalars()
            .all()
        )
        dumped = MunicipalitySchema(many=True).dump(municipalities)
    assert {d["amt"] for d in dumped} == {rows[1]["key"], rows[22]["key"]}
    assert len(statements) == 1 + 2  # one per distinct Amt (the identity map answers the rest)
