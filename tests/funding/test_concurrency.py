"""Concurrent writers of the ledger, each in its own thread, app context, session and connection,
released together by a barrier, on a committed database (a SQLite file, or PostgreSQL with
ITVSH_TEST_DATABASE_URL): 20 approvals that together want more than the year's free money, and 20
disbursements on one allocation that together exceed its commitment. The limits hold, every refusal
is a clean RuleViolation, nothing is half-written, and the audit chain verifies."""

from __future__ import annotations

import threading
from datetime import date
from importlib import resources

import pytest
from sqlalchemy import func, select

from itvsh import create_app
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.money import format_money
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, AllocationStatus, Booking, BudgetCategory, FiscalYear
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import LOCAL_KINDS, Municipality
from tests.conftest import TEST_DATABASE_URL, drop_database, migrated_database
from tests.conftest import test_config as config_for

WRITERS = 20
ACTOR = "race-test"
APPROPRIATION = 150_000_000
# Alternating 80,000 € and 100,000 €: 1.8 M€ asked for, 1.5 M€ there.
AMOUNTS = [8_000_000 if n % 2 else 10_000_000 for n in range(WRITERS)]


@pytest.fixture
def race(tmp_path_factory):
    """A committed database with the shipped municipalities (20 of them members), the current year
    open with all of its appropriation planned in one category, and 20 draft allocations."""
    url = migrated_database(tmp_path_factory, "funding_race")
    # one pooled connection per writer, so all of them really run side by side
    app = create_app(config_for(url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": WRITERS + 2, "max_overflow": 0}))
    with app.app_context():
        set_scope(db.session, ALL)
        shipped = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()
        import_municipalities(db.session, ACTOR, shipped, source="test")
        gemeinden = (
            db.session.execute(
                select(Municipality)
                .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
                .order_by(Municipality.key)
                .limit(WRITERS)
            )
            .scalars()
            .all()
        )
        tenant_services.join_many(db.session, ACTOR, gemeinden, date(2019, 1, 1))
        year = ledger.create_fiscal_year(db.session, ACTOR, date.today().year)
        ledger.open_year(db.session, ACTOR, year)
        categories = {c.code: c for c in year.categories}
        for code in ("projekte", "personal", "infrastruktur"):
            ledger.save_category(
                db.session,
                ACTOR,
                categories[code],
                year,
                code=code,
                name=categories[code].name,
                planned_cents=0,
            )
        zuweisungen = categories["zuweisungen"]
        ledger.save_category(
            db.session,
            ACTOR,
            zuweisungen,
            year,
            code="zuweisungen",
            name=zuweisungen.name,
            planned_cents=APPROPRIATION,
        )
        ids = []
        for municipality, amount in zip(gemeinden, AMOUNTS, strict=True):
            allocation = ledger.create_allocation(
                db.session,
                ACTOR,
                fiscal_year=year,
                category=zuweisungen,
                recipient_kind="member",
                municipality=municipality,
                purpose=f"Digitalisierung {municipality.name}",
                amount_cents=amount,
            )
            ids.append(allocation.id)
        db.session.commit()
        # open the writers' connections now, so that none has to be made after the barrier
        connections = [db.engine.connect() for _ in range(WRITERS)]
        for connection in connections:
            connection.close()
        db.session.remove()
    try:
        yield app, ids
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)


def _run_together(app, work, arguments) -> dict:
    """Run ``work(argument)`` in one thread per argument, each in its own app context (so its own
    session and connection), all released at once; return {argument: "ok" | RuleViolation}."""
    start = threading.Barrier(len(arguments))
    outcomes: dict = {}
    errors: list[BaseException] = []

    def writer(argument) -> None:
        try:
            with app.app_context():
                start.wait(timeout=60)
                set_scope(db.session, ALL)
                try:
                    work(argument)
                    db.session.commit()
                    outcomes[argument] = "ok"
                except RuleViolation as refusal:
                    db.session.rollback()  # as the views do
                    outcomes[argument] = refusal
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(argument,)) for argument in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a writer hangs"
    assert errors == [], errors
    assert set(outcomes) == set(arguments)
    return outcomes


def _assert_trail_intact() -> None:
    bookings = db.session.execute(select(Booking.id).order_by(Booking.id)).scalars().all()
    audited = (
        db.session.execute(
            select(AuditEvent.entity_id).where(AuditEvent.entity == "booking").order_by(AuditEvent.seq)
        )
        .scalars()
        .all()
    )
    assert sorted(int(i) for i in audited) == bookings  # every booking exactly one audit event
    seqs = db.session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
    assert seqs == list(range(1, len(seqs) + 1))
    result = verify_chain(db.session)
    assert result.ok, result.problem
    assert result.count == len(seqs)


def test_parallel_approvals_never_exceed_the_free_money(race):
    app, ids = race

    def approve(allocation_id: int) -> None:
        allocation = db.session.get(Allocation, allocation_id)
        ledger.approve(db.session, ACTOR, allocation)

    outcomes = _run_together(app, approve, ids)
    approved = [i for i in ids if outcomes[i] == "ok"]
    refused = {i: outcome for i, outcome in outcomes.items() if outcome != "ok"}
    assert approved and refused  # the money runs out on the way

    with app.app_context():
        set_scope(db.session, ALL)
        year = db.session.execute(select(FiscalYear)).scalar_one()
        figures = ledger.year_figures(db.session, year)
        amounts = dict(zip(ids, AMOUNTS, strict=True))
        assert figures.available_cents == APPROPRIATION
        assert figures.committed_cents == sum(amounts[i] for i in approved)
        assert figures.committed_cents <= figures.available_cents
        zuweisungen = db.session.execute(
            select(BudgetCategory).where(BudgetCategory.code == "zuweisungen")
        ).scalar_one()
        assert ledger.category_committed(db.session, year, zuweisungen) == figures.committed_cents
        # no refusal was needless: each asked for more than is free even now
        assert all(amounts[i] > figures.free_cents for i in refused)
        assert figures.free_cents < min(AMOUNTS)
        for allocation_id, refusal in refused.items():
            assert isinstance(refusal, RuleViolation)
            assert refusal.field == "amount_cents"
            assert str(year.year) in refusal.message
            assert format_money(amounts[allocation_id], "de") in refusal.message  # what was asked for
        # nothing half-written
        for allocation_id in ids:
            allocation = db.session.get(Allocation, allocation_id)
            bookings = (
                db.session.execute(select(Booking).where(Booking.allocation_id == allocation_id))
                .scalars()
                .all()
            )
            if allocation_id in refused:
                assert allocation.status == AllocationStatus.DRAFT
                assert allocation.decision_date is None
                assert bookings == []
            else:
                assert allocation.status == AllocationStatus.APPROVED
                assert [(b.kind, b.amount_cents, b.committed_delta_cents) for b in bookings] == [
                    ("commitment", amounts[allocation_id], amounts[allocation_id])
                ]
        status_events = db.session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "status")
        ).scalar_one()
        assert status_events == len(approved)
        _assert_trail_intact()
        db.session.remove()


COMMITMENT, PAYMENT = 1_000_000, 70_000  # 20 payments of 700 € on a commitment of 10,000 €


def test_parallel_disbursements_never_exceed_the_commitment(race):
    app, ids = race
    with app.app_context():
        set_scope(db.session, ALL)
        allocation = db.session.get(Allocation, ids[0])
        ledger.update_allocation(db.session, ACTOR, allocation, amount_cents=COMMITMENT)
        ledger.approve(db.session, ACTOR, allocation)
        db.session.commit()
        db.session.remove()

    def disburse(n: int) -> None:
        allocation = db.session.get(Allocation, ids[0])
        ledger.disburse(db.session, ACTOR, allocation, PAYMENT, note=f"Rate {n}")

    outcomes = _run_together(app, disburse, list(range(WRITERS)))
    paid = [n for n, outcome in outcomes.items() if outcome == "ok"]
    refused = [outcome for outcome in outcomes.values() if outcome != "ok"]
    assert len(paid) == COMMITMENT // PAYMENT == 14
    assert len(refused) == WRITERS - 14
    for refusal in refused:
        assert isinstance(refusal, RuleViolation)
        assert refusal.field == "amount_cents"
        assert format_money(COMMITMENT - 14 * PAYMENT, "de") in refusal.message  # what is still open

    with app.app_context():
        set_scope(db.session, ALL)
        allocation = db.session.get(Allocation, ids[0])
        figures = ledger.allocation_figures(db.session, allocation)
        assert (figures.committed_cents, figures.paid_cents) == (COMMITMENT, 14 * PAYMENT)
        assert allocation.status == AllocationStatus.PARTIALLY_PAID
        payments = (
            db.session.execute(
                select(Booking).where(Booking.allocation_id == allocation.id, Booking.kind == "disbursement")
            )
            .scalars()
            .all()
        )
        assert sorted(b.note for b in payments) == sorted(f"Rate {n}" for n in paid)
        assert all(b.amount_cents == PAYMENT for b in payments)
        year = db.session.execute(select(FiscalYear)).scalar_one()
        assert ledger.year_figures(db.session, year).paid_cents == 14 * PAYMENT
        _assert_trail_intact()
        db.session.remove()


def test_an_approval_checks_the_plan_as_it_is_now(race):
    """A unit of work that loaded the category earlier (a form, say) must not approve against the
    plan it saw then, when another writer has lowered it meanwhile (READ COMMITTED)."""
    if TEST_DATABASE_URL is None:
        pytest.skip(
            "SQLite: a unit of work's first read takes the write lock (BEGIN IMMEDIATE), "
            "so no one writes in between"
        )
    app, ids = race
    with app.app_context():
        set_scope(db.session, ALL)
        allocation = db.session.get(Allocation, ids[0])
        category = db.session.get(BudgetCategory, allocation.category_id)
        assert (category.planned_cents, allocation.amount_cents) == (APPROPRIATION, AMOUNTS[0])

        def lower_the_plan() -> None:
            with app.app_context():
                set_scope(db.session, ALL)
                mine = db.session.get(BudgetCategory, category.id)
                year = db.session.get(FiscalYear, mine.fiscal_year_id)
                ledger.save_category(
                    db.session,
                    "other-staff",
                    mine,
                    year,
                    code=mine.code,
                    name=mine.name,
                    planned_cents=5_000_000,
                )
                db.session.commit()

        other = threading.Thread(target=lower_the_plan)
        other.start()
        other.join(timeout=60)
        assert not other.is_alive()
        with pytest.raises(RuleViolation) as caught:
            ledger.approve(db.session, ACTOR, allocation)
        assert caught.value.field == "amount_cents"
        assert format_money(5_000_000, "de") in caught.value.message  # the plan as it is now
        db.session.rollback()
        set_scope(db.session, ALL)
        assert db.session.get(Allocation, ids[0]).status == AllocationStatus.DRAFT
        assert db.session.execute(select(func.count()).select_from(Booking)).scalar_one() == 0
        db.session.remove()


def test_a_year_close_sees_the_allocations_as_they_are_now(race):
    """The close (READ COMMITTED) works on the allocations as they are under the year's lock, not as
    its unit of work loaded them before: a payment committed meanwhile is seen in the status."""
    if TEST_DATABASE_URL is None:
        pytest.skip(
            "SQLite: a unit of work's first read takes the write lock (BEGIN IMMEDIATE), "
            "so no one writes in between"
        )
    app, ids = race
    with app.app_context():
        set_scope(db.session, ALL)
        for allocation_id in ids[:2]:
            ledger.approve(db.session, ACTOR, db.session.get(Allocation, allocation_id))
        db.session.commit()
        db.session.remove()
    with app.app_context():
        set_scope(db.session, ALL)
        year = db.session.execute(select(FiscalYear)).scalar_one()
        shown = ledger.open_commitments(db.session, year)  # e.g. the close screen's list
        assert [item.allocation.status for item in shown] == ["approved", "approved"]

        def pay() -> None:
            with app.app_context():
                set_scope(db.session, ALL)
                ledger.disburse(db.session, "other-staff", db.session.get(Allocation, ids[0]), 1_000_000)
                db.session.commit()

        other = threading.Thread(target=pay)
        other.start()
        other.join(timeout=60)
        assert not other.is_alive()
        ledger.close_year(db.session, ACTOR, year, {ids[0]: "release", ids[1]: "release"})
        db.session.commit()
        set_scope(db.session, ALL)
        events = {
            event.entity_id: (event.before, event.after)
            for event in db.session.execute(
                select(AuditEvent).where(AuditEvent.entity == "allocation", AuditEvent.action == "status")
            ).scalars()
            if event.after["status"] in ("paid", "cancelled")
        }
        assert events[str(ids[0])] == ({"status": "partially_paid"}, {"status": "paid"})
        assert events[str(ids[1])] == (
            {"status": "approved"},
            {"status": "cancelled", "reason": f"Jahresabschluss {year.year}"},
        )
        assert db.session.get(Allocation, ids[0]).status == AllocationStatus.PAID
        assert db.session.get(Allocation, ids[1]).status == AllocationStatus.CANCELLED
        _assert_trail_intact()
        db.session.remove()
