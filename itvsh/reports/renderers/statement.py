"""The municipality statement (Förderübersicht), PDF: everything one member received — its decided
allocations with their ledger figures, the payments on them, totals per fiscal year and overall,
the shared projects it takes part in and the staff time assigned to it.

This module lays the statement out; what it shows, and how that is read (one member, in its own
tenant scope, named in every query, no budget, cost or draft), is in
:mod:`itvsh.reports.renderers.statement_data`. FTE-months of an assignment with an open end are
counted to the end of the year the statement is made in.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from babel.numbers import format_decimal
from flask_babel import gettext as _

from itvsh.funding.models import ALLOCATION_STATUS_LABELS, BOOKING_KIND_LABELS
from itvsh.projects.models import PARTICIPATION_ROLE_LABELS, PROJECT_KIND_LABELS, PROJECT_STATUS_LABELS
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers.common import BERLIN, build_pdf, esc, money, pdf_styles, table_style
from itvsh.reports.renderers.statement_data import Statement, read_statement
from itvsh.staffing.models import format_fte
from itvsh.tenants.models import KIND_LABELS

__all__ = ["Statement", "read_statement", "render"]

DASH = "\u2013"


# --- layout ----------------------------------------------------------------------------------------


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

        self.story.append(Paragraph(esc(text), self.head))

    def text(self, text: str, markup: bool = False) -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(text if markup else esc(text), self.styles["Normal"]))

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
    line = f"<b>{esc(m.name)}</b> ({esc(m.key)}) · {esc(_label(KIND_LABELS, m.kind))}"
    if statement.kreis and statement.kreis != m.name:
        line += f" · {esc(_('Kreis'))} {esc(statement.kreis)}"
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
        purpose = f"{esc(line.purpose)}<br/><font size=6.5>{esc(line.category)}"
        if line.file_reference:
            purpose += f" · {esc(_('file reference'))} {esc(line.file_reference)}"
        purpose += f" · #{line.id}</font>"
        proof = esc(_("due %(day)s", day=_day(line.proof_of_use_due))) if line.proof_of_use_due else ""
        if line.proof_of_use_received:
            received = esc(_("received %(day)s", day=_day(line.proof_of_use_received)))
            proof = f"{proof}<br/>{received}" if proof else received
        rows.append(
            [
                str(line.year),
                layout.para(purpose),
                _day(line.decision_date),
                layout.para(esc(_label(ALLOCATION_STATUS_LABELS, line.status))),
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
        allocation = f"#{line.allocation_id} {esc(line.purpose)}"
        if line.file_reference:
            allocation += f" ({esc(line.file_reference)})"
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
            layout.para(esc(line.name)),
            layout.para(esc(_label(PROJECT_KIND_LABELS, line.kind))),
            _label(PROJECT_STATUS_LABELS, line.status),
            _label(PARTICIPATION_ROLE_LABELS, line.role),
            _day(line.joined_on),
            layout.para(esc(_period(line.starts_on, line.ends_on))),
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
                layout.para(esc(line.person)),
                layout.para(esc(line.role)),
                layout.para(esc(_period(line.starts_on, line.ends_on))),
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
