"""Report jobs through rq: fast tests with fakeredis and a burst ``SimpleWorker`` in this process,
and tests against the real Redis (``ITVSH_TEST_REDIS_URL``) with ``itvsh worker`` subprocesses over
a committed database — a worker killed in the middle of a job, Redis down while a report is asked
for, two schedulers, a job past its time limit.

The subprocesses run the real command line through :mod:`tests.reports.worker_with_test_kinds`,
which swaps in the blocking renderer :func:`tests.reports.job_support.gated` where a test says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from itvsh import create_app
from itvsh.auth import services as auth_services
from itvsh.core.audit import verify_chain
from itvsh.core.db import utcnow
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.reports import service
from itvsh.reports.cli import SCHEDULER_LOCK
from itvsh.reports.jobs import QUEUES, RqJobs, current_jobs, dispatch, redis_for_jobs
from itvsh.reports.kinds import KINDS, OZG_EXPORT, OZG_SNAPSHOT
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.storage import digest
from tests.conftest import TEST_REDIS_URL, csrf_token, drop_database, migrated_database, require
from tests.conftest import test_config as config_for
from tests.reports.job_support import (
    GATE_ENV,
    HOLD_ENV,
    KIND_PATCH_ENV,
    aware,
    closed_port,
    files_of,
    finish_events,
    gone,
    kill_group,
    log_of,
    run_itvsh,
    snapshot,
    start_itvsh,
    stop,
    wait_for,
    worker_environment,
)

_T = Report.__table__
HERE = "tests.reports.test_worker"
GATED = {OZG_EXPORT: {"renderer": "tests.reports.job_support:gated"}}


def render_ok(ctx, out) -> dict:
    ctx.progress(50)
    out.write(b"ozg;1\r\n")
    return {"rows": 1}


def render_forever(ctx, out) -> dict:
    """Sleeps far past any limit a test gives (rq's timeout interrupts it)."""
    for _second in range(30):
        time.sleep(1)
    out.write(b"too late\n")
    return {}


# --- fakeredis and a burst SimpleWorker in this process ----------------------------------------


@pytest.fixture
def fake_rq(app, tmp_path, monkeypatch):
    """The app's job service is rq on a FakeRedis; files in an empty folder; the ALL scope."""
    from fakeredis import FakeRedis

    app.config["ITVSH_REPORTS_DIR"] = str(tmp_path)
    set_scope(db.session, ALL)
    jobs = RqJobs(FakeRedis())
    monkeypatch.setitem(app.extensions, "itvsh_jobs", jobs)
    monkeypatch.setitem(KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{HERE}:render_ok"))
    return jobs


def work_burst(jobs: RqJobs) -> None:
    """A burst SimpleWorker on our queues: the job runs here, in the test's app context and session."""
    from rq import Queue, SimpleWorker

    queues = [Queue(name, connection=jobs.connection) for name in QUEUES]
    SimpleWorker(queues, connection=jobs.connection).work(burst=True)


def rq_job(jobs: RqJobs, job_id: str):
    from rq.job import Job

    return Job.fetch(job_id, connection=jobs.connection)


def requested(kind=OZG_EXPORT, parameters=None, fmt="csv", locale="en") -> Report:
    report = service.request_report(db.session, "test", kind, parameters or {}, fmt=fmt, locale=locale)
    db.session.commit()
    return report


def row(report_id: int) -> Report:
    set_scope(db.session, ALL)
    return db.session.get(Report, report_id, populate_existing=True)


def test_fakeredis_request_dispatch_burst_worker_finished(fake_rq, app):
    report = requested()
    assert dispatch(db.session, report) is True
    queued = row(report.id)
    assert queued.status == ReportStatus.QUEUED
    job = rq_job(fake_rq, queued.job_id)
    assert job.origin == "reports" and job.args == (report.id,) and job.timeout == KINDS[OZG_EXPORT].timeout
    assert fake_rq.job_alive(queued.job_id) is True

    work_burst(fake_rq)

    done = row(report.id)
    assert (done.status, done.progress, done.file_name) == ("finished", 100, "ozg-export.csv")
    assert digest(Path(app.config["ITVSH_REPORTS_DIR"]) / str(report.id) / "ozg-export.csv")[1] == done.sha256
    assert rq_job(fake_rq, queued.job_id).return_value() == "finished"
    assert fake_rq.job_alive(queued.job_id) is False  # done: the sweeper would hand over no copy
    assert finish_events(report.id) == 1


def test_fakeredis_the_snapshot_runs_on_the_default_queue_once(fake_rq):
    report = requested(OZG_SNAPSHOT, {"month": "2026-01"}, fmt=None)
    dispatch(db.session, report)
    job_id = row(report.id).job_id
    assert rq_job(fake_rq, job_id).origin == "default"
    # Delivered twice (rq's retry of an abandoned job): the second run changes nothing.
    fake_rq.enqueue(report.id, KINDS[OZG_SNAPSHOT])
    work_burst(fake_rq)
    done = row(report.id)
    assert (done.status, done.file_name, done.summary["month"]) == ("finished", None, "2026-01")
    assert finish_events(report.id) == 1


def test_fakeredis_a_job_past_its_time_limit_fails_with_a_readable_reason(fake_rq, monkeypatch, app):
    monkeypatch.setitem(
        KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{HERE}:render_forever", timeout=1)
    )
    report = requested()
    dispatch(db.session, report)
    assert rq_job(fake_rq, row(report.id).job_id).timeout == 1
    work_burst(fake_rq)
    failed = row(report.id)
    assert failed.status == ReportStatus.FAILED
    assert failed.error == "The report took longer than its limit of 1 seconds and was stopped."
    assert failed.claim_token is None and failed.lease_until is None
    assert files_of(app.config["ITVSH_REPORTS_DIR"], report.id) == []


def test_fakeredis_a_queued_row_whose_job_vanished_is_handed_over_again(fake_rq):
    kept, lost = requested(), requested()
    dispatch(db.session, kept)
    dispatch(db.session, lost)
    lost_job = row(lost.id).job_id
    fake_rq.connection.delete(f"rq:job:{lost_job}")  # Redis restarted without that job
    fake_rq.connection.lrem("rq:queue:reports", 0, lost_job)

    # Recently queued rows are left alone; ten minutes later the lost one is handed over again.
    assert service.sweep(db.session, fake_rq)["requeued"] == 0
    counts = service.sweep(db.session, fake_rq, now=utcnow() + service.STALE_QUEUED + timedelta(seconds=1))
    assert (counts["requeued"], counts["enqueued"]) == (1, 1)
    assert row(lost.id).job_id != lost_job

    work_burst(fake_rq)
    assert row(kept.id).status == row(lost.id).status == ReportStatus.FINISHED
    assert finish_events(kept.id) == finish_events(lost.id) == 1


def test_an_unreachable_redis_leaves_the_request_pending(app, monkeypatch, tmp_path):
    app.config["ITVSH_REPORTS_DIR"] = str(tmp_path)
    set_scope(db.session, ALL)
    jobs = RqJobs(redis_for_jobs(f"redis://127.0.0.1:{closed_port()}/0"))
    monkeypatch.setitem(app.extensions, "itvsh_jobs", jobs)
    report = requested()
    assert dispatch(db.session, report) is False
    assert jobs.job_alive("report-1-abc") is True  # cannot tell: never hand a job over twice
    assert service.sweep(db.session, jobs)["unreachable"] == 1
    waiting = row(report.id)
    assert (waiting.status, waiting.job_id, waiting.attempts) == ("pending", None, 0)


# --- the real Redis and `itvsh worker` subprocesses --------------------------------------------


@pytest.fixture(scope="module")
def real_redis():
    """The test Redis (its own database number, ITVSH_TEST_REDIS_URL), or a skip (a failure in CI)."""
    require(
        TEST_REDIS_URL is not None, "ITVSH_TEST_REDIS_URL is not set: the tests with a real Redis need one"
    )
    from redis import Redis
    from redis.exceptions import RedisError

    connection = Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except (RedisError, OSError) as exc:
        require(False, f"Redis at {TEST_REDIS_URL} is unreachable: {exc}")
    yield connection
    connection.close()


@pytest.fixture
def redis_url(real_redis):
    """The test Redis database, emptied before and after (only that database number)."""
    real_redis.flushdb()
    yield TEST_REDIS_URL
    real_redis.flushdb()


@pytest.fixture(scope="module")
def committed_url(real_redis, tmp_path_factory):
    url = migrated_database(tmp_path_factory, "jobs")
    yield url
    drop_database(url)


class Live:
    """A web app on the committed database with rq on ``redis_url``, and the environment of its workers."""

    def __init__(self, database_url: str, redis_url: str, folder: Path):
        self.database_url, self.redis_url, self.folder = database_url, redis_url, folder
        self.reports_dir = folder / "files"
        self.reports_dir.mkdir()
        self.app = self.make_app(redis_url)

    def make_app(self, redis_url: str):
        return create_app(
            config_for(
                self.database_url,
                ITVSH_JOBS="rq",
                ITVSH_REDIS_URL=redis_url,
                ITVSH_REPORTS_DIR=str(self.reports_dir),
            )
        )

    def env(self, patch: dict | None = None, **extra) -> dict:
        if patch is not None:
            extra[KIND_PATCH_ENV] = json.dumps(patch)
        return worker_environment(self.database_url, self.redis_url, self.reports_dir, **extra)

    def request(self, *, dispatched: bool, kind=OZG_EXPORT, fmt="csv") -> int:
        with self.app.app_context():
            set_scope(db.session, ALL)
            report = service.request_report(db.session, "test", kind, {}, fmt=fmt, locale="en")
            db.session.commit()
            if dispatched:
                assert dispatch(db.session, report) is True
            return report.id

    def row(self, report_id: int) -> Report:
        return snapshot(self.app, report_id)

    def close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live(committed_url, redis_url, tmp_path):
    live = Live(committed_url, redis_url, tmp_path)
    yield live
    live.close()


@pytest.mark.redis
def test_a_worker_killed_in_the_middle_of_a_job_then_restarted_makes_the_report_once(live, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    env = live.env(GATED, **{GATE_ENV: gate})
    report_id = live.request(dispatched=True)
    horse_pid_file = gate / f"horse-{report_id}.pid"

    first = start_itvsh(["worker", "--burst"], env, tmp_path, "first")
    try:
        wait_for(
            lambda: horse_pid_file.exists() and live.row(report_id).status == ReportStatus.RUNNING,
            "the first worker to be in the middle of the job",
            on_timeout=lambda: log_of(tmp_path, "first"),
        )
        horse = int(horse_pid_file.read_text())
        # The machine dies: the worker and its work horse (rq gives the horse its own group).
        kill_group(first.pid)
        kill_group(horse)
        first.wait(20)
        wait_for(lambda: gone(horse), "the work horse to end")
    finally:
        stop(first)
        if horse_pid_file.exists():
            kill_group(int(horse_pid_file.read_text()))

    interrupted = live.row(report_id)
    assert (interrupted.status, interrupted.attempts, interrupted.file_name) == ("running", 1, None)
    assert all(name.startswith(".part-") for name in files_of(live.reports_dir, report_id))

    (gate / "open").touch()
    wait_for(lambda: aware(live.row(report_id).lease_until) < utcnow(), "the dead run's lease to run out")
    restarted = run_itvsh(["worker", "--burst"], env)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "'recovered': 1" in restarted.stdout

    done = live.row(report_id)
    assert (done.status, done.attempts, done.error) == ("finished", 2, "")
    assert files_of(live.reports_dir, report_id) == ["ozg-export.csv"]
    assert digest(live.reports_dir / str(report_id) / "ozg-export.csv")[1] == done.sha256
    with live.app.app_context():
        assert finish_events(report_id) == 1
        verified = verify_chain(db.session)
        assert verified.ok, verified.problem


def _staff_client(app):
    """A test client logged in as a new staff member (English) of the committed database."""
    with app.app_context():
        user = auth_services.create_user(
            db.session,
            "test",
            email=f"staff-{time.monotonic_ns()}@test.example",
            role="staff",
            password="correct horse battery",
            locale="en",
        )
        db.session.commit()
        user_id = user.get_id()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    return client


@pytest.mark.redis
def test_redis_down_the_page_answers_the_report_waits_and_runs_when_redis_is_back(live, tmp_path):
    down = live.make_app(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        client = _staff_client(down)
        assert client.get("/reports/").status_code == 200
        answer = client.post(
            "/reports/",
            data={"csrf_token": csrf_token(client, "/reports/"), "kind": OZG_EXPORT, "format": "csv"},
        )
        assert answer.status_code == 302, answer.get_data(as_text=True)
        report_id = int(answer.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        page = client.get(answer.headers["Location"])
        assert page.status_code == 200
        assert "will be made when it is back" in page.get_data(as_text=True)
    finally:
        with down.app_context():
            db.engine.dispose()
    waiting = live.row(report_id)
    assert (waiting.kind, waiting.status, waiting.job_id) == (OZG_EXPORT, "pending", None)

    # Redis is back: a worker starting up hands the waiting request over and makes it.
    result = run_itvsh(["worker", "--burst"], live.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'enqueued': 1" in result.stdout
    done = live.row(report_id)
    assert (done.status, done.file_name) == ("finished", "ozg-export.csv")
    assert files_of(live.reports_dir, report_id) == ["ozg-export.csv"]


@pytest.mark.redis
def test_of_two_workers_with_scheduler_exactly_one_runs_the_schedule(live, tmp_path):
    from redis import Redis

    redis = Redis.from_url(live.redis_url)
    month = date.today().strftime("%Y-%m")  # as the schedule reckons it
    env = live.env()
    runs = "this worker runs the schedule"
    first = start_itvsh(["worker", "--with-scheduler"], env, tmp_path, "a")
    second = None
    try:
        wait_for(
            lambda: redis.exists(SCHEDULER_LOCK) and runs in log_of(tmp_path, "a"),
            "the first worker to take the scheduler lock",
            on_timeout=lambda: log_of(tmp_path, "a"),
        )
        holder = redis.get(SCHEDULER_LOCK)
        second = start_itvsh(["worker", "--with-scheduler"], env, tmp_path, "b")
        wait_for(
            lambda: "sweep at start" in log_of(tmp_path, "b") and len(_rq_workers(redis)) == 2,
            "the second worker to be up",
            on_timeout=lambda: log_of(tmp_path, "b"),
        )
        # While both run, the holder keeps renewing its lock (its time to live jumps back up).
        _wait_for_renewals(redis, 2)
        assert redis.get(SCHEDULER_LOCK) == holder
        assert runs not in log_of(tmp_path, "b")

        def snapshot_done():
            with live.app.app_context():
                set_scope(db.session, ALL)
                return db.session.execute(
                    select(Report.status).where(
                        Report.kind == OZG_SNAPSHOT, Report.dedupe_key.like(f"%{month}")
                    )
                ).all()

        rows = wait_for(
            lambda: (r := snapshot_done()) and r[0].status == ReportStatus.FINISHED and r,
            "the month's snapshot to be made",
            on_timeout=lambda: f"{_snapshot_rows(live)}\n{log_of(tmp_path, 'a')}\n{log_of(tmp_path, 'b')}",
        )
        assert len(rows) == 1

        # The holder stops (its lock released): the other worker takes over the schedule.
        stop(first)
        wait_for(
            lambda: runs in log_of(tmp_path, "b"),
            "the second worker to take the schedule over",
            on_timeout=lambda: log_of(tmp_path, "b"),
        )
    finally:
        stop(first)
        if second is not None:
            stop(second)
        redis.close()
    with live.app.app_context():
        set_scope(db.session, ALL)
        assert (
            db.session.execute(
                select(func.count()).select_from(Report).where(Report.kind == OZG_SNAPSHOT)
            ).scalar_one()
            == 1
        )


@pytest.mark.redis
def test_a_work_horse_is_not_forked_inside_the_schedulers_transaction(live, tmp_path):
    """The scheduler thread hands a job to rq while it still holds a write transaction: the worker
    forks the horse only after that transaction ended, so the horse's own writes are not refused
    (SQLite: a horse forked mid-transaction inherited "this process writes" and failed with
    "database is locked" after the busy timeout)."""
    hold = tmp_path / "hold"
    hold.mkdir()
    worker = start_itvsh(["worker", "--with-scheduler"], live.env(**{HOLD_ENV: hold}), tmp_path, "w")
    try:
        id_file = hold / "report.id"
        wait_for(
            id_file.exists,
            "the scheduler to enqueue inside its transaction",
            on_timeout=lambda: log_of(tmp_path, "w"),
        )
        report_id = int(id_file.read_text())
        wait_for(
            lambda: live.row(report_id).status in (ReportStatus.FINISHED, ReportStatus.FAILED),
            "the job to end",
            timeout=20,  # below SQLite's busy timeout (30 s): a poisoned horse cannot make it
            on_timeout=lambda: log_of(tmp_path, "w"),
        )
    finally:
        stop(worker)
    done = live.row(report_id)
    assert (done.status, done.attempts, done.error) == ("finished", 1, ""), log_of(tmp_path, "w")


def _snapshot_rows(live) -> list:
    with live.app.app_context():
        set_scope(db.session, ALL)
        return [
            (r.id, r.status, r.attempts, r.error, r.job_id)
            for r in db.session.execute(select(Report).where(Report.kind == OZG_SNAPSHOT)).scalars()
        ]


def _rq_workers(redis) -> list:
    from rq import Worker

    return Worker.all(connection=redis)


def _wait_for_renewals(redis, count: int) -> None:
    """Wait until the scheduler lock's time to live went up ``count`` times (each a renewal)."""
    seen = {"renewals": 0, "last": redis.pttl(SCHEDULER_LOCK)}

    def renewed() -> bool:
        ttl = redis.pttl(SCHEDULER_LOCK)
        if ttl > seen["last"]:
            seen["renewals"] += 1
        seen["last"] = ttl
        return seen["renewals"] >= count

    wait_for(renewed, f"{count} renewals of the scheduler lock", interval=0.05)


@pytest.mark.redis
def test_a_job_past_its_time_limit_ends_failed_with_the_reason(live, tmp_path):
    gate = tmp_path / "gate"  # never opened: the job would wait two minutes
    gate.mkdir()
    env = live.env(
        {OZG_EXPORT: {"renderer": "tests.reports.job_support:gated", "timeout": 1}}, **{GATE_ENV: gate}
    )
    report_id = live.request(dispatched=False)  # the worker's sweep enqueues it with the 1 s limit
    result = run_itvsh(["worker", "--burst"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    failed = live.row(report_id)
    assert failed.status == ReportStatus.FAILED, result.stdout + result.stderr
    assert failed.error == "The report took longer than its limit of 1 seconds and was stopped."
    assert failed.claim_token is None and failed.lease_until is None
    assert files_of(live.reports_dir, report_id) == []


@pytest.mark.redis
def test_a_finished_row_is_not_touched_by_a_second_delivery(live):
    """The same job delivered twice to real workers (rq re-runs abandoned jobs): one file, one event."""
    report_id = live.request(dispatched=True)
    with live.app.app_context():
        set_scope(db.session, ALL)
        current_jobs().enqueue(report_id, KINDS[OZG_EXPORT])
    result = run_itvsh(["worker", "--burst"], live.env())
    assert result.returncode == 0, result.stdout + result.stderr
    done = live.row(report_id)
    assert done.status == ReportStatus.FINISHED
    assert files_of(live.reports_dir, report_id) == [done.file_name]
    with live.app.app_context():
        assert finish_events(report_id) == 1
