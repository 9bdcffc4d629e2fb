"""The project services: projects and their status transitions, participants, milestones, the OZG
services a project delivers, and a project's budget (ledger sums) and people (assignments).

Admin, API, CLI and demo change projects only through these functions. They flush, never commit,
audit every change and raise :class:`RuleViolation` (naming the field) before writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itvsh.core import audit
from itvsh.core.rules import RuleViolation
from itvsh.projects.models import (
    PROJECT_STATUS_LABELS,
    TRANSITIONS,
    Milestone,
    OzgService,
    Participation,
    ParticipationRole,
    Project,
    ProjectKind,
    ProjectService,
    ProjectStatus,
)
from itvsh.tenants.models import Municipality
from itvsh.tenants.services import require_current_member

PROJECT_FIELDS = ("name", "kind", "description", "starts_on", "ends_on", "lead")


def _text(value, field_name: str, limit: int, *, required: bool = False) -> str:
    if value is not None and not isinstance(value, str):
        raise RuleViolation(_("Please enter text."), field_name)
    text = (value or "").strip()
    if required and not text:
        raise RuleViolation(_("Please fill in this field."), field_name)
    if len(text) > limit:
        raise RuleViolation(_("At most %(n)s characters.", n=limit), field_name)
    return text


def _day(value, field_name: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, date):
        raise RuleViolation(_("This is not a date."), field_name)
    if not date(2000, 1, 1) <= value <= date(2100, 12, 31):
        raise RuleViolation(_("The day must lie between 2000 and 2100."), field_name)
    return value


def _check_period(starts_on, ends_on) -> None:
    if starts_on is not None and ends_on is not None and ends_on < starts_on:
        raise RuleViolation(_("The project cannot end before it starts."), "ends_on")


def _name_free(session: Session, name: str, project_id: int | None) -> None:
    other = session.execute(select(Project.id).where(func.lower(Project.name) == name.lower())).scalar()
    if other is not None and other != project_id:
        raise RuleViolation(_("Another project has this name."), "name")


def _check_lead(lead) -> None:
    from itvsh.staffing.models import StaffMember

    if lead is not None and not isinstance(lead, StaffMember):
        raise RuleViolation(_("The lead must be a person in the staff register."), "lead")


def create_project(
    session: Session,
    actor,
    *,
    name: str,
    kind: str,
    description: str = "",
    starts_on: date | None = None,
    ends_on: date | None = None,
    lead=None,
) -> Project:
    """A new project, status ``idea``."""
    name = _text(name, "name", 200, required=True)
    if kind not in {k.value for k in ProjectKind}:
        raise RuleViolation(_("Please choose one of the offered values."), "kind")
    starts_on, ends_on = _day(starts_on, "starts_on"), _day(ends_on, "ends_on")
    _check_period(starts_on, ends_on)
    _check_lead(lead)
    _name_free(session, name, None)
    project = Project(
        name=name,
        kind=kind,
        description=_text(description, "description", 10_000),
        starts_on=starts_on,
        ends_on=ends_on,
        lead_id=getattr(lead, "id", None),
        status=ProjectStatus.IDEA.value,
    )
    session.add(project)
    session.flush()
    audit.record(session, actor, "create", "project", project, after=project.audit_view())
    return project


def update_project(session: Session, actor, project: Project, **changes) -> Project:
    """Change a project's fields (its status changes only by :func:`change_status`). Milestones
    must stay inside a changed period."""
    unknown = set(changes) - set(PROJECT_FIELDS)
    if unknown:
        raise RuleViolation(_("These fields cannot be changed: %(f)s", f=", ".join(sorted(unknown))))
    before = project.audit_view()
    values = {}
    if "name" in changes:
        values["name"] = _text(changes["name"], "name", 200, required=True)
        _name_free(session, values["name"], project.id)
    if "kind" in changes:
        if changes["kind"] not in {k.value for k in ProjectKind}:
            raise RuleViolation(_("Please choose one of the offered values."), "kind")
        values["kind"] = changes["kind"]
    if "description" in changes:
        values["description"] = _text(changes["description"], "description", 10_000)
    starts_on = _day(changes.get("starts_on", project.starts_on), "starts_on")
    ends_on = _day(changes.get("ends_on", project.ends_on), "ends_on")
    _check_period(starts_on, ends_on)
    for milestone in project.milestones:
        _check_milestone_day(milestone.due_on, starts_on, ends_on)
    if "lead" in changes:
        _check_lead(changes["lead"])
        values["lead_id"] = getattr(changes["lead"], "id", None)
    values["starts_on"], values["ends_on"] = starts_on, ends_on
    for name, value in values.items():
        setattr(project, name, value)
    if project.audit_view() != before or "description" in values:
        session.flush()
        audit.record(session, actor, "update", "project", project, before=before, after=project.audit_view())
    return project


def change_status(
    session: Session, actor, project: Project, status: str, *, on: date | None = None
) -> Project:
    """Move a project along its transitions (idea → planned → running → completed; cancelled from
    any unfinished state). Running needs a start day; completing sets the end day if none is set."""
    allowed = TRANSITIONS.get(ProjectStatus(project.status), ())
    if status not in {s.value for s in allowed}:
        raise RuleViolation(
            _(
                "A project that is %(current)s cannot become %(wanted)s.",
                current=project.status_label,
                wanted=str(PROJECT_STATUS_LABELS.get(status, status)),
            ),
            "status",
        )
    before = project.audit_view()
    day = on or date.today()
    if status == ProjectStatus.RUNNING and project.starts_on is None:
        project.starts_on = day
    if status == ProjectStatus.COMPLETED and project.ends_on is None:
        project.ends_on = max(day, project.starts_on or day)
    project.status = status
    session.flush()
    audit.record(
        session, actor, "change_status", "project", project, before=before, after=project.audit_view()
    )
    return project


# --- participants ---------------------------------------------------------------------------------


def add_participant(
    session: Session,
    actor,
    project: Project,
    municipality: Municipality,
    role: str = ParticipationRole.PARTICIPANT.value,
    *,
    joined_on: date | None = None,
) -> Participation:
    if not isinstance(municipality, Municipality):
        raise RuleViolation(_("Please choose a member."), "municipality")
    if role not in {r.value for r in ParticipationRole}:
        raise RuleViolation(_("Please choose one of the offered values."), "role")
    if project.status in (ProjectStatus.COMPLETED, ProjectStatus.CANCELLED):
        raise RuleViolation(_("The project is finished; nobody joins it any more."), "project")
    day = _day(joined_on, "joined_on") or date.today()
    require_current_member(session, municipality, day)
    existing = session.execute(
        select(Participation).where(
            Participation.project_id == project.id, Participation.municipality_id == municipality.id
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise RuleViolation(_("%(name)s takes part already.", name=municipality.name), "municipality")
    participation = Participation(project=project, municipality=municipality, role=role, joined_on=day)
    session.add(participation)
    session.flush()
    audit.record(session, actor, "create", "participation", participation, after=participation.audit_view())
    return participation


def remove_participant(session: Session, actor, participation: Participation) -> None:
    audit.record(
        session, actor, "delete", "participation", participation.id, before=participation.audit_view()
    )
    session.delete(participation)
    session.flush()


# --- milestones -----------------------------------------------------------------------------------


def _check_milestone_day(due_on: date, starts_on: date | None, ends_on: date | None) -> None:
    if starts_on is not None and due_on < starts_on:
        raise RuleViolation(
            _("The milestone is due before the project starts (%(day)s).", day=starts_on.isoformat()),
            "due_on",
        )
    if ends_on is not None and due_on > ends_on:
        raise RuleViolation(
            _("The milestone is due after the project ends (%(day)s).", day=ends_on.isoformat()), "due_on"
        )


def add_milestone(
    session: Session,
    actor,
    project: Project,
    *,
    title: str,
    due_on: date,
    done_on: date | None = None,
    note="",
) -> Milestone:
    title = _text(title, "title", 300, required=True)
    due_on = _day(due_on, "due_on")
    if due_on is None:
        raise RuleViolation(_("Please enter the day the milestone is due."), "due_on")
    _check_milestone_day(due_on, project.starts_on, project.ends_on)
    done_on = _check_done(_day(done_on, "done_on"))
    milestone = Milestone(
        project=project, title=title, due_on=due_on, done_on=done_on, note=_text(note, "note", 5000)
    )
    session.add(milestone)
    session.flush()
    audit.record(session, actor, "create", "milestone", milestone, after=milestone.audit_view())
    return milestone


def _check_done(done_on: date | None) -> date | None:
    if done_on is not None and done_on > date.today():
        raise RuleViolation(_("A milestone cannot be done in the future."), "done_on")
    return done_on


def update_milestone(session: Session, actor, milestone: Milestone, **changes) -> Milestone:
    unknown = set(changes) - {"title", "due_on", "done_on", "note"}
    if unknown:
        raise RuleViolation(_("These fields cannot be changed: %(f)s", f=", ".join(sorted(unknown))))
    before = milestone.audit_view()
    if "title" in changes:
        milestone.title = _text(changes["title"], "title", 300, required=True)
    if "due_on" in changes:
        due_on = _day(changes["due_on"], "due_on")
        if due_on is None:
            raise RuleViolation(_("Please enter the day the milestone is due."), "due_on")
        _check_milestone_day(due_on, milestone.project.starts_on, milestone.project.ends_on)
        milestone.due_on = due_on
    if "done_on" in changes:
        milestone.done_on = _check_done(_day(changes["done_on"], "done_on"))
    if "note" in changes:
        milestone.note = _text(changes["note"], "note", 5000)
    if milestone.audit_view() != before:
        session.flush()
        audit.record(
            session, actor, "update", "milestone", milestone, before=before, after=milestone.audit_view()
        )
    return milestone


def delete_milestone(session: Session, actor, milestone: Milestone) -> None:
    audit.record(session, actor, "delete", "milestone", milestone.id, before=milestone.audit_view())
    session.delete(milestone)
    session.flush()


# --- OZG services delivered -----------------------------------------------------------------------


def set_services(session: Session, actor, project: Project, services: list[OzgService]) -> None:
    """Set the OZG services the project delivers (the whole list)."""
    wanted = {service.id for service in services}
    current = set(
        session.execute(
            select(ProjectService.service_id).where(ProjectService.project_id == project.id)
        ).scalars()
    )
    if wanted == current:
        return
    for service_id in current - wanted:
        session.delete(session.get(ProjectService, (project.id, service_id)))
    for service_id in wanted - current:
        session.add(ProjectService(project_id=project.id, service_id=service_id))
    session.flush()
    session.expire(project, ["services"])
    audit.record(
        session,
        actor,
        "update",
        "project",
        project,
        before={"services": sorted(current)},
        after={"services": sorted(wanted)},
    )


# --- budget and people ----------------------------------------------------------------------------


@dataclass
class ProjectBudget:
    """The ledger sums of the allocations to one project (all years)."""

    allocated_cents: int  # amounts of approved (not cancelled) allocations
    committed_cents: int
    paid_cents: int


def project_budgets(session: Session, project_ids: list[int]) -> dict[int, ProjectBudget]:
    """Budgets of several projects in two grouped queries (lists and detail pages alike). Over all
    years a carry-over's two halves cancel out, so the sums are what is bound and paid."""
    from itvsh.funding.models import Allocation, AllocationStatus, Booking

    result = {pid: ProjectBudget(0, 0, 0) for pid in project_ids}
    if not project_ids:
        return result
    amounts = session.execute(
        select(Allocation.project_id, func.coalesce(func.sum(Allocation.amount_cents), 0))
        .where(Allocation.project_id.in_(project_ids))
        .where(Allocation.status.not_in([AllocationStatus.DRAFT.value, AllocationStatus.CANCELLED.value]))
        .group_by(Allocation.project_id)
    )
    for project_id, amount in amounts:
        result[project_id].allocated_cents = int(amount)
    sums = session.execute(
        select(
            Allocation.project_id,
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .join(Booking, Booking.allocation_id == Allocation.id)
        .where(Allocation.project_id.in_(project_ids))
        .group_by(Allocation.project_id)
    )
    for project_id, committed, paid in sums:
        result[project_id].committed_cents = int(committed)
        result[project_id].paid_cents = int(paid)
    return result


def project_people(session: Session, project: Project):
    """The assignments to the project, with their people, newest first."""
    from sqlalchemy.orm import joinedload

    from itvsh.staffing.models import Assignment

    return list(
        session.execute(
            select(Assignment)
            .options(joinedload(Assignment.staff_member))
            .where(Assignment.project_id == project.id)
            .order_by(Assignment.starts_on.desc(), Assignment.id)
        ).scalars()
    )
