"""The monthly OZG snapshot as a job (kind ``ozg_snapshot``) and the schedule.

Through the real path (request_report → commit → dispatch → run_all): the job stores the Land's and
the Kreise's tallies for the month and finishes without a file; the same report run again is
skipped; a second report for the same month finishes and adds nothing (take_snapshot is idempotent)
and says so. ``schedule_due`` records one snapshot request per month, and the annual funding report
(XLSX and PDF) once per closing of a fiscal year (reopened and closed again: two more); each part
can be switched off by an admin. Only the federation's staff may ask for a snapshot; a month that
is not a month is refused before anything is written."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.core.settings import set_flag
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import FiscalYear
from itvsh.projects import ozg
from itvsh.projects.models import OzgSnapshot, OzgTally, TallyScope
from itvsh.reports import jobs, service
from itvsh.reports.kinds import ANNUAL_FUNDING, OZG_SNAPSHOT
from itvsh.reports.models import Report, ReportStatus, Trigger
from tests.funding.conftest import category, open_year  # noqa: F401  (fixtures re-used here)
from tests.projects.conftest import (  # noqa: F401
    ACTOR,
    KIEL,
    KRUMMWISCH,
    LUEBECK,
    catalogue,
    members,
)

MONTH = "2026-11"
FIRST_DAY = date(2026, 11, 1)


@pytest.fixture
def tallies(app, members, catalogue):  # noqa: F811  (the fixtures, not the imports)
    """Known statuses in three members in two Kreise, so the Land and Kreis tallies exist."""
    set_scope(db.session, ALL)
    for key, ozg_id, maturity in ((KIEL, "10000", 3), (KRUMMWISCH, "10169", 4), (LUEBECK, "10003", 2)):
        ozg.set_status(db.session, ACTOR, members[key], catalogue[ozg_id], maturity=maturity)
    db.session.commit()
    set_scope(db.session, ALL)


def scoped():
    set_scope(db.session, ALL)
    return db.session


def fresh(report: Report) -> Report:
    return scoped().get(Report, report.id, populate_existing=True)


def snapshot_rows(month: date = FIRST_DAY) -> int:
    return scoped().execute(select(func.count(OzgSnapshot.id)).where(OzgSnapshot.month == month)).scalar_one()


def reports(kind: str) -> list[Report]:
    return list(scoped().execute(select(Report).where(Report.kind == kind).order_by(Report.id)).scalars())


def request_and_run(actor, month: str = MONTH) -> tuple[Report, list[str]]:
    report = service.request_report(scoped(), actor, OZG_SNAPSHOT, {"month": month})
    db.session.commit()
    assert jobs.dispatch(db.session, report)
    assert fresh(report).status == ReportStatus.QUEUED
    return report, jobs.current_jobs().run_all()


# --- the job -------------------------------------------------------------------------------------


def test_the_job_stores_the_month_once(make_user, tallies):
    staff = make_user("staff")
    expected = (
        scoped()
        .execute(
            select(func.count(OzgTally.id)).where(
                OzgTally.scope.in_([TallyScope.LAND.value, TallyScope.KREIS.value])
            )
        )
        .scalar_one()
    )
    assert expected >= 6  # the Land and two Kreise, overall and per Themenfeld

    first, results = request_and_run(staff)
    assert results == ["finished"]
    done = fresh(first)
    assert done.status == ReportStatus.FINISHED and done.progress == 100
    assert done.file_name is None and done.sha256 is None  # a job without a file
    assert done.summary == {"month": MONTH, "rows": expected, "already_stored": False}
    assert snapshot_rows() == expected
    land = (
        scoped()
        .execute(
            select(OzgSnapshot).where(
                OzgSnapshot.month == FIRST_DAY,
                OzgSnapshot.scope == TallyScope.LAND.value,
                OzgSnapshot.topic == "",
            )
        )
        .scalar_one()
    )
    assert (land.level2, land.level3, land.level4) == (1, 1, 1)

    # The same report again (a job delivered twice): not claimable, nothing happens.
    assert jobs.run_report(first.id) == "skipped"
    assert jobs.dispatch(db.session, done)
    assert jobs.current_jobs().run_all() == ["skipped"]
    assert fresh(first).summary["rows"] == expected and snapshot_rows() == expected

    # A second report for the same month: finishes, adds nothing, and says so.
    second, results = request_and_run(staff)
    assert results == ["finished"]
    again = fresh(second)
    assert again.status == ReportStatus.FINISHED
    assert again.summary == {"month": MONTH, "rows": 0, "already_stored": True}
    assert snapshot_rows() == expected
    events = (
        scoped()
        .execute(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.action == "snapshot", AuditEvent.entity_id == FIRST_DAY.isoformat()
            )
        )
        .scalar_one()
    )
    assert events == 1

    # Another month is a snapshot of its own.
    _third, results = request_and_run(staff, "2026-12")
    assert results == ["finished"]
    assert snapshot_rows(date(2026, 12, 1)) == expected


def test_only_the_federation_may_ask_for_a_snapshot(make_user, catalogue):  # noqa: F811
    before = len(reports(OZG_SNAPSHOT))
    for user in (make_user("auditor"), make_user("municipality", KIEL)):
        with pytest.raises(RuleViolation) as caught:
            service.request_report(scoped(), user, OZG_SNAPSHOT, {"month": MONTH})
        assert caught.value.field == "kind"
    assert service.request_report(scoped(), make_user("admin"), OZG_SNAPSHOT, {"month": MONTH}).id
    assert len(reports(OZG_SNAPSHOT)) == before + 1


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-11", "2026-1", "November", 202611])
def test_a_month_that_is_not_a_month_is_refused(make_user, catalogue, month):  # noqa: F811
    staff = make_user("staff")
    with pytest.raises(RuleViolation) as caught:
        service.request_report(scoped(), staff, OZG_SNAPSHOT, {"month": month})
    assert caught.value.field == "month"
    assert reports(OZG_SNAPSHOT) == []


# --- the schedule --------------------------------------------------------------------------------


def test_schedule_records_one_snapshot_per_month(app, tallies):
    made = service.schedule_due(scoped(), today=date(2026, 11, 3))
    assert [(r.kind, r.parameters, r.trigger, r.dedupe_key) for r in made] == [
        (OZG_SNAPSHOT, {"month": MONTH}, Trigger.SCHEDULE.value, f"{OZG_SNAPSHOT}:{MONTH}")
    ]
    assert service.schedule_due(scoped(), today=date(2026, 11, 27)) == []  # later in the month
    assert service.schedule_due(scoped(), today=date(2026, 11, 3)) == []  # a second scheduler
    assert [r.parameters for r in reports(OZG_SNAPSHOT)] == [{"month": MONTH}]

    december = service.schedule_due(scoped(), today=date(2026, 12, 1))
    assert [r.parameters for r in december] == [{"month": "2026-12"}]
    assert len(reports(OZG_SNAPSHOT)) == 2

    # The scheduled request runs like any other.
    for report in made + december:
        assert jobs.dispatch(db.session, report)
    assert jobs.current_jobs().run_all() == ["finished", "finished"]
    assert snapshot_rows() > 0 and snapshot_rows(date(2026, 12, 1)) == snapshot_rows()


def test_schedule_makes_no_snapshot_when_switched_off(app, catalogue):  # noqa: F811
    set_flag(scoped(), "admin", service.SCHEDULE_MONTHLY_SNAPSHOT, False)
    db.session.commit()
    assert service.schedule_due(scoped(), today=date(2026, 11, 3)) == []
    assert reports(OZG_SNAPSHOT) == []

    set_flag(scoped(), "admin", service.SCHEDULE_MONTHLY_SNAPSHOT, True)
    db.session.commit()
    assert [r.kind for r in service.schedule_due(scoped(), today=date(2026, 11, 3))] == [OZG_SNAPSHOT]


def _close(year: FiscalYear, at: datetime, monkeypatch) -> None:
    """Close ``year`` with the ledger as if at ``at`` (each closing has its own time)."""
    monkeypatch.setattr(ledger, "utcnow", lambda: at)
    ledger.close_year(scoped(), ACTOR, scoped().get(FiscalYear, year.id))
    db.session.commit()


def annual_requests() -> list[tuple[int, str]]:
    return [(r.parameters["year"], r.format) for r in reports(ANNUAL_FUNDING)]


def test_schedule_records_the_annual_report_once_per_closing(make_user, open_year, monkeypatch):  # noqa: F811
    set_flag(scoped(), "admin", service.SCHEDULE_MONTHLY_SNAPSHOT, False)  # only the annual part here
    db.session.commit()
    year = open_year.year
    assert service.schedule_due(scoped(), today=date(year, 12, 1)) == []  # nothing closed yet

    _close(open_year, datetime(year + 1, 1, 15, 10, 0, tzinfo=UTC), monkeypatch)
    made = service.schedule_due(scoped(), today=date(year + 1, 1, 15))
    assert [(r.kind, r.format, r.parameters, r.trigger) for r in made] == [
        (ANNUAL_FUNDING, "xlsx", {"year": year}, Trigger.SCHEDULE.value),
        (ANNUAL_FUNDING, "pdf", {"year": year}, Trigger.SCHEDULE.value),
    ]
    assert service.schedule_due(scoped(), today=date(year + 1, 1, 16)) == []
    assert annual_requests() == [(year, "xlsx"), (year, "pdf")]

    # Reopened by an admin and closed again: a new closing, a new report in both formats.
    ledger.reopen_year(scoped(), make_user("admin"), scoped().get(FiscalYear, open_year.id), "Nachbuchung")
    db.session.commit()
    assert service.schedule_due(scoped(), today=date(year + 1, 2, 1)) == []  # open again: nothing
    _close(open_year, datetime(year + 1, 2, 3, 8, 30, tzinfo=UTC), monkeypatch)
    again = service.schedule_due(scoped(), today=date(year + 1, 2, 3))
    assert [(r.format, r.parameters) for r in again] == [("xlsx", {"year": year}), ("pdf", {"year": year})]
    assert service.schedule_due(scoped(), today=date(year + 1, 2, 4)) == []
    assert annual_requests() == [(year, "xlsx"), (year, "pdf")] * 2
    assert len({r.dedupe_key for r in reports(ANNUAL_FUNDING)}) == 4


def test_schedule_makes_no_annual_report_when_switched_off(make_user, open_year, monkeypatch):  # noqa: F811
    set_flag(scoped(), "admin", service.SCHEDULE_ANNUAL_ON_CLOSE, False)
    db.session.commit()
    year = open_year.year
    _close(open_year, datetime(year + 1, 1, 15, 10, 0, tzinfo=UTC), monkeypatch)
    made = service.schedule_due(scoped(), today=date(year + 1, 1, 15))
    assert [r.kind for r in made] == [OZG_SNAPSHOT]  # the other part still runs
    assert annual_requests() == []

    set_flag(scoped(), "admin", service.SCHEDULE_ANNUAL_ON_CLOSE, True)
    db.session.commit()
    made = service.schedule_due(scoped(), today=date(year + 1, 1, 16))
    assert [(r.kind, r.format) for r in made] == [(ANNUAL_FUNDING, "xlsx"), (ANNUAL_FUNDING, "pdf")]


def test_a_closing_within_the_same_second_still_gets_its_report(make_user, open_year, monkeypatch):  # noqa: F811
    set_flag(scoped(), "admin", service.SCHEDULE_MONTHLY_SNAPSHOT, False)
    db.session.commit()
    year = open_year.year
    _close(open_year, datetime(year + 1, 1, 2, 9, 0, 0, 100_000, tzinfo=UTC), monkeypatch)
    assert len(service.schedule_due(scoped(), today=date(year + 1, 1, 2))) == 2
    ledger.reopen_year(scoped(), make_user("admin"), scoped().get(FiscalYear, open_year.id), "Korrektur")
    db.session.commit()
    _close(open_year, datetime(year + 1, 1, 2, 9, 0, 0, 900_000, tzinfo=UTC), monkeypatch)
    assert len(service.schedule_due(scoped(), today=date(year + 1, 1, 2))) == 2
    assert len(annual_requests()) == 4
