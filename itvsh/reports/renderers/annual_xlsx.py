"""The annual funding report as XLSX (openpyxl write-only, streamed): sheets Summary (the header
lines with parameters, time and audit head, the year's figures, counts), By category, By recipient,
By Kreis, Bookings (every booking of the set, reversals and carry-overs included) and Allocations
(with the proof of use: received / overdue / due / not required, as of the day the report is made).

Money in columns named ``*_cents`` (integer numbers, what auditors reconcile), and in the summary
sheets also as euros (a number formatted as €). Every text cell passes ``common.safe``.
"""

from __future__ import annotations

import contextlib
import os
from decimal import Decimal

from flask_babel import gettext as _

from itvsh.funding.models import YEAR_STATUS_LABELS
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers import common
from itvsh.reports.renderers.annual_data import (
    Sums,
    YearSet,
    allocation_rows,
    booking_rows,
    bookings_moved,
    check_sums,
    naive_local,
    proof_state,
)
from itvsh.reports.renderers.annual_figures import (
    count_rows,
    figure_rows,
    labels_for_file,
    report_title,
    sorted_categories,
    sorted_kreise,
)
from itvsh.reports.renderers.common import safe

EUR_FORMAT = '#,##0.00 "€"'


class _Sheet:
    """A write-only sheet with a bold header row and column widths."""

    def __init__(self, workbook, title: str, columns: list[tuple[str, int]]):
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        self.ws = workbook.create_sheet(title[:31])
        self._cell = WriteOnlyCell
        self._bold = Font(bold=True)
        for index, (_label, width) in enumerate(columns, start=1):
            self.ws.column_dimensions[_column_letter(index)].width = width
        if columns:
            self.ws.freeze_panes = "A2"
            self.bold_row([label for label, _width in columns])
        self.width = len(columns)

    def bold_row(self, values) -> None:
        self.ws.append([self._styled(safe(v), font=self._bold) for v in values])

    def eur(self, cents: int | None, bold: bool = False):
        if cents is None:
            return None
        return self._styled(
            Decimal(int(cents)).scaleb(-2), number_format=EUR_FORMAT, font=self._bold if bold else None
        )

    def _styled(self, value, number_format=None, font=None):
        cell = self._cell(self.ws, value=value)
        if number_format:
            cell.number_format = number_format
        if font is not None:
            cell.font = font
        return cell

    def append(self, values) -> None:
        self.ws.append(values)

    def filter(self, rows: int) -> None:
        if self.width and rows:
            self.ws.auto_filter.ref = f"A1:{_column_letter(self.width)}{rows + 1}"


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)


def write_xlsx(ctx: RenderContext, out, data: YearSet) -> None:
    """The six sheets of the year's set, streamed as a workbook to ``out``."""
    from openpyxl import Workbook

    labels = labels_for_file()
    workbook = Workbook(write_only=True)
    try:
        _xlsx_summary(ctx, workbook, data, labels)
        _xlsx_categories(workbook, data)
        _xlsx_recipients(workbook, data)
        _xlsx_kreise(workbook, data)
        ctx.progress(10)
        _xlsx_bookings(ctx, workbook, data, labels)
        _xlsx_allocations(ctx, workbook, data, labels)
    except BaseException:
        _discard(workbook)
        raise
    workbook.save(out)


def _discard(workbook) -> None:
    """After a failure: finish and delete each sheet's temporary file (write-only mode keeps one
    per sheet), so nothing is left on disk and no sheet is finished later on a closed file."""
    for ws in workbook.worksheets:
        with contextlib.suppress(Exception):
            ws.close()
        writer = getattr(ws, "_writer", None)
        if writer is not None and isinstance(writer.out, str):
            with contextlib.suppress(OSError):
                os.remove(writer.out)


def _xlsx_summary(ctx, workbook, data: YearSet, labels: dict) -> None:
    sheet = _Sheet(workbook, _("Summary"), [])
    for index, width in enumerate((48, 70, 18), start=1):
        sheet.ws.column_dimensions[_column_letter(index)].width = width
    title = report_title(data)
    sheet.bold_row([title])
    for label, value in common.header_lines(ctx, title):
        sheet.append([safe(label), safe(value)])
    sheet.append([safe(common.audit_line(ctx))])
    sheet.append([_("Fiscal year"), data.year])
    sheet.append([_("Status"), safe(str(YEAR_STATUS_LABELS.get(data.status, data.status)))])
    sheet.append([])
    sheet.bold_row([_("Figure"), "amount_cents", _("Amount (EUR)")])
    for label, cents in figure_rows(data):
        sheet.append([safe(label), cents, sheet.eur(cents)])
    sheet.append([])
    sheet.bold_row([_("Count"), _("Number")])
    for label, number in count_rows(data, labels):
        sheet.append([safe(label), number])


def _xlsx_categories(workbook, data: YearSet) -> None:
    sheet = _Sheet(
        workbook,
        _("By category"),
        [
            (_("Code"), 16),
            (_("Category"), 36),
            (_("Fiscal year"), 10),
            ("planned_cents", 16),
            ("committed_cents", 16),
            ("paid_cents", 16),
            ("carried_in_cents", 16),
            ("open_cents", 16),
            (_("Bookings"), 10),
            (_("Committed (EUR)"), 18),
            (_("Paid (EUR)"), 18),
        ],
    )
    total, planned = Sums(), 0
    categories = sorted_categories(data)
    for category in categories:
        s = data.by_category.get(category.id, Sums())
        total.add(s.committed, s.paid, s.available, s.bookings)
        planned += category.planned_cents or 0
        sheet.append(
            [
                category.code,
                category.name,
                category.year,
                category.planned_cents,
                s.committed,
                s.paid,
                s.available,
                s.open,
                s.bookings,
                sheet.eur(s.committed),
                sheet.eur(s.paid),
            ]
        )
    sheet.filter(len(categories))
    _total_row(sheet, ["", _("Total"), data.year, planned], total, carried_in=True)


def _total_row(sheet: _Sheet, lead: list, total: Sums, *, carried_in: bool = False) -> None:
    """The bold last row of a summary sheet: the same columns as its rows, summed."""
    values = [*lead, total.committed, total.paid, *([total.available] if carried_in else []), total.open]
    values.append(total.bookings)
    sheet.append(
        [sheet._styled(safe(v), font=sheet._bold) for v in values]
        + [sheet.eur(total.committed, bold=True), sheet.eur(total.paid, bold=True)]
    )


def _xlsx_recipients(workbook, data: YearSet) -> None:
    sheet = _Sheet(
        workbook,
        _("By recipient"),
        [
            (_("Kind of recipient"), 18),
            (_("Key"), 14),
            (_("Recipient"), 36),
            (_("Kreis"), 26),
            ("committed_cents", 16),
            ("paid_cents", 16),
            ("open_cents", 16),
            (_("Bookings"), 10),
            (_("Committed (EUR)"), 18),
            (_("Paid (EUR)"), 18),
        ],
    )
    recipients = sorted(
        ((data.recipient(*key), s) for key, s in data.by_recipient.items()),
        key=lambda item: item[0].order,
    )
    for recipient, s in recipients:
        sheet.append(
            [
                recipient.kind_label,
                recipient.key,
                recipient.name,
                recipient.kreis_name,
                s.committed,
                s.paid,
                s.open,
                s.bookings,
                sheet.eur(s.committed),
                sheet.eur(s.paid),
            ]
        )
    sheet.filter(len(recipients))
    _total_row(sheet, [_("Total"), "", "", ""], data.total)


def _xlsx_kreise(workbook, data: YearSet) -> None:
    sheet = _Sheet(
        workbook,
        _("By Kreis"),
        [
            (_("Key"), 10),
            (_("Kreis"), 36),
            (_("Recipients"), 12),
            ("committed_cents", 16),
            ("paid_cents", 16),
            ("open_cents", 16),
            (_("Bookings"), 10),
            (_("Committed (EUR)"), 18),
            (_("Paid (EUR)"), 18),
        ],
    )
    kreise = sorted_kreise(data)
    for kreis_id, s, recipients in kreise:
        key, name = data.kreis_label(kreis_id)
        sheet.append(
            [
                key,
                name,
                recipients,
                s.committed,
                s.paid,
                s.open,
                s.bookings,
                sheet.eur(s.committed),
                sheet.eur(s.paid),
            ]
        )
    sheet.filter(len(kreise))
    _total_row(sheet, ["", _("Total"), len(data.by_recipient)], data.total)


def _xlsx_bookings(ctx, workbook, data: YearSet, labels: dict) -> None:
    sheet = _Sheet(
        workbook,
        _("Bookings"),
        [
            (_("ID"), 9),
            (_("Booked on"), 11),
            (_("Booked at"), 19),
            (_("Kind"), 14),
            (_("Allocation"), 10),
            (_("Kind of recipient"), 16),
            (_("Key"), 12),
            (_("Recipient"), 30),
            (_("Kreis"), 24),
            (_("Category"), 28),
            ("amount_cents", 14),
            ("committed_delta_cents", 14),
            ("paid_delta_cents", 14),
            ("available_delta_cents", 14),
            (_("Reverses booking"), 10),
            (_("Carried from booking"), 10),
            (_("Purpose"), 40),
            (_("Note"), 30),
            (_("Booked by"), 24),
        ],
    )
    kinds, categories, recipient, append = (
        labels["kind"],
        data.categories,
        data.recipient,
        sheet.ws.append,
    )
    streamed = Sums()
    committed = paid = available = count = 0
    for batch in booking_rows(ctx, data, 10, 75):
        for row in batch:
            id_, booked_on, created_at, kind, allocation_id, category_id, amount, c, p, a = row[:10]
            reverses, carried, note, booked_by, rkind, municipality_id, project_id, purpose = row[10:]
            who = recipient(rkind, municipality_id, project_id)
            category = categories.get(category_id)
            append(
                [
                    id_,
                    booked_on,
                    naive_local(created_at),
                    kinds.get(kind, kind),
                    allocation_id,
                    who.kind_label,
                    who.key,
                    who.name,
                    who.kreis_name,
                    category.name if category else category_id,
                    amount,
                    c,
                    p,
                    a,
                    reverses,
                    carried,
                    safe(purpose),
                    safe(note),
                    safe(booked_by),
                ]
            )
            committed += c
            paid += p
            available += a
            count += 1
    streamed.add(committed, paid, available, count)
    sheet.filter(count)
    check_sums(streamed, data.total, bookings_moved())


def _xlsx_allocations(ctx, workbook, data: YearSet, labels: dict) -> None:
    sheet = _Sheet(
        workbook,
        _("Allocations"),
        [
            (_("ID"), 9),
            (_("Fiscal year"), 10),
            (_("Money now in year"), 10),
            (_("Category"), 28),
            (_("Kind of recipient"), 16),
            (_("Key"), 12),
            (_("Recipient"), 30),
            (_("Kreis"), 24),
            (_("Purpose"), 40),
            (_("File reference"), 16),
            ("amount_cents", 14),
            (_("Status"), 14),
            (_("Decision date"), 11),
            ("committed_cents", 14),
            ("paid_cents", 14),
            ("open_cents", 14),
            (_("Proof of use due"), 11),
            (_("Proof of use received"), 11),
            (_("Proof of use"), 14),
        ],
    )
    statuses, proofs, years, categories = labels["status"], labels["proof"], data.years, data.categories
    recipient, append, today = data.recipient, sheet.ws.append, data.today
    committed = paid = count = 0
    for batch in allocation_rows(ctx, data, 75, 95):
        for row in batch:
            id_, year_id, current_id, category_id, rkind, municipality_id, project_id, purpose = row[:8]
            reference, amount, status, decided, due, received, c, p = row[8:]
            c, p = int(c), int(p)
            who = recipient(rkind, municipality_id, project_id)
            category = categories.get(category_id)
            append(
                [
                    id_,
                    years.get(year_id),
                    years.get(current_id),
                    category.name if category else category_id,
                    who.kind_label,
                    who.key,
                    who.name,
                    who.kreis_name,
                    safe(purpose),
                    safe(reference),
                    amount,
                    statuses.get(status, status),
                    decided,
                    c,
                    p,
                    c - p,
                    due,
                    received,
                    proofs[proof_state(status, due, received, today)],
                ]
            )
            committed += c
            paid += p
            count += 1
    sheet.filter(count)
    expected = Sums(data.total.committed, data.total.paid, 0, data.allocations)
    check_sums(
        Sums(committed, paid, 0, count),
        expected,
        _("The allocations listed do not add up to the year's totals; the report was not made."),
    )
