"""The life of a report job in manual mode (``ManualJobs``, the rolled-back ``app``): the claim, the
lease and the sweeper, retries with back-off, failures with a readable reason, lost claims, and
requests that are refused before any row exists.

Renderers are swapped per test (``KINDS`` holds frozen kinds; the entry is replaced through
``monkeypatch.setitem``) by functions of this module, so nothing here depends on the real
renderers' data; ``ozg_export`` (CSV) is the kind used.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from flask_babel import force_locale, get_locale
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from itvsh.core.audit import AuditEvent
from itvsh.core.db import utcnow, write_step
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.reports import service
from itvsh.reports.jobs import ManualJobs, current_jobs, dispatch, run_report
from itvsh.reports.kinds import KINDS, OZG_EXPORT
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.storage import final_path
from tests.reports.job_support import aware, files_of, finish_events

_T = Report.__table__
HERE = "tests.reports.test_jobs"
# What the renderers of this module saw or should do (reset by the ``calls`` fixture).
CALLS: dict = {}


# --- renderers ----------------------------------------------------------------------------------


def render_ok(ctx, out) -> dict:
    CALLS["renders"] = CALLS.get("renders", 0) + 1
    out.write(b"kind;value\r\nozg;1\r\n")
    return {"rows": 1}


def render_flaky(ctx, out) -> dict:
    """Fails with a lost database connection as long as ``CALLS["failures"]`` says so."""
    if CALLS.get("failures", 0) > 0:
        CALLS["failures"] -= 1
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    return render_ok(ctx, out)


def render_broken(ctx, out) -> dict:
    out.write(b"half a file")
    raise ValueError("secret internal detail\nTraceback (most recent call last):\n  File 'x.py'")


def render_refusing(ctx, out) -> dict:
    raise RuleViolation("The OZG catalogue is empty; there is nothing to export.", "kind")


def render_taken_over(ctx, out) -> dict:
    """While this run renders, another run claims the row (this one's lease ran out) and publishes
    its file; then this run carries on to the end."""
    with write_step(ctx.session):
        ctx.session.execute(
            update(_T)
            .where(_T.c.id == ctx.report_id)
            .values(claim_token="f" * 32, lease_until=utcnow() + timedelta(minutes=1))
        )
    final_path(ctx.report_id, "ozg-export.csv").write_bytes(b"the other run's file\n")
    out.write(b"this run's file\n")
    return {}


def render_taken_over_then_progress(ctx, out) -> dict:
    with write_step(ctx.session):
        ctx.session.execute(update(_T).where(_T.c.id == ctx.report_id).values(claim_token="e" * 32))
    ctx.progress(50)
    CALLS["after_progress"] = True  # never reached: progress notices the lost claim
    return {}


def render_with_progress(ctx, out) -> dict:
    before = utcnow()
    ctx.progress(40)
    row = ctx.session.execute(select(_T.c.progress, _T.c.lease_until).where(_T.c.id == ctx.report_id)).one()
    CALLS["before"], CALLS["progress"], CALLS["lease_until"] = before, row.progress, aware(row.lease_until)
    out.write(b"done\n")
    return {}


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def jobs(app, tmp_path):
    """The manual job service, an empty folder for the files, and the ALL scope."""
    app.config["ITVSH_REPORTS_DIR"] = str(tmp_path)
    set_scope(db.session, ALL)
    service_ = current_jobs()
    assert isinstance(service_, ManualJobs)
    return service_


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def use_renderer(monkeypatch, function: str, **changes) -> None:
    monkeypatch.setitem(
        KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{HERE}:{function}", **changes)
    )


def requested(actor="test", **kwargs) -> Report:
    """A committed ``pending`` ozg_export request (not yet dispatched)."""
    report = service.request_report(db.session, actor, OZG_EXPORT, {}, fmt="csv", **kwargs)
    db.session.commit()
    return report


def row(report_id: int) -> Report:
    set_scope(db.session, ALL)
    return db.session.get(Report, report_id, populate_existing=True)


def report_count() -> int:
    set_scope(db.session, ALL)
    return db.session.execute(select(func.count()).select_from(Report)).scalar_one()


def events(action: str, report_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    if report_id is not None:
        stmt = stmt.where(AuditEvent.entity == "report", AuditEvent.entity_id == str(report_id))
    return db.session.execute(stmt).scalar_one()


def expire_lease(report_id: int) -> None:
    """The worker running the row died: its lease ran out."""
    db.session.execute(
        update(_T).where(_T.c.id == report_id).values(lease_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def let_back_off_pass(report_id: int) -> None:
    db.session.execute(
        update(_T).where(_T.c.id == report_id).values(run_after=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


# --- the claim and the finished report ----------------------------------------------------------


def test_the_claim_is_exclusive(jobs):
    report = requested()
    first = service.claim(db.session, report.id, 60)
    second = service.claim(db.session, report.id, 60)
    db.session.commit()
    assert first is not None and len(first) == 32
    assert second is None
    current = row(report.id)
    assert (current.status, current.claim_token, current.attempts) == ("running", first, 1)


def test_a_request_is_recorded_pending_then_queued_then_finished(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_ok")
    before = events("request")
    report = requested()
    assert row(report.id).status == ReportStatus.PENDING
    assert events("request") == before + 1

    assert dispatch(db.session, report) is True
    queued = row(report.id)
    assert queued.status == ReportStatus.QUEUED and queued.job_id.startswith("manual-")
    assert jobs.enqueued == [report.id]

    assert jobs.run_all() == ["finished"]
    done = row(report.id)
    assert (done.status, done.progress, done.file_name, done.summary) == (
        "finished",
        100,
        "ozg-export.csv",
        {"rows": 1},
    )
    assert done.claim_token is not None and done.lease_until is None and done.error == ""
    path = final_path(report.id, done.file_name)
    assert path.read_bytes() == b"kind;value\r\nozg;1\r\n"
    assert done.file_size == path.stat().st_size and len(done.sha256) == 64
    head = db.session.execute(select(func.max(AuditEvent.seq))).scalar_one()
    assert done.audit_seq is not None and done.audit_seq < head  # the head before its own events


def test_a_finished_report_is_not_made_twice(jobs, monkeypatch, calls, app):
    use_renderer(monkeypatch, "render_ok")
    report = requested()
    dispatch(db.session, report)
    assert jobs.run_all() == ["finished"]
    first = row(report.id)

    # The same job delivered again (a worker killed after the finish, rq's retry) and a second dispatch.
    assert run_report(report.id) == "skipped"
    dispatch(db.session, first)
    assert jobs.run_all() == ["skipped"]

    again = row(report.id)
    assert calls["renders"] == 1
    assert (again.status, again.sha256, again.finished_at) == ("finished", first.sha256, first.finished_at)
    assert files_of(app.config["ITVSH_REPORTS_DIR"], report.id) == ["ozg-export.csv"]
    assert finish_events(report.id) == 1


# --- the lease and the sweeper ------------------------------------------------------------------


def test_an_expired_lease_is_put_back_to_pending_and_enqueued(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_ok")
    report = requested()
    dead_run = service.claim(db.session, report.id, 60)
    db.session.commit()
    assert dead_run is not None

    # While the lease runs, the sweeper leaves the row alone and no second run can claim it.
    assert service.sweep(db.session, jobs)["recovered"] == 0
    assert run_report(report.id) == "skipped"
    assert row(report.id).status == ReportStatus.RUNNING

    # The worker died: a minute later the lease has run out.
    counts = service.sweep(db.session, jobs, now=utcnow() + timedelta(seconds=61))
    assert (counts["recovered"], counts["enqueued"]) == (1, 1)
    assert jobs.enqueued == [report.id]
    recovered = row(report.id)
    assert recovered.status == ReportStatus.QUEUED and recovered.claim_token is None

    assert jobs.run_all() == ["finished"]
    done = row(report.id)
    assert (done.status, done.attempts) == ("finished", 2)
    assert finish_events(report.id) == 1


def test_after_max_attempts_an_interrupted_job_fails_with_a_reason(jobs):
    report = requested(locale="en")  # the reason is written in the requester's language
    for attempt in range(1, service.MAX_ATTEMPTS + 1):
        assert service.claim(db.session, report.id, 60) is not None, attempt
        db.session.commit()
        expire_lease(report.id)
        with force_locale("en"):
            counts = service.sweep(db.session, jobs)
        expected = (0, 1) if attempt == service.MAX_ATTEMPTS else (1, 0)
        assert (counts["recovered"], counts["gave_up"]) == expected, attempt

    failed = row(report.id)
    assert failed.status == ReportStatus.FAILED and failed.attempts == service.MAX_ATTEMPTS
    assert f"interrupted {service.MAX_ATTEMPTS} times" in failed.error
    assert "ask for the report again" in failed.error
    assert failed.claim_token is None and failed.lease_until is None and failed.finished_at is not None
    assert events("fail", report.id) == 1
    # A failed row is never claimed again.
    assert service.claim(db.session, report.id, 60) is None


def test_the_sweeper_hands_over_requests_made_while_the_job_service_was_down(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_ok")
    report = requested()
    jobs.reachable = False
    assert dispatch(db.session, report) is False
    assert row(report.id).status == ReportStatus.PENDING
    assert service.sweep(db.session, jobs)["unreachable"] == 1
    assert row(report.id).status == ReportStatus.PENDING

    jobs.reachable = True
    assert service.sweep(db.session, jobs)["enqueued"] == 1
    assert row(report.id).status == ReportStatus.QUEUED
    assert jobs.run_all() == ["finished"]


# --- failures -----------------------------------------------------------------------------------


def test_a_transient_error_backs_off_and_a_later_sweep_finishes_the_report(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_flaky")
    calls["failures"] = 1
    report = requested(locale="en")
    dispatch(db.session, report)
    started = utcnow()
    assert jobs.run_all() == ["pending"]

    waiting = row(report.id)
    assert waiting.status == ReportStatus.PENDING and waiting.attempts == 1
    assert waiting.claim_token is None and waiting.lease_until is None
    assert aware(waiting.run_after) >= started + timedelta(seconds=service.BACKOFF_SECONDS[0])
    assert waiting.error.startswith("Attempt 1 failed (")
    assert "could not be reached (OperationalError)" in waiting.error
    assert "server closed" not in waiting.error  # the driver's words stay in the log

    # Not due yet: neither the sweeper nor a stray delivery of the job runs it.
    assert service.sweep(db.session, jobs)["enqueued"] == 0
    assert run_report(report.id) == "skipped"

    let_back_off_pass(report.id)
    assert service.sweep(db.session, jobs)["enqueued"] == 1
    assert jobs.run_all() == ["finished"]
    done = row(report.id)
    assert (done.status, done.attempts, done.error) == ("finished", 2, "")
    assert finish_events(report.id) == 1


def test_a_transient_error_that_persists_fails_after_max_attempts(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_flaky")
    calls["failures"] = 99
    report = requested(locale="en")
    dispatch(db.session, report)
    outcomes = []
    for _attempt in range(service.MAX_ATTEMPTS):
        outcomes += jobs.run_all()
        let_back_off_pass(report.id)
        service.sweep(db.session, jobs)
    assert outcomes == ["pending"] * (service.MAX_ATTEMPTS - 1) + ["failed"]
    failed = row(report.id)
    assert failed.status == ReportStatus.FAILED and failed.attempts == service.MAX_ATTEMPTS
    assert failed.error == "The database or the job service could not be reached (OperationalError)."
    assert jobs.enqueued == []


def test_a_permanent_error_fails_with_a_readable_reason_and_no_traceback(jobs, monkeypatch, app):
    use_renderer(monkeypatch, "render_broken")
    report = requested(locale="en")
    dispatch(db.session, report)
    assert jobs.run_all() == ["failed"]

    failed = row(report.id)
    assert failed.status == ReportStatus.FAILED and failed.attempts == 1
    assert failed.error == (
        "An internal error stopped the report (ValueError); the details are in the worker's log."
    )
    assert "Traceback" not in failed.error and "secret" not in failed.error
    assert failed.claim_token is None and failed.lease_until is None and failed.file_name is None
    assert files_of(app.config["ITVSH_REPORTS_DIR"], report.id) == []  # the half file is gone
    assert events("fail", report.id) == 1 and finish_events(report.id) == 0
    # Failed is final: the sweeper does not pick it up again.
    assert service.sweep(db.session, jobs)["enqueued"] == 0


def test_a_rule_violation_while_rendering_fails_with_its_message(jobs, monkeypatch):
    use_renderer(monkeypatch, "render_refusing")
    report = requested()
    dispatch(db.session, report)
    assert jobs.run_all() == ["failed"]
    failed = row(report.id)
    assert (failed.status, failed.error) == (
        "failed",
        "The OZG catalogue is empty; there is nothing to export.",
    )


def tagging_gettext(text, **variables):
    """gettext that shows the locale it translated into: ``[en] text``."""
    return f"[{get_locale()}] " + (text % variables if variables else text)


def test_reasons_are_written_in_the_requesters_language(jobs, monkeypatch, calls):
    monkeypatch.setattr("itvsh.reports.jobs._", tagging_gettext)
    monkeypatch.setattr("itvsh.reports.service._", tagging_gettext)
    use_renderer(monkeypatch, "render_flaky")
    calls["failures"] = 1
    english = requested(locale="en")
    dispatch(db.session, english)
    assert jobs.run_all() == ["pending"]
    assert row(english.id).error.startswith("[en] Attempt 1 failed ([en] The database")

    # The sweeper gives up on rows of both languages in one pass, each in its own language.
    german = requested(locale="de")
    for report in (english, german):
        let_back_off_pass(report.id)
        db.session.execute(update(_T).where(_T.c.id == report.id).values(attempts=service.MAX_ATTEMPTS))
        db.session.execute(
            update(_T)
            .where(_T.c.id == report.id)
            .values(status="running", claim_token="a" * 32, lease_until=utcnow() - timedelta(seconds=1))
        )
    db.session.commit()
    with force_locale("de"):
        assert service.sweep(db.session, jobs)["gave_up"] == 2
    assert row(english.id).error.startswith("[en] The job was interrupted")
    assert row(german.id).error.startswith("[de] The job was interrupted")


# --- lost claims and the lease ------------------------------------------------------------------


def test_a_run_that_lost_its_claim_cannot_finish(jobs, monkeypatch, app):
    use_renderer(monkeypatch, "render_taken_over")
    report = requested()
    dispatch(db.session, report)
    assert jobs.run_all() == ["lost"]

    current = row(report.id)
    assert (current.status, current.claim_token) == ("running", "f" * 32)  # the other run's
    assert current.file_name is None and current.sha256 is None
    assert final_path(report.id, "ozg-export.csv").read_bytes() == b"the other run's file\n"
    assert files_of(app.config["ITVSH_REPORTS_DIR"], report.id) == ["ozg-export.csv"]  # part removed
    assert finish_events(report.id) == 0 and events("fail", report.id) == 0


def test_progress_notices_a_lost_claim_and_stops_the_run(jobs, monkeypatch, calls):
    use_renderer(monkeypatch, "render_taken_over_then_progress")
    report = requested()
    dispatch(db.session, report)
    assert jobs.run_all() == ["lost"]
    assert "after_progress" not in calls
    current = row(report.id)
    assert (current.status, current.claim_token) == ("running", "e" * 32)


def test_progress_renews_the_lease(jobs, monkeypatch, calls, app):
    use_renderer(monkeypatch, "render_with_progress")
    lease = app.config["ITVSH_REPORT_LEASE_SECONDS"]
    report = requested()
    dispatch(db.session, report)
    assert jobs.run_all() == ["finished"]
    assert calls["progress"] == 40
    assert calls["lease_until"] >= calls["before"] + timedelta(seconds=lease)


def test_renew_with_another_token_changes_nothing(jobs):
    report = requested()
    token = service.claim(db.session, report.id, 60)
    db.session.commit()
    assert service.renew(db.session, report.id, "0" * 32, 70, 600) is False
    assert service.renew(db.session, report.id, token, 70, 600) is True
    db.session.commit()
    current = row(report.id)
    assert current.progress == 70
    assert aware(current.lease_until) > utcnow() + timedelta(seconds=500)


# --- requests refused before any row exists -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "parameters", "field", "words"),
    [
        ("no_such_report", {}, "kind", "Unknown report kind no_such_report"),
        ("annual_funding", ["year", 2024], "parameters", "named values"),
        ("annual_funding", {"year": "abc"}, "year", "whole number"),
        ("annual_funding", {"year": 1.5}, "year", "whole number"),
        ("annual_funding", {"year": True}, "year", "whole number"),
        ("annual_funding", {"year": 10**30}, "year", "whole number"),
        ("annual_funding", {"year": -2024}, "year", "whole number"),
        ("annual_funding", {"year": 1900}, "year", "There is no fiscal year 1900"),
        ("annual_funding", {}, "year", "Please give the fiscal year"),
        ("municipality_statement", {"ags": "99999999"}, "ags", "no member with the key 99999999"),
        ("proof_of_use", {"as_of": "28.11.2026"}, "as_of", "YYYY-MM-DD"),
        ("ozg_snapshot", {"month": "2026-13"}, "month", "YYYY-MM"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_no_row(jobs, kind, parameters, field, words):
    rows, requests = report_count(), events("request")
    with force_locale("en"), pytest.raises(RuleViolation) as refused:
        service.request_report(db.session, "test", kind, parameters)
    db.session.commit()
    assert refused.value.field == field
    assert words in refused.value.message
    assert report_count() == rows and events("request") == requests
    assert jobs.enqueued == []


def test_a_format_the_kind_does_not_have_is_refused(jobs):
    rows = report_count()
    with force_locale("en"), pytest.raises(RuleViolation) as refused:
        service.request_report(db.session, "test", OZG_EXPORT, {}, fmt="pdf")
    assert refused.value.field == "format" and "not as pdf" in refused.value.message
    assert report_count() == rows
