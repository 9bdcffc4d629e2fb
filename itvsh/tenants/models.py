"""The tenant model. The Foundation keeps it minimal (official key, name, kind) so users can be
bound to a member; the Tenants issue adds hierarchy, population, contacts and membership."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from itvsh.core.db import utcnow
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
        return "the key must consist of digits only"
    if len(key) != length:
        return f"a {kind.value} key has {length} digits, not {len(key)}"
    if not key.startswith(LAND_PREFIX):
        return f"the key must start with {LAND_PREFIX} (Schleswig-Holstein)"
    return None


class Municipality(db.Model):
    __tablename__ = "municipalities"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('gemeinde', 'stadt', 'kreisfreie_stadt', 'amt', 'kreis')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[MunicipalityKind(self.kind)])

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"
