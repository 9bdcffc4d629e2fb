"""What the annual funding report reads: one bounded set of a fiscal year's bookings and
allocations, its grouped sums, the listings of that set in keyset batches, and the check that the
streamed listings add up to the grouped sums (:class:`LedgerMoved` otherwise).

The set — so every figure reconciles to the cent:
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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select

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
from itvsh.reports.renderers import common
from itvsh.reports.renderers.common import BERLIN, safe
from itvsh.tenants.models import Municipality, MunicipalityKind

BATCH = 2000  # rows per keyset batch, unless ``read_year`` is given another (``annual.BATCH``)
OWN_KREIS = (MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value)
NO_KREIS = None  # the Kreis bucket of shared projects and the federation itself

# Proof-of-use states of an allocation, as of the day the report is made.
PROOF_RECEIVED, PROOF_OVERDUE, PROOF_DUE, PROOF_NOT_REQUIRED = "received", "overdue", "due", "not_required"
PROOF_STATES = (PROOF_RECEIVED, PROOF_OVERDUE, PROOF_DUE, PROOF_NOT_REQUIRED)
NO_PROOF_STATUSES = (AllocationStatus.DRAFT.value, AllocationStatus.CANCELLED.value)


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
    batch: int = BATCH  # rows per keyset batch of the listings
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


def read_year(session, year_number: int, today: date, batch: int = BATCH) -> YearSet:
    """The bound of the set, the names, and its grouped sums: a fixed number of queries. The
    listings of the set are read ``batch`` rows at a time."""
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
        batch=batch,
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


def naive_local(moment: datetime | None) -> datetime | None:
    """A stored time as naive local (Berlin) time, as spreadsheets show it (SQLite gives naive UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BERLIN).replace(tzinfo=None)


def booking_rows(ctx: RenderContext, data: YearSet, start: int, end: int):
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
    for batch in common.batches(ctx.session, statement, Booking.id, data.batch):
        yield batch
        done += len(batch)
        ctx.progress(start + (end - start) * done // total)


def allocation_rows(ctx: RenderContext, data: YearSet, start: int, end: int):
    """The allocations of the set in keyset batches, each with its committed and paid sums in the
    set; progress from ``start`` to ``end`` percent between batches."""

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
    for batch in common.batches(ctx.session, statement, Allocation.id, data.batch):
        yield batch
        done += len(batch)
        ctx.progress(start + (end - start) * done // total)


def bookings_moved() -> str:
    """The message of :class:`LedgerMoved` for a booking listing (translated when raised)."""
    return _("The bookings listed do not add up to the year's totals; the report was not made.")


class LedgerMoved(RuntimeError):
    """The listed rows do not add up to the grouped totals (cannot happen with an append-only
    ledger; checked so that a file that does not reconcile is never published)."""


def check_sums(streamed: Sums, expected: Sums, message: str) -> None:
    """Raise :class:`LedgerMoved` with ``message`` unless the streamed sums equal the expected."""
    if (streamed.committed, streamed.paid, streamed.available, streamed.bookings) != (
        expected.committed,
        expected.paid,
        expected.available,
        expected.bookings,
    ):
        raise LedgerMoved(message)
