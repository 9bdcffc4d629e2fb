"""The public OZG monitoring and its open data: no login, German, no personal data; the figures equal
a brute-force count over the status rows (and a rebuild of the tallies); at most four SQL statements
per page, as many with a handful of status rows as with thousands (the first visit after a change
reads the aggregates, later ones the kept overview); an audited change shows at once; the CSV, the
JSON and the page agree; ETag / Last-Modified / 304; search by name and AGS; the trend from the
snapshots; support per Kreis and municipality equal to the ledger's sums."""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter, defaultdict
from datetime import date
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, insert, select

from itvsh.core import audit
from itvsh.core.money import format_money
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Booking, FiscalYear
from itvsh.projects import monitoring, ozg
from itvsh.projects import services as project_services
from itvsh.projects.models import OzgService, OzgSnapshot, OzgStatus, OzgTally
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.projects.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    LUEBECK,
    category,
)

COLUMNS = [
    "ags",
    "municipality",
    "kreis",
    "ozg_id",
    "service",
    "themenfeld",
    "maturity",
    "maturity_model",
    "online_since",
]
SECRET_PURPOSE = "Geheimzweck Serverraum 4711"
MAX_STATEMENTS = 4


# --- helpers --------------------------------------------------------------------------------------


class _Rows(HTMLParser):
    """The attributes of every <tr> and the text of elements with an id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.ids: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self.rows.append(attributes)
        if "id" in attributes:
            self._open.append(attributes["id"])
            self.ids[attributes["id"]] = ""

    def handle_endtag(self, tag):
        if self._open and tag in ("data", "span"):
            self._open.pop()

    def handle_data(self, data):
        for name in self._open:
            self.ids[name] += data


def parse(response) -> _Rows:
    parser = _Rows()
    parser.feed(response.get_data(as_text=True))
    return parser


def rows_with(parsed: _Rows, attribute: str) -> dict[str, dict]:
    return {row[attribute]: row for row in parsed.rows if attribute in row}


def german_percent(compliant: int, possible: int) -> str:
    return f"{compliant / possible * 100:.1f}".replace(".", ",") + "\u00a0%"


def get(client, url: str, **kwargs):
    response = client.get(url, buffered=True, **kwargs)
    assert response.status_code == 200, (url, response.status_code)
    return response


def csv_rows(client) -> list[dict]:
    text = get(client, "/monitoring/ozg.csv").get_data(as_text=True)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == COLUMNS
    return list(reader)


def json_document(client) -> dict:
    response = get(client, "/monitoring/ozg.json")
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def kreis_keys() -> dict[int, str]:
    """Municipality id -> the key of the Kreis it counts in (a kreisfreie Stadt is its own)."""
    kreis = {i: k for i, k in db.session.execute(select(Municipality.id, Municipality.key)).all()}
    rows = db.session.execute(
        select(Municipality.id, Municipality.kind, Municipality.kreis_id).where(
            Municipality.kind.in_([k.value for k in LOCAL_KINDS])
        )
    ).all()
    return {
        mid: kreis[mid] if kind == MunicipalityKind.KREISFREIE_STADT else kreis[kreis_id]
        for mid, kind, kreis_id in rows
    }


def brute_force() -> dict:
    """The figures counted directly over the status rows: compliant and possible for the Land, per
    Kreis key and per Themenfeld."""
    kreis_of = kreis_keys()
    services = db.session.execute(select(OzgService.topic).where(OzgService.responsibility == "municipal"))
    per_topic = Counter(topic for (topic,) in services)
    places = Counter(kreis_of.values())
    statuses = db.session.execute(
        select(OzgStatus.municipality_id, OzgStatus.maturity, OzgService.topic)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .where(OzgService.responsibility == "municipal")
    ).all()
    compliant = {"land": 0, "kreis": Counter(), "topic": Counter(), "levels": Counter()}
    for municipality_id, maturity, topic in statuses:
        if municipality_id not in kreis_of:
            continue
        compliant["levels"][maturity] += 1
        if maturity >= 3:
            compliant["land"] += 1
            compliant["kreis"][kreis_of[municipality_id]] += 1
            compliant["topic"][topic] += 1
    services_total = sum(per_topic.values())
    return {
        "land": (compliant["land"], len(kreis_of) * services_total),
        "kreis": {key: (compliant["kreis"][key], n * services_total) for key, n in places.items()},
        "topic": {topic: (compliant["topic"][topic], len(kreis_of) * n) for topic, n in per_topic.items()},
        "levels": compliant["levels"],
    }


def page_figures(parsed: _Rows) -> dict:
    def pair(row):
        return int(row["data-compliant"]), int(row["data-possible"])

    return {
        "land": (
            int(parsed.ids["land-compliant"].replace(".", "")),
            int(parsed.ids["land-possible"].replace(".", "")),
        ),
        "kreis": {key: pair(row) for key, row in rows_with(parsed, "data-kreis").items()},
        "topic": {topic: pair(row) for topic, row in rows_with(parsed, "data-topic").items()},
    }


def statuses(members, catalogue, actor=ACTOR) -> None:
    """A handful of statuses through the service, including a Land service (not counted) and a
    status at maturity 0 that is kept because its URL is known."""
    set_scope(db.session, ALL)
    ozg.recompute_tallies(db.session)
    for key, ozg_id, maturity in (
        (KIEL, "10000", 3),
        (KIEL, "10169", 4),
        (KIEL, "10170", 2),
        (KRUMMWISCH, "10169", 4),
        (KRUMMWISCH, "10003", 1),
        (LUEBECK, "10000", 3),
        (LUEBECK, "10999", 4),  # a service of the Land: never counted
    ):
        ozg.set_status(db.session, actor, members[key], catalogue[ozg_id], maturity=maturity)
    ozg.set_status(
        db.session,
        actor,
        members[KRUMMWISCH],
        catalogue["10170"],
        maturity=0,
        url="https://krummwisch.example/antrag",
        online_since=date(2021, 5, 1),
    )
    db.session.commit()
    set_scope(db.session, ALL)


def many_statuses() -> int:
    """Every Gemeinde and Stadt gets a status for every service (Core inserts), then the tallies
    are rebuilt; returns the number of rows added."""
    set_scope(db.session, ALL)
    locals_ = db.session.execute(
        select(Municipality.id).where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
    ).scalars()
    services = db.session.execute(select(OzgService.id).order_by(OzgService.id)).scalars().all()
    have = set(db.session.execute(select(OzgStatus.municipality_id, OzgStatus.service_id)).all())
    rows = [
        {"municipality_id": m, "service_id": s, "maturity": (m * 7 + s * 3) % 5, "maturity_model": "1.x"}
        for m in locals_
        for s in services
        if (m, s) not in have
    ]
    db.session.execute(insert(OzgStatus), rows)
    ozg.recompute_tallies(db.session)
    audit.record(db.session, ACTOR, "import", "ozg_status", after={"rows": len(rows)})  # as a load does
    db.session.commit()
    set_scope(db.session, ALL)
    return len(rows)


def statement_count(client, url: str, *, cold: bool = True) -> int:
    """The data statements of one request; ``cold``: with no overview kept yet (the first visit
    after a change)."""
    if cold:
        monitoring.kept_overviews(client.application).clear()
    db.session.expunge_all()
    with recorded_statements() as statements:
        response = client.get(url, buffered=True)  # a streamed body runs its queries while it is read
    assert response.status_code == 200, (url, response.status_code)
    return len(statements)


# --- the page ---------------------------------------------------------------------------------


def test_public_without_login_german_and_one_h1(client, members, catalogue):
    statuses(members, catalogue)
    for url in ("/monitoring/", "/monitoring/about", f"/monitoring/municipality/{KIEL}"):
        response = get(client, url)
        text = response.get_data(as_text=True)
        assert '<html lang="de"' in text
        assert text.count("<h1") == 1
        assert 'href="http' not in text.replace('href="https://www.govdata.de/dl-de/by-2-0"', "").replace(
            'href="https://krummwisch.example', ""
        )  # no CDN, no third-party asset
    for url in ("/monitoring/ozg.csv", "/monitoring/ozg.json"):
        get(client, url)


def test_figures_equal_a_brute_force_count_and_a_rebuild(client, members, catalogue):
    statuses(members, catalogue)
    expected = brute_force()
    parsed = parse(get(client, "/monitoring/"))
    figures = page_figures(parsed)
    assert figures["land"] == expected["land"]
    assert figures["topic"] == expected["topic"]
    assert figures["kreis"] == expected["kreis"]
    assert figures["kreis"][KIEL] == (2, 4)  # a kreisfreie Stadt is its own Kreis
    assert figures["kreis"][KREIS_RD_ECK][0] == 1
    assert parsed.ids["land-share"] == german_percent(*expected["land"])
    levels = {
        int(row["data-level"]): int(row["data-count"]) for row in rows_with(parsed, "data-level").values()
    }
    assert levels[3] + levels[4] == expected["land"][0]
    assert levels[1] == expected["levels"][1] and levels[2] == expected["levels"][2]
    assert sum(levels.values()) == expected["land"][1]

    ozg.recompute_tallies(db.session)
    db.session.commit()
    assert page_figures(parse(get(client, "/monitoring/"))) == figures


def test_at_most_four_statements_however_many_status_rows(client, members, catalogue, open_year):
    statuses(members, catalogue)
    ozg.take_snapshot(db.session, ACTOR, date(2024, 1, 1))
    db.session.commit()
    urls = (
        f"/monitoring/?q=Kr&year={open_year.year}",
        "/monitoring/?q=010",
        "/monitoring/",
        f"/monitoring/municipality/{KRUMMWISCH}",
    )
    few = {url: (statement_count(client, url), statement_count(client, url, cold=False)) for url in urls}
    assert max(cold for cold, _warm in few.values()) <= MAX_STATEMENTS, few
    # a later visit: the version (+ the search); a municipality's page reads its four every time
    assert [warm for _cold, warm in few.values()] == [2, 2, 1, 4], few

    added = many_statuses()
    assert added > 4000
    for month in range(2, 8):
        ozg.take_snapshot(db.session, ACTOR, date(2024, month, 1))
    db.session.commit()
    many = {url: (statement_count(client, url), statement_count(client, url, cold=False)) for url in urls}
    assert many == few
    # the figures still equal a count over all these rows
    assert page_figures(parse(get(client, "/monitoring/")))["land"] == brute_force()["land"]
    # the open data: a fingerprint, the rows (and the JSON's Land figures), whatever their number
    assert statement_count(client, "/monitoring/ozg.csv") == 2
    assert statement_count(client, "/monitoring/ozg.json") == 3


def test_percentages_are_german_and_english_on_request(client, members, catalogue):
    statuses(members, catalogue)
    parsed = parse(get(client, "/monitoring/"))
    compliant, possible = brute_force()["land"]
    assert parsed.ids["land-share"] == german_percent(compliant, possible)
    kiel_page = get(client, f"/monitoring/municipality/{KIEL}").get_data(as_text=True)
    assert "50,0\u00a0%" in kiel_page  # 2 of 4 services
    with client.session_transaction() as session:
        session["locale"] = "en"
    english = get(client, f"/monitoring/municipality/{KIEL}").get_data(as_text=True)
    assert '<html lang="en"' in english and "50.0%" in english


# --- search -----------------------------------------------------------------------------------


def test_search_by_name_and_by_ags(client, members, catalogue):
    statuses(members, catalogue)
    by_name = rows_with(parse(get(client, "/monitoring/?q=Krummwisch")), "data-ags")
    assert list(by_name) == [KRUMMWISCH]
    assert (by_name[KRUMMWISCH]["data-compliant"], by_name[KRUMMWISCH]["data-possible"]) == ("1", "4")
    assert list(rows_with(parse(get(client, f"/monitoring/?q={KRUMMWISCH}")), "data-ags")) == [KRUMMWISCH]
    prefix = rows_with(parse(get(client, "/monitoring/?q=0105809")), "data-ags")
    assert KRUMMWISCH in prefix and all(key.startswith("0105809") for key in prefix)
    assert KIEL in rows_with(parse(get(client, "/monitoring/?q=kiel")), "data-ags")  # any case
    page = get(client, "/monitoring/?q=Krummwisch").get_data(as_text=True)
    assert f'href="/monitoring/municipality/{KRUMMWISCH}"' in page
    assert "Rendsburg-Eckernförde" in page


def test_bad_search_and_year_input_answer_with_a_message(app, client, members, catalogue):
    statuses(members, catalogue)
    for query, msgid in (
        ("a", "Please enter at least two characters of a name or an AGS."),
        ("x" * 101, "Please search with at most 100 characters."),
    ):
        page = get(client, "/monitoring/", query_string={"q": query}).get_data(as_text=True)
        assert html.escape(translated(app, msgid), quote=False) in page
        assert "data-ags" not in page
    for query in ("%", "_%_", "\\", "'; DROP TABLE ozg_statuses; --", "\u0661\u0662"):
        page = get(client, "/monitoring/", query_string={"q": query}).get_data(as_text=True)
        assert "data-ags" not in page, query  # wildcards are taken literally
    page = get(client, "/monitoring/?year=abc").get_data(as_text=True)
    assert 'id="year-problem"' in page
    page = get(client, "/monitoring/?year=1999").get_data(as_text=True)
    assert html.escape(translated(app, "There are no figures for %(year)s.", year=1999)) in page
    assert get(client, "/monitoring/?year=99999999999999999999").status_code == 200


# --- one municipality -------------------------------------------------------------------------


def test_municipality_page_shows_its_share_and_known_statuses(app, client, members, catalogue):
    statuses(members, catalogue)
    parsed = parse(get(client, f"/monitoring/municipality/{KRUMMWISCH}"))
    known = {row["data-ozg-id"]: int(row["data-maturity"]) for row in parsed.rows if "data-ozg-id" in row}
    assert known == {"10169": 4, "10003": 1, "10170": 0}  # the Land's service is not listed
    assert parsed.ids["municipality-share"] == german_percent(1, 4)
    topics = rows_with(parsed, "data-topic")
    assert (
        topics["Mobilität & Reisen"]["data-compliant"],
        topics["Mobilität & Reisen"]["data-possible"],
    ) == (
        "1",
        "2",
    )
    for key in ("01099999", AMT_ACHTERWEHR, KREIS_RD_ECK, "abc", "0" * 200):
        response = client.get(f"/monitoring/municipality/{key}")
        assert response.status_code == 404, key
    response = client.get("/monitoring/municipality/01099999")
    expected = translated(app, "There is no Gemeinde or Stadt with the AGS %(key)s.", key="01099999")
    assert html.escape(expected) in response.get_data(as_text=True)


# --- open data --------------------------------------------------------------------------------


def test_csv_json_and_page_agree(client, members, catalogue):
    statuses(members, catalogue)
    rows = csv_rows(client)
    document = json_document(client)
    assert [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in document["rows"]] == rows
    assert [c["name"] for c in document["columns"]] == COLUMNS
    assert document["licence"]["id"] == "dl-de/by-2-0"
    assert "Destatis" in document["attribution"]["municipalities"]
    assert "OZG-Umsetzungskatalog" in document["attribution"]["catalogue"]
    assert len(rows) == 7  # every known status of a municipal service (the Land's is left out)
    assert [(r["ags"], r["ozg_id"]) for r in rows] == sorted((r["ags"], r["ozg_id"]) for r in rows)
    kept = next(r for r in rows if r["ags"] == KRUMMWISCH and r["ozg_id"] == "10170")
    assert (kept["maturity"], kept["online_since"], kept["kreis"]) == (
        "0",
        "2021-05-01",
        "Rendsburg-Eckernförde",
    )
    kiel = next(r for r in rows if r["ags"] == KIEL)
    assert kiel["kreis"] == kiel["municipality"]  # a kreisfreie Stadt is its own Kreis

    figures = page_figures(parse(get(client, "/monitoring/")))
    compliant = [r for r in rows if int(r["maturity"]) >= 3]
    assert len(compliant) == figures["land"][0] == document["land"]["compliant"]
    assert document["land"]["possible"] == figures["land"][1]
    per_topic = Counter(r["themenfeld"] for r in compliant)
    assert {t: c for t, (c, _p) in figures["topic"].items() if c} == dict(per_topic)
    name_of = dict(db.session.execute(select(Municipality.key, Municipality.name)).all())
    per_kreis = {name_of[key]: c for key, (c, _p) in figures["kreis"].items() if c}
    assert dict(Counter(r["kreis"] for r in compliant)) == per_kreis
    levels = Counter(int(r["maturity"]) for r in rows if int(r["maturity"]) > 0)
    assert document["land"]["levels"][1:] == [levels[level] for level in range(1, 5)]


def test_csv_cells_cannot_become_formulas(client, members, catalogue):
    set_scope(db.session, ALL)
    ozg.recompute_tallies(db.session)
    evil = OzgService(ozg_id="10500", name='=HYPERLINK("http://evil.example","x")', topic="+Topic")
    db.session.add(evil)
    db.session.flush()
    ozg.set_status(db.session, ACTOR, members[KIEL], evil, maturity=3)
    db.session.commit()
    row = next(r for r in csv_rows(client) if r["ozg_id"] == "10500")
    assert row["service"].startswith("'=") and row["themenfeld"] == "'+Topic"
    json_row = next(r for r in json_document(client)["rows"] if r["ozg_id"] == "10500")
    assert json_row["service"].startswith("=")  # JSON is data, not a spreadsheet


def test_open_data_cache_headers_and_304(client, members, catalogue):
    statuses(members, catalogue)
    for url in ("/monitoring/ozg.csv", "/monitoring/ozg.json"):
        first = get(client, url)
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        assert etag.startswith('"') and modified.endswith("GMT")
        assert "public" in first.headers["Cache-Control"] and "max-age=" in first.headers["Cache-Control"]
        assert 'rel="license"' in first.headers["Link"] and "dl-de/by-2-0" in first.headers["Link"]
        if url.endswith(".csv"):
            assert first.headers["Content-Type"] == "text/csv; charset=utf-8"
        again = client.get(url, buffered=True, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.get_data() == b""
        assert again.headers["ETag"] == etag
        assert client.get(url, buffered=True, headers={"If-Modified-Since": modified}).status_code == 304
        other = client.get(url, buffered=True, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200
    csv_etag = client.get("/monitoring/ozg.csv", buffered=True).headers["ETag"]
    assert csv_etag != client.get("/monitoring/ozg.json", buffered=True).headers["ETag"]

    set_scope(db.session, ALL)
    ozg.set_status(
        db.session,
        ACTOR,
        db.session.get(Municipality, catalogue_id(KRUMMWISCH)),
        catalogue["10169"],
        maturity=3,
    )
    db.session.commit()
    changed = client.get("/monitoring/ozg.csv", buffered=True, headers={"If-None-Match": csv_etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != csv_etag


def catalogue_id(key: str) -> int:
    return db.session.execute(select(Municipality.id).where(Municipality.key == key)).scalar_one()


# --- trend and support --------------------------------------------------------------------------


def test_trend_comes_from_the_snapshots(client, members, catalogue):
    set_scope(db.session, ALL)
    ozg.recompute_tallies(db.session)
    ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10000"], maturity=3)
    ozg.take_snapshot(db.session, ACTOR, date(2024, 1, 1))
    ozg.set_status(db.session, ACTOR, members[LUEBECK], catalogue["10000"], maturity=4)
    ozg.set_status(db.session, ACTOR, members[KRUMMWISCH], catalogue["10169"], maturity=3)
    ozg.take_snapshot(db.session, ACTOR, date(2024, 2, 1))
    db.session.commit()
    set_scope(db.session, ALL)
    stored = {
        s.month.isoformat(): (s.compliant, s.possible)
        for s in db.session.execute(
            select(OzgSnapshot).where(OzgSnapshot.scope == "land", OzgSnapshot.topic == "")
        ).scalars()
    }
    response = get(client, "/monitoring/")
    trend = {
        month: (int(row["data-compliant"]), int(row["data-possible"]))
        for month, row in rows_with(parse(response), "data-month").items()
    }
    assert trend == stored == {"2024-01-01": (1, 4 * 1106), "2024-02-01": (3, 4 * 1106)}
    page = response.get_data(as_text=True)
    assert '<svg class="itvsh-trend"' in page and "<polyline" in page and "Februar 2024" in page


def test_support_per_kreis_and_municipality_equals_the_ledger(client, members, catalogue, open_year, project):
    statuses(members, catalogue)
    set_scope(db.session, ALL)
    grants = (
        (members[KRUMMWISCH], 10_000_00, 4_000_00),
        (members[AMT_ACHTERWEHR], 5_000_00, 5_000_00),  # an Amt counts in its Kreis
        (members[KIEL], 7_000_00, 0),
    )
    for member, amount, paid in grants:
        allocation = ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year),
            recipient_kind="member",
            municipality=member,
            purpose=SECRET_PURPOSE,
            amount_cents=amount,
        )
        ledger.approve(db.session, ACTOR, allocation)
        if paid:
            ledger.disburse(db.session, ACTOR, allocation, paid)
    for recipient_kind, extra in (("project", {"project": project}), ("federation", {})):
        own = ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year, "projekte"),
            recipient_kind=recipient_kind,
            municipality=None,
            purpose=SECRET_PURPOSE,
            amount_cents=3_000_00,
            **extra,
        )
        ledger.approve(db.session, ACTOR, own)  # not support to a member: never counted
    ledger.create_allocation(  # a draft binds nothing
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year),
        recipient_kind="member",
        municipality=members[KRUMMWISCH],
        purpose=SECRET_PURPOSE,
        amount_cents=99_00,
    )
    db.session.commit()
    set_scope(db.session, ALL)
    ledger_sums = defaultdict(lambda: [0, 0])
    kreis_of = kreis_keys()
    kreis_of[members[AMT_ACHTERWEHR].id] = KREIS_RD_ECK
    for municipality_id, committed, paid in db.session.execute(
        select(
            Booking.municipality_id,
            func.sum(Booking.committed_delta_cents),
            func.sum(Booking.paid_delta_cents),
        )
        .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
        .where(FiscalYear.year == open_year.year, Booking.municipality_id.is_not(None))
        .group_by(Booking.municipality_id)
    ):
        ledger_sums[kreis_of[municipality_id]][0] += int(committed)
        ledger_sums[kreis_of[municipality_id]][1] += int(paid)
    assert ledger_sums[KREIS_RD_ECK] == [15_000_00, 9_000_00]

    response = get(client, f"/monitoring/?year={open_year.year}&q=Krummwisch")
    parsed = parse(response)
    kreise = rows_with(parsed, "data-kreis")
    shown = {key: [int(row["data-committed"]), int(row["data-paid"])] for key, row in kreise.items()}
    assert {key: value for key, value in shown.items() if value != [0, 0]} == dict(ledger_sums)
    total = next(row for row in parsed.rows if "itvsh-total" in row.get("class", ""))
    assert (int(total["data-committed"]), int(total["data-paid"])) == (22_000_00, 9_000_00)
    match = rows_with(parsed, "data-ags")[KRUMMWISCH]
    assert (int(match["data-committed"]), int(match["data-paid"])) == (10_000_00, 4_000_00)
    page = response.get_data(as_text=True)
    assert "15.000,00\u00a0€" in page and "22.000,00\u00a0€" in page
    assert f'<option value="{open_year.year}" selected>' in page
    assert get(client, "/monitoring/").get_data(as_text=True).count("15.000,00\u00a0€") == 1  # default year

    municipality = rows_with(parse(get(client, f"/monitoring/municipality/{KRUMMWISCH}")), "data-year")
    assert municipality[str(open_year.year)]["data-committed"] == str(10_000_00)
    assert municipality[str(open_year.year)]["data-paid"] == str(4_000_00)
    for url in ("/monitoring/", f"/monitoring/municipality/{KRUMMWISCH}", "/monitoring/ozg.csv"):
        assert SECRET_PURPOSE not in get(client, url).get_data(as_text=True)


# --- no personal data -------------------------------------------------------------------------


def test_no_personal_data_anywhere(client, make_user, members, catalogue, project, person):
    reporter = make_user("staff", email="reporter.person@itvsh.example")
    set_scope(db.session, ALL)
    project_services.update_project(db.session, ACTOR, project, lead=person)
    db.session.commit()
    statuses(members, catalogue, actor=reporter)
    set_scope(db.session, ALL)
    ozg.set_status(db.session, reporter, members[KIEL], catalogue["10003"], maturity=3, project=project)
    db.session.commit()
    stored = (
        db.session.execute(select(OzgStatus.changed_by).where(OzgStatus.changed_by != "")).scalars().all()
    )
    assert "reporter.person@itvsh.example" in stored  # it is recorded, and must not be published
    urls = (
        "/monitoring/",
        "/monitoring/?q=Kiel",
        "/monitoring/about",
        f"/monitoring/municipality/{KIEL}",
        "/monitoring/ozg.csv",
        "/monitoring/ozg.json",
    )
    for url in urls:
        text = get(client, url).get_data(as_text=True)
        assert "reporter.person" not in text, url
        assert "@itvsh.example" not in text, url
        assert "Anna Beispiel" not in text and "anna.beispiel" not in text, url
    assert project.name in get(client, f"/monitoring/municipality/{KIEL}").get_data(as_text=True)


@pytest.mark.parametrize("url", ["/monitoring/", "/monitoring/ozg.csv", "/monitoring/ozg.json"])
def test_empty_database_answers_too(client, url):
    assert client.get(url, buffered=True).status_code == 200


def test_tallies_are_what_the_page_reads(client, members, catalogue):
    """The page reads the stored tallies (not the status rows): a tally changed behind the status
    rows' back shows at once."""
    statuses(members, catalogue)
    land = db.session.execute(
        select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic == "")
    ).scalar_one()
    land.level3 += 100
    audit.record(db.session, ACTOR, "update", "ozg_tally", land.id)
    db.session.commit()
    assert page_figures(parse(get(client, "/monitoring/")))["land"][0] == brute_force()["land"][0] + 100


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_page_formats_money_as_the_app_does(app, lang):
    for cents in (0, 1, 99, 100, 123_456, 150_000_000, -123_456, -5, 10**13):
        assert monitoring.euro(cents, lang) == format_money(cents, lang)


def test_an_audited_change_shows_at_once(client, members, catalogue, open_year):
    """The overview is kept per version of the figures (the audit chain's head): a status change,
    a booking or a snapshot is audited, so the next visit shows it."""
    statuses(members, catalogue)
    before = page_figures(parse(get(client, "/monitoring/")))
    assert page_figures(parse(get(client, "/monitoring/"))) == before  # kept
    set_scope(db.session, ALL)
    ozg.set_status(db.session, ACTOR, members[KRUMMWISCH], catalogue["10000"], maturity=4)
    db.session.commit()
    after = page_figures(parse(get(client, "/monitoring/")))
    assert after["land"][0] == before["land"][0] + 1 and after == {**before, **after}
    assert after["land"] == brute_force()["land"]
    set_scope(db.session, ALL)
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year),
        recipient_kind="member",
        municipality=members[KIEL],
        purpose=SECRET_PURPOSE,
        amount_cents=1_234_56,
    )
    ledger.approve(db.session, ACTOR, allocation)
    db.session.commit()
    kiel = rows_with(parse(get(client, "/monitoring/")), "data-kreis")[KIEL]
    assert kiel["data-committed"] == str(1_234_56)
    english = client.get("/monitoring/", buffered=True, headers={"Accept-Language": "en"})
    assert english.status_code == 200
