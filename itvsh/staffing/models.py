"""Staffing: the register of seconded staff (StaffMember), their secondments (Abordnung, Zuweisung,
Personalgestellung) and their assignments (Einsätze) to members.

Shares of working time (Stellenanteil, VZÄ) are integers per mille: 1000 = one full-time
equivalent, 500 = half. Periods are whole days, both ends included; an open end (``ends_on`` NULL)
runs until further notice.

Personal data is kept minimal: name, work email, home authority, notes. The personnel cost per year
is optional and never shown to members. Each person has a stable pseudonym for auditors' exports.

Assignments are private to the member they are for (``TenantOwned``). Their target is a member or
a shared project (``project_id``; such assignments carry no tenant and are the project's people).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from itvsh.core import settings  # noqa: F401  (the settings table: whether auditors see staff names)
from itvsh.core.db import utcnow
from itvsh.core.tenancy import TenantOwned
from itvsh.extensions import db
from itvsh.tenants.models import Municipality

FULL_TIME = 1000  # per mille
DASH = "\u2013"  # en dash between the days of a period


class Instrument(StrEnum):
    ABORDNUNG = "abordnung"
    ZUWEISUNG = "zuweisung"
    PERSONALGESTELLUNG = "personalgestellung"


INSTRUMENT_LABELS = {
    Instrument.ABORDNUNG: _l("Abordnung (secondment)"),
    Instrument.ZUWEISUNG: _l("Zuweisung (assignment of duties)"),
    Instrument.PERSONALGESTELLUNG: _l("Personalgestellung (provision of staff)"),
}


class CostBearer(StrEnum):
    LAND = "land"
    FEDERATION = "federation"


COST_BEARER_LABELS = {
    CostBearer.LAND: _l("the Land"),
    CostBearer.FEDERATION: _l("the federation"),
}


class TargetKind(StrEnum):
    MEMBER = "member"
    PROJECT = "project"


TARGET_KIND_LABELS = {
    TargetKind.MEMBER: _l("member"),
    TargetKind.PROJECT: _l("shared project"),
}


def format_fte(permille: int | None) -> str:
    """A share per mille as a percentage, e.g. 500 -> "50 %", 333 -> "33,3 %" (German style)."""
    if permille is None:
        return ""
    whole, tenth = divmod(permille, 10)
    return f"{whole} %" if tenth == 0 else f"{whole},{tenth} %"


class StaffMember(db.Model):
    """A person the Land seconds to the federation."""

    __tablename__ = "staff_members"
    __table_args__ = (
        CheckConstraint(
            "annual_cost_cents IS NULL OR annual_cost_cents >= 0", name="annual_cost_not_negative"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    work_email: Mapped[str] = mapped_column(String(254), unique=True)
    home_authority: Mapped[str] = mapped_column(String(200), default="")  # Stammdienststelle
    notes: Mapped[str] = mapped_column(Text, default="")
    # Personnel cost of one full-time year (employer's gross); optional, never shown to members.
    annual_cost_cents: Mapped[int | None] = mapped_column(BigInteger)
    pseudonym: Mapped[str] = mapped_column(String(20), unique=True)  # stable, for auditors' exports
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    secondments: Mapped[list[Secondment]] = relationship(
        back_populates="staff_member", order_by="Secondment.starts_on"
    )

    def audit_view(self) -> dict:
        """What the audit trail keeps of a change: no notes text, no cost figure (only whether
        one is set)."""
        return {
            "name": self.name,
            "work_email": self.work_email,
            "home_authority": self.home_authority,
            "annual_cost_set": self.annual_cost_cents is not None,
            "pseudonym": self.pseudonym,
        }

    def __str__(self) -> str:
        return self.name


class Secondment(db.Model):
    """One period in which the Land places a person with the federation, at a share of full time.
    A person's secondments never overlap (the staffing service checks it under a lock)."""

    __tablename__ = "secondments"
    __table_args__ = (
        CheckConstraint("fte > 0 AND fte <= 1000", name="fte_range"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ends_after_start"),
        CheckConstraint(
            "instrument IN ('abordnung', 'zuweisung', 'personalgestellung')", name="instrument_known"
        ),
        CheckConstraint("cost_bearer IN ('land', 'federation')", name="cost_bearer_known"),
        Index("ix_secondments_staff_member_period", "staff_member_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_member_id: Mapped[int] = mapped_column(ForeignKey("staff_members.id", ondelete="RESTRICT"))
    instrument: Mapped[str] = mapped_column(String(30))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    fte: Mapped[int] = mapped_column(Integer)  # per mille
    cost_bearer: Mapped[str] = mapped_column(String(20), default=CostBearer.LAND.value)
    legal_reference: Mapped[str] = mapped_column(String(300), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    staff_member: Mapped[StaffMember] = relationship(back_populates="secondments")

    @property
    def instrument_label(self) -> str:
        return str(INSTRUMENT_LABELS.get(self.instrument, self.instrument))

    @property
    def cost_bearer_label(self) -> str:
        return str(COST_BEARER_LABELS.get(self.cost_bearer, self.cost_bearer))

    @property
    def fte_label(self) -> str:
        return format_fte(self.fte)

    def audit_view(self) -> dict:
        return {
            "staff_member_id": self.staff_member_id,
            "instrument": self.instrument,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "fte": self.fte,
            "cost_bearer": self.cost_bearer,
            "legal_reference": self.legal_reference,
        }

    def __str__(self) -> str:
        end = self.ends_on.isoformat() if self.ends_on else "…"
        return f"{self.staff_member} {self.starts_on.isoformat()}{DASH}{end} ({format_fte(self.fte)})"


class Assignment(TenantOwned, db.Model):
    """An Einsatz: a person works for a target (a member or a shared project) in a period at a share
    of full time. It lies inside one of the person's secondments; on every day the person's
    assignments add up to at most that secondment's share (``staffing/services.py`` enforces both)."""

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("fte > 0 AND fte <= 1000", name="fte_range"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ends_after_start"),
        CheckConstraint(
            "(target_kind = 'member' AND municipality_id IS NOT NULL AND project_id IS NULL)"
            " OR (target_kind = 'project' AND project_id IS NOT NULL AND municipality_id IS NULL)",
            name="target_consistent",
        ),
        Index("ix_assignments_staff_member_period", "staff_member_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_member_id: Mapped[int] = mapped_column(ForeignKey("staff_members.id", ondelete="RESTRICT"))
    secondment_id: Mapped[int] = mapped_column(ForeignKey("secondments.id", ondelete="RESTRICT"), index=True)
    target_kind: Mapped[str] = mapped_column(String(20), default=TargetKind.MEMBER.value)
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    fte: Mapped[int] = mapped_column(Integer)  # per mille
    role: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    staff_member: Mapped[StaffMember] = relationship()
    secondment: Mapped[Secondment] = relationship()
    municipality: Mapped[Municipality | None] = relationship()
    project = relationship("Project")

    @property
    def fte_label(self) -> str:
        return format_fte(self.fte)

    @property
    def target_label(self) -> str:
        if self.target_kind == TargetKind.PROJECT:
            return str(self.project) if self.project is not None else ""
        return str(self.municipality) if self.municipality is not None else ""

    def audit_view(self) -> dict:
        return {
            "staff_member_id": self.staff_member_id,
            "secondment_id": self.secondment_id,
            "target_kind": self.target_kind,
            "municipality_id": self.municipality_id,
            "project_id": self.project_id,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "fte": self.fte,
            "role": self.role,
        }

    def __str__(self) -> str:
        end = self.ends_on.isoformat() if self.ends_on else "…"
        return f"{self.staff_member} → {self.target_label} {self.starts_on.isoformat()}{DASH}{end}"


class StaffCost(db.Model):
    """A secondment's personnel cost for one fiscal year, booked against the appropriation as an
    allocation to the federation itself (category Personal). At most one per secondment and year."""

    __tablename__ = "staff_costs"
    __table_args__ = (
        UniqueConstraint("secondment_id", "fiscal_year_id", name="one_per_secondment_and_year"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secondment_id: Mapped[int] = mapped_column(ForeignKey("secondments.id", ondelete="RESTRICT"))
    fiscal_year_id: Mapped[int] = mapped_column(
        ForeignKey("fiscal_years.id", ondelete="RESTRICT"), index=True
    )
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id", ondelete="RESTRICT"), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    secondment: Mapped[Secondment] = relationship()
