"""The admin list and detail pages and the portal run the same number of SQL statements with 100
and with 10,000 municipalities (synthetic ones, written with Core inserts), and a list page stays
within four statements — the user, the Kreis/Amt filter options, the count and the page. Counted
with a ``before_cursor_execute`` listener on the engine, never timed."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, insert, select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact
from tests.api.test_query_count import recorded_statements

KREISE = [f"0190{k}" for k in range(1, 5)]  # synthetic: no real Kreis key begins with 019
AMTER_PER_KREIS = 4
GEMEINDE = "01900000"  # the first synthetic Gemeinde: in the first Amt of the first Kreis
AMT = f"{KREISE[0]}5000"
KREIS = KREISE[0]
LIST_LIMIT = 4


def _gemeinde_key(n: int) -> str:
    return f"01{900_000 + n:06d}"


def _hierarchy() -> None:
    """Four Kreise with four Ämter each (20 tenants), once per test."""
    table = Municipality.__table__
    db.session.execute(insert(table), [{"key": k, "name": f"Kreis {k}", "kind": "kreis"} for k in KREISE])
    kreis_ids = dict(db.session.execute(select(table.c.key, table.c.id).where(table.c.kind == "kreis")).all())
    db.session.execute(
        insert(table),
        [
            {"key": f"{k}5{a:03d}", "name": f"Amt {k}-{a}", "kind": "amt", "kreis_id": kreis_ids[k]}
            for k in KREISE
            for a in range(AMTER_PER_KREIS)
        ],
    )


def grow(total: int) -> None:
    """Add synthetic Gemeinden (with memberships, and contacts for some) until there are ``total``
    municipalities."""
    table = Municipality.__table__
    have = db.session.execute(select(func.count()).select_from(table)).scalar_one()
    if have == 0:
        _hierarchy()
        have = len(KREISE) * (1 + AMTER_PER_KREIS)
    ids = dict(
        db.session.execute(select(table.c.key, table.c.id).where(table.c.kind.in_(["kreis", "amt"]))).all()
    )
    first = db.session.execute(
        select(func.count()).select_from(table).where(table.c.kind == "gemeinde")
    ).scalar_one()
    rows = []
    for n in range(first, first + total - have):
        kreis = KREISE[n % len(KREISE)]
        amt = f"{kreis}5{(n // len(KREISE)) % AMTER_PER_KREIS:03d}"
        rows.append(
            {
                "key": _gemeinde_key(n),
                "name": f"Gemeinde {n:05d}",
                "kind": "gemeinde",
                "kreis_id": ids[kreis],
                "amt_id": None if n % 5 == 4 else ids[amt],  # some amtsfrei
                "population": 100 + (n * 37) % 5000,
                "population_date": date(2019, 12, 31),
                "area_km2": 10 + n % 90,
                "postcode": f"{24000 + n % 1000:05d}",
            }
        )
    db.session.execute(insert(table), rows)
    new_ids = db.session.execute(
        select(table.c.id, table.c.key).where(table.c.key.in_([r["key"] for r in rows]))
    ).all()
    db.session.execute(
        insert(Membership.__table__),
        [
            {"municipality_id": i, "joined_on": date(2019, 1, 1), "note": ""}
            for i, key in new_ids
            if int(key[2:]) % 7 != 3  # some are not members
        ],
    )
    db.session.execute(
        insert(MunicipalityContact.__table__),
        [
            {"municipality_id": i, "role": "IT", "name": f"Kontakt {key}", "email": f"it@{key}.example"}
            for i, key in new_ids
            if int(key[2:]) % 3 == 0
        ],
    )
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(table)).scalar_one() == total


def _parent_contacts() -> None:
    set_scope(db.session, ALL)
    for key in (AMT, KREIS):
        municipality_id = db.session.execute(
            select(Municipality.id).where(Municipality.key == key)
        ).scalar_one()
        db.session.execute(
            insert(MunicipalityContact.__table__),
            [{"municipality_id": municipality_id, "name": f"Kontakt {key}", "email": f"it@{key}.example"}],
        )
    db.session.commit()


def client_for(app, user):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
    return client


def statements(client, url: str) -> tuple[int, str]:
    db.session.expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(seen), response.get_data(as_text=True)


def _id(key: str) -> int:
    return db.session.execute(select(Municipality.id).where(Municipality.key == key)).scalar_one()


def _list_count(body: str) -> int:
    return int(re.search(r'class="nav-link active">[^<]*?\((\d+)\)', body)[1])


@pytest.fixture
def measured(app, make_user):
    """Pages measured at 100 and at 10,000 municipalities: {page: (count at 100, count at 10,000)}."""
    set_scope(db.session, ALL)
    grow(100)
    _parent_contacts()
    staff = client_for(app, make_user("staff"))
    portal = {key: client_for(app, make_user("municipality", key)) for key in (GEMEINDE, AMT, KREIS)}
    pages = {
        "admin list": (staff, "/admin/municipalities/"),
        "admin list, Kreis + member filter": (
            staff,
            f"/admin/municipalities/?flt0_kreis={KREIS}&flt1_member=1",
        ),
        "admin list, by population": (staff, "/admin/municipalities/?sort=5&desc=1"),
        "admin list, search": (staff, "/admin/municipalities/?search=Gemeinde+0"),
        "admin detail, Gemeinde": (staff, f"/admin/municipalities/details/?id={_id(GEMEINDE)}"),
        "admin detail, Amt": (staff, f"/admin/municipalities/details/?id={_id(AMT)}"),
        "admin detail, Kreis": (staff, f"/admin/municipalities/details/?id={_id(KREIS)}"),
        "portal, Gemeinde": (portal[GEMEINDE], "/portal/"),
        "portal, Amt": (portal[AMT], "/portal/"),
        "portal, Amt's Gemeinde": (portal[AMT], f"/portal/municipalities/{GEMEINDE}"),
        "portal, Kreis": (portal[KREIS], "/portal/"),
    }
    small = {name: statements(client, url) for name, (client, url) in pages.items()}
    set_scope(db.session, ALL)
    grow(10_000)
    large = {name: statements(client, url) for name, (client, url) in pages.items()}
    return small, large


def test_pages_run_the_same_statements_for_100_and_10000_municipalities(measured):
    small, large = measured
    # not vacuous: the large run really lists and links many more tenants
    assert _list_count(small["admin list"][1]) == 100 and _list_count(large["admin list"][1]) == 10_000
    assert large["admin detail, Kreis"][1].count("/admin/municipalities/details/?id=") > 2000
    assert large["portal, Amt"][1].count('href="/portal/municipalities/') > 400
    counts = {name: (small[name][0], large[name][0]) for name in small}
    print("\nSQL statements per page (100 / 10,000 municipalities):")
    for name, (at_100, at_10000) in counts.items():
        print(f"  {name:<36} {at_100:>2} / {at_10000:>2}")
    assert all(at_100 == at_10000 for at_100, at_10000 in counts.values()), counts
    for name, (count, _) in counts.items():
        assert count > 0, name
        if name.startswith("admin list"):
            assert count <= LIST_LIMIT, (name, count)


def test_the_counter_notices_a_query_per_row_on_the_list(app, make_user, monkeypatch):
    """Proves the measurement can fail: a column that lazy-loads each row's memberships costs one
    statement per listed row."""
    set_scope(db.session, ALL)
    grow(100)
    staff = client_for(app, make_user("staff"))
    view = app.extensions["itvsh_admin_views"]["municipalities"]
    formatters = {**view.column_formatters, "name": lambda v, c, m, n: f"{m.name} {len(m.memberships)}"}
    monkeypatch.setattr(view, "column_formatters", formatters)
    count, _ = statements(staff, "/admin/municipalities/")
    assert count == LIST_LIMIT + view.page_size
