"""The funding demo on a fresh migrated database: it loads through the services, a second run
creates nothing, every year's figures keep the ledger's limits, past years are closed, nothing goes
to a municipality on a day it is not a member (Ottendorf), every booking lies in its year and not
in the future, and the audit chain verifies. Also loaded "early in a year" (a moved today), where
the current year's dates must squeeze into the days gone by."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import case, func, select

from itvsh import create_app
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import DEMO_LOGINS, FUNDING_FROM, REJOINED, STATEWIDE_YEAR, load_demo
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    Distribution,
    FiscalYear,
    RecipientKind,
    YearStatus,
)
from itvsh.tenants.models import LOCAL_KINDS, Membership, Municipality
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for

TODAY = date.today()
LEFT, REJOINED_ON = date(2021, 1, 1), date(2023, 7, 1)  # Ottendorf's gap in the demo


def _load(tmp_path_factory, label: str, today: date | None = None):
    url = migrated_database(tmp_path_factory, label)
    app = create_app(config_for(url))
    with app.app_context():
        created = load_demo(db.session, today=today)
        db.session.commit()
        db.session.remove()
    return url, app, created


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A fresh database with the demo loaded once (committed); tests read it in an app context."""
    url, app, created = _load(tmp_path_factory, "demo")
    yield app, created
    with app.app_context():
        db.engine.dispose()
    drop_database(url)


@pytest.fixture
def session(demo):
    app, _created = demo
    with app.app_context():
        set_scope(db.session, ALL)
        yield db.session
        db.session.rollback()
        db.session.remove()


def _count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_the_demo_reports_what_it_made(demo):
    _app, created = demo
    years = TODAY.year - FUNDING_FROM + 1
    assert f"{years} fiscal years" in created
    assert any(item.endswith(" allocations") and int(item.split()[0]) > 1000 for item in created)
    assert any(item.endswith(" bookings") and int(item.split()[0]) > 2000 for item in created)


def test_a_second_run_creates_nothing(demo, session):
    before = {model: _count(session, model) for model in (FiscalYear, Allocation, Booking, AuditEvent)}
    assert load_demo(session) == []
    session.flush()
    assert {model: _count(session, model) for model in before} == before
    session.rollback()  # end this transaction (SQLite: its write lock) before the command runs
    app, _ = demo
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    set_scope(session, ALL)
    assert {model: _count(session, model) for model in before} == before


def test_the_years_past_are_closed_and_the_current_one_open(session):
    years = session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars().all()
    assert [y.year for y in years] == list(range(FUNDING_FROM, TODAY.year + 1))
    for year in years:
        assert year.appropriation_cents == 150_000_000
        assert [c.code for c in year.categories] == ["zuweisungen", "projekte", "personal", "infrastruktur"]
        expected = YearStatus.OPEN if year.year == TODAY.year else YearStatus.CLOSED
        assert year.status == expected, year.year


def test_every_year_keeps_the_limits(session):
    for year in session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars():
        figures = ledger.year_figures(session, year)
        assert 0 < figures.committed_cents <= figures.available_cents, year.year
        assert 0 < figures.paid_cents <= figures.committed_cents, year.year
        for category in year.categories:
            assert ledger.category_committed(session, year, category) <= category.planned_cents
        if year.status == YearStatus.CLOSED:
            assert ledger.open_commitments(session, year) == []  # all carried or released
    # per allocation, over all its bookings and within each year: 0 <= paid <= committed
    rows = session.execute(
        select(
            Booking.allocation_id,
            Booking.fiscal_year_id,
            func.sum(Booking.committed_delta_cents),
            func.sum(Booking.paid_delta_cents),
        ).group_by(Booking.allocation_id, Booking.fiscal_year_id)
    ).all()
    assert rows
    for allocation_id, year_id, committed, paid in rows:
        assert 0 <= paid <= committed, (allocation_id, year_id)
    totals = session.execute(
        select(
            Allocation.id,
            Allocation.amount_cents,
            func.sum(Booking.committed_delta_cents),
            func.sum(Booking.paid_delta_cents),
        )
        .join(Booking, Booking.allocation_id == Allocation.id)
        .group_by(Allocation.id, Allocation.amount_cents)
    ).all()
    for allocation_id, amount, committed, paid in totals:
        assert 0 <= paid <= committed <= amount, allocation_id


def test_statuses_match_the_bookings(session):
    rows = session.execute(
        select(
            Allocation.status,
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .outerjoin(Booking, Booking.allocation_id == Allocation.id)
        .group_by(Allocation.id, Allocation.status)
    ).all()
    for status, committed, paid in rows:
        if status == AllocationStatus.DRAFT:
            assert (committed, paid) == (0, 0)
        elif status == AllocationStatus.APPROVED:
            assert committed > 0 and paid == 0
        elif status == AllocationStatus.PARTIALLY_PAID:
            assert 0 < paid < committed
        elif status in (AllocationStatus.PAID, AllocationStatus.SETTLED):
            assert 0 < paid == committed
    statuses = {status for status, _c, _p in rows}
    assert statuses == {s.value for s in AllocationStatus}  # every stage of the lifecycle is shown


def test_the_ledger_shows_every_kind_of_booking(session):
    kinds = dict(session.execute(select(Booking.kind, func.count()).group_by(Booking.kind)).all())
    assert set(kinds) == {k.value for k in BookingKind}
    assert 1 <= kinds[BookingKind.REVERSAL] <= 10  # a few
    notes = session.execute(select(Booking.note).where(Booking.kind == BookingKind.REVERSAL)).scalars()
    assert all(note.strip() for note in notes)
    # both halves of every carry-over: out of a closed year, into the next on 1 January
    halves = session.execute(
        select(Booking, FiscalYear.year)
        .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
        .where(Booking.carried_from_id.is_not(None))
    ).all()
    assert halves
    for into, year in halves:
        assert into.booked_on == date(year, 1, 1)
        assert into.amount_cents == session.get(Booking, into.carried_from_id).amount_cents


def test_every_booking_lies_in_its_year_and_not_in_the_future(session):
    rows = session.execute(
        select(Booking.id, Booking.booked_on, FiscalYear.year).join(
            FiscalYear, FiscalYear.id == Booking.fiscal_year_id
        )
    ).all()
    for booking_id, booked_on, year in rows:
        assert booked_on.year == year and booked_on <= TODAY, booking_id
    received = session.execute(
        select(Allocation.proof_of_use_received).where(Allocation.proof_of_use_received.is_not(None))
    ).scalars()
    assert all(day <= TODAY for day in received)


def test_one_distribution_a_year_per_capita_once_to_all_members(session):
    distributions = session.execute(
        select(Distribution, FiscalYear.year).join(FiscalYear, FiscalYear.id == Distribution.fiscal_year_id)
    ).all()
    assert sorted(year for _d, year in distributions) == list(range(FUNDING_FROM, TODAY.year + 1))
    for distribution, year in distributions:
        assert distribution.method == "per_capita"
        shares = session.execute(
            select(func.sum(Allocation.amount_cents), func.count()).where(
                Allocation.distribution_id == distribution.id
            )
        ).one()
        assert shares == (distribution.total_cents, distribution.recipients), year
    statewide = next(d for d, year in distributions if year == STATEWIDE_YEAR)
    if TODAY.year >= STATEWIDE_YEAR:
        local_members_then = session.execute(
            select(func.count(func.distinct(Membership.municipality_id)))
            .join(Municipality, Municipality.id == Membership.municipality_id)
            .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
            .where(Membership.joined_on <= date(STATEWIDE_YEAR, 3, 16))
            .where(Membership.left_on.is_(None) | (Membership.left_on > date(STATEWIDE_YEAR, 3, 16)))
        ).scalar_one()
        assert statewide.recipients == local_members_then > 1000


def test_nothing_goes_to_a_municipality_while_it_is_not_a_member(session):
    ottendorf = session.execute(select(Municipality).where(Municipality.key == REJOINED)).scalar_one()
    years = session.execute(
        select(FiscalYear.year)
        .join(Allocation, Allocation.fiscal_year_id == FiscalYear.id)
        .where(Allocation.municipality_id == ottendorf.id)
    ).scalars()
    years = set(years)
    assert years, "Ottendorf gets money while it is a member"
    assert not years & {2021, 2022}
    booked = session.execute(
        select(Booking.booked_on).where(
            Booking.municipality_id == ottendorf.id,
            Booking.booked_on >= LEFT,
            Booking.booked_on < REJOINED_ON,
        )
    ).all()
    assert booked == []
    # and in general: every commitment's recipient was a member on the day it was booked
    not_members = session.execute(
        select(func.count())
        .select_from(Booking)
        .where(Booking.kind == BookingKind.COMMITMENT, Booking.municipality_id.is_not(None))
        .where(
            ~select(Membership.id)
            .where(
                Membership.municipality_id == Booking.municipality_id,
                Membership.joined_on <= Booking.booked_on,
                Membership.left_on.is_(None) | (Membership.left_on > Booking.booked_on),
            )
            .exists()
        )
    ).scalar_one()
    assert not_members == 0


def test_the_demo_tenants_and_the_federation_receive_money(session):
    keys = {tenant for _email, role, tenant, _password in DEMO_LOGINS if role == "municipality"}
    received = dict(
        session.execute(
            select(Municipality.key, func.sum(Booking.paid_delta_cents))
            .join(Booking, Booking.municipality_id == Municipality.id)
            .where(Municipality.key.in_(keys))
            .group_by(Municipality.key)
        ).all()
    )
    assert set(received) == keys and all(paid > 0 for paid in received.values())
    own = dict(
        session.execute(
            select(BudgetCategory.code, func.sum(Booking.paid_delta_cents))
            .join(Booking, Booking.category_id == BudgetCategory.id)
            .join(Allocation, Allocation.id == Booking.allocation_id)
            .where(Allocation.recipient_kind == RecipientKind.FEDERATION)
            .group_by(BudgetCategory.code)
        ).all()
    )
    assert set(own) == {"personal", "infrastruktur"} and all(paid > 0 for paid in own.values())
    ämter_and_kreise = session.execute(
        select(func.count(func.distinct(Allocation.municipality_id)))
        .join(Municipality, Municipality.id == Allocation.municipality_id)
        .where(Municipality.kind.in_(["amt", "kreis"]))
    ).scalar_one()
    assert ämter_and_kreise >= 6


def test_the_current_year_has_drafts_approvals_and_partial_payments(session):
    current = ledger.get_year(session, TODAY.year)
    statuses = dict(
        session.execute(
            select(Allocation.status, func.count())
            .where(Allocation.fiscal_year_id == current.id)
            .group_by(Allocation.status)
        ).all()
    )
    for status in (AllocationStatus.DRAFT, AllocationStatus.APPROVED, AllocationStatus.PARTIALLY_PAID):
        assert statuses.get(status.value, 0) > 0, status
    figures = ledger.year_figures(session, current)
    assert figures.carried_in_cents > 0 and figures.open_cents > 0


def test_some_allocations_are_settled_with_their_proof_of_use(session):
    settled = (
        session.execute(select(Allocation).where(Allocation.status == AllocationStatus.SETTLED))
        .scalars()
        .all()
    )
    assert settled
    for allocation in settled:
        assert allocation.proof_of_use_received is not None
        assert allocation.decision_date <= allocation.proof_of_use_received
    due = session.execute(
        select(func.sum(case((Allocation.proof_of_use_due.is_not(None), 1), else_=0)), func.count()).where(
            Allocation.recipient_kind == RecipientKind.MEMBER
        )
    ).one()
    assert due[0] == due[1]  # every member allocation says when its proof of use is due


def test_the_audit_chain_verifies(demo, session):
    result = verify_chain(session)
    assert result.ok, result.problem
    assert result.count == _count(session, AuditEvent)
    booking_events = session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "booking")
    ).scalar_one()
    assert booking_events == _count(session, Booking) > 2000  # every booking is an audit event
    session.rollback()  # end this transaction (SQLite: its write lock) before the command runs
    app, _ = demo
    cli = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert cli.exit_code == 0, cli.output


@pytest.mark.parametrize("today", [date(FUNDING_FROM, 1, 1), date(FUNDING_FROM + 1, 2, 3)])
def test_early_in_a_year_the_current_year_lies_in_the_days_gone_by(tmp_path_factory, today):
    """The demo loaded on 1 January of its first year, and early in its second (one closed year
    with a carry-over): nothing is booked after ``today``, the current year stays open."""
    url, app, created = _load(tmp_path_factory, f"early{today.year}", today)
    try:
        with app.app_context():
            set_scope(db.session, ALL)
            assert f"{today.year - FUNDING_FROM + 1} fiscal years" in created
            years = db.session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars().all()
            assert [(y.year, y.status) for y in years] == [
                *((y, "closed") for y in range(FUNDING_FROM, today.year)),
                (today.year, "open"),
            ]
            last_day = db.session.execute(select(func.max(Booking.booked_on))).scalar_one()
            assert last_day <= today
            booked_in = set(
                db.session.execute(
                    select(FiscalYear.year).join(Booking, Booking.fiscal_year_id == FiscalYear.id)
                ).scalars()
            )
            assert booked_in == {y.year for y in years}
            assert verify_chain(db.session).ok
            db.session.remove()
            db.engine.dispose()
    finally:
        drop_database(url)
