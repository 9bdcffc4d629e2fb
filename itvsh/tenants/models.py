"""Tenants: the members of the federation (Gemeinden, Städte, Ämter, Kreise), their place in the
hierarchy, their membership history, and their contacts (private to the tenant).

Master data and membership are public; contacts are tenant-owned and filtered by the central
tenant scope (``core/tenancy.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, aliased, column_property, mapped_column, relationship

from itvsh.core.db import utcnow
from itvsh.core.tenancy import TenantOwned
from itvsh.extensions import db


class MunicipalityKind(StrEnum):
    GEMEINDE = "gemeinde"
    STADT = "stadt"
    KREISFREIE_STADT = "kreisfreie_stadt"
    AMT = "amt"
    KREIS = "kreis"


KIND_LABELS = {
    MunicipalityKind.GEMEINDE: _l("Gemeinde"),
    MunicipalityKind.STADT: _l("Stadt"),
    MunicipalityKind.KREISFREIE_STADT: _l("kreisfreie Stadt"),
    MunicipalityKind.AMT: _l("Amt"),
    MunicipalityKind.KREIS: _l("Kreis"),
}
LOCAL_KINDS = (MunicipalityKind.GEMEINDE, MunicipalityKind.STADT, MunicipalityKind.KREISFREIE_STADT)

# Official key length per kind: AGS (8), Gemeindeverbandsschlüssel (9), Kreisschlüssel (5).
KEY_LENGTH = {
    MunicipalityKind.GEMEINDE: 8,
    MunicipalityKind.STADT: 8,
    MunicipalityKind.KREISFREIE_STADT: 8,
    MunicipalityKind.AMT: 9,
    MunicipalityKind.KREIS: 5,
}
LAND_PREFIX = "01"  # Schleswig-Holstein


def key_problem(key: str, kind: MunicipalityKind | str) -> str | None:
    """Why ``key`` is not a valid official key for ``kind`` in this federation, or None."""
    kind = MunicipalityKind(kind)
    length = KEY_LENGTH[kind]
    if not key.isascii() or not key.isdigit():
        return _("the key must consist of digits only")
    if len(key) != length:
        return _(
            "a key of a %(kind)s has %(length)d digits, not %(actual)d",
            kind=KIND_LABELS[kind],
            length=length,
            actual=len(key),
        )
    if not key.startswith(LAND_PREFIX):
        return _("the key must start with %(prefix)s (Schleswig-Holstein)", prefix=LAND_PREFIX)
    return None


class Municipality(db.Model):
    __tablename__ = "municipalities"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('gemeinde', 'stadt', 'kreisfreie_stadt', 'amt', 'kreis')", name="kind_known"
        ),
        CheckConstraint("population IS NULL OR population >= 0", name="population_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(9), unique=True)
    ars: Mapped[str | None] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    kreis_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    amt_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    # Population belongs to Gemeinden and Städte; an Amt's or Kreis's is the sum (total_population).
    population: Mapped[int | None] = mapped_column(Integer)
    population_date: Mapped[date | None] = mapped_column(Date)
    area_km2: Mapped[Decimal | None] = mapped_column(Numeric(9, 2))
    postcode: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    kreis: Mapped[Municipality | None] = relationship(
        remote_side=[id], foreign_keys=[kreis_id], lazy="joined", innerjoin=False, join_depth=1
    )
    amt: Mapped[Municipality | None] = relationship(
        remote_side=[id], foreign_keys=[amt_id], lazy="joined", innerjoin=False, join_depth=1
    )

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[MunicipalityKind(self.kind)])

    @property
    def is_local(self) -> bool:
        return self.kind in LOCAL_KINDS

    def public_view(self) -> dict:
        """Master data as the audit trail records it."""
        return {
            "key": self.key,
            "ars": self.ars,
            "name": self.name,
            "kind": self.kind,
            "kreis": self.kreis.key if self.kreis else None,
            "amt": self.amt.key if self.amt else None,
            "population": self.population,
            "population_date": self.population_date.isoformat() if self.population_date else None,
            "area_km2": str(self.area_km2) if self.area_km2 is not None else None,
            "postcode": self.postcode,
        }

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class Membership(db.Model):
    """One period of membership in the federation: joined, and (once left) left. Rejoining opens a
    new period, so the history stays."""

    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("left_on IS NULL OR left_on >= joined_on", name="left_after_joined"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    joined_on: Mapped[date] = mapped_column(Date)
    left_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    municipality: Mapped[Municipality] = relationship(back_populates="memberships")

    def covers(self, day: date) -> bool:
        return self.joined_on <= day and (self.left_on is None or day < self.left_on)


Municipality.memberships = relationship(
    Membership, back_populates="municipality", order_by=Membership.joined_on, lazy="select"
)


class MunicipalityContact(TenantOwned, db.Model):
    """A contact of a member (private to that tenant, to staff and auditors)."""

    __tablename__ = "municipality_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[str] = mapped_column(String(120), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(60), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    municipality: Mapped[Municipality] = relationship()

    def __str__(self) -> str:
        return self.name or self.email or self.role


def _member_today():
    today = func.current_date()
    return (
        select(Membership.id)
        .where(
            Membership.municipality_id == Municipality.id,
            Membership.joined_on <= today,
            or_(Membership.left_on.is_(None), Membership.left_on > today),
        )
        .correlate(Municipality)
        .exists()
    )


def _total_population():
    part = aliased(Municipality)
    return func.coalesce(
        Municipality.population,
        select(func.sum(part.population))
        .where(or_(part.amt_id == Municipality.id, and_(part.kreis_id == Municipality.id)))
        .correlate(Municipality)
        .scalar_subquery(),
    )


# Derived in SQL, so lists can sort and filter by them without a query per row.
Municipality.is_member = column_property(_member_today(), deferred=False)
Municipality.total_population = column_property(_total_population(), deferred=False)
