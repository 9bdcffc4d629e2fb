"""Fixtures shared by the funding tests: the shipped municipality list with members, and an open
fiscal year with its default categories. Everything is rolled back after each test (``app``)."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pytest
from sqlalchemy import select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import BudgetCategory, FiscalYear
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import LOCAL_KINDS, Municipality

ACTOR = "funding-test"
# Members used by name in the tests; NON_MEMBER is imported but never joins.
KIEL, KRUMMWISCH, AMT_ACHTERWEHR, KREIS_RD_ECK, NON_MEMBER = (
    "01002000",
    "01058093",
    "010585803",
    "01058",
    "01051001",
)


@pytest.fixture
def members(app):
    """The 1,201 tenants of the shipped list; every one but NON_MEMBER a member since 2019-01-01."""
    set_scope(db.session, ALL)
    shipped = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()
    import_municipalities(db.session, ACTOR, shipped, source="test")
    everyone = db.session.execute(select(Municipality).where(Municipality.key != NON_MEMBER)).scalars().all()
    tenant_services.join_many(db.session, ACTOR, everyone, date(2019, 1, 1))
    db.session.commit()
    set_scope(db.session, ALL)
    return {m.key: m for m in db.session.execute(select(Municipality)).scalars()}


def local_member_count() -> int:
    """How many member Gemeinden (incl. Städte) the ``members`` fixture made."""
    set_scope(db.session, ALL)
    return len(
        db.session.execute(
            select(Municipality.id).where(
                Municipality.kind.in_([k.value for k in LOCAL_KINDS]), Municipality.key != NON_MEMBER
            )
        ).all()
    )


@pytest.fixture
def open_year(app, members) -> FiscalYear:
    """The current calendar year, open, with 1,500,000.00 € and the default categories."""
    set_scope(db.session, ALL)
    year = ledger.create_fiscal_year(db.session, ACTOR, date.today().year)
    ledger.open_year(db.session, ACTOR, year)
    db.session.commit()
    set_scope(db.session, ALL)
    return year


def category(year: FiscalYear, code: str = "zuweisungen") -> BudgetCategory:
    return db.session.execute(
        select(BudgetCategory).where(BudgetCategory.fiscal_year_id == year.id, BudgetCategory.code == code)
    ).scalar_one()
