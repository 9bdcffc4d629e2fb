"""The annual funding report (Mittelverwendungsbericht) of one fiscal year, for the Land's auditors:
XLSX, PDF or CSV.

What it reads — one bounded set, so every figure reconciles to the cent:
  * the bookings of the year with ``id <= the year's highest booking id when the report started``.
    Bookings are append-only, and every writer of a year holds that year's row lock from before it
    draws the booking id until it commits (``ledger.lock_year``; SQLite: one writer at a time), so
    a booking of the year that is not yet visible at the start gets a higher id and stays out —
    bookings arriving while the report is made change none of its numbers;
  * the allocations of the year (those of the year itself, and those with a booking in that set,
    i.e. carried into it), with ``id <= the highest allocation id`` read after the booking bound.

The totals, the sums per category, recipient and Kreis and the count per booking kind come from a
few grouped queries over that set; the listed bookings and allocations are read in keyset batches
(``common.batches``) from the same set, and their streamed sums are checked against the grouped
totals before the file is complete. A Kreis or a kreisfreie Stadt is its own Kreis; a Gemeinde's,
Stadt's or Amt's is the Kreis it lies in; shared projects and the federation itself have none.

Formats:
  * **XLSX** (openpyxl write-only, streamed): sheets Summary (the header lines with parameters,
    time and audit head, the year's figures, counts), By category, By recipient, By Kreis, Bookings
    (every booking of the set, reversals and carry-overs included) and Allocations (with the proof
    of use: received / overdue / due / not required, as of the day the report is made). Money in
    columns named ``*_cents`` (integer numbers, what auditors reconcile), and in the summary sheets
    also as euros (a number formatted as €). Every text cell passes ``common.safe``.
  * **PDF**: the header block of ``common.build_pdf`` (parameters, generation time, audit head;
    page x of y on every page), the year's figures, by category with a bar chart of committed and
    paid, by Kreis, the twenty largest recipients and the count per booking kind. No booking list:
    its size stays bounded.
  * **CSV** (``common.CsvOut``: UTF-8 with BOM, ``;``): the bookings, one row each, under a single
    header row of fixed technical column names (the same in every locale, for import scripts); no
    preamble and no footer, so every CSV tool reads it as it is. The audit chain head is stated in
    the two last columns ``audit_seq`` and ``audit_hash`` of every row: a constant per file, but
    it survives any import, filter or sort, and an auditor can tie each row to
    ``itvsh audit verify``. (A year without bookings gives the header row only; the report row
    keeps the head as well.)

Labels are translated once per file (``ctx.locale`` is active), never per row.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select

from itvsh.funding.models import (
    ALLOCATION_STATUS_LABELS,
    BOOKING_KIND_LABELS,
    RECIPIENT_KIND_LABELS,
    YEAR_STATUS_LABELS,
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    RecipientKind,
)
from itvsh.projects.models import Project
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers import common
from itvsh.reports.renderers.common import BERLIN, safe
from itvsh.tenants.models import Municipality, MunicipalityKind

BATCH = 2000  # rows per keyset batch (a module constant, so tests can make batches small)
EUR_FORMAT = '#,##0.00 "€"'
OWN_KREIS = (MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value)
NO_KREIS = None  # the Kreis bucket of shared projects and the federation itself
TOP_RECIPIENTS = 20

# Proof-of-use states of an allocation, as of the day the report is made.
PROOF_RECEIVED, PROOF_OVERDUE, PROOF_DUE, PROOF_NOT_REQUIRED = "received", "overdue", "due", "not_required"
PROOF_STATES = (PROOF_RECEIVED, PROOF_OVERDUE, PROOF_DUE, PROOF_NOT_REQUIRED)
NO_PROOF_STATUSES = (AllocationStatus.DRAFT.value, AllocationStatus.CANCELLED.value)

# The CSV's columns: fixed technical names (not translated), money in cents.
CSV_COLUMNS = (
    "booking_id",
    "booked_on",
    "booked_at",
    "kind",
    "kind_label",
    "allocation_id",
    "recipient_kind",
    "recipient_key",
    "recipient_name",
    "kreis",
    "category_code",
    "category_name",
    "amount_cents",
    "amount_eur",
    "committed_delta_cents",
    "paid_delta_cents",
    "available_delta_cents",
    "reverses_id",
    "carried_from_id",
    "purpose",
    "note",
    "booked_by",
    "audit_seq",
    "audit_hash",
)


def proof_state(status: str, due: date | None, received: date | None, today: date) -> str:
    """Where an allocation's proof of use (Verwendungsnachweis) stands on ``today``."""
    if received is not None:
        return PROOF_RECEIVED
    if due is None or status in NO_PROOF_STATUSES:
        return PROOF_NOT_REQUIRED
    return PROOF_OVERDUE if due < today else PROOF_DUE


def _proof_state_sql(today: date):
    """:func:`proof_state` as SQL, for the counts of the summary."""
    return case(
        (Allocation.proof_of_use_received.is_not(None), PROOF_RECEIVED),
        (
            or_(Allocation.proof_of_use_due.is_(None), Allocation.status.in_(NO_PROOF_STATUSES)),
            PROOF_NOT_REQUIRED,
        ),
        (Allocation.proof_of_use_due < today, PROOF_OVERDUE),
        else_=PROOF_DUE,
    )


# --- what the report reads ------------------------------------------------------------------------


@dataclass
class Sums:
    committed: int = 0
    paid: int = 0
    available: int = 0
    bookings: int = 0

    def add(self, committed, paid, available, bookings) -> None:
        self.committed += int(committed or 0)
        self.paid += int(paid or 0)
        self.available += int(available or 0)
        self.bookings += int(bookings or 0)

    @property
    def open(self) -> int:
        return self.committed - self.paid


@dataclass(frozen=True)
class Category:
    id: int
    code: str
    name: str  # safe text, with the year for a category of another year (money carried in)
    year: int
    planned_cents: int | None  # None for a category of another year
    position: tuple


@dataclass(frozen=True)
class Recipient:
    """A recipient as the report prints it (text already safe)."""

    kind: str
    kind_label: str
    key: str
    name: str
    kreis_id: int | None
    kreis_name: str
    order: tuple


@dataclass
class YearSet:
    """One year's bounded set of bookings: the year, the bound, the names, and the grouped sums."""

    year_id: int
    year: int
    status: str
    appropriation_cents: int
    max_booking_id: int
    max_allocation_id: int
    today: date
    years: dict[int, int]
    categories: dict[int, Category]
    municipalities: dict[int, tuple]  # id -> (key, name, kind, kreis_id)
    projects: dict[int, str]
    total: Sums = field(default_factory=Sums)
    by_kind: dict[str, Sums] = field(default_factory=dict)
    by_category: dict[int, Sums] = field(default_factory=dict)
    by_recipient: dict[tuple, Sums] = field(default_factory=dict)
    proof_counts: dict[str, int] = field(default_factory=dict)
    allocations: int = 0
    _recipients: dict = field(default_factory=dict)

    # -- derived figures --
    @property
    def carried_in_cents(self) -> int:
        return self.total.available

    @property
    def available_cents(self) -> int:
        return self.appropriation_cents + self.total.available

    @property
    def planned_cents(self) -> int:
        return sum(c.planned_cents or 0 for c in self.categories.values() if c.year == self.year)

    def in_set(self):
        """The bookings of the set (as WHERE conditions)."""
        return (Booking.fiscal_year_id == self.year_id, Booking.id <= self.max_booking_id)

    def allocations_in_set(self):
        booked = select(Booking.allocation_id).where(*self.in_set())
        return (
            or_(Allocation.fiscal_year_id == self.year_id, Allocation.id.in_(booked)),
            Allocation.id <= self.max_allocation_id,
        )

    def recipient(self, kind: str, municipality_id: int | None, project_id: int | None) -> Recipient:
        key = (kind, municipality_id, project_id)
        found = self._recipients.get(key)
        if found is None:
            found = self._recipients[key] = self._make_recipient(kind, municipality_id, project_id)
        return found

    def _make_recipient(self, kind, municipality_id, project_id) -> Recipient:
        label = safe(str(RECIPIENT_KIND_LABELS.get(kind, kind)))
        if kind == RecipientKind.MEMBER:
            key, name, mkind, kreis_id = self.municipalities.get(
                municipality_id, (str(municipality_id), "", "", None)
            )
            kreis = municipality_id if mkind in OWN_KREIS else (kreis_id or municipality_id)
            kreis_name = safe(self.municipalities[kreis][1]) if kreis in self.municipalities else ""
            return Recipient(kind, label, safe(key), safe(name), kreis, kreis_name, (0, key))
        if kind == RecipientKind.PROJECT:
            name = self.projects.get(project_id, "")
            return Recipient(kind, label, f"project:{project_id}", safe(name), NO_KREIS, "", (1, name))
        return Recipient(kind, label, "federation", label, NO_KREIS, "", (2, ""))

    def kreis_sums(self) -> dict[int | None, tuple[Sums, int]]:
        """Sums per Kreis (NO_KREIS for projects and the federation) and recipients in each."""
        sums: dict[int | None, Sums] = defaultdict(Sums)
        counts: dict[int | None, int] = defaultdict(int)
        for key, s in self.by_recipient.items():
            kreis = self.recipient(*key).kreis_id
            sums[kreis].add(s.committed, s.paid, s.available, s.bookings)
            counts[kreis] += 1
        return {k: (sums[k], counts[k]) for k in sums}

    def kreis_label(self, kreis_id: int | None) -> tuple[str, str]:
        if kreis_id is NO_KREIS or kreis_id not in self.municipalities:
            return "", _("no Kreis (shared projects, the federation itself)")
        key, name, _kind, _kreis = self.municipalities[kreis_id]
        return safe(key), safe(name)

    def summary(self) -> dict:
        return {
            "year": self.year,
            "appropriation_cents": self.appropriation_cents,
            "carried_in_cents": self.carried_in_cents,
            "available_cents": self.available_cents,
            "committed_cents": self.total.committed,
            "paid_cents": self.total.paid,
            "open_cents": self.total.open,
            "bookings": self.total.bookings,
            "allocations": self.allocations,
            "max_booking_id": self.max_booking_id,
        }


def read_year(session, year_number: int, today: date) -> YearSet:
    """The bound of the set, the names, and its grouped sums: a fixed number of queries."""
    years = {
        row.id: row
        for row in session.execute(
            select(FiscalYear.id, FiscalYear.year, FiscalYear.status, FiscalYear.appropriation_cents)
        )
    }
    year = next((row for row in years.values() if row.year == year_number), None)
    if year is None:  # request_report checks this; a year cannot be deleted once it has one
        raise LookupError(f"no fiscal year {year_number}")
    max_booking = session.execute(
        select(func.max(Booking.id)).where(Booking.fiscal_year_id == year.id)
    ).scalar()
    max_allocation = session.execute(select(func.max(Allocation.id))).scalar()
    data = YearSet(
        year_id=year.id,
        year=year.year,
        status=year.status,
        appropriation_cents=int(year.appropriation_cents),
        max_booking_id=int(max_booking or 0),
        max_allocation_id=int(max_allocation or 0),
        today=today,
        years={row.id: row.year for row in years.values()},
        categories={},
        municipalities={
            row.id: (row.key, row.name, row.kind, row.kreis_id)
            for row in session.execute(
                select(
                    Municipality.id,
                    Municipality.key,
                    Municipality.name,
                    Municipality.kind,
                    Municipality.kreis_id,
                )
            )
        },
        projects={},
    )
    data.projects = {row.id: row.name for row in session.execute(select(Project.id, Project.name))}
    used = select(Booking.category_id).where(*data.in_set())
    for row in session.execute(
        select(
            BudgetCategory.id,
            BudgetCategory.code,
            BudgetCategory.name,
            BudgetCategory.planned_cents,
            BudgetCategory.position,
            BudgetCategory.fiscal_year_id,
        ).where(or_(BudgetCategory.fiscal_year_id == year.id, BudgetCategory.id.in_(used)))
    ):
        own = row.fiscal_year_id == year.id
        category_year = data.years[row.fiscal_year_id]
        name = row.name if own else _("%(name)s (from %(year)s)", name=row.name, year=category_year)
        data.categories[row.id] = Category(
            row.id,
            safe(row.code),
            safe(name),
            category_year,
            int(row.planned_cents) if own else None,
            (0 if own else 1, -category_year, row.position, row.id),
        )

    sums = (
        func.sum(Booking.committed_delta_cents),
        func.sum(Booking.paid_delta_cents),
        func.sum(Booking.available_delta_cents),
        func.count(Booking.id),
    )
    for kind, *values in session.execute(
        select(Booking.kind, *sums).where(*data.in_set()).group_by(Booking.kind)
    ):
        data.by_kind[kind] = Sums()
        data.by_kind[kind].add(*values)
        data.total.add(*values)
    for category_id, *values in session.execute(
        select(Booking.category_id, *sums).where(*data.in_set()).group_by(Booking.category_id)
    ):
        data.by_category.setdefault(category_id, Sums()).add(*values)
    recipient = (Allocation.recipient_kind, Allocation.municipality_id, Allocation.project_id)
    for kind, municipality_id, project_id, *values in session.execute(
        select(*recipient, *sums)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .where(*data.in_set())
        .group_by(*recipient)
    ):
        data.by_recipient.setdefault((kind, municipality_id, project_id), Sums()).add(*values)
    state = _proof_state_sql(today)
    for proof, count in session.execute(
        select(state, func.count(Allocation.id)).where(*data.allocations_in_set()).group_by(state)
    ):
        data.proof_counts[proof] = int(count)
    data.allocations = sum(data.proof_counts.values())
    return data


def _title(data: YearSet) -> str:
    return _("Annual funding report (Mittelverwendungsbericht) %(year)s", year=data.year)


def _local(moment: datetime | None) -> datetime | None:
    """A stored time as naive local (Berlin) time, as spreadsheets show it (SQLite gives naive UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BERLIN).replace(tzinfo=None)


def _booking_rows(ctx: RenderContext, data: YearSet, start: int, end: int):
    """The bookings of the set in keyset batches, each row with its allocation's recipient and
    purpose; progress from ``start`` to ``end`` percent between batches."""
    statement = (
        select(
            Booking.id,
            Booking.booked_on,
            Booking.created_at,
            Booking.kind,
            Booking.allocation_id,
            Booking.category_id,
            Booking.amount_cents,
            Booking.committed_delta_cents,
            Booking.paid_delta_cents,
            Booking.available_delta_cents,
            Booking.reverses_id,
            Booking.carried_from_id,
            Booking.note,
            Booking.booked_by,
            Allocation.recipient_kind,
            Allocation.municipality_id,
            Allocation.project_id,
            Allocation.purpose,
        )
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .where(*data.in_set())
    )
    total = max(1, data.total.bookings)
    done = 0
    for batch in common.batches(ctx.session, statement, Booking.id, BATCH):
        yield batch
        done += len(batch)
        ctx.progress(start + (end - start) * done // total)


def _allocation_rows(ctx: RenderContext, data: YearSet, start: int, end: int):
    def in_year(column):
        # "+ 0": the year must not be the index this per-allocation sum looks up (it would scan
        # the whole year for every allocation); the allocation's index finds its few bookings.
        return (
            select(func.coalesce(func.sum(column), 0))
            .where(
                Booking.allocation_id == Allocation.id,
                Booking.fiscal_year_id + 0 == data.year_id,
                Booking.id <= data.max_booking_id,
            )
            .scalar_subquery()
        )

    statement = select(
        Allocation.id,
        Allocation.fiscal_year_id,
        Allocation.current_year_id,
        Allocation.category_id,
        Allocation.recipient_kind,
        Allocation.municipality_id,
        Allocation.project_id,
        Allocation.purpose,
        Allocation.file_reference,
        Allocation.amount_cents,
        Allocation.status,
        Allocation.decision_date,
        Allocation.proof_of_use_due,
        Allocation.proof_of_use_received,
        in_year(Booking.committed_delta_cents),
        in_year(Booking.paid_delta_cents),
    ).where(*data.allocations_in_set())
    total = max(1, data.allocations)
    done = 0
    for batch in common.batches(ctx.session, statement, Allocation.id, BATCH):
        yield batch
        done += len(batch)
        ctx.progress(start + (end - start) * done // total)


def _bookings_moved() -> str:
    return _("The bookings listed do not add up to the year's totals; the report was not made.")


class LedgerMoved(RuntimeError):
    """The listed rows do not add up to the grouped totals (cannot happen with an append-only
    ledger; checked so that a file that does not reconcile is never published)."""


def _check(streamed: Sums, expected: Sums, message: str) -> None:
    if (streamed.committed, streamed.paid, streamed.available, streamed.bookings) != (
        expected.committed,
        expected.paid,
        expected.available,
        expected.bookings,
    ):
        raise LedgerMoved(message)


# --- labels, once per file ------------------------------------------------------------------------


def _labels() -> dict:
    return {
        "kind": {k.value: safe(str(v)) for k, v in BOOKING_KIND_LABELS.items()},
        "status": {k.value: safe(str(v)) for k, v in ALLOCATION_STATUS_LABELS.items()},
        "proof": {
            PROOF_RECEIVED: _("received"),
            PROOF_OVERDUE: _("overdue"),
            PROOF_DUE: _("due"),
            PROOF_NOT_REQUIRED: _("not required"),
        },
    }


def _figure_rows(data: YearSet) -> list[tuple[str, int]]:
    return [
        (_("Appropriation"), data.appropriation_cents),
        (_("Carried in from the previous year"), data.carried_in_cents),
        (_("Available"), data.available_cents),
        (_("Planned in the categories"), data.planned_cents),
        (_("Committed"), data.total.committed),
        (_("Paid"), data.total.paid),
        (_("Not yet committed"), data.available_cents - data.total.committed),
        (_("Open commitments (committed, not yet paid)"), data.total.open),
    ]


def _count_rows(data: YearSet, labels: dict) -> list[tuple[str, int]]:
    rows = [(_("Bookings"), data.total.bookings)]
    rows += [
        (f"  {labels['kind'][kind.value]}", data.by_kind.get(kind.value, Sums()).bookings)
        for kind in BookingKind
    ]
    rows.append((_("Allocations"), data.allocations))
    rows += [
        (f"  {_('Proof of use')}: {labels['proof'][state]}", data.proof_counts.get(state, 0))
        for state in PROOF_STATES
    ]
    rows.append((_("Recipients"), len(data.by_recipient)))
    rows.append((_("Last booking included (id)"), data.max_booking_id))
    return rows


def _sorted_categories(data: YearSet) -> list[Category]:
    ids = set(data.categories) | set(data.by_category)
    return sorted(
        (data.categories.get(i) or Category(i, "", f"#{i}", data.year, None, (2, 0, 0, i)) for i in ids),
        key=lambda c: c.position,
    )


def _sorted_kreise(data: YearSet) -> list[tuple[int | None, Sums, int]]:
    kreise = data.kreis_sums()
    return sorted(
        ((k, s, n) for k, (s, n) in kreise.items()),
        key=lambda item: (item[0] is NO_KREIS, data.kreis_label(item[0])[1]),
    )


# --- XLSX -----------------------------------------------------------------------------------------


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


def _xlsx(ctx: RenderContext, out, data: YearSet) -> None:
    from openpyxl import Workbook

    labels = _labels()
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
    title = _title(data)
    sheet.bold_row([title])
    for label, value in common.header_lines(ctx, title):
        sheet.append([safe(label), safe(value)])
    sheet.append([safe(common.audit_line(ctx))])
    sheet.append([_("Fiscal year"), data.year])
    sheet.append([_("Status"), safe(str(YEAR_STATUS_LABELS.get(data.status, data.status)))])
    sheet.append([])
    sheet.bold_row([_("Figure"), "amount_cents", _("Amount (EUR)")])
    for label, cents in _figure_rows(data):
        sheet.append([safe(label), cents, sheet.eur(cents)])
    sheet.append([])
    sheet.bold_row([_("Count"), _("Number")])
    for label, number in _count_rows(data, labels):
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
    categories = _sorted_categories(data)
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
    kreise = _sorted_kreise(data)
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
    for batch in _booking_rows(ctx, data, 10, 75):
        for row in batch:
            id_, booked_on, created_at, kind, allocation_id, category_id, amount, c, p, a = row[:10]
            reverses, carried, note, booked_by, rkind, municipality_id, project_id, purpose = row[10:]
            who = recipient(rkind, municipality_id, project_id)
            category = categories.get(category_id)
            append(
                [
                    id_,
                    booked_on,
                    _local(created_at),
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
    _check(streamed, data.total, _bookings_moved())


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
    for batch in _allocation_rows(ctx, data, 75, 95):
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
    _check(
        Sums(committed, paid, 0, count),
        expected,
        _("The allocations listed do not add up to the year's totals; the report was not made."),
    )


# --- CSV ------------------------------------------------------------------------------------------


def _csv(ctx: RenderContext, out, data: YearSet) -> None:
    labels = _labels()
    kinds, categories, recipient = labels["kind"], data.categories, data.recipient
    locale, seq, head = ctx.locale, ctx.audit_seq, ctx.audit_hash
    writer = common.CsvOut(out)
    writer.row(CSV_COLUMNS)
    committed = paid = available = count = 0
    for batch in _booking_rows(ctx, data, 5, 95):
        for row in batch:
            id_, booked_on, created_at, kind, allocation_id, category_id, amount, c, p, a = row[:10]
            reverses, carried, note, booked_by, rkind, municipality_id, project_id, purpose = row[10:]
            who = recipient(rkind, municipality_id, project_id)
            category = categories.get(category_id)
            local = _local(created_at)
            writer.row(
                [
                    id_,
                    booked_on.isoformat(),
                    local.isoformat(sep=" ", timespec="seconds") if local else "",
                    kind,
                    kinds.get(kind, kind),
                    allocation_id,
                    rkind,
                    who.key,
                    who.name,
                    who.kreis_name,
                    category.code if category else "",
                    category.name if category else category_id,
                    amount,
                    common.money(amount, locale),
                    c,
                    p,
                    a,
                    "" if reverses is None else reverses,
                    "" if carried is None else carried,
                    purpose,
                    note,
                    booked_by,
                    seq,
                    head,
                ]
            )
            committed += c
            paid += p
            available += a
            count += 1
    writer.close()
    _check(Sums(committed, paid, available, count), data.total, _bookings_moved())


# --- PDF ------------------------------------------------------------------------------------------


def _pdf(ctx: RenderContext, out, data: YearSet) -> None:
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table

    from itvsh.reports.renderers.charts import money_bar_chart

    styles = common.pdf_styles()
    labels = _labels()
    locale = ctx.locale

    def money(cents):
        return "" if cents is None else common.money(cents, locale)

    def heading(text):
        return Paragraph(common._esc(text), styles["Heading2"])

    def table(rows, widths, numeric_from=1, total=False):
        t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
        style = common.table_style(numeric_from=numeric_from)
        if total:
            style.add("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 8)
        t.setStyle(style)
        return t

    story = []
    story.append(heading(_("Year totals")))
    story.append(
        table(
            [[_("Figure"), _("Amount")], *[[label, money(cents)] for label, cents in _figure_rows(data)]],
            [110, 50],
        )
    )
    story.append(Spacer(1, 3 * mm))
    counts = [
        [_("Count"), _("Number")],
        *[[label.strip(), str(n)] for label, n in _count_rows(data, labels)],
    ]
    story.append(table(counts, [110, 50]))

    categories = _sorted_categories(data)
    rows = [[_("Category"), _("Planned"), _("Committed"), _("Paid"), _("Open")]]
    for category in categories:
        s = data.by_category.get(category.id, Sums())
        rows.append(
            [
                _clip(category.name, 48),
                money(category.planned_cents),
                money(s.committed),
                money(s.paid),
                money(s.open),
            ]
        )
    rows.append(
        [
            _("Total"),
            money(data.planned_cents),
            money(data.total.committed),
            money(data.total.paid),
            money(data.total.open),
        ]
    )
    chart = money_bar_chart(
        [c.name for c in categories],
        [
            (_("Committed"), [data.by_category.get(c.id, Sums()).committed for c in categories]),
            (_("Paid"), [data.by_category.get(c.id, Sums()).paid for c in categories]),
        ],
        locale,
    )
    story += [
        Spacer(1, 4 * mm),
        KeepTogether([heading(_("By category")), table(rows, [66, 26, 26, 26, 26], total=True)]),
        Spacer(1, 3 * mm),
        chart,
    ]

    rows = [[_("Kreis"), _("Recipients"), _("Committed"), _("Paid"), _("Open")]]
    for kreis_id, s, recipients in _sorted_kreise(data):
        rows.append(
            [
                _clip(data.kreis_label(kreis_id)[1], 50),
                str(recipients),
                money(s.committed),
                money(s.paid),
                money(s.open),
            ]
        )
    rows.append(
        [
            _("Total"),
            str(len(data.by_recipient)),
            money(data.total.committed),
            money(data.total.paid),
            money(data.total.open),
        ]
    )
    story += [Spacer(1, 4 * mm), heading(_("By Kreis")), table(rows, [70, 20, 26, 26, 26], total=True)]

    largest = sorted(
        ((data.recipient(*key), s) for key, s in data.by_recipient.items()),
        key=lambda item: (-item[1].committed, item[0].order),
    )[:TOP_RECIPIENTS]
    rows = [[_("Recipient"), _("Kreis"), _("Committed"), _("Paid")]]
    for recipient, s in largest:
        rows.append(
            [_clip(recipient.name, 40), _clip(recipient.kreis_name, 26), money(s.committed), money(s.paid)]
        )
    story += [
        Spacer(1, 4 * mm),
        heading(
            _("The %(n)s largest recipients (of %(total)s)", n=len(largest), total=len(data.by_recipient))
        ),
        table(rows, [64, 44, 30, 30], numeric_from=2),
    ]

    rows = [[_("Kind"), _("Bookings"), _("Committed"), _("Paid"), _("Carried in")]]
    for kind in BookingKind:
        s = data.by_kind.get(kind.value, Sums())
        rows.append(
            [
                labels["kind"][kind.value],
                str(s.bookings),
                money(s.committed),
                money(s.paid),
                money(s.available),
            ]
        )
    t = data.total
    rows.append([_("Total"), str(t.bookings), money(t.committed), money(t.paid), money(t.available)])
    story += [
        Spacer(1, 4 * mm),
        heading(_("Bookings by kind")),
        table(rows, [50, 20, 32, 32, 32], total=True),
    ]
    story += [Spacer(1, 4 * mm), Paragraph(common._esc(common.audit_line(ctx)), styles["Normal"])]
    ctx.progress(60)
    common.build_pdf(out, ctx, _title(data), story)


def _clip(text, limit: int) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the renderer ---------------------------------------------------------------------------------

FORMATS = {"xlsx": _xlsx, "pdf": _pdf, "csv": _csv}


def render(ctx: RenderContext, out) -> dict:
    """Write the annual funding report of ``ctx.parameters["year"]`` in ``ctx.format`` to ``out``;
    return the year's totals in cents, the number of bookings and the highest booking id included."""
    write = FORMATS.get(ctx.format)
    if write is None:
        raise ValueError(f"the annual funding report comes as xlsx, pdf or csv, not {ctx.format!r}")
    today = ctx.generated_at.astimezone(BERLIN).date()
    data = read_year(ctx.session, int(ctx.parameters["year"]), today)
    ctx.progress(5)
    write(ctx, out, data)
    return data.summary()
