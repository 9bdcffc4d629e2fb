"""The ``/reports/`` screens: request a report, watch it being made, download it, the history, and
for the federation office the failed jobs (with a retry) and the admin's schedule switches.

A request goes through :func:`itvsh.reports.service.request_report` (which checks everything and
records a ``pending`` row), is committed, and only then handed to the job service
(:func:`itvsh.reports.jobs.dispatch`); an unreachable job service leaves the row ``pending`` for
the sweeper and the page says so. Reports are tenant-owned: every lookup here is an ORM select, so
the central scope shows a municipality user its own statements only (another tenant's report id
answers 404). Each role sees the kinds it may ask for, in the forms and in the history. Pages run a
fixed number of SQL statements, however many reports there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from itvsh.auth.roles import ALL_ROLES, FEDERATION, Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.i18n import current_language
from itvsh.core.rules import RuleViolation
from itvsh.core.settings import get_flag, set_flag
from itvsh.core.tenancy import current_scope, scope_ids
from itvsh.extensions import db
from itvsh.funding.models import FiscalYear
from itvsh.reports import jobs, service
from itvsh.reports.access import Unavailable, download_response, downloadable_file, load_report
from itvsh.reports.forms import HistoryFilter, RequestForm, describe_parameters, size_label
from itvsh.reports.kinds import FORMAT_LABELS, KINDS, kinds_for
from itvsh.reports.models import STATUS_LABELS, Report, ReportStatus
from itvsh.tenants.models import Municipality

bp = Blueprint("reports", __name__, url_prefix="/reports")

PER_PAGE = 25
FAILED_SHOWN = 10
SCHEDULES = (
    ("monthly_snapshot", service.SCHEDULE_MONTHLY_SNAPSHOT),
    ("annual_on_close", service.SCHEDULE_ANNUAL_ON_CLOSE),
)


@dataclass(frozen=True)
class ReportRow:
    """A report as a list shows it (the member's name read in the same query)."""

    report: Report
    member_name: str | None

    @property
    def parameters(self) -> list[tuple[str, str]]:
        return describe_parameters(self.report.parameters, self.member_name)


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def kind_label(kind: str) -> str:
    return str(KINDS[kind].label) if kind in KINDS else kind


def _user():
    return current_user._get_current_object()


def _with_member(stmt):
    return stmt.add_columns(Municipality.name).outerjoin(
        Municipality, Municipality.id == Report.municipality_id
    )


# --- the index: forms, failed jobs, history, schedule -------------------------------------------


def _members() -> list[tuple[str, str]]:
    """A municipality user's choice of members for a statement: its own first, then (an Amt
    user's) Gemeinden."""
    ids = scope_ids(db.session) or frozenset()
    rows = db.session.execute(
        select(Municipality.id, Municipality.key, Municipality.name)
        .where(Municipality.id.in_(sorted(ids)))
        .order_by(Municipality.name, Municipality.key)
    ).all()
    own = current_user.municipality_id
    return [(key, name) for _id, key, name in sorted(rows, key=lambda row: row.id != own)]


def _history(kinds: list[str], flt: HistoryFilter) -> tuple[list[ReportRow], int]:
    conditions = [Report.kind.in_(kinds)]
    if flt.kind:
        conditions.append(Report.kind == flt.kind)
    if flt.status:
        conditions.append(Report.status == flt.status)
    total = db.session.execute(select(func.count(Report.id)).where(*conditions)).scalar_one()
    rows = db.session.execute(
        _with_member(select(Report))
        .where(*conditions)
        .order_by(Report.id.desc())  # newest first: ids grow with the requests
        .limit(PER_PAGE)
        .offset((flt.page - 1) * PER_PAGE)
    ).all()
    return [ReportRow(report, name) for report, name in rows], total


def _failed(kinds: list[str]) -> list[ReportRow]:
    rows = db.session.execute(
        _with_member(select(Report))
        .where(Report.kind.in_(kinds), Report.status == ReportStatus.FAILED.value)
        .order_by(Report.finished_at.desc(), Report.id.desc())
        .limit(FAILED_SHOWN)
    ).all()
    return [ReportRow(report, name) for report, name in rows]


def _index(posted: RequestForm | None = None, status_code: int = 200):
    role = current_user.role
    kinds = kinds_for(role)
    kind_names = [kind.name for kind in kinds]
    years = list(db.session.execute(select(FiscalYear.year).order_by(FiscalYear.year.desc())).scalars())
    members = _members() if role == Role.MUNICIPALITY else []
    forms = []
    for kind in kinds:
        if posted is not None and posted.kind_name == kind.name:
            forms.append(posted)
        else:
            forms.append(
                RequestForm.blank(
                    kind, year=years[0] if years else None, ags=members[0][0] if members else ""
                )
            )
    flt = HistoryFilter.from_args(request.args, kind_names)
    history, total = _history(kind_names, flt)
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "reports/index.html",
        forms=forms,
        posted=posted,
        years=years,
        members=members,
        history=history,
        total=total,
        flt=flt,
        pages=pages,
        failed=_failed(kind_names) if role in FEDERATION else None,
        schedule={name: get_flag(db.session, key, True) for name, key in SCHEDULES}
        if role == Role.ADMIN
        else None,
        kinds=kinds,
        statuses=list(ReportStatus),
        status_label=status_label,
        kind_label=kind_label,
        format_labels=FORMAT_LABELS,
        size_label=size_label,
    ), status_code


@bp.get("/")
@roles_allowed(ALL_ROLES)
def index():
    return _index()


def _hand_over(report: Report) -> None:
    """Give the committed row to the job service and tell the user what happened."""
    if jobs.dispatch(db.session, report):
        flash(_("Your report is queued; this page shows when it is ready."), "success")
    else:
        flash(
            _(
                "The job service is not reachable right now; your report is recorded and will be made "
                "when it is back."
            ),
            "warning",
        )


@bp.post("/")
@roles_allowed(ALL_ROLES)
def request_report():
    form = RequestForm.posted(request.form)
    try:
        report = service.request_report(
            db.session,
            _user(),
            form.kind_name,
            form.parameters(),
            fmt=form.values["format"] or None,
            locale=current_language(),
            scope=current_scope(db.session),
        )
    except RuleViolation as exc:
        db.session.rollback()
        form.fail(exc.field, exc.message)
        return _index(form, 400)
    report_id = report.id
    db.session.commit()
    _hand_over(report)
    return redirect(url_for(".detail", report_id=report_id))


@bp.post("/schedule")
@roles_allowed(Role.ADMIN)
def save_schedule():
    for name, key in SCHEDULES:
        wanted = request.form.get(name) == "y"
        if wanted != get_flag(db.session, key, True):  # an unset switch is on: record changes only
            set_flag(db.session, _user(), key, wanted)
    db.session.commit()
    flash(_("The schedule was saved."), "success")
    return redirect(url_for(".index", _anchor="schedule-heading"))


# --- one report --------------------------------------------------------------------------------


def _status(report: Report) -> dict:
    """What the report page's script needs to follow a report without reloading."""
    finished = report.status == ReportStatus.FINISHED and bool(report.file_name)
    return {
        "id": report.id,
        "status": report.status,
        "status_label": status_label(report.status),
        "progress": report.progress,
        "open": report.is_open,
        "error": report.error or "",
        "download_url": url_for(".download", report_id=report.id) if finished else None,
        "file_name": report.file_name,
        "file_size": report.file_size,
        "size_label": size_label(report.file_size) if report.file_size is not None else "",
        "sha256": report.sha256,
        "finished_at": format_datetime(report.finished_at) if report.finished_at else "",
    }


@bp.get("/<int:report_id>")
@roles_allowed(ALL_ROLES)
@tenant_params(report_id="report_id")
def detail(report_id: int):
    report = load_report(report_id)
    member_name = report.municipality.name if report.municipality_id else None
    return render_template(
        "reports/report.html",
        report=report,
        row=ReportRow(report, member_name),
        state=_status(report),
        kind=KINDS[report.kind],
        status_label=status_label,
        format_labels=FORMAT_LABELS,
        size_label=size_label,
        may_retry=current_user.role in FEDERATION,
    )


@bp.get("/<int:report_id>/status")
@roles_allowed(ALL_ROLES)
@tenant_params(report_id="report_id")
def report_status(report_id: int):
    return jsonify(_status(load_report(report_id)))


def _unavailable(report: Report, status_code: int, message: str):
    return render_template(
        "reports/unavailable.html",
        report=report,
        kind_label=kind_label,
        status_code=status_code,
        message=message,
    ), status_code


@bp.get("/<int:report_id>/download")
@roles_allowed(ALL_ROLES)
@tenant_params(report_id="report_id")
def download(report_id: int):
    report = load_report(report_id)
    try:
        path = downloadable_file(report)
    except Unavailable as exc:
        return _unavailable(report, exc.status, exc.message)
    return download_response(report, path)


@bp.post("/<int:report_id>/retry")
@roles_allowed(FEDERATION)
@tenant_params(report_id="report_id")
def retry(report_id: int):
    report = load_report(report_id)
    try:
        new = service.retry(db.session, _user(), report)
    except RuleViolation as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".detail", report_id=report_id))
    new_id = new.id
    db.session.commit()
    _hand_over(new)
    return redirect(url_for(".detail", report_id=new_id))
