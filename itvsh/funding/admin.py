"""Admin views of the funding domain: fiscal years, budget categories, allocations and the ledger.

Thin views over ``funding.ledger``: every change (a year, a category, an allocation, each booking)
is made by a ledger service, which checks the limits, books and audits; the view commits once, or
on a :class:`RuleViolation` rolls back and shows the service's message (nothing changed). Auditors
see every page and no write button, and get 403 from every write URL (``SecureModelView`` for the
standard ones, ``write_views`` for the funding actions). Nothing here deletes:
allocations are cancelled, bookings are reversed.

Every figure is a sum of bookings. A list page fetches its rows and their sums in one statement:
the page query outer-joins one grouped subquery over the bookings. The allocation list costs four
statements whatever the size of the ledger: the user, the filter options (years, categories,
Kreise and projects in one query), the count and the page with its sums. A recipient is a member,
a shared project (planned or running ones are offered; the ledger refuses others) or the
federation itself.
"""

from __future__ import annotations

import functools
import uuid
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
from sqlalchemy import String, and_, cast, func, literal_column, or_, select, union_all
from sqlalchemy.orm import aliased, defaultload, joinedload

from itvsh.auth.roles import Role
from itvsh.core.admin import SecureModelView
from itvsh.core.i18n import current_language
from itvsh.core.money import MoneyError, format_money, parse_money
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.forms import (
    AllocationCreateForm,
    AllocationForm,
    CategoryCreateForm,
    CategoryForm,
    FiscalYearCreateForm,
    FiscalYearForm,
    member_key,
    money_input,
)
from itvsh.funding.models import (
    ALLOCATION_STATUS_LABELS,
    BOOKING_KIND_LABELS,
    RECIPIENT_KIND_LABELS,
    YEAR_STATUS_LABELS,
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    RecipientKind,
    YearStatus,
)
from itvsh.projects.models import ACTIVE_STATUSES, Project
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality, MunicipalityKind

FUNDING = _l("Funding")
CLOSE_URL = "/admin/funding/close/"  # the year-end close screen (funding/dashboard.py)

# Which actions the detail page offers an allocation in each status (the ledger decides).
ACTIONS_BY_STATUS = {
    AllocationStatus.DRAFT: ("approve", "cancel"),
    AllocationStatus.APPROVED: ("disburse", "release", "cancel"),
    AllocationStatus.PARTIALLY_PAID: ("disburse", "release", "repay"),
    AllocationStatus.PAID: ("repay", "settle"),
    AllocationStatus.SETTLED: ("repay",),
    AllocationStatus.CANCELLED: (),
}
REVERSIBLE_KINDS = (
    BookingKind.COMMITMENT,
    BookingKind.DISBURSEMENT,
    BookingKind.RELEASE,
    BookingKind.REPAYMENT,
)


def _actor():
    return current_user._get_current_object()


def _money(cents) -> str:
    return "" if cents is None else format_money(int(cents), current_language())


def _id(value) -> int | None:
    """A primary key as sent in a URL or form, or None (also for "abc", or an id too large for the
    column, which PostgreSQL would refuse with an error)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def _get(model, value):
    number = _id(value)
    return db.session.get(model, number) if number is not None else None


def _get_or_404(model, value):
    row = _get(model, value)
    if row is None:
        abort(404)
    return row


def _date(text: str | None, label) -> date | None:
    """An ISO date from a form (empty: None); a wrong one is a RuleViolation naming the field."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RuleViolation(_("%(field)s: please enter a date as YYYY-MM-DD.", field=label), "date") from None


def _amount(text: str | None) -> int:
    try:
        return parse_money(text or "", current_language())
    except MoneyError as exc:
        raise RuleViolation(
            _("%(field)s: %(message)s", field=_("Amount"), message=str(exc)), "amount"
        ) from exc


def show_violation(form, exc: RuleViolation, fields: dict[str, str]) -> None:
    """The service's message at the form field it names (if the form has it), and as a flash."""
    name = fields.get(exc.field or "", exc.field)
    if name and name in form:
        field = form[name]
        field.errors = [*field.errors, exc.message]
    flash(exc.message, "error")


# --- filter options: years, categories, Kreise and projects in one query per request -----------


def filter_options() -> dict[str, list[tuple[str, str]]]:
    if "itvsh_funding_options" not in g:
        years = select(
            literal_column("'year'").label("kind"),
            cast(FiscalYear.id, String).label("value"),
            cast(FiscalYear.year, String).label("label"),
            FiscalYear.year.label("year"),
            literal_column("0").label("position"),
        )
        categories = select(
            literal_column("'category'"),
            cast(BudgetCategory.id, String),
            BudgetCategory.name,
            FiscalYear.year,
            BudgetCategory.position,
        ).join(FiscalYear, FiscalYear.id == BudgetCategory.fiscal_year_id)
        kreise = select(
            literal_column("'kreis'"),
            Municipality.key,
            Municipality.name,
            literal_column("0"),
            literal_column("0"),
        ).where(Municipality.kind == MunicipalityKind.KREIS.value)
        projects = select(
            literal_column("'project'"),
            cast(Project.id, String),
            Project.name,
            literal_column("0"),
            literal_column("0"),
        )
        rows = db.session.execute(union_all(years, categories, kreise, projects)).all()
        options: dict[str, list[tuple[str, str]]] = {"year": [], "category": [], "kreis": [], "project": []}
        order = {
            "year": lambda r: -r.year,
            "category": lambda r: (-r.year, r.position, r.label, int(r.value)),
            "kreis": lambda r: (r.label, r.value),
            "project": lambda r: (r.label.lower(), int(r.value)),
        }
        for kind in options:
            for row in sorted((r for r in rows if r.kind == kind), key=order[kind]):
                label = {
                    "year": row.label,
                    "category": f"{row.year} · {row.label}",
                    "kreis": f"{row.label} ({row.value})",
                    "project": row.label,
                }[kind]
                options[kind].append((row.value, label))
        g.itvsh_funding_options = options
    return g.itvsh_funding_options


class _LazyOptions:
    """Filter options read per request (Flask-Admin would otherwise read them once, when the view
    is built, before the database is even there)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(filter_options()[self.kind])


class IdFilter(BaseSQLAFilter):
    """Equality on an id column; the value must be a plausible id (never an error from the database)."""

    def __init__(self, column, name, options=None):
        super().__init__(column, name, options=options)

    def validate(self, value) -> bool:
        return _id(value) is not None

    def clean(self, value):
        return _id(value)

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) == value)

    def operation(self):
        return _admin_l("equals")  # Flask-Admin's own catalogue translates it


class ChoiceFilter(BaseSQLAFilter):
    """Equality on a text column with a fixed set of values (status, kind)."""

    def __init__(self, column, name, labels: dict):
        super().__init__(column, name, options=[(str(k.value), v) for k, v in labels.items()])
        self.values = {str(k.value) for k in labels}

    def validate(self, value) -> bool:
        return value in self.values

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) == value)

    def operation(self):
        return _admin_l("equals")


class MemberFilter(BaseSQLAFilter):
    """The recipient, by its official key (AGS, Amt or Kreis key)."""

    def validate(self, value) -> bool:
        return member_key(value) is not None

    def apply(self, query, value, alias=None):
        recipient = select(Municipality.id).where(Municipality.key == member_key(value)).scalar_subquery()
        return query.filter(self.get_column(alias) == recipient)

    def operation(self):
        return _admin_l("equals")


class KreisFilter(BaseSQLAFilter):
    """Recipients in one Kreis: the Kreis itself, its Ämter and its Gemeinden."""

    def __init__(self, column, name):
        super().__init__(column, name, options=_LazyOptions("kreis"))

    def validate(self, value) -> bool:
        return value.isascii() and value.isdigit() and len(value) == 5

    def apply(self, query, value, alias=None):
        kreis = aliased(Municipality)
        kreis_id = select(kreis.id).where(kreis.key == value, kreis.kind == "kreis").scalar_subquery()
        inside = select(Municipality.id).where(
            or_(Municipality.kreis_id == kreis_id, Municipality.id == kreis_id)
        )
        return query.filter(self.get_column(alias).in_(inside))

    def operation(self):
        return _admin_l("equals")


# --- sums of bookings, joined into list pages ----------------------------------------------------


@functools.cache
def booking_sums(*group: str):
    """One grouped subquery of the bookings: committed, paid and carried-in sums per ``group``."""
    columns = [getattr(Booking, name).label(name) for name in group]
    return (
        select(
            *columns,
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
            func.sum(Booking.available_delta_cents).label("carried_in"),
        )
        .group_by(*[getattr(Booking, name) for name in group])
        .subquery("booking_sums_" + "_".join(group))
    )


class _FundingView(SecureModelView):
    """Base of the funding views: funding write endpoints closed to auditors, unknown ids 404, and
    (for views with ``sums_by``) the page's sums of bookings fetched with the page."""

    sums_by: tuple[str, ...] = ()  # Booking columns matched to the model's (see _sums_on)

    def get_one(self, id):
        return _get_or_404(self.model, id)

    def _sums_on(self, sums):
        raise NotImplementedError

    def get_query(self):
        query = super().get_query()
        if self.sums_by:
            sums = booking_sums(*self.sums_by)
            query = query.outerjoin(sums, self._sums_on(sums))
        return query

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        count, query = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=False, page_size=page_size
        )
        if not self.sums_by:
            return count, (query.all() if execute else query)
        sums = booking_sums(*self.sums_by)
        rows = query.add_columns(
            func.coalesce(sums.c.committed, 0),
            func.coalesce(sums.c.paid, 0),
            func.coalesce(sums.c.carried_in, 0),
        ).all()
        figures = g.setdefault("itvsh_funding_figures", {})
        for model, committed, paid, carried_in in rows:
            figures[(self.endpoint, model.id)] = (int(committed), int(paid), int(carried_in))
        return count, [row[0] for row in rows]

    def figures(self, model) -> tuple[int, int, int]:
        """(committed, paid, carried in) of a listed row, from the page's sums."""
        return g.get("itvsh_funding_figures", {}).get((self.endpoint, model.id), (0, 0, 0))


def _figure(which: str, *, cents: bool = False):
    """A column formatter showing one of a listed row's sums (money; integer cents for exports)."""

    def formatter(view, context, model, name):
        committed, paid, carried_in = view.figures(model)
        value = {
            "committed": committed,
            "paid": paid,
            "open": committed - paid,
            "carried_in": carried_in,
            "available": getattr(model, "appropriation_cents", 0) + carried_in,
            "free": getattr(model, "appropriation_cents", 0) + carried_in - committed,
            "plan_left": getattr(model, "planned_cents", 0) - committed,
        }[which]
        return value if cents else _money(value)

    return formatter


def _cents(attribute: str):
    return lambda v, c, m, n: _money(getattr(m, attribute))


def _link(url: str, text) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


# --- fiscal years --------------------------------------------------------------------------------

YEAR_FIELDS = {"appropriation_cents": "appropriation", "year": "year", "status": "note"}


class FiscalYearView(_FundingView):
    """Fiscal years with their appropriation and figures; open, reopen (admins, with a reason)."""

    allow_create = True
    allow_edit = True
    write_views = frozenset({"open_view", "reopen_view"})
    sums_by = ("fiscal_year_id",)
    details_template = "admin/funding/year_details.html"
    column_list = ("year", "status", "appropriation", "carried_in", "available", "committed", "paid", "free")
    column_export_list = (
        "year",
        "status",
        "appropriation_cents",
        "carried_in_cents",
        "available_cents",
        "committed_cents",
        "paid_cents",
        "free_cents",
        "note",
    )
    column_sortable_list = ("year", "status", ("appropriation", FiscalYear.appropriation_cents))
    column_default_sort = ("year", True)
    column_labels = {
        "year": _l("Year"),
        "status": _l("Status"),
        "appropriation": _l("Appropriation"),
        "carried_in": _l("Carried in"),
        "available": _l("Available"),
        "committed": _l("Committed"),
        "paid": _l("Paid"),
        "free": _l("Free"),
        "note": _l("Note"),
        "appropriation_cents": _l("Appropriation (cents)"),
        "carried_in_cents": _l("Carried in (cents)"),
        "available_cents": _l("Available (cents)"),
        "committed_cents": _l("Committed (cents)"),
        "paid_cents": _l("Paid (cents)"),
        "free_cents": _l("Free (cents)"),
    }
    column_formatters = {
        "status": lambda v, c, m, n: m.status_label,
        "appropriation": _cents("appropriation_cents"),
        **{name: _figure(name) for name in ("carried_in", "available", "committed", "paid", "free")},
    }
    column_formatters_export = {
        "status": lambda v, c, m, n: m.status,
        **{
            f"{name}_cents": _figure(name, cents=True)
            for name in ("carried_in", "available", "committed", "paid", "free")
        },
    }

    def _sums_on(self, sums):
        return sums.c.fiscal_year_id == FiscalYear.id

    def create_form(self, obj=None):
        form = FiscalYearCreateForm()
        if not form.is_submitted():
            form.year.data = _next_year()
            form.appropriation.data = money_input(150_000_000)
        return form

    def edit_form(self, obj=None):
        form = FiscalYearForm(obj=obj)
        if obj is not None and not form.is_submitted():
            form.appropriation.data = money_input(obj.appropriation_cents)
        return form

    def create_model(self, form):
        try:
            year = ledger.create_fiscal_year(
                db.session,
                _actor(),
                form.year.data,
                form.appropriation.cents,
                default_categories=bool(form.default_categories.data),
                note=(form.note.data or "").strip(),
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, YEAR_FIELDS)
            return False
        return year

    def update_model(self, form, model):
        try:
            ledger.update_fiscal_year(
                db.session,
                _actor(),
                model,
                appropriation_cents=form.appropriation.cents,
                note=(form.note.data or "").strip(),
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, YEAR_FIELDS)
            return False
        return True

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

    @expose("/details/")
    def details_view(self):
        year = self.get_one(request.args.get("id"))
        rows = db.session.execute(
            select(
                BudgetCategory,
                func.coalesce(func.sum(Booking.committed_delta_cents), 0),
                func.coalesce(func.sum(Booking.paid_delta_cents), 0),
            )
            .outerjoin(
                Booking,
                and_(
                    Booking.category_id == BudgetCategory.id,
                    Booking.fiscal_year_id == BudgetCategory.fiscal_year_id,
                ),
            )
            .where(BudgetCategory.fiscal_year_id == year.id)
            .group_by(BudgetCategory.id)
            .order_by(BudgetCategory.position, BudgetCategory.id)
        ).all()
        categories = [(category, int(committed), int(paid)) for category, committed, paid in rows]
        return self.render(
            self.details_template,
            model=year,
            figures=ledger.year_figures(db.session, year),
            categories=categories,
            planned_cents=sum(category.planned_cents for category, _c, _p in categories),
            return_url=get_redirect_target() or self.get_url(".index_view"),
            close_url=f"{CLOSE_URL}?year={year.id}",
            is_admin=current_user.role == Role.ADMIN,
            status=YearStatus,
        )

    @expose("/open/", methods=("POST",))
    def open_view(self):
        year = self.get_one(request.form.get("id"))
        try:
            ledger.open_year(db.session, _actor(), year)
            db.session.commit()
            flash(_("The fiscal year %(year)s is open for bookings.", year=year.year), "success")
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(self.get_url(".details_view", id=year.id))

    @expose("/reopen/", methods=("POST",))
    def reopen_view(self):
        if current_user.role != Role.ADMIN:
            abort(403)
        year = self.get_one(request.form.get("id"))
        try:
            ledger.reopen_year(db.session, _actor(), year, (request.form.get("reason") or "")[:2000])
            db.session.commit()
            flash(_("The fiscal year %(year)s was reopened.", year=year.year), "success")
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(self.get_url(".details_view", id=year.id))


def _next_year() -> int:
    latest = db.session.execute(select(func.max(FiscalYear.year))).scalar_one()
    return (latest + 1) if latest else date.today().year


def _year_choices(*, include_closed: bool = False) -> list[tuple[str, str]]:
    query = select(FiscalYear.id, FiscalYear.year, FiscalYear.status).order_by(FiscalYear.year.desc())
    if not include_closed:
        query = query.where(FiscalYear.status != YearStatus.CLOSED.value)
    return [
        (str(id_), f"{year} ({YEAR_STATUS_LABELS.get(status, status)})")
        for id_, year, status in db.session.execute(query)
    ]


# --- budget categories ---------------------------------------------------------------------------

CATEGORY_FIELDS = {"planned_cents": "planned", "fiscal_year": "fiscal_year", "code": "code", "name": "name"}


class BudgetCategoryView(_FundingView):
    """A year's budget categories with plan, committed and paid; plans never exceed the appropriation."""

    allow_create = True
    allow_edit = True
    can_view_details = False
    sums_by = ("category_id", "fiscal_year_id")
    column_list = ("fiscal_year", "position", "code", "name", "planned", "committed", "paid", "plan_left")
    column_export_list = (
        "fiscal_year",
        "position",
        "code",
        "name",
        "planned_cents",
        "committed_cents",
        "paid_cents",
        "plan_left_cents",
    )
    column_sortable_list = (
        ("fiscal_year", "fiscal_year.year"),
        "position",
        "code",
        "name",
        ("planned", BudgetCategory.planned_cents),
    )
    column_default_sort = [("fiscal_year.year", True), ("position", False), ("id", False)]
    column_searchable_list = ("code", "name")
    column_filters = (
        IdFilter(BudgetCategory.fiscal_year_id, _l("Fiscal year"), options=_LazyOptions("year")),
    )
    filter_url_names = ("year",)
    column_labels = {
        "fiscal_year": _l("Fiscal year"),
        "position": _l("Position"),
        "code": _l("Code"),
        "name": _l("Name"),
        "planned": _l("Planned"),
        "committed": _l("Committed"),
        "paid": _l("Paid"),
        "plan_left": _l("Left in the plan"),
        "planned_cents": _l("Planned (cents)"),
        "committed_cents": _l("Committed (cents)"),
        "paid_cents": _l("Paid (cents)"),
        "plan_left_cents": _l("Left in the plan (cents)"),
    }
    column_formatters = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        "planned": _cents("planned_cents"),
        **{name: _figure(name) for name in ("committed", "paid", "plan_left")},
    }
    column_formatters_export = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        **{f"{name}_cents": _figure(name, cents=True) for name in ("committed", "paid", "plan_left")},
    }

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def _sums_on(self, sums):
        return and_(
            sums.c.category_id == BudgetCategory.id, sums.c.fiscal_year_id == BudgetCategory.fiscal_year_id
        )

    def get_query(self):
        return super().get_query().options(joinedload(BudgetCategory.fiscal_year).load_only(FiscalYear.year))

    def create_form(self, obj=None):
        form = CategoryCreateForm()
        form.fiscal_year.choices = _year_choices()
        if not form.is_submitted():
            wanted = request.args.get("year", "")
            if any(value == wanted for value, _label in form.fiscal_year.choices):
                form.fiscal_year.data = wanted
        return form

    def edit_form(self, obj=None):
        form = CategoryForm(obj=obj)
        if obj is not None and not form.is_submitted():
            form.planned.data = money_input(obj.planned_cents)
        return form

    def create_model(self, form):
        try:
            year = _get(FiscalYear, form.fiscal_year.data)
            if year is None:
                raise RuleViolation(_("Please choose a fiscal year."), "fiscal_year")
            category = ledger.save_category(
                db.session,
                _actor(),
                None,
                year,
                code=form.code.data,
                name=form.name.data,
                planned_cents=form.planned.cents,
                position=form.position.data,
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, CATEGORY_FIELDS)
            return False
        return category

    def update_model(self, form, model):
        try:
            ledger.save_category(
                db.session,
                _actor(),
                model,
                model.fiscal_year,
                code=form.code.data,
                name=form.name.data,
                planned_cents=form.planned.cents,
                position=form.position.data,
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, CATEGORY_FIELDS)
            return False
        return True


# --- allocations ---------------------------------------------------------------------------------

ALLOCATION_FIELDS = {
    "amount_cents": "amount",
    "category": "category_id",
    "fiscal_year": "category_id",
    "fiscal_year_id": "category_id",
    "municipality": "member",
    "municipality_id": "member",
    "project": "project",
    "project_id": "project",
}
ACTION_VIEWS = ("approve", "disburse", "release", "repay", "cancel", "settle", "reverse")


def _recipient_cell(view, context, model, name):
    if model.recipient_kind == RecipientKind.PROJECT:
        return str(model.project) if model.project is not None else ""
    if model.recipient_kind == RecipientKind.FEDERATION or model.municipality is None:
        return str(RECIPIENT_KIND_LABELS[RecipientKind.FEDERATION])
    return str(model.municipality)


def _kreis_cell(view, context, model, name):
    municipality = model.municipality
    if municipality is None:
        return ""
    if municipality.kind == MunicipalityKind.KREIS:
        return municipality.name
    return municipality.kreis.name if municipality.kreis is not None else ""


class AllocationView(_FundingView):
    """Allocations (Zuwendungen): the list with their figures, create and edit (draft fields stay
    open until approval), and a detail page with the bookings and the lifecycle actions."""

    allow_create = True
    allow_edit = True
    write_views = frozenset(f"{name}_view" for name in ACTION_VIEWS)
    sums_by = ("allocation_id",)
    details_template = "admin/funding/allocation_details.html"
    create_template = "admin/funding/allocation_create.html"
    edit_template = "admin/funding/allocation_edit.html"
    column_list = (
        "id",
        "fiscal_year",
        "category",
        "recipient",
        "kreis",
        "purpose",
        "file_reference",
        "status",
        "amount",
        "committed",
        "paid",
        "open",
    )
    column_export_list = (
        "id",
        "fiscal_year",
        "current_year",
        "category",
        "recipient_kind",
        "recipient_key",
        "recipient",
        "kreis",
        "purpose",
        "file_reference",
        "status",
        "amount_cents",
        "committed_cents",
        "paid_cents",
        "open_cents",
        "decision_date",
        "proof_of_use_due",
        "proof_of_use_received",
    )
    column_sortable_list = (
        "id",
        ("fiscal_year", Allocation.fiscal_year_id),
        "purpose",
        "file_reference",
        "status",
        ("amount", Allocation.amount_cents),
    )
    column_default_sort = ("id", True)
    column_searchable_list = ("purpose", "file_reference", "municipality.name", "municipality.key")
    column_filters = (
        IdFilter(Allocation.fiscal_year_id, _l("Fiscal year"), options=_LazyOptions("year")),
        IdFilter(Allocation.category_id, _l("Budget category"), options=_LazyOptions("category")),
        ChoiceFilter(Allocation.status, _l("Status"), ALLOCATION_STATUS_LABELS),
        ChoiceFilter(Allocation.recipient_kind, _l("Kind of recipient"), RECIPIENT_KIND_LABELS),
        KreisFilter(Allocation.municipality_id, _l("Kreis of the recipient")),
        MemberFilter(Allocation.municipality_id, _l("Member (official key)")),
        IdFilter(Allocation.distribution_id, _l("Distribution (number)")),
        IdFilter(Allocation.project_id, _l("Project"), options=_LazyOptions("project")),
    )
    # Stable query parameters (flt0_year=3), whatever the language of the filter names.
    filter_url_names = (
        "year",
        "category",
        "status",
        "recipient_kind",
        "kreis",
        "member",
        "distribution",
        "project",
    )
    column_labels = {
        "id": _l("No."),
        "fiscal_year": _l("Year"),
        "current_year": _l("Money now in year"),
        "category": _l("Budget category"),
        "recipient": _l("Recipient"),
        "recipient_kind": _l("Kind of recipient"),
        "recipient_key": _l("Official key"),
        "kreis": _l("Kreis"),
        "purpose": _l("Purpose"),
        "file_reference": _l("File reference"),
        "status": _l("Status"),
        "amount": _l("Amount"),
        "committed": _l("Committed"),
        "paid": _l("Paid"),
        "open": _l("Open"),
        "amount_cents": _l("Amount (cents)"),
        "committed_cents": _l("Committed (cents)"),
        "paid_cents": _l("Paid (cents)"),
        "open_cents": _l("Open (cents)"),
        "decision_date": _l("Decision date"),
        "proof_of_use_due": _l("Proof of use due"),
        "proof_of_use_received": _l("Proof of use received"),
        "municipality.name": _l("Recipient"),
        "municipality.key": _l("Official key"),
    }
    column_formatters = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        "category": lambda v, c, m, n: m.category.name,
        "recipient": _recipient_cell,
        "kreis": _kreis_cell,
        "status": lambda v, c, m, n: m.status_label,
        "amount": _cents("amount_cents"),
        **{name: _figure(name) for name in ("committed", "paid", "open")},
    }
    column_formatters_export = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        "current_year": lambda v, c, m, n: m.current_year.year,
        "category": lambda v, c, m, n: m.category.name,
        "recipient_key": lambda v, c, m, n: m.municipality.key if m.municipality else "",
        "recipient": _recipient_cell,
        "kreis": _kreis_cell,
        **{f"{name}_cents": _figure(name, cents=True) for name in ("committed", "paid", "open")},
    }

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def _sums_on(self, sums):
        return sums.c.allocation_id == Allocation.id

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                joinedload(Allocation.fiscal_year).load_only(FiscalYear.year, FiscalYear.status),
                joinedload(Allocation.current_year).load_only(FiscalYear.year, FiscalYear.status),
                joinedload(Allocation.category).load_only(BudgetCategory.name, BudgetCategory.fiscal_year_id),
                joinedload(Allocation.municipality)
                .load_only(Municipality.key, Municipality.name, Municipality.kind, Municipality.kreis_id)
                .joinedload(Municipality.kreis)
                .load_only(Municipality.key, Municipality.name),
                defaultload(Allocation.municipality).lazyload(Municipality.amt),
                joinedload(Allocation.project).load_only(Project.name),
            )
        )

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

    def _category_choices(self, year_id: int | None = None) -> list[tuple[str, str]]:
        query = (
            select(BudgetCategory.id, BudgetCategory.name, FiscalYear.year)
            .join(FiscalYear, FiscalYear.id == BudgetCategory.fiscal_year_id)
            .order_by(FiscalYear.year.desc(), BudgetCategory.position, BudgetCategory.id)
        )
        if year_id is not None:
            query = query.where(BudgetCategory.fiscal_year_id == year_id)
        else:
            query = query.where(FiscalYear.status != YearStatus.CLOSED.value)
        return [("", "—")] + [(str(id_), f"{year} · {name}") for id_, name, year in db.session.execute(query)]

    def _project_choices(self, current: int | None = None) -> list[tuple[str, str]]:
        """Planned and running projects (and the one a draft names already) for the project field."""
        active = Project.status.in_([s.value for s in ACTIVE_STATUSES])
        query = select(Project.id, Project.name).order_by(Project.name, Project.id)
        query = query.where(active | (Project.id == current) if current else active)
        return [("", "—")] + [(str(id_), name) for id_, name in db.session.execute(query)]

    def create_form(self, obj=None):
        form = AllocationCreateForm()
        form.category_id.choices = self._category_choices()
        form.project.choices = self._project_choices()
        return form

    def edit_form(self, obj=None):
        form = AllocationForm(obj=obj)
        if obj.status != AllocationStatus.DRAFT:
            form.lock()
        else:
            form.category_id.choices = self._category_choices(obj.fiscal_year_id)
            form.project.choices = self._project_choices(obj.project_id)
            if not form.is_submitted() or "project" not in request.form:
                form.project.data = str(obj.project_id or "")
        if not form.is_submitted() and "member" in form:
            form.member.data = str(obj.municipality) if obj.municipality else ""
            form.amount.data = money_input(obj.amount_cents)
        return form

    def _project(self, form) -> Project | None:
        """The project chosen for a shared-project recipient (None when none was chosen: the
        ledger names what is missing)."""
        if form.recipient_kind.data != RecipientKind.PROJECT or not form.project_id():
            return None
        project = _get(Project, form.project_id())
        if project is None:
            raise RuleViolation(_("There is no such project."), "project")
        return project

    def _recipient(self, form) -> tuple[str, Municipality | None]:
        kind, key = form.recipient()
        text = form.member_text()
        if kind != RecipientKind.MEMBER or not text:
            return kind, None
        municipality = tenant_services.get_by_key(db.session, key) if key else None
        if municipality is None and key is None:
            named = (
                db.session.execute(select(Municipality).where(func.lower(Municipality.name) == text.lower()))
                .scalars()
                .all()
            )
            municipality = named[0] if len(named) == 1 else None
        if municipality is None:
            raise RuleViolation(
                _("There is no municipality with the key %(key)s.", key=key)
                if key
                else _("Please enter the official key of the member or choose it from the list."),
                "municipality",
            )
        return kind, municipality

    def _common_changes(self, form) -> dict:
        changes = {
            "purpose": form.purpose.data or "",
            "decision_date": form.decision_date.data,
            "file_reference": form.file_reference.data or "",
            "proof_of_use_due": form.proof_of_use_due.data,
            "note": (form.note.data or "").strip(),
        }
        if "proof_of_use_received" in form:
            changes["proof_of_use_received"] = form.proof_of_use_received.data
        return changes

    def create_model(self, form):
        try:
            category = _get(BudgetCategory, form.category_id.data)
            if category is None:
                raise RuleViolation(_("Please choose a budget category."), "category")
            kind, municipality = self._recipient(form)
            project = self._project(form)
            changes = self._common_changes(form)
            allocation = ledger.create_allocation(
                db.session,
                _actor(),
                fiscal_year=category.fiscal_year,
                category=category,
                recipient_kind=kind,
                municipality=municipality,
                project=project,
                purpose=changes["purpose"],
                amount_cents=form.amount.cents,
                decision_date=changes["decision_date"],
                file_reference=changes["file_reference"],
                proof_of_use_due=changes["proof_of_use_due"],
                note=changes["note"],
                idempotency_key=(form.idempotency_key.data or "").strip() or None,
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, ALLOCATION_FIELDS)
            return False
        return allocation

    def update_model(self, form, model):
        try:
            changes = self._common_changes(form)
            if "category_id" in form:
                category = _get(BudgetCategory, form.category_id.data)
                if category is None:
                    raise RuleViolation(_("Please choose a budget category."), "category")
                kind, municipality = self._recipient(form)
                project = self._project(form)
                changes.update(
                    category_id=category.id,
                    recipient_kind=kind,
                    municipality_id=municipality.id if municipality else None,
                    project_id=project.id if project else None,
                    amount_cents=form.amount.cents,
                )
            ledger.update_allocation(db.session, _actor(), model, **changes)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            show_violation(form, exc, ALLOCATION_FIELDS)
            return False
        return True

    def get_save_return_url(self, model, is_created=False):
        return self.get_url(".details_view", id=model.id)

    # --- the detail page ---------------------------------------------------------------------------

    @expose("/details/")
    def details_view(self):
        allocation = self.get_one(request.args.get("id"))
        bookings = list(
            db.session.execute(
                select(Booking)
                .where(Booking.allocation_id == allocation.id)
                .options(joinedload(Booking.fiscal_year).load_only(FiscalYear.year, FiscalYear.status))
                .order_by(Booking.id)
            ).scalars()
        )
        reversed_by = {b.reverses_id: b for b in bookings if b.reverses_id is not None}
        active = allocation.status in ledger.ACTIVE
        reversible = {
            b.id
            for b in bookings
            if active
            and b.kind in REVERSIBLE_KINDS
            and b.id not in reversed_by
            and b.fiscal_year.status == YearStatus.OPEN
        }
        return self.render(
            self.details_template,
            model=allocation,
            figures=ledger.allocation_figures(db.session, allocation),
            bookings=bookings,
            reversed_by=reversed_by,
            reversible=reversible,
            actions=() if self.read_only else ACTIONS_BY_STATUS.get(AllocationStatus(allocation.status), ()),
            new_key=lambda: str(uuid.uuid4()),
            today=date.today(),
            return_url=get_redirect_target() or self.get_url(".index_view"),
        )

    def _act(self, allocation: Allocation, do) -> object:
        """Run one ledger action on ``allocation``: commit and flash its success, or roll back and
        flash the refusal (nothing changed). Back to the detail page either way."""
        try:
            message = do()
            db.session.commit()
            flash(message, "success")
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(self.get_url(".details_view", id=allocation.id))

    def _posted(self) -> tuple[Allocation, dict]:
        form = request.form
        allocation = self.get_one(form.get("id"))
        key = (form.get("idempotency_key") or "").strip() or None
        return allocation, {"idempotency_key": key}

    @expose("/approve/", methods=("POST",))
    def approve_view(self):
        allocation, kw = self._posted()

        def do():
            on = _date(request.form.get("on"), _("Date"))
            ledger.approve(db.session, _actor(), allocation, on=on, **kw)
            return _(
                "The allocation was approved; %(amount)s are committed.",
                amount=_money(allocation.amount_cents),
            )

        return self._act(allocation, do)

    def _money_action(self, service, done):
        """Disburse, release or repay: amount, date and note from the form; ``done(amount)`` is the
        success message."""
        allocation, kw = self._posted()

        def do():
            amount = _amount(request.form.get("amount"))
            on = _date(request.form.get("on"), _("Date"))
            note = (request.form.get("note") or "").strip()
            service(db.session, _actor(), allocation, amount, on=on, note=note, **kw)
            return done(_money(amount))

        return self._act(allocation, do)

    @expose("/disburse/", methods=("POST",))
    def disburse_view(self):
        return self._money_action(
            ledger.disburse, lambda amount: _("A disbursement of %(amount)s was booked.", amount=amount)
        )

    @expose("/release/", methods=("POST",))
    def release_view(self):
        return self._money_action(
            ledger.release, lambda amount: _("A release of %(amount)s was booked.", amount=amount)
        )

    @expose("/repay/", methods=("POST",))
    def repay_view(self):
        return self._money_action(
            ledger.repay, lambda amount: _("A repayment of %(amount)s was booked.", amount=amount)
        )

    @expose("/cancel/", methods=("POST",))
    def cancel_view(self):
        allocation, kw = self._posted()

        def do():
            reason = (request.form.get("reason") or "").strip()[:500]
            if not reason:
                raise RuleViolation(_("Please give the reason for the cancellation."), "reason")
            ledger.cancel(db.session, _actor(), allocation, reason=reason, **kw)
            return _("The allocation was cancelled.")

        return self._act(allocation, do)

    @expose("/settle/", methods=("POST",))
    def settle_view(self):
        allocation, _kw = self._posted()

        def do():
            received = _date(request.form.get("received_on"), _("Proof of use received"))
            ledger.settle(db.session, _actor(), allocation, received_on=received)
            return _("The proof of use was recorded; the allocation is settled.")

        return self._act(allocation, do)

    @expose("/reverse/", methods=("POST",))
    def reverse_view(self):
        booking = _get_or_404(Booking, request.form.get("booking_id"))
        allocation = booking.allocation
        key = (request.form.get("idempotency_key") or "").strip() or None

        def do():
            note = (request.form.get("note") or "").strip()
            reversal = ledger.reverse(db.session, _actor(), booking, note=note, idempotency_key=key)
            return _("Booking %(id)s was reversed by booking %(by)s.", id=booking.id, by=reversal.id)

        return self._act(allocation, do)


# --- the ledger ----------------------------------------------------------------------------------


def _allocation_cell(view, context, model, name):
    allocation = model.allocation
    return _link(
        view.get_url("funding_allocations.details_view", id=allocation.id),
        f"{allocation.id} · {allocation.purpose}",
    )


def _booking_recipient(view, context, model, name):
    return _recipient_cell(view, context, model.allocation, name)


class BookingView(_FundingView):
    """The ledger, read-only: bookings are made by the ledger services only. Filters by year, kind,
    allocation, recipient and category; CSV/XLSX export (audited, formulas neutralised)."""

    can_view_details = False
    column_list = (
        "id",
        "booked_on",
        "fiscal_year",
        "kind",
        "amount",
        "committed_delta",
        "paid_delta",
        "allocation",
        "recipient",
        "category",
        "reverses_id",
        "booked_by",
        "note",
    )
    column_export_list = (
        "id",
        "booked_on",
        "fiscal_year",
        "kind",
        "amount_cents",
        "committed_delta_cents",
        "paid_delta_cents",
        "available_delta_cents",
        "allocation_id",
        "purpose",
        "recipient_key",
        "recipient",
        "category",
        "reverses_id",
        "carried_from_id",
        "booked_by",
        "note",
        "created_at",
    )
    column_sortable_list = (
        "id",
        "booked_on",
        ("fiscal_year", Booking.fiscal_year_id),
        "kind",
        ("amount", Booking.amount_cents),
    )
    column_default_sort = ("id", True)
    column_filters = (
        IdFilter(Booking.fiscal_year_id, _l("Fiscal year"), options=_LazyOptions("year")),
        ChoiceFilter(Booking.kind, _l("Kind"), BOOKING_KIND_LABELS),
        IdFilter(Booking.allocation_id, _l("Allocation (number)")),
        MemberFilter(Booking.municipality_id, _l("Recipient (official key)")),
        IdFilter(Booking.category_id, _l("Budget category"), options=_LazyOptions("category")),
    )
    filter_url_names = ("year", "kind", "allocation", "member", "category")
    column_labels = {
        "id": _l("No."),
        "booked_on": _l("Booked on"),
        "fiscal_year": _l("Year"),
        "kind": _l("Kind"),
        "amount": _l("Amount"),
        "committed_delta": _l("Effect on committed"),
        "paid_delta": _l("Effect on paid"),
        "allocation": _l("Allocation"),
        "allocation_id": _l("Allocation"),
        "purpose": _l("Purpose"),
        "recipient": _l("Recipient"),
        "recipient_key": _l("Official key"),
        "category": _l("Budget category"),
        "reverses_id": _l("Reverses booking"),
        "carried_from_id": _l("Carried from booking"),
        "booked_by": _l("Booked by"),
        "note": _l("Note"),
        "created_at": _l("Recorded at"),
        "amount_cents": _l("Amount (cents)"),
        "committed_delta_cents": _l("Effect on committed (cents)"),
        "paid_delta_cents": _l("Effect on paid (cents)"),
        "available_delta_cents": _l("Effect on available (cents)"),
    }
    column_formatters = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        "kind": lambda v, c, m, n: m.kind_label,
        "amount": _cents("amount_cents"),
        "committed_delta": _cents("committed_delta_cents"),
        "paid_delta": _cents("paid_delta_cents"),
        "allocation": _allocation_cell,
        "recipient": _booking_recipient,
        "category": lambda v, c, m, n: m.category.name,
        "reverses_id": lambda v, c, m, n: m.reverses_id or "",
    }
    column_formatters_export = {
        "fiscal_year": lambda v, c, m, n: m.fiscal_year.year,
        "purpose": lambda v, c, m, n: m.allocation.purpose,
        "recipient_key": lambda v, c, m, n: (
            m.allocation.municipality.key if m.allocation.municipality else ""
        ),
        "recipient": _booking_recipient,
        "category": lambda v, c, m, n: m.category.name,
    }

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                joinedload(Booking.fiscal_year).load_only(FiscalYear.year),
                joinedload(Booking.category).load_only(BudgetCategory.name),
                joinedload(Booking.allocation)
                .load_only(
                    Allocation.purpose,
                    Allocation.recipient_kind,
                    Allocation.municipality_id,
                    Allocation.project_id,
                )
                .joinedload(Allocation.municipality)
                .load_only(Municipality.key, Municipality.name),
                defaultload(Booking.allocation).joinedload(Allocation.project).load_only(Project.name),
                defaultload(Booking.allocation)
                .defaultload(Allocation.municipality)
                .lazyload(Municipality.kreis),
                defaultload(Booking.allocation)
                .defaultload(Allocation.municipality)
                .lazyload(Municipality.amt),
            )
        )


def register(admin) -> None:
    """Add the funding model views under the "Funding" menu."""
    views = (
        (FiscalYearView, FiscalYear, _l("Fiscal years"), "funding_years", "years"),
        (BudgetCategoryView, BudgetCategory, _l("Budget categories"), "funding_categories", "categories"),
        (AllocationView, Allocation, _l("Allocations"), "funding_allocations", "allocations"),
        (BookingView, Booking, _l("Ledger"), "funding_bookings", "bookings"),
    )
    for view, model, name, endpoint, path in views:
        admin.add_view(
            view(model, name=name, category=FUNDING, endpoint=endpoint, url=f"/admin/funding/{path}")
        )
