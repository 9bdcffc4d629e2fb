"""Embedded mode (no Redis, as with ``make run``): a daemon thread in the web process makes the
reports and, every ``ITVSH_SCHEDULER_SECONDS``, runs the schedule and the sweeper — so a request
made without dispatch (or left pending when the server stopped) is made too.

The thread works on its own sessions, so these tests use a committed database of their own.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from itvsh import create_app
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.reports import service
from itvsh.reports.jobs import EmbeddedJobs, dispatch, jobs_for
from itvsh.reports.kinds import OZG_EXPORT, OZG_SNAPSHOT
from itvsh.reports.models import Report, ReportStatus
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for
from tests.reports.job_support import files_of, snapshot, wait_for


@pytest.fixture(scope="module")
def committed_url(tmp_path_factory):
    url = migrated_database(tmp_path_factory, "embedded")
    yield url
    drop_database(url)


def embedded_app(database_url: str, reports_dir, **extra):
    return create_app(
        config_for(
            database_url,
            ITVSH_JOBS="embedded",
            ITVSH_SCHEDULER_SECONDS=1,
            ITVSH_REPORTS_DIR=str(reports_dir),
            **extra,
        )
    )


@pytest.fixture
def embedded(committed_url, tmp_path):
    app = embedded_app(committed_url, tmp_path)
    jobs = jobs_for(app)
    assert isinstance(jobs, EmbeddedJobs)
    yield app, jobs
    jobs.stop()
    assert not jobs._thread or not jobs._thread.is_alive()
    with app.app_context():
        db.engine.dispose()


def record(app, *, dispatched: bool, kind=OZG_EXPORT, fmt="csv", parameters=None) -> int:
    with app.app_context():
        set_scope(db.session, ALL)
        report = service.request_report(db.session, "test", kind, parameters or {}, fmt=fmt, locale="en")
        db.session.commit()
        if dispatched:
            assert dispatch(db.session, report) is True
        return report.id


def finished(app, report_id: int) -> bool:
    return snapshot(app, report_id).status == ReportStatus.FINISHED


def test_a_dispatched_request_is_made_by_the_background_thread(embedded, tmp_path):
    app, jobs = embedded
    report_id = record(app, dispatched=True)
    assert jobs._thread is not None and jobs._thread.is_alive()
    wait_for(lambda: finished(app, report_id), "the embedded thread to make the report", timeout=60)
    done = snapshot(app, report_id)
    assert (done.status, done.progress, done.file_name) == ("finished", 100, "ozg-export.csv")
    assert files_of(tmp_path, report_id) == ["ozg-export.csv"]
    wait_for(lambda: not jobs.pending, "the job service to forget the finished job")


def test_the_thread_sweeps_a_request_recorded_without_dispatch_and_runs_the_schedule(embedded, tmp_path):
    app, jobs = embedded
    report_id = record(app, dispatched=False)
    assert snapshot(app, report_id).status == ReportStatus.PENDING
    jobs.start()
    wait_for(lambda: finished(app, report_id), "the sweeper in the thread to make the report", timeout=60)
    month = date.today().strftime("%Y-%m")

    def snapshot_finished():
        with app.app_context():
            set_scope(db.session, ALL)
            statuses = (
                db.session.execute(
                    select(Report.status).where(Report.dedupe_key == f"{OZG_SNAPSHOT}:{month}")
                )
                .scalars()
                .all()
            )
        return statuses == [ReportStatus.FINISHED]

    wait_for(snapshot_finished, "the schedule's monthly snapshot to be made", timeout=60)


def test_stop_ends_the_thread_and_a_new_request_starts_it_again(embedded):
    app, jobs = embedded
    jobs.start()
    thread = jobs._thread
    jobs.stop()
    assert not thread.is_alive()
    report_id = record(app, dispatched=True)
    assert jobs._thread.is_alive() and jobs._thread is not thread
    wait_for(lambda: finished(app, report_id), "the restarted thread to make the report", timeout=60)


def test_the_first_request_of_a_web_process_starts_the_thread(committed_url, tmp_path):
    """``make run``: requests left pending when the server stopped are made after it starts again."""
    app = embedded_app(committed_url, tmp_path, TESTING=False)
    jobs = jobs_for(app)
    try:
        report_id = record(app, dispatched=False)
        assert jobs._thread is None
        assert app.test_client().get("/healthz").status_code == 200
        assert jobs._thread is not None and jobs._thread.is_alive()
        wait_for(lambda: finished(app, report_id), "the thread started by the first request", timeout=60)
    finally:
        jobs.stop()
        with app.app_context():
            db.engine.dispose()
