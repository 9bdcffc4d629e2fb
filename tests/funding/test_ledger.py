"""The ledger services: every limit and every transition.

Each refusal is checked three ways: the field and the message (which limit, how much is left),
nothing flushed when it is raised, and -- after the rollback the views do -- no booking, audit
event, status or figure changed. Then the lifecycle, the year-end close with carry-over and
release, reopening, appropriation and plan changes, idempotency keys, and a busy sequence after
which every booking has its audit event and the chain verifies."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.money import MAX_CENTS
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    IdempotencyKey,
    YearStatus,
)
from itvsh.tenants import services as tenant_services
from tests.funding.conftest import ACTOR, KIEL, KRUMMWISCH, NON_MEMBER, category

APPROPRIATION = 150_000_000
PLANS = {
    "zuweisungen": 90_000_000,
    "projekte": 37_500_000,
    "personal": 15_000_000,
    "infrastruktur": 7_500_000,
}


@pytest.fixture(autouse=True)
def english(app):
    """Messages in English (the German catalogue is added separately); money as €1,234.56."""
    with app.test_request_context("/"), force_locale("en"):
        yield


# --- helpers --------------------------------------------------------------------------------------


def commit() -> None:
    db.session.commit()
    set_scope(db.session, ALL)


def draft(year: FiscalYear, amount: int, *, code: str = "zuweisungen", key: str | None = KRUMMWISCH, **kw):
    municipality = tenant_services.get_by_key(db.session, key) if key else None
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=year,
        category=category(year, code),
        recipient_kind="member" if key else "federation",
        municipality=municipality,
        purpose=kw.pop("purpose", "Breitbandausbau"),
        amount_cents=amount,
        **kw,
    )
    commit()
    return allocation


def approved(year: FiscalYear, amount: int, **kw) -> Allocation:
    allocation = draft(year, amount, **kw)
    ledger.approve(db.session, ACTOR, allocation)
    commit()
    return allocation


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def state() -> dict:
    """Everything a refused call must leave as it was."""
    set_scope(db.session, ALL)
    db.session.expire_all()
    return {
        "bookings": db.session.execute(
            select(Booking.id, Booking.kind, Booking.amount_cents).order_by(Booking.id)
        ).all(),
        "events": count(AuditEvent),
        "keys": count(IdempotencyKey),
        "allocations": db.session.execute(
            select(
                Allocation.id, Allocation.status, Allocation.current_year_id, Allocation.amount_cents
            ).order_by(Allocation.id)
        ).all(),
        "years": db.session.execute(
            select(FiscalYear.id, FiscalYear.status, FiscalYear.appropriation_cents).order_by(FiscalYear.id)
        ).all(),
        "plans": db.session.execute(
            select(BudgetCategory.id, BudgetCategory.code, BudgetCategory.planned_cents).order_by(
                BudgetCategory.id
            )
        ).all(),
    }


def refused(service, *args, field: str | None = None, message: str | None = None, **kwargs) -> RuleViolation:
    """Call ``service(db.session, *args, **kwargs)``, expect a RuleViolation, and prove that nothing
    was booked when it was raised and nothing at all remains after the rollback."""
    before = state()
    with pytest.raises(RuleViolation) as caught:
        service(db.session, *args, **kwargs)
    refusal = caught.value
    assert count(Booking) == len(before["bookings"]), "a booking was flushed before the refusal"
    db.session.rollback()
    db.session.commit()  # would write any audit event still pending: there must be none
    assert state() == before
    if field is not None:
        assert refusal.field == field, refusal.message
    if message is not None:
        assert refusal.message == message
    assert refusal.as_errors() == {refusal.field or "_schema": [refusal.message]}
    return refusal


def bookings_of(allocation: Allocation) -> list[Booking]:
    set_scope(db.session, ALL)
    return list(
        db.session.execute(
            select(Booking).where(Booking.allocation_id == allocation.id).order_by(Booking.id)
        ).scalars()
    )


def single_plan(year: FiscalYear) -> BudgetCategory:
    """All of the appropriation planned in Zuweisungen: the year's limit is the one that binds."""
    for code in ("projekte", "personal", "infrastruktur"):
        cat = category(year, code)
        ledger.save_category(db.session, ACTOR, cat, year, code=cat.code, name=cat.name, planned_cents=0)
    zuweisungen = category(year)
    ledger.save_category(
        db.session,
        ACTOR,
        zuweisungen,
        year,
        code="zuweisungen",
        name=zuweisungen.name,
        planned_cents=APPROPRIATION,
    )
    commit()
    return zuweisungen


# --- limits -----------------------------------------------------------------------------------------


def test_default_year(open_year):
    assert open_year.status == YearStatus.OPEN
    assert open_year.appropriation_cents == APPROPRIATION
    assert {c.code: c.planned_cents for c in open_year.categories} == PLANS
    figures = ledger.year_figures(db.session, open_year)
    assert (figures.available_cents, figures.committed_cents, figures.paid_cents, figures.free_cents) == (
        APPROPRIATION,
        0,
        0,
        APPROPRIATION,
    )


def test_commitments_stay_within_the_available_money(open_year):
    single_plan(open_year)
    y = open_year.year
    approved(open_year, 100_000_000)
    too_much = draft(open_year, 60_000_000, key=KIEL)
    refused(
        ledger.approve,
        ACTOR,
        too_much,
        field="amount_cents",
        message=f"Not enough money in {y}: €500,000.00 are still free, €600,000.00 were asked for.",
    )
    assert too_much.status == AllocationStatus.DRAFT
    assert bookings_of(too_much) == []
    exactly = approved(open_year, 50_000_000, key=None)  # the federation's own costs count the same
    assert exactly.status == AllocationStatus.APPROVED
    figures = ledger.year_figures(db.session, open_year)
    assert (figures.committed_cents, figures.free_cents) == (APPROPRIATION, 0)
    cent = draft(open_year, 1)
    refused(
        ledger.approve,
        ACTOR,
        cent,
        field="amount_cents",
        message=f"Not enough money in {y}: €0.00 are still free, €0.01 were asked for.",
    )
    # a single allocation above the whole appropriation
    next_year = ledger.create_fiscal_year(db.session, ACTOR, y + 1)
    ledger.open_year(db.session, ACTOR, next_year)
    commit()
    huge = draft(next_year, APPROPRIATION + 1, key=None)
    refused(
        ledger.approve,
        ACTOR,
        huge,
        field="amount_cents",
        message=f"Not enough money in {y + 1}: €1,500,000.00 are still free, €1,500,000.01 were asked for.",
    )


def test_commitments_stay_within_the_category_plan(open_year):
    approved(open_year, 89_999_999)
    over = draft(open_year, 2, key=KIEL)
    refused(
        ledger.approve,
        ACTOR,
        over,
        field="amount_cents",
        message="The plan of the category “Zuweisungen an Kommunen” would be exceeded: €0.01 are left of "
        "€900,000.00, €0.02 were asked for.",
    )
    approved(open_year, 1, key=KIEL)
    assert ledger.category_committed(db.session, open_year, category(open_year)) == 90_000_000
    # other categories keep their own plans
    staff = approved(open_year, 15_000_000, code="personal", key=None)
    assert staff.status == AllocationStatus.APPROVED
    refused(
        ledger.approve,
        ACTOR,
        draft(open_year, 1, code="personal", key=None),
        field="amount_cents",
        message="The plan of the category “Personal” would be exceeded: €0.00 are left of €150,000.00, "
        "€0.01 were asked for.",
    )
    figures = ledger.year_figures(db.session, open_year)
    assert (figures.committed_cents, figures.free_cents) == (105_000_000, 45_000_000)


def test_payments_stay_within_the_commitment(open_year):
    allocation = approved(open_year, 100_000)
    ledger.disburse(db.session, ACTOR, allocation, 60_000)
    commit()
    assert allocation.status == AllocationStatus.PARTIALLY_PAID
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        40_001,
        field="amount_cents",
        message="That is more than is committed: €400.00 of the allocation are still open for payment.",
    )
    ledger.disburse(db.session, ACTOR, allocation, 40_000)
    commit()
    assert allocation.status == AllocationStatus.PAID
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        1,
        field="amount_cents",
        message="That is more than is committed: €0.00 of the allocation are still open for payment.",
    )
    figures = ledger.allocation_figures(db.session, allocation)
    assert (figures.committed_cents, figures.paid_cents, figures.open_cents) == (100_000, 100_000, 0)
    year = ledger.year_figures(db.session, open_year)
    assert (year.committed_cents, year.paid_cents, year.open_cents) == (100_000, 100_000, 0)


def test_no_payment_on_a_draft_or_cancelled_allocation(open_year):
    allocation = draft(open_year, 100_000)
    for service in (ledger.disburse, ledger.release, ledger.repay):
        kind = {ledger.disburse: "disbursement", ledger.release: "release", ledger.repay: "repayment"}[
            service
        ]
        refused(
            service,
            ACTOR,
            allocation,
            100,
            field="status",
            message=f"This allocation is draft; a {kind} is not possible.",
        )
    ledger.cancel(db.session, ACTOR, allocation)
    commit()
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        100,
        field="status",
        message="This allocation is cancelled; a disbursement is not possible.",
    )


def test_releases_stay_within_the_open_commitment(open_year):
    allocation = approved(open_year, 100_000)
    ledger.disburse(db.session, ACTOR, allocation, 30_000)
    commit()
    refused(
        ledger.release,
        ACTOR,
        allocation,
        70_001,
        field="amount_cents",
        message="That is more than the open commitment: €700.00 are committed and not yet paid.",
    )
    release = ledger.release(db.session, ACTOR, allocation, 20_000, note="cheaper")
    commit()
    assert (release.kind, release.amount_cents, release.committed_delta_cents, release.paid_delta_cents) == (
        "release",
        20_000,
        -20_000,
        0,
    )
    assert allocation.status == AllocationStatus.PARTIALLY_PAID
    assert ledger.year_figures(db.session, open_year).free_cents == APPROPRIATION - 80_000
    ledger.release(db.session, ACTOR, allocation, 50_000)
    commit()
    assert allocation.status == AllocationStatus.PAID  # what is left is paid
    assert ledger.allocation_figures(db.session, allocation).committed_cents == 30_000
    refused(
        ledger.release,
        ACTOR,
        allocation,
        1,
        field="amount_cents",
        message="That is more than the open commitment: €0.00 are committed and not yet paid.",
    )
    unpaid = approved(open_year, 10_000, key=KIEL)
    refused(
        ledger.release,
        ACTOR,
        unpaid,
        10_000,
        field="amount_cents",
        message="Releasing everything cancels the allocation: use “cancel” instead.",
    )
    ledger.release(db.session, ACTOR, unpaid, 9_999)
    commit()
    assert unpaid.status == AllocationStatus.APPROVED
    assert ledger.allocation_figures(db.session, unpaid).committed_cents == 1


def test_repayments_stay_within_what_was_paid(open_year):
    allocation = approved(open_year, 100_000)
    ledger.disburse(db.session, ACTOR, allocation, 30_000)
    commit()
    refused(
        ledger.repay,
        ACTOR,
        allocation,
        30_001,
        field="amount_cents",
        message="That is more than was paid: €300.00 have been paid out.",
    )
    repayment = ledger.repay(db.session, ACTOR, allocation, 10_000)
    commit()
    assert (repayment.committed_delta_cents, repayment.paid_delta_cents) == (0, -10_000)
    assert allocation.status == AllocationStatus.PARTIALLY_PAID
    ledger.repay(db.session, ACTOR, allocation, 20_000)
    commit()
    assert allocation.status == AllocationStatus.APPROVED  # nothing paid any more; still committed
    figures = ledger.allocation_figures(db.session, allocation)
    assert (figures.committed_cents, figures.paid_cents) == (100_000, 0)
    refused(
        ledger.repay,
        ACTOR,
        allocation,
        1,
        field="amount_cents",
        message="That is more than was paid: €0.00 have been paid out.",
    )
    # money paid back may be paid out again, up to the commitment
    ledger.disburse(db.session, ACTOR, allocation, 100_000)
    commit()
    assert allocation.status == AllocationStatus.PAID


BAD_AMOUNTS = [
    (0, "The amount must be greater than zero."),
    (-1, "The amount must be greater than zero."),
    (-100_000, "The amount must be greater than zero."),
    (1.0, "The amount must be a whole number of cents."),
    (0.5, "The amount must be a whole number of cents."),
    (float("nan"), "The amount must be a whole number of cents."),
    (float("inf"), "The amount must be a whole number of cents."),
    (True, "The amount must be a whole number of cents."),
    (False, "The amount must be a whole number of cents."),
    (Decimal("100"), "The amount must be a whole number of cents."),
    (Fraction(1, 1), "The amount must be a whole number of cents."),
    ("100", "The amount must be a whole number of cents."),
    (None, "The amount must be a whole number of cents."),
    (MAX_CENTS + 1, "This amount is implausibly large (the limit is €10,000,000,000.00)."),
    (10**30, "This amount is implausibly large (the limit is €10,000,000,000.00)."),
]


def test_amounts_are_positive_whole_cents(open_year):
    allocation = approved(open_year, 100_000)
    ledger.disburse(db.session, ACTOR, allocation, 10_000)
    commit()
    for amount, message in BAD_AMOUNTS:
        for service in (ledger.disburse, ledger.release, ledger.repay):
            refused(service, ACTOR, allocation, amount, field="amount_cents", message=message)
        refused(
            ledger.create_allocation,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year),
            recipient_kind="federation",
            municipality=None,
            purpose="Server",
            amount_cents=amount,
            field="amount_cents",
            message=message,
        )
    assert [(b.kind, b.amount_cents) for b in bookings_of(allocation)] == [
        ("commitment", 100_000),
        ("disbursement", 10_000),
    ]


def test_nothing_is_booked_into_a_planning_year(open_year):
    planning = ledger.create_fiscal_year(db.session, ACTOR, open_year.year + 1)
    commit()
    assert planning.status == YearStatus.PLANNING
    allocation = draft(planning, 100_000)  # drafts may be prepared
    refused(
        ledger.approve,
        ACTOR,
        allocation,
        field="fiscal_year",
        message=f"The fiscal year {planning.year} is still in planning; open it before booking.",
    )
    ledger.open_year(db.session, ACTOR, planning)
    commit()
    ledger.approve(db.session, ACTOR, allocation)
    commit()
    assert allocation.status == AllocationStatus.APPROVED
    refused(
        ledger.open_year, ACTOR, planning, field="status", message="Only a year in planning can be opened."
    )


# --- reversals --------------------------------------------------------------------------------------


def test_reversals(open_year):
    allocation = approved(open_year, 100_000)
    commitment = bookings_of(allocation)[0]
    payment = ledger.disburse(db.session, ACTOR, allocation, 30_000)
    commit()
    refused(ledger.reverse, ACTOR, payment, field="note", message="Please give the reason for the reversal.")
    refused(ledger.reverse, ACTOR, payment, note="   ", field="note")
    reversal = ledger.reverse(db.session, ACTOR, payment, note="wrong account")
    commit()
    assert reversal.kind == BookingKind.REVERSAL
    assert reversal.reverses_id == payment.id
    assert reversal.allocation_id == allocation.id
    assert (reversal.amount_cents, reversal.committed_delta_cents, reversal.paid_delta_cents) == (
        30_000,
        0,
        -30_000,
    )
    assert reversal.note == "wrong account"
    assert allocation.status == AllocationStatus.APPROVED
    assert ledger.allocation_figures(db.session, allocation).paid_cents == 0
    refused(
        ledger.reverse,
        ACTOR,
        payment,
        note="again",
        field="booking",
        message=f"Booking {payment.id} has already been reversed (by booking {reversal.id}).",
    )
    refused(
        ledger.reverse,
        ACTOR,
        reversal,
        note="undo",
        field="booking",
        message="A reversal cannot itself be reversed; book the amount again instead.",
    )
    # a commitment with payments on it cannot be reversed; without, the allocation is a draft again
    ledger.disburse(db.session, ACTOR, allocation, 10_000)
    commit()
    refused(
        ledger.reverse,
        ACTOR,
        commitment,
        note="wrong year",
        field="amount_cents",
        message="That is more than the open commitment: €900.00 are committed and not yet paid.",
    )
    other = approved(open_year, 50_000, key=KIEL)
    ledger.reverse(db.session, ACTOR, bookings_of(other)[0], note="approved by mistake")
    commit()
    assert other.status == AllocationStatus.DRAFT
    assert ledger.allocation_figures(db.session, other).committed_cents == 0
    assert ledger.year_figures(db.session, open_year).committed_cents == 100_000
    ledger.approve(db.session, ACTOR, other)  # and may be approved again
    commit()
    assert [b.kind for b in bookings_of(other)] == ["commitment", "reversal", "commitment"]


def test_reversing_a_release_binds_the_money_again_within_the_limits(open_year):
    single_plan(open_year)
    allocation = approved(open_year, 100_000_000)
    release = ledger.release(db.session, ACTOR, allocation, 40_000_000)
    commit()
    approved(open_year, 90_000_000, key=KIEL)  # uses what was released
    refused(
        ledger.reverse,
        ACTOR,
        release,
        note="released by mistake",
        field="amount_cents",
        message=f"Not enough money in {open_year.year}: €0.00 are still free, €400,000.00 were asked for.",
    )


def test_a_carry_over_cannot_be_reversed(open_year):
    allocation = approved(open_year, 100_000)
    ledger.close_year(db.session, ACTOR, open_year)
    following = ledger.get_year(db.session, open_year.year + 1)
    ledger.open_year(db.session, ACTOR, following)
    commit()
    carried_out, carried_in = bookings_of(allocation)[1:]
    for booking in (carried_out, carried_in):
        assert booking.kind == BookingKind.CARRY_OVER
        refused(
            ledger.reverse,
            ACTOR,
            booking,
            note="undo",
            field="booking",
            message="A carry-over is part of a year's close and cannot be reversed.",
        )


# --- the lifecycle -----------------------------------------------------------------------------------


def _status_events(allocation: Allocation) -> list[tuple[str, str]]:
    events = db.session.execute(
        select(AuditEvent)
        .where(AuditEvent.entity == "allocation", AuditEvent.entity_id == str(allocation.id))
        .where(AuditEvent.action == "status")
        .order_by(AuditEvent.seq)
    ).scalars()
    return [(e.before["status"], e.after["status"]) for e in events]


def test_lifecycle_draft_to_settled(open_year):
    allocation = draft(
        open_year, 100_000, file_reference="AZ 1", proof_of_use_due=date.today() + timedelta(1)
    )
    assert allocation.status == AllocationStatus.DRAFT
    assert allocation.decision_date is None
    commitment = ledger.approve(db.session, ACTOR, allocation)
    commit()
    assert (commitment.kind, commitment.amount_cents, commitment.committed_delta_cents) == (
        "commitment",
        100_000,
        100_000,
    )
    assert commitment.fiscal_year_id == open_year.id
    assert commitment.category_id == allocation.category_id
    assert commitment.municipality_id == allocation.municipality_id
    assert commitment.booked_on == date.today() == allocation.decision_date
    assert commitment.booked_by == ACTOR
    assert allocation.status == AllocationStatus.APPROVED
    refused(
        ledger.approve,
        ACTOR,
        allocation,
        field="status",
        message="Only a draft can be approved; this allocation is approved.",
    )
    refused(
        ledger.settle,
        ACTOR,
        allocation,
        received_on=date.today(),
        field="status",
        message="Only a fully paid allocation can be settled; this one is approved.",
    )
    ledger.disburse(db.session, ACTOR, allocation, 25_000)
    commit()
    assert allocation.status == AllocationStatus.PARTIALLY_PAID
    ledger.disburse(db.session, ACTOR, allocation, 75_000)
    commit()
    assert allocation.status == AllocationStatus.PAID
    refused(
        ledger.settle,
        ACTOR,
        allocation,
        field="proof_of_use_received",
        message="Please enter the date the proof of use was received.",
    )
    refused(
        ledger.settle,
        ACTOR,
        allocation,
        received_on=date.today() + timedelta(days=1),
        field="proof_of_use_received",
        message="The proof of use cannot be received in the future.",
    )
    ledger.settle(db.session, ACTOR, allocation, received_on=date.today())
    commit()
    assert allocation.status == AllocationStatus.SETTLED
    assert allocation.proof_of_use_received == date.today()
    assert ledger.settle(db.session, ACTOR, allocation) is allocation  # a second submission: no change
    commit()
    assert _status_events(allocation) == [
        ("draft", "approved"),
        ("approved", "partially_paid"),
        ("partially_paid", "paid"),
        ("paid", "settled"),
    ]
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        1,
        field="status",
        message="This allocation is settled; a disbursement is not possible.",
    )
    refused(
        ledger.cancel,
        ACTOR,
        allocation,
        field="status",
        message="Only a draft or an approved allocation without payments can be cancelled; "
        "this one is settled.",
    )
    # a settled allocation may still get money back
    ledger.repay(db.session, ACTOR, allocation, 5_000, note="Rückforderung")
    commit()
    assert allocation.status == AllocationStatus.SETTLED
    assert ledger.allocation_figures(db.session, allocation).paid_cents == 95_000


def test_cancel_from_draft_and_approved(open_year):
    first = draft(open_year, 100_000)
    assert ledger.cancel(db.session, ACTOR, first, reason="withdrawn") is None
    commit()
    assert first.status == AllocationStatus.CANCELLED
    assert bookings_of(first) == []
    assert _status_events(first) == [("draft", "cancelled")]
    assert ledger.cancel(db.session, ACTOR, first) is None  # twice: nothing more
    commit()
    assert _status_events(first) == [("draft", "cancelled")]
    refused(
        ledger.approve,
        ACTOR,
        first,
        field="status",
        message="Only a draft can be approved; this allocation is cancelled.",
    )
    refused(
        ledger.update_allocation,
        ACTOR,
        first,
        purpose="new",
        field="status",
        message="A cancelled allocation cannot be changed.",
    )

    second = approved(open_year, 200_000)
    release = ledger.cancel(db.session, ACTOR, second, reason="project dropped")
    commit()
    assert second.status == AllocationStatus.CANCELLED
    assert (release.kind, release.amount_cents, release.committed_delta_cents) == (
        "release",
        200_000,
        -200_000,
    )
    assert release.note == "project dropped"
    assert ledger.year_figures(db.session, open_year).committed_cents == 0
    assert ledger.cancel(db.session, ACTOR, second) is None
    commit()
    assert len(bookings_of(second)) == 2

    third = approved(open_year, 300_000)
    ledger.disburse(db.session, ACTOR, third, 1)
    commit()
    refused(
        ledger.cancel,
        ACTOR,
        third,
        field="status",
        message="Only a draft or an approved allocation without payments can be cancelled; "
        "this one is partially paid.",
    )


def test_no_allocation_to_a_non_member(open_year, members):
    today = date.today().isoformat()
    refused(
        ledger.create_allocation,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year),
        recipient_kind="member",
        municipality=members[NON_MEMBER],
        purpose="Breitband",
        amount_cents=100,
        field="municipality",
        message=f"{members[NON_MEMBER].name} is not a member of the federation on {today}.",
    )
    for kind, municipality, field in (
        ("member", None, "municipality"),
        ("federation", members[KIEL], "municipality"),
        ("project", None, "project"),  # a project recipient needs its project
        ("project", members[KIEL], "project"),
        ("consortium", None, "recipient_kind"),
    ):
        refused(
            ledger.create_allocation,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year),
            recipient_kind=kind,
            municipality=municipality,
            purpose="Breitband",
            amount_cents=100,
            field=field,
        )
    # a member that has left since the draft was made is not approved
    allocation = draft(open_year, 100_000, key=KRUMMWISCH)
    tenant_services.leave(db.session, ACTOR, members[KRUMMWISCH], date.today())
    commit()
    refused(
        ledger.approve,
        ACTOR,
        allocation,
        field="municipality",
        message=f"{members[KRUMMWISCH].name} is not a member of the federation on {today}.",
    )
    assert allocation.status == AllocationStatus.DRAFT
    refused(
        ledger.update_allocation,
        ACTOR,
        draft(open_year, 100, key=KIEL),
        municipality_id=members[NON_MEMBER].id,
        field="municipality",
    )


def test_allocation_fields(open_year, members):
    allocation = approved(open_year, 100_000)
    refused(
        ledger.update_allocation,
        ACTOR,
        allocation,
        colour="red",
        field="colour",
        message="Unknown field: colour",
    )
    for name, value in (
        ("amount_cents", 1),
        ("municipality_id", members[KIEL].id),
        ("category_id", category(open_year, "projekte").id),
        ("recipient_kind", "federation"),
    ):
        refused(
            ledger.update_allocation,
            ACTOR,
            allocation,
            **{name: value},
            field=name,
            message="Only a draft can change its year, category, recipient or amount.",
        )
    ledger.update_allocation(db.session, ACTOR, allocation, purpose="Glasfaser", file_reference="AZ 9")
    commit()
    assert (allocation.purpose, allocation.file_reference) == ("Glasfaser", "AZ 9")
    refused(ledger.update_allocation, ACTOR, allocation, purpose="  ", field="purpose")
    refused(
        ledger.update_allocation,
        ACTOR,
        allocation,
        proof_of_use_due=allocation.decision_date - timedelta(days=1),
        field="proof_of_use_due",
    )
    other_year = ledger.create_fiscal_year(db.session, ACTOR, open_year.year + 1)
    commit()
    refused(
        ledger.update_allocation,
        ACTOR,
        draft(open_year, 100),
        category_id=category(other_year).id,
        field="category",
        message="The category belongs to another year.",
    )
    refused(
        ledger.create_allocation,
        ACTOR,
        fiscal_year=open_year,
        category=category(other_year),
        recipient_kind="federation",
        municipality=None,
        purpose="Server",
        amount_cents=100,
        field="category",
        message="The category belongs to another year.",
    )


# --- the year-end close ------------------------------------------------------------------------------


def test_close_carries_over_and_releases(open_year):
    y = open_year.year
    carried = approved(open_year, 100_000)
    ledger.disburse(db.session, ACTOR, carried, 30_000)
    released = approved(open_year, 50_000, key=KIEL)
    released_paid = approved(open_year, 40_000, key=None)
    ledger.disburse(db.session, ACTOR, released_paid, 10_000)
    paid = approved(open_year, 20_000, key=None)
    ledger.disburse(db.session, ACTOR, paid, 20_000)
    waiting = draft(open_year, 10_000)
    commit()
    assert [
        (c.allocation.id, c.committed_cents, c.paid_cents, c.open_cents)
        for c in ledger.open_commitments(db.session, open_year)
    ] == [
        (carried.id, 100_000, 30_000, 70_000),
        (released.id, 50_000, 0, 50_000),
        (released_paid.id, 40_000, 10_000, 30_000),
    ]
    events_before = count(AuditEvent)
    summary = ledger.close_year(
        db.session, ACTOR, open_year, {released.id: ledger.RELEASE, released_paid.id: "release"}
    )
    commit()
    assert summary == {
        "carried": 1,
        "carried_cents": 70_000,
        "released": 2,
        "released_cents": 80_000,
        "next_year": y + 1,
    }
    following = ledger.get_year(db.session, y + 1)
    assert following.status == YearStatus.PLANNING
    assert open_year.status == YearStatus.CLOSED
    assert open_year.closed_at is not None
    # the carry-over pair
    out, into = bookings_of(carried)[2:]
    assert (out.kind, out.fiscal_year_id, out.amount_cents, out.committed_delta_cents) == (
        "carry_over",
        open_year.id,
        70_000,
        -70_000,
    )
    assert (out.available_delta_cents, out.booked_on) == (0, date(y, 12, 31))
    assert (into.kind, into.fiscal_year_id, into.amount_cents) == ("carry_over", following.id, 70_000)
    assert (into.committed_delta_cents, into.available_delta_cents, into.carried_from_id) == (
        70_000,
        70_000,
        out.id,
    )
    assert into.booked_on == date(y + 1, 1, 1)
    assert carried.current_year_id == following.id
    assert carried.fiscal_year_id == open_year.id
    assert carried.status == AllocationStatus.PARTIALLY_PAID
    # the releases
    assert [(b.kind, b.amount_cents, b.committed_delta_cents) for b in bookings_of(released)[1:]] == [
        ("release", 50_000, -50_000)
    ]
    assert released.current_year_id == open_year.id
    assert released.status == AllocationStatus.CANCELLED  # nothing was paid: nothing is left of it
    assert released_paid.status == AllocationStatus.PAID  # what is left is paid
    assert bookings_of(paid)[-1].kind == "disbursement"  # nothing open: untouched
    assert waiting.status == AllocationStatus.DRAFT
    # the figures of both years
    closed = ledger.year_figures(db.session, open_year)
    assert (closed.committed_cents, closed.paid_cents, closed.open_cents) == (60_000, 60_000, 0)
    assert closed.free_cents == APPROPRIATION - 60_000
    nxt = ledger.year_figures(db.session, following)
    assert (nxt.appropriation_cents, nxt.carried_in_cents, nxt.available_cents) == (
        APPROPRIATION,
        70_000,
        APPROPRIATION + 70_000,
    )
    assert (nxt.committed_cents, nxt.free_cents, nxt.open_cents) == (70_000, APPROPRIATION, 70_000)
    close_events = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "fiscal_year", AuditEvent.action == "close")
        )
        .scalars()
        .all()
    )
    assert [e.after for e in close_events] == [{"status": "closed", **summary}]
    assert count(AuditEvent) > events_before

    # the closed year refuses everything; the next one must be opened before payments
    refused(
        ledger.approve,
        ACTOR,
        waiting,
        field="fiscal_year",
        message=f"The fiscal year {y} is closed; nothing can be booked into it.",
    )
    refused(
        ledger.repay,
        ACTOR,
        paid,
        1,
        field="fiscal_year",
        message=f"The fiscal year {y} is closed; nothing can be booked into it.",
    )
    refused(
        ledger.reverse,
        ACTOR,
        bookings_of(paid)[-1],
        note="late",
        field="fiscal_year",
        message=f"The fiscal year {y} is closed; nothing can be booked into it.",
    )
    refused(
        ledger.disburse,
        ACTOR,
        carried,
        1,
        field="fiscal_year",
        message=f"The fiscal year {y + 1} is still in planning; open it before booking.",
    )
    refused(ledger.close_year, ACTOR, open_year, field="status", message="Only an open year can be closed.")
    refused(
        ledger.create_allocation,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year),
        recipient_kind="federation",
        municipality=None,
        purpose="late",
        amount_cents=1,
        field="fiscal_year",
        message=f"The fiscal year {y} is closed.",
    )
    ledger.open_year(db.session, ACTOR, following)
    commit()
    payment = ledger.disburse(db.session, ACTOR, carried, 70_000)
    commit()
    assert payment.fiscal_year_id == following.id
    assert carried.status == AllocationStatus.PAID
    refused(
        ledger.disburse,
        ACTOR,
        carried,
        1,
        field="amount_cents",
        message="That is more than is committed: €0.00 of the allocation are still open for payment.",
    )
    nxt = ledger.year_figures(db.session, following)
    assert (nxt.committed_cents, nxt.paid_cents, nxt.open_cents) == (70_000, 70_000, 0)
    # the carried money is no new money of the next year: its free money is its appropriation
    assert nxt.free_cents == APPROPRIATION
    totals = ledger.allocation_figures(db.session, carried)
    assert (totals.committed_cents, totals.paid_cents) == (100_000, 100_000)


def test_carried_money_can_be_carried_again_and_released(open_year):
    y = open_year.year
    allocation = approved(open_year, 100_000)
    ledger.close_year(db.session, ACTOR, open_year)
    second = ledger.get_year(db.session, y + 1)
    ledger.open_year(db.session, ACTOR, second)
    commit()
    ledger.disburse(db.session, ACTOR, allocation, 10_000)
    commit()
    ledger.close_year(db.session, ACTOR, second)
    third = ledger.get_year(db.session, y + 2)
    ledger.open_year(db.session, ACTOR, third)
    commit()
    assert allocation.current_year_id == third.id
    assert ledger.year_figures(db.session, third).carried_in_cents == 90_000
    ledger.release(db.session, ACTOR, allocation, 40_000)
    commit()
    summary = ledger.close_year(db.session, ACTOR, third, {allocation.id: "release"})
    commit()
    assert summary["released_cents"] == 50_000
    assert allocation.status == AllocationStatus.PAID
    totals = ledger.allocation_figures(db.session, allocation)
    assert (totals.committed_cents, totals.paid_cents) == (10_000, 10_000)
    for year in (open_year, second, third):
        figures = ledger.year_figures(db.session, year)
        assert figures.open_cents == 0, year.year


def test_close_refusals(open_year):
    allocation = approved(open_year, 100_000)
    waiting = draft(open_year, 100)
    refused(
        ledger.close_year,
        ACTOR,
        open_year,
        {allocation.id: "keep"},
        field="decisions",
        message=f"Allocation {allocation.id}: choose “carry” or “release”.",
    )
    refused(
        ledger.close_year,
        ACTOR,
        open_year,
        {waiting.id: "release"},
        field="decisions",
        message=f"Allocation {waiting.id} has no open commitment in {open_year.year}.",
    )
    planning = ledger.create_fiscal_year(db.session, ACTOR, open_year.year - 1)
    commit()
    refused(ledger.close_year, ACTOR, planning, field="status", message="Only an open year can be closed.")
    # the following year closed already
    following = ledger.create_fiscal_year(db.session, ACTOR, open_year.year + 1)
    ledger.open_year(db.session, ACTOR, following)
    ledger.close_year(db.session, ACTOR, following)
    commit()
    refused(
        ledger.close_year,
        ACTOR,
        open_year,
        field="status",
        message=f"The following year {open_year.year + 1} is closed.",
    )


def test_reopen_is_for_admins_with_a_reason(open_year, make_user):
    ledger.close_year(db.session, ACTOR, open_year)
    commit()
    staff, admin = make_user("staff"), make_user("admin")
    set_scope(db.session, ALL)
    message = "Only an administrator can reopen a closed year."
    for actor in (ACTOR, staff, make_user("auditor")):
        refused(ledger.reopen_year, actor, open_year, "typo", field="status", message=message)
    refused(
        ledger.reopen_year,
        admin,
        open_year,
        "  ",
        field="reason",
        message="Please give a reason for reopening the year.",
    )
    ledger.reopen_year(db.session, admin, open_year, "  late invoice  ")
    commit()
    assert open_year.status == YearStatus.OPEN
    assert open_year.closed_at is None
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "fiscal_year", AuditEvent.action == "reopen")
    ).scalar_one()
    assert (event.actor, event.actor_id, event.entity_id) == (admin.email, admin.id, str(open_year.id))
    assert (event.before, event.after) == ({"status": "closed"}, {"status": "open", "reason": "late invoice"})
    refused(
        ledger.reopen_year,
        admin,
        open_year,
        "again",
        field="status",
        message="Only a closed year can be reopened.",
    )
    approved(open_year, 1_000)  # bookable again


# --- appropriation and plans -------------------------------------------------------------------------


def test_appropriation_and_plans_respect_the_limits(open_year):
    refused(
        ledger.update_fiscal_year,
        ACTOR,
        open_year,
        appropriation_cents=APPROPRIATION - 1,
        field="appropriation_cents",
        message="The category plans add up to €1,500,000.00; the appropriation cannot be lower.",
    )
    for bad in (-1, 1.5, True, MAX_CENTS + 1):
        refused(
            ledger.update_fiscal_year, ACTOR, open_year, appropriation_cents=bad, field="appropriation_cents"
        )
    ledger.update_fiscal_year(db.session, ACTOR, open_year, appropriation_cents=160_000_000)
    commit()
    assert ledger.year_figures(db.session, open_year).available_cents == 160_000_000
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "fiscal_year", AuditEvent.action == "update")
    ).scalar_one()
    assert (event.before["appropriation_cents"], event.after["appropriation_cents"]) == (
        APPROPRIATION,
        160_000_000,
    )
    refused(
        ledger.save_category,
        ACTOR,
        None,
        open_year,
        code="reserve",
        name="Reserve",
        planned_cents=10_000_001,
        field="planned_cents",
        message="The plans would add up to €1,600,000.01, more than the appropriation of €1,600,000.00 "
        "(€100,000.00 left to plan).",
    )
    reserve = ledger.save_category(
        db.session, ACTOR, None, open_year, code="reserve", name="Reserve", planned_cents=10_000_000
    )
    commit()
    assert reserve.planned_cents == 10_000_000
    refused(
        ledger.save_category,
        ACTOR,
        None,
        open_year,
        code="reserve",
        name="Reserve 2",
        planned_cents=0,
        field="code",
        message="The year already has a category with the code reserve.",
    )
    # a plan cannot drop below what is committed in it
    approved(open_year, 1_000_000)
    zuweisungen = category(open_year)
    refused(
        ledger.save_category,
        ACTOR,
        zuweisungen,
        open_year,
        code="zuweisungen",
        name=zuweisungen.name,
        planned_cents=999_999,
        field="planned_cents",
        message="€10,000.00 are committed in this category; the plan cannot be lower.",
    )
    ledger.save_category(
        db.session,
        ACTOR,
        zuweisungen,
        open_year,
        code="zuweisungen",
        name=zuweisungen.name,
        planned_cents=1_000_000,
    )
    commit()
    refused(
        ledger.approve,
        ACTOR,
        draft(open_year, 1),
        field="amount_cents",
        message="The plan of the category “Zuweisungen an Kommunen” would be exceeded: €0.00 are left of "
        "€10,000.00, €0.01 were asked for.",
    )
    # a closed year's appropriation and plans are final
    ledger.close_year(db.session, ACTOR, open_year)
    commit()
    refused(
        ledger.update_fiscal_year,
        ACTOR,
        open_year,
        appropriation_cents=170_000_000,
        field="appropriation_cents",
        message=f"The fiscal year {open_year.year} is closed.",
    )
    refused(
        ledger.save_category,
        ACTOR,
        reserve,
        open_year,
        code="reserve",
        name="Reserve",
        planned_cents=1,
        field="planned_cents",
        message=f"The fiscal year {open_year.year} is closed.",
    )


def test_fiscal_year_creation_refusals(open_year):
    for year in (1999, 2101, True, "2030", 2030.0):
        refused(ledger.create_fiscal_year, ACTOR, year, field="year")
    refused(
        ledger.create_fiscal_year,
        ACTOR,
        open_year.year,
        field="year",
        message=f"The fiscal year {open_year.year} exists already.",
    )
    refused(ledger.create_fiscal_year, ACTOR, open_year.year + 3, -1, field="appropriation_cents")


# --- idempotency -------------------------------------------------------------------------------------


def test_idempotency_keys(open_year):
    allocation = draft(open_year, 100_000)
    first = ledger.approve(db.session, ACTOR, allocation, idempotency_key="approve-1")
    commit()
    after = state()
    again = ledger.approve(db.session, ACTOR, allocation, idempotency_key="approve-1")
    commit()
    assert again.id == first.id
    assert state() == after  # no booking, no event, no key

    payment = ledger.disburse(db.session, ACTOR, allocation, 1_000, idempotency_key="pay-1")
    commit()
    after = state()
    for _ in range(2):
        assert ledger.disburse(db.session, ACTOR, allocation, 1_000, idempotency_key="pay-1").id == payment.id
        commit()
    assert state() == after
    assert ledger.allocation_figures(db.session, allocation).paid_cents == 1_000
    message = "This idempotency key was already used for a different request."
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        2_000,
        idempotency_key="pay-1",
        field="idempotency_key",
        message=message,
    )
    refused(
        ledger.disburse,
        ACTOR,
        allocation,
        1_000,
        note="other",
        idempotency_key="pay-1",
        field="idempotency_key",
        message=message,
    )
    refused(
        ledger.release,
        ACTOR,
        allocation,
        1_000,
        idempotency_key="pay-1",
        field="idempotency_key",
        message=message,
    )
    refused(ledger.approve, ACTOR, draft(open_year, 5), idempotency_key="approve-1", field="idempotency_key")
    for bad in ("", "   ", "x" * 101):
        refused(
            ledger.disburse,
            ACTOR,
            allocation,
            1_000,
            idempotency_key=bad,
            field="idempotency_key",
            message="The idempotency key must be 1 to 100 characters long.",
        )
    # the longest key is fine
    ledger.disburse(db.session, ACTOR, allocation, 1, idempotency_key="k" * 100)
    commit()

    reversal = ledger.reverse(db.session, ACTOR, payment, note="twice", idempotency_key="rev-1")
    commit()
    after = state()
    assert ledger.reverse(db.session, ACTOR, payment, note="twice", idempotency_key="rev-1").id == reversal.id
    commit()
    assert state() == after

    kwargs = {
        "fiscal_year": open_year,
        "category": category(open_year),
        "recipient_kind": "federation",
        "municipality": None,
        "purpose": "Rechenzentrum",
        "amount_cents": 5_000,
    }
    created = ledger.create_allocation(db.session, ACTOR, idempotency_key="create-1", **kwargs)
    commit()
    after = state()
    assert ledger.create_allocation(db.session, ACTOR, idempotency_key="create-1", **kwargs).id == created.id
    commit()
    assert state() == after
    refused(
        ledger.create_allocation,
        ACTOR,
        idempotency_key="create-1",
        **{**kwargs, "amount_cents": 5_001},
        field="idempotency_key",
        message=message,
    )


# --- the audit trail ---------------------------------------------------------------------------------


def test_every_booking_is_an_audit_event_and_the_chain_verifies(open_year, make_user):
    """A busy sequence through every kind of booking, committed step by step as the views do."""
    admin = make_user("admin")
    set_scope(db.session, ALL)
    y = open_year.year
    allocations = [
        approved(open_year, 100_000 * (n + 1), key=(KIEL, KRUMMWISCH, None)[n % 3]) for n in range(6)
    ]
    for n, allocation in enumerate(allocations):
        ledger.disburse(db.session, ACTOR, allocation, 10_000 * (n + 1), idempotency_key=f"busy-pay-{n}")
        commit()
    ledger.disburse(db.session, ACTOR, allocations[0], 10_000, idempotency_key="busy-pay-0")  # a replay
    ledger.repay(db.session, ACTOR, allocations[1], 5_000)
    ledger.release(db.session, ACTOR, allocations[2], 50_000)
    commit()
    ledger.reverse(db.session, ACTOR, bookings_of(allocations[3])[1], note="wrong amount")
    commit()
    ledger.cancel(db.session, ACTOR, approved(open_year, 7_000))
    with pytest.raises(RuleViolation):
        ledger.disburse(db.session, ACTOR, allocations[4], 10**9)
    db.session.rollback()
    set_scope(db.session, ALL)
    ledger.close_year(db.session, ACTOR, open_year, {allocations[5].id: "release"})
    commit()
    following = ledger.get_year(db.session, y + 1)
    ledger.open_year(db.session, ACTOR, following)
    commit()
    ledger.disburse(db.session, ACTOR, allocations[0], 90_000)
    commit()
    ledger.close_year(db.session, ACTOR, following)
    commit()
    ledger.reopen_year(db.session, admin, following, "correction")
    commit()
    ledger.settle(db.session, ACTOR, allocations[0], received_on=date.today())
    commit()

    bookings = db.session.execute(select(Booking).order_by(Booking.id)).scalars().all()
    events = (
        db.session.execute(select(AuditEvent).where(AuditEvent.entity == "booking").order_by(AuditEvent.seq))
        .scalars()
        .all()
    )
    assert len(bookings) > 20
    assert {b.kind for b in bookings} == {k.value for k in BookingKind}
    assert [int(e.entity_id) for e in events] == [b.id for b in bookings]
    for booking, event in zip(bookings, events, strict=True):
        assert event.action == "booking"
        assert event.actor == ACTOR
        assert event.after["kind"] == booking.kind
        assert event.after["amount_cents"] == booking.amount_cents
        assert event.after["allocation_id"] == booking.allocation_id
        assert event.after["committed_delta_cents"] == booking.committed_delta_cents
        assert event.after["paid_delta_cents"] == booking.paid_delta_cents
    result = verify_chain(db.session)
    assert result.ok, result.problem
    # and every figure is the sum of its bookings
    for year in (open_year, following):
        figures = ledger.year_figures(db.session, year)
        mine = [b for b in bookings if b.fiscal_year_id == year.id]
        assert figures.committed_cents == sum(b.committed_delta_cents for b in mine)
        assert figures.paid_cents == sum(b.paid_delta_cents for b in mine)
        assert figures.carried_in_cents == sum(b.available_delta_cents for b in mine)
        assert figures.committed_cents <= figures.available_cents
        assert 0 <= figures.paid_cents <= figures.committed_cents
    for allocation in allocations:
        totals = ledger.allocation_figures(db.session, allocation)
        assert 0 <= totals.paid_cents <= totals.committed_cents <= allocation.amount_cents
