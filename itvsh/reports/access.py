"""Who sees which report, and its download, for the screens and the API alike: a role sees the
kinds it may ask for, and a report is looked up through a scoped select (never the identity map
alone), so another tenant's report — or a kind the role does not see — answers 404. A download is
an audited attachment of a finished report's stored file."""

from __future__ import annotations

from pathlib import Path

from flask import Response, abort, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from itvsh.core import audit
from itvsh.core.db import begin_write
from itvsh.extensions import db
from itvsh.reports.kinds import MEDIA_TYPES, kinds_for
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.storage import StoredFile, stored_file


def visible_kinds() -> list[str]:
    """The kinds the user may ask for — and the only ones it sees in the history."""
    return [kind.name for kind in kinds_for(current_user.role)]


def load_report(report_id: int) -> Report:
    report = db.session.execute(select(Report).where(Report.id == report_id)).scalar_one_or_none()
    if report is None or report.kind not in visible_kinds():
        abort(404)
    return report


class Unavailable(Exception):
    """The report has no file to hand out: an HTTP status and the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def downloadable_file(report: Report) -> Path:
    """The finished report's stored file, or :class:`Unavailable` (409 not finished or failed,
    404 a job that makes no file, 410 the file is gone or changed)."""
    if report.status != ReportStatus.FINISHED:
        if report.status == ReportStatus.FAILED:
            raise Unavailable(
                409, _("This report failed; there is no file. See the report's page for the reason.")
            )
        raise Unavailable(409, _("This report is not finished yet; its page shows when it is ready."))
    if not report.file_name:
        raise Unavailable(404, _("This job makes no file."))
    path = stored_file(report)
    if path is None:
        raise Unavailable(
            410,
            _(
                "The file of this report is no longer stored (or was changed). Please ask for the "
                "report again."
            ),
        )
    return path


def download_response(report: Report, path: Path) -> Response:
    """The file as an attachment; the download is audited (a HEAD request sends no file)."""
    file_name, fmt, sha256 = report.file_name, report.format, report.sha256
    if request.method != "HEAD":
        begin_write(db.session)
        audit.record(
            db.session,
            current_user._get_current_object(),
            "download",
            "report",
            report.id,
            after={"file": file_name, "sha256": sha256},
        )
        db.session.commit()
    response = Response(
        StoredFile(path),
        content_type=MEDIA_TYPES.get(fmt, "application/octet-stream"),
        direct_passthrough=True,
    )
    response.content_length = path.stat().st_size
    response.headers.set("Content-Disposition", "attachment", filename=file_name)
    return response
