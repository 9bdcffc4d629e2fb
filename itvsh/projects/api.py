"""Projects and OZG endpoints of the JSON API (on the API blueprint): the federation's projects with
their status, participants, milestones and OZG services; the OZG catalogue; the OZG status rows.

Who reads what: a project's name, kind, status, period and participants are public and every
logged-in role reads them; its description, lead, milestones, services, budget (ledger sums of the
allocations to it) and people (the assignments to it) only admin, staff and auditors (auditors read
people by pseudonym unless an admin allows names). The catalogue and the OZG status rows are public
data: every logged-in role reads all of them. Status rows exist only where something is known; a
municipality and service without a row is at maturity 0 (the list answers no row for it).

Who writes: admin and staff change projects and the catalogue. The OZG status of a municipality is
written by admin and staff for any municipality, and by a municipality user for the municipalities
in its own scope (``ozg.may_report``). A municipality user writing another municipality's status
gets **403** with a problem body, never 404: the status is public data, so hiding that the row
exists would protect nothing, and 403 says why. Auditors never write.

Every write goes through the project and OZG services, which check, audit and flush; each view
commits once, and a refusal rolls the whole unit of work back and names the field as the request
names it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flask import jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, ValidationError
from marshmallow.experimental.context import Context
from sqlalchemy import or_, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload
from werkzeug.exceptions import NotFound

from itvsh.api import MAX_ID, bp, doc, json_body, paginate, unit_of_work
from itvsh.auth.roles import ADMIN_UI, ALL_ROLES, FEDERATION, Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.errors import problem
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.projects import models, ozg, services  # noqa: F401  (models: the tables, at app start)
from itvsh.projects.models import (
    Milestone,
    OzgService,
    OzgStatus,
    Participation,
    Project,
)
from itvsh.projects.schemas import (
    PROJECT_KINDS,
    PROJECT_STATUSES,
    RESPONSIBILITIES,
    MilestoneCreateSchema,
    MilestoneSchema,
    MilestoneUpdateSchema,
    OzgServiceSchema,
    OzgServiceUpdateSchema,
    OzgStatusSchema,
    OzgStatusWriteSchema,
    ParticipantCreateSchema,
    ParticipantSchema,
    ProjectCreateSchema,
    ProjectFullSchema,
    ProjectSchema,
    ProjectServicesSchema,
    ProjectStatusChangeSchema,
    ProjectUpdateSchema,
)
from itvsh.staffing import services as staffing_services
from itvsh.staffing.models import Assignment, StaffMember
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality, MunicipalityKind
from itvsh.tenants.schemas import Digits

STATUS_WRITERS = FEDERATION | {Role.MUNICIPALITY}
MAX_QUERY = 100
MAX_MATURITY = 7  # the widest model's top level (the 2025 model reaches 7)
# The services name fields by their objects; the API names them as the request does.
REQUEST_FIELDS = {"service": "ozg_id", "lead_id": "lead"}
PROJECT_PARAMS = [
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": PROJECT_KINDS}},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": PROJECT_STATUSES}},
    {
        "name": "municipality",
        "in": "query",
        "description": "only projects this member takes part in (official key)",
        "schema": {"type": "string"},
    },
]
SERVICE_PARAMS = [
    {"name": "topic", "in": "query", "description": "Themenfeld (exact)", "schema": {"type": "string"}},
    {"name": "life_event", "in": "query", "description": "Lebenslage (exact)", "schema": {"type": "string"}},
    {"name": "responsibility", "in": "query", "schema": {"type": "string", "enum": RESPONSIBILITIES}},
    {
        "name": "q",
        "in": "query",
        "description": "part of the name (any case) or of the OZG-ID",
        "schema": {"type": "string", "maxLength": MAX_QUERY},
    },
]
STATUS_PARAMS = [
    {
        "name": "municipality",
        "in": "query",
        "description": "AGS of the municipality",
        "schema": {"type": "string"},
    },
    {
        "name": "kreis",
        "in": "query",
        "description": "Kreis key (5 digits): its Gemeinden and Städte; a kreisfreie Stadt by its first "
        "five digits",
        "schema": {"type": "string"},
    },
    {"name": "ozg_id", "in": "query", "schema": {"type": "string"}},
    {"name": "topic", "in": "query", "description": "Themenfeld (exact)", "schema": {"type": "string"}},
    {
        "name": "min_maturity",
        "in": "query",
        "description": "only rows at this maturity or above",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_MATURITY},
    },
    {
        "name": "project",
        "in": "query",
        "description": "delivering project (id)",
        "schema": {"type": "integer"},
    },
]


def _me():
    return current_user._get_current_object()


def _federation() -> bool:
    """Whether the caller reads the federation's view (admin, staff, auditors)."""
    return current_user.role in ADMIN_UI


def _names() -> bool:
    return staffing_services.names_visible(db.session, _me())


def _not_found(detail: str) -> NotFound:
    exc = NotFound(detail)
    exc.itvsh_detail = detail
    return exc


def _body(schema: Schema) -> dict:
    """The JSON body loaded through ``schema``; the errors of a list's items are reported at the
    list's field (``ozg_ids: ["[1] Not a valid string."]``), so every error names a request field."""
    try:
        return json_body(schema)
    except ValidationError as exc:
        if isinstance(exc.messages, dict):
            raise ValidationError({str(name): _flat(m) for name, m in exc.messages.items()}) from None
        raise


def _flat(messages) -> list[str]:
    if isinstance(messages, dict):
        return [f"[{index}] {message}" for index, inner in messages.items() for message in _flat(inner)]
    return [str(m) for m in (messages if isinstance(messages, list) else [messages])]


def _usable(text: str, limit: int) -> bool:
    """Whether a path segment can name a row at all (NUL and lone surrogates reach no database)."""
    return 0 < len(text) <= limit and text.isprintable() and text.isascii()


# --- units of work ----------------------------------------------------------------------------------


def _unit_of_work():
    """Run a write and commit it once; a refusal writes nothing and names the field as the request
    names it."""
    return unit_of_work(REQUEST_FIELDS)


# --- lookups ----------------------------------------------------------------------------------------


def _project_or_404(project_id: int) -> Project:
    project = db.session.execute(select(Project).where(Project.id == project_id)).scalar_one_or_none()
    if project is None:
        raise _not_found(_("There is no project with the id %(id)s.", id=project_id))
    return project


def _milestone_or_404(project: Project, milestone_id: int) -> Milestone:
    milestone = db.session.execute(
        select(Milestone).where(Milestone.id == milestone_id, Milestone.project_id == project.id)
    ).scalar_one_or_none()
    if milestone is None:
        raise _not_found(_("The project has no milestone with the id %(id)s.", id=milestone_id))
    return milestone


def _service_or_404(ozg_id: str) -> OzgService:
    service = None
    if _usable(ozg_id, 10):
        service = db.session.execute(
            select(OzgService).where(OzgService.ozg_id == ozg_id)
        ).scalar_one_or_none()
    if service is None:
        raise _not_found(_("There is no OZG service with the OZG-ID %(id)s.", id=ozg_id))
    return service


def _municipality_or_404(key: str) -> Municipality:
    municipality = tenant_services.get_by_key(db.session, key)
    if municipality is None:
        raise _not_found(_("There is no municipality with the key %(key)s.", key=key))
    return municipality


def _member_named(key: str) -> Municipality:
    municipality = tenant_services.get_by_key(db.session, key)
    if municipality is None:
        raise RuleViolation(_("There is no municipality with the key %(key)s.", key=key), "municipality")
    return municipality


def _staff_named(staff_id: int | None) -> StaffMember | None:
    if staff_id is None:
        return None
    member = db.session.execute(select(StaffMember).where(StaffMember.id == staff_id)).scalar_one_or_none()
    if member is None:
        raise RuleViolation(
            _("There is no person with the id %(id)s in the staff register.", id=staff_id), "lead"
        )
    return member


def _project_named(project_id: int | None) -> Project | None:
    """The project a request body names by id (None stays None); an unknown id is refused."""
    if project_id is None:
        return None
    project = db.session.execute(select(Project).where(Project.id == project_id)).scalar_one_or_none()
    if project is None:
        raise RuleViolation(_("There is no project with the id %(id)s.", id=project_id), "project")
    return project


# --- query parameters -------------------------------------------------------------------------------


def _choice_arg(name: str, choices: list[str]) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    if value not in choices:
        raise RuleViolation(
            _("Unknown %(name)s; one of: %(choices)s.", name=name, choices=", ".join(choices)), name
        )
    return value


def _text_arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_QUERY:
        raise RuleViolation(
            _("%(name)s is too long (at most %(max)d characters).", name=name, max=MAX_QUERY), name
        )
    return value or None


def _key_arg(name: str, *lengths: int) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    try:
        return Digits(*lengths)(value)
    except ValidationError:
        counts = " or ".join(str(n) for n in lengths)
        raise RuleViolation(
            _("%(name)s must be an official key of %(counts)s digits.", name=name, counts=counts), name
        ) from None


def _int_arg(name: str, low: int, high: int) -> int | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and low <= int(raw) <= high):
        raise RuleViolation(
            _("%(name)s must be a whole number from %(low)d to %(high)d.", name=name, low=low, high=high),
            name,
        )
    return int(raw)


# --- projects ---------------------------------------------------------------------------------------


@dataclass
class ProjectView:
    """A project with its budget and people, for the full schema."""

    project: Project
    budget: services.ProjectBudget
    people: list[Assignment]

    def __getattr__(self, name: str):
        return getattr(self.project, name)


def _project_statement():
    options = [selectinload(Project.participations).joinedload(Participation.municipality)]
    if _federation():
        options += [
            joinedload(Project.lead),
            selectinload(Project.milestones),
            selectinload(Project.services),
        ]
    return select(Project).options(*options)


def _project_views(projects: list[Project]) -> list[ProjectView]:
    """The page's projects with their budgets (two grouped queries) and people (one query)."""
    ids = [p.id for p in projects]
    budgets = services.project_budgets(db.session, ids)
    people: dict[int, list[Assignment]] = defaultdict(list)
    if ids:
        assignments = db.session.execute(
            select(Assignment)
            .options(joinedload(Assignment.staff_member))
            .where(Assignment.project_id.in_(ids))
            .order_by(Assignment.starts_on.desc(), Assignment.id)
        ).scalars()
        for assignment in assignments:
            people[assignment.project_id].append(assignment)
    return [ProjectView(p, budgets[p.id], people[p.id]) for p in projects]


class _ProjectDumper:
    """What :func:`paginate` dumps a page with: the public schema for members; for the federation
    the full one, after the page's budgets and people were added in a fixed number of queries."""

    def dump(self, items, many: bool = True):
        items = list(items)
        if not _federation():
            return ProjectSchema(many=True).dump(items)
        with Context({"names": _names()}):
            return ProjectFullSchema(many=True).dump(_project_views(items))


def _project_body(project: Project) -> dict:
    return _ProjectDumper().dump([project])[0]


def _reloaded(project_id: int) -> Project:
    """The project as the answer shows it, read again after the write (fresh relationships)."""
    db.session.expire_all()
    return db.session.execute(_project_statement().where(Project.id == project_id)).scalar_one()


@bp.get("/projects")
@roles_allowed(ALL_ROLES)
@tenant_params(municipality="municipality_key")
@doc(
    "Projects (members: name, kind, status, period and participants; the federation and auditors also "
    "description, lead, milestones, services, budget and people)",
    response=ProjectFullSchema,
    paginated=True,
    params=PROJECT_PARAMS,
)
def list_projects():
    statement = _project_statement().order_by(Project.name, Project.id)
    if kind := _choice_arg("kind", PROJECT_KINDS):
        statement = statement.where(Project.kind == kind)
    if status := _choice_arg("status", PROJECT_STATUSES):
        statement = statement.where(Project.status == status)
    if key := _key_arg("municipality", 5, 8, 9):
        statement = statement.where(
            Project.id.in_(
                select(Participation.project_id)
                .join(Municipality, Municipality.id == Participation.municipality_id)
                .where(Municipality.key == key)
            )
        )
    return paginate(db.session, statement, _ProjectDumper())


@bp.get("/projects/<int:project_id>")
@roles_allowed(ALL_ROLES)
@doc("One project (members: its public part)", response=ProjectFullSchema)
def get_project(project_id: int):
    project = db.session.execute(_project_statement().where(Project.id == project_id)).scalar_one_or_none()
    if project is None:
        raise _not_found(_("There is no project with the id %(id)s.", id=project_id))
    return jsonify(_project_body(project))


@bp.post("/projects")
@roles_allowed(FEDERATION)
@doc("Create a project (status idea)", body=ProjectCreateSchema, response=ProjectFullSchema, status=201)
def create_project():
    data = _body(ProjectCreateSchema())
    with _unit_of_work():
        data["lead"] = _staff_named(data["lead"])
        project = services.create_project(db.session, _me(), **data)
        project_id = project.id
    location = url_for(".get_project", project_id=project_id)
    return jsonify(_project_body(_reloaded(project_id))), 201, {"Location": location}


@bp.patch("/projects/<int:project_id>")
@roles_allowed(FEDERATION)
@doc(
    "Change a project (not its status; its milestones must stay inside a new period)",
    body=ProjectUpdateSchema,
    response=ProjectFullSchema,
)
def update_project(project_id: int):
    project = _project_or_404(project_id)
    data = _body(ProjectUpdateSchema())
    with _unit_of_work():
        if "lead" in data:
            data["lead"] = _staff_named(data["lead"])
        services.update_project(db.session, _me(), project, **data)
    return jsonify(_project_body(_reloaded(project_id)))


@bp.post("/projects/<int:project_id>/status")
@roles_allowed(FEDERATION)
@doc(
    "Move a project along its transitions: idea, planned, running, completed; cancelled from any "
    "unfinished status",
    body=ProjectStatusChangeSchema,
    response=ProjectFullSchema,
)
def change_project_status(project_id: int):
    project = _project_or_404(project_id)
    data = _body(ProjectStatusChangeSchema())
    with _unit_of_work():
        services.change_status(db.session, _me(), project, data["status"], on=data["on"])
    return jsonify(_project_body(_reloaded(project_id)))


@bp.post("/projects/<int:project_id>/participants")
@roles_allowed(FEDERATION)
@doc(
    "Add a participating member (pilot or participant; a current member, once per project)",
    body=ParticipantCreateSchema,
    response=ParticipantSchema,
    status=201,
)
def add_project_participant(project_id: int):
    project = _project_or_404(project_id)
    data = _body(ParticipantCreateSchema())
    with _unit_of_work():
        municipality = _member_named(data.pop("municipality"))
        participation = services.add_participant(db.session, _me(), project, municipality, **data)
        body = ParticipantSchema().dump(participation)
    return jsonify(body), 201


@bp.delete("/projects/<int:project_id>/participants/<key>")
@roles_allowed(FEDERATION)
@tenant_params(key="municipality_key")
@doc("Remove a participating member", status=204)
def remove_project_participant(project_id: int, key: str):
    project = _project_or_404(project_id)
    municipality = tenant_services.get_by_key(db.session, key)  # None for a malformed key
    participation = None
    if municipality is not None:
        participation = db.session.execute(
            select(Participation).where(
                Participation.project_id == project.id, Participation.municipality_id == municipality.id
            )
        ).scalar_one_or_none()
    if participation is None:
        raise _not_found(_("The municipality %(key)s does not take part in this project.", key=key))
    with _unit_of_work():
        services.remove_participant(db.session, _me(), participation)
    return "", 204


@bp.post("/projects/<int:project_id>/milestones")
@roles_allowed(FEDERATION)
@doc(
    "Add a milestone (due inside the project's period; done not in the future)",
    body=MilestoneCreateSchema,
    response=MilestoneSchema,
    status=201,
)
def add_project_milestone(project_id: int):
    project = _project_or_404(project_id)
    data = _body(MilestoneCreateSchema())
    with _unit_of_work():
        milestone = services.add_milestone(db.session, _me(), project, **data)
        body = MilestoneSchema().dump(milestone)
    return jsonify(body), 201


@bp.patch("/projects/<int:project_id>/milestones/<int:milestone_id>")
@roles_allowed(FEDERATION)
@doc("Change a milestone (mark it done with done_on)", body=MilestoneUpdateSchema, response=MilestoneSchema)
def update_project_milestone(project_id: int, milestone_id: int):
    milestone = _milestone_or_404(_project_or_404(project_id), milestone_id)
    data = _body(MilestoneUpdateSchema())
    with _unit_of_work():
        services.update_milestone(db.session, _me(), milestone, **data)
        body = MilestoneSchema().dump(milestone)
    return jsonify(body)


@bp.delete("/projects/<int:project_id>/milestones/<int:milestone_id>")
@roles_allowed(FEDERATION)
@doc("Remove a milestone", status=204)
def delete_project_milestone(project_id: int, milestone_id: int):
    milestone = _milestone_or_404(_project_or_404(project_id), milestone_id)
    with _unit_of_work():
        services.delete_milestone(db.session, _me(), milestone)
    return "", 204


@bp.put("/projects/<int:project_id>/services")
@roles_allowed(FEDERATION)
@doc(
    "Set the OZG services the project delivers (the whole list; unknown OZG-IDs are refused)",
    body=ProjectServicesSchema,
    response=ProjectFullSchema,
)
def set_project_services(project_id: int):
    project = _project_or_404(project_id)
    data = _body(ProjectServicesSchema())
    wanted = list(dict.fromkeys(data["ozg_ids"]))
    with _unit_of_work():
        found = {
            s.ozg_id: s
            for s in db.session.execute(select(OzgService).where(OzgService.ozg_id.in_(wanted))).scalars()
        }
        unknown = [ozg_id for ozg_id in wanted if ozg_id not in found]
        if unknown:
            raise RuleViolation(
                _("Unknown OZG-IDs: %(ids)s. Nothing was changed.", ids=", ".join(unknown)), "ozg_ids"
            )
        services.set_services(db.session, _me(), project, [found[ozg_id] for ozg_id in wanted])
    return jsonify(_project_body(_reloaded(project_id)))


# --- the OZG catalogue ------------------------------------------------------------------------------


@bp.get("/ozg/services")
@roles_allowed(ALL_ROLES)
@doc("The OZG catalogue (public)", response=OzgServiceSchema, paginated=True, params=SERVICE_PARAMS)
def list_ozg_services():
    statement = select(OzgService).order_by(OzgService.ozg_id)
    if topic := _text_arg("topic"):
        statement = statement.where(OzgService.topic == topic)
    if life_event := _text_arg("life_event"):
        statement = statement.where(OzgService.life_event == life_event)
    if responsibility := _choice_arg("responsibility", RESPONSIBILITIES):
        statement = statement.where(OzgService.responsibility == responsibility)
    if q := _text_arg("q"):
        statement = statement.where(
            or_(OzgService.name.icontains(q, autoescape=True), OzgService.ozg_id.contains(q, autoescape=True))
        )
    return paginate(db.session, statement, OzgServiceSchema())


@bp.get("/ozg/services/<ozg_id>")
@roles_allowed(ALL_ROLES)
@doc("One OZG service of the catalogue", response=OzgServiceSchema)
def get_ozg_service(ozg_id: str):
    return jsonify(OzgServiceSchema().dump(_service_or_404(ozg_id)))


@bp.patch("/ozg/services/<ozg_id>")
@roles_allowed(FEDERATION)
@doc(
    "Mark who provides a service (municipal, land, bund); only municipal services count in municipal "
    "progress",
    body=OzgServiceUpdateSchema,
    response=OzgServiceSchema,
)
def update_ozg_service(ozg_id: str):
    service = _service_or_404(ozg_id)
    data = _body(OzgServiceUpdateSchema())
    with _unit_of_work():
        ozg.set_responsibility(db.session, _me(), service, data["responsibility"])
        body = OzgServiceSchema().dump(service)
    return jsonify(body)


# --- OZG status ---------------------------------------------------------------------------------


def _status_schema(many: bool = False) -> Schema:
    """Who changed a row is a person's account: not shown to municipality users."""
    return OzgStatusSchema(many=many, exclude=() if _federation() else ("changed_by",))


def _kreis_condition(key: str):
    """A Kreis's Gemeinden and Städte; a kreisfreie Stadt is its own Kreis (its AGS starts with it)."""
    kreis_ids = select(Municipality.id).where(
        Municipality.key == key, Municipality.kind == MunicipalityKind.KREIS.value
    )
    return or_(
        Municipality.kreis_id.in_(kreis_ids),
        (Municipality.kind == MunicipalityKind.KREISFREIE_STADT.value) & (Municipality.key == key + "000"),
    )


@bp.get("/ozg/status")
@roles_allowed(ALL_ROLES)
@tenant_params(municipality="municipality_key")
@doc(
    "OZG status rows (public data), by municipality and OZG-ID. Only rows where something is known "
    "exist: a municipality and service without a row is at maturity 0",
    response=OzgStatusSchema,
    paginated=True,
    params=STATUS_PARAMS,
)
def list_ozg_status():
    statement = (
        select(OzgStatus)
        .join(Municipality, Municipality.id == OzgStatus.municipality_id)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .options(
            contains_eager(OzgStatus.municipality),
            contains_eager(OzgStatus.service),
            joinedload(OzgStatus.project),
        )
        .order_by(Municipality.key, OzgService.ozg_id)
    )
    if key := _key_arg("municipality", 8):
        statement = statement.where(Municipality.key == key)
    if kreis := _key_arg("kreis", 5):
        statement = statement.where(_kreis_condition(kreis))
    if ozg_id := _text_arg("ozg_id"):
        statement = statement.where(OzgService.ozg_id == ozg_id)
    if topic := _text_arg("topic"):
        statement = statement.where(OzgService.topic == topic)
    if (maturity := _int_arg("min_maturity", 0, MAX_MATURITY)) is not None:
        statement = statement.where(OzgStatus.maturity >= maturity)
    if (project_id := _int_arg("project", 1, MAX_ID)) is not None:
        statement = statement.where(OzgStatus.project_id == project_id)
    return paginate(db.session, statement, _status_schema())


@bp.put("/ozg/status/<key>/<ozg_id>")
@roles_allowed(STATUS_WRITERS)
@tenant_params(key="municipality_key")
@doc(
    "Report a municipality's status of a service (staff: any; a municipality user: its own, else 403). "
    "Answers the row, or 204 when maturity 0 with nothing else known leaves no row",
    body=OzgStatusWriteSchema,
    response=OzgStatusSchema,
)
def put_ozg_status(key: str, ozg_id: str):
    municipality = _municipality_or_404(key)
    if not ozg.may_report(db.session, _me(), municipality):
        return problem(403, _("You may report the OZG status of your own municipality only."))
    service = _service_or_404(ozg_id)
    data = _body(OzgStatusWriteSchema())
    with _unit_of_work():
        data["project"] = _project_named(data["project"])
        result = ozg.set_status(db.session, _me(), municipality, service, **data)
        status_id = result.status.id if result.status is not None else None
    if status_id is None:
        return "", 204
    row = db.session.execute(
        select(OzgStatus)
        .options(
            joinedload(OzgStatus.municipality), joinedload(OzgStatus.service), joinedload(OzgStatus.project)
        )
        .where(OzgStatus.id == status_id)
    ).scalar_one()
    return jsonify(_status_schema().dump(row))
