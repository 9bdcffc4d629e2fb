"""The public OZG monitoring in a real browser: no login, German, the state-wide figure shown as the
tallies say, the search without JavaScript, the open data reachable, and no CSP violations."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from tests.browser.helpers import csp_violations, html_lang

pytestmark = pytest.mark.browser

KIEL, KRUMMWISCH = "01002000", "01058093"
SERVICES = (("10000", "Elterngeld", "Familie & Kind"), ("10169", "Führerschein", "Mobilität & Reisen"))


def _german(tally) -> str:
    return f"{tally.compliant / tally.possible * 100:.1f}".replace(".", ",") + "\u00a0%"


def _seed(live_server) -> tuple[str, str]:
    """Two members with known statuses, the tallies rebuilt and a snapshot; returns the German
    text of the state-wide share and of Krummwisch's share as the pages must show them (from the
    stored tallies)."""
    from itvsh.demo import ensure_municipality
    from itvsh.projects import ozg
    from itvsh.projects.models import OzgService, OzgTally
    from itvsh.tenants import services as tenant_services

    with live_server.app.app_context():
        set_scope(db.session, ALL)
        members = {}
        for key in (KIEL, KRUMMWISCH):
            municipality, _created = ensure_municipality(db.session, key)
            if not tenant_services.is_current_member(db.session, municipality.id):
                tenant_services.join(db.session, "browser-test", municipality, date(2019, 1, 1))
            members[key] = municipality
        services = {}
        for ozg_id, name, topic in SERVICES:
            service = db.session.execute(
                select(OzgService).where(OzgService.ozg_id == ozg_id)
            ).scalar_one_or_none()
            if service is None:
                service = OzgService(ozg_id=ozg_id, name=name, topic=topic)
                db.session.add(service)
                db.session.flush()
            services[ozg_id] = service
        ozg.recompute_tallies(db.session)
        ozg.set_status(db.session, "browser-test", members[KIEL], services["10000"], maturity=3)
        ozg.set_status(db.session, "browser-test", members[KIEL], services["10169"], maturity=4)
        ozg.set_status(db.session, "browser-test", members[KRUMMWISCH], services["10169"], maturity=3)
        ozg.take_snapshot(db.session, "browser-test", date(2024, 1, 1))
        shares = [
            _german(
                db.session.execute(
                    select(OzgTally).where(
                        OzgTally.scope == scope, OzgTally.scope_id == scope_id, OzgTally.topic == ""
                    )
                ).scalar_one()
            )
            for scope, scope_id in (("land", 0), ("municipality", members[KRUMMWISCH].id))
        ]
        db.session.commit()
        db.session.remove()
    return shares[0], shares[1]


def test_public_page_shows_the_state_wide_figure(page, console, live_server):
    land_share, krummwisch_share = _seed(live_server)

    response = page.goto("/monitoring/")

    assert response.status == 200
    assert page.url == f"{live_server.url}/monitoring/"  # no login asked for
    assert html_lang(page) == "de"
    expect(page.locator("h1")).to_have_count(1)
    figure = page.locator("#land-share")
    expect(figure).to_be_visible()
    expect(figure).to_have_text(land_share)
    expect(page.locator("svg.itvsh-trend")).to_be_visible()

    page.locator("input#q").fill("Krummwisch")
    with page.expect_navigation():
        page.locator("form[role=search] button[type=submit]").click()
    row = page.locator(f"tr[data-ags='{KRUMMWISCH}']")
    expect(row).to_be_visible()
    with page.expect_navigation():
        row.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("Krummwisch")
    expect(page.locator("#municipality-share")).to_have_text(krummwisch_share)

    download = page.request.get(f"{live_server.url}/monitoring/ozg.csv")
    assert download.status == 200
    assert download.text().splitlines()[0] == (
        "ags,municipality,kreis,ozg_id,service,themenfeld,maturity,maturity_model,online_since"
    )
    assert csp_violations(console) == []
