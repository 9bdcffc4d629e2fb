"""The member portal's projects and OZG pages.

``/portal/projects/``: the projects the member takes part in (for an Amt user also those of its
Gemeinden) with kind, status, period, lead, role and milestones, and the other planned or running
projects it could join. All of it is public data (name, kind, status, participants); budgets, staff
costs and people's data other than the lead's name are never selected here.

``/portal/ozg/``: one municipality's OZG status — the user's own Gemeinde or Stadt; an Amt user
picks one of its Gemeinden (``?key=``), a Kreis user sees the Kreis's figures — per Themenfeld
(services x maturity, no row = maturity 0), its share of OZG-compliant services beside its Kreis and
the Land (from the tallies), the reported statuses, and a form to report a change of one service
through :func:`itvsh.projects.ozg.set_status` (which refuses other municipalities; a refusal is
shown with its message and nothing changes).

Project and OZG rows are public and not tenant-owned, so the central scope does not filter them:
the views pick the member's rows by the scope's tenant ids. Each page runs a fixed number of SQL
statements, whatever the number of projects, services or statuses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import and_, func, or_, select

from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import scope_ids
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.models import (
    ACTIVE_STATUSES,
    MATURITY_LABELS,
    MAX_LEVEL,
    PARTICIPATION_ROLE_LABELS,
    PROJECT_KIND_LABELS,
    PROJECT_STATUS_LABELS,
    Milestone,
    OzgService,
    OzgStatus,
    OzgTally,
    Participation,
    Project,
    ProjectService,
    Responsibility,
    TallyScope,
)
from itvsh.staffing.models import StaffMember
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind
from itvsh.tenants.services import get_by_key

bp = Blueprint("projects_portal", __name__, url_prefix="/portal")

STATUS_ORDER = ("running", "planned", "idea", "completed", "cancelled")
LOCAL_KIND_VALUES = tuple(kind.value for kind in LOCAL_KINDS)


# --- projects -------------------------------------------------------------------------------------


@dataclass
class ProjectRow:
    """A project as a member sees it: public data and the lead's name, nothing about money."""

    id: int
    name: str
    kind: str
    status: str
    description: str
    starts_on: date | None
    ends_on: date | None
    lead: str | None
    roles: list[tuple[str, str, date]] = field(default_factory=list)  # (member, role, joined on)
    milestones: list[Milestone] = field(default_factory=list)
    services: list[tuple[str, str]] = field(default_factory=list)  # (OZG-ID, name)
    participants: int = 0

    @property
    def kind_label(self) -> str:
        return str(PROJECT_KIND_LABELS.get(self.kind, self.kind))

    @property
    def status_label(self) -> str:
        return str(PROJECT_STATUS_LABELS.get(self.status, self.status))

    @property
    def open_milestones(self) -> int:
        return sum(1 for m in self.milestones if m.done_on is None)


def role_label(role: str) -> str:
    return str(PARTICIPATION_ROLE_LABELS.get(role, role))


def project_rows(session, tenant_ids) -> tuple[list[ProjectRow], list[ProjectRow]]:
    """The projects the tenants take part in, and the other planned or running ones (four queries)."""
    taking_part = session.execute(
        select(
            Participation.project_id,
            Participation.role,
            Participation.joined_on,
            Municipality.name,
        )
        .join(Municipality, Municipality.id == Participation.municipality_id)
        .where(Participation.municipality_id.in_(tenant_ids))
        .order_by(Municipality.name, Participation.id)
    ).all()
    own_ids = {row.project_id for row in taking_part}
    counts = (
        select(Participation.project_id, func.count().label("participants"))
        .group_by(Participation.project_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Project.id,
            Project.name,
            Project.kind,
            Project.status,
            Project.description,
            Project.starts_on,
            Project.ends_on,
            StaffMember.name.label("lead"),
            func.coalesce(counts.c.participants, 0),
        )
        .outerjoin(StaffMember, StaffMember.id == Project.lead_id)
        .outerjoin(counts, counts.c.project_id == Project.id)
        .where(or_(Project.id.in_(own_ids), Project.status.in_([s.value for s in ACTIVE_STATUSES])))
    ).all()
    projects = {row.id: ProjectRow(*row[:8], participants=int(row[8])) for row in rows}
    for project_id, role, joined_on, name in taking_part:
        projects[project_id].roles.append((name, role, joined_on))
    if projects:
        for milestone in session.execute(
            select(Milestone)
            .where(Milestone.project_id.in_(own_ids))
            .order_by(Milestone.due_on, Milestone.id)
        ).scalars():
            projects[milestone.project_id].milestones.append(milestone)
        for project_id, ozg_id, name in session.execute(
            select(ProjectService.project_id, OzgService.ozg_id, OzgService.name)
            .join(OzgService, OzgService.id == ProjectService.service_id)
            .where(ProjectService.project_id.in_(list(projects)))
            .order_by(OzgService.ozg_id)
        ):
            projects[project_id].services.append((ozg_id, name))

    def order(row: ProjectRow):
        rank = STATUS_ORDER.index(row.status) if row.status in STATUS_ORDER else len(STATUS_ORDER)
        return rank, row.name.lower()

    own = sorted((p for p in projects.values() if p.id in own_ids), key=order)
    others = sorted((p for p in projects.values() if p.id not in own_ids), key=order)
    return own, others


@bp.get("/projects/")
@roles_allowed(Role.MUNICIPALITY)
def projects():
    tenant = current_user.municipality
    own, others = project_rows(db.session, sorted(scope_ids(db.session) or {tenant.id}))
    return render_template(
        "portal/projects.html",
        municipality=tenant,
        several=tenant.kind == MunicipalityKind.AMT,
        own=own,
        others=others,
        role_label=role_label,
        today=date.today(),
    )


# --- OZG ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    id: int
    key: str
    name: str
    kind: str
    kreis_id: int | None  # the Kreis it counts in (a kreisfreie Stadt its own)


@dataclass
class TopicRow:
    """One Themenfeld (or all, ``topic`` ""): the municipality's services per maturity level and the
    shares of compliant services of the municipality, its Kreis and the Land."""

    topic: str
    services: int = 0
    levels: list[int] = field(default_factory=lambda: [0] * (MAX_LEVEL + 1))
    own: float | None = None
    kreis: float | None = None
    land: float | None = None


def _places(session, tenant: Municipality) -> list[Place]:
    """The municipalities whose status the user reports: its own Gemeinde or Stadt, or an Amt's
    Gemeinden (a Kreis reports none)."""
    if tenant.kind in LOCAL_KIND_VALUES:
        kreis = tenant.id if tenant.kind == MunicipalityKind.KREISFREIE_STADT else tenant.kreis_id
        return [Place(tenant.id, tenant.key, tenant.name, tenant.kind, kreis)]
    if tenant.kind != MunicipalityKind.AMT:
        return []
    rows = session.execute(
        select(Municipality.id, Municipality.key, Municipality.name, Municipality.kind, Municipality.kreis_id)
        .where(Municipality.amt_id == tenant.id, Municipality.kind.in_(LOCAL_KIND_VALUES))
        .order_by(Municipality.name, Municipality.key)
    ).all()
    return [Place(*row) for row in rows]


def _tallies(session, places: list[Place], selected: Place | None, kreis_id: int | None):
    """The tallies the page shows, in one query: the selected municipality's (every Themenfeld),
    the overall ones of the other places, and its Kreis's and the Land's."""
    wanted = [and_(OzgTally.scope == TallyScope.LAND.value, OzgTally.scope_id == ozg.LAND_ID)]
    if kreis_id is not None:
        wanted.append(and_(OzgTally.scope == TallyScope.KREIS.value, OzgTally.scope_id == kreis_id))
    if places:
        own = OzgTally.topic == ""
        if selected is not None:
            own = or_(own, OzgTally.scope_id == selected.id)
        wanted.append(
            and_(
                OzgTally.scope == TallyScope.MUNICIPALITY.value,
                OzgTally.scope_id.in_([p.id for p in places]),
                own,
            )
        )
    found = {}
    for tally in session.execute(select(OzgTally).where(or_(*wanted))).scalars():
        found[(tally.scope, tally.scope_id, tally.topic)] = tally
    return found


def _share(tally) -> float | None:
    return ozg.compliant_share(tally) if tally is not None else None


@dataclass
class ReportForm:
    """What the report form shows: the values (as entered, or the stored status) and the errors."""

    municipality: str = ""
    service: str = ""
    maturity: str = "0"
    online_since: str = ""
    url: str = ""
    efa: bool = False
    errors: dict[str, str] = field(default_factory=dict)


def ozg_page(session, tenant: Municipality, places: list[Place], selected: Place | None) -> dict:
    """Everything the OZG page shows (three queries besides the places)."""
    kreis_id = selected.kreis_id if selected is not None else None
    if tenant.kind == MunicipalityKind.KREIS:
        kreis_id = tenant.id
    tallies = _tallies(session, places, selected, kreis_id)
    services = session.execute(
        select(
            OzgService.id, OzgService.ozg_id, OzgService.name, OzgService.topic, OzgService.responsibility
        ).order_by(OzgService.topic, OzgService.ozg_id)
    ).all()
    statuses = []
    if selected is not None:
        statuses = session.execute(
            select(OzgStatus, OzgService.ozg_id, OzgService.name, OzgService.topic, Project.name)
            .join(OzgService, OzgService.id == OzgStatus.service_id)
            .outerjoin(Project, Project.id == OzgStatus.project_id)
            .where(OzgStatus.municipality_id == selected.id)
            .order_by(OzgService.topic, OzgService.ozg_id)
        ).all()
    municipal = {s.id: s.topic for s in services if s.responsibility == Responsibility.MUNICIPAL}
    rows: dict[str, TopicRow] = {"": TopicRow("")}
    for topic in sorted(set(municipal.values())):
        rows[topic] = TopicRow(topic)
    for topic in municipal.values():
        rows[topic].services += 1
        rows[""].services += 1
    for status, _ozg_id, _name, topic, _project in statuses:
        if status.service_id in municipal and status.maturity > 0:
            level = min(status.maturity, MAX_LEVEL)
            rows[topic].levels[level] += 1
            rows[""].levels[level] += 1
    for topic, row in rows.items():
        row.levels[0] = row.services - sum(row.levels[1:])
        if selected is not None:
            row.own = _share(tallies.get((TallyScope.MUNICIPALITY.value, selected.id, topic)))
        if kreis_id is not None:
            row.kreis = _share(tallies.get((TallyScope.KREIS.value, kreis_id, topic)))
        row.land = _share(tallies.get((TallyScope.LAND.value, ozg.LAND_ID, topic)))
    grouped = defaultdict(list)
    for service in services:
        grouped[service.topic].append(service)
    overview = [
        (place, _share(tallies.get((TallyScope.MUNICIPALITY.value, place.id, "")))) for place in places
    ]
    return {
        "topics": [rows[""], *(rows[t] for t in rows if t)],
        "statuses": statuses,
        "service_groups": sorted(grouped.items()),
        "overview": overview,
        "kreis_id": kreis_id,
        "show_kreis": kreis_id is not None and (selected is None or kreis_id != selected.id),
    }


def _parse_report(session, form: ReportForm):
    """The report's municipality, service, maturity and day, or errors naming the fields."""
    municipality = get_by_key(session, form.municipality)
    if municipality is None:
        form.errors["municipality"] = _("Please choose a municipality.")
    service = None
    if form.service:
        service = session.execute(select(OzgService).where(OzgService.ozg_id == form.service)).scalar()
    if service is None:
        form.errors["service"] = _("Please choose an OZG service.")
    maturity = None
    try:
        maturity = int(form.maturity)
    except ValueError:
        form.errors["maturity"] = _("Please choose a maturity level.")
    online_since = None
    if form.online_since:
        try:
            online_since = date.fromisoformat(form.online_since)
        except ValueError:
            form.errors["online_since"] = _("This is not a date (YYYY-MM-DD).")
    return municipality, service, maturity, online_since


def report(session, form: ReportForm):
    """Report the change through the status service; returns the municipality on success, None
    (with ``form.errors``) when refused — then nothing was changed."""
    municipality, service, maturity, online_since = _parse_report(session, form)
    if form.errors:
        return None
    stored = session.execute(
        select(OzgStatus).where(
            OzgStatus.municipality_id == municipality.id, OzgStatus.service_id == service.id
        )
    ).scalar_one_or_none()
    try:
        result = ozg.set_status(
            session,
            current_user._get_current_object(),
            municipality,
            service,
            maturity=maturity,
            maturity_model=stored.maturity_model if stored is not None else "1.x",
            online_since=online_since,
            url=form.url,
            project=stored.project if stored is not None else None,  # a member does not change it
            efa=form.efa,
        )
    except RuleViolation as exc:
        session.rollback()
        form.errors[exc.field if exc.field in ReportForm.__dataclass_fields__ else "form"] = exc.message
        return None
    session.commit()
    if result.changed:
        label = f"{service.ozg_id} {service.name}"
        flash(_("The status of %(service)s was saved.", service=label), "success")
    else:
        flash(_("Nothing changed: the status was already so."), "info")
    return municipality


def _stored_values(form: ReportForm, statuses, service: str) -> None:
    """Prefill the form with the stored status of ``service`` (a link from the table)."""
    for status, ozg_id, _name, _topic, _project in statuses:
        if ozg_id == service:
            form.service = ozg_id
            form.maturity = str(status.maturity)
            form.online_since = status.online_since.isoformat() if status.online_since else ""
            form.url = status.url
            form.efa = status.efa
            return
    form.service = service


@bp.route("/ozg/", methods=["GET", "POST"])
@roles_allowed(Role.MUNICIPALITY)
@tenant_params(key="municipality_key")
def ozg_status():
    session = db.session
    tenant = current_user.municipality
    places = _places(session, tenant)
    key = request.args.get("key", "")
    selected = places[0] if places else None
    if key:
        selected = next((place for place in places if place.key == key), None)
        if selected is None:
            abort(404)  # not one of the user's municipalities
    form = ReportForm(municipality=selected.key if selected is not None else "")
    status_code = 200
    if request.method == "POST":
        if not places:
            abort(404)  # a Kreis reports no status
        form = ReportForm(
            municipality=request.form.get("municipality", "").strip(),
            service=request.form.get("service", "").strip(),
            maturity=request.form.get("maturity", "").strip(),
            online_since=request.form.get("online_since", "").strip(),
            url=request.form.get("url", "").strip(),
            efa=request.form.get("efa") in ("y", "on", "1", "true"),
        )
        done = report(session, form)
        if done is not None:
            return redirect(url_for(".ozg_status", key=done.key if len(places) > 1 else None))
        tenant = current_user.municipality  # reloaded after the rollback
        selected = next((place for place in places if place.key == form.municipality), selected)
        status_code = 400
    page = ozg_page(session, tenant, places, selected)
    if request.method == "GET" and request.args.get("service"):
        _stored_values(form, page["statuses"], request.args["service"][:10])
    return render_template(
        "portal/ozg.html",
        municipality=tenant,
        places=places,
        selected=selected,
        form=form,
        maturity_labels=MATURITY_LABELS,
        municipal=Responsibility.MUNICIPAL.value,
        **page,
    ), status_code
