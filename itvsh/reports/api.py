"""Reports endpoints of the JSON API (on the API blueprint): ask for a report, follow it, fetch its
file, and (staff, admin) ask again for a failed one -- what the ``/reports/`` screens do, with the
same service and the same rules.

A request is checked and recorded by :func:`itvsh.reports.service.request_report` (a ``pending``
row and its audit event), committed, and only then handed to the job service
(:func:`itvsh.reports.jobs.dispatch`): the answer is 202 with the report, ``queued`` -- or still
``pending`` when the job service is unreachable, with a notice that it is made when the service is
back. A refusal names the field as the request names it (``kind``, ``format``, ``parameters.year``
...) and records nothing. Reports are tenant-owned: every lookup is a scoped select, so a
municipality user sees its own statements only and another tenant's report id answers 404; each
role sees only the kinds it may ask for. Fetching a file is audited as ``download``.

Writes honour an ``Idempotency-Key`` header as the funding API's do (the same key again answers the
report the first request made and records nothing more; the same key for another request, or by
another user, is refused), keeping the key in the funding module's idempotency table.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from itvsh.api import bp, doc, json_body, paginate, unit_of_work
from itvsh.auth.roles import ALL_ROLES, FEDERATION
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.errors import problem
from itvsh.core.i18n import current_language
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import current_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.reports import jobs, service
from itvsh.reports.access import Unavailable, download_response, downloadable_file, load_report, visible_kinds
from itvsh.reports.models import Report
from itvsh.reports.schemas import (
    KIND_NAMES,
    STATUSES,
    ReportRequestedSchema,
    ReportRequestSchema,
    ReportRetrySchema,
    ReportSchema,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The service names parameters by their own names; the API names them as the request does.
REQUEST_FIELDS = {
    "year": "parameters.year",
    "ags": "parameters.ags",
    "as_of": "parameters.as_of",
    "month": "parameters.month",
    "idempotency_key": IDEMPOTENCY_HEADER,
}
IDEMPOTENCY_PARAM = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "any unique text of 1 to 100 characters: repeating the request with the same key "
    "answers the report the first request made and records nothing more; the same key with other "
    "parameters is refused",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
}
LIST_PARAMS = [
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": KIND_NAMES}},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}},
]


def _me():
    return current_user._get_current_object()


# --- units of work and idempotency ------------------------------------------------------------------


def _unit_of_work():
    """Run a write and commit it once; a refusal records nothing and names the field as the
    request names it."""
    return unit_of_work(REQUEST_FIELDS)


def _once(action: str, make: Callable[[], Report], **fingerprint) -> tuple[int, bool]:
    """Make a report once per idempotency key: (its id, whether this request made it)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    with _unit_of_work():
        ledger.check_key(key)
        print_ = ledger.fingerprint(user=_me().id, **fingerprint)  # another user's key is refused
        earlier = ledger.replayed(db.session, key, action, print_)
        if earlier is not None:
            return earlier.entity_id, False
        report = make()
        ledger.remember(db.session, key, action, print_, "report", report.id, _me())
        report_id = report.id
    return report_id, True


def _accepted(report_id: int, made: bool):
    """202 with the report: handed to the job service if this request made it (a repeat of an
    earlier request answers that report as it is now)."""
    notice = None
    if made:
        report = load_report(report_id)
        if jobs.dispatch(db.session, report):
            notice = _("Your report is queued; this page shows when it is ready.")
        else:
            notice = _(
                "The job service is not reachable right now; your report is recorded and will be made "
                "when it is back."
            )
    report = _fresh(report_id)
    body = ReportSchema().dump(report)
    body["notice"] = notice
    return jsonify(body), 202, {"Location": url_for(".get_report", report_id=report_id)}


def _fresh(report_id: int) -> Report:
    """The report as the database has it now (the job service's hand-over is a Core UPDATE)."""
    db.session.expire_all()
    return load_report(report_id)


# --- endpoints --------------------------------------------------------------------------------------


def _choice_arg(name: str, choices: list[str]) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    if value not in choices:
        raise RuleViolation(
            _("Unknown %(name)s; one of: %(choices)s.", name=name, choices=", ".join(choices)), name
        )
    return value


@bp.get("/reports")
@roles_allowed(ALL_ROLES)
@doc(
    "Reports you may see, newest first (a municipality user: its own statements)",
    response=ReportSchema,
    paginated=True,
    params=LIST_PARAMS,
)
def list_reports():
    statement = (
        select(Report)
        .options(joinedload(Report.municipality))
        .where(Report.kind.in_(visible_kinds()))
        .order_by(Report.id.desc())  # ids grow with the requests
    )
    if kind := _choice_arg("kind", KIND_NAMES):
        statement = statement.where(Report.kind == kind)
    if status := _choice_arg("status", STATUSES):
        statement = statement.where(Report.status == status)
    return paginate(db.session, statement, ReportSchema())


@bp.post("/reports")
@roles_allowed(ALL_ROLES)
@doc(
    "Ask for a report: recorded, then handed to the job service (202; pending while it is unreachable)",
    body=ReportRequestSchema,
    response=ReportRequestedSchema,
    params=[IDEMPOTENCY_PARAM],
    status=202,
)
def request_report():
    data = json_body(ReportRequestSchema())

    def make() -> Report:
        return service.request_report(
            db.session,
            _me(),
            data["kind"],
            data["parameters"],
            fmt=data["format"],
            locale=current_language(),
            scope=current_scope(db.session),
        )

    return _accepted(*_once("api_request_report", make, **data))


@bp.get("/reports/<int:report_id>")
@roles_allowed(ALL_ROLES)
@tenant_params(report_id="report_id")
@doc("One report: its state, and once finished its file's name, size, SHA-256 and URL", response=ReportSchema)
def get_report(report_id: int):
    return jsonify(ReportSchema().dump(load_report(report_id)))


@bp.get("/reports/<int:report_id>/file")
@roles_allowed(ALL_ROLES)
@tenant_params(report_id="report_id")
@doc("A finished report's file, as an attachment (the download is audited)")
def get_report_file(report_id: int):
    report = load_report(report_id)
    try:
        path = downloadable_file(report)
    except Unavailable as exc:
        titles = {409: _("Conflict"), 410: _("Not found")}
        return problem(exc.status, exc.message, title=titles.get(exc.status))
    return download_response(report, path)


@bp.post("/reports/<int:report_id>/retry")
@roles_allowed(FEDERATION)
@tenant_params(report_id="report_id")
@doc(
    "Ask again for a failed report: a new report with the same parameters (202)",
    body=ReportRetrySchema,
    response=ReportRequestedSchema,
    params=[IDEMPOTENCY_PARAM],
    status=202,
)
def retry_report(report_id: int):
    report = load_report(report_id)
    if request.get_data():  # no body at all is as good as {}
        json_body(ReportRetrySchema())
    return _accepted(
        *_once("api_retry_report", lambda: service.retry(db.session, _me(), report), report_id=report_id)
    )
