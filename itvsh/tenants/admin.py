"""Municipalities and their contacts in the admin: the list (search, Kreis/Amt/kind/member filters,
population sort), a detail page gathering everything the federation knows about one tenant, master
data changes, joining and leaving, the CSV import; contacts (tenant-private) for staff.

Every change goes through ``tenants.services`` (or the importer) and is audited; the view commits
once. Auditors read. A list page costs at most four SQL statements: the user, the Kreis/Amt filter
options (one query for both), the count and the page.
"""

from __future__ import annotations

from datetime import date

from flask import abort, flash, g, redirect, request
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.babel import gettext as _admin_gettext
from flask_admin.babel import lazy_gettext as _admin_l
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual
from flask_admin.helpers import get_redirect_target
from flask_babel import format_number, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased, joinedload

from itvsh.core.admin import SecureModelView
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding.dashboard import municipality_funding
from itvsh.projects.admin import municipality_projects
from itvsh.staffing.admin import municipality_staff
from itvsh.tenants import services
from itvsh.tenants.forms import (
    CONTACT_FORM_FIELDS,
    ContactCreateForm,
    ContactForm,
    ImportForm,
    MunicipalityCreateForm,
    MunicipalityForm,
)
from itvsh.tenants.importer import TenantImportError, import_municipalities
from itvsh.tenants.models import (
    KIND_LABELS,
    LOCAL_KINDS,
    Membership,
    Municipality,
    MunicipalityContact,
    MunicipalityKind,
)


def _actor():
    return current_user._get_current_object()


def _get(model, id):
    """The row with primary key ``id`` as sent in a URL or form, or None (also for "abc" or an id
    too large for the column, which PostgreSQL would refuse with an error)."""
    try:
        number = int(id)
    except (TypeError, ValueError):
        return None
    return db.session.get(model, number) if 0 < number < 2**31 else None


def parent_options() -> dict[str, list[tuple[str, str]]]:
    """The Kreise and Ämter as (key, "name (key)") choices: one query per request, for the filters
    and the forms together."""
    if "itvsh_parent_options" not in g:
        options: dict[str, list[tuple[str, str]]] = {MunicipalityKind.KREIS: [], MunicipalityKind.AMT: []}
        rows = db.session.execute(
            select(Municipality.key, Municipality.name, Municipality.kind)
            .where(Municipality.kind.in_([MunicipalityKind.KREIS.value, MunicipalityKind.AMT.value]))
            .order_by(Municipality.name, Municipality.key)
        )
        for key, name, kind in rows:
            options[kind].append((key, f"{name} ({key})"))
        g.itvsh_parent_options = options
    return g.itvsh_parent_options


class _LazyParentOptions:
    """Filter options read per request (Flask-Admin evaluates plain or callable options once, when
    the view is built, before the database is even there)."""

    def __init__(self, kind: MunicipalityKind):
        self.kind = kind

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(parent_options()[self.kind])


class ParentFilter(BaseSQLAFilter):
    """Members of one Kreis or Amt, chosen by its official key (readable, stable URLs)."""

    def __init__(self, column, name, kind: MunicipalityKind):
        super().__init__(column, name, options=_LazyParentOptions(kind))
        self.kind = kind

    def validate(self, value) -> bool:
        return value.isascii() and value.isdigit() and len(value) <= 9

    def apply(self, query, value, alias=None):
        parent = aliased(Municipality)
        parent_id = (
            select(parent.id).where(parent.key == value, parent.kind == self.kind.value).scalar_subquery()
        )
        return query.filter(self.get_column(alias) == parent_id)

    def operation(self):
        return _admin_l("equals")  # Flask-Admin's own catalogue translates it


class MemberFilter(BaseSQLAFilter):
    """Current member today, or not (the ``is_member`` column property, evaluated in SQL)."""

    def __init__(self, name):
        super().__init__(Municipality.id, name, options=[("1", _l("yes")), ("0", _l("no"))])

    def validate(self, value) -> bool:
        return value in ("0", "1")

    def apply(self, query, value, alias=None):
        member = Municipality.is_member.expression
        return query.filter(member if value == "1" else ~member)

    def operation(self):
        return _admin_l("equals")  # Flask-Admin's own catalogue translates it


def _field_for(form, field: str | None) -> str | None:
    return {"kreis": "kreis_key", "amt": "amt_key"}.get(field or "", field)


def show_violation(form, exc: RuleViolation) -> None:
    """The service's message at the form field it names (if the form has it), and as a flash."""
    name = _field_for(form, exc.field)
    if name and hasattr(form, name):
        field = getattr(form, name)
        field.errors = [*field.errors, exc.message]
    flash(exc.message, "error")


class MunicipalityView(SecureModelView):
    allow_create = True
    allow_edit = True
    list_template = "admin/tenants/municipality_list.html"
    details_template = "admin/tenants/municipality_details.html"
    column_list = ("key", "name", "kind", "kreis", "amt", "total_population", "is_member")
    column_export_list = (
        *("key", "ars", "name", "kind", "kreis", "amt", "population", "total_population"),
        *("population_date", "area_km2", "postcode", "is_member"),
    )
    column_searchable_list = ("key", "name")
    column_sortable_list = ("key", "name", "kind", "total_population", "is_member")
    column_default_sort = "key"
    column_filters = (
        ParentFilter(Municipality.kreis_id, _l("Kreis"), MunicipalityKind.KREIS),
        ParentFilter(Municipality.amt_id, _l("Amt"), MunicipalityKind.AMT),
        FilterEqual(Municipality.kind, _l("Kind"), options=[(k.value, v) for k, v in KIND_LABELS.items()]),
        MemberFilter(_l("Member")),
    )
    # Stable query parameters (flt0_kreis=01058), whatever the language of the filter names.
    filter_url_names = ("kreis", "amt", "kind", "member")
    column_labels = {
        "key": _l("Official key"),
        "ars": _l("ARS"),
        "name": _l("Name"),
        "kind": _l("Kind"),
        "kreis": _l("Kreis"),
        "amt": _l("Amt"),
        "population": _l("Population"),
        "total_population": _l("Population"),
        "population_date": _l("Population as of"),
        "area_km2": _l("Area (km²)"),
        "postcode": _l("Postcode"),
        "is_member": _l("Member"),
        "created_at": _l("Created"),
    }
    column_formatters = {
        "kind": lambda v, c, m, n: m.kind_label,
        "total_population": lambda v, c, m, n: (
            "" if m.total_population is None else format_number(m.total_population)
        ),
    }

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    # --- loading -------------------------------------------------------------------------------

    def get_query(self):
        # The list shows the joined Kreis and Amt by key and name only: loading their derived columns
        # would add two correlated subqueries per parent row (bench: list query 7.2 ms -> 1.9 ms).
        return (
            super()
            .get_query()
            .options(
                joinedload(Municipality.kreis).load_only(Municipality.key, Municipality.name),
                joinedload(Municipality.amt).load_only(Municipality.key, Municipality.name),
            )
        )

    def get_one(self, id):
        return _get(Municipality, id)

    # --- master data -----------------------------------------------------------------------------

    def create_form(self, obj=None):
        form = MunicipalityCreateForm()
        form.set_parent_choices(parent_options())
        return form

    def edit_form(self, obj=None):
        form = MunicipalityForm(obj=obj)
        form.set_parent_choices(parent_options())
        if obj is not None and not form.is_submitted():
            form.kreis_key.data = obj.kreis.key if obj.kreis else ""
            form.amt_key.data = obj.amt.key if obj.amt else ""
        return form

    def create_model(self, form):
        try:
            municipality = services.create_municipality(
                db.session, _actor(), key=(form.key.data or "").strip(), **form.master_data()
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc)
            return False
        return municipality

    def update_model(self, form, model):
        try:
            services.update_municipality(db.session, _actor(), model, **form.master_data())
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc)
            return False
        return True

    # --- the detail page -------------------------------------------------------------------------

    @expose("/details/")
    def details_view(self):
        return_url = get_redirect_target() or self.get_url(".index_view")
        municipality = self.get_one(request.args.get("id"))
        if municipality is None:
            flash(_admin_gettext("Record does not exist."), "error")
            return redirect(return_url)
        return self.render(
            self.details_template,
            model=municipality,
            return_url=return_url,
            details_columns=[],
            get_value=self.get_detail_value,
            today=date.today(),
            **gather(municipality),
            **municipality_funding(db.session, municipality),
            **municipality_staff(db.session, municipality),
            **municipality_projects(db.session, municipality),
        )

    @expose("/membership/", methods=("POST",))
    def membership_view(self):
        """Record joining or leaving on a given day (the form on the detail page)."""
        if self.read_only:
            abort(403)
        municipality = self.get_one(request.form.get("id"))
        if municipality is None:
            abort(404)
        change = request.form.get("change")
        try:
            day = date.fromisoformat(request.form.get("on") or "")
        except ValueError:
            day = None
        if change not in ("join", "leave") or day is None:
            flash(_("Please choose joining or leaving and a date (YYYY-MM-DD)."), "error")
        else:
            note = (request.form.get("note") or "").strip()
            try:
                if change == "join":
                    services.join(db.session, _actor(), municipality, day, note)
                    message = _("%(name)s joined on %(day)s.", name=municipality.name, day=day.isoformat())
                else:
                    services.leave(db.session, _actor(), municipality, day, note)
                    message = _("%(name)s left on %(day)s.", name=municipality.name, day=day.isoformat())
                db.session.commit()
                flash(message, "success")
            except RuleViolation as exc:
                db.session.rollback()
                flash(exc.message, "error")
        return redirect(self.get_url(".details_view", id=municipality.id))

    # --- bulk membership actions -------------------------------------------------------------------

    def _selected(self, ids) -> list[Municipality]:
        return list(
            db.session.execute(
                select(Municipality)
                .where(Municipality.id.in_(self.selected_ids(ids)))
                .order_by(Municipality.key)
            ).scalars()
        )

    def _change_membership(self, ids, change) -> int | None:
        """All or nothing: every refusal is shown, and then nothing is written."""
        municipalities = self._selected(ids)
        today = date.today()
        refused = []
        for municipality in municipalities:
            try:  # the services check before they write
                change(db.session, _actor(), municipality, today)
            except RuleViolation as exc:
                refused.append(exc.message)
        if refused:
            db.session.rollback()
            for message in refused:
                flash(message, "error")
            flash(_("Nothing was changed."), "error")
            return None
        db.session.commit()
        return len(municipalities)

    @action("join_today", _l("Join today"), _l("Record that the selected municipalities join today?"))
    def action_join_today(self, ids):
        done = self._change_membership(ids, services.join)
        if done is not None:
            flash(ngettext("%(num)d municipality joined.", "%(num)d municipalities joined.", done), "success")

    @action("leave_today", _l("Leave today"), _l("Record that the selected municipalities leave today?"))
    def action_leave_today(self, ids):
        done = self._change_membership(ids, services.leave)
        if done is not None:
            flash(ngettext("%(num)d municipality left.", "%(num)d municipalities left.", done), "success")

    # --- the CSV import ------------------------------------------------------------------------------

    @expose("/import/", methods=("GET", "POST"))
    def import_view(self):
        if self.read_only:
            abort(403)
        form = ImportForm()
        errors: list[str] = []
        result = None
        if form.validate_on_submit():
            upload = form.file.data
            try:
                result = import_municipalities(
                    db.session, _actor(), upload.read(), source=(upload.filename or "")[:200]
                )
                db.session.commit()
                flash(_("The list was imported: %(summary)s.", summary=result.summary()), "success")
            except TenantImportError as exc:
                db.session.rollback()
                errors = exc.errors
        return self.render("admin/tenants/municipality_import.html", form=form, errors=errors, result=result)


def gather(municipality: Municipality) -> dict:
    """Everything the detail page shows besides master data, in a fixed number of queries."""
    members: list[Municipality] = []
    if municipality.kind in (MunicipalityKind.AMT, MunicipalityKind.KREIS):
        members = list(
            db.session.execute(
                select(Municipality)
                .where(or_(Municipality.amt_id == municipality.id, Municipality.kreis_id == municipality.id))
                .order_by(Municipality.name, Municipality.key)
            ).scalars()
        )
    memberships = list(
        db.session.execute(
            select(Membership)
            .where(Membership.municipality_id == municipality.id)
            .order_by(Membership.joined_on)
        ).scalars()
    )
    # Staff and auditors have the ALL scope; the central filter still applies.
    contacts = list(
        db.session.execute(
            select(MunicipalityContact)
            .where(MunicipalityContact.municipality_id == municipality.id)
            .order_by(MunicipalityContact.id)
        ).scalars()
    )
    return {
        "member_amter": [m for m in members if m.kind == MunicipalityKind.AMT],
        "member_gemeinden": [m for m in members if m.kind in LOCAL_KINDS],
        "memberships": memberships,
        "contacts": contacts,
    }


class MunicipalityContactView(SecureModelView):
    """Contacts of members: private to the tenant, so staff manage them here (auditors read)."""

    allow_create = True
    allow_edit = True
    allow_delete = True
    column_list = ("municipality", "role", "name", "email", "phone")
    column_details_list = ("municipality", *CONTACT_FORM_FIELDS, "created_at")
    column_export_list = column_details_list
    column_searchable_list = ("name", "email", "role", "municipality.name", "municipality.key")
    column_sortable_list = ("role", "name", "email", ("municipality", "municipality.name"))
    column_default_sort = "id"
    column_labels = {
        "municipality": _l("Municipality"),
        "role": _l("Role"),
        "name": _l("Name"),
        "email": _l("Email"),
        "phone": _l("Phone"),
        "address": _l("Postal address"),
        "website": _l("Website"),
        "created_at": _l("Created"),
        "municipality.name": _l("Municipality"),
        "municipality.key": _l("Official key"),
    }

    def get_one(self, id):
        return _get(MunicipalityContact, id)

    def get_query(self):
        return super().get_query().options(joinedload(MunicipalityContact.municipality))

    def create_form(self, obj=None):
        form = ContactCreateForm()
        if not form.is_submitted():  # the detail page links here with the tenant filled in
            form.municipality_key.data = request.args.get("municipality_key", "")[:9]
        return form

    def edit_form(self, obj=None):
        return ContactForm(obj=obj)

    def create_model(self, form):
        try:
            municipality = services.get_by_key(db.session, (form.municipality_key.data or "").strip())
            if municipality is None:
                raise RuleViolation(
                    _("There is no municipality with the key %(key)s.", key=form.municipality_key.data),
                    "municipality_key",
                )
            contact = MunicipalityContact(municipality=municipality)
            for field in CONTACT_FORM_FIELDS:
                setattr(contact, field, (getattr(form, field).data or "").strip())
            services.save_contact(db.session, _actor(), contact, None)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc)
            return False
        return contact

    def update_model(self, form, model):
        try:
            before = services.contact_view(model)
            for field in CONTACT_FORM_FIELDS:
                setattr(model, field, (getattr(form, field).data or "").strip())
            services.save_contact(db.session, _actor(), model, before)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc)
            return False
        return True

    def delete_model(self, model):
        services.delete_contact(db.session, _actor(), model)
        db.session.commit()
        return True

    @action("delete", _l("Delete"), _l("Delete the selected contacts?"))
    def action_delete(self, ids):
        contacts = list(
            db.session.execute(
                select(MunicipalityContact).where(MunicipalityContact.id.in_(self.selected_ids(ids)))
            ).scalars()
        )
        for contact in contacts:
            services.delete_contact(db.session, _actor(), contact)
        db.session.commit()
        flash(
            ngettext("%(num)d contact was deleted.", "%(num)d contacts were deleted.", len(contacts)),
            "success",
        )


def register(admin) -> None:
    admin.add_view(MunicipalityView(Municipality, name=_l("Municipalities"), endpoint="municipalities"))
    admin.add_view(
        MunicipalityContactView(MunicipalityContact, name=_l("Contacts"), endpoint="municipality_contacts")
    )
