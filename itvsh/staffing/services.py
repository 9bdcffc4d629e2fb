"""The staffing services: the staff register, secondments, assignments (with the capacity rule),
capacity figures and the booking of personnel cost into the funding ledger.

Admin, API, CLI and demo all change staffing data through these functions. They flush, never
commit, audit every change and raise :class:`RuleViolation` (naming the field) before writing
anything. Writers first lock the person's row (``SELECT ... FOR UPDATE``; on SQLite the unit of
work already holds the write lock), so two assignments of one person are never checked against
each other's absence.

The capacity rule: an assignment lies inside one secondment of its person, and on every day the
person's assignments add up to at most that secondment's share. Checking reads only the person's
own secondments and assignments (indexed by person), never anyone else's.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.auth.services import EMAIL_RE, normalize_email
from itvsh.core import audit, settings
from itvsh.core.money import MAX_CENTS
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, ScopeError, current_scope
from itvsh.staffing.models import (
    FULL_TIME,
    Assignment,
    CostBearer,
    Instrument,
    Secondment,
    StaffCost,
    StaffMember,
    TargetKind,
    format_fte,
)
from itvsh.staffing.periods import (
    OPEN_END,
    Period,
    contains,
    end_of,
    first_excess,
    fte_months,
    month_end,
    months,
    overlap_days,
    overlaps,
    pieces,
    year_share_cents,
)
from itvsh.tenants.models import Municipality, MunicipalityKind
from itvsh.tenants.services import current_membership

DASH = "\u2013"  # en dash between the days of a period
MIN_DAY, MAX_DAY = date(2000, 1, 1), date(2100, 12, 31)
PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
STAFF_FIELDS = ("name", "work_email", "home_authority", "notes", "annual_cost_cents")
SECONDMENT_FIELDS = ("instrument", "starts_on", "ends_on", "fte", "cost_bearer", "legal_reference", "note")
ASSIGNMENT_FIELDS = ("municipality", "project", "starts_on", "ends_on", "fte", "role")


def _period(start: date, end: date | None) -> str:
    return f"{start.isoformat()}{DASH}{end.isoformat() if end else _('open end')}"


# --- checks ---------------------------------------------------------------------------------------


def _text(value, field_name: str, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise RuleViolation(_("Please enter text."), field_name)
    if required and not text:
        raise RuleViolation(_("Please fill in this field."), field_name)
    if len(text) > limit:
        raise RuleViolation(_("At most %(n)s characters.", n=limit), field_name)
    return text


def _email(value) -> str:
    email = normalize_email(value if isinstance(value, str) else "")
    if not email:
        raise RuleViolation(_("Please enter an email address."), "work_email")
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise RuleViolation(_("This is not a valid email address."), "work_email")
    return email


def _cost(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleViolation(_("The amount must be a whole number of cents."), "annual_cost_cents")
    if value < 0:
        raise RuleViolation(_("The personnel cost cannot be negative."), "annual_cost_cents")
    if value > MAX_CENTS:
        raise RuleViolation(_("This amount is implausibly large."), "annual_cost_cents")
    return value


def check_share(value, field_name: str = "fte") -> int:
    """A share of full time per mille: 1..1000 (a share of 0 % is no assignment at all)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleViolation(_("The share must be a whole number per mille (1000 = 100 %)."), field_name)
    if value > FULL_TIME:
        raise RuleViolation(_("The share cannot be above 100 %."), field_name)
    if value <= 0:
        raise RuleViolation(_("The share must be above 0 %."), field_name)
    return value


def _days(starts_on, ends_on) -> tuple[date, date | None]:
    if not isinstance(starts_on, date):
        raise RuleViolation(_("Please enter the first day."), "starts_on")
    if ends_on is not None and not isinstance(ends_on, date):
        raise RuleViolation(_("The last day is not a date."), "ends_on")
    if not MIN_DAY <= starts_on <= MAX_DAY:
        raise RuleViolation(_("The first day must lie between 2000 and 2100."), "starts_on")
    if ends_on is not None and not MIN_DAY <= ends_on <= MAX_DAY:
        raise RuleViolation(_("The last day must lie between 2000 and 2100."), "ends_on")
    if ends_on is not None and ends_on < starts_on:
        raise RuleViolation(_("The last day cannot be before the first day."), "ends_on")
    return starts_on, ends_on


def _choice(value, known, field_name: str) -> str:
    if value not in {str(item) for item in known}:
        raise RuleViolation(_("Please choose one of the offered values."), field_name)
    return str(value)


# --- locking --------------------------------------------------------------------------------------


def lock_staff_member(session: Session, staff_member_id: int) -> StaffMember:
    """Lock the person's row for the rest of the transaction (every change to their secondments or
    assignments queues behind it) and return it as it is now."""
    member = session.execute(
        select(StaffMember)
        .where(StaffMember.id == staff_member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if member is None:
        raise RuleViolation(_("This person is not in the staff register."), "staff_member")
    return member


# --- staff register -------------------------------------------------------------------------------


def _new_pseudonym(session: Session) -> str:
    while True:
        candidate = "MA-" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(6))
        taken = session.execute(select(StaffMember.id).where(StaffMember.pseudonym == candidate)).first()
        if taken is None:
            return candidate


def _email_free(session: Session, email: str, member_id: int | None) -> None:
    other = session.execute(select(StaffMember.id).where(StaffMember.work_email == email)).scalar()
    if other is not None and other != member_id:
        raise RuleViolation(_("Another person in the register has this work email."), "work_email")


def create_staff_member(
    session: Session,
    actor,
    *,
    name: str,
    work_email: str,
    home_authority: str = "",
    notes: str = "",
    annual_cost_cents: int | None = None,
) -> StaffMember:
    email = _email(work_email)
    member = StaffMember(
        name=_text(name, "name", 200, required=True),
        work_email=email,
        home_authority=_text(home_authority, "home_authority", 200),
        notes=_text(notes, "notes", 5000),
        annual_cost_cents=_cost(annual_cost_cents),
    )
    _email_free(session, email, None)
    member.pseudonym = _new_pseudonym(session)
    session.add(member)
    session.flush()
    audit.record(session, actor, "create", "staff_member", member, after=member.audit_view())
    return member


def update_staff_member(session: Session, actor, member: StaffMember, **changes) -> StaffMember:
    unknown = set(changes) - set(STAFF_FIELDS)
    if unknown:
        raise RuleViolation(_("These fields cannot be changed: %(f)s", f=", ".join(sorted(unknown))))
    member = lock_staff_member(session, member.id)
    before = member.audit_view()
    if "name" in changes:
        member.name = _text(changes["name"], "name", 200, required=True)
    if "work_email" in changes:
        email = _email(changes["work_email"])
        _email_free(session, email, member.id)
        member.work_email = email
    if "home_authority" in changes:
        member.home_authority = _text(changes["home_authority"], "home_authority", 200)
    if "notes" in changes:
        member.notes = _text(changes["notes"], "notes", 5000)
    cost_changed = False
    if "annual_cost_cents" in changes:
        cost = _cost(changes["annual_cost_cents"])
        cost_changed = cost != member.annual_cost_cents
        member.annual_cost_cents = cost
    after = member.audit_view()
    if after != before or cost_changed:
        if cost_changed:
            after = {**after, "annual_cost_changed": True}  # the figure itself stays out of the trail
        session.flush()
        audit.record(session, actor, "update", "staff_member", member, before=before, after=after)
    return member


def names_visible(session: Session, user) -> bool:
    """Whether ``user``'s exports and API answers may name staff: always for admin and staff; for
    auditors only while an admin allows it (otherwise they see the stable pseudonyms)."""
    role = getattr(user, "role", None)
    if role in (Role.ADMIN, Role.STAFF):
        return True
    if role == Role.AUDITOR:
        return settings.get_flag(session, settings.AUDITORS_SEE_STAFF_NAMES)
    return False


def allow_auditors_names(session: Session, actor, allowed: bool) -> None:
    """An admin lets auditors' exports show staff names (or goes back to pseudonyms); audited."""
    settings.set_flag(session, actor, settings.AUDITORS_SEE_STAFF_NAMES, bool(allowed))


def shown_name(member: StaffMember, names: bool) -> str:
    """The person's name, or their stable pseudonym where names are not to be shown."""
    return member.name if names else member.pseudonym


def record_sensitive_read(session: Session, actor, member: StaffMember, where: str) -> None:
    """Note that ``actor`` read ``member``'s personal record (who read whom and where; no values)."""
    audit.record(session, actor, "sensitive_read", "staff_member", member, after={"view": where})


# --- secondments ----------------------------------------------------------------------------------


def _secondments_of(session: Session, staff_member_id: int) -> list[Secondment]:
    return list(
        session.execute(
            select(Secondment)
            .where(Secondment.staff_member_id == staff_member_id)
            .order_by(Secondment.starts_on)
            .execution_options(populate_existing=True)
        ).scalars()
    )


def _assignments_of(
    session: Session, staff_member_id: int, secondment_id: int | None = None
) -> list[Assignment]:
    query = select(Assignment).where(Assignment.staff_member_id == staff_member_id)
    if secondment_id is not None:
        query = query.where(Assignment.secondment_id == secondment_id)
    return list(session.execute(query.order_by(Assignment.starts_on, Assignment.id)).scalars())


def _check_no_overlap(
    session: Session, member: StaffMember, start: date, end: date | None, own_id=None
) -> None:
    for other in _secondments_of(session, member.id):
        if other.id != own_id and overlaps(start, end, other.starts_on, other.ends_on):
            raise RuleViolation(
                _(
                    "%(name)s is already seconded from %(period)s (%(instrument)s); a person's "
                    "secondments must not overlap.",
                    name=member.name,
                    period=_period(other.starts_on, other.ends_on),
                    instrument=other.instrument_label,
                ),
                "starts_on",
            )


def create_secondment(
    session: Session,
    actor,
    *,
    staff_member: StaffMember,
    instrument: str,
    starts_on: date,
    ends_on: date | None,
    fte: int,
    cost_bearer: str = CostBearer.LAND.value,
    legal_reference: str = "",
    note: str = "",
) -> Secondment:
    member = lock_staff_member(session, staff_member.id)
    secondment = Secondment(
        staff_member_id=member.id,
        instrument=_choice(instrument, Instrument, "instrument"),
        cost_bearer=_choice(cost_bearer, CostBearer, "cost_bearer"),
        fte=check_share(fte),
        legal_reference=_text(legal_reference, "legal_reference", 300),
        note=_text(note, "note", 5000),
    )
    secondment.starts_on, secondment.ends_on = _days(starts_on, ends_on)
    _check_no_overlap(session, member, secondment.starts_on, secondment.ends_on)
    session.add(secondment)
    session.flush()
    audit.record(session, actor, "create", "secondment", secondment, after=secondment.audit_view())
    return secondment


def update_secondment(session: Session, actor, secondment: Secondment, **changes) -> Secondment:
    """Change a secondment. Its period must still hold all its assignments and its share must still
    cover them on every day; otherwise the refusal names the assignment that no longer fits."""
    unknown = set(changes) - set(SECONDMENT_FIELDS)
    if unknown:
        raise RuleViolation(_("These fields cannot be changed: %(f)s", f=", ".join(sorted(unknown))))
    member = lock_staff_member(session, secondment.staff_member_id)
    session.refresh(secondment)
    before = secondment.audit_view()
    start, end = _days(
        changes.get("starts_on", secondment.starts_on), changes.get("ends_on", secondment.ends_on)
    )
    share = check_share(changes.get("fte", secondment.fte))
    values = {
        "instrument": _choice(changes.get("instrument", secondment.instrument), Instrument, "instrument"),
        "cost_bearer": _choice(changes.get("cost_bearer", secondment.cost_bearer), CostBearer, "cost_bearer"),
        "legal_reference": _text(
            changes.get("legal_reference", secondment.legal_reference), "legal_reference", 300
        ),
        "note": _text(changes.get("note", secondment.note), "note", 5000),
    }
    _check_no_overlap(session, member, start, end, own_id=secondment.id)
    assignments = _assignments_of(session, member.id, secondment.id)
    for assignment in assignments:
        if not contains(start, end, assignment.starts_on, assignment.ends_on):
            raise RuleViolation(
                _(
                    "The assignment %(assignment)s (%(period)s) would no longer lie inside the "
                    "secondment; change or end it first.",
                    assignment=_assignment_label(assignment),
                    period=_period(assignment.starts_on, assignment.ends_on),
                ),
                "ends_on" if assignment.starts_on >= start else "starts_on",
            )
    excess = first_excess([_as_period(a) for a in assignments], share, start, end)
    if excess is not None:
        raise RuleViolation(_over_planned_message(member, excess, share), "fte")
    secondment.starts_on, secondment.ends_on, secondment.fte = start, end, share
    for name, value in values.items():
        setattr(secondment, name, value)
    if secondment.audit_view() != before:
        session.flush()
        audit.record(
            session, actor, "update", "secondment", secondment, before=before, after=secondment.audit_view()
        )
    return secondment


def delete_secondment(session: Session, actor, secondment: Secondment) -> None:
    """Remove a secondment entered by mistake: only while no assignment and no booked cost uses it."""
    lock_staff_member(session, secondment.staff_member_id)
    if session.execute(select(Assignment.id).where(Assignment.secondment_id == secondment.id)).first():
        raise RuleViolation(_("This secondment has assignments; remove them first."), "secondment")
    if session.execute(select(StaffCost.id).where(StaffCost.secondment_id == secondment.id)).first():
        raise RuleViolation(
            _("Personnel cost of this secondment is booked; it stays on record."), "secondment"
        )
    audit.record(session, actor, "delete", "secondment", secondment.id, before=secondment.audit_view())
    session.delete(secondment)
    session.flush()


# --- assignments ----------------------------------------------------------------------------------


def _as_period(assignment: Assignment) -> Period:
    return Period(assignment.starts_on, assignment.ends_on, assignment.fte, assignment)


def _assignment_label(assignment: Assignment) -> str:
    target = assignment.target_label or "?"
    return f"#{assignment.id} {target} {format_fte(assignment.fte)}"


def _over_planned_message(member: StaffMember, excess, limit: int) -> str:
    others = [ref for ref in excess.refs if isinstance(ref, Assignment) and ref.id is not None]
    return _(
        "On %(day)s %(name)s would be planned at %(total)s, above the secondment's %(limit)s. "
        "Conflicting assignments: %(conflicts)s. Nothing was changed.",
        day=excess.start.isoformat(),
        name=member.name,
        total=format_fte(excess.total),
        limit=format_fte(limit),
        conflicts=", ".join(f"{_assignment_label(a)} ({_period(a.starts_on, a.ends_on)})" for a in others)
        or "-",
    )


def _check_project(project, start: date, end: date | None) -> None:
    from itvsh.projects.models import Project

    if not isinstance(project, Project):
        raise RuleViolation(_("Please choose the project the person works for."), "project")
    if not project.is_active:
        raise RuleViolation(
            _(
                "The project %(name)s is %(status)s; people work only for planned or running projects.",
                name=project.name,
                status=project.status_label,
            ),
            "project",
        )
    if project.starts_on is not None and start < project.starts_on:
        raise RuleViolation(
            _(
                "The project %(name)s starts on %(day)s.",
                name=project.name,
                day=project.starts_on.isoformat(),
            ),
            "starts_on",
        )
    if project.ends_on is not None and end_of(end) > project.ends_on:
        raise RuleViolation(
            _("The project %(name)s ends on %(day)s.", name=project.name, day=project.ends_on.isoformat()),
            "ends_on",
        )


def _check_target(
    session: Session, target_kind: str, municipality, start: date, end: date | None, project=None
) -> None:
    if target_kind == TargetKind.PROJECT:
        if municipality is not None:
            raise RuleViolation(_("An assignment to a project names no member."), "municipality")
        _check_project(project, start, end)
        return
    if target_kind != TargetKind.MEMBER:
        raise RuleViolation(_("Unknown kind of target."), "target_kind")
    if project is not None:
        raise RuleViolation(_("An assignment to a member names no project."), "project")
    if not isinstance(municipality, Municipality):
        raise RuleViolation(_("Please choose the member the person works for."), "municipality")
    membership = current_membership(session, municipality.id, start)
    if membership is None:
        raise RuleViolation(
            _(
                "%(name)s is not a member of the federation on %(day)s.",
                name=municipality.name,
                day=start.isoformat(),
            ),
            "municipality",
        )
    if membership.left_on is not None and end_of(end) >= membership.left_on:
        raise RuleViolation(
            _(
                "%(name)s leaves the federation on %(day)s; the assignment must end before.",
                name=municipality.name,
                day=membership.left_on.isoformat(),
            ),
            "ends_on",
        )


def _home_secondment(session: Session, member: StaffMember, start: date, end: date | None) -> Secondment:
    """The one secondment that holds the whole period, or a refusal saying what is missing."""
    for secondment in _secondments_of(session, member.id):
        if secondment.starts_on <= start <= end_of(secondment.ends_on):
            if contains(secondment.starts_on, secondment.ends_on, start, end):
                return secondment
            raise RuleViolation(
                _(
                    "The assignment must end by %(day)s, the last day of %(name)s's secondment (%(period)s).",
                    day=secondment.ends_on.isoformat(),
                    name=member.name,
                    period=_period(secondment.starts_on, secondment.ends_on),
                ),
                "ends_on",
            )
    raise RuleViolation(
        _("%(name)s is not seconded to the federation on %(day)s.", name=member.name, day=start.isoformat()),
        "starts_on",
    )


def check_assignment(
    session: Session,
    member: StaffMember,
    *,
    target_kind: str,
    municipality,
    starts_on,
    ends_on,
    fte,
    own: Assignment | None = None,
    project=None,
) -> Secondment:
    """Every rule an assignment must keep; returns the secondment it lies in. Reads only this
    person's secondments and the assignments of that secondment."""
    if current_scope(session) != ALL:
        raise ScopeError("the capacity check must see all of a person's assignments (ALL scope)")
    share = check_share(fte)
    start, end = _days(starts_on, ends_on)
    secondment = _home_secondment(session, member, start, end)
    _check_target(session, target_kind, municipality, start, end, project)
    others = [
        _as_period(a)
        for a in _assignments_of(session, member.id, secondment.id)
        if (own is None or a.id != own.id) and overlaps(start, end, a.starts_on, a.ends_on)
    ]
    candidate = Period(start, end, share, None)  # not named among the conflicts: it is the change itself
    excess = first_excess([*others, candidate], secondment.fte, start, end)
    if excess is not None:
        raise RuleViolation(_over_planned_message(member, excess, secondment.fte), "fte")
    return secondment


def create_assignment(
    session: Session,
    actor,
    *,
    staff_member: StaffMember,
    municipality: Municipality | None,
    starts_on: date,
    ends_on: date | None,
    fte: int,
    role: str = "",
    target_kind: str = TargetKind.MEMBER.value,
    project=None,
) -> Assignment:
    member = lock_staff_member(session, staff_member.id)
    role = _text(role, "role", 300)
    secondment = check_assignment(
        session,
        member,
        target_kind=target_kind,
        municipality=municipality,
        project=project,
        starts_on=starts_on,
        ends_on=ends_on,
        fte=fte,
    )
    assignment = Assignment(
        staff_member_id=member.id,
        secondment_id=secondment.id,
        target_kind=str(target_kind),
        municipality_id=getattr(municipality, "id", None),
        project_id=getattr(project, "id", None),
        starts_on=starts_on,
        ends_on=ends_on,
        fte=fte,
        role=role,
    )
    session.add(assignment)
    session.flush()
    audit.record(session, actor, "create", "assignment", assignment, after=assignment.audit_view())
    return assignment


def update_assignment(session: Session, actor, assignment: Assignment, **changes) -> Assignment:
    unknown = set(changes) - set(ASSIGNMENT_FIELDS)
    if unknown:
        raise RuleViolation(_("These fields cannot be changed: %(f)s", f=", ".join(sorted(unknown))))
    member = lock_staff_member(session, assignment.staff_member_id)
    session.refresh(assignment)
    before = assignment.audit_view()
    municipality = changes.get("municipality", assignment.municipality)
    project = changes.get("project", assignment.project)
    values = {
        "starts_on": changes.get("starts_on", assignment.starts_on),
        "ends_on": changes.get("ends_on", assignment.ends_on),
        "fte": changes.get("fte", assignment.fte),
    }
    role = _text(changes.get("role", assignment.role), "role", 300)
    secondment = check_assignment(
        session,
        member,
        target_kind=assignment.target_kind,
        municipality=municipality,
        project=project,
        own=assignment,
        **values,
    )
    assignment.secondment_id = secondment.id
    assignment.municipality_id = getattr(municipality, "id", None)
    assignment.municipality = municipality
    assignment.project_id = getattr(project, "id", None)
    assignment.project = project
    for name, value in values.items():
        setattr(assignment, name, value)
    assignment.role = role
    if assignment.audit_view() != before:
        session.flush()
        audit.record(
            session, actor, "update", "assignment", assignment, before=before, after=assignment.audit_view()
        )
    return assignment


def delete_assignment(session: Session, actor, assignment: Assignment) -> None:
    """Remove an assignment entered by mistake (one that ends early is changed, not deleted)."""
    lock_staff_member(session, assignment.staff_member_id)
    audit.record(session, actor, "delete", "assignment", assignment.id, before=assignment.audit_view())
    session.delete(assignment)
    session.flush()


# --- capacity -------------------------------------------------------------------------------------


@dataclass
class MonthCapacity:
    """One person in one month: average shares (per mille, over the month's days) available and
    assigned, and whether any day was over-planned."""

    month: date
    available: int
    assigned: int
    over: bool

    @property
    def state(self) -> str:
        if self.over:
            return "over"
        if self.available == 0:
            return "none" if self.assigned == 0 else "over"
        if self.assigned == 0:
            return "free"
        return "full" if self.assigned >= self.available else "planned"

    @property
    def free(self) -> int:
        return max(self.available - self.assigned, 0)


@dataclass
class PersonCapacity:
    staff_member: StaffMember
    months: list[MonthCapacity] = field(default_factory=list)


def _monthly_averages(periods: list[Period], first: date, last: date) -> dict[date, int]:
    """Per month from ``first`` to ``last`` (whole months): the share held on average over its days
    (per mille, half up). One sweep over the periods, whatever the number of months."""
    share_days: dict[date, int] = defaultdict(int)
    for piece in pieces(periods, first, last):
        for month in months(piece.start, piece.end):
            share_days[month] += piece.total * overlap_days(piece.start, piece.end, month, month_end(month))
    averages = {}
    for month in months(first, last):
        days = month_end(month).day
        averages[month] = (2 * share_days.get(month, 0) + days) // (2 * days)
    return averages


def capacity(
    session: Session, start: date, end: date, staff_members: list[StaffMember] | None = None
) -> list[PersonCapacity]:
    """Month by month from ``start``'s month to ``end``'s: per person the share available (their
    secondments) and assigned, and over-planned months. Three queries whatever the number of people
    or months."""
    first, last = months(start, end)[0], month_end(end)
    if staff_members is None:
        staff_members = list(
            session.execute(select(StaffMember).order_by(StaffMember.name, StaffMember.id)).scalars()
        )
    ids = [m.id for m in staff_members]
    secondments: dict[int, list[Secondment]] = defaultdict(list)
    assignments: dict[int, list[Assignment]] = defaultdict(list)
    if ids:
        for secondment in session.execute(
            select(Secondment).where(
                Secondment.staff_member_id.in_(ids),
                Secondment.starts_on <= last,
                (Secondment.ends_on.is_(None)) | (Secondment.ends_on >= first),
            )
        ).scalars():
            secondments[secondment.staff_member_id].append(secondment)
        for assignment in session.execute(
            select(Assignment).where(
                Assignment.staff_member_id.in_(ids),
                Assignment.starts_on <= last,
                (Assignment.ends_on.is_(None)) | (Assignment.ends_on >= first),
            )
        ).scalars():
            assignments[assignment.staff_member_id].append(assignment)
    result = []
    for member in staff_members:
        available = [Period(s.starts_on, s.ends_on, s.fte, s) for s in secondments[member.id]]
        assigned = [_as_period(a) for a in assignments[member.id]]
        overs = _over_days(secondments[member.id], assignments[member.id], first, last)
        person = PersonCapacity(member)
        available_by_month = _monthly_averages(available, first, last)
        assigned_by_month = _monthly_averages(assigned, first, last)
        over_months = {month for o_start, o_end in overs for month in months(o_start, o_end)}
        for month in months(first, last):
            person.months.append(
                MonthCapacity(
                    month=month,
                    available=available_by_month[month],
                    assigned=assigned_by_month[month],
                    over=month in over_months,
                )
            )
        result.append(person)
    return result


def _over_days(secondments: list[Secondment], assignments: list[Assignment], first: date, last: date):
    """Runs of days on which assignments exceed the secondment they belong to (or have none)."""
    limits = {s.id: s.fte for s in secondments}
    by_secondment: dict[int, list[Period]] = defaultdict(list)
    for assignment in assignments:
        by_secondment[assignment.secondment_id].append(_as_period(assignment))
    runs = []
    for secondment_id, periods in by_secondment.items():
        limit = limits.get(secondment_id, 0)
        for piece in pieces(periods, first, last):
            if piece.total > limit:
                runs.append((piece.start, piece.end))
    return runs


@dataclass
class YearEffort:
    """FTE-months that went to each target in one year: per municipality and per Kreis (``total``
    is their sum), and per shared project (``projects_total``)."""

    year: int
    by_municipality: dict[int, Fraction]
    by_kreis: dict[int | None, Fraction]
    total: Fraction
    by_project: dict[int, Fraction] = field(default_factory=dict)
    projects_total: Fraction = Fraction(0)


def effort_by_target(session: Session, year: int) -> YearEffort:
    """FTE-months per municipality and per Kreis in ``year`` (a kreisfreie Stadt counts as its own
    Kreis; a Kreis's own assignments count for it). Assignments in the session's scope only."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    rows = session.execute(
        select(Assignment, Municipality)
        .join(Municipality, Municipality.id == Assignment.municipality_id)
        .where(Assignment.starts_on <= last)
        .where((Assignment.ends_on.is_(None)) | (Assignment.ends_on >= first))
    ).all()
    by_municipality: dict[int, Fraction] = defaultdict(Fraction)
    by_kreis: dict[int | None, Fraction] = defaultdict(Fraction)
    total = Fraction(0)
    for assignment, municipality in rows:
        effort = fte_months(
            assignment.fte, max(assignment.starts_on, first), min(end_of(assignment.ends_on), last)
        )
        by_municipality[municipality.id] += effort
        by_kreis[_kreis_id(municipality)] += effort
        total += effort
    by_project: dict[int, Fraction] = defaultdict(Fraction)
    for assignment in session.execute(
        select(Assignment)
        .where(Assignment.project_id.is_not(None), Assignment.starts_on <= last)
        .where((Assignment.ends_on.is_(None)) | (Assignment.ends_on >= first))
    ).scalars():
        by_project[assignment.project_id] += fte_months(
            assignment.fte, max(assignment.starts_on, first), min(end_of(assignment.ends_on), last)
        )
    return YearEffort(
        year,
        dict(by_municipality),
        dict(by_kreis),
        total,
        dict(by_project),
        sum(by_project.values(), Fraction(0)),
    )


def _kreis_id(municipality: Municipality) -> int | None:
    if municipality.kind in (MunicipalityKind.KREIS, MunicipalityKind.KREISFREIE_STADT):
        return municipality.id
    return municipality.kreis_id


# --- personnel cost in the budget -----------------------------------------------------------------


def staff_cost_cents(secondment: Secondment, year: int) -> int:
    """The secondment's personnel cost in ``year``: the person's full-time annual cost x the
    secondment's share x the share of the year's days it covers (half up to cents); 0 if unknown."""
    annual = secondment.staff_member.annual_cost_cents
    if not annual:
        return 0
    return year_share_cents(annual, secondment.fte, secondment.starts_on, secondment.ends_on, year)


def book_staff_cost(
    session: Session, actor, secondment: Secondment, year: int, *, on: date | None = None
) -> StaffCost:
    """Book a federation-borne secondment's cost for ``year`` against that year's appropriation: an
    allocation to the federation itself in category Personal, approved at once (a commitment).
    Payments are then booked on the allocation as usual. At most once per secondment and year."""
    from itvsh.funding import ledger
    from itvsh.funding.models import BudgetCategory, RecipientKind

    member = lock_staff_member(session, secondment.staff_member_id)
    if secondment.cost_bearer != CostBearer.FEDERATION:
        raise RuleViolation(
            _("The Land bears the cost of this secondment; there is nothing to book."), "cost_bearer"
        )
    fiscal_year = ledger.get_year(session, year) if isinstance(year, int) else None
    if fiscal_year is None:
        raise RuleViolation(_("There is no fiscal year %(year)s.", year=year), "year")
    booked = session.execute(
        select(StaffCost).where(
            StaffCost.secondment_id == secondment.id, StaffCost.fiscal_year_id == fiscal_year.id
        )
    ).scalar_one_or_none()
    if booked is not None:
        raise RuleViolation(
            _(
                "The cost of this secondment for %(year)s is already booked (allocation %(id)s).",
                year=year,
                id=booked.allocation_id,
            ),
            "year",
        )
    if member.annual_cost_cents is None:
        raise RuleViolation(
            _("%(name)s has no personnel cost on record.", name=member.name), "annual_cost_cents"
        )
    amount = staff_cost_cents(secondment, year)
    if amount <= 0:
        raise RuleViolation(_("The secondment does not fall into %(year)s.", year=year), "year")
    category = session.execute(
        select(BudgetCategory).where(
            BudgetCategory.fiscal_year_id == fiscal_year.id, BudgetCategory.code == "personal"
        )
    ).scalar_one_or_none()
    if category is None:
        raise RuleViolation(_("The fiscal year %(year)s has no category Personal.", year=year), "year")
    period_start = max(secondment.starts_on, date(year, 1, 1))
    period_end = min(end_of(secondment.ends_on), date(year, 12, 31))
    allocation = ledger.create_allocation(
        session,
        actor,
        fiscal_year=fiscal_year,
        category=category,
        recipient_kind=RecipientKind.FEDERATION.value,
        municipality=None,
        # Ledger text is data, kept in German; the pseudonym keeps the name out of the ledger.
        purpose=f"Personalkosten {member.pseudonym}, {format_fte(secondment.fte)}, "
        f"{period_start.isoformat()}{DASH}{period_end.isoformat()}",
        amount_cents=amount,
        file_reference=f"STAFF-{secondment.id}-{year}",
    )
    ledger.approve(session, actor, allocation, on=on)
    cost = StaffCost(
        secondment_id=secondment.id,
        fiscal_year_id=fiscal_year.id,
        allocation_id=allocation.id,
        amount_cents=amount,
    )
    session.add(cost)
    session.flush()
    audit.record(
        session,
        actor,
        "book_cost",
        "secondment",
        secondment,
        after={"year": year, "allocation_id": allocation.id, "amount_cents": amount},
    )
    return cost


__all__ = [
    "OPEN_END",
    "allow_auditors_names",
    "book_staff_cost",
    "capacity",
    "check_assignment",
    "check_share",
    "create_assignment",
    "create_secondment",
    "create_staff_member",
    "delete_assignment",
    "delete_secondment",
    "effort_by_target",
    "lock_staff_member",
    "names_visible",
    "record_sensitive_read",
    "shown_name",
    "staff_cost_cents",
    "update_assignment",
    "update_secondment",
    "update_staff_member",
]
