"""The municipality statement (Förderübersicht), PDF: everything one member received — its decided
allocations with their ledger figures, the payments on them, totals per fiscal year and overall,
the shared projects it takes part in and the staff time assigned to it.

It shows no more than the member may see in its own portal: the job renders it in the member's
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
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from babel.numbers import format_decimal
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from itvsh.auth.roles import Role
from itvsh.funding.models import (
    ALLOCATION_STATUS_LABELS,
    BOOKING_KIND_LABELS,
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    RecipientKind,
)
from itvsh.projects.models import (
    PARTICIPATION_ROLE_LABELS,
    PROJECT_KIND_LABELS,
    PROJECT_STATUS_LABELS,
    Participation,
    Project,
)
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers.common import BERLIN, batches, build_pdf, money, pdf_styles, table_style
from itvsh.staffing.models import Assignment, StaffMember, TargetKind, format_fte
from itvsh.staffing.periods import end_of, fte_months
from itvsh.tenants.models import KIND_LABELS, Membership, Municipality, MunicipalityKind

PAYMENT_KINDS = (BookingKind.DISBURSEMENT.value, BookingKind.REPAYMENT.value, BookingKind.REVERSAL.value)
DASH = "\u2013"


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


# --- layout ----------------------------------------------------------------------------------------


def _esc(text) -> str:
    from xml.sax.saxutils import escape

    return escape(str(text or ""))


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _period(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return ""
    return f"{_day(start) or '…'} {DASH} {_day(end) or _('open end')}"


def _fte_months_text(value: Fraction, locale: str) -> str:
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return format_decimal(rounded, "#,##0.00", locale=locale)


def _label(labels: dict, value: str) -> str:
    return str(labels.get(value, value))


class _Layout:
    """The flowables of the statement, section by section."""

    WIDTH = 174  # mm between the margins of build_pdf's A4 page

    def __init__(self, ctx: RenderContext):
        from reportlab.lib.styles import ParagraphStyle

        self.ctx = ctx
        self.styles = pdf_styles()
        self.cell = ParagraphStyle("cell", parent=self.styles["Normal"], fontSize=7.5, leading=9)
        # A heading stays on the page of the table it introduces.
        self.head = ParagraphStyle("section", parent=self.styles["Heading2"], keepWithNext=1)
        self.story: list = []

    def money(self, cents: int) -> str:
        return money(cents, self.ctx.locale)

    def heading(self, text: str) -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(_esc(text), self.head))

    def text(self, text: str, markup: bool = False) -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(text if markup else _esc(text), self.styles["Normal"]))

    def para(self, text: str):
        from reportlab.platypus import Paragraph

        return Paragraph(text, self.cell)

    def table(self, header: list, rows: list, widths: list[int], numeric_from: int | None, totals=0) -> None:
        from reportlab.lib.units import mm
        from reportlab.platypus import Spacer, Table

        if not rows:
            self.text(_("None."))
            self.story.append(Spacer(1, 3 * mm))
            return
        table = Table([header, *rows], colWidths=[w * mm for w in widths], repeatRows=1)
        style = table_style(numeric_from=numeric_from)
        if totals:
            style.add("FONT", (0, -totals), (-1, -1), "Helvetica-Bold", 8)
        table.setStyle(style)
        self.story.extend([table, Spacer(1, 4 * mm)])


def _member_block(layout: _Layout, statement: Statement) -> None:
    m = statement.municipality
    line = f"<b>{_esc(m.name)}</b> ({_esc(m.key)}) · {_esc(_label(KIND_LABELS, m.kind))}"
    if statement.kreis and statement.kreis != m.name:
        line += f" · {_esc(_('Kreis'))} {_esc(statement.kreis)}"
    layout.text(line, markup=True)
    if statement.member_since:
        periods = ", ".join(_period(start, end) for start, end in statement.member_since)
        layout.text(_("Member of the federation: %(periods)s", periods=periods))
    if statement.year is not None:
        layout.text(_("Fiscal year %(year)s only.", year=statement.year))
    else:
        layout.text(_("All fiscal years."))


def _totals(layout: _Layout, statement: Statement) -> None:
    layout.heading(_("Totals"))
    rows = [
        [str(year), str(count), layout.money(committed), layout.money(paid), layout.money(committed - paid)]
        for year, (count, committed, paid) in statement.totals_by_year().items()
    ]
    if rows:
        committed, paid = statement.committed_cents, statement.paid_cents
        rows.append(
            [
                _("Total"),
                str(len(statement.allocations)),
                layout.money(committed),
                layout.money(paid),
                layout.money(committed - paid),
            ]
        )
    header = [_("Fiscal year"), _("Allocations"), _("Committed"), _("Paid"), _("Open")]
    layout.table(header, rows, [30, 26, 40, 40, 38], numeric_from=1, totals=1 if rows else 0)
    layout.text(
        _(
            "Committed: the amounts approved, less what was released; paid: disbursed less repaid, "
            "reversals included. Every figure is a sum of the ledger's bookings."
        )
    )


def _allocations_section(layout: _Layout, statement: Statement) -> None:
    layout.heading(_("Allocations"))
    header = [
        _("Year"),
        _("Purpose"),
        _("Decided"),
        _("Status"),
        _("Amount"),
        _("Committed"),
        _("Paid"),
        _("Proof of use"),
    ]
    rows = []
    for line in statement.allocations:
        purpose = f"{_esc(line.purpose)}<br/><font size=6.5>{_esc(line.category)}"
        if line.file_reference:
            purpose += f" · {_esc(_('file reference'))} {_esc(line.file_reference)}"
        purpose += f" · #{line.id}</font>"
        proof = _esc(_("due %(day)s", day=_day(line.proof_of_use_due))) if line.proof_of_use_due else ""
        if line.proof_of_use_received:
            received = _esc(_("received %(day)s", day=_day(line.proof_of_use_received)))
            proof = f"{proof}<br/>{received}" if proof else received
        rows.append(
            [
                str(line.year),
                layout.para(purpose),
                _day(line.decision_date),
                layout.para(_esc(_label(ALLOCATION_STATUS_LABELS, line.status))),
                layout.money(line.amount_cents),
                layout.money(line.committed_cents),
                layout.money(line.paid_cents),
                layout.para(proof),
            ]
        )
    layout.table(header, rows, [10, 48, 17, 17, 21, 21, 21, 19], numeric_from=4)


def _payments_section(layout: _Layout, statement: Statement) -> None:
    layout.heading(_("Payments"))
    header = [_("Date"), _("Booking year"), _("Kind"), _("Allocation"), _("Amount")]
    rows = []
    for line in statement.payments:
        allocation = f"#{line.allocation_id} {_esc(line.purpose)}"
        if line.file_reference:
            allocation += f" ({_esc(line.file_reference)})"
        rows.append(
            [
                _day(line.booked_on),
                str(line.year),
                _label(BOOKING_KIND_LABELS, line.kind),
                layout.para(allocation),
                layout.money(line.paid_cents),
            ]
        )
    if rows:
        rows.append([_("Total"), "", "", "", layout.money(sum(p.paid_cents for p in statement.payments))])
    layout.table(header, rows, [20, 20, 24, 84, 26], numeric_from=4, totals=1 if rows else 0)


def _projects_section(layout: _Layout, statement: Statement) -> None:
    layout.heading(_("Shared projects"))
    header = [_("Project"), _("Kind"), _("Status"), _("Role"), _("Since"), _("Project period")]
    rows = [
        [
            layout.para(_esc(line.name)),
            layout.para(_esc(_label(PROJECT_KIND_LABELS, line.kind))),
            _label(PROJECT_STATUS_LABELS, line.status),
            _label(PARTICIPATION_ROLE_LABELS, line.role),
            _day(line.joined_on),
            layout.para(_esc(_period(line.starts_on, line.ends_on))),
        ]
        for line in statement.projects
    ]
    layout.table(header, rows, [50, 30, 20, 18, 18, 38], numeric_from=None)


def _staff_section(layout: _Layout, statement: Statement) -> None:
    layout.heading(_("Staff time"))
    locale = layout.ctx.locale
    header = [_("Person"), _("Role"), _("Period"), _("Share"), _("FTE-months per year")]
    rows = []
    for line in statement.staff:
        per_year = "<br/>".join(
            f"{year}: {_fte_months_text(value, locale)}" for year, value in line.fte_months.items()
        )
        rows.append(
            [
                layout.para(_esc(line.person)),
                layout.para(_esc(line.role)),
                layout.para(_esc(_period(line.starts_on, line.ends_on))),
                format_fte(line.fte),
                layout.para(per_year),
            ]
        )
    layout.table(header, rows, [42, 44, 38, 16, 34], numeric_from=3)
    totals = statement.fte_months_by_year()
    if totals:
        rows = [[str(year), _fte_months_text(value, locale)] for year, value in totals.items()]
        layout.table([_("Year"), _("FTE-months")], rows, [30, 30], numeric_from=1)
        layout.text(
            _(
                "An FTE-month is one full-time person for one month. Open-ended assignments are "
                "counted to the end of %(year)s.",
                year=layout.ctx.generated_at.astimezone(BERLIN).year,
            )
        )


def render(ctx: RenderContext, out) -> dict:
    """Write the statement of ``ctx.municipality_id`` as PDF to ``out``; return its totals."""
    statement = read_statement(ctx.session, ctx)
    layout = _Layout(ctx)
    _member_block(layout, statement)
    _totals(layout, statement)
    _allocations_section(layout, statement)
    _payments_section(layout, statement)
    _projects_section(layout, statement)
    _staff_section(layout, statement)
    title = _("Municipality statement (Förderübersicht): %(name)s", name=statement.municipality.name)
    build_pdf(out, ctx, title, layout.story)
    ctx.progress(95)
    return {
        "ags": statement.municipality.key,
        "year": statement.year,
        "allocations": len(statement.allocations),
        "committed_cents": statement.committed_cents,
        "paid_cents": statement.paid_cents,
        "payments": len(statement.payments),
        "payments_cents": sum(line.paid_cents for line in statement.payments),
        "by_year": {
            str(year): {"allocations": count, "committed_cents": committed, "paid_cents": paid}
            for year, (count, committed, paid) in statement.totals_by_year().items()
        },
        "projects": len(statement.projects),
        "assignments": len(statement.staff),
        "fte_months": {
            str(year): _fte_months_text(value, "en") for year, value in statement.fte_months_by_year().items()
        },
    }
