"""Running report jobs: the job services (rq with Redis, an in-process thread without it, a manual
list in tests), the job entry point :func:`run_report`, and the scheduler tick.

Which job service an app uses (``app.extensions["itvsh_jobs"]``): ``rq`` when ``ITVSH_REDIS_URL``
is set, ``embedded`` otherwise (a daemon thread in the web process runs the jobs and, every
``ITVSH_SCHEDULER_SECONDS``, the schedule and the sweeper — so ``make run`` needs no Redis), and
``manual`` in tests (jobs are collected; :meth:`ManualJobs.run_all` runs them in the caller's app
context and session). ``ITVSH_JOBS`` overrides the choice.

A job gets the report id only. It claims the row (:func:`itvsh.reports.service.claim`), renders to a
part file inside read-only work, and — holding the row lock and still holding the claim — moves the
file into place and marks the row finished in one transaction. Anything that raises ends the run
with a readable reason (a transient error: a later attempt with back-off), never stuck ``running``.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from datetime import timedelta

from flask import Flask, current_app, has_app_context
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from itvsh.core.audit import GENESIS_HASH, AuditChainHead
from itvsh.core.db import read_only_work, utcnow, write_step
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, pop_scope, push_scope
from itvsh.extensions import db
from itvsh.reports import service, storage
from itvsh.reports.kinds import KINDS, RenderContext, ReportKind
from itvsh.reports.models import Report

log = logging.getLogger(__name__)

JOB_FUNCTION = "itvsh.reports.jobs.run_report"
QUEUES = ("reports", "default")
PROGRESS_EVERY = 1.0  # seconds between two progress writes of one run


class LeaseLost(Exception):
    """Another run took the report over (this one was presumed dead): stop without a trace."""


# --- job services ------------------------------------------------------------------------------


class RqJobs:
    """Hands report ids to rq. Never raises for an unreachable Redis: the row stays pending."""

    mode = "rq"

    def __init__(self, connection):
        self.connection = connection

    def enqueue(self, report_id: int, kind: ReportKind | None) -> str | None:
        from redis.exceptions import RedisError
        from rq import Queue

        try:
            queue_ = Queue(kind.queue if kind else "reports", connection=self.connection)
            job = queue_.enqueue(
                JOB_FUNCTION,
                report_id,
                job_id=f"report-{report_id}-{secrets.token_hex(4)}",
                job_timeout=kind.timeout if kind else 600,
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
                description=f"report {report_id} ({kind.name if kind else '?'})",
            )
            return job.id
        except (RedisError, OSError) as exc:
            log.warning("job service unreachable, report %s stays pending: %s", report_id, exc)
            return None

    def job_alive(self, job_id: str | None) -> bool:
        from redis.exceptions import RedisError
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        if not job_id:
            return False
        try:
            status = Job.fetch(job_id, connection=self.connection).get_status()
        except NoSuchJobError:
            return False
        except (RedisError, OSError):
            return True  # cannot tell: do not hand it over twice
        return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


class ManualJobs:
    """Tests: remember what was enqueued; :meth:`run_all` runs it in the current app context."""

    mode = "manual"

    def __init__(self):
        self.enqueued: list[int] = []
        self.reachable = True

    def enqueue(self, report_id: int, kind: ReportKind | None) -> str | None:
        if not self.reachable:
            return None
        self.enqueued.append(report_id)
        return f"manual-{report_id}-{len(self.enqueued)}"

    def job_alive(self, job_id: str | None) -> bool:
        return False

    def run_all(self) -> list[str]:
        results = []
        while self.enqueued:
            results.append(run_report(self.enqueued.pop(0)))
        return results


class EmbeddedJobs:
    """No Redis: one daemon thread per web process runs the jobs and the schedule."""

    mode = "embedded"
    # This process knows every job it holds: a queued row it does not hold was lost (the process
    # restarted) and is handed over again at once.
    stale_queued = timedelta(0)

    def __init__(self, app: Flask):
        self.app = app
        self.queue: queue.Queue[int] = queue.Queue()
        self.pending: set[str] = set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="itvsh-jobs", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def enqueue(self, report_id: int, kind: ReportKind | None) -> str | None:
        job_id = f"embedded-{report_id}-{secrets.token_hex(4)}"
        self.pending.add(job_id)
        self.queue.put((report_id, job_id))
        self.start()
        return job_id

    def job_alive(self, job_id: str | None) -> bool:
        return job_id in self.pending

    def _loop(self) -> None:
        interval = max(1, self.app.config["ITVSH_SCHEDULER_SECONDS"])  # 0 would spin
        next_tick = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_tick:
                try:
                    scheduler_tick(self.app, self)
                except Exception:
                    log.exception("embedded scheduler tick failed")
                next_tick = time.monotonic() + interval
            try:
                report_id, job_id = self.queue.get(timeout=min(1.0, interval))
            except queue.Empty:
                continue
            try:
                with self.app.app_context():
                    run_report(report_id)
            except Exception:
                log.exception("embedded job for report %s failed", report_id)
            finally:
                self.pending.discard(job_id)


def redis_for_jobs(url: str, *, for_worker: bool = False):
    """A Redis client that gives up connecting within two seconds (a page never hangs on a dead
    Redis). A worker blocks reading its queues, so it has no read timeout."""
    from redis import Redis

    if for_worker:
        return Redis.from_url(url, socket_connect_timeout=2, health_check_interval=30)
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def jobs_for(app: Flask):
    """The app's job service (made once per app)."""
    service_ = app.extensions.get("itvsh_jobs")
    if service_ is None:
        mode = app.config.get("ITVSH_JOBS") or (
            "manual"
            if app.config.get("TESTING")
            else ("rq" if app.config.get("ITVSH_REDIS_URL") else "embedded")
        )
        if mode == "rq":
            service_ = RqJobs(redis_for_jobs(app.config["ITVSH_REDIS_URL"]))
        elif mode == "embedded":
            service_ = EmbeddedJobs(app)
        elif mode == "manual":
            service_ = ManualJobs()
        else:
            raise ValueError(f"ITVSH_JOBS must be rq, embedded or manual, not {mode!r}")
        app.extensions["itvsh_jobs"] = service_
    return service_


def current_jobs():
    return jobs_for(current_app._get_current_object())


def register_jobs(app: Flask) -> None:
    """Remember the process the app was made in (a forked job must open its own connections) and,
    in embedded mode, start the job thread with the first request."""
    app.extensions["itvsh_pid"] = os.getpid()
    if app.config.get("TESTING"):
        return

    started = threading.Event()

    @app.before_request
    def _start_embedded_jobs():
        if not started.is_set():
            started.set()
            jobs = jobs_for(app)
            if isinstance(jobs, EmbeddedJobs):
                jobs.start()


def dispatch(session, report: Report) -> bool:
    """Hand a committed row to the job service: True if it took it (row now ``queued``), False if
    it is unreachable (the row stays ``pending``; the sweeper hands it over later)."""
    jobs = current_jobs()
    job_id = jobs.enqueue(report.id, KINDS.get(report.kind))
    if job_id is None:
        return False
    with write_step(session):
        service.mark_queued(session, report.id, job_id)
    return True


def scheduler_tick(app: Flask, jobs, *, schedule: bool = True) -> dict:
    """One pass of the schedule (if ``schedule``) and the sweeper, in its own app context."""
    with app.app_context():
        session = db.session
        previous = push_scope(session, ALL)
        try:
            made = service.schedule_due(session) if schedule else []
            counts = service.sweep(session, jobs)
            counts["scheduled"] = len(made)
            return counts
        finally:
            pop_scope(session, previous)


# --- the job -----------------------------------------------------------------------------------


def run_report(report_id: int) -> str:
    """The job: make report ``report_id``. Returns what happened (for logs and tests):
    ``finished``, ``failed``, ``pending`` (retried later), ``skipped`` (not claimable) or ``lost``."""
    if has_app_context():
        return _run(current_app._get_current_object(), int(report_id))
    from itvsh import create_app

    app = create_app()
    with app.app_context():
        return _run(app, int(report_id))


def _own_connections(app: Flask) -> None:
    """In a forked work horse, drop the parent's pooled connections (without closing them under
    the parent) so this process opens its own."""
    if app.extensions.get("itvsh_pid") != os.getpid():
        db.engine.dispose(close=False)
        app.extensions["itvsh_pid"] = os.getpid()


def _audit_head(session) -> tuple[int, str]:
    head = session.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
    ).first()
    return (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)


def _run(app: Flask, report_id: int) -> str:
    _own_connections(app)
    session = db.session
    lease = app.config["ITVSH_REPORT_LEASE_SECONDS"]
    previous = push_scope(session, ALL)
    try:
        with write_step(session):
            token = service.claim(session, report_id, lease)
        if token is None:
            return "skipped"
        report = session.get(Report, report_id, populate_existing=True)
        attempts = report.attempts
        try:
            return _render(app, session, report, token, lease)
        except LeaseLost:
            session.rollback()
            log.warning("report %s: another run took over; this run stops", report_id)
            return "lost"
        except Exception as exc:  # every failure ends the run with a reason, never stuck running
            session.rollback()
            transient = _is_transient(exc)
            with force_locale(report.locale):
                message = _readable(exc, KINDS.get(report.kind))
            log.log(
                logging.WARNING if isinstance(exc, RuleViolation) else logging.ERROR,
                "report %s failed (%s): %s",
                report_id,
                "transient" if transient else "permanent",
                message,
                exc_info=not isinstance(exc, RuleViolation),
            )
            push_scope(session, ALL)
            # The whole reason in the requester's language (fail() wraps it in "Attempt n failed ...").
            with force_locale(report.locale), write_step(session):
                status = service.fail(
                    session, report_id, token, message, transient=transient, attempts=attempts
                )
            return status or "lost"
    finally:
        pop_scope(session, previous)


def _render(app: Flask, session, report: Report, token: str, lease: int) -> str:
    kind = KINDS[report.kind]
    report_id = report.id
    parameters = dict(report.parameters or {})
    municipality_key = report.municipality.key if report.municipality_id else None
    last = [0.0]

    def progress(percent: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        scope = push_scope(session, ALL)
        try:
            with write_step(session):
                held = service.renew(session, report_id, token, percent, lease)
        finally:
            pop_scope(session, scope)
        if not held:
            raise LeaseLost()

    with force_locale(report.locale), read_only_work():
        seq, head = _audit_head(session)
        ctx = RenderContext(
            session=session,
            report_id=report_id,
            kind=kind.name,
            format=report.format,
            parameters=parameters,
            municipality_id=report.municipality_id,
            locale=report.locale,
            generated_at=utcnow(),
            audit_seq=seq,
            audit_hash=head,
            requested_by=report.requested_by_label,
            progress=progress,
        )
        if not kind.produces_file:
            return _run_side_effect(session, kind, ctx, token)
        part = storage.part_path(report_id, token)
        try:
            scope = push_scope(session, {report.municipality_id} if report.municipality_id else ALL)
            try:
                with open(part, "wb") as out:
                    summary = kind.render_function()(ctx, out) or {}
            finally:
                pop_scope(session, scope)
            size, sha256 = storage.digest(part)
            name = kind.file_name(parameters, report.format, municipality_key)
            with write_step(session):
                if not service.holds_claim(session, report_id, token):
                    raise LeaseLost()
                storage.publish(part, storage.final_path(report_id, name))
                service.finish(
                    session,
                    report_id,
                    token,
                    file_name=name,
                    file_size=size,
                    sha256=sha256,
                    audit_seq=seq,
                    audit_hash=head,
                    summary=summary,
                )
            return "finished"
        finally:
            storage.discard(part)


def _run_side_effect(session, kind: ReportKind, ctx: RenderContext, token: str) -> str:
    """A job that changes data (the OZG snapshot): its work and the finish share one transaction,
    made only while the claim is held, so a second run changes nothing."""
    with write_step(session):
        if not service.holds_claim(session, ctx.report_id, token):
            raise LeaseLost()
        summary = kind.render_function()(ctx) or {}
        service.finish(
            session,
            ctx.report_id,
            token,
            file_name=None,
            file_size=None,
            sha256=None,
            audit_seq=ctx.audit_seq,
            audit_hash=ctx.audit_hash,
            summary=summary,
        )
    return "finished"


def _is_transient(exc: Exception) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover
        RedisConnectionError = RedisTimeoutError = ()
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError))


def _readable(exc: Exception, kind: ReportKind | None) -> str:
    from rq.timeouts import JobTimeoutException

    if isinstance(exc, RuleViolation):
        return exc.message
    if isinstance(exc, JobTimeoutException):
        return _(
            "The report took longer than its limit of %(seconds)s seconds and was stopped.",
            seconds=kind.timeout if kind else "?",
        )
    if _is_transient(exc):
        return _("The database or the job service could not be reached (%(type)s).", type=type(exc).__name__)
    if isinstance(exc, OSError):
        return _(
            "The report file could not be written: %(reason)s.", reason=exc.strerror or type(exc).__name__
        )
    return _(
        "An internal error stopped the report (%(type)s); the details are in the worker's log.",
        type=type(exc).__name__,
    )
