"""The funding dashboard and the multi-year overview through the client: every figure equals its
ledger sum (a small ledger built through the services: approvals, payments, a release, a reversal,
a carry-over), computed again here from the booking rows; the pages run a constant number of SQL
statements (at most six) whatever the number of bookings; charts are inline SVG drawn by the app;
the municipality detail page shows a member's allocations and payments; who may look."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from datetime import date

import pytest
from sqlalchemy import select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import charts, ledger
from itvsh.funding.models import Allocation, Booking, BudgetCategory, FiscalYear, RecipientKind
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.funding.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER, category

DASHBOARD, OVERVIEW = "/admin/funding/", "/admin/funding/overview/"
STATEMENT_LIMIT = 6
THIS_YEAR = date.today().year
EUR = 100  # cents


def allocate(year, code, key, cents, *, members=None, purpose="Test") -> Allocation:
    """A draft allocation to the member ``key`` (or the federation for None), approved."""
    set_scope(db.session, ALL)
    municipality = None if key is None else members[key]
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=year,
        category=category(year, code),
        recipient_kind=RecipientKind.FEDERATION if key is None else RecipientKind.MEMBER,
        municipality=municipality,
        purpose=purpose,
        amount_cents=cents,
    )
    ledger.approve(db.session, ACTOR, allocation)
    return allocation


@pytest.fixture
def small_ledger(members, open_year):
    """Last year: three allocations, closed with one carry-over and one release. This year:
    approvals, payments, a reversed payment, a release, a payment on the carried allocation."""
    set_scope(db.session, ALL)
    last = ledger.create_fiscal_year(db.session, ACTOR, THIS_YEAR - 1)
    ledger.open_year(db.session, ACTOR, last)
    carried = allocate(last, "zuweisungen", KRUMMWISCH, 10_000 * EUR, members=members, purpose="carried")
    ledger.disburse(db.session, ACTOR, carried, 4_000 * EUR)
    released = allocate(last, "zuweisungen", AMT_ACHTERWEHR, 5_000 * EUR, members=members, purpose="released")
    own = allocate(last, "personal", None, 2_000 * EUR, purpose="own costs last year")
    ledger.disburse(db.session, ACTOR, own, 2_000 * EUR)
    ledger.close_year(db.session, ACTOR, last, {carried.id: "carry", released.id: "release"})

    kiel = allocate(open_year, "zuweisungen", KIEL, 20_000 * EUR, members=members, purpose="Kiel")
    wrong = ledger.disburse(db.session, ACTOR, kiel, 5_000 * EUR)
    ledger.reverse(db.session, ACTOR, wrong, note="wrong amount")
    ledger.disburse(db.session, ACTOR, kiel, 7_000 * EUR)
    krummwisch = allocate(open_year, "zuweisungen", KRUMMWISCH, 3_000 * EUR, members=members)
    ledger.release(db.session, ACTOR, krummwisch, 1_000 * EUR)
    federation = allocate(open_year, "personal", None, 4_000 * EUR, purpose="own costs")
    ledger.disburse(db.session, ACTOR, federation, 1_000 * EUR)
    allocate(open_year, "zuweisungen", KREIS_RD_ECK, 1_500 * EUR, members=members, purpose="Kreis")
    ledger.disburse(db.session, ACTOR, carried, 2_000 * EUR)  # its money now sits in this year
    db.session.commit()
    set_scope(db.session, ALL)
    return {"last": last, "this": open_year, "carried": carried}


@pytest.fixture
def staff_client(client, login_as):
    login_as("staff", locale="en")
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    set_scope(db.session, ALL)
    return html.unescape(response.get_data(as_text=True))


def figures(body: str) -> dict[str, int]:
    return {name: int(c) for name, c in re.findall(r'itvsh-figure-([\w-]+)" data-cents="(-?\d+)"', body)}


def table_rows(body: str, row_class: str) -> dict[str, list[int]]:
    """{label: [cents of each money cell]} for the rows ``<tr class="row_class...">``."""
    rows = {}
    for row in re.findall(rf'<tr class="{row_class}(?: [^"]*)?"[^>]*>(.*?)</tr>', body, re.S):
        label = re.sub(r"<[^>]+>", "", re.search(r"<th[^>]*>(.*?)</th>", row, re.S)[1]).strip()
        rows[label] = [int(c) for c in re.findall(r'data-cents="(-?\d+)"', row)]
    return rows


# --- the ledger again, computed here from the booking rows -----------------------------------------


def bookings_of(year: FiscalYear) -> list[Booking]:
    set_scope(db.session, ALL)
    return list(db.session.execute(select(Booking).where(Booking.fiscal_year_id == year.id)).scalars())


def kreis_key_of(municipality_id: int | None) -> str | None:
    if municipality_id is None:
        return None
    m = db.session.get(Municipality, municipality_id)
    if m.kind in ("kreis", "kreisfreie_stadt"):
        return m.key
    return m.kreis.key


def expected_per_kreis(year: FiscalYear) -> dict[str | None, list[int]]:
    sums: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for booking in bookings_of(year):
        key = kreis_key_of(booking.municipality_id)
        sums[key][0] += booking.committed_delta_cents
        sums[key][1] += booking.paid_delta_cents
    return sums


def expected_per_category(year: FiscalYear) -> dict[int, list[int]]:
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for booking in bookings_of(year):
        sums[booking.category_id][0] += booking.available_delta_cents
        sums[booking.category_id][1] += booking.committed_delta_cents
        sums[booking.category_id][2] += booking.paid_delta_cents
    return sums


# --- figures ------------------------------------------------------------------------------------------


def test_the_dashboard_totals_equal_the_ledger_sums(staff_client, small_ledger):
    body = page(staff_client, DASHBOARD)  # the current year by default
    assert f"Funding {THIS_YEAR}" in body
    shown = figures(body)
    rows = bookings_of(small_ledger["this"])
    committed = sum(b.committed_delta_cents for b in rows)
    paid = sum(b.paid_delta_cents for b in rows)
    carried_in = sum(b.available_delta_cents for b in rows)
    # by hand: 20,000 + (3,000 - 1,000) + 4,000 + 1,500 + 6,000 carried;
    # paid 5,000 - 5,000 (reversed) + 7,000 + 1,000 + 2,000
    assert (committed, paid, carried_in) == (33_500 * EUR, 10_000 * EUR, 6_000 * EUR)
    assert shown == {
        "appropriation": 1_500_000 * EUR,
        "carried-in": carried_in,
        "available": 1_500_000 * EUR + carried_in,
        "committed": committed,
        "paid": paid,
        "free": 1_500_000 * EUR + carried_in - committed,
        "open": committed - paid,
    }
    f = ledger.year_figures(db.session, small_ledger["this"])
    assert (shown["committed"], shown["paid"], shown["free"]) == (
        f.committed_cents,
        f.paid_cents,
        f.free_cents,
    )


def test_categories_show_plan_committed_paid_and_label_carried_money(staff_client, small_ledger):
    this, last = small_ledger["this"], small_ledger["last"]
    body = page(staff_client, DASHBOARD)
    rows = table_rows(body, "itvsh-category")
    expected = expected_per_category(this)
    carried_label = f"Zuweisungen an Kommunen (carried in from {THIS_YEAR - 1})"
    assert list(rows) == [
        "Zuweisungen an Kommunen",
        "Gemeinsame Projekte",
        "Personal",
        "Infrastruktur",
        carried_label,
    ]
    for code, name in (("zuweisungen", "Zuweisungen an Kommunen"), ("personal", "Personal")):
        item = category(this, code)
        carried_in, committed, paid = expected[item.id]
        # plan, carried in, committed, paid, open, left in plan
        assert rows[name] == [
            item.planned_cents,
            carried_in,
            committed,
            paid,
            committed - paid,
            item.planned_cents - committed,
        ]
    assert rows["Zuweisungen an Kommunen"][2:4] == [23_500 * EUR, 7_000 * EUR]
    assert rows["Personal"][2:4] == [4_000 * EUR, 1_000 * EUR]
    old = category(last, "zuweisungen")
    carried_in, committed, paid = expected[old.id]
    assert (carried_in, committed, paid) == (6_000 * EUR, 6_000 * EUR, 2_000 * EUR)
    assert rows[carried_label] == [carried_in, committed, paid, committed - paid]  # no plan, nothing left
    totals = table_rows(body, "itvsh-category-totals")["Total"]
    f = ledger.year_figures(db.session, this)
    assert totals[1:4] == [f.carried_in_cents, f.committed_cents, f.paid_cents]


def test_kreise_count_their_members_and_the_federation_is_its_own_row(staff_client, small_ledger):
    this = small_ledger["this"]
    body = page(staff_client, DASHBOARD)
    shown = {
        key: [int(c) for c in re.findall(r'data-cents="(-?\d+)"', row)]
        for key, row in re.findall(r'<tr class="itvsh-kreis" data-key="([^"]+)">(.*?)</tr>', body, re.S)
    }
    expected = expected_per_kreis(this)
    kreise = db.session.execute(
        select(Municipality.key).where(Municipality.kind.in_(["kreis", "kreisfreie_stadt"]))
    ).scalars()
    assert set(shown) == {*kreise, "federation"}  # every Kreis, also those without money
    for key, (committed, paid) in expected.items():
        assert shown[key or "federation"] == [committed, paid, committed - paid], key
    # by hand: Krummwisch (2,000 and the carried 6,000, 2,000 paid) and the Kreis itself (1,500)
    assert shown[KREIS_RD_ECK] == [9_500 * EUR, 2_000 * EUR, 7_500 * EUR]
    assert shown[KIEL] == [20_000 * EUR, 7_000 * EUR, 13_000 * EUR]  # a kreisfreie Stadt is its own
    assert shown["federation"] == [4_000 * EUR, 1_000 * EUR, 3_000 * EUR]
    assert shown["01001000"] == [0, 0, 0]  # Flensburg: nothing this year
    total = table_rows(body, "itvsh-kreis-totals")["Total"]
    f = ledger.year_figures(db.session, this)
    assert total == [f.committed_cents, f.paid_cents, f.open_cents]


def test_an_earlier_year_by_parameter(staff_client, small_ledger):
    body = page(staff_client, f"{DASHBOARD}?year={THIS_YEAR - 1}")
    shown = figures(body)
    # 10,000 + 5,000 + 2,000 committed, then 6,000 carried out and 5,000 released; paid 4,000 + 2,000
    assert (shown["committed"], shown["paid"], shown["carried-in"]) == (6_000 * EUR, 6_000 * EUR, 0)
    assert shown["open"] == 0
    assert "closed" in re.search(r'itvsh-year-status">([^<]*)<', body)[1]


@pytest.mark.parametrize("year", ["1999", "abc", "2024x", "9" * 30])
def test_an_unknown_year_is_not_found(staff_client, small_ledger, year):
    assert staff_client.get(f"{DASHBOARD}?year={year}").status_code == 404


def test_without_years_the_pages_say_so(staff_client):
    for url in (DASHBOARD, OVERVIEW):
        assert 'class="itvsh-no-years"' in page(staff_client, url)


def test_the_overview_lists_every_year_with_its_ledger_sums(staff_client, small_ledger):
    body = page(staff_client, OVERVIEW)
    rows = {
        int(year): (status, [int(c) for c in re.findall(r'data-cents="(-?\d+)"', row)])
        for year, status, row in re.findall(
            r'<tr class="itvsh-year" data-year="(\d+)">.*?itvsh-status">([^<]*)<(.*?)</tr>', body, re.S
        )
    }
    assert sorted(rows) == [THIS_YEAR - 1, THIS_YEAR]
    for year in (small_ledger["last"], small_ledger["this"]):
        f = ledger.year_figures(db.session, year)
        status, cells = rows[year.year]
        assert status == year.status_label
        assert cells == [
            f.appropriation_cents,
            f.carried_in_cents,
            f.available_cents,
            f.committed_cents,
            f.paid_cents,
            f.open_cents,
            f.free_cents,
        ]
    assert rows[THIS_YEAR][1][1] == 6_000 * EUR  # carried in
    assert rows[THIS_YEAR - 1][0] == "closed"


# --- charts ---------------------------------------------------------------------------------------------


def test_charts_are_inline_svg_drawn_by_the_app(staff_client, small_ledger):
    body = page(staff_client, DASHBOARD)
    for chart in ("chart-categories", "chart-kreise"):
        assert f'<svg class="itvsh-chart" id="{chart}"' in body
    assert "<script" not in body.split('id="chart-categories"')[1].split("</svg>")[0]
    sources = re.findall(r'(?:src|href)="([^"]+)"', body)
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    assert "/static/css/funding.css" in body
    # Bar lengths follow the figures: Kiel's committed bar is 20,000 / 9,500 times RD-Eck's.
    kreis_chart = body.split('id="chart-kreise"')[1].split("</svg>")[0]
    widths = {
        title: float(width)
        for width, title in re.findall(
            r'class="itvsh-bar itvsh-bar-committed"[^>]*width="([\d.]+)"[^>]*><title>([^<]*)</title>',
            kreis_chart,
        )
    }
    kiel = next(w for t, w in widths.items() if t.startswith("Kiel"))
    rd_eck = next(w for t, w in widths.items() if t.startswith("Rendsburg"))
    assert kiel / rd_eck == pytest.approx(20_000 / 9_500, rel=1e-3)
    assert "$20,000.00" not in kreis_chart and "€20,000.00" in kreis_chart  # the tooltips carry the amounts
    assert 'id="chart-years"' in page(staff_client, OVERVIEW)


def test_chart_geometry_scales_to_a_nice_maximum():
    assert [charts.nice_ceiling(c) for c in (0, 1, 150_00, 199_999_00, 200_000_00, 2_000_001_00)] == [
        100_00,
        10_00,
        200_00,
        200_000_00,
        200_000_00,
        2_500_000_00,
    ]
    chart = charts.grouped_bars(
        "t",
        [charts.Series("committed", "Committed"), charts.Series("paid", "Paid")],
        [("a", [100_000_00, 50_000_00]), ("b" * 80, [-5, 0])],
        locale="de",
    )
    full = chart.plot_right - chart.plot_left
    assert [bar.width for bar in chart.rows[0].bars] == [full, full / 2]
    assert [bar.width for bar in chart.rows[1].bars] == [0, 0]  # negative values draw nothing
    assert chart.rows[1].label.endswith("…") and chart.rows[1].full_label == "b" * 80
    assert [t.label.replace("\xa0", " ") for t in chart.ticks] == [
        "0 €",
        "20.000 €",
        "40.000 €",
        "60.000 €",
        "80.000 €",
        "100.000 €",
    ]
    for top, steps in ((10_00, 5), (20_00, 4), (25_00, 5), (50_00, 5), (2_000_000_00, 4), (2_500_000_00, 5)):
        assert charts.tick_count(top) == steps, top
        assert (top // steps) % 100 == 0, top  # every tick on whole euros
    assert charts.grouped_bars("t", [], []) is None


# --- statements -----------------------------------------------------------------------------------------


def more_bookings(year, count: int) -> None:
    """``count`` more approved and partly paid allocations, each with three bookings."""
    set_scope(db.session, ALL)
    members = {
        m.key: m
        for m in db.session.execute(
            select(Municipality)
            .where(Municipality.kind == "gemeinde", Municipality.key != NON_MEMBER)
            .order_by(Municipality.key)
            .limit(count)
        ).scalars()
    }
    keys = list(members)
    for n, key in enumerate(keys):
        allocation = allocate(year, "zuweisungen", key, (100 + n) * EUR, members=members)
        ledger.disburse(db.session, ACTOR, allocation, 10 * EUR)
        ledger.disburse(db.session, ACTOR, allocation, 20 * EUR)
    db.session.commit()
    set_scope(db.session, ALL)


def statements(client, url: str) -> list[str]:
    db.session.expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, url
    set_scope(db.session, ALL)
    return list(seen)


def test_dashboard_and_overview_run_the_same_few_statements_for_few_and_many_bookings(
    staff_client, small_ledger
):
    urls = (DASHBOARD, f"{DASHBOARD}?year={THIS_YEAR - 1}", OVERVIEW)
    this_year_id = small_ledger["this"].id
    few = {url: statements(staff_client, url) for url in urls}
    before = len(bookings_of(db.session.get(FiscalYear, this_year_id)))
    more_bookings(db.session.get(FiscalYear, this_year_id), 60)
    assert len(bookings_of(db.session.get(FiscalYear, this_year_id))) == before + 180  # not vacuous
    many = {url: statements(staff_client, url) for url in urls}
    print({url: (len(few[url]), len(many[url])) for url in urls})
    for url in urls:
        assert len(few[url]) == len(many[url]), (url, few[url], many[url])
        assert 0 < len(many[url]) <= STATEMENT_LIMIT, (url, many[url])
    # the figures of the many bookings are really on the page
    body = page(staff_client, DASHBOARD)
    this_year = db.session.get(FiscalYear, this_year_id)
    assert figures(body)["committed"] == ledger.year_figures(db.session, this_year).committed_cents


# --- the municipality detail page ----------------------------------------------------------------------


def test_municipality_detail_lists_its_allocations_and_payments(staff_client, small_ledger):
    krummwisch = db.session.execute(select(Municipality).where(Municipality.key == KRUMMWISCH)).scalar_one()
    body = page(staff_client, f"/admin/municipalities/details/?id={krummwisch.id}")
    section = body.split('id="allocations-heading"')[1].split("</section>")[0]
    rows = re.findall(
        r'<tr class="itvsh-funding-allocation" data-allocation="(\d+)">(.*?)</tr>', section, re.S
    )
    allocations = db.session.execute(
        select(Allocation).where(Allocation.municipality_id == krummwisch.id).order_by(Allocation.id)
    ).scalars()
    expected = {}
    for allocation in allocations:
        f = ledger.allocation_figures(db.session, allocation)
        expected[str(allocation.id)] = [allocation.amount_cents, f.committed_cents, f.paid_cents]
    shown = {id_: [int(c) for c in re.findall(r'data-cents="(-?\d+)"', row)] for id_, row in rows}
    assert shown == expected
    carried = str(small_ledger["carried"].id)
    assert shown[carried] == [10_000 * EUR, 10_000 * EUR, 6_000 * EUR]  # across both years
    totals = [int(c) for c in re.findall(r'data-cents="(-?\d+)"', section.split("itvsh-funding-totals")[1])]
    assert totals == [sum(v[i] for v in expected.values()) for i in range(3)]
    payments = body.split('id="payments-heading"')[1].split("</section>")[0]
    amounts = [
        int(c)
        for c in re.findall(r'<tr class="itvsh-funding-payment">.*?data-cents="(-?\d+)"', payments, re.S)
    ]
    assert sorted(amounts) == [2_000 * EUR, 4_000 * EUR]
    assert "Kiel" not in section


def test_municipality_detail_without_allocations_says_nothing_yet(staff_client, small_ledger, members):
    body = page(staff_client, f"/admin/municipalities/details/?id={members['01001000'].id}")
    section = body.split('id="allocations-heading"')[1].split("</section>")[0]
    assert "itvsh-nothing-yet" in section and "itvsh-funding-allocation" not in section


# --- who may look ---------------------------------------------------------------------------------------


def test_auditors_read_the_dashboard_and_the_overview(client, login_as, small_ledger):
    login_as("auditor")
    for url in (DASHBOARD, OVERVIEW):
        assert client.get(url).status_code == 200


def test_municipality_users_are_refused(client, login_as, small_ledger):
    login_as("municipality", KRUMMWISCH)
    for url in (DASHBOARD, OVERVIEW, f"{DASHBOARD}?year={THIS_YEAR}"):
        assert client.get(url).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client, small_ledger):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_categories_of_the_year_exist(small_ledger):
    """Guards the fixture: the year has the default categories the tests name."""
    names = db.session.execute(
        select(BudgetCategory.name).where(BudgetCategory.fiscal_year_id == small_ledger["this"].id)
    ).scalars()
    assert set(names) == {"Zuweisungen an Kommunen", "Gemeinsame Projekte", "Personal", "Infrastruktur"}
