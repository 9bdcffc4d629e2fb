"""The member portal's staff page: who works for the member — name, work email, period, share and
role of each assignment, current and planned first, then past ones.

The central tenant scope (core/tenancy.py) limits assignments to the user's tenant (an Amt user's
to the Amt and its Gemeinden), so the one query here carries no tenant filter of its own. The
person is reached through the assignment and only their name and work email are selected: cost,
home authority, notes, pseudonym and the secondment never leave the database for this page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed
from itvsh.extensions import db
from itvsh.staffing.models import Assignment, StaffMember, TargetKind, format_fte
from itvsh.tenants.models import Municipality, MunicipalityKind

bp = Blueprint("staffing_portal", __name__, url_prefix="/portal/staff")


@dataclass(frozen=True)
class StaffRow:
    """One assignment as a member sees it (nothing about cost or the person's other data)."""

    name: str
    work_email: str
    target: str  # "Name (key)" of the member the person works for
    starts_on: date
    ends_on: date | None
    fte: int
    role: str

    @property
    def share(self) -> str:
        return format_fte(self.fte)

    def is_past(self, today: date) -> bool:
        return self.ends_on is not None and self.ends_on < today


def staff_rows(session: Session) -> list[StaffRow]:
    """Every assignment in scope with the person's name and work email (one query)."""
    rows = session.execute(
        select(
            StaffMember.name,
            StaffMember.work_email,
            Municipality.name.label("target_name"),
            Municipality.key,
            Assignment.starts_on,
            Assignment.ends_on,
            Assignment.fte,
            Assignment.role,
        )
        .select_from(Assignment)
        .join(StaffMember, StaffMember.id == Assignment.staff_member_id)
        .join(Municipality, Municipality.id == Assignment.municipality_id)
        .where(Assignment.target_kind == TargetKind.MEMBER.value)
        .order_by(Assignment.starts_on, StaffMember.name, Municipality.name, Assignment.id)
    ).all()
    return [
        StaffRow(
            name=row.name,
            work_email=row.work_email,
            target=f"{row.target_name} ({row.key})",
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            fte=row.fte,
            role=row.role,
        )
        for row in rows
    ]


def split(rows: list[StaffRow], today: date) -> tuple[list[StaffRow], list[StaffRow]]:
    """Current and planned assignments (by start), and past ones (the latest end first)."""
    current = [row for row in rows if not row.is_past(today)]
    past = sorted((row for row in rows if row.is_past(today)), key=lambda row: row.ends_on, reverse=True)
    return current, past


@bp.get("/")
@roles_allowed(Role.MUNICIPALITY)
def index():
    tenant = current_user.municipality
    today = date.today()
    current, past = split(staff_rows(db.session), today)
    return render_template(
        "portal/staff.html",
        municipality=tenant,
        several=tenant.kind == MunicipalityKind.AMT,  # the Amt and its Gemeinden: name the target
        today=today,
        current=current,
        past=past,
    )
