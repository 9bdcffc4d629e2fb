"""The report kinds: who may ask for each, its parameters (checked here, before any row or job
exists), its formats, its time limit and the renderer that makes the file.

A renderer is ``render(ctx: RenderContext, out: BinaryIO) -> dict``: it writes the file to ``out``
(a binary file opened by the job), reports progress through ``ctx.progress(percent)`` and returns a
small summary (e.g. the totals it printed) that is stored on the row. It reads the database through
``ctx.session`` only, in the tenant scope the job set, and must keep memory bounded (stream rows in
batches, openpyxl in write-only mode). ``ctx.audit_seq``/``ctx.audit_hash`` are the audit chain head
when the job started: every file states them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL

ANNUAL_FUNDING = "annual_funding"
MUNICIPALITY_STATEMENT = "municipality_statement"
PROOF_OF_USE = "proof_of_use"
OZG_EXPORT = "ozg_export"
OZG_SNAPSHOT = "ozg_snapshot"

FORMAT_LABELS = {"xlsx": "Excel (XLSX)", "pdf": "PDF", "csv": "CSV", "none": "—"}
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}

MONEY_ROLES = frozenset({Role.ADMIN, Role.STAFF, Role.AUDITOR})
FEDERATION_ROLES = frozenset({Role.ADMIN, Role.STAFF})


@dataclass
class RenderContext:
    """What a renderer gets: the validated parameters and the circumstances of this run."""

    session: Session
    report_id: int | None
    kind: str
    format: str
    parameters: dict
    municipality_id: int | None
    locale: str
    generated_at: datetime
    audit_seq: int
    audit_hash: str
    requested_by: str
    progress: Callable[[int], None] = field(default=lambda percent: None)


@dataclass(frozen=True)
class ReportKind:
    name: str
    label: Any
    description: Any
    formats: tuple[str, ...]
    roles: frozenset
    renderer: str  # "module:function"; imported when the job runs
    validate: Callable[[Session, dict, Any], tuple[dict, int | None]]
    timeout: int = 600  # seconds a single run may take
    queue: str = "reports"
    produces_file: bool = True

    def render_function(self) -> Callable:
        module, _sep, name = self.renderer.partition(":")
        return getattr(importlib.import_module(module), name)

    def file_name(self, parameters: dict, fmt: str, municipality_key: str | None = None) -> str:
        parts = [self.name.replace("_", "-")]
        if municipality_key:
            parts.append(municipality_key)
        for key in ("year", "as_of", "month"):
            if parameters.get(key):
                parts.append(str(parameters[key]))
        return "-".join(parts) + f".{fmt}"


# --- parameter checks: raw text or values in, clean JSON-able values out ------------------------


def _int(raw, field_name: str, label: str) -> int:
    if isinstance(raw, bool):
        raise RuleViolation(_("%(label)s must be a whole number.", label=label), field_name)
    if isinstance(raw, int):
        if not 0 <= raw <= 9999:  # as the text form below; keeps huge numbers away from the database
            raise RuleViolation(_("%(label)s must be a whole number.", label=label), field_name)
        return raw
    text = str(raw).strip()
    if not re.fullmatch(r"\d{1,4}", text):
        raise RuleViolation(_("%(label)s must be a whole number.", label=label), field_name)
    return int(text)


def _year(session: Session, raw, *, required: bool) -> int | None:
    from itvsh.funding.models import FiscalYear

    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if required:
            raise RuleViolation(_("Please give the fiscal year."), "year")
        return None
    year = _int(raw, "year", _("The fiscal year"))
    if session.execute(select(FiscalYear.id).where(FiscalYear.year == year)).first() is None:
        raise RuleViolation(_("There is no fiscal year %(year)s.", year=year), "year")
    return year


def _day(raw, field_name: str) -> str:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return date.today().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    try:
        return date.fromisoformat(str(raw).strip()).isoformat()
    except ValueError:
        raise RuleViolation(_("Please give a date as YYYY-MM-DD."), field_name) from None


def _month(raw) -> str:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return date.today().strftime("%Y-%m")
    text = str(raw).strip()
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise RuleViolation(_("Please give the month as YYYY-MM."), "month")
    return text


def _no_params(session, raw, scope):
    return {}, None


def _annual(session: Session, raw: dict, scope) -> tuple[dict, int | None]:
    return {"year": _year(session, raw.get("year"), required=True)}, None


def _statement(session: Session, raw: dict, scope) -> tuple[dict, int | None]:
    from itvsh.tenants.models import Membership
    from itvsh.tenants.services import get_by_key

    key = str(raw.get("ags") or "").strip()
    if not key:
        raise RuleViolation(_("Please give the key (AGS) of the member."), "ags")
    municipality = get_by_key(session, key)
    allowed = scope == ALL or (scope is not None and municipality is not None and municipality.id in scope)
    if municipality is None or not allowed:
        # Another tenant's key reads exactly like an unknown one: nothing about it is revealed.
        raise RuleViolation(_("There is no member with the key %(key)s.", key=key), "ags")
    member = session.execute(
        select(Membership.id).where(Membership.municipality_id == municipality.id).limit(1)
    ).first()
    if member is None:
        raise RuleViolation(
            _("%(name)s has never been a member of the federation.", name=municipality.name), "ags"
        )
    params = {"ags": municipality.key}
    year = _year(session, raw.get("year"), required=False)
    if year is not None:
        params["year"] = year
    return params, municipality.id


def _proof_of_use(session: Session, raw: dict, scope) -> tuple[dict, int | None]:
    return {"as_of": _day(raw.get("as_of"), "as_of")}, None


def _snapshot(session: Session, raw: dict, scope) -> tuple[dict, int | None]:
    return {"month": _month(raw.get("month"))}, None


KINDS: dict[str, ReportKind] = {
    k.name: k
    for k in (
        ReportKind(
            ANNUAL_FUNDING,
            _l("Annual funding report"),
            _l(
                "Mittelverwendungsbericht of one fiscal year: summary, categories, recipients, Kreise, "
                "all bookings and the allocations with their proof of use."
            ),
            ("xlsx", "pdf", "csv"),
            MONEY_ROLES,
            "itvsh.reports.renderers.annual:render",
            _annual,
            timeout=1800,
        ),
        ReportKind(
            MUNICIPALITY_STATEMENT,
            _l("Municipality statement"),
            _l("Förderübersicht: all one member received: allocations, payments, projects, staff time."),
            ("pdf",),
            frozenset(Role),
            "itvsh.reports.renderers.statement:render",
            _statement,
            timeout=300,
        ),
        ReportKind(
            PROOF_OF_USE,
            _l("Proof-of-use overview"),
            _l("Allocations whose proof of use (Verwendungsnachweis) is due or overdue."),
            ("xlsx", "csv", "pdf"),
            MONEY_ROLES,
            "itvsh.reports.renderers.proof_of_use:render",
            _proof_of_use,
            timeout=600,
        ),
        ReportKind(
            OZG_EXPORT,
            _l("OZG monitoring export"),
            _l("The OZG status of every member and service, as published on the monitoring pages."),
            ("csv", "xlsx"),
            MONEY_ROLES,
            "itvsh.reports.renderers.ozg:render",
            _no_params,
            timeout=1800,
        ),
        ReportKind(
            OZG_SNAPSHOT,
            _l("Monthly OZG snapshot"),
            _l("Stores this month's OZG figures for the trend on the monitoring pages."),
            ("none",),
            FEDERATION_ROLES,
            "itvsh.reports.renderers.snapshot:run",
            _snapshot,
            timeout=300,
            queue="default",
            produces_file=False,
        ),
    )
}


def get_kind(name) -> ReportKind:
    kind = KINDS.get(str(name or "").strip())
    if kind is None:
        raise RuleViolation(
            _("Unknown report kind %(kind)s; known kinds: %(known)s.", kind=name, known=", ".join(KINDS)),
            "kind",
        )
    return kind


def kinds_for(role: str) -> list[ReportKind]:
    return [kind for kind in KINDS.values() if role in kind.roles]
