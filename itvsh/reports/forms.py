"""The report screens' forms: the request form of each report kind (its fields, the values as
entered and the message at each field), the history filter, and how a report's parameters and
file size read on a page. Checking the parameters is the service's work (``kinds.py``); these only
carry text between the page and :func:`itvsh.reports.service.request_report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import format_decimal
from flask_babel import lazy_gettext as _l

from itvsh.reports.kinds import (
    ANNUAL_FUNDING,
    KINDS,
    MUNICIPALITY_STATEMENT,
    OZG_SNAPSHOT,
    PROOF_OF_USE,
    ReportKind,
)
from itvsh.reports.models import ReportStatus

# The fields each kind's request form shows (the kind's validator reads these names).
PARAMETER_FIELDS: dict[str, tuple[str, ...]] = {
    ANNUAL_FUNDING: ("year",),
    MUNICIPALITY_STATEMENT: ("ags", "year"),
    PROOF_OF_USE: ("as_of",),
    OZG_SNAPSHOT: ("month",),
}
PARAMETER_LABELS = {
    "year": _l("Fiscal year"),
    "ags": _l("Member"),
    "as_of": _l("As of"),
    "month": _l("Month"),
}
# Messages of these fields are shown at the field; any other (kind, parameters, ...) above the form.
FORM_FIELDS = ("year", "ags", "as_of", "month", "format")


@dataclass
class RequestForm:
    """One kind's request form: the values shown (defaults, or as entered) and the errors."""

    kind: ReportKind | None
    kind_name: str
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        return PARAMETER_FIELDS.get(self.kind_name, ())

    @property
    def formats(self) -> tuple[str, ...]:
        return self.kind.formats if self.kind is not None else ()

    @property
    def chooses_format(self) -> bool:
        return self.kind is not None and self.kind.produces_file

    def parameters(self) -> dict[str, str]:
        """The raw parameters for the service: the kind's fields only."""
        return {name: self.values.get(name, "") for name in self.fields}

    def fail(self, field_name: str, message: str) -> None:
        self.errors[field_name if field_name in FORM_FIELDS else "form"] = message

    @classmethod
    def blank(cls, kind: ReportKind, *, year: int | None, ags: str = "") -> RequestForm:
        """The form as first shown: the newest fiscal year for the annual report, all years for a
        statement, today for the overview, this month for the snapshot."""
        today = date.today()
        values = {
            "year": str(year) if year is not None and kind.name == ANNUAL_FUNDING else "",
            "ags": ags,
            "as_of": today.isoformat(),
            "month": today.strftime("%Y-%m"),
            "format": kind.formats[0],
        }
        return cls(kind=kind, kind_name=kind.name, values=values)

    @classmethod
    def posted(cls, data) -> RequestForm:
        """The form as submitted (``data`` is ``request.form``)."""
        kind_name = str(data.get("kind", "")).strip()[:40]
        values = {name: str(data.get(name, "")).strip()[:40] for name in ("year", "ags", "as_of", "month")}
        values["format"] = str(data.get("format", "")).strip().lower()[:10]
        return cls(kind=KINDS.get(kind_name), kind_name=kind_name, values=values)


@dataclass(frozen=True)
class HistoryFilter:
    """The history's filter (kind, status) and page, from the query string; unknown values are
    ignored rather than refused (a stale bookmark still shows the history)."""

    kind: str = ""
    status: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args, kinds: list[str]) -> HistoryFilter:
        kind = args.get("kind", "")
        status = args.get("status", "")
        try:
            page = max(1, min(int(args.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(
            kind=kind if kind in kinds else "",
            status=status if status in {s.value for s in ReportStatus} else "",
            page=page,
        )

    def args(self, **changes) -> dict:
        """Query arguments of this filter with ``changes`` (for the pager's links)."""
        values = {"kind": self.kind, "status": self.status, "page": self.page, **changes}
        return {key: value for key, value in values.items() if value and not (key == "page" and value == 1)}


def describe_parameters(parameters: dict | None, member_name: str | None = None) -> list[tuple[str, str]]:
    """A report's parameters as (label, value) pairs, in a fixed order."""
    parameters = parameters or {}
    shown = []
    for name in ("ags", "year", "as_of", "month"):
        if name not in parameters:
            continue
        value = str(parameters[name])
        if name == "ags" and member_name:
            value = f"{member_name} ({value})"
        shown.append((str(PARAMETER_LABELS[name]), value))
    return shown


def size_label(size: int | None) -> str:
    """A file size for people: bytes, kB or MB (decimal units, the locale's number format)."""
    if size is None:
        return "—"
    if size < 1000:
        return f"{format_decimal(size)} B"
    if size < 1_000_000:
        return f"{format_decimal(size / 1000, format='#,##0.0')} kB"
    return f"{format_decimal(size / 1_000_000, format='#,##0.0')} MB"
