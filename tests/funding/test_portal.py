"""The member portal's funding page: a municipality user sees its own allocations and payments over
the years, with figures that equal the sums of its ledger bookings — never another tenant's, never
the federation's own, never a draft. An Amt user sees the Amt's and its Gemeinden's, labelled by
recipient; a Kreis user the Kreis's only. Staff, auditors and admins are refused (it is the
members' portal, like /portal/). The page runs the same number of SQL statements for a few and for
many allocations (counted, never timed)."""

from __future__ import annotations

import html
import re
from datetime import date
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from itvsh.core.money import format_money
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, Booking
from itvsh.tenants.services import get_by_key
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.funding.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, category
from tests.tenants.test_query_counts import client_for

FELDE = "01058050"  # a Gemeinde of Amt Achterwehr
URL = "/portal/funding/"


def euro(cents: int) -> str:
    return format_money(cents, "de")


class _Tables(HTMLParser):
    """The text of every cell of the page's tables, by the table's itvsh-* class: {class: [[cell]]}."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            name = next((c for c in (attrs.get("class") or "").split() if c.startswith("itvsh-")), "")
            self._table = self.tables.setdefault(name, [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(re.sub(r"[ \t\r\n]+", " ", "".join(self._cell)).strip(" "))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(response) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(response.get_data(as_text=True))
    return parser.tables


def body_rows(table: list[list[str]]) -> list[list[str]]:
    """The rows after the header row (a footer's total row, where there is one, comes last)."""
    return table[1:]


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def funded(app, open_year, members):
    """Allocations in this year and last year (closed, with a carry-over) for several tenants and the
    federation; returns the years, the allocations by name and a unique canary purpose for each."""
    set_scope(db.session, ALL)
    this = open_year.year
    last = ledger.create_fiscal_year(db.session, ACTOR, this - 1)
    ledger.open_year(db.session, ACTOR, last)

    def allocation(year, key, purpose, cents, code="zuweisungen"):
        return ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=year,
            category=category(year, code),
            recipient_kind="member" if key else "federation",
            municipality=members[key] if key else None,
            purpose=purpose,
            amount_cents=cents,
            file_reference=f"AZ-{purpose}",
            proof_of_use_due=date(year.year + 1, 6, 30),
        )

    made = {}
    # Kiel last year: 10,000.00 approved, 4,000.00 paid, the rest carried over and paid this year.
    made["kiel_last"] = a = allocation(last, KIEL, "kiel-last-year", 10_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(last.year, 3, 1))
    ledger.disburse(db.session, ACTOR, a, 4_000_00, on=date(last.year, 5, 1))
    ledger.close_year(db.session, ACTOR, last)
    ledger.disburse(db.session, ACTOR, a, 6_000_00, on=date(this, 1, 20), note="Ausgaberest")
    # Kiel this year: 100,000.00 with two payments, one of them reversed; 20,000.00 partly released;
    # a draft.
    made["kiel_main"] = a = allocation(open_year, KIEL, "kiel-main", 100_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 30_000_00, on=date(this, 1, 3))
    wrong = ledger.disburse(db.session, ACTOR, a, 20_000_00, on=date(this, 1, 4))
    ledger.reverse(db.session, ACTOR, wrong, note="wrong account", on=date(this, 1, 5))
    made["kiel_released"] = a = allocation(open_year, KIEL, "kiel-released", 20_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.release(db.session, ACTOR, a, 5_000_00, on=date(this, 1, 6), note="cheaper")
    made["kiel_draft"] = allocation(open_year, KIEL, "kiel-draft", 7_000_00)
    made["kiel_cancelled"] = allocation(open_year, KIEL, "kiel-cancelled-draft", 3_000_00)
    ledger.cancel(db.session, ACTOR, made["kiel_cancelled"], reason="withdrawn")
    # Others.
    made["krummwisch"] = a = allocation(open_year, KRUMMWISCH, "krummwisch-canary", 12_345_67)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 12_345_67, on=date(this, 1, 7))
    made["felde"] = a = allocation(open_year, FELDE, "felde-canary", 8_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 4_000_00, on=date(this, 1, 8))
    made["amt"] = a = allocation(open_year, AMT_ACHTERWEHR, "amt-canary", 25_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 25_000_00, on=date(this, 1, 9))
    made["kreis"] = a = allocation(open_year, KREIS_RD_ECK, "kreis-canary", 40_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    made["federation"] = a = allocation(open_year, None, "federation-canary", 50_000_00, "personal")
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 10_000_00, on=date(this, 1, 10))
    db.session.commit()
    set_scope(db.session, ALL)
    return {"this": this, "last": last.year, "made": made}


CANARIES = {
    "kiel-last-year",
    "kiel-main",
    "kiel-released",
    "kiel-draft",
    "kiel-cancelled-draft",
    "krummwisch-canary",
    "felde-canary",
    "amt-canary",
    "kreis-canary",
    "federation-canary",
}
SEES = {
    KIEL: {"kiel-last-year", "kiel-main", "kiel-released"},
    KRUMMWISCH: {"krummwisch-canary"},
    AMT_ACHTERWEHR: {"amt-canary", "krummwisch-canary", "felde-canary"},
    KREIS_RD_ECK: {"kreis-canary"},
}


def ledger_sums(purposes: set[str]) -> tuple[int, int]:
    """Committed and paid, straight from the bookings of the allocations with these purposes."""
    set_scope(db.session, ALL)
    committed, paid = db.session.execute(
        select(func.sum(Booking.committed_delta_cents), func.sum(Booking.paid_delta_cents))
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .where(Allocation.purpose.in_(purposes))
    ).one()
    return int(committed), int(paid)


@pytest.mark.parametrize("key", list(SEES))
def test_each_member_sees_its_own_allocations_only(client, login_as, funded, key):
    login_as("municipality", key)
    response = client.get(URL)
    assert response.status_code == 200
    body = text_of(response)
    shown = {canary for canary in CANARIES if canary in body}
    assert shown == SEES[key]
    purposes = {
        row[2 if key == AMT_ACHTERWEHR else 1]
        for row in body_rows(tables(response)["itvsh-funding-allocations"])
    }
    assert purposes == SEES[key]


def test_kiel_sees_its_figures_equal_to_the_ledger(app, client, login_as, funded):
    login_as("municipality", KIEL)
    response = client.get(URL)
    found = tables(response)
    this, last = funded["this"], funded["last"]
    # per allocation: year, purpose, file reference, status, amount, committed, paid, open, due, received
    allocations = {row[1]: row for row in body_rows(found["itvsh-funding-allocations"])}
    assert allocations["kiel-main"] == [
        str(this),
        "kiel-main",
        "AZ-kiel-main",
        translated(app, "partially paid"),
        euro(100_000_00),
        euro(100_000_00),
        euro(30_000_00),
        euro(70_000_00),
        f"30.06.{this + 1}",
        "—",
    ]
    assert allocations["kiel-released"][3:8] == [
        translated(app, "approved"),
        euro(20_000_00),
        euro(15_000_00),
        euro(0),
        euro(15_000_00),
    ]
    assert allocations["kiel-last-year"][0] == str(last)
    assert allocations["kiel-last-year"][3:8] == [
        translated(app, "paid"),
        euro(10_000_00),
        euro(10_000_00),
        euro(10_000_00),
        euro(0),
    ]
    # yearly totals (by the allocation's year) and the grand total, each equal to the ledger's sums
    years = found["itvsh-funding-years"]
    assert years[1] == [str(this), "2", euro(115_000_00), euro(30_000_00), euro(85_000_00)]
    assert years[2] == [str(last), "1", euro(10_000_00), euro(10_000_00), euro(0)]
    committed, paid = ledger_sums(SEES[KIEL])
    assert (committed, paid) == (125_000_00, 40_000_00)
    assert years[3] == [translated(app, "Total"), "3", euro(committed), euro(paid), euro(committed - paid)]
    # payments by the year they were booked: the carried rest was paid this year
    payment_years = found["itvsh-funding-payment-years"]
    assert payment_years[1] == [str(this), euro(56_000_00), euro(0), euro(-20_000_00), euro(36_000_00)]
    assert payment_years[2] == [str(last), euro(4_000_00), euro(0), euro(0), euro(4_000_00)]
    assert payment_years[3][-1] == euro(paid)


def test_kiel_sees_each_payment_with_its_date_and_the_reversal_note(app, client, login_as, funded):
    login_as("municipality", KIEL)
    payments = body_rows(tables(client.get(URL))["itvsh-funding-payments"])
    this, last = funded["this"], funded["last"]
    disbursement, reversal = translated(app, "disbursement"), translated(app, "reversal")
    # date, purpose, file reference, kind, amount, note — newest first
    assert payments == [
        [f"20.01.{this}", "kiel-last-year", "AZ-kiel-last-year", disbursement, euro(6_000_00), "Ausgaberest"],
        [f"05.01.{this}", "kiel-main", "AZ-kiel-main", reversal, euro(-20_000_00), "wrong account"],
        [f"04.01.{this}", "kiel-main", "AZ-kiel-main", disbursement, euro(20_000_00), ""],
        [f"03.01.{this}", "kiel-main", "AZ-kiel-main", disbursement, euro(30_000_00), ""],
        [f"01.05.{last}", "kiel-last-year", "AZ-kiel-last-year", disbursement, euro(4_000_00), ""],
    ]


def test_an_amt_sees_its_own_and_its_gemeinden_labelled_by_recipient(app, client, login_as, funded):
    login_as("municipality", AMT_ACHTERWEHR)
    response = client.get(URL)
    found = tables(response)
    recipients = {row[2]: row[1] for row in body_rows(found["itvsh-funding-allocations"])}
    assert recipients == {
        "amt-canary": f"Achterwehr ({AMT_ACHTERWEHR})",
        "krummwisch-canary": f"Krummwisch ({KRUMMWISCH})",
        "felde-canary": f"Felde ({FELDE})",
    }
    by_municipality = {row[1]: row[2:] for row in body_rows(found["itvsh-funding-recipients"])}
    assert by_municipality == {
        AMT_ACHTERWEHR: ["1", euro(25_000_00), euro(25_000_00), euro(0)],
        KRUMMWISCH: ["1", euro(12_345_67), euro(12_345_67), euro(0)],
        FELDE: ["1", euro(8_000_00), euro(4_000_00), euro(4_000_00)],
    }
    committed, paid = ledger_sums(SEES[AMT_ACHTERWEHR])
    assert found["itvsh-funding-years"][-1][2:] == [euro(committed), euro(paid), euro(committed - paid)]
    payments = body_rows(found["itvsh-funding-payments"])
    assert {row[1] for row in payments} == set(recipients.values())


def test_a_gemeinde_without_allocations_is_told_so(app, client, login_as, funded):
    login_as("municipality", "01058001")  # Achterwehr, the Gemeinde: nothing allocated
    response = client.get(URL)
    assert response.status_code == 200
    body = text_of(response)
    assert translated(app, "No allocations so far.") in body
    assert translated(app, "No payments so far.") in body
    assert not {canary for canary in CANARIES if canary in body}


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_the_page_is_for_municipality_users_only(client, login_as, funded, role):
    login_as(role)
    response = client.get(URL)
    assert response.status_code == 403
    assert not {canary for canary in CANARIES if canary in text_of(response)}


def test_anonymous_visitors_are_sent_to_login(client, funded):
    response = client.get(URL)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_the_portal_home_links_to_the_page(client, login_as, funded):
    login_as("municipality", KRUMMWISCH)
    home = client.get("/portal/").get_data(as_text=True)
    support = home.split('id="support-heading"')[1].split("</section>")[0]
    assert f'href="{URL}"' in support


def test_the_page_is_german_and_accessible(app, client, login_as, funded):
    login_as("municipality", AMT_ACHTERWEHR)
    response = client.get(URL)
    page = response.get_data(as_text=True)
    assert '<html lang="de"' in page
    assert len(re.findall(r"<h1[\s>]", page)) == 1
    sections = re.findall(r'<section aria-labelledby="([^"]+)"', page)
    assert len(sections) == 4  # years, municipalities (an Amt), allocations, payments
    for heading in sections:
        assert re.search(rf'<h2 id="{heading}"', page), heading
    assert not re.search(r"<th(?![^>]*scope=\"(col|row)\")[\s>]", page)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!/)', page)
    assert euro(12_345_67) == "12.345,67\xa0€" and euro(12_345_67) in html.unescape(page)


# --- statements ----------------------------------------------------------------------------------


def _statements(client) -> tuple[int, str]:
    db.session.expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(URL)
    assert response.status_code == 200
    return len(seen), response.get_data(as_text=True)


def _more(number: int, keys: list[str], count: int) -> None:
    """``count`` more allocations over ``keys``, each approved and paid in two instalments."""
    set_scope(db.session, ALL)
    year = ledger.get_year(db.session, number)
    for n in range(count):
        key = keys[n % len(keys)]
        allocation = ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=year,
            category=category(year),
            recipient_kind="member",
            municipality=get_by_key(db.session, key),
            purpose=f"more-{key}-{n}",
            amount_cents=1_000_00 + n,
            file_reference=f"AZ-more-{n}",
        )
        ledger.approve(db.session, ACTOR, allocation, on=date(year.year, 2, 1))
        ledger.disburse(db.session, ACTOR, allocation, 500_00, on=date(year.year, 2, 2))
        ledger.disburse(db.session, ACTOR, allocation, 100_00, on=date(year.year, 2, 3))
    db.session.commit()


def test_the_page_runs_the_same_statements_for_few_and_many_allocations(app, make_user, funded):
    clients = {key: client_for(app, make_user("municipality", key)) for key in (KIEL, AMT_ACHTERWEHR)}
    small = {key: _statements(client) for key, client in clients.items()}
    _more(funded["this"], [KIEL, AMT_ACHTERWEHR, KRUMMWISCH, FELDE, "01058104"], 40)
    large = {key: _statements(client) for key, client in clients.items()}
    for key in clients:
        # not vacuous: the large page lists many more allocations and payments
        assert (
            large[key][1].count('class="itvsh-allocation"')
            >= small[key][1].count('class="itvsh-allocation"') + 8
        )
        assert (
            large[key][1].count('class="itvsh-payment"') >= small[key][1].count('class="itvsh-payment"') + 16
        )
    counts = {key: (small[key][0], large[key][0]) for key in clients}
    print("\nSQL statements on /portal/funding/ (few / many allocations):", counts)
    assert all(few == many and few > 0 for few, many in counts.values()), counts
