"""Admin views of staffing: the staff register (with a person's detail page), secondments and
assignments (to a member or to a shared project), in the "Staffing" menu; and the staff section of
a municipality's detail page.

Thin views over ``staffing.services``: every change goes through a service, which checks the rules
and audits; the view commits once, or on a :class:`RuleViolation` rolls back and shows the
service's message at the field it names (nothing changed). Auditors read every page and get 403
from every write URL. Opening a person's detail page is recorded as a sensitive read. Auditors'
exports show the stable pseudonym instead of name and work email unless an admin allows names.

List pages cost a fixed number of statements whatever the number of rows: the page query loads the
person and member it shows (and the staff list its shares today, as correlated subqueries).
"""

from __future__ import annotations

from datetime import date

from flask import abort, flash, g, redirect, request
from flask_admin import expose
from flask_admin.babel import lazy_gettext as _admin_l
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.helpers import get_redirect_target
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, defaultload, joinedload

from itvsh.auth.roles import Role
from itvsh.core import settings
from itvsh.core.admin import SecureModelView
from itvsh.core.db import begin_write
from itvsh.core.i18n import current_language
from itvsh.core.money import format_money
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding.admin import ChoiceFilter, IdFilter, MemberFilter, show_violation
from itvsh.funding.forms import member_key, money_input
from itvsh.funding.models import FiscalYear, YearStatus
from itvsh.projects.models import ACTIVE_STATUSES, Project
from itvsh.staffing import services
from itvsh.staffing.forms import AssignmentForm, SecondmentForm, StaffMemberForm, share_input
from itvsh.staffing.models import (
    COST_BEARER_LABELS,
    DASH,
    INSTRUMENT_LABELS,
    TARGET_KIND_LABELS,
    Assignment,
    Secondment,
    StaffCost,
    StaffMember,
    TargetKind,
    format_fte,
)
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality

STAFFING = _l("Staffing")
STAFF_FIELDS = {"annual_cost_cents": "annual_cost"}
SECONDMENT_FIELDS = {"secondment": "staff_member"}
ASSIGNMENT_FIELDS = {"municipality": "member", "target_kind": "target_kind", "project": "project"}
PERSON_COLUMNS = frozenset({"name", "work_email", "staff_member"})  # pseudonymised in exports
IDENTIFYING_COLUMNS = frozenset({"home_authority"})  # left empty where names are hidden


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


def _money(cents) -> str:
    return "" if cents is None else format_money(int(cents), current_language())


def _period(start: date, end: date | None) -> str:
    return f"{start.isoformat()} {DASH} {end.isoformat() if end else _('open end')}"


def _link(url: str, text) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


def names_shown() -> bool:
    """Whether this request's exports may name staff (one settings read per request)."""
    if "itvsh_staff_names" not in g:
        g.itvsh_staff_names = services.names_visible(db.session, current_user._get_current_object())
    return g.itvsh_staff_names


def person_options() -> list[tuple[str, str]]:
    """The staff register as (id, "name (email)") choices: one query per request."""
    if "itvsh_staff_options" not in g:
        rows = db.session.execute(
            select(StaffMember.id, StaffMember.name, StaffMember.work_email).order_by(
                StaffMember.name, StaffMember.id
            )
        )
        g.itvsh_staff_options = [(str(id_), f"{name} ({email})") for id_, name, email in rows]
    return g.itvsh_staff_options


class _LazyPersons:
    """Filter options read per request (Flask-Admin would read them once, when the view is built)."""

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(person_options())


class PeriodFilter(BaseSQLAFilter):
    """Assignments running today, ended, or still to come."""

    def __init__(self, name):
        super().__init__(
            Assignment.starts_on,
            name,
            options=[("current", _l("current")), ("past", _l("past")), ("future", _l("future"))],
        )

    def validate(self, value) -> bool:
        return value in ("current", "past", "future")

    def apply(self, query, value, alias=None):
        today = date.today()
        if value == "past":
            return query.filter(Assignment.ends_on < today)
        if value == "future":
            return query.filter(Assignment.starts_on > today)
        return query.filter(
            Assignment.starts_on <= today, or_(Assignment.ends_on.is_(None), Assignment.ends_on >= today)
        )

    def operation(self):
        return _admin_l("equals")  # Flask-Admin's own catalogue translates it


class _StaffingView(SecureModelView):
    """Base of the staffing views (extra write endpoints in ``write_views``), unknown ids 404 on
    our own pages, person columns pseudonymised in exports where names are not to be shown."""

    def get_one(self, id):
        return _get(self.model, id)

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def _person(self, model) -> StaffMember:
        return model.staff_member

    def get_export_value(self, model, name):
        if name in PERSON_COLUMNS and not names_shown():
            return self._person(model).pseudonym
        if name in IDENTIFYING_COLUMNS and not names_shown():
            return ""
        return super().get_export_value(model, name)

    @expose("/export/<export_type>/")
    def export(self, export_type: str):
        names_shown()  # read before the rows stream out
        return super().export(export_type)

    def _write(self, do, form, fields: dict[str, str]):
        """Run one service call for a form: commit and return its result, or roll back and show
        the refusal at its field (nothing changed) and return False."""
        try:
            result = do()
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, fields)
            return False
        return result

    def _delete(self, do) -> bool:
        try:
            do()
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return False
        return True


def _person_cell(view, context, model, name):
    person = model.staff_member
    return _link(view.get_url("staff_members.details_view", id=person.id), person.name)


# --- the staff register ----------------------------------------------------------------------------


class StaffMemberView(_StaffingView):
    """The people the Land seconds: list with their share today, create and edit (no delete: their
    history stays), a detail page with everything about one person, and the admins' switch that
    lets auditors' exports show names."""

    allow_create = True
    allow_edit = True
    write_views = frozenset({"auditor_names_view"})
    form = StaffMemberForm
    list_template = "admin/staffing/staff_list.html"
    details_template = "admin/staffing/staff_details.html"
    column_list = ("name", "work_email", "home_authority", "current_share", "assigned_today", "pseudonym")
    column_export_list = (
        "pseudonym",
        "name",
        "work_email",
        "home_authority",
        "annual_cost_cents",
        "current_share_permille",
        "assigned_today_permille",
    )
    column_searchable_list = ("name", "work_email")
    column_sortable_list = ("name", "work_email", "home_authority", "pseudonym")
    column_default_sort = [("name", False), ("id", False)]
    column_labels = {
        "name": _l("Name"),
        "work_email": _l("Work email"),
        "home_authority": _l("Home authority"),
        "current_share": _l("Seconded today"),
        "assigned_today": _l("Assigned today"),
        "pseudonym": _l("Pseudonym"),
        "annual_cost_cents": _l("Personnel cost per full-time year (cents)"),
        "current_share_permille": _l("Seconded today (per mille)"),
        "assigned_today_permille": _l("Assigned today (per mille)"),
    }
    column_formatters = {
        "name": lambda v, c, m, n: _link(v.get_url(".details_view", id=m.id), m.name),
        "current_share": lambda v, c, m, n: format_fte(v.shares(m)[0]) or "\u2014",
        "assigned_today": lambda v, c, m, n: format_fte(v.shares(m)[1]),
    }
    column_formatters_export = {
        "current_share_permille": lambda v, c, m, n: v.shares(m)[0] or 0,
        "assigned_today_permille": lambda v, c, m, n: v.shares(m)[1],
    }

    def _person(self, model) -> StaffMember:
        return model

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        count, query = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=False, page_size=page_size
        )
        today = date.today()
        seconded = (
            select(func.max(Secondment.fte))
            .where(
                Secondment.staff_member_id == StaffMember.id,
                Secondment.starts_on <= today,
                or_(Secondment.ends_on.is_(None), Secondment.ends_on >= today),
            )
            .correlate(StaffMember)
            .scalar_subquery()
        )
        assigned = (
            select(func.coalesce(func.sum(Assignment.fte), 0))
            .where(
                Assignment.staff_member_id == StaffMember.id,
                Assignment.starts_on <= today,
                or_(Assignment.ends_on.is_(None), Assignment.ends_on >= today),
            )
            .correlate(StaffMember)
            .scalar_subquery()
        )
        rows = query.add_columns(seconded, assigned).all()
        shares = g.setdefault("itvsh_staff_shares", {})
        for member, seconded_fte, assigned_fte in rows:
            shares[member.id] = (seconded_fte, int(assigned_fte or 0))
        return count, [row[0] for row in rows]

    def shares(self, model) -> tuple[int | None, int]:
        """(share seconded today, share assigned today) of a listed person, from the page query."""
        return g.get("itvsh_staff_shares", {}).get(model.id, (None, 0))

    # --- forms -------------------------------------------------------------------------------------

    def create_form(self, obj=None):
        return StaffMemberForm()

    def edit_form(self, obj=None):
        form = StaffMemberForm(obj=obj)
        if obj is not None and not form.is_submitted():
            form.annual_cost.data = money_input(obj.annual_cost_cents)
        return form

    @staticmethod
    def _values(form) -> dict:
        return {
            "name": form.name.data or "",
            "work_email": form.work_email.data or "",
            "home_authority": form.home_authority.data or "",
            "notes": form.notes.data or "",
            "annual_cost_cents": form.annual_cost.cents,
        }

    def create_model(self, form):
        return self._write(
            lambda: services.create_staff_member(db.session, _actor(), **self._values(form)),
            form,
            STAFF_FIELDS,
        )

    def update_model(self, form, model):
        return self._write(
            lambda: services.update_staff_member(db.session, _actor(), model, **self._values(form)),
            form,
            STAFF_FIELDS,
        )

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

    # --- the detail page ---------------------------------------------------------------------------

    @expose("/details/")
    def details_view(self):
        begin_write(db.session)  # a GET that writes: the sensitive read goes into the audit trail
        member = self.get_one(request.args.get("id"))
        if member is None:
            abort(404)
        services.record_sensitive_read(db.session, _actor(), member, "admin.staff_details")
        db.session.commit()
        today = date.today()
        secondments = list(
            db.session.execute(
                select(Secondment)
                .where(Secondment.staff_member_id == member.id)
                .order_by(Secondment.starts_on)
            ).scalars()
        )
        assignments = list(
            db.session.execute(
                select(Assignment)
                .where(Assignment.staff_member_id == member.id)
                .options(*_municipality_options(), joinedload(Assignment.project).load_only(Project.name))
                .order_by(Assignment.starts_on.desc(), Assignment.id)
            ).scalars()
        )
        costs = db.session.execute(
            select(StaffCost, FiscalYear.year)
            .join(FiscalYear, FiscalYear.id == StaffCost.fiscal_year_id)
            .join(Secondment, Secondment.id == StaffCost.secondment_id)
            .where(Secondment.staff_member_id == member.id)
            .order_by(FiscalYear.year.desc(), StaffCost.id)
        ).all()
        year = today.year
        (capacity,) = services.capacity(db.session, date(year, 1, 1), date(year, 12, 31), [member])
        return self.render(
            self.details_template,
            model=member,
            secondments=secondments,
            assignments=assignments,
            costs=costs,
            capacity=capacity,
            year=year,
            today=today,
            booking_years=booking_years(),
            period=_period,
            format_fte=format_fte,
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    # --- names in auditors' exports ----------------------------------------------------------------

    def auditors_see_names(self) -> bool:
        return settings.get_flag(db.session, settings.AUDITORS_SEE_STAFF_NAMES)

    @expose("/auditor-names/", methods=("POST",))
    def auditor_names_view(self):
        if current_user.role != Role.ADMIN:
            abort(403)
        allowed = request.form.get("allowed") == "1"
        services.allow_auditors_names(db.session, _actor(), allowed)
        db.session.commit()
        flash(
            _("Auditors' exports now show the names of staff.")
            if allowed
            else _("Auditors' exports now show staff by their pseudonyms."),
            "success",
        )
        return redirect(self.get_url(".index_view"))


def booking_years() -> list[int]:
    """The fiscal years personnel cost can still be booked into (not closed), newest first."""
    return list(
        db.session.execute(
            select(FiscalYear.year)
            .where(FiscalYear.status != YearStatus.CLOSED.value)
            .order_by(FiscalYear.year.desc())
        ).scalars()
    )


def _municipality_options():
    """Load an assignment's member by key and name only (no Kreis, Amt or derived columns)."""
    return (
        joinedload(Assignment.municipality).load_only(Municipality.key, Municipality.name),
        defaultload(Assignment.municipality).lazyload(Municipality.kreis),
        defaultload(Assignment.municipality).lazyload(Municipality.amt),
    )


# --- secondments -------------------------------------------------------------------------------------


class SecondmentView(_StaffingView):
    """Secondments (Abordnung, Zuweisung, Personalgestellung): list with filters, create, edit and
    delete through the services; the booking of a federation-borne secondment's personnel cost."""

    allow_create = True
    allow_edit = True
    allow_delete = True
    action_disallowed_list = ["delete"]  # one at a time, through the service
    write_views = frozenset({"book_view"})
    form = SecondmentForm
    edit_template = "admin/staffing/secondment_edit.html"
    details_template = "admin/staffing/secondment_details.html"
    column_list = (
        "staff_member",
        "instrument",
        "starts_on",
        "ends_on",
        "fte",
        "cost_bearer",
        "legal_reference",
    )
    column_export_list = (
        "id",
        "staff_member",
        "instrument",
        "starts_on",
        "ends_on",
        "fte",
        "cost_bearer",
        "legal_reference",
    )
    column_sortable_list = (
        ("staff_member", "staff_member.name"),
        "instrument",
        "starts_on",
        "ends_on",
        "fte",
    )
    column_default_sort = [("starts_on", True), ("id", True)]
    column_filters = (
        IdFilter(Secondment.staff_member_id, _l("Person"), options=_LazyPersons()),
        ChoiceFilter(Secondment.instrument, _l("Instrument"), INSTRUMENT_LABELS),
        ChoiceFilter(Secondment.cost_bearer, _l("Cost borne by"), COST_BEARER_LABELS),
    )
    filter_url_names = ("person", "instrument", "cost_bearer")
    column_labels = {
        "id": _l("No."),
        "staff_member": _l("Person"),
        "instrument": _l("Instrument"),
        "starts_on": _l("First day"),
        "ends_on": _l("Last day"),
        "fte": _l("Share"),
        "cost_bearer": _l("Cost borne by"),
        "legal_reference": _l("Legal reference"),
    }
    column_formatters = {
        "staff_member": _person_cell,
        "instrument": lambda v, c, m, n: m.instrument_label,
        "ends_on": lambda v, c, m, n: m.ends_on.isoformat() if m.ends_on else _("open end"),
        "fte": lambda v, c, m, n: m.fte_label,
        "cost_bearer": lambda v, c, m, n: m.cost_bearer_label,
    }
    column_formatters_export = {
        "staff_member": lambda v, c, m, n: m.staff_member.name,
        "ends_on": lambda v, c, m, n: m.ends_on.isoformat() if m.ends_on else "",
        "fte": lambda v, c, m, n: m.fte,
    }

    def get_query(self):
        return super().get_query().options(joinedload(Secondment.staff_member))

    def get_export_columns(self):
        labels = {**self.column_labels, "fte": _l("Share (per mille)")}
        return [(name, labels.get(name, name)) for name in self.column_export_list]

    # --- forms -------------------------------------------------------------------------------------

    def create_form(self, obj=None):
        form = SecondmentForm()
        form.staff_member.choices = person_options()
        if not form.is_submitted():
            form.staff_member.data = request.args.get("staff_member", "")[:12]
            form.fte.data = "100"
        return form

    def edit_form(self, obj=None):
        form = SecondmentForm(obj=obj)
        del form["staff_member"]  # a secondment belongs to its person for good
        if obj is not None and not form.is_submitted():
            form.fte.data = share_input(obj.fte)
        return form

    @staticmethod
    def _values(form) -> dict:
        return {
            "instrument": form.instrument.data,
            "starts_on": form.starts_on.data,
            "ends_on": form.ends_on.data,
            "fte": form.fte.permille,
            "cost_bearer": form.cost_bearer.data,
            "legal_reference": form.legal_reference.data or "",
            "note": form.note.data or "",
        }

    def create_model(self, form):
        def do():
            member = _get(StaffMember, form.staff_member.data)
            if member is None:
                raise RuleViolation(_("Please choose a person from the staff register."), "staff_member")
            return services.create_secondment(db.session, _actor(), staff_member=member, **self._values(form))

        return self._write(do, form, SECONDMENT_FIELDS)

    def update_model(self, form, model):
        return self._write(
            lambda: services.update_secondment(db.session, _actor(), model, **self._values(form)),
            form,
            SECONDMENT_FIELDS,
        )

    def delete_model(self, model):
        return self._delete(lambda: services.delete_secondment(db.session, _actor(), model))

    # --- the detail page and the booking of personnel cost --------------------------------------------

    @expose("/details/")
    def details_view(self):
        secondment = self.get_one(request.args.get("id"))
        if secondment is None:
            abort(404)
        costs = db.session.execute(
            select(StaffCost, FiscalYear.year)
            .join(FiscalYear, FiscalYear.id == StaffCost.fiscal_year_id)
            .where(StaffCost.secondment_id == secondment.id)
            .order_by(FiscalYear.year.desc())
        ).all()
        return self.render(
            self.details_template,
            model=secondment,
            costs=costs,
            today=date.today(),
            booking_years=booking_years(),
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    @expose("/book/", methods=("POST",))
    def book_view(self):
        """Book a federation-borne secondment's personnel cost for a year (staff_costs, ledger)."""
        secondment = self.get_one(request.form.get("id"))
        if secondment is None:
            abort(404)
        back = get_redirect_target() or self.get_url(".details_view", id=secondment.id)
        try:
            year = int((request.form.get("year") or "").strip())
        except ValueError:
            flash(_("Please choose a fiscal year."), "error")
            return redirect(back)
        try:
            cost = services.book_staff_cost(db.session, _actor(), secondment, year)
            db.session.commit()
            flash(
                _(
                    "The personnel cost of %(amount)s for %(year)s was booked as allocation %(id)s.",
                    amount=_money(cost.amount_cents),
                    year=year,
                    id=cost.allocation_id,
                ),
                "success",
            )
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(back)


# --- assignments ---------------------------------------------------------------------------------------


def _target_cell(view, context, model, name):
    """The member or the shared project the person works for, linked to its page."""
    if model.target_kind == TargetKind.PROJECT:
        if model.project is None:
            return ""
        return _link(view.get_url("projects.details_view", id=model.project_id), model.project.name)
    return _link(
        view.get_url("municipalities.details_view", id=model.municipality_id), str(model.municipality)
    )


class AssignmentView(_StaffingView):
    """Assignments (Einsätze) of staff to members or shared projects: list with filters, create,
    edit and delete through the services (which refuse over-planning, naming the day and the
    conflicts, and projects that are not planned or running)."""

    allow_create = True
    allow_edit = True
    allow_delete = True
    can_view_details = False
    action_disallowed_list = ["delete"]  # one at a time, through the service
    form = AssignmentForm
    create_template = "admin/staffing/assignment_create.html"
    edit_template = "admin/staffing/assignment_edit.html"
    column_list = ("staff_member", "member", "starts_on", "ends_on", "fte", "role")
    column_export_list = (
        "id",
        "staff_member",
        "target_kind",
        "member_key",
        "member",
        "starts_on",
        "ends_on",
        "fte",
        "role",
    )
    column_sortable_list = (("staff_member", "staff_member.name"), "starts_on", "ends_on", "fte", "role")
    column_default_sort = [("starts_on", True), ("id", True)]
    column_filters = (
        IdFilter(Assignment.staff_member_id, _l("Person"), options=_LazyPersons()),
        MemberFilter(Assignment.municipality_id, _l("Member (official key)")),
        PeriodFilter(_l("Period")),
        ChoiceFilter(Assignment.target_kind, _l("Kind of target"), TARGET_KIND_LABELS),
    )
    filter_url_names = ("person", "member", "period", "target_kind")
    column_labels = {
        "id": _l("No."),
        "staff_member": _l("Person"),
        "member": _l("Works for"),
        "target_kind": _l("Kind of target"),
        "member_key": _l("Official key"),
        "starts_on": _l("First day"),
        "ends_on": _l("Last day"),
        "fte": _l("Share"),
        "role": _l("Role / task"),
    }
    column_formatters = {
        "staff_member": _person_cell,
        "member": _target_cell,
        "ends_on": lambda v, c, m, n: m.ends_on.isoformat() if m.ends_on else _("open end"),
        "fte": lambda v, c, m, n: m.fte_label,
    }
    column_formatters_export = {
        "staff_member": lambda v, c, m, n: m.staff_member.name,
        "target_kind": lambda v, c, m, n: m.target_kind,
        "member_key": lambda v, c, m, n: m.municipality.key if m.municipality is not None else "",
        "member": lambda v, c, m, n: m.municipality.name if m.municipality is not None else m.target_label,
        "ends_on": lambda v, c, m, n: m.ends_on.isoformat() if m.ends_on else "",
        "fte": lambda v, c, m, n: m.fte,
    }

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                joinedload(Assignment.staff_member),
                *_municipality_options(),
                joinedload(Assignment.project).load_only(Project.name),
            )
        )

    def get_export_columns(self):
        labels = {**self.column_labels, "fte": _l("Share (per mille)")}
        return [(name, labels.get(name, name)) for name in self.column_export_list]

    # --- forms -------------------------------------------------------------------------------------

    def member_options(self) -> list[tuple[str, str]]:
        """Today's members as (key, name) for the member field's list."""
        return list(
            db.session.execute(
                select(Municipality.key, Municipality.name)
                .where(Municipality.id.in_(tenant_services.current_members_query()))
                .order_by(Municipality.name, Municipality.key)
            ).all()
        )

    @staticmethod
    def target_kind_label(model) -> str:
        return str(TARGET_KIND_LABELS.get(model.target_kind, model.target_kind))

    def project_choices(self, current: int | None = None) -> list[tuple[str, str]]:
        """Planned and running projects (and the one an assignment names already), by name."""
        active = Project.status.in_([s.value for s in ACTIVE_STATUSES])
        query = select(Project.id, Project.name).order_by(Project.name, Project.id)
        query = query.where(active | (Project.id == current) if current else active)
        return [("", "—")] + [(str(id_), name) for id_, name in db.session.execute(query)]

    def create_form(self, obj=None):
        form = AssignmentForm()
        form.staff_member.choices = person_options()
        form.project.choices = self.project_choices()
        if not form.is_submitted():
            form.staff_member.data = request.args.get("staff_member", "")[:12]
            form.member.data = request.args.get("member", "")[:260]
            form.project.data = request.args.get("project", "")[:12]
            if request.args.get("target_kind") == TargetKind.PROJECT:
                form.target_kind.data = TargetKind.PROJECT.value
        return form

    def edit_form(self, obj=None):
        form = AssignmentForm(obj=obj)
        del form["staff_member"]  # an assignment belongs to its person for good
        del form["target_kind"]  # and to its kind of target
        if obj is not None and obj.target_kind == TargetKind.PROJECT:
            del form["member"]
            form.project.choices = self.project_choices(obj.project_id)
            if not form.is_submitted() or "project" not in request.form:
                form.project.data = str(obj.project_id or "")
        else:
            del form["project"]
        if obj is not None and not form.is_submitted():
            if "member" in form:
                form.member.data = str(obj.municipality)
            form.fte.data = share_input(obj.fte)
        return form

    @staticmethod
    def _target(form, kind: str) -> dict:
        """The member or the project the form names, for ``kind`` (the other one stays None)."""
        if kind == TargetKind.PROJECT:
            return {"municipality": None, "project": _project(form.project.data)}
        if kind == TargetKind.MEMBER:
            return {"municipality": _member(form.member.data), "project": None}
        return {"municipality": None, "project": None}  # the service names the unknown kind

    def _values(self, form, kind: str) -> dict:
        return {
            **self._target(form, kind),
            "starts_on": form.starts_on.data,
            "ends_on": form.ends_on.data,
            "fte": form.fte.permille,
            "role": form.role.data or "",
        }

    def create_model(self, form):
        def do():
            member = _get(StaffMember, form.staff_member.data)
            if member is None:
                raise RuleViolation(_("Please choose a person from the staff register."), "staff_member")
            kind = (form.target_kind.data or TargetKind.MEMBER.value).strip()[:20]
            return services.create_assignment(
                db.session, _actor(), staff_member=member, target_kind=kind, **self._values(form, kind)
            )

        return self._write(do, form, ASSIGNMENT_FIELDS)

    def update_model(self, form, model):
        return self._write(
            lambda: services.update_assignment(
                db.session, _actor(), model, **self._values(form, model.target_kind)
            ),
            form,
            ASSIGNMENT_FIELDS,
        )

    def delete_model(self, model):
        return self._delete(lambda: services.delete_assignment(db.session, _actor(), model))


def _project(value: str | None):
    """The project chosen in a form (by id); none chosen: None, which the service refuses."""
    if not (value or "").strip():
        return None
    project = _get(Project, value)
    if project is None:
        raise RuleViolation(_("There is no such project."), "project")
    return project


def _member(text: str | None) -> Municipality:
    """The member typed into a form: its official key, "Name (key)" from the list, or exactly one
    municipality's name; otherwise a refusal at the member field."""
    text = (text or "").strip()
    if not text:
        raise RuleViolation(_("Please choose the member the person works for."), "municipality")
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


# --- the staff section of a municipality's detail page -----------------------------------------------


def municipality_staff(session: Session, municipality: Municipality) -> dict:
    """Who works (or worked) for ``municipality``: its assignments with the person, newest first, in
    one query. For the municipality's admin detail page (federation users and auditors)."""
    today = date.today()
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.staff_member_id,
            StaffMember.name,
            StaffMember.work_email,
            Assignment.starts_on,
            Assignment.ends_on,
            Assignment.fte,
            Assignment.role,
        )
        .join(StaffMember, StaffMember.id == Assignment.staff_member_id)
        .where(Assignment.municipality_id == municipality.id)
        .order_by(Assignment.starts_on.desc(), Assignment.id)
    ).all()
    return {
        "staff_assignments": [
            {
                "id": row.id,
                "staff_member_id": row.staff_member_id,
                "name": row.name,
                "work_email": row.work_email,
                "starts_on": row.starts_on,
                "ends_on": row.ends_on,
                "share": format_fte(row.fte),
                "role": row.role,
                "current": row.starts_on <= today and (row.ends_on is None or row.ends_on >= today),
            }
            for row in rows
        ]
    }


def register(admin) -> None:
    """Add the staff register, secondments and assignments under the "Staffing" menu."""
    views = (
        (StaffMemberView, StaffMember, _l("Staff register"), "staff_members", "staff"),
        (SecondmentView, Secondment, _l("Secondments"), "secondments", "secondments"),
        (AssignmentView, Assignment, _l("Assignments"), "assignments", "assignments"),
    )
    for view, model, name, endpoint, path in views:
        admin.add_view(
            view(model, name=name, category=STAFFING, endpoint=endpoint, url=f"/admin/staffing/{path}")
        )
