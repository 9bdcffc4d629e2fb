"""Staffing endpoints of the JSON API (on the API blueprint): the staff register, secondments with
their booked personnel cost, assignments and a person's capacity month by month.

The register, secondments and capacity are the federation's: admin, staff and auditors read them,
admin and staff write. Assignments are private to the member they are for: a municipality user
reads only its own (the central tenant scope filters them; another tenant's id answers 404) and
only name, work email, period, share and role of the person -- never cost, pseudonym, home
authority, notes or the secondment. Assignments to a shared project (``project``: its id, instead of
``municipality``) belong to no member: only admin, staff and auditors see them. Auditors read people
by their pseudonym unless an admin allows names. Reading a person's record is audited as a sensitive
read.

Every write goes through the staffing services, which check, audit and flush; each view commits
once, and a refusal rolls the whole unit of work back and names the field as the request names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from flask import abort, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, ValidationError
from marshmallow.experimental.context import Context
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from itvsh.api import MAX_ID, bp, doc, json_body, paginate, unit_of_work
from itvsh.auth.roles import ADMIN_UI, ALL_ROLES, FEDERATION, Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.db import begin_write
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding.models import FiscalYear
from itvsh.projects.models import Project
from itvsh.staffing import models, services  # noqa: F401  (models: the tables, at app start)
from itvsh.staffing.models import Assignment, Secondment, StaffCost, StaffMember, TargetKind
from itvsh.staffing.schemas import (
    AssignmentCreateSchema,
    AssignmentSchema,
    AssignmentUpdateSchema,
    CapacitySchema,
    MemberAssignmentSchema,
    SecondmentCreateSchema,
    SecondmentDetailSchema,
    SecondmentSchema,
    SecondmentUpdateSchema,
    StaffCostRequestSchema,
    StaffCostSchema,
    StaffMemberCreateSchema,
    StaffMemberDetailSchema,
    StaffMemberSchema,
    StaffMemberUpdateSchema,
)
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality
from itvsh.tenants.schemas import Digits

MAX_CAPACITY_MONTHS = 120  # ten years
# The services name fields by their objects; the API names them as the request does.
REQUEST_FIELDS = {"staff_member": "staff_id", "municipality_id": "municipality", "project_id": "project"}
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_STAFF_ID_PARAM = {
    "name": "staff_id",
    "in": "query",
    "description": "only this person's (staff register id)",
    "schema": {"type": "integer"},
}
ASSIGNMENT_PARAMS = [
    _STAFF_ID_PARAM,
    {
        "name": "municipality",
        "in": "query",
        "description": "official key of the member (AGS, Amt or Kreis key)",
        "schema": {"type": "string"},
    },
    {
        "name": "project",
        "in": "query",
        "description": "only the assignments to this project (id)",
        "schema": {"type": "integer"},
    },
    {
        "name": "active_on",
        "in": "query",
        "description": "only assignments running on this day (YYYY-MM-DD)",
        "schema": {"type": "string", "format": "date"},
    },
]
CAPACITY_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": True,
        "description": f"{what} (YYYY-MM-DD; its whole month counts; at most ten years in all)",
        "schema": {"type": "string", "format": "date"},
    }
    for name, what in (("from", "first day"), ("to", "last day"))
]


def _me():
    return current_user._get_current_object()


def _names() -> bool:
    """Whether answers to this user name people: members see the names of those working for
    them; admin and staff always; auditors only while an admin allows it."""
    if current_user.role == Role.MUNICIPALITY:
        return True
    return services.names_visible(db.session, _me())


def _dump(schema: Schema, obj) -> dict:
    with Context({"names": _names()}):
        return schema.dump(obj)


@dataclass
class _Dumper:
    """What :func:`paginate` dumps a page with: the schema inside this answer's naming context."""

    schema: Schema
    names: bool

    def dump(self, items, many: bool = True):
        with Context({"names": self.names}):
            return self.schema.dump(list(items), many=True)


# --- units of work ----------------------------------------------------------------------------------


def _unit_of_work():
    """Run a write and commit it once; a refusal writes nothing and names the field as the request
    names it."""
    return unit_of_work(REQUEST_FIELDS)


# --- lookups ----------------------------------------------------------------------------------------


def _one_or_404(model, object_id: int):
    # A select, not session.get: it always asks the database, through the tenant scope.
    found = db.session.execute(select(model).where(model.id == object_id)).scalar_one_or_none()
    if found is None:
        abort(404)
    return found


def _staff_named(staff_id: int) -> StaffMember:
    member = db.session.execute(select(StaffMember).where(StaffMember.id == staff_id)).scalar_one_or_none()
    if member is None:
        raise RuleViolation(
            _("There is no person with the id %(id)s in the staff register.", id=staff_id), "staff_id"
        )
    return member


def _project_named(project_id: int | None) -> Project | None:
    if project_id is None:
        return None
    project = db.session.execute(select(Project).where(Project.id == project_id)).scalar_one_or_none()
    if project is None:
        raise RuleViolation(_("There is no project with the id %(id)s.", id=project_id), "project")
    return project


def _member_named(key: str) -> Municipality:
    municipality = tenant_services.get_by_key(db.session, key)
    if municipality is None:
        raise RuleViolation(_("There is no municipality with the key %(key)s.", key=key), "municipality")
    return municipality


# --- query parameters -------------------------------------------------------------------------------


def _id_arg(name: str) -> int | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= MAX_ID):
        raise RuleViolation(_("%(name)s must be an id (a whole number).", name=name), name)
    return int(raw)


def _day_arg(name: str, *, required: bool = False) -> date | None:
    raw = request.args.get(name, "")
    if not raw:
        if required:
            raise RuleViolation(_("Please give %(name)s as a date (YYYY-MM-DD).", name=name), name)
        return None
    try:
        if not _ISO_DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise RuleViolation(_("%(name)s must be a date (YYYY-MM-DD).", name=name), name) from None


def _key_arg(name: str) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    try:
        return Digits(5, 8, 9)(value)
    except ValidationError:
        raise RuleViolation(
            _("%(name)s must be an official key (5, 8 or 9 digits).", name=name), name
        ) from None


# --- the staff register -----------------------------------------------------------------------------


def _staff_detail(member: StaffMember) -> dict:
    names = _names()
    schema = StaffMemberDetailSchema(exclude=() if names else ("notes",))
    with Context({"names": names}):
        return schema.dump(member)


@bp.get("/staff")
@roles_allowed(ADMIN_UI)
@doc(
    "The staff register (auditors read pseudonyms unless names are allowed)",
    response=StaffMemberSchema,
    paginated=True,
)
def list_staff():
    statement = select(StaffMember).order_by(StaffMember.name, StaffMember.id)
    return paginate(db.session, statement, _Dumper(StaffMemberSchema(), _names()))


@bp.get("/staff/<int:staff_id>")
@roles_allowed(ADMIN_UI)
@doc("One person with their secondments (the read is audited)", response=StaffMemberDetailSchema)
def get_staff_member(staff_id: int):
    begin_write(db.session)  # the sensitive read is recorded in the audit trail
    member = _one_or_404(StaffMember, staff_id)
    body = _staff_detail(member)
    services.record_sensitive_read(db.session, _me(), member, "api")
    db.session.commit()
    return jsonify(body)


@bp.post("/staff")
@roles_allowed(FEDERATION)
@doc(
    "Add a person to the staff register",
    body=StaffMemberCreateSchema,
    response=StaffMemberDetailSchema,
    status=201,
)
def create_staff_member():
    data = json_body(StaffMemberCreateSchema())
    with _unit_of_work():
        member = services.create_staff_member(db.session, _me(), **data)
    location = url_for(".get_staff_member", staff_id=member.id)
    return jsonify(_staff_detail(member)), 201, {"Location": location}


@bp.patch("/staff/<int:staff_id>")
@roles_allowed(FEDERATION)
@doc("Change a person's record", body=StaffMemberUpdateSchema, response=StaffMemberDetailSchema)
def update_staff_member(staff_id: int):
    member = _one_or_404(StaffMember, staff_id)
    data = json_body(StaffMemberUpdateSchema())
    with _unit_of_work():
        member = services.update_staff_member(db.session, _me(), member, **data)
    return jsonify(_staff_detail(member))


@bp.get("/staff/<int:staff_id>/capacity")
@roles_allowed(ADMIN_UI)
@doc(
    "A person's capacity month by month: available and assigned (per mille), state, over-planned",
    response=CapacitySchema,
    params=CAPACITY_PARAMS,
)
def get_staff_capacity(staff_id: int):
    member = _one_or_404(StaffMember, staff_id)
    start, end = _day_arg("from", required=True), _day_arg("to", required=True)
    for name, day in (("from", start), ("to", end)):
        if not services.MIN_DAY <= day <= services.MAX_DAY:
            raise RuleViolation(_("%(name)s must lie between 2000 and 2100.", name=name), name)
    if end < start:
        raise RuleViolation(_("to cannot be before from."), "to")
    if (end.year - start.year) * 12 + end.month - start.month + 1 > MAX_CAPACITY_MONTHS:
        raise RuleViolation(_("The range may cover at most ten years (120 months)."), "to")
    [person] = services.capacity(db.session, start, end, staff_members=[member])
    body = _dump(CapacitySchema(), person)
    body.update({"from": start.isoformat(), "to": end.isoformat()})
    return jsonify(body)


# --- secondments ------------------------------------------------------------------------------------


@dataclass
class _CostView:
    """A booked cost with its fiscal year, for the schema."""

    cost: StaffCost
    year: int

    def __getattr__(self, name: str):
        return getattr(self.cost, name)


def _secondment_detail(secondment: Secondment) -> dict:
    rows = db.session.execute(
        select(StaffCost, FiscalYear.year)
        .join(FiscalYear, FiscalYear.id == StaffCost.fiscal_year_id)
        .where(StaffCost.secondment_id == secondment.id)
        .order_by(FiscalYear.year)
    ).all()
    with Context({"names": _names()}):
        body = SecondmentDetailSchema(exclude=("costs",)).dump(secondment)
    body["costs"] = StaffCostSchema(many=True).dump([_CostView(cost, year) for cost, year in rows])
    return body


@bp.get("/secondments")
@roles_allowed(ADMIN_UI)
@doc(
    "Secondments, by person and first day",
    response=SecondmentSchema,
    paginated=True,
    params=[_STAFF_ID_PARAM],
)
def list_secondments():
    statement = (
        select(Secondment)
        .options(joinedload(Secondment.staff_member))
        .order_by(Secondment.staff_member_id, Secondment.starts_on, Secondment.id)
    )
    if (staff_id := _id_arg("staff_id")) is not None:
        statement = statement.where(Secondment.staff_member_id == staff_id)
    return paginate(db.session, statement, _Dumper(SecondmentSchema(), _names()))


@bp.get("/secondments/<int:secondment_id>")
@roles_allowed(ADMIN_UI)
@doc("One secondment with the personnel cost booked for it", response=SecondmentDetailSchema)
def get_secondment(secondment_id: int):
    return jsonify(_secondment_detail(_one_or_404(Secondment, secondment_id)))


@bp.post("/secondments")
@roles_allowed(FEDERATION)
@doc(
    "Record a secondment (a person's secondments never overlap)",
    body=SecondmentCreateSchema,
    response=SecondmentDetailSchema,
    status=201,
)
def create_secondment():
    data = json_body(SecondmentCreateSchema())
    with _unit_of_work():
        member = _staff_named(data.pop("staff_id"))
        secondment = services.create_secondment(db.session, _me(), staff_member=member, **data)
    location = url_for(".get_secondment", secondment_id=secondment.id)
    return jsonify(_secondment_detail(secondment)), 201, {"Location": location}


@bp.patch("/secondments/<int:secondment_id>")
@roles_allowed(FEDERATION)
@doc(
    "Change a secondment (it must still hold its assignments)",
    body=SecondmentUpdateSchema,
    response=SecondmentDetailSchema,
)
def update_secondment(secondment_id: int):
    secondment = _one_or_404(Secondment, secondment_id)
    data = json_body(SecondmentUpdateSchema())
    with _unit_of_work():
        secondment = services.update_secondment(db.session, _me(), secondment, **data)
    return jsonify(_secondment_detail(secondment))


@bp.delete("/secondments/<int:secondment_id>")
@roles_allowed(FEDERATION)
@doc("Remove a secondment entered by mistake (only without assignments and booked cost)", status=204)
def delete_secondment(secondment_id: int):
    secondment = _one_or_404(Secondment, secondment_id)
    with _unit_of_work():
        services.delete_secondment(db.session, _me(), secondment)
    return "", 204


@bp.post("/secondments/<int:secondment_id>/costs")
@roles_allowed(FEDERATION)
@doc(
    "Book the year's personnel cost of a secondment the federation pays (an approved allocation "
    "to the federation in category Personal)",
    body=StaffCostRequestSchema,
    response=StaffCostSchema,
    status=201,
)
def book_secondment_cost(secondment_id: int):
    secondment = _one_or_404(Secondment, secondment_id)
    data = json_body(StaffCostRequestSchema())
    with _unit_of_work():
        cost = services.book_staff_cost(db.session, _me(), secondment, data["year"])
    return jsonify(StaffCostSchema().dump(_CostView(cost, data["year"]))), 201


# --- assignments ------------------------------------------------------------------------------------


def _assignment_schema(many: bool = False) -> Schema:
    if current_user.role == Role.MUNICIPALITY:
        return MemberAssignmentSchema(many=many)
    return AssignmentSchema(many=many)


def _assignment_body(assignment: Assignment) -> dict:
    return _dump(_assignment_schema(), assignment)


@bp.get("/assignments")
@roles_allowed(ALL_ROLES)
@tenant_params(municipality="municipality_key")
@doc(
    "Assignments you may see (a member: its own, with name, work email, period, share and role)",
    response=AssignmentSchema,
    paginated=True,
    params=ASSIGNMENT_PARAMS,
)
def list_assignments():
    statement = (
        select(Assignment)
        .options(
            joinedload(Assignment.staff_member),
            joinedload(Assignment.municipality),
            joinedload(Assignment.secondment),
            joinedload(Assignment.project),
        )
        .order_by(Assignment.starts_on, Assignment.id)
    )
    if (staff_id := _id_arg("staff_id")) is not None:
        statement = statement.where(Assignment.staff_member_id == staff_id)
    if key := _key_arg("municipality"):
        statement = statement.where(
            Assignment.municipality_id.in_(select(Municipality.id).where(Municipality.key == key))
        )
    if (project_id := _id_arg("project")) is not None:
        statement = statement.where(Assignment.project_id == project_id)
    if (day := _day_arg("active_on")) is not None:
        statement = statement.where(
            Assignment.starts_on <= day, Assignment.ends_on.is_(None) | (Assignment.ends_on >= day)
        )
    return paginate(db.session, statement, _Dumper(_assignment_schema(), _names()))


@bp.get("/assignments/<int:assignment_id>")
@roles_allowed(ALL_ROLES)
@tenant_params(assignment_id="assignment")
@doc(
    "One assignment (a member: only its own, with the person's name, work email, period, share, role)",
    response=AssignmentSchema,
)
def get_assignment(assignment_id: int):
    return jsonify(_assignment_body(_one_or_404(Assignment, assignment_id)))


@bp.post("/assignments")
@roles_allowed(FEDERATION)
@doc(
    "Assign a person to a member or a project (inside a secondment, never over the person's share on "
    "any day; a project's inside its period)",
    body=AssignmentCreateSchema,
    response=AssignmentSchema,
    status=201,
)
def create_assignment():
    data = json_body(AssignmentCreateSchema())
    with _unit_of_work():
        member = _staff_named(data.pop("staff_id"))
        key, project = data.pop("municipality", None), _project_named(data.pop("project", None))
        assignment = services.create_assignment(
            db.session,
            _me(),
            staff_member=member,
            municipality=_member_named(key) if key is not None else None,
            project=project,
            target_kind=TargetKind.PROJECT.value if project is not None else TargetKind.MEMBER.value,
            **data,
        )
    location = url_for(".get_assignment", assignment_id=assignment.id)
    return jsonify(_assignment_body(assignment)), 201, {"Location": location}


@bp.patch("/assignments/<int:assignment_id>")
@roles_allowed(FEDERATION)
@tenant_params(assignment_id="assignment")
@doc(
    "Change an assignment (the same rules as for a new one)",
    body=AssignmentUpdateSchema,
    response=AssignmentSchema,
)
def update_assignment(assignment_id: int):
    assignment = _one_or_404(Assignment, assignment_id)
    data = json_body(AssignmentUpdateSchema())
    with _unit_of_work():
        if "municipality" in data:
            data["municipality"] = _member_named(data["municipality"])
        if "project" in data:
            data["project"] = _project_named(data["project"])
        assignment = services.update_assignment(db.session, _me(), assignment, **data)
    return jsonify(_assignment_body(assignment))


@bp.delete("/assignments/<int:assignment_id>")
@roles_allowed(FEDERATION)
@tenant_params(assignment_id="assignment")
@doc("Remove an assignment entered by mistake", status=204)
def delete_assignment(assignment_id: int):
    assignment = _one_or_404(Assignment, assignment_id)
    with _unit_of_work():
        services.delete_assignment(db.session, _me(), assignment)
    return "", 204
