"""marshmallow schemas for reports in the API: a report as the API shows it, and the request body.

The body is checked for its shape only (``kind`` and ``format`` are text, ``parameters`` anything
JSON); every rule -- which kinds a role may ask for, the formats of a kind, the parameters of a
kind (a fiscal year that exists, a member's key in the caller's scope ...) -- is the report
service's (:func:`itvsh.reports.service.request_report`), and its message is what the caller reads.
Two guards only keep values the database cannot take away from the service: text in
``parameters`` with NUL characters or lone surrogates, and integers beyond 32 bits.
"""

from __future__ import annotations

import re

from flask import url_for
from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema

from itvsh.api import MAX_ID
from itvsh.reports.kinds import KINDS
from itvsh.reports.models import ReportStatus

KIND_NAMES = list(KINDS)
FORMATS = sorted({fmt for kind in KINDS.values() for fmt in kind.formats})
STATUSES = [status.value for status in ReportStatus]
# NUL cannot be stored in PostgreSQL text, lone surrogates cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
PARAMETERS = (
    "named values, by kind: annual_funding {year}; municipality_statement {ags, year?}; "
    "proof_of_use {as_of?: YYYY-MM-DD, default today}; ozg_export {}; ozg_snapshot {month?: YYYY-MM}"
)


def download_url(report) -> str | None:
    """Where the finished report's file is fetched (None while there is none)."""
    if report.status != ReportStatus.FINISHED or not report.file_name:
        return None
    return url_for("api.get_report_file", report_id=report.id)


class ReportSchema(Schema):
    """A report: what was asked for, by whom, how far its job got, and the file it made."""

    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"enum": KIND_NAMES})
    format = fields.String(dump_only=True, metadata={"enum": FORMATS, "description": "none: makes no file"})
    parameters = fields.Dict(dump_only=True, metadata={"description": "the checked parameters"})
    municipality = fields.Function(
        lambda r: r.municipality.key if r.municipality_id is not None else None,
        dump_only=True,
        metadata={
            "type": "string",
            "nullable": True,
            "description": "official key of the member a statement is about (null: federation-wide)",
        },
    )
    status = fields.String(dump_only=True, metadata={"enum": STATUSES})
    progress = fields.Integer(dump_only=True, metadata={"description": "percent, 0..100"})
    error = fields.String(
        dump_only=True, metadata={"description": "a failed (or retried) run's readable reason; empty else"}
    )
    trigger = fields.String(dump_only=True, metadata={"enum": ["user", "schedule", "retry"]})
    requested_by = fields.String(attribute="requested_by_label", dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    queued_at = fields.DateTime(dump_only=True, allow_none=True)
    started_at = fields.DateTime(dump_only=True, allow_none=True)
    finished_at = fields.DateTime(dump_only=True, allow_none=True)
    file_name = fields.String(dump_only=True, allow_none=True)
    file_size = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "bytes"})
    sha256 = fields.String(dump_only=True, allow_none=True, metadata={"description": "of the file, hex"})
    audit_seq = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "the audit chain head when the file was made (see itvsh audit verify)"},
    )
    audit_hash = fields.String(dump_only=True, allow_none=True)
    summary = fields.Dict(
        dump_only=True, metadata={"description": "what the file states, e.g. totals in integer cents"}
    )
    download = fields.Function(
        download_url,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "the file's URL once finished"},
    )


class ReportRequestedSchema(ReportSchema):
    """The answer to a request (or a retry): the recorded report and what happens to it next."""

    notice = fields.String(
        dump_only=True,
        metadata={
            "description": "what happens next: queued, or the job service is unreachable and the report "
            "(status pending) is made when it is back"
        },
    )


class ReportRequestSchema(Schema):
    """Ask for a report: its kind, a format of that kind (default: the kind's first) and its
    parameters."""

    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, metadata={"enum": KIND_NAMES})
    format = fields.String(
        load_default=None, allow_none=True, metadata={"enum": FORMATS, "description": "default: the first"}
    )
    parameters = fields.Raw(load_default=dict, metadata={"type": "object", "description": PARAMETERS})

    @validates_schema
    def _storable(self, data: dict, **_kwargs) -> None:
        parameters = data.get("parameters")
        if not isinstance(parameters, dict):
            return  # the service names what is wrong with it
        for name, value in parameters.items():
            where = f"parameters.{name}"
            if isinstance(value, str) and _UNSTORABLE.search(value):
                raise ValidationError("Text must not contain NUL characters or invalid Unicode.", where)
            if isinstance(value, int) and not isinstance(value, bool) and not -MAX_ID <= value <= MAX_ID:
                raise ValidationError("Must be a whole number of at most ten digits.", where)


class ReportRetrySchema(Schema):
    """A retry takes nothing: the new report repeats the failed one's kind, format, parameters and
    language (the body may be empty or ``{}``)."""

    class Meta:
        unknown = RAISE
