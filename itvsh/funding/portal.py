"""The member portal's funding page: a municipality's own allocations and payments over the years.

Everything shown is read with a handful of grouped ORM queries, so the page runs the same number of
SQL statements however many allocations and bookings there are. Every figure is a sum of bookings
(committed, paid, open = committed - paid); an allocation's amount is the decided amount as entered.
The central tenant scope (core/tenancy.py) limits allocations and bookings to the user's tenant —
an Amt user's to the Amt and its Gemeinden, a Kreis user's to the Kreis — so these queries carry no
tenant filter of their own; the federation's own allocations have no tenant and never show here.
Drafts (not yet decided) are left out, and so is a draft cancelled before any booking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed
from itvsh.extensions import db
from itvsh.funding import models
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    FiscalYear,
    RecipientKind,
)
from itvsh.tenants.models import Municipality, MunicipalityKind

bp = Blueprint("funding_portal", __name__, url_prefix="/portal/funding")

PAYMENT_KINDS = (BookingKind.DISBURSEMENT.value, BookingKind.REPAYMENT.value, BookingKind.REVERSAL.value)


@dataclass(frozen=True)
class Figures:
    committed_cents: int
    paid_cents: int

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents


@dataclass(frozen=True)
class AllocationRow:
    year: int
    recipient: str
    purpose: str
    file_reference: str
    status: str
    amount_cents: int
    figures: Figures
    proof_of_use_due: date | None
    proof_of_use_received: date | None

    @property
    def status_label(self) -> str:
        return str(models.ALLOCATION_STATUS_LABELS.get(self.status, self.status))


@dataclass(frozen=True)
class YearTotal:
    year: int
    allocations: int
    figures: Figures


@dataclass(frozen=True)
class RecipientTotal:
    name: str
    key: str
    allocations: int
    figures: Figures


@dataclass(frozen=True)
class PaymentRow:
    booked_on: date
    year: int
    recipient: str
    purpose: str
    file_reference: str
    kind: str
    paid_cents: int  # the booking's effect on what was paid: a disbursement +, a repayment -
    note: str

    @property
    def kind_label(self) -> str:
        return str(models.BOOKING_KIND_LABELS.get(self.kind, self.kind))


@dataclass(frozen=True)
class PaymentYear:
    year: int
    disbursed_cents: int
    repaid_cents: int
    reversed_cents: int  # the net effect of reversals on what was paid (usually negative)
    paid_cents: int


def _decided():
    """Allocations a member sees: its own (the scope decides which), decided (not drafts)."""
    return (
        Allocation.recipient_kind == RecipientKind.MEMBER.value,
        Allocation.status != AllocationStatus.DRAFT,
    )


def allocation_rows(session: Session) -> list[AllocationRow]:
    """Each decided allocation in scope with the sums of its bookings, newest year first (one query)."""
    sums = (
        select(
            Booking.allocation_id.label("allocation_id"),
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
        )
        .group_by(Booking.allocation_id)
        .subquery()
    )
    rows = session.execute(
        select(
            FiscalYear.year,
            Municipality.name,
            Municipality.key,
            Allocation.purpose,
            Allocation.file_reference,
            Allocation.status,
            Allocation.amount_cents,
            sums.c.committed,
            sums.c.paid,
            Allocation.proof_of_use_due,
            Allocation.proof_of_use_received,
        )
        .select_from(Allocation)
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .join(Municipality, Municipality.id == Allocation.municipality_id)
        .join(sums, sums.c.allocation_id == Allocation.id)  # inner: a draft cancelled unbooked is left out
        .where(*_decided())
        .order_by(FiscalYear.year.desc(), Municipality.name, Allocation.decision_date, Allocation.id)
    ).all()
    return [
        AllocationRow(
            year=row.year,
            recipient=f"{row.name} ({row.key})",
            purpose=row.purpose,
            file_reference=row.file_reference,
            status=row.status,
            amount_cents=int(row.amount_cents),
            figures=Figures(int(row.committed or 0), int(row.paid or 0)),
            proof_of_use_due=row.proof_of_use_due,
            proof_of_use_received=row.proof_of_use_received,
        )
        for row in rows
    ]


def year_totals(session: Session) -> list[YearTotal]:
    """Per allocation year: how many allocations, and what of them is committed, paid and open."""
    rows = session.execute(
        select(
            FiscalYear.year,
            func.count(func.distinct(Allocation.id)),
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .select_from(Booking)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .where(*_decided())
        .group_by(FiscalYear.year)
        .order_by(FiscalYear.year.desc())
    ).all()
    return [YearTotal(year, int(count), Figures(int(c), int(p))) for year, count, c, p in rows]


def recipient_totals(session: Session) -> list[RecipientTotal]:
    """Per municipality in scope (an Amt and its Gemeinden): committed, paid and open."""
    rows = session.execute(
        select(
            Municipality.name,
            Municipality.key,
            func.count(func.distinct(Allocation.id)),
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .select_from(Booking)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(Municipality, Municipality.id == Allocation.municipality_id)
        .where(*_decided())
        .group_by(Municipality.id, Municipality.name, Municipality.key)
        .order_by(Municipality.name, Municipality.key)
    ).all()
    return [RecipientTotal(name, key, int(n), Figures(int(c), int(p))) for name, key, n, c, p in rows]


def _is_payment():
    # Disbursements, repayments, and the reversals of those (a reversed commitment moves no money).
    return (Booking.kind.in_(PAYMENT_KINDS), Booking.paid_delta_cents != 0)


def payment_rows(session: Session) -> list[PaymentRow]:
    """Every payment booking in scope with its date, newest first (one query)."""
    rows = session.execute(
        select(
            Booking.booked_on,
            FiscalYear.year,
            Municipality.name,
            Municipality.key,
            Allocation.purpose,
            Allocation.file_reference,
            Booking.kind,
            Booking.paid_delta_cents,
            Booking.note,
        )
        .select_from(Booking)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
        .join(Municipality, Municipality.id == Allocation.municipality_id)
        .where(*_decided(), *_is_payment())
        .order_by(Booking.booked_on.desc(), Booking.id.desc())
    ).all()
    return [
        PaymentRow(
            booked_on=row.booked_on,
            year=row.year,
            recipient=f"{row.name} ({row.key})",
            purpose=row.purpose,
            file_reference=row.file_reference,
            kind=row.kind,
            paid_cents=int(row.paid_delta_cents),
            note=row.note,
        )
        for row in rows
    ]


def payment_years(session: Session) -> list[PaymentYear]:
    """Per booking year: disbursed, repaid, the effect of reversals, and the net paid."""

    def of(kind: BookingKind):
        return func.coalesce(
            func.sum(case((Booking.kind == kind.value, Booking.paid_delta_cents), else_=0)), 0
        )

    rows = session.execute(
        select(
            FiscalYear.year,
            of(BookingKind.DISBURSEMENT),
            of(BookingKind.REPAYMENT),
            of(BookingKind.REVERSAL),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .select_from(Booking)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
        .where(*_decided(), *_is_payment())
        .group_by(FiscalYear.year)
        .order_by(FiscalYear.year.desc())
    ).all()
    return [
        PaymentYear(year, int(disbursed), -int(repaid), int(reversed_), int(paid))
        for year, disbursed, repaid, reversed_, paid in rows
    ]


def _total(figures: list[Figures]) -> Figures:
    return Figures(sum(f.committed_cents for f in figures), sum(f.paid_cents for f in figures))


@bp.get("/")
@roles_allowed(Role.MUNICIPALITY)
def index():
    session = db.session
    tenant = current_user.municipality
    several = tenant.kind == MunicipalityKind.AMT  # the Amt and its Gemeinden: label each row
    years = year_totals(session)
    payments_by_year = payment_years(session)
    return render_template(
        "portal/funding.html",
        municipality=tenant,
        several=several,
        years=years,
        total=_total([y.figures for y in years]),
        recipients=recipient_totals(session) if several else [],
        allocations=allocation_rows(session),
        payments=payment_rows(session),
        payment_years=payments_by_year,
        net_paid_cents=sum(y.paid_cents for y in payments_by_year),
    )
