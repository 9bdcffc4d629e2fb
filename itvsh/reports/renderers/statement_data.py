"""Reading the municipality statement (Förderübersicht): everything one member received — its
decided allocations with their ledger figures, the payments on them, totals per fiscal year and
overall, the shared projects it takes part in and the staff time assigned to it. The PDF layout is
in :mod:`itvsh.reports.renderers.statement`.

It reads no more than the member may see in its own portal: the job renders it in the member's
own tenant scope and every query here also names the member explicitly. No project budget, no
personnel cost, no other member's rows and no draft ever leave the database for it; people are
named as the member portal names them (an auditor who may not see staff names gets the stable
pseudonyms, see :func:`itvsh.staffing.services.names_visible`).

With ``year``, the statement covers the allocations of that fiscal year (and the payments on them,
whenever booked), the projects running in that year and the staff time in that year. Every figure
is a sum of bookings; an allocation's amount is the decided amount. FTE-months of an assignment
with an open end are counted to the end of the year the statement is made in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from itvsh.auth.roles import Role
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    RecipientKind,
)
from itvsh.projects.models import Participation, Project
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers.common import BERLIN, batches
from itvsh.staffing.models import Assignment, StaffMember, TargetKind
from itvsh.staffing.periods import end_of, fte_months
from itvsh.tenants.models import Membership, Municipality, MunicipalityKind

PAYMENT_KINDS = (BookingKind.DISBURSEMENT.value, BookingKind.REPAYMENT.value, BookingKind.REVERSAL.value)


# --- what the statement shows --------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationLine:
    id: int
    year: int
    category: str
    purpose: str
    file_reference: str
    decision_date: date | None
    amount_cents: int
    status: str
    committed_cents: int
    paid_cents: int
    proof_of_use_due: date | None
    proof_of_use_received: date | None


@dataclass(frozen=True)
class PaymentLine:
    booked_on: date
    year: int  # the year the booking is in
    allocation_id: int
    purpose: str
    file_reference: str
    kind: str
    paid_cents: int  # the booking's effect on what was paid: a disbursement +, a repayment -


@dataclass(frozen=True)
class ProjectLine:
    name: str
    kind: str
    status: str
    role: str
    joined_on: date
    starts_on: date | None
    ends_on: date | None


@dataclass(frozen=True)
class StaffLine:
    person: str
    role: str
    starts_on: date
    ends_on: date | None
    fte: int
    fte_months: dict[int, Fraction]  # per calendar year


@dataclass
class Statement:
    municipality: Municipality
    kreis: str
    member_since: list[tuple[date, date | None]]
    year: int | None
    allocations: list[AllocationLine] = field(default_factory=list)
    payments: list[PaymentLine] = field(default_factory=list)
    projects: list[ProjectLine] = field(default_factory=list)
    staff: list[StaffLine] = field(default_factory=list)

    def totals_by_year(self) -> dict[int, tuple[int, int, int]]:
        """Per allocation year: (allocations, committed, paid)."""
        totals: dict[int, tuple[int, int, int]] = {}
        for line in self.allocations:
            count, committed, paid = totals.get(line.year, (0, 0, 0))
            totals[line.year] = (count + 1, committed + line.committed_cents, paid + line.paid_cents)
        return dict(sorted(totals.items()))

    @property
    def committed_cents(self) -> int:
        return sum(line.committed_cents for line in self.allocations)

    @property
    def paid_cents(self) -> int:
        return sum(line.paid_cents for line in self.allocations)

    def fte_months_by_year(self) -> dict[int, Fraction]:
        totals: dict[int, Fraction] = {}
        for line in self.staff:
            for year, value in line.fte_months.items():
                totals[year] = totals.get(year, Fraction(0)) + value
        return dict(sorted(totals.items()))


# --- reading it (one member, explicitly named in every query) ------------------------------------


def _allocations(session, municipality_id: int, year: int | None) -> list[AllocationLine]:
    sums = (
        select(
            Booking.allocation_id.label("allocation_id"),
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
        )
        .where(Booking.municipality_id == municipality_id)
        .group_by(Booking.allocation_id)
        .subquery()
    )
    stmt = (
        select(
            Allocation.id,
            FiscalYear.year,
            BudgetCategory.name,
            Allocation.purpose,
            Allocation.file_reference,
            Allocation.decision_date,
            Allocation.amount_cents,
            Allocation.status,
            sums.c.committed,
            sums.c.paid,
            Allocation.proof_of_use_due,
            Allocation.proof_of_use_received,
        )
        .select_from(Allocation)
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .join(BudgetCategory, BudgetCategory.id == Allocation.category_id)
        .join(sums, sums.c.allocation_id == Allocation.id)  # inner: a draft cancelled unbooked is left out
        .where(
            Allocation.municipality_id == municipality_id,
            Allocation.recipient_kind == RecipientKind.MEMBER.value,
            Allocation.status != AllocationStatus.DRAFT.value,
        )
        .order_by(FiscalYear.year, Allocation.decision_date, Allocation.id)
    )
    if year is not None:
        stmt = stmt.where(FiscalYear.year == year)
    return [
        AllocationLine(
            id=row[0],
            year=row[1],
            category=row[2],
            purpose=row[3],
            file_reference=row[4],
            decision_date=row[5],
            amount_cents=int(row[6]),
            status=row[7],
            committed_cents=int(row[8] or 0),
            paid_cents=int(row[9] or 0),
            proof_of_use_due=row[10],
            proof_of_use_received=row[11],
        )
        for row in session.execute(stmt).all()
    ]


def _payments(session, ctx: RenderContext, municipality_id: int, year: int | None) -> list[PaymentLine]:
    """Disbursements, repayments and their reversals on the member's decided allocations, read in
    keyset batches (progress is reported between two batches, never inside a result)."""
    booking_year = aliased(FiscalYear)
    allocation_year = aliased(FiscalYear)
    stmt = (
        select(
            Booking.id,
            Booking.booked_on,
            booking_year.year,
            Booking.allocation_id,
            Allocation.purpose,
            Allocation.file_reference,
            Booking.kind,
            Booking.paid_delta_cents,
        )
        .select_from(Booking)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(booking_year, booking_year.id == Booking.fiscal_year_id)
        .join(allocation_year, allocation_year.id == Allocation.fiscal_year_id)
        .where(
            Booking.municipality_id == municipality_id,
            Allocation.municipality_id == municipality_id,
            Allocation.recipient_kind == RecipientKind.MEMBER.value,
            Allocation.status != AllocationStatus.DRAFT.value,
            Booking.kind.in_(PAYMENT_KINDS),
            Booking.paid_delta_cents != 0,  # a reversed commitment moves no money
        )
    )
    if year is not None:
        stmt = stmt.where(allocation_year.year == year)
    lines: list[PaymentLine] = []
    for batch in batches(session, stmt, Booking.id):
        lines.extend(
            PaymentLine(
                booked_on=row[1],
                year=row[2],
                allocation_id=row[3],
                purpose=row[4],
                file_reference=row[5],
                kind=row[6],
                paid_cents=int(row[7]),
            )
            for row in batch
        )
        ctx.progress(40)
    lines.sort(key=lambda line: line.booked_on)  # stable: same day keeps the booking order
    return lines


def _projects(session, municipality_id: int, year: int | None) -> list[ProjectLine]:
    """The projects it takes part in: public data only (never a budget)."""
    stmt = (
        select(
            Project.name,
            Project.kind,
            Project.status,
            Participation.role,
            Participation.joined_on,
            Project.starts_on,
            Project.ends_on,
        )
        .join(Participation, Participation.project_id == Project.id)
        .where(Participation.municipality_id == municipality_id)
        .order_by(Project.name, Project.id)
    )
    if year is not None:
        first, last = date(year, 1, 1), date(year, 12, 31)
        stmt = stmt.where(
            Participation.joined_on <= last,
            (Project.starts_on.is_(None)) | (Project.starts_on <= last),
            (Project.ends_on.is_(None)) | (Project.ends_on >= first),
        )
    return [ProjectLine(*row) for row in session.execute(stmt).all()]


def _staff(session, municipality_id: int, year: int | None, names: bool, horizon: int) -> list[StaffLine]:
    """The assignments to the member: the person's name (or pseudonym), role, period, share and the
    FTE-months per year. Nothing else of the person (no cost, no secondment) is selected."""
    stmt = (
        select(
            Assignment.id,
            StaffMember.name if names else StaffMember.pseudonym,
            Assignment.role,
            Assignment.starts_on,
            Assignment.ends_on,
            Assignment.fte,
        )
        .join(StaffMember, StaffMember.id == Assignment.staff_member_id)
        .where(
            Assignment.municipality_id == municipality_id,
            Assignment.target_kind == TargetKind.MEMBER.value,
        )
        .order_by(Assignment.starts_on, Assignment.id)
    )
    if year is not None:
        stmt = stmt.where(
            Assignment.starts_on <= date(year, 12, 31),
            (Assignment.ends_on.is_(None)) | (Assignment.ends_on >= date(year, 1, 1)),
        )
    lines = []
    for _id, person, role, starts_on, ends_on, fte in session.execute(stmt).all():
        if year is not None:
            years = [year]
        else:
            last_year = ends_on.year if ends_on is not None else max(horizon, starts_on.year)
            years = list(range(starts_on.year, last_year + 1))
        per_year = {}
        for y in years:
            first, last = max(starts_on, date(y, 1, 1)), min(end_of(ends_on), date(y, 12, 31))
            if first <= last:
                per_year[y] = fte_months(fte, first, last)
        lines.append(StaffLine(person, role, starts_on, ends_on, fte, per_year))
    return lines


def _names_for_requester(session, ctx: RenderContext) -> bool:
    """People are named as in the member portal; an auditor sees pseudonyms unless an admin allows
    names. The CLI and the system (no requesting user) name them."""
    from itvsh.auth.models import User
    from itvsh.reports.models import Report
    from itvsh.staffing.services import names_visible

    if ctx.report_id is None:
        return True
    user_id = session.execute(select(Report.requested_by_id).where(Report.id == ctx.report_id)).scalar()
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.role == Role.MUNICIPALITY:
        return True
    return names_visible(session, user)


def read_statement(session, ctx: RenderContext) -> Statement:
    """Everything the statement shows for ``ctx.municipality_id`` (and ``year``, if given)."""
    municipality_id = ctx.municipality_id
    if municipality_id is None:
        raise ValueError("a municipality statement needs the member (municipality_id)")
    year = ctx.parameters.get("year")
    municipality = session.execute(
        select(Municipality).where(Municipality.id == municipality_id)
    ).scalar_one()
    if municipality.kind in (MunicipalityKind.KREIS, MunicipalityKind.KREISFREIE_STADT):
        kreis = municipality.name
    else:
        kreis = municipality.kreis.name if municipality.kreis is not None else ""
    periods = session.execute(
        select(Membership.joined_on, Membership.left_on)
        .where(Membership.municipality_id == municipality_id)
        .order_by(Membership.joined_on)
    ).all()
    statement = Statement(municipality, kreis, [tuple(p) for p in periods], year)
    statement.allocations = _allocations(session, municipality_id, year)
    ctx.progress(20)
    statement.payments = _payments(session, ctx, municipality_id, year)
    ctx.progress(60)
    statement.projects = _projects(session, municipality_id, year)
    horizon = ctx.generated_at.astimezone(BERLIN).year
    statement.staff = _staff(session, municipality_id, year, _names_for_requester(session, ctx), horizon)
    ctx.progress(80)
    return statement
