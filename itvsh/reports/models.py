"""The ``Report`` row: one request for a report (or a scheduled job such as the monthly OZG
snapshot), written and committed before anything is queued, and the only place a job's state lives.

A job claims its row with a conditional UPDATE that sets a random claim token and a lease; every
later write of the job (progress, finish, failure) names that token, so a job whose lease ran out
and was taken over by another worker can no longer change the row. ``dedupe_key`` makes scheduled
requests idempotent (one snapshot per month, one automatic annual report per closing of a year).

Statements belong to one member (``municipality_id``) and are tenant-owned: the central scope shows
a municipality user its own statements and nothing else. Federation-wide reports have no member.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from itvsh.auth.models import User
from itvsh.core.db import utcnow
from itvsh.core.tenancy import TenantOwned
from itvsh.extensions import db
from itvsh.tenants.models import Municipality


class ReportStatus(StrEnum):
    PENDING = "pending"  # recorded; not (yet) handed to the job service
    QUEUED = "queued"  # handed to the job service
    RUNNING = "running"  # claimed by a job, lease running
    FINISHED = "finished"
    FAILED = "failed"


STATUS_LABELS = {
    ReportStatus.PENDING: _l("waiting for the job service"),
    ReportStatus.QUEUED: _l("queued"),
    ReportStatus.RUNNING: _l("running"),
    ReportStatus.FINISHED: _l("finished"),
    ReportStatus.FAILED: _l("failed"),
}

OPEN_STATUSES = (ReportStatus.PENDING.value, ReportStatus.QUEUED.value, ReportStatus.RUNNING.value)


class Trigger(StrEnum):
    USER = "user"  # asked for on a screen or through the API
    SCHEDULE = "schedule"  # made by the schedule (monthly snapshot, year closed)
    RETRY = "retry"  # a staff member asked again for a failed report


class Report(TenantOwned, db.Model):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_status_run_after", "status", "run_after"),
        Index("ix_reports_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    format: Mapped[str] = mapped_column(String(10))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    # The member a statement is about (tenant-owned); None for federation-wide reports.
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    locale: Mapped[str] = mapped_column(String(5), default="de")
    trigger: Mapped[str] = mapped_column(String(20), default=Trigger.USER.value)
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=ReportStatus.PENDING.value)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_by_label: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A transient failure puts the row back to pending with a time before which it must not run.
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(100))
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # The audit chain head when the report was made, printed in the file (ties it to `audit verify`).
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
    audit_hash: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. the totals the file states
    error: Mapped[str] = mapped_column(Text, default="")

    requested_by: Mapped[User | None] = relationship()
    municipality: Mapped[Municipality | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def __repr__(self) -> str:
        return f"<Report {self.id} {self.kind} {self.status}>"
