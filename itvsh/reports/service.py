"""The rules of report requests and jobs, in one place for the screens, the API, the CLI, the
worker and the in-process runner.

Life of a row: ``pending`` (recorded and committed) → ``queued`` (handed to the job service) →
``running`` (claimed: a conditional UPDATE sets a claim token and a lease) → ``finished`` or
``failed``. A transient failure puts it back to ``pending`` with ``run_after`` (back-off); a run
whose lease ran out (its worker died) is put back to ``pending`` by :func:`sweep`, which also hands
every due ``pending`` row to the job service — so a request made while Redis was down runs when it
is back. After :data:`MAX_ATTEMPTS` starts the row fails with a reason instead of looping.

Bookkeeping statements are Core UPDATEs on the ``reports`` table (a job narrows its tenant scope to
one member while it renders a statement; the central scope hook guards ORM writes, not these), and
each names the claim token, so a run that lost its claim cannot change the row.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.core.rules import RuleViolation
from itvsh.core.settings import get_flag
from itvsh.core.tenancy import ALL
from itvsh.reports.kinds import ANNUAL_FUNDING, KINDS, OZG_SNAPSHOT, get_kind
from itvsh.reports.models import OPEN_STATUSES, Report, ReportStatus, Trigger

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (10, 60, 300)  # before the 2nd, 3rd and 4th attempt after a transient error
STALE_QUEUED = timedelta(minutes=10)  # a queued row the job service may have lost is handed over again

# Admin switches (core.settings) for the schedule; both on unless switched off.
SCHEDULE_MONTHLY_SNAPSHOT = "reports.schedule.monthly_snapshot"
SCHEDULE_ANNUAL_ON_CLOSE = "reports.schedule.annual_on_close"
ANNUAL_AUTO_FORMATS = ("xlsx", "pdf")

_T = Report.__table__


# --- requests ----------------------------------------------------------------------------------


def request_report(
    session: Session,
    actor,
    kind_name,
    parameters,
    *,
    fmt=None,
    locale: str = "de",
    scope=ALL,
    trigger: Trigger = Trigger.USER,
    dedupe_key: str | None = None,
) -> Report:
    """Check a request and record it as a ``pending`` row (the caller commits, then dispatches).

    ``scope`` is the requester's tenant scope (ALL, or the member ids a municipality user sees);
    ``actor`` a User (its role decides which kinds it may ask for) or a system label. Raises
    :class:`RuleViolation` naming the field; nothing is written then.
    """
    kind = get_kind(kind_name)
    role = getattr(actor, "role", None)
    if role is not None and role not in kind.roles:
        raise RuleViolation(_("You may not ask for this report."), "kind")
    if not isinstance(parameters, dict):
        raise RuleViolation(_("The parameters must be given as named values."), "parameters")
    fmt = (str(fmt).strip().lower() if fmt else "") or kind.formats[0]
    if fmt not in kind.formats:
        raise RuleViolation(
            _(
                "This report comes as %(formats)s, not as %(format)s.",
                formats=", ".join(kind.formats),
                format=fmt,
            ),
            "format",
        )
    clean, municipality_id = kind.validate(session, parameters, scope)
    if locale not in ("de", "en"):
        locale = "de"
    report = Report(
        kind=kind.name,
        format=fmt,
        parameters=clean,
        municipality_id=municipality_id,
        locale=locale,
        trigger=trigger.value,
        dedupe_key=dedupe_key,
        status=ReportStatus.PENDING.value,
        progress=0,
        requested_by_id=getattr(actor, "id", None),
        requested_by_label=audit.actor_label(actor),
        attempts=0,
        error="",
        summary={},
    )
    session.add(report)
    session.flush()
    audit.record(
        session,
        actor,
        "request",
        "report",
        report,
        after={"kind": kind.name, "format": fmt, "parameters": clean, "trigger": trigger.value},
    )
    return report


def retry(session: Session, actor, report: Report) -> Report:
    """Ask again for a failed report: a new row with the same parameters (the failed one stays as
    it was, for the history)."""
    if report.status != ReportStatus.FAILED:
        raise RuleViolation(_("Only a failed report can be retried."), "status")
    new = Report(
        kind=report.kind,
        format=report.format,
        parameters=dict(report.parameters or {}),
        municipality_id=report.municipality_id,
        locale=report.locale,
        trigger=Trigger.RETRY.value,
        status=ReportStatus.PENDING.value,
        progress=0,
        requested_by_id=getattr(actor, "id", None),
        requested_by_label=audit.actor_label(actor),
        attempts=0,
        error="",
        summary={},
    )
    session.add(new)
    session.flush()
    audit.record(session, actor, "retry", "report", new, after={"retry_of": report.id, "kind": report.kind})
    return new


def mark_queued(session: Session, report_id: int, job_id: str) -> None:
    """The job service accepted the job: ``pending`` → ``queued`` (unless a job claimed it already)."""
    session.execute(
        update(_T)
        .where(_T.c.id == report_id, _T.c.status == ReportStatus.PENDING.value)
        .values(status=ReportStatus.QUEUED.value, queued_at=utcnow(), job_id=job_id)
    )


# --- the job's side ----------------------------------------------------------------------------


def claim(session: Session, report_id: int, lease_seconds: int) -> str | None:
    """Claim a row for one run; the claim token, or None if the row is finished, failed, not due,
    or held by a live run. One conditional UPDATE: of two runs, exactly one gets it."""
    now = utcnow()
    token = secrets.token_hex(16)
    result = session.execute(
        update(_T)
        .where(
            _T.c.id == report_id,
            _T.c.attempts < MAX_ATTEMPTS,
            or_(
                _T.c.status.in_([ReportStatus.PENDING.value, ReportStatus.QUEUED.value]),
                and_(_T.c.status == ReportStatus.RUNNING.value, _T.c.lease_until < now),
            ),
            or_(_T.c.run_after.is_(None), _T.c.run_after <= now),
        )
        .values(
            status=ReportStatus.RUNNING.value,
            claim_token=token,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
            attempts=_T.c.attempts + 1,
            progress=0,
            error="",
        )
    )
    return token if result.rowcount == 1 else None


def renew(session: Session, report_id: int, token: str, progress: int, lease_seconds: int) -> bool:
    """Store progress and extend the lease; False if the claim is lost (another run took over)."""
    result = session.execute(
        update(_T)
        .where(_T.c.id == report_id, _T.c.claim_token == token, _T.c.status == ReportStatus.RUNNING.value)
        .values(
            progress=max(0, min(99, int(progress))), lease_until=utcnow() + timedelta(seconds=lease_seconds)
        )
    )
    return result.rowcount == 1


def holds_claim(session: Session, report_id: int, token: str) -> bool:
    """Lock the row (PostgreSQL: FOR UPDATE; SQLite: the writer's lock) and check the claim."""
    row = session.execute(
        select(_T.c.claim_token, _T.c.status).where(_T.c.id == report_id).with_for_update()
    ).first()
    return row is not None and row.claim_token == token and row.status == ReportStatus.RUNNING.value


def finish(
    session: Session,
    report_id: int,
    token: str,
    *,
    file_name: str | None,
    file_size: int | None,
    sha256: str | None,
    audit_seq: int,
    audit_hash: str,
    summary: dict,
) -> bool:
    """``running`` → ``finished`` for the holder of the claim, with one audit event (the only side
    effect of a run, so a repeated run repeats none). The caller holds the row lock."""
    now = utcnow()
    result = session.execute(
        update(_T)
        .where(_T.c.id == report_id, _T.c.claim_token == token, _T.c.status == ReportStatus.RUNNING.value)
        .values(
            status=ReportStatus.FINISHED.value,
            progress=100,
            finished_at=now,
            lease_until=None,
            file_name=file_name,
            file_size=file_size,
            sha256=sha256,
            audit_seq=audit_seq,
            audit_hash=audit_hash,
            summary=summary or {},
            error="",
        )
    )
    if result.rowcount != 1:
        return False
    audit.record(
        session,
        "job",
        "finish",
        "report",
        report_id,
        after={"file": file_name, "size": file_size, "sha256": sha256, "audit_seq": audit_seq},
    )
    return True


def fail(
    session: Session, report_id: int, token: str | None, message: str, *, transient: bool, attempts: int
) -> str:
    """End a run that raised: back to ``pending`` with a back-off (transient, attempts left) or
    ``failed`` with a readable reason. Returns the new status ('' if the claim was lost)."""
    now = utcnow()
    condition = [_T.c.id == report_id, _T.c.status == ReportStatus.RUNNING.value]
    if token is not None:
        condition.append(_T.c.claim_token == token)
    if transient and attempts < MAX_ATTEMPTS:
        delay = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
        values = {
            "status": ReportStatus.PENDING.value,
            "run_after": now + timedelta(seconds=delay),
            "claim_token": None,
            "lease_until": None,
            "error": _("Attempt %(n)s failed (%(reason)s); it is tried again.", n=attempts, reason=message),
        }
    else:
        values = {
            "status": ReportStatus.FAILED.value,
            "finished_at": now,
            "claim_token": None,
            "lease_until": None,
            "error": message,
        }
    result = session.execute(update(_T).where(*condition).values(**values))
    if result.rowcount != 1:
        return ""
    if values["status"] == ReportStatus.FAILED.value:
        audit.record(session, "job", "fail", "report", report_id, after={"error": message[:500]})
    return values["status"]


# --- sweeper -----------------------------------------------------------------------------------


def sweep(session: Session, dispatcher, now: datetime | None = None) -> dict:
    """Recover dead runs and hand every due pending row to the job service.

    * ``running`` rows whose lease ran out: back to ``pending`` (or ``failed`` after
      :data:`MAX_ATTEMPTS` starts);
    * ``queued`` rows older than :data:`STALE_QUEUED` whose job the job service no longer has: back
      to ``pending`` (Redis restarted without persistence, a job lost);
    * due ``pending`` rows: enqueued (stays ``pending`` if the job service is unreachable).

    Commits after each step; returns counts.
    """
    now = now or utcnow()
    counts = {"recovered": 0, "gave_up": 0, "requeued": 0, "enqueued": 0, "unreachable": 0}
    expired = [_T.c.status == ReportStatus.RUNNING.value, _T.c.lease_until < now]
    out_of_attempts = session.execute(
        select(_T.c.id, _T.c.locale).where(*expired, _T.c.attempts >= MAX_ATTEMPTS).order_by(_T.c.id)
    ).all()
    for report_id, locale in out_of_attempts:
        with force_locale(locale or "de"):  # the reason in the requester's language
            reason = _(
                "The job was interrupted %(n)s times (its worker stopped or it ran past its time limit). "
                "Please ask for the report again; if it fails again, tell the operators.",
                n=MAX_ATTEMPTS,
            )
        failed = session.execute(
            update(_T)
            .where(_T.c.id == report_id, *expired, _T.c.attempts >= MAX_ATTEMPTS)
            .values(
                status=ReportStatus.FAILED.value,
                finished_at=now,
                claim_token=None,
                lease_until=None,
                error=reason,
            )
        ).rowcount
        if failed:
            audit.record(
                session, "job", "fail", "report", report_id, after={"error": "interrupted too often"}
            )
            counts["gave_up"] += 1
    counts["recovered"] = session.execute(
        update(_T)
        .where(*expired, _T.c.attempts < MAX_ATTEMPTS)
        .values(status=ReportStatus.PENDING.value, claim_token=None, lease_until=None)
    ).rowcount
    session.commit()

    stale = session.execute(
        select(_T.c.id, _T.c.job_id).where(
            _T.c.status == ReportStatus.QUEUED.value,
            _T.c.queued_at < now - getattr(dispatcher, "stale_queued", STALE_QUEUED),
        )
    ).all()
    for report_id, job_id in stale:
        if not dispatcher.job_alive(job_id):
            counts["requeued"] += session.execute(
                update(_T)
                .where(_T.c.id == report_id, _T.c.status == ReportStatus.QUEUED.value)
                .values(status=ReportStatus.PENDING.value)
            ).rowcount
    session.commit()

    due = session.execute(
        select(_T.c.id, _T.c.kind)
        .where(
            _T.c.status == ReportStatus.PENDING.value, or_(_T.c.run_after.is_(None), _T.c.run_after <= now)
        )
        .order_by(_T.c.id)
    ).all()
    for report_id, kind in due:
        job_id = dispatcher.enqueue(report_id, KINDS.get(kind))
        if job_id is None:
            counts["unreachable"] = len(due) - counts["enqueued"]
            break
        mark_queued(session, report_id, job_id)
        session.commit()
        counts["enqueued"] += 1
    return counts


# --- schedule ----------------------------------------------------------------------------------


def _ensure(session: Session, kind: str, fmt: str, parameters: dict, dedupe_key: str) -> Report | None:
    """Record and commit a scheduled request once: the unique dedupe key makes a second scheduler
    (or a second tick) harmless."""
    if session.execute(select(_T.c.id).where(_T.c.dedupe_key == dedupe_key)).first():
        return None
    try:
        report = request_report(
            session, "schedule", kind, parameters, fmt=fmt, trigger=Trigger.SCHEDULE, dedupe_key=dedupe_key
        )
        session.commit()
        return report
    except (IntegrityError, RuleViolation):
        session.rollback()
        return None


def schedule_due(session: Session, today: date | None = None) -> list[Report]:
    """The schedule: this month's OZG snapshot, and the annual funding report (XLSX and PDF) of
    every fiscal year closed since — once per closing, a year reopened and closed again gets a new
    one. Each part can be switched off by an admin. Commits each request it records."""
    from itvsh.funding.models import FiscalYear, YearStatus

    today = today or date.today()
    made: list[Report] = []
    if get_flag(session, SCHEDULE_MONTHLY_SNAPSHOT, True):
        month = today.strftime("%Y-%m")
        if report := _ensure(session, OZG_SNAPSHOT, "none", {"month": month}, f"{OZG_SNAPSHOT}:{month}"):
            made.append(report)
    if get_flag(session, SCHEDULE_ANNUAL_ON_CLOSE, True):
        closed = session.execute(
            select(FiscalYear.year, FiscalYear.closed_at).where(
                FiscalYear.status == YearStatus.CLOSED.value, FiscalYear.closed_at.is_not(None)
            )
        ).all()
        for year, closed_at in closed:
            stamp = closed_at.strftime("%Y%m%dT%H%M%S.%f")
            for fmt in ANNUAL_AUTO_FORMATS:
                key = f"{ANNUAL_FUNDING}:{year}:{stamp}:{fmt}"
                if report := _ensure(session, ANNUAL_FUNDING, fmt, {"year": year}, key):
                    made.append(report)
    return made


def open_reports_exist(session: Session) -> bool:
    return session.execute(select(_T.c.id).where(_T.c.status.in_(OPEN_STATUSES)).limit(1)).first() is not None
