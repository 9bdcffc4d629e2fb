"""Fixtures shared by the staffing tests: the members of the shipped list (from the funding
fixtures), a person in the staff register and a secondment of theirs. Rolled back after each test."""

from __future__ import annotations

from datetime import date

import pytest

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import Secondment, StaffMember
from tests.funding.conftest import (  # noqa: F401  (fixtures re-used here)
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    NON_MEMBER,
    category,
    members,
    open_year,
)

ACTOR = "staffing-test"
SECONDED_FROM = date(2019, 1, 1)


@pytest.fixture
def person(app, members) -> StaffMember:  # noqa: F811  (the fixture, not the import)
    """Anna Beispiel, full-time personnel cost 80,000.00 € a year."""
    set_scope(db.session, ALL)
    member = services.create_staff_member(
        db.session,
        ACTOR,
        name="Anna Beispiel",
        work_email="anna.beispiel@itv-sh.example",
        home_authority="Ministerium für Digitalisierung",
        annual_cost_cents=80_000_00,
    )
    db.session.commit()
    set_scope(db.session, ALL)
    return member


@pytest.fixture
def secondment(person) -> Secondment:
    """Anna's Abordnung from 2019-01-01, open end, full time, cost borne by the federation."""
    secondment = services.create_secondment(
        db.session,
        ACTOR,
        staff_member=person,
        instrument="abordnung",
        starts_on=SECONDED_FROM,
        ends_on=None,
        fte=1000,
        cost_bearer="federation",
        legal_reference="§ 14 LBG",
    )
    db.session.commit()
    set_scope(db.session, ALL)
    return secondment
