"""Projects and OZG: the federation's shared IT projects (with participants, milestones and the OZG
services they deliver), the OZG catalogue, each municipality's status per service with its history,
and the tallies and monthly snapshots the public monitoring reads.

Public data (the monitoring shows it without login): projects' name, kind, status and participants;
the catalogue; the OZG status per municipality and service. A project's budget is the ledger sum
of the allocations to it (funding), its people are the assignments to it (staffing).

OZG status: one row per municipality and service where something is known (no row = maturity 0),
every change also appended to ``ozg_status_changes``. ``ozg_tallies`` holds the counts per maturity
level for the Land, each Kreis and each municipality, overall and per Themenfeld; the service that
changes a status updates them in the same transaction, so the public pages read a handful of rows
whatever the number of status rows.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
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

from itvsh.core.db import utcnow
from itvsh.extensions import db
from itvsh.tenants.models import Municipality

# --- projects -------------------------------------------------------------------------------------


class ProjectKind(StrEnum):
    SHARED_SERVICE = "shared_service"
    REFERENCE_IMPLEMENTATION = "reference_implementation"
    INFRASTRUCTURE = "infrastructure"
    PORTAL = "portal"


PROJECT_KIND_LABELS = {
    ProjectKind.SHARED_SERVICE: _l("shared service"),
    ProjectKind.REFERENCE_IMPLEMENTATION: _l("reference implementation"),
    ProjectKind.INFRASTRUCTURE: _l("infrastructure"),
    ProjectKind.PORTAL: _l("portal"),
}


class ProjectStatus(StrEnum):
    IDEA = "idea"
    PLANNED = "planned"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


PROJECT_STATUS_LABELS = {
    ProjectStatus.IDEA: _l("idea"),
    ProjectStatus.PLANNED: _l("planned"),
    ProjectStatus.RUNNING: _l("running"),
    ProjectStatus.COMPLETED: _l("completed"),
    ProjectStatus.CANCELLED: _l("cancelled"),
}

# The explicit transitions: forward one step, or cancelled from anything not yet finished.
TRANSITIONS = {
    ProjectStatus.IDEA: (ProjectStatus.PLANNED, ProjectStatus.CANCELLED),
    ProjectStatus.PLANNED: (ProjectStatus.RUNNING, ProjectStatus.CANCELLED),
    ProjectStatus.RUNNING: (ProjectStatus.COMPLETED, ProjectStatus.CANCELLED),
    ProjectStatus.COMPLETED: (),
    ProjectStatus.CANCELLED: (),
}
# Statuses in which a project can receive allocations and assignments.
ACTIVE_STATUSES = (ProjectStatus.PLANNED, ProjectStatus.RUNNING)


class ParticipationRole(StrEnum):
    PILOT = "pilot"
    PARTICIPANT = "participant"


PARTICIPATION_ROLE_LABELS = {
    ParticipationRole.PILOT: _l("pilot"),
    ParticipationRole.PARTICIPANT: _l("participant"),
}


class Project(db.Model):
    """A shared IT project the federation runs for its members."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('shared_service', 'reference_implementation', 'infrastructure', 'portal')",
            name="kind_known",
        ),
        CheckConstraint(
            "status IN ('idea', 'planned', 'running', 'completed', 'cancelled')", name="status_known"
        ),
        CheckConstraint(
            "ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on", name="ends_after_start"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=ProjectStatus.IDEA.value, index=True)
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    lead = relationship("StaffMember")
    participations: Mapped[list[Participation]] = relationship(
        back_populates="project", order_by="Participation.id"
    )
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="project", order_by="Milestone.due_on, Milestone.id"
    )
    services: Mapped[list[OzgService]] = relationship(
        secondary="project_services", order_by="OzgService.ozg_id"
    )

    @property
    def kind_label(self) -> str:
        return str(PROJECT_KIND_LABELS.get(self.kind, self.kind))

    @property
    def status_label(self) -> str:
        return str(PROJECT_STATUS_LABELS.get(self.status, self.status))

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def audit_view(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "lead_id": self.lead_id,
        }

    def __str__(self) -> str:
        return self.name


class Participation(db.Model):
    """A member taking part in a project, as pilot or participant (public)."""

    __tablename__ = "participations"
    __table_args__ = (
        UniqueConstraint("project_id", "municipality_id", name="one_per_project_and_member"),
        CheckConstraint("role IN ('pilot', 'participant')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[str] = mapped_column(String(20), default=ParticipationRole.PARTICIPANT.value)
    joined_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="participations")
    municipality: Mapped[Municipality] = relationship()

    @property
    def role_label(self) -> str:
        return str(PARTICIPATION_ROLE_LABELS.get(self.role, self.role))

    def audit_view(self) -> dict:
        return {
            "project_id": self.project_id,
            "municipality_id": self.municipality_id,
            "role": self.role,
            "joined_on": self.joined_on,
        }


class Milestone(db.Model):
    """A milestone of a project: due on a day inside the project's period, done (or not)."""

    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    due_on: Mapped[date] = mapped_column(Date)
    done_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="milestones")

    def audit_view(self) -> dict:
        return {
            "project_id": self.project_id,
            "title": self.title,
            "due_on": self.due_on,
            "done_on": self.done_on,
        }


class ProjectService(db.Model):
    """An OZG service a project delivers."""

    __tablename__ = "project_services"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("ozg_services.id", ondelete="RESTRICT"), primary_key=True
    )


# --- the OZG catalogue and status -----------------------------------------------------------------


class Responsibility(StrEnum):
    MUNICIPAL = "municipal"
    LAND = "land"
    BUND = "bund"


RESPONSIBILITY_LABELS = {
    Responsibility.MUNICIPAL: _l("municipalities"),
    Responsibility.LAND: _l("the Land"),
    Responsibility.BUND: _l("the Bund"),
}


class MaturityModel(StrEnum):
    """Reifegradmodell: 1.x (0-4, OZG 2017) is in use; 2.0 (2025, 0-7) can be added here."""

    V1 = "1.x"


MATURITY_RANGE = {MaturityModel.V1: (0, 4)}
COMPLIANT_FROM = {MaturityModel.V1: 3}  # maturity from which a service counts as OZG-compliant
MAX_LEVEL = 4  # the tallies count levels 1..MAX_LEVEL (level 0 = services without a row)

MATURITY_LABELS = {
    0: _l("0 offline"),
    1: _l("1 information"),
    2: _l("2 form assistant"),
    3: _l("3 online service (OZG-compliant)"),
    4: _l("4 online transaction"),
}


class OzgService(db.Model):
    """An OZG-Leistung of the catalogue (OZG-Umsetzungskatalog as of 2019, see itvsh/data/SOURCES.md)."""

    __tablename__ = "ozg_services"
    __table_args__ = (
        CheckConstraint("responsibility IN ('municipal', 'land', 'bund')", name="responsibility_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ozg_id: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    topic: Mapped[str] = mapped_column(String(100), index=True)  # Themenfeld
    life_event: Mapped[str] = mapped_column(String(150), default="")  # Lebenslage
    leika_keys: Mapped[str] = mapped_column(Text, default="")  # LeiKa keys, ";"-separated
    # Who provides the service; only municipal ones count in municipal progress.
    responsibility: Mapped[str] = mapped_column(String(20), default=Responsibility.MUNICIPAL.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), onupdate=utcnow)

    @property
    def is_municipal(self) -> bool:
        return self.responsibility == Responsibility.MUNICIPAL

    @property
    def responsibility_label(self) -> str:
        return str(RESPONSIBILITY_LABELS.get(self.responsibility, self.responsibility))

    @property
    def leika_key_list(self) -> list[str]:
        return [key for key in self.leika_keys.split(";") if key]

    def audit_view(self) -> dict:
        return {
            "ozg_id": self.ozg_id,
            "name": self.name,
            "topic": self.topic,
            "life_event": self.life_event,
            "leika_keys": self.leika_keys,
            "responsibility": self.responsibility,
        }

    def __str__(self) -> str:
        return f"{self.ozg_id} {self.name}"


class OzgStatus(db.Model):
    """What is known of one municipality's implementation of one OZG service (public data)."""

    __tablename__ = "ozg_statuses"
    __table_args__ = (
        UniqueConstraint("municipality_id", "service_id", name="one_per_municipality_and_service"),
        CheckConstraint("maturity >= 0 AND maturity <= 7", name="maturity_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"))
    service_id: Mapped[int] = mapped_column(ForeignKey("ozg_services.id", ondelete="RESTRICT"), index=True)
    maturity: Mapped[int] = mapped_column(Integer)
    maturity_model: Mapped[str] = mapped_column(String(10), default=MaturityModel.V1.value)
    online_since: Mapped[date | None] = mapped_column(Date)
    url: Mapped[str] = mapped_column(String(500), default="")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    efa: Mapped[bool] = mapped_column(Boolean, default=False)  # Einer-für-Alle service
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    changed_by: Mapped[str] = mapped_column(String(254), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    municipality: Mapped[Municipality] = relationship()
    service: Mapped[OzgService] = relationship()
    project: Mapped[Project | None] = relationship()

    def audit_view(self) -> dict:
        return {
            "municipality_id": self.municipality_id,
            "service_id": self.service_id,
            "maturity": self.maturity,
            "maturity_model": self.maturity_model,
            "online_since": self.online_since,
            "url": self.url,
            "project_id": self.project_id,
            "efa": self.efa,
        }


class OzgStatusChange(db.Model):
    """One change of a status, kept for the history (append-only)."""

    __tablename__ = "ozg_status_changes"
    __table_args__ = (Index("ix_ozg_status_changes_municipality_service", "municipality_id", "service_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"))
    service_id: Mapped[int] = mapped_column(ForeignKey("ozg_services.id", ondelete="RESTRICT"))
    maturity: Mapped[int] = mapped_column(Integer)
    maturity_model: Mapped[str] = mapped_column(String(10))
    online_since: Mapped[date | None] = mapped_column(Date)
    url: Mapped[str] = mapped_column(String(500), default="")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    efa: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    changed_by: Mapped[str] = mapped_column(String(254), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class TallyScope(StrEnum):
    LAND = "land"
    KREIS = "kreis"
    MUNICIPALITY = "municipality"


class OzgTally(db.Model):
    """Counts of status rows per maturity level (1..4) of the municipal services, for the Land
    (``scope_id`` 0), a Kreis or a municipality, over all services (``topic`` "") or one Themenfeld.
    Level 0 is everything else: the number of services times the number of municipalities minus
    the counted rows. Kept current by the status service in the same transaction."""

    __tablename__ = "ozg_tallies"
    __table_args__ = (UniqueConstraint("scope", "scope_id", "topic", name="one_per_scope_and_topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))
    scope_id: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(100), default="")
    possible: Mapped[int] = mapped_column(Integer, default=0)  # municipal services x municipalities
    level1: Mapped[int] = mapped_column(Integer, default=0)
    level2: Mapped[int] = mapped_column(Integer, default=0)
    level3: Mapped[int] = mapped_column(Integer, default=0)
    level4: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def compliant(self) -> int:
        return self.level3 + self.level4


class OzgSnapshot(db.Model):
    """The tallies of the Land and the Kreise (overall and per Themenfeld) at the start of a month,
    with the denominators of the day, for the trend."""

    __tablename__ = "ozg_snapshots"
    __table_args__ = (
        UniqueConstraint("month", "scope", "scope_id", "topic", name="one_per_month_scope_topic"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[date] = mapped_column(Date, index=True)
    scope: Mapped[str] = mapped_column(String(20))
    scope_id: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(100), default="")
    possible: Mapped[int] = mapped_column(Integer)  # municipal services x municipalities in scope
    level1: Mapped[int] = mapped_column(Integer, default=0)
    level2: Mapped[int] = mapped_column(Integer, default=0)
    level3: Mapped[int] = mapped_column(Integer, default=0)
    level4: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def compliant(self) -> int:
        return self.level3 + self.level4
