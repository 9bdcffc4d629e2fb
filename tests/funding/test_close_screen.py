"""The year-end close screen through the client: it lists the open commitments of an open year with
their ledger sums; closing carries over or releases each as chosen (carry-over by default) and
closes the year; a refused close writes nothing; auditors look but may not close; municipality
users are refused."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, Booking, FiscalYear
from itvsh.tenants.models import Municipality
from tests.auth.helpers import translated
from tests.conftest import csrf_token
from tests.funding.conftest import KIEL, KRUMMWISCH, NON_MEMBER
from tests.funding.test_dashboard import EUR, allocate

URL = "/admin/funding/close/"


@pytest.fixture
def commitments(members, open_year):
    """Krummwisch: 10,000 committed, 4,000 paid; Kiel: 5,000 committed; the federation: 3,000
    committed and paid (nothing open)."""
    set_scope(db.session, ALL)
    krummwisch = allocate(open_year, "zuweisungen", KRUMMWISCH, 10_000 * EUR, members=members, purpose="K")
    ledger.disburse(db.session, "test", krummwisch, 4_000 * EUR)
    kiel = allocate(open_year, "zuweisungen", KIEL, 5_000 * EUR, members=members, purpose="Kiel")
    own = allocate(open_year, "personal", None, 3_000 * EUR, purpose="own")
    ledger.disburse(db.session, "test", own, 3_000 * EUR)
    db.session.commit()
    set_scope(db.session, ALL)
    return {"year": open_year.id, "krummwisch": krummwisch.id, "kiel": kiel.id, "own": own.id}


def fresh(model, id_):
    set_scope(db.session, ALL)
    db.session.expire_all()
    return db.session.get(model, id_)


def counts() -> tuple[int, int]:
    set_scope(db.session, ALL)
    return tuple(
        db.session.execute(select(func.count()).select_from(m)).scalar_one() for m in (Booking, AuditEvent)
    )


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def listed(body: str) -> dict[int, list[int]]:
    return {
        int(id_): [int(c) for c in re.findall(r'data-cents="(-?\d+)"', row)]
        for id_, row in re.findall(
            r'<tr class="itvsh-open-commitment" data-allocation="(\d+)">(.*?)</tr>', body, re.S
        )
    }


def close(client, year_id: int, **decisions: str):
    data = {"year": str(year_id), "csrf_token": csrf_token(client, "/logout")}
    data.update({f"decision-{key}": value for key, value in decisions.items()})
    response = client.post(f"{URL}?year={year_id}", data=data)
    set_scope(db.session, ALL)
    return response


@pytest.fixture
def staff(client, login_as):
    return login_as("staff")


def test_the_screen_lists_the_open_commitments_with_their_sums(client, staff, commitments):
    response = client.get(f"{URL}?year={commitments['year']}")
    assert response.status_code == 200
    body = text(response)
    rows = listed(body)
    # committed, paid, open
    assert rows == {
        commitments["krummwisch"]: [10_000 * EUR, 4_000 * EUR, 6_000 * EUR],
        commitments["kiel"]: [5_000 * EUR, 0, 5_000 * EUR],
    }
    totals = re.search(r"itvsh-close-totals(.*?)</tr>", body, re.S)[1]
    assert [int(c) for c in re.findall(r'data-cents="(-?\d+)"', totals)] == [
        15_000 * EUR,
        4_000 * EUR,
        11_000 * EUR,
    ]
    for allocation_id in rows:
        assert re.search(
            rf'name="decision-{allocation_id}" id="carry-{allocation_id}" value="carry" checked', body
        )
    assert "Krummwisch" in body and "Kiel" in body


def test_without_a_year_the_open_years_are_offered(client, staff, commitments):
    body = text(client.get(URL))
    assert f'href="/admin/funding/close/?year={commitments["year"]}"' in body


@pytest.mark.parametrize("year", ["99999", "abc", "-1"])
def test_an_unknown_year_is_not_found(client, staff, commitments, year):
    assert client.get(f"{URL}?year={year}").status_code == 404


def test_closing_carries_and_releases_as_chosen(client, staff, commitments):
    response = close(client, commitments["year"], **{str(commitments["kiel"]): "release"})
    assert response.status_code == 200
    body = text(response)
    summary = re.search(r"itvsh-close-summary(.*?)</section>", body, re.S)[1]
    assert re.search(rf'itvsh-carried" data-count="1" data-cents="{6_000 * EUR}"', summary)
    assert re.search(rf'itvsh-released" data-count="1" data-cents="{5_000 * EUR}"', summary)

    year = fresh(FiscalYear, commitments["year"])
    assert year.status == "closed" and year.closed_at is not None
    following = db.session.execute(select(FiscalYear).where(FiscalYear.year == year.year + 1)).scalar_one()
    carried = fresh(Allocation, commitments["krummwisch"])
    assert carried.current_year_id == following.id
    kiel = fresh(Allocation, commitments["kiel"])
    assert kiel.current_year_id == year.id
    kinds = {
        (b.allocation_id, b.fiscal_year_id, b.kind, b.committed_delta_cents)
        for b in db.session.execute(
            select(Booking).where(Booking.kind.in_(["carry_over", "release"]))
        ).scalars()
    }
    assert kinds == {
        (carried.id, year.id, "carry_over", -6_000 * EUR),
        (carried.id, following.id, "carry_over", 6_000 * EUR),
        (kiel.id, year.id, "release", -5_000 * EUR),
    }
    closed, nextyear = ledger.year_figures(db.session, year), ledger.year_figures(db.session, following)
    assert closed.open_cents == 0 and closed.committed_cents == closed.paid_cents == 7_000 * EUR
    assert nextyear.carried_in_cents == 6_000 * EUR and nextyear.committed_cents == 6_000 * EUR
    assert translated(client.application, "The fiscal year %(year)s is closed.", year=year.year) in body


def test_carry_over_is_the_default(client, staff, commitments):
    assert close(client, commitments["year"]).status_code == 200
    year = fresh(FiscalYear, commitments["year"])
    following = db.session.execute(select(FiscalYear).where(FiscalYear.year == year.year + 1)).scalar_one()
    assert ledger.year_figures(db.session, following).carried_in_cents == 11_000 * EUR
    assert fresh(Allocation, commitments["kiel"]).current_year_id == following.id


def test_a_refused_close_writes_nothing(client, staff, commitments):
    before = counts()
    response = close(client, commitments["year"], **{str(commitments["kiel"]): "burn"})
    assert response.status_code == 200
    assert translated(
        client.application, "Allocation %(id)s: choose “carry” or “release”.", id=commitments["kiel"]
    ) in text(response)
    assert counts() == before and fresh(FiscalYear, commitments["year"]).status == "open"
    # an allocation without an open commitment (fully paid) cannot be decided on
    response = close(client, commitments["year"], **{str(commitments["own"]): "release"})
    assert counts() == before and fresh(FiscalYear, commitments["year"]).status == "open"
    assert "itvsh-close-summary" not in text(response)
    assert close(client, commitments["year"], **{"abc": "carry"}).status_code == 400
    assert counts() == before


def test_a_closed_year_is_not_closed_again(client, staff, commitments):
    assert close(client, commitments["year"]).status_code == 200
    before = counts()
    response = close(client, commitments["year"])
    assert response.status_code == 200
    body = text(response)
    assert translated(client.application, "Only an open year can be closed.") in body
    assert "itvsh-close-form" not in body and counts() == before
    assert 'class="alert alert-info itvsh-not-open"' in text(client.get(f"{URL}?year={commitments['year']}"))


def test_auditors_see_the_list_but_may_not_close(client, login_as, commitments):
    login_as("auditor")
    body = text(client.get(f"{URL}?year={commitments['year']}"))
    assert len(listed(body)) == 2
    assert 'type="submit"' not in body.split("itvsh-close-form")[1]
    before = counts()
    assert close(client, commitments["year"]).status_code == 403
    assert counts() == before and fresh(FiscalYear, commitments["year"]).status == "open"


def test_municipality_users_are_refused(client, login_as, commitments):
    login_as("municipality", KRUMMWISCH)
    assert client.get(f"{URL}?year={commitments['year']}").status_code == 403
    assert close(client, commitments["year"]).status_code == 403
    assert fresh(FiscalYear, commitments["year"]).status == "open"


def test_the_dates_of_the_carry_over(client, staff, commitments):
    """The halves are booked on 31 December and 1 January."""
    close(client, commitments["year"])
    year = fresh(FiscalYear, commitments["year"])
    days = {
        b.booked_on for b in db.session.execute(select(Booking).where(Booking.kind == "carry_over")).scalars()
    }
    assert days == {date(year.year, 12, 31), date(year.year + 1, 1, 1)}


def test_the_list_costs_the_same_statements_for_few_and_many_commitments(client, staff, commitments):
    from tests.api.test_query_count import recorded_statements

    def measured() -> int:
        db.session.expunge_all()
        with recorded_statements() as seen:
            response = client.get(f"{URL}?year={commitments['year']}")
        assert response.status_code == 200
        set_scope(db.session, ALL)
        return len(seen)

    few = measured()
    year = fresh(FiscalYear, commitments["year"])
    gemeinden = {
        m.key: m
        for m in db.session.execute(
            select(Municipality)
            .where(Municipality.kind == "gemeinde", Municipality.key != NON_MEMBER)
            .order_by(Municipality.key)
            .limit(25)
        ).scalars()
    }
    for key in gemeinden:
        allocate(year, "zuweisungen", key, 100 * EUR, members=gemeinden)
    db.session.commit()
    many = measured()
    assert len(listed(text(client.get(f"{URL}?year={commitments['year']}")))) == 27
    assert few == many
