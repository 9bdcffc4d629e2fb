"""Admin views of projects, in the "Projects" menu: the list (with participants and budget), create
and edit, the status transitions, and a detail page with budget, people, participants, milestones
and the OZG services a project delivers; and the projects section of a municipality's detail page.

Thin views over ``projects.services``: every change goes through a service, which checks the rules
and audits; the view commits once, or on a :class:`RuleViolation` rolls back and shows the
service's message (nothing changed). Every write is a POST with CSRF. Auditors read every page and
get 403 from every write URL; municipality users never get in (the admin is closed to them).

The list costs a fixed number of statements whatever the number of projects: the user, the count,
the page (with the lead and the number of participants) and the two budget queries of
:func:`services.project_budgets`.
"""

from __future__ import annotations

import re
from datetime import date

from flask import abort, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.helpers import get_redirect_target
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defaultload, joinedload
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from itvsh.core.admin import SecureModelView
from itvsh.core.i18n import current_language
from itvsh.core.money import format_money
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding.admin import ChoiceFilter, show_violation
from itvsh.funding.forms import member_key
from itvsh.projects import services
from itvsh.projects.models import (
    PARTICIPATION_ROLE_LABELS,
    PROJECT_KIND_LABELS,
    PROJECT_STATUS_LABELS,
    TRANSITIONS,
    Milestone,
    OzgService,
    Participation,
    Project,
    ProjectStatus,
)
from itvsh.staffing.admin import person_options
from itvsh.staffing.models import DASH, StaffMember
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality

PROJECTS = _l("Projects")
WRITE_VIEWS = frozenset(
    {
        "status_view",
        "participant_add_view",
        "participant_remove_view",
        "milestone_add_view",
        "milestone_edit_view",
        "milestone_delete_view",
        "services_view",
    }
)
_OZG_ID_SEPARATORS = re.compile(r"[\s,;]+")
MAX_OZG_IDS = 1000  # more than the catalogue holds


def _actor():
    return current_user._get_current_object()


def _get(model, value):
    """The row with primary key ``value`` as sent in a URL or form, or None (also for "abc", or an
    id too large for the column, which PostgreSQL would refuse with an error)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return db.session.get(model, number) if 0 < number < 2**31 else None


def _get_or_404(model, value):
    row = _get(model, value)
    if row is None:
        abort(404)
    return row


def _money(cents) -> str:
    return "" if cents is None else format_money(int(cents), current_language())


def _day(text: str | None, field: str, label) -> date | None:
    """An ISO date from a posted form (empty: None); a wrong one is refused naming the field."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RuleViolation(_("%(field)s: please enter a date as YYYY-MM-DD.", field=label), field) from None


def period_label(starts_on: date | None, ends_on: date | None) -> str:
    if starts_on is None and ends_on is None:
        return "\u2014"
    start = starts_on.isoformat() if starts_on else "?"
    return f"{start} {DASH} {ends_on.isoformat() if ends_on else _('open end')}"


def _link(url: str, text) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


# --- the form ----------------------------------------------------------------------------------------


def _kind_choices():
    return [(str(kind.value), label) for kind, label in PROJECT_KIND_LABELS.items()]


class ProjectForm(FlaskForm):
    """A project's fields; its status changes only by the transitions on the detail page. Choices
    are not checked here: the service refuses what is not offered, naming the field."""

    name = StringField(_l("Name"))
    kind = SelectField(_l("Kind"), choices=_kind_choices, validate_choice=False)
    description = TextAreaField(_l("Description"))
    starts_on = DateField(_l("Start"), validators=[Optional()], description=_l("Empty while not known."))
    ends_on = DateField(_l("End"), validators=[Optional()], description=_l("Empty while not known."))
    lead = SelectField(
        _l("Lead"), choices=[], validate_choice=False, description=_l("A person in the staff register.")
    )


def _lead(value) -> StaffMember | None:
    if not (value or "").strip():
        return None
    person = _get(StaffMember, value)
    if person is None:
        raise RuleViolation(_("The lead must be a person in the staff register."), "lead")
    return person


def _member(text: str | None) -> Municipality:
    """The member typed into the participant form: its official key, "Name (key)" from the list,
    or exactly one municipality's name."""
    text = (text or "").strip()
    if not text:
        raise RuleViolation(_("Please choose a member."), "municipality")
    key = member_key(text)
    if key is not None:
        municipality = tenant_services.get_by_key(db.session, key)
        if municipality is None:
            raise RuleViolation(_("There is no municipality with the key %(key)s.", key=key), "municipality")
        return municipality
    named = (
        db.session.execute(select(Municipality).where(func.lower(Municipality.name) == text.lower()))
        .scalars()
        .all()
    )
    if len(named) != 1:
        raise RuleViolation(
            _("Please enter the official key of the member or choose it from the list."), "municipality"
        )
    return named[0]


def _ozg_services(text: str | None) -> list[OzgService]:
    """The catalogue's services named by the OZG-IDs typed (separated by spaces, commas or
    semicolons); unknown IDs are refused, all named in one message."""
    ids = list(dict.fromkeys(part for part in _OZG_ID_SEPARATORS.split(text or "") if part))
    if len(ids) > MAX_OZG_IDS:
        raise RuleViolation(_("At most %(n)s OZG-IDs.", n=MAX_OZG_IDS), "services")
    if not ids:
        return []
    found = {
        service.ozg_id: service
        for service in db.session.execute(select(OzgService).where(OzgService.ozg_id.in_(ids))).scalars()
    }
    unknown = [ozg_id for ozg_id in ids if ozg_id not in found]
    if unknown:
        raise RuleViolation(
            _(
                "The catalogue has no service with the OZG-ID %(ids)s.",
                ids=", ".join(u[:20] for u in unknown[:20]),
            ),
            "services",
        )
    return [found[ozg_id] for ozg_id in ids]


# --- the view ------------------------------------------------------------------------------------------


class ProjectView(SecureModelView):
    """Projects: list with filters and budget, create and edit through the services (no delete:
    allocations and assignments refer to them; a project is cancelled instead), and the detail page
    with its POST actions."""

    allow_create = True
    allow_edit = True
    column_auto_select_related = False  # the page query loads the lead itself (name only)
    form = ProjectForm
    details_template = "admin/projects/project_details.html"
    column_list = ("name", "kind", "status", "period", "lead", "participants", "allocated", "paid")
    column_export_list = (
        "id",
        "name",
        "kind",
        "status",
        "starts_on",
        "ends_on",
        "lead",
        "participants",
        "allocated_cents",
        "committed_cents",
        "paid_cents",
    )
    column_searchable_list = ("name",)
    column_sortable_list = ("name", "kind", "status", ("period", Project.starts_on))
    column_default_sort = [("name", False), ("id", False)]
    column_filters = (
        ChoiceFilter(Project.kind, _l("Kind"), PROJECT_KIND_LABELS),
        ChoiceFilter(Project.status, _l("Status"), PROJECT_STATUS_LABELS),
    )
    filter_url_names = ("kind", "status")
    column_labels = {
        "id": _l("No."),
        "name": _l("Name"),
        "kind": _l("Kind"),
        "status": _l("Status"),
        "period": _l("Period"),
        "starts_on": _l("Start"),
        "ends_on": _l("End"),
        "lead": _l("Lead"),
        "participants": _l("Participants"),
        "allocated": _l("Allocated"),
        "paid": _l("Paid"),
        "allocated_cents": _l("Allocated (cents)"),
        "committed_cents": _l("Committed (cents)"),
        "paid_cents": _l("Paid (cents)"),
    }
    column_formatters = {
        "name": lambda v, c, m, n: _link(v.get_url(".details_view", id=m.id), m.name),
        "kind": lambda v, c, m, n: m.kind_label,
        "status": lambda v, c, m, n: m.status_label,
        "period": lambda v, c, m, n: period_label(m.starts_on, m.ends_on),
        "lead": lambda v, c, m, n: m.lead.name if m.lead is not None else "\u2014",
        "participants": lambda v, c, m, n: v.participant_count(m),
        "allocated": lambda v, c, m, n: _money(v.budget(m).allocated_cents),
        "paid": lambda v, c, m, n: _money(v.budget(m).paid_cents),
    }
    column_formatters_export = {
        "lead": lambda v, c, m, n: m.lead.name if m.lead is not None else "",
        "participants": lambda v, c, m, n: v.participant_count(m),
        "allocated_cents": lambda v, c, m, n: v.budget(m).allocated_cents,
        "committed_cents": lambda v, c, m, n: v.budget(m).committed_cents,
        "paid_cents": lambda v, c, m, n: v.budget(m).paid_cents,
    }

    def _handle_view(self, name, **kwargs):
        refused = super()._handle_view(name, **kwargs)
        if refused is not None:
            return refused
        if name in WRITE_VIEWS and self.read_only:
            abort(403)
        return None

    def get_one(self, id):
        return _get(Project, id)

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def get_query(self):
        return super().get_query().options(joinedload(Project.lead).load_only(StaffMember.name))

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        count, query = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=False, page_size=page_size
        )
        participants = (
            select(func.count(Participation.id))
            .where(Participation.project_id == Project.id)
            .correlate(Project)
            .scalar_subquery()
        )
        rows = query.add_columns(participants).all()
        projects = [row[0] for row in rows]
        g.itvsh_project_participants = {project.id: int(n) for project, n in rows}
        g.itvsh_project_budgets = services.project_budgets(db.session, [p.id for p in projects])
        return count, projects

    def participant_count(self, model) -> int:
        return g.get("itvsh_project_participants", {}).get(model.id, 0)

    def budget(self, model) -> services.ProjectBudget:
        return g.get("itvsh_project_budgets", {}).get(model.id) or services.ProjectBudget(0, 0, 0)

    # --- create and edit ---------------------------------------------------------------------------

    def _form(self, obj=None) -> ProjectForm:
        form = ProjectForm(obj=obj)
        form.lead.choices = [("", "\u2014"), *person_options()]
        if not form.is_submitted():
            form.lead.data = str(obj.lead_id) if obj is not None and obj.lead_id else ""
        return form

    def create_form(self, obj=None):
        return self._form()

    def edit_form(self, obj=None):
        return self._form(obj)

    @staticmethod
    def _values(form) -> dict:
        return {
            "name": form.name.data or "",
            "kind": form.kind.data or "",
            "description": form.description.data or "",
            "starts_on": form.starts_on.data,
            "ends_on": form.ends_on.data,
            "lead": _lead(form.lead.data),
        }

    def _write(self, do, form):
        try:
            result = do()
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, {})
            return False
        return result

    def create_model(self, form):
        return self._write(lambda: services.create_project(db.session, _actor(), **self._values(form)), form)

    def update_model(self, form, model):
        return self._write(
            lambda: services.update_project(db.session, _actor(), model, **self._values(form)), form
        )

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

    # --- the detail page ---------------------------------------------------------------------------

    @expose("/details/")
    def details_view(self):
        project = _get_or_404(Project, request.args.get("id"))
        participations = list(
            db.session.execute(
                select(Participation)
                .join(Municipality, Municipality.id == Participation.municipality_id)
                .where(Participation.project_id == project.id)
                .options(
                    joinedload(Participation.municipality).load_only(Municipality.key, Municipality.name),
                    defaultload(Participation.municipality).lazyload(Municipality.kreis),
                    defaultload(Participation.municipality).lazyload(Municipality.amt),
                )
                .order_by(Municipality.name, Participation.id)
            ).scalars()
        )
        return self.render(
            self.details_template,
            model=project,
            budget=services.project_budgets(db.session, [project.id])[project.id],
            people=services.project_people(db.session, project),
            participations=participations,
            transitions=[
                (status.value, PROJECT_STATUS_LABELS[status])
                for status in TRANSITIONS.get(ProjectStatus(project.status), ())
            ],
            role_labels=PARTICIPATION_ROLE_LABELS,
            open_for_people=project.is_active,
            finished=project.status in (ProjectStatus.COMPLETED, ProjectStatus.CANCELLED),
            period=period_label,
            today=date.today(),
            allocations_url=url_for("funding_allocations.index_view", flt0_project=project.id),
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    def member_options(self) -> list[tuple[str, str]]:
        """Today's members as (key, name) for the participant form's list."""
        return list(
            db.session.execute(
                select(Municipality.key, Municipality.name)
                .where(Municipality.id.in_(tenant_services.current_members_query()))
                .order_by(Municipality.name, Municipality.key)
            ).all()
        )

    def _act(self, project: Project, do):
        """Run one service call for the detail page: commit and flash its success message, or roll
        back and flash the refusal (nothing changed). Back to the detail page either way."""
        try:
            message = do()
            db.session.commit()
            flash(message, "success")
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(self.get_url(".details_view", id=project.id))

    @expose("/status/", methods=("POST",))
    def status_view(self):
        project = _get_or_404(Project, request.form.get("id"))
        wanted = (request.form.get("status") or "").strip()[:20]

        def do():
            services.change_status(db.session, _actor(), project, wanted)
            return _("The project is now %(status)s.", status=project.status_label)

        return self._act(project, do)

    @expose("/participants/add/", methods=("POST",))
    def participant_add_view(self):
        project = _get_or_404(Project, request.form.get("id"))

        def do():
            municipality = _member(request.form.get("member"))
            role = (request.form.get("role") or "").strip()[:20]
            joined_on = _day(request.form.get("joined_on"), "joined_on", _("Joined on"))
            services.add_participant(db.session, _actor(), project, municipality, role, joined_on=joined_on)
            return _("%(name)s takes part in the project.", name=municipality.name)

        return self._act(project, do)

    @expose("/participants/remove/", methods=("POST",))
    def participant_remove_view(self):
        participation = _get_or_404(Participation, request.form.get("participation_id"))
        project, name = participation.project, participation.municipality.name

        def do():
            services.remove_participant(db.session, _actor(), participation)
            return _("%(name)s no longer takes part in the project.", name=name)

        return self._act(project, do)

    @staticmethod
    def _milestone_fields() -> dict:
        form = request.form
        return {
            "title": (form.get("title") or "")[:1000],
            "due_on": _day(form.get("due_on"), "due_on", _("Due on")),
            "done_on": _day(form.get("done_on"), "done_on", _("Done on")),
            "note": (form.get("note") or "")[:10_000],
        }

    @expose("/milestones/add/", methods=("POST",))
    def milestone_add_view(self):
        project = _get_or_404(Project, request.form.get("id"))

        def do():
            milestone = services.add_milestone(db.session, _actor(), project, **self._milestone_fields())
            return _("The milestone %(title)s was added.", title=milestone.title)

        return self._act(project, do)

    @expose("/milestones/edit/", methods=("POST",))
    def milestone_edit_view(self):
        milestone = _get_or_404(Milestone, request.form.get("milestone_id"))

        def do():
            services.update_milestone(db.session, _actor(), milestone, **self._milestone_fields())
            return _("The milestone %(title)s was saved.", title=milestone.title)

        return self._act(milestone.project, do)

    @expose("/milestones/delete/", methods=("POST",))
    def milestone_delete_view(self):
        milestone = _get_or_404(Milestone, request.form.get("milestone_id"))
        project, title = milestone.project, milestone.title

        def do():
            services.delete_milestone(db.session, _actor(), milestone)
            return _("The milestone %(title)s was deleted.", title=title)

        return self._act(project, do)

    @expose("/services/", methods=("POST",))
    def services_view(self):
        project = _get_or_404(Project, request.form.get("id"))

        def do():
            chosen = _ozg_services((request.form.get("ozg_ids") or "")[:20_000])
            services.set_services(db.session, _actor(), project, chosen)
            return _("The project delivers %(n)s OZG services.", n=len(chosen))

        return self._act(project, do)


# --- the projects section of a municipality's detail page -----------------------------------------------


def municipality_projects(session: Session, municipality: Municipality) -> dict:
    """The projects ``municipality`` takes part in, with its role and the project's status, in one
    query. For the municipality's admin detail page."""
    rows = session.execute(
        select(
            Project.id,
            Project.name,
            Project.kind,
            Project.status,
            Participation.role,
            Participation.joined_on,
        )
        .join(Participation, Participation.project_id == Project.id)
        .where(Participation.municipality_id == municipality.id)
        .order_by(Project.name, Project.id)
    ).all()
    return {
        "project_participations": [
            {
                "id": row.id,
                "name": row.name,
                "kind": str(PROJECT_KIND_LABELS.get(row.kind, row.kind)),
                "status": str(PROJECT_STATUS_LABELS.get(row.status, row.status)),
                "role": str(PARTICIPATION_ROLE_LABELS.get(row.role, row.role)),
                "joined_on": row.joined_on,
            }
            for row in rows
        ]
    }


def register(admin) -> None:
    """Add the project list and pages under the "Projects" menu."""
    admin.add_view(
        ProjectView(
            Project, name=_l("Projects"), category=PROJECTS, endpoint="projects", url="/admin/projects"
        )
    )
