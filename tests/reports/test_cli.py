"""The report commands: ``itvsh reports make`` (the renderer, synchronously, with an audited export),
``itvsh reports sweep`` and ``itvsh reports kinds`` through the CLI runner on the rolled-back app,
and ``itvsh worker``'s refusals through the real console script (exit codes, no traceback)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.reports import service
from itvsh.reports.jobs import current_jobs
from itvsh.reports.kinds import KINDS, OZG_EXPORT
from itvsh.reports.models import Report, ReportStatus
from tests.reports.job_support import closed_port, run_itvsh, worker_environment

HERE = "tests.reports.test_cli"


def render_broken(ctx, out) -> dict:
    out.write(b"half a file")
    raise ValueError("the renderer broke")


def exports() -> list[AuditEvent]:
    return (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.entity == "report")
        )
        .scalars()
        .all()
    )


def make(runner, *args):
    with force_locale("en"):
        return runner.invoke(args=["reports", "make", *args])


def test_make_prints_the_path_and_the_sha256_of_the_file_and_audits_the_export(runner, tmp_path):
    before = len(exports())
    result = make(runner, OZG_EXPORT, "--format", "csv", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output

    path_line, digest_line = result.output.splitlines()
    path = Path(path_line)
    assert path == tmp_path / "out" / "ozg-export.csv" and path.is_file()
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest_line.startswith(f"sha256 {sha256}  size {path.stat().st_size} bytes")
    assert sorted(p.name for p in path.parent.iterdir()) == ["ozg-export.csv"]  # no part file left

    events = exports()
    assert len(events) == before + 1
    event = events[-1]
    assert (event.actor, event.entity_id) == ("cli", OZG_EXPORT)
    assert event.after["sha256"] == sha256 and event.after["format"] == "csv"
    set_scope(db.session, ALL)
    assert db.session.execute(select(Report.id)).first() is None  # no job, no row


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["no_such_kind"], ["KIND", "Unknown report kind no_such_kind"]),
        (["annual_funding", "--year", "abc"], ["--year", "whole number"]),
        (["annual_funding", "--year", "1900"], ["--year", "There is no fiscal year 1900"]),
        (["annual_funding"], ["--year", "Please give the fiscal year"]),
        (["proof_of_use", "--as-of", "28.11.2026"], ["--as-of", "YYYY-MM-DD"]),
        (["municipality_statement", "--ags", "99999999"], ["--ags", "99999999"]),
        ([OZG_EXPORT, "--format", "pdf"], ["--format", "not as pdf"]),
        (["ozg_snapshot"], ["KIND", "ozg_snapshot makes no file"]),
    ],
)
def test_make_refuses_bad_input_with_a_usage_error_naming_it(runner, tmp_path, args, names):
    before = len(exports())
    result = make(runner, *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    for name in names:
        assert name in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert len(exports()) == before


def test_make_leaves_no_file_and_no_export_event_when_the_renderer_fails(runner, tmp_path, monkeypatch):
    monkeypatch.setitem(KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{HERE}:render_broken"))
    before = len(exports())
    result = make(runner, OZG_EXPORT, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    assert list(tmp_path.iterdir()) == []
    assert len(exports()) == before


def test_sweep_hands_pending_requests_to_the_job_service(runner, app):
    set_scope(db.session, ALL)
    report = service.request_report(db.session, "test", OZG_EXPORT, {}, fmt="csv")
    db.session.commit()
    result = runner.invoke(args=["reports", "sweep"])
    assert result.exit_code == 0, result.output
    assert "'enqueued': 1" in result.output
    assert current_jobs().enqueued == [report.id]
    set_scope(db.session, ALL)
    assert db.session.get(Report, report.id, populate_existing=True).status == ReportStatus.QUEUED


def test_kinds_lists_every_kind_with_its_formats(runner):
    result = runner.invoke(args=["reports", "kinds"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == len(KINDS)
    assert any(line.split()[0] == OZG_EXPORT and line.endswith("csv, xlsx") for line in lines)


# --- `itvsh worker` refusals, through the console script ---------------------------------------


def test_worker_without_redis_is_a_usage_error(tmp_path):
    env = worker_environment(f"sqlite:///{tmp_path / 'unused.db'}", None, tmp_path)
    result = run_itvsh(["worker"], env)
    assert result.returncode == 2
    assert "itvsh worker needs ITVSH_REDIS_URL" in result.stderr
    assert "embedded mode" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_worker_with_an_unreachable_redis_exits_1_with_one_line(tmp_path):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    env = worker_environment(f"sqlite:///{tmp_path / 'unused.db'}", url, tmp_path)
    result = run_itvsh(["worker", "--with-scheduler"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"itvsh worker: Redis at {url} is unreachable")
    assert "Traceback" not in result.stdout
