"""The member portal for each kind of municipality user (a kreisfreie Stadt, a Gemeinde, an Amt, a
Kreis): its own master data, membership history and contacts; an Amt also its Gemeinden, each on
its own page; never another tenant's contact (a canary per tenant); 404 for every key outside the
user's scope (a Kreis user sees the Kreis only); German, accessible, no assets from elsewhere."""

from __future__ import annotations

import html
import re
import secrets
from datetime import date
from html.parser import HTMLParser
from importlib import resources

import pytest

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import MunicipalityContact
from tests.auth.helpers import translated

KIEL, LUEBECK, RD_ECK, ACHTERWEHR, KRUMMWISCH, FELDE, ALTENHOLZ = (
    "01002000",
    "01003000",
    "01058",
    "010585803",
    "01058093",
    "01058050",
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
WITH_CANARY = (KIEL, LUEBECK, RD_ECK, ACHTERWEHR, KRUMMWISCH, FELDE, ALTENHOLZ)
# Whose contacts each user's home page shows: its tenant; an Amt also its Gemeinden.
HOME_SEES = {
    KIEL: {KIEL},
    KRUMMWISCH: {KRUMMWISCH},
    ACHTERWEHR: {ACHTERWEHR, KRUMMWISCH, FELDE},
    RD_ECK: {RD_ECK},
}


@pytest.fixture
def world(app):
    """The shipped tenants, a membership history, and a contact with a unique canary for several
    tenants (returned by key)."""
    set_scope(db.session, ALL)
    data = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()
    import_municipalities(db.session, "test", data, source="test")
    krummwisch = services.get_by_key(db.session, KRUMMWISCH)
    services.join(db.session, "test", krummwisch, date(2019, 1, 1))
    services.leave(db.session, "test", krummwisch, date(2021, 1, 1))
    services.join(db.session, "test", krummwisch, date(2023, 7, 1))
    for key in (KIEL, ACHTERWEHR):
        services.join(db.session, "test", services.get_by_key(db.session, key), date(2019, 1, 1))
    canaries = {}
    for key in WITH_CANARY:
        canaries[key] = f"canary-{key}-{secrets.token_hex(4)}"
        contact = MunicipalityContact(
            municipality=services.get_by_key(db.session, key),
            role="IT",
            name=canaries[key],
            email=f"{canaries[key]}@test.example",
        )
        services.save_contact(db.session, "test", contact, None)
    db.session.commit()
    return canaries


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def section(body: str, heading_id: str) -> str:
    return body.split(f'id="{heading_id}"')[1].split("</section>")[0]


def assert_contacts(body: str, canaries: dict, expected: set[str]) -> None:
    shown = {key for key, canary in canaries.items() if canary in body}
    assert shown == expected


@pytest.mark.parametrize("key", list(HOME_SEES))
def test_home_shows_own_contacts_and_no_one_elses(client, login_as, world, key):
    login_as("municipality", key)
    response = client.get("/portal/")
    assert response.status_code == 200
    body = text_of(response)
    assert_contacts(body, world, HOME_SEES[key])
    assert_contacts(section(body, "contacts-heading"), world, HOME_SEES[key])


def _master(body: str) -> dict[str, str]:
    block = section(body, "master-data-heading")
    pairs = re.findall(r"<dt[^>]*>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", block, re.S)
    return {dt.strip(): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dd)).strip() for dt, dd in pairs}


def test_kiel_sees_its_master_data(app, client, login_as, world):
    login_as("municipality", KIEL)
    body = text_of(client.get("/portal/"))
    assert '<html lang="de"' in body
    master = _master(body)
    t = lambda msgid, **kw: translated(app, msgid, **kw)  # noqa: E731
    assert master[t("Official key")] == KIEL
    assert master[t("Kind")] == t("kreisfreie Stadt")
    assert master[t("Kreis")] == "—" and master[t("Amt")] == "—"
    assert master[t("Population")] == "246.794 (" + t("as of %(day)s", day="31.12.2019") + ")"
    assert master[t("Area")] == "118,65 km²"
    assert master[t("Postcode")] == "24103"
    assert re.search(r"<h1[^>]*>Kiel, Landeshauptstadt</h1>", body)


def test_gemeinde_sees_its_place_and_membership_history(app, client, login_as, world):
    login_as("municipality", KRUMMWISCH)
    body = text_of(client.get("/portal/"))
    master = _master(body)
    assert master[translated(app, "Kreis")] == "Rendsburg-Eckernförde (01058)"
    assert master[translated(app, "Amt")] == "Achterwehr (010585803)"
    assert master[translated(app, "Population")].startswith("681 ")
    assert master[translated(app, "ARS")] == "010585803093"
    membership = section(body, "membership-heading")
    assert translated(app, "Member of the IT-Verbund Schleswig-Holstein.") in membership
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", membership)
    assert rows == [("01.01.2019", "01.01.2021"), ("01.07.2023", "—")]
    assert "itvsh-amt-members" not in body


def test_a_non_member_is_told_so(app, client, login_as, world):
    login_as("municipality", RD_ECK)
    body = text_of(client.get("/portal/"))
    membership = section(body, "membership-heading")
    assert translated(app, "Not a member of the IT-Verbund Schleswig-Holstein at present.") in membership
    assert "<table" not in membership
    assert _master(body)[translated(app, "Population")].startswith("274.098 ")  # its Gemeinden's sum


def test_amt_sees_its_gemeinden_and_opens_their_pages(app, client, login_as, world):
    login_as("municipality", ACHTERWEHR)
    body = text_of(client.get("/portal/"))
    assert _master(body)[translated(app, "Population")].startswith("11.487 ")
    members = section(body, "members-heading")
    links = set(re.findall(r'href="/portal/municipalities/(\d+)"', members))
    assert links == ACHTERWEHR_GEMEINDEN
    for key in sorted(links):
        page = client.get(f"/portal/municipalities/{key}")
        assert page.status_code == 200, key
        # a Gemeinde's page shows that Gemeinde's contacts only
        assert_contacts(text_of(page), world, {key} & set(WITH_CANARY))
    page = text_of(client.get(f"/portal/municipalities/{KRUMMWISCH}"))
    assert re.search(r"<h1[^>]*>Krummwisch</h1>", page)
    assert 'href="/portal/"' in page  # back to the Amt's home
    own = client.get(f"/portal/municipalities/{ACHTERWEHR}")
    assert own.status_code == 200
    assert_contacts(text_of(own), world, HOME_SEES[ACHTERWEHR])


OUTSIDE = {
    KIEL: [LUEBECK, KRUMMWISCH, RD_ECK, ACHTERWEHR],
    KRUMMWISCH: [KIEL, ACHTERWEHR, RD_ECK, FELDE],
    ACHTERWEHR: [KIEL, RD_ECK, ALTENHOLZ, "01058002"],
    RD_ECK: [KRUMMWISCH, ACHTERWEHR, ALTENHOLZ, KIEL],
}


@pytest.mark.parametrize("key", list(OUTSIDE))
def test_keys_outside_the_scope_answer_404(client, login_as, world, key):
    login_as("municipality", key)
    assert client.get(f"/portal/municipalities/{key}").status_code == 200
    for other in [*OUTSIDE[key], "01058999", "abc", "0" * 9 + "1", "01058%00"]:
        response = client.get(f"/portal/municipalities/{other}")
        assert response.status_code == 404, (key, other)
        assert_contacts(text_of(response), world, set())


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_the_portal_is_for_municipality_users_only(client, login_as, world, role):
    login_as(role)
    assert client.get("/portal/").status_code == 403
    assert client.get(f"/portal/municipalities/{KIEL}").status_code == 403


def test_anonymous_visitors_are_sent_to_login(client, world):
    for url in ("/portal/", f"/portal/municipalities/{KIEL}"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_the_projects_and_ozg_sections_link_to_their_pages(app, client, login_as, world):
    login_as("municipality", KIEL)
    body = text_of(client.get("/portal/"))
    nothing = translated(app, "Nothing yet.")
    for heading, msgid, url in (
        ("projects-heading", "Projects", "/portal/projects/"),
        ("ozg-heading", "OZG status", "/portal/ozg/"),
    ):
        block = section(body, heading)
        assert translated(app, msgid) in block and nothing not in block
        assert f'href="{url}"' in block


class _Structure(HTMLParser):
    """Headings, labelled sections, table header cells and external resources of a page."""

    def __init__(self):
        super().__init__()
        self.h1 = 0
        self.ids: dict[str, str] = {}
        self.labelled_by: list[str] = []
        self.th_without_scope = 0
        self.tables = 0
        self.external: list[str] = []
        self.unlabelled_inputs: list[str] = []
        self.labels: set[str] = set()
        self.inputs: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h1":
            self.h1 += 1
        if "id" in attrs:
            self.ids[attrs["id"]] = tag
        if tag == "section":
            self.labelled_by.append(attrs.get("aria-labelledby", ""))
        if tag == "table":
            self.tables += 1
        if tag == "th" and attrs.get("scope") not in ("col", "row"):
            self.th_without_scope += 1
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if tag in ("script", "link", "img") and value and not value.startswith("/"):
                self.external.append(value)
        if tag == "label" and "for" in attrs:
            self.labels.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.inputs.append((tag, attrs))


@pytest.mark.parametrize("key", [ACHTERWEHR, KRUMMWISCH])
def test_the_portal_is_accessible_and_self_hosted(client, login_as, world, key):
    login_as("municipality", key)
    page = client.get("/portal/")
    structure = _Structure()
    structure.feed(page.get_data(as_text=True))
    assert structure.h1 == 1
    assert len(structure.labelled_by) >= 7  # master data, membership, contacts, the four later ones
    for heading in structure.labelled_by:
        assert structure.ids.get(heading) == "h2", heading
    assert structure.tables >= 1 and structure.th_without_scope == 0
    assert structure.external == []
    for tag, attrs in structure.inputs:  # e.g. the language switch: labelled, or a named button
        assert attrs.get("id") in structure.labels or attrs.get("aria-label"), (tag, attrs)
    csp = page.headers["Content-Security-Policy"]
    assert "cdn" not in csp.lower()
