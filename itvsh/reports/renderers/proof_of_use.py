"""The proof-of-use overview: decided allocations (approved, partially paid, paid or settled — never a
draft or a cancelled one) whose Verwendungsnachweis has not been received although it is overdue
(due before ``as_of``) or due soon (on ``as_of`` or within :data:`DUE_WINDOW_DAYS` days after it).
Overdue rows come first, each group by due date (oldest first), then by allocation id.

Formats:

* XLSX (openpyxl write-only): one sheet; a header block (report, parameters, generation time,
  requester, audit head, the audit sentence, the window), an empty row, then the table. Dates are
  real dates; money is integer cents in ``*_cents`` columns, with EUR columns (numbers formatted
  as euros) beside them for reading.
* CSV (UTF-8 with BOM, ``;``): the same header block as two-cell rows ``label;value`` (so the audit
  chain head travels with the file), one empty row, then the table with its column row. A program
  reading the table skips to the first row after the first empty one. Dates are ISO text.
* PDF: the header block of every report, the counts and amounts, and the table.

The table's column names are stable identifiers (``status``, ``days``, ``due_date``, ...,
``amount_cents``, ``paid_cents``) and ``status`` holds ``overdue`` or ``due``: what auditors and
tests reconcile. ``days`` is the number of days overdue, or the days left until the due date.
Every text cell of XLSX and CSV is formula-safe. Rows are read in keyset batches on (due date, id).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import aliased

from itvsh.funding.models import (
    RECIPIENT_KIND_LABELS,
    Allocation,
    AllocationStatus,
    Booking,
    BudgetCategory,
    FiscalYear,
    RecipientKind,
)
from itvsh.projects.models import Project
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers.common import (
    BATCH,
    CsvOut,
    audit_line,
    build_pdf,
    esc,
    header_lines,
    money,
    pdf_styles,
    safe,
    safe_row,
    table_style,
)
from itvsh.tenants.models import Municipality, MunicipalityKind

DUE_WINDOW_DAYS = 60  # "due": on as_of or within this many days after it
# Decided allocations (a settled one normally has its proof already, so it only shows if the
# received date was removed again).
DECIDED = (
    AllocationStatus.APPROVED.value,
    AllocationStatus.PARTIALLY_PAID.value,
    AllocationStatus.PAID.value,
    AllocationStatus.SETTLED.value,
)
OVERDUE, DUE = "overdue", "due"
COLUMNS = (
    "status",
    "days",
    "due_date",
    "allocation_id",
    "fiscal_year",
    "recipient_kind",
    "recipient_key",
    "recipient_name",
    "kreis",
    "category",
    "purpose",
    "file_reference",
    "amount_cents",
    "paid_cents",
)
XLSX_EXTRA = ("amount_eur", "paid_eur")
EUR_FORMAT = "#,##0.00 €"


@dataclass(frozen=True)
class ProofRow:
    status: str  # OVERDUE or DUE
    days: int
    due: date
    allocation_id: int
    fiscal_year: int
    recipient_kind: str
    recipient_key: str
    recipient_name: str
    kreis: str
    category: str
    purpose: str
    file_reference: str
    amount_cents: int
    paid_cents: int

    def values(self) -> list:
        return [
            self.status,
            self.days,
            self.due,
            self.allocation_id,
            self.fiscal_year,
            self.recipient_kind,
            self.recipient_key,
            self.recipient_name,
            self.kreis,
            self.category,
            self.purpose,
            self.file_reference,
            self.amount_cents,
            self.paid_cents,
        ]


def window(as_of: date) -> tuple[date, date]:
    """Nothing due after the window's end is listed; everything before ``as_of`` is overdue."""
    return as_of, as_of + timedelta(days=DUE_WINDOW_DAYS)


def _statement(as_of: date):
    kreis = aliased(Municipality)
    paid = (
        select(func.coalesce(func.sum(Booking.paid_delta_cents), 0))
        .where(Booking.allocation_id == Allocation.id)
        .correlate(Allocation)
        .scalar_subquery()
    )
    _start, end = window(as_of)
    return (
        select(
            Allocation.id,
            Allocation.proof_of_use_due,
            FiscalYear.year,
            Allocation.recipient_kind,
            Municipality.key,
            Municipality.name,
            Municipality.kind,
            kreis.name,
            Project.name,
            BudgetCategory.name,
            Allocation.purpose,
            Allocation.file_reference,
            Allocation.amount_cents,
            paid,
        )
        .select_from(Allocation)
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .join(BudgetCategory, BudgetCategory.id == Allocation.category_id)
        .outerjoin(Municipality, Municipality.id == Allocation.municipality_id)
        .outerjoin(kreis, kreis.id == Municipality.kreis_id)
        .outerjoin(Project, Project.id == Allocation.project_id)
        .where(
            Allocation.status.in_(DECIDED),
            Allocation.proof_of_use_received.is_(None),
            Allocation.proof_of_use_due.is_not(None),
            Allocation.proof_of_use_due <= end,
        )
    )


def _row(raw, as_of: date) -> ProofRow:
    (
        ident,
        due,
        year,
        kind,
        key,
        name,
        municipality_kind,
        kreis,
        project,
        category,
        purpose,
        ref,
        amount,
        paid,
    ) = raw
    if kind == RecipientKind.MEMBER:
        if municipality_kind in (MunicipalityKind.KREIS, MunicipalityKind.KREISFREIE_STADT):
            kreis = name  # a Kreis and a kreisfreie Stadt count as their own Kreis
        recipient_key, recipient_name = key or "", name or ""
    elif kind == RecipientKind.PROJECT:
        recipient_key, recipient_name, kreis = "", project or "", ""
    else:
        recipient_key, recipient_name, kreis = "", str(RECIPIENT_KIND_LABELS[RecipientKind.FEDERATION]), ""
    overdue = due < as_of
    return ProofRow(
        status=OVERDUE if overdue else DUE,
        days=(as_of - due).days if overdue else (due - as_of).days,
        due=due,
        allocation_id=ident,
        fiscal_year=year,
        recipient_kind=kind,
        recipient_key=recipient_key,
        recipient_name=recipient_name,
        kreis=kreis or "",
        category=category,
        purpose=purpose,
        file_reference=ref or "",
        amount_cents=int(amount),
        paid_cents=int(paid or 0),
    )


def proof_rows(
    session, as_of: date, ctx: RenderContext | None = None, size: int = BATCH
) -> Iterator[list[ProofRow]]:
    """The rows in report order, in batches (keyset on due date and id: one short query each, so
    progress may be written between two batches)."""
    stmt = _statement(as_of)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar() or 0
    done, last = 0, None
    while True:
        page = stmt.order_by(Allocation.proof_of_use_due, Allocation.id).limit(size)
        if last is not None:
            page = page.where(
                or_(
                    Allocation.proof_of_use_due > last[0],
                    and_(Allocation.proof_of_use_due == last[0], Allocation.id > last[1]),
                )
            )
        batch = session.execute(page).all()
        if not batch:
            return
        yield [_row(raw, as_of) for raw in batch]
        done += len(batch)
        if ctx is not None and total:
            ctx.progress(min(90, 5 + 85 * done // total))
        last = (batch[-1][1], batch[-1][0])
        if len(batch) < size:
            return


class _Summary:
    def __init__(self, as_of: date):
        self.counts = {OVERDUE: 0, DUE: 0}
        self.amounts = {OVERDUE: 0, DUE: 0}
        self.paid = {OVERDUE: 0, DUE: 0}
        self.as_of = as_of

    def add(self, row: ProofRow) -> None:
        self.counts[row.status] += 1
        self.amounts[row.status] += row.amount_cents
        self.paid[row.status] += row.paid_cents

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": DUE_WINDOW_DAYS,
            "overdue": self.counts[OVERDUE],
            "due": self.counts[DUE],
            "overdue_amount_cents": self.amounts[OVERDUE],
            "due_amount_cents": self.amounts[DUE],
            "overdue_paid_cents": self.paid[OVERDUE],
            "due_paid_cents": self.paid[DUE],
        }


def _title() -> str:
    return _("Proof-of-use overview (Verwendungsnachweise)")


def _header_block(ctx: RenderContext) -> list[tuple[str, str]]:
    return [
        *header_lines(ctx, _title()),
        ("", audit_line(ctx)),
        (
            _("Listed"),
            _(
                "Overdue: due before %(as_of)s. Due: due from %(as_of)s to %(end)s (%(days)s days).",
                as_of=ctx.parameters["as_of"],
                end=window(date.fromisoformat(ctx.parameters["as_of"]))[1].isoformat(),
                days=DUE_WINDOW_DAYS,
            ),
        ),
    ]


# --- formats ---------------------------------------------------------------------------------------


def _xlsx(ctx: RenderContext, out, as_of: date, summary: _Summary) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("Proof of use")[:31])
    widths = (10, 7, 12, 12, 10, 12, 12, 32, 24, 26, 48, 18, 14, 14, 14, 14)
    for letter, width in zip("ABCDEFGHIJKLMNOP", widths, strict=True):
        sheet.column_dimensions[letter].width = width
    bold = Font(bold=True)
    for label, value in _header_block(ctx):
        cell = WriteOnlyCell(sheet, value=safe(label))
        cell.font = bold
        sheet.append([cell, safe(value)])
    sheet.append([])
    heads = []
    for name in (*COLUMNS, *XLSX_EXTRA):
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        heads.append(cell)
    sheet.append(heads)
    for batch in proof_rows(ctx.session, as_of, ctx):
        for row in batch:
            summary.add(row)
            values = safe_row(row.values())
            due = WriteOnlyCell(sheet, value=row.due)
            due.number_format = "yyyy-mm-dd"
            values[2] = due
            for cents in (row.amount_cents, row.paid_cents):
                eur = WriteOnlyCell(sheet, value=Decimal(cents).scaleb(-2))
                eur.number_format = EUR_FORMAT
                values.append(eur)
            sheet.append(values)
    workbook.save(out)


def _csv(ctx: RenderContext, out, as_of: date, summary: _Summary) -> None:
    writer = CsvOut(out)
    for label, value in _header_block(ctx):
        writer.row([label, value])
    writer.row([])
    writer.row(COLUMNS)
    for batch in proof_rows(ctx.session, as_of, ctx):
        for row in batch:
            summary.add(row)
            values = row.values()
            values[2] = row.due.isoformat()
            writer.row(values)
    writer.close()


def _pdf(ctx: RenderContext, out, as_of: date, summary: _Summary) -> None:
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer, Table

    styles = pdf_styles()
    cell = ParagraphStyle("cell", parent=styles["Normal"], fontSize=7, leading=8.5)
    labels = {OVERDUE: _("overdue"), DUE: _("due")}
    header = [
        _("Status"),
        _("Days"),
        _("Due"),
        _("Allocation"),
        _("Recipient"),
        _("Purpose"),
        _("Amount"),
        _("Paid"),
    ]
    widths = [16, 10, 17, 17, 34, 40, 20, 20]
    tables = []
    for batch in proof_rows(ctx.session, as_of, ctx):
        data = [header]
        for row in batch:
            summary.add(row)
            recipient = esc(row.recipient_name)
            if row.recipient_key:
                recipient += f" ({esc(row.recipient_key)})"
            if row.kreis and row.kreis != row.recipient_name:
                recipient += f"<br/><font size=6>{esc(_('Kreis'))} {esc(row.kreis)}</font>"
            purpose = f"{esc(row.purpose)}<br/><font size=6>{esc(row.category)}"
            if row.file_reference:
                purpose += f" · {esc(row.file_reference)}"
            purpose += "</font>"
            data.append(
                [
                    str(labels[row.status]),
                    str(row.days),
                    row.due.isoformat(),
                    f"#{row.allocation_id} ({row.fiscal_year})",
                    Paragraph(recipient, cell),
                    Paragraph(purpose, cell),
                    money(row.amount_cents, ctx.locale),
                    money(row.paid_cents, ctx.locale),
                ]
            )
        table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
        table.setStyle(table_style(numeric_from=6))
        tables.append(table)  # one table per batch keeps reportlab's page splitting cheap
    counts = [
        [_("Status"), _("Allocations"), _("Amount"), _("Paid")],
        *[
            [
                str(labels[status]),
                str(summary.counts[status]),
                money(summary.amounts[status], ctx.locale),
                money(summary.paid[status], ctx.locale),
            ]
            for status in (OVERDUE, DUE)
        ],
    ]
    overview = Table(counts, colWidths=[30 * mm, 25 * mm, 35 * mm, 35 * mm])
    overview.setStyle(table_style(numeric_from=1))
    _label, listed = _header_block(ctx)[-1]
    story = [Paragraph(esc(listed), styles["Normal"]), Spacer(1, 3 * mm), overview, Spacer(1, 5 * mm)]
    story.extend(tables or [Paragraph(esc(_("Nothing is due or overdue.")), styles["Normal"])])
    build_pdf(out, ctx, _title(), story)


def render(ctx: RenderContext, out) -> dict:
    """Write the overview for ``as_of`` in ``ctx.format``; return the counts and amounts."""
    as_of = date.fromisoformat(ctx.parameters["as_of"])
    summary = _Summary(as_of)
    writer = {"xlsx": _xlsx, "csv": _csv, "pdf": _pdf}[ctx.format]
    writer(ctx, out, as_of, summary)
    return summary.as_dict()
