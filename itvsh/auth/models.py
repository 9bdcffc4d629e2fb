"""User accounts and API tokens."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from itvsh.auth.roles import ROLE_LABELS, Role
from itvsh.core.db import utcnow
from itvsh.extensions import db
from itvsh.tenants.models import Municipality


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'staff', 'auditor', 'municipality')", name="role_known"),
        CheckConstraint(
            "(role = 'municipality') = (municipality_id IS NOT NULL)", name="tenant_iff_municipality"
        ),
        CheckConstraint("locale IS NULL OR locale IN ('de', 'en')", name="locale_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased: unique regardless of how it was typed.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    locale: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    municipality: Mapped[Municipality | None] = relationship(lazy="joined")

    # Flask-Login protocol. The session holds "id:version": bumping the version ends every session.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    @property
    def role_label(self) -> str:
        return str(ROLE_LABELS[Role(self.role)])

    def audit_view(self) -> dict:
        """What the audit trail records of an account (never the password hash)."""
        return {
            "email": self.email,
            "role": self.role,
            "tenant": self.municipality.key if self.municipality else None,
            "active": self.active,
            "locale": self.locale,
        }

    def __str__(self) -> str:
        return self.email


class ApiToken(db.Model):
    """A bearer token for scripts. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined")

    @staticmethod
    def digest(token: str) -> str:
        # Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
        return hashlib.sha256(token.encode()).hexdigest()
