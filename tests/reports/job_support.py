"""Helpers for the job tests: renderers that fail or block on purpose, the environment of a real
``itvsh`` worker subprocess, a committed app to look at its rows, and polling with a deadline.

A worker subprocess cannot see a test's monkeypatches. :mod:`tests.reports.worker_with_test_kinds`
reads :data:`KIND_PATCH_ENV` (JSON ``{"kind": {"renderer": "module:function", "timeout": 1}}``)
and replaces those kinds before it runs the ``itvsh`` command line, so a subprocess can make a
report with :func:`gated` — a renderer that writes its process id to the gate folder
(:data:`GATE_ENV`) and blocks until a file ``open`` appears there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.reports.kinds import KINDS
from itvsh.reports.models import Report

REPO = Path(__file__).resolve().parents[2]
KIND_PATCH_ENV = "ITVSH_TEST_KIND_PATCH"
GATE_ENV = "ITVSH_TEST_GATE_DIR"
HOLD_ENV = "ITVSH_TEST_HOLD_DIR"
HOLD_SECONDS = 1.5
GATE_LIMIT = 120  # seconds a gated renderer waits at most (a test that never opens it still ends)


# --- renderers used by the tests -----------------------------------------------------------------


def gated(ctx, out) -> dict:
    """Note this process's id, then wait (renewing the lease) until the gate is opened."""
    gate = Path(os.environ[GATE_ENV])
    (gate / f"horse-{ctx.report_id}.pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + GATE_LIMIT
    while not (gate / "open").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate")
        ctx.progress(10)
        time.sleep(0.05)
    out.write(b"made behind the gate\n")
    return {"rows": 1}


def patch_kinds_from_environment() -> None:
    """Replace the kinds named in :data:`KIND_PATCH_ENV` (in place: every module shares KINDS)."""
    raw = os.environ.get(KIND_PATCH_ENV)
    if not raw:
        return
    for name, changes in json.loads(raw).items():
        KINDS[name] = replace(KINDS[name], **changes)


def patch_scheduler_from_environment() -> None:
    """With :data:`HOLD_ENV` set, the first scheduled tick of a worker records an ozg_export
    request and hands it to rq while it holds a write transaction for :data:`HOLD_SECONDS` — the
    work horse for it must not be forked in the middle of that transaction."""
    raw = os.environ.get(HOLD_ENV)
    if not raw:
        return
    from itvsh.reports import jobs

    original = jobs.scheduler_tick
    first = threading.Event()

    def tick(app, jobs_service, *, schedule: bool = True):
        if schedule and not first.is_set():
            first.set()
            _enqueue_inside_a_write_transaction(app, jobs_service, Path(raw))
        return original(app, jobs_service, schedule=schedule)

    jobs.scheduler_tick = tick


def _enqueue_inside_a_write_transaction(app, jobs_service, folder: Path) -> None:
    from sqlalchemy import update

    from itvsh.core.db import write_step
    from itvsh.reports import service

    with app.app_context():
        session = db.session
        set_scope(session, ALL)
        report = service.request_report(session, "test", "ozg_export", {}, fmt="csv", locale="en")
        session.commit()
        report_id = report.id
        with write_step(session):
            session.execute(update(Report.__table__).where(Report.id == report_id).values(progress=0))
            assert jobs_service.enqueue(report_id, KINDS["ozg_export"]) is not None
            (folder / "report.id").write_text(str(report_id))
            time.sleep(HOLD_SECONDS)


# --- subprocesses -------------------------------------------------------------------------------


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_environment(database_url: str, redis_url: str | None, reports_dir: Path, **extra) -> dict:
    """The environment of an ``itvsh`` subprocess: production settings, short lease and tick."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITVSH_")}
    env.update(
        {
            "ITVSH_ENV": "production",
            "ITVSH_SECRET_KEY": "worker-test-secret-key-not-for-production",
            "ITVSH_DATABASE_URL": database_url,
            "ITVSH_REPORTS_DIR": str(reports_dir),
            "ITVSH_JOBS": "rq",
            "ITVSH_REPORT_LEASE_SECONDS": "2",
            "ITVSH_SCHEDULER_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url is not None:
        env["ITVSH_REDIS_URL"] = redis_url
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_itvsh(args: list[str], env: dict, log_dir: Path, label: str) -> subprocess.Popen:
    """Start ``itvsh ARGS`` (through the kind-patching wrapper) in its own process group, with its
    output in ``log_dir/label.out``."""
    log = open(log_dir / f"{label}.out", "wb")  # noqa: SIM115 (the process writes it until it ends)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.reports.worker_with_test_kinds", *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def run_itvsh(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``itvsh ARGS`` (the installed console script's entry point) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "tests.reports.worker_with_test_kinds", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_of(log_dir: Path, label: str) -> str:
    path = log_dir / f"{label}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def kill_group(pid: int) -> None:
    """SIGKILL a process group (the worker's, or the work horse's: rq gives the horse its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """End a worker we started: SIGTERM (rq's warm shut-down), then SIGKILL of its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait(timeout)


def gone(pid: int) -> bool:
    """The process has ended (no longer exists, or a zombie waiting for its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


# --- waiting and looking ------------------------------------------------------------------------


def wait_for(condition, what: str, timeout: float = 30, interval: float = 0.1, on_timeout=None):
    """Poll ``condition()`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{on_timeout()}" if on_timeout else ""
            raise AssertionError(f"gave up after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def snapshot(app, report_id: int) -> Report:
    """The row as it is now in the committed database (a detached copy)."""
    with app.app_context():
        set_scope(db.session, ALL)
        report = db.session.get(Report, report_id)
        db.session.expunge(report)
        return report


def finish_events(report_id: int) -> int:
    """How many "finish" audit events name report ``report_id`` (in the current app context)."""
    return db.session.execute(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "finish", AuditEvent.entity == "report")
        .where(AuditEvent.entity_id == str(report_id))
    ).scalar_one()


def files_of(reports_dir: Path, report_id: int) -> list[str]:
    """The names in a report's folder (including hidden part files)."""
    folder = Path(reports_dir) / str(report_id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
