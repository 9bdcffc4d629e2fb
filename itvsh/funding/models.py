"""Funding: fiscal years and their budget categories, allocations (Zuwendungen), distributions
(Verteilungsschlüssel) and the append-only ledger of bookings.

Every figure is a sum of bookings. Each booking keeps its amount (always > 0, whole cents) and the
signed effect it has on three running figures, fixed when it is written and never changed:

* ``committed_delta_cents`` — money bound in the booking's year (commitment +, release -,
  carry-over out of the year -, carry-over into the year +, a reversal the opposite of what it
  reverses);
* ``paid_delta_cents`` — money paid in the booking's year (disbursement +, repayment -);
* ``available_delta_cents`` — money added to the year's appropriation (carry-over into the year +).

So a year's available money is ``appropriation + SUM(available_delta)``, its committed money
``SUM(committed_delta)``, its payments ``SUM(paid_delta)`` — per category, recipient or Kreis by
grouping the same sums. Allocations and bookings are private to their recipient (``TenantOwned``;
the federation's own allocations carry no tenant and are seen by staff and auditors only).

Recipients: a member (``municipality_id``), a shared project (``project_id``; its allocations carry
no tenant, like the federation's own) or the federation itself.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from itvsh.core.db import utcnow
from itvsh.core.tenancy import TenantOwned
from itvsh.extensions import db
from itvsh.tenants.models import Municipality

DEFAULT_APPROPRIATION_CENTS = 150_000_000  # 1,500,000.00 € a year from the Land


class YearStatus(StrEnum):
    PLANNING = "planning"
    OPEN = "open"
    CLOSED = "closed"


YEAR_STATUS_LABELS = {
    YearStatus.PLANNING: _l("planning"),
    YearStatus.OPEN: _l("open"),
    YearStatus.CLOSED: _l("closed"),
}


class AllocationStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    SETTLED = "settled"
    CANCELLED = "cancelled"


ALLOCATION_STATUS_LABELS = {
    AllocationStatus.DRAFT: _l("draft"),
    AllocationStatus.APPROVED: _l("approved"),
    AllocationStatus.PARTIALLY_PAID: _l("partially paid"),
    AllocationStatus.PAID: _l("paid"),
    AllocationStatus.SETTLED: _l("settled"),
    AllocationStatus.CANCELLED: _l("cancelled"),
}


class RecipientKind(StrEnum):
    MEMBER = "member"
    PROJECT = "project"
    FEDERATION = "federation"


RECIPIENT_KIND_LABELS = {
    RecipientKind.MEMBER: _l("member"),
    RecipientKind.PROJECT: _l("shared project"),
    RecipientKind.FEDERATION: _l("the federation itself"),
}


class BookingKind(StrEnum):
    COMMITMENT = "commitment"
    DISBURSEMENT = "disbursement"
    RELEASE = "release"
    REPAYMENT = "repayment"
    REVERSAL = "reversal"
    CARRY_OVER = "carry_over"


BOOKING_KIND_LABELS = {
    BookingKind.COMMITMENT: _l("commitment"),
    BookingKind.DISBURSEMENT: _l("disbursement"),
    BookingKind.RELEASE: _l("release"),
    BookingKind.REPAYMENT: _l("repayment"),
    BookingKind.REVERSAL: _l("reversal"),
    BookingKind.CARRY_OVER: _l("carry-over"),
}


class DistributionMethod(StrEnum):
    EQUAL = "equal"
    PER_CAPITA = "per_capita"
    BASE_PLUS_PER_CAPITA = "base_plus_per_capita"


DISTRIBUTION_METHOD_LABELS = {
    DistributionMethod.EQUAL: _l("equal shares"),
    DistributionMethod.PER_CAPITA: _l("per capita"),
    DistributionMethod.BASE_PLUS_PER_CAPITA: _l("base amount plus per capita"),
}


class DistributionSelection(StrEnum):
    ALL = "all"
    KREIS = "kreis"
    AMT = "amt"
    LIST = "list"


DISTRIBUTION_SELECTION_LABELS = {
    DistributionSelection.ALL: _l("all member Gemeinden"),
    DistributionSelection.KREIS: _l("the member Gemeinden of one Kreis"),
    DistributionSelection.AMT: _l("the member Gemeinden of one Amt"),
    DistributionSelection.LIST: _l("a hand-picked list"),
}


class FiscalYear(db.Model):
    """A Haushaltsjahr (= calendar year) with the Land's appropriation (Ansatz).

    The row is also the ledger's lock: the booking service locks it (``FOR UPDATE``) before it
    checks and books, so concurrent writers of one year queue (SQLite: ``BEGIN IMMEDIATE``)."""

    __tablename__ = "fiscal_years"
    __table_args__ = (
        CheckConstraint("appropriation_cents >= 0", name="appropriation_not_negative"),
        CheckConstraint("status IN ('planning', 'open', 'closed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, unique=True)
    appropriation_cents: Mapped[int] = mapped_column(BigInteger, default=DEFAULT_APPROPRIATION_CENTS)
    status: Mapped[str] = mapped_column(String(20), default=YearStatus.PLANNING.value)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    categories: Mapped[list[BudgetCategory]] = relationship(
        back_populates="fiscal_year", order_by="BudgetCategory.position, BudgetCategory.id"
    )

    @property
    def status_label(self) -> str:
        return str(YEAR_STATUS_LABELS.get(self.status, self.status))

    def audit_view(self) -> dict:
        return {"year": self.year, "appropriation_cents": self.appropriation_cents, "status": self.status}

    def __str__(self) -> str:
        return str(self.year)


class BudgetCategory(db.Model):
    """A part of one year's budget (e.g. Zuweisungen an Kommunen) with its planned amount."""

    __tablename__ = "budget_categories"
    __table_args__ = (
        UniqueConstraint("fiscal_year_id", "code", name="code_per_year"),
        CheckConstraint("planned_cents >= 0", name="planned_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    planned_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    fiscal_year: Mapped[FiscalYear] = relationship(back_populates="categories")

    def audit_view(self) -> dict:
        return {
            "year_id": self.fiscal_year_id,
            "code": self.code,
            "name": self.name,
            "planned_cents": self.planned_cents,
        }

    def __str__(self) -> str:
        return self.name


class Distribution(db.Model):
    """A Verteilungsschlüssel applied once: the key, its parameters and the population date, kept
    with the draft allocations it created."""

    __tablename__ = "distributions"
    __table_args__ = (
        CheckConstraint("total_cents > 0", name="total_positive"),
        CheckConstraint("base_cents >= 0", name="base_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    category_id: Mapped[int] = mapped_column(
        ForeignKey("budget_categories.id", ondelete="RESTRICT"), index=True
    )
    method: Mapped[str] = mapped_column(String(30))
    selection: Mapped[str] = mapped_column(String(10))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)  # kreis/amt key or the list of keys
    total_cents: Mapped[int] = mapped_column(BigInteger)
    base_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    population_date: Mapped[date | None] = mapped_column(Date)
    recipients: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    fiscal_year: Mapped[FiscalYear] = relationship()
    category: Mapped[BudgetCategory] = relationship()

    def audit_view(self) -> dict:
        return {
            "year_id": self.fiscal_year_id,
            "category_id": self.category_id,
            "method": self.method,
            "selection": self.selection,
            "parameters": self.parameters,
            "total_cents": self.total_cents,
            "base_cents": self.base_cents,
            "population_date": self.population_date,
            "recipients": self.recipients,
            "purpose": self.purpose,
        }

    def __str__(self) -> str:
        return f"{self.purpose} ({self.id})"


class Allocation(TenantOwned, db.Model):
    """A Zuwendung: money for one recipient, for a purpose, from one year's category. Its status
    changes only through the funding services (``funding/ledger.py``); its figures are sums of its
    bookings."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "(recipient_kind = 'member' AND municipality_id IS NOT NULL AND project_id IS NULL)"
            " OR (recipient_kind = 'project' AND project_id IS NOT NULL AND municipality_id IS NULL)"
            " OR (recipient_kind = 'federation' AND municipality_id IS NULL AND project_id IS NULL)",
            name="recipient_consistent",
        ),
        CheckConstraint(
            "status IN ('draft', 'approved', 'partially_paid', 'paid', 'settled', 'cancelled')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    # Where its bound money sits now: its own year, or the year it was carried into.
    current_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    category_id: Mapped[int] = mapped_column(
        ForeignKey("budget_categories.id", ondelete="RESTRICT"), index=True
    )
    recipient_kind: Mapped[str] = mapped_column(String(20))
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    purpose: Mapped[str] = mapped_column(String(500))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=AllocationStatus.DRAFT.value, index=True)
    decision_date: Mapped[date | None] = mapped_column(Date)
    file_reference: Mapped[str] = mapped_column(String(100), default="")
    proof_of_use_due: Mapped[date | None] = mapped_column(Date)
    proof_of_use_received: Mapped[date | None] = mapped_column(Date)
    distribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("distributions.id", ondelete="RESTRICT"), index=True
    )
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    fiscal_year: Mapped[FiscalYear] = relationship(foreign_keys=[fiscal_year_id])
    current_year: Mapped[FiscalYear] = relationship(foreign_keys=[current_year_id])
    category: Mapped[BudgetCategory] = relationship()
    municipality: Mapped[Municipality | None] = relationship()
    project = relationship("Project")
    distribution: Mapped[Distribution | None] = relationship()

    @property
    def status_label(self) -> str:
        return str(ALLOCATION_STATUS_LABELS.get(self.status, self.status))

    @property
    def recipient_label(self) -> str:
        if self.recipient_kind == RecipientKind.FEDERATION:
            return str(RECIPIENT_KIND_LABELS[RecipientKind.FEDERATION])
        if self.recipient_kind == RecipientKind.PROJECT:
            return str(self.project) if self.project is not None else ""
        return str(self.municipality) if self.municipality is not None else ""

    def audit_view(self) -> dict:
        return {
            "year_id": self.fiscal_year_id,
            "category_id": self.category_id,
            "recipient_kind": self.recipient_kind,
            "municipality_id": self.municipality_id,
            "project_id": self.project_id,
            "purpose": self.purpose,
            "amount_cents": self.amount_cents,
            "status": self.status,
            "decision_date": self.decision_date,
            "file_reference": self.file_reference,
            "proof_of_use_due": self.proof_of_use_due,
            "proof_of_use_received": self.proof_of_use_received,
            "distribution_id": self.distribution_id,
        }

    def __str__(self) -> str:
        return f"{self.purpose} - {self.recipient_label}"


class Booking(TenantOwned, db.Model):
    """One entry of the append-only ledger (database triggers refuse UPDATE and DELETE).

    A correction is a ``reversal`` naming the booking it cancels (``reverses_id`` is unique: a
    booking is reversed at most once). A carry-over is a pair: the half out of the closing year, and
    the half into the next year, which names the first in ``carried_from_id``."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "kind IN ('commitment', 'disbursement', 'release', 'repayment', 'reversal', 'carry_over')",
            name="kind_known",
        ),
        CheckConstraint("(kind = 'reversal') = (reverses_id IS NOT NULL)", name="reversal_names_booking"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id", ondelete="RESTRICT"), index=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("budget_categories.id", ondelete="RESTRICT"), index=True
    )
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    committed_delta_cents: Mapped[int] = mapped_column(BigInteger)
    paid_delta_cents: Mapped[int] = mapped_column(BigInteger)
    available_delta_cents: Mapped[int] = mapped_column(BigInteger)
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True
    )
    carried_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True
    )
    booked_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(500), default="")
    booked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    booked_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    fiscal_year: Mapped[FiscalYear] = relationship()
    allocation: Mapped[Allocation] = relationship()
    category: Mapped[BudgetCategory] = relationship()
    reverses: Mapped[Booking | None] = relationship(remote_side=[id], foreign_keys=[reverses_id])

    @property
    def kind_label(self) -> str:
        return str(BOOKING_KIND_LABELS.get(self.kind, self.kind))

    def audit_view(self) -> dict:
        return {
            "year_id": self.fiscal_year_id,
            "allocation_id": self.allocation_id,
            "kind": self.kind,
            "amount_cents": self.amount_cents,
            "committed_delta_cents": self.committed_delta_cents,
            "paid_delta_cents": self.paid_delta_cents,
            "available_delta_cents": self.available_delta_cents,
            "reverses_id": self.reverses_id,
            "carried_from_id": self.carried_from_id,
            "booked_on": self.booked_on,
            "note": self.note,
        }

    def __str__(self) -> str:
        return f"{self.kind_label} {self.id}"


class IdempotencyKey(db.Model):
    """A request's idempotency key (a form's hidden token, the API's ``Idempotency-Key``) and what
    it made, so a second submission returns the first result instead of writing again."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    action: Mapped[str] = mapped_column(String(60))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request's parameters
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
