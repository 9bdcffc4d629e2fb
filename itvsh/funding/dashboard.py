"""Funding screens beyond model lists: the per-year dashboard, the multi-year overview, the
distribution preview and the year-end close, plus the funding section of a municipality's detail
page.

Every figure shown is a sum of bookings (``SUM(... _delta_cents)``, grouped by year, category or
Kreis), read in a fixed number of statements whatever the number of bookings: the dashboard needs
four (years, year totals, categories, Kreise) besides the logged-in user. Changes go through the
services in ``ledger.py`` and ``distribution.py``; the views parse, call, commit once or roll back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import Admin, expose
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import case, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from itvsh.auth.roles import FEDERATION
from itvsh.core.admin import SecureBaseView
from itvsh.core.i18n import current_language
from itvsh.core.money import MoneyError, parse_money
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding import charts, distribution, ledger
from itvsh.funding.models import (
    ALLOCATION_STATUS_LABELS,
    BOOKING_KIND_LABELS,
    DISTRIBUTION_METHOD_LABELS,
    DISTRIBUTION_SELECTION_LABELS,
    YEAR_STATUS_LABELS,
    Allocation,
    Booking,
    BudgetCategory,
    DistributionMethod,
    DistributionSelection,
    FiscalYear,
    YearStatus,
)
from itvsh.tenants.models import Municipality, MunicipalityKind

CATEGORY = _l("Funding")


def _actor():
    return current_user._get_current_object()


def _id(value) -> int | None:
    """An id as sent in a URL or form, or None (also for text or numbers too large for the column)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def _sum(column):
    return func.coalesce(func.sum(column), 0)


# --- figures: each a sum of bookings ------------------------------------------------------------


@dataclass(frozen=True)
class CategoryRow:
    """Plan against ledger sums for one category in the chosen year; a category of an earlier year
    appears when money of its allocations was carried into this year."""

    name: str
    owner_year: int
    planned_cents: int | None  # None for carried-in money: its plan belongs to the earlier year
    carried_in_cents: int
    committed_cents: int
    paid_cents: int

    @property
    def carried(self) -> bool:
        return self.planned_cents is None

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents

    @property
    def left_cents(self) -> int | None:
        return None if self.planned_cents is None else self.planned_cents - self.committed_cents


@dataclass(frozen=True)
class KreisRow:
    """A Kreis (its Ämter and Gemeinden count to it), a kreisfreie Stadt, or the federation's own
    allocations (``key`` None)."""

    key: str | None
    name: str
    committed_cents: int
    paid_cents: int

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents


@dataclass(frozen=True)
class YearRow:
    year: int
    id: int
    status: str
    figures: ledger.YearFigures

    @property
    def status_label(self) -> str:
        return str(YEAR_STATUS_LABELS.get(self.status, self.status))


def category_rows(session: Session, year: FiscalYear) -> list[CategoryRow]:
    """The year's categories and any earlier ones with bookings in it, with their sums (one query)."""
    sums = (
        select(
            Booking.category_id,
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
            func.sum(Booking.available_delta_cents).label("carried_in"),
        )
        .where(Booking.fiscal_year_id == year.id)
        .group_by(Booking.category_id)
        .subquery()
    )
    owner = aliased(FiscalYear)
    rows = session.execute(
        select(
            BudgetCategory.name,
            BudgetCategory.fiscal_year_id,
            BudgetCategory.planned_cents,
            owner.year,
            func.coalesce(sums.c.carried_in, 0),
            func.coalesce(sums.c.committed, 0),
            func.coalesce(sums.c.paid, 0),
        )
        .join(owner, owner.id == BudgetCategory.fiscal_year_id)
        .outerjoin(sums, sums.c.category_id == BudgetCategory.id)
        .where(or_(BudgetCategory.fiscal_year_id == year.id, sums.c.category_id.is_not(None)))
        .order_by(owner.year.desc(), BudgetCategory.position, BudgetCategory.id)
    ).all()
    return [
        CategoryRow(
            name=name,
            owner_year=owner_year,
            planned_cents=int(planned) if year_id == year.id else None,
            carried_in_cents=int(carried_in),
            committed_cents=int(committed),
            paid_cents=int(paid),
        )
        for name, year_id, planned, owner_year, carried_in, committed, paid in rows
    ]


def kreis_rows(session: Session, year: FiscalYear) -> list[KreisRow]:
    """Committed and paid per Kreis (every Kreis and kreisfreie Stadt, also without bookings), and
    the federation's own allocations as a last row if it has bookings (one query)."""
    recipient = aliased(Municipality)
    kreis = aliased(Municipality)
    own_kinds = [MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value]
    # A member counts to its Kreis; a Kreis or kreisfreie Stadt is its own; the federation is NULL.
    kreis_of = case(
        (recipient.kind.in_(own_kinds), recipient.id),
        else_=func.coalesce(recipient.kreis_id, recipient.id),
    )
    sums = (
        select(
            kreis_of.label("kreis_id"),
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
        )
        .select_from(Booking)
        .outerjoin(recipient, recipient.id == Booking.municipality_id)
        .where(Booking.fiscal_year_id == year.id)
        .group_by(kreis_of)
        .cte("kreis_sums")
    )
    kreise = (
        select(
            literal(0).label("federation"),
            kreis.key,
            kreis.name,
            func.coalesce(sums.c.committed, 0).label("committed"),
            func.coalesce(sums.c.paid, 0).label("paid"),
        )
        .select_from(kreis)
        .outerjoin(sums, sums.c.kreis_id == kreis.id)
        .where(or_(kreis.kind.in_(own_kinds), sums.c.kreis_id.is_not(None)))
    )
    federation = select(literal(1).label("federation"), null(), null(), sums.c.committed, sums.c.paid).where(
        sums.c.kreis_id.is_(None)
    )
    both = union_all(kreise, federation).subquery()
    rows = session.execute(select(both).order_by(both.c.federation, both.c.key)).all()
    own = _("The federation itself")
    return [
        KreisRow(None if is_federation else key, own if is_federation else name, int(c), int(p))
        for is_federation, key, name, c, p in rows
    ]


def year_rows(session: Session) -> list[YearRow]:
    """Every fiscal year with its sums (one query)."""
    rows = session.execute(
        select(
            FiscalYear.id,
            FiscalYear.year,
            FiscalYear.status,
            FiscalYear.appropriation_cents,
            _sum(Booking.available_delta_cents),
            _sum(Booking.committed_delta_cents),
            _sum(Booking.paid_delta_cents),
        )
        .outerjoin(Booking, Booking.fiscal_year_id == FiscalYear.id)
        .group_by(FiscalYear.id, FiscalYear.year, FiscalYear.status, FiscalYear.appropriation_cents)
        .order_by(FiscalYear.year)
    ).all()
    return [
        YearRow(year, id_, status, ledger.YearFigures(int(a), int(carried), int(c), int(p)))
        for id_, year, status, a, carried, c, p in rows
    ]


def municipality_funding(session: Session, municipality: Municipality) -> dict:
    """A member's own allocations with their sums (one grouped query) and its payments, i.e. the
    bookings that changed what was paid (one query), for its admin detail page."""
    allocations = session.execute(
        select(
            Allocation.id,
            FiscalYear.year,
            Allocation.purpose,
            Allocation.status,
            Allocation.amount_cents,
            _sum(Booking.committed_delta_cents),
            _sum(Booking.paid_delta_cents),
        )
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .outerjoin(Booking, Booking.allocation_id == Allocation.id)
        .where(Allocation.municipality_id == municipality.id)
        .group_by(
            Allocation.id, FiscalYear.year, Allocation.purpose, Allocation.status, Allocation.amount_cents
        )
        .order_by(FiscalYear.year.desc(), Allocation.id)
    ).all()
    payments = session.execute(
        select(Booking.booked_on, FiscalYear.year, Allocation.purpose, Booking.kind, Booking.paid_delta_cents)
        .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .where(Booking.municipality_id == municipality.id, Booking.paid_delta_cents != 0)
        .order_by(Booking.booked_on.desc(), Booking.id.desc())
    ).all()
    funding_allocations = [
        {
            "id": id_,
            "year": year,
            "purpose": purpose,
            "status": str(ALLOCATION_STATUS_LABELS.get(status, status)),
            "amount_cents": int(amount),
            "committed_cents": int(committed),
            "paid_cents": int(paid),
        }
        for id_, year, purpose, status, amount, committed, paid in allocations
    ]
    funding_payments = [
        {
            "booked_on": booked_on,
            "year": year,
            "purpose": purpose,
            "kind": str(BOOKING_KIND_LABELS.get(kind, kind)),
            "paid_cents": int(paid),
        }
        for booked_on, year, purpose, kind, paid in payments
    ]
    return {
        "funding_allocations": funding_allocations,
        "funding_payments": funding_payments,
        "funding_totals": {
            "amount_cents": sum(row["amount_cents"] for row in funding_allocations),
            "committed_cents": sum(row["committed_cents"] for row in funding_allocations),
            "paid_cents": sum(row["paid_cents"] for row in funding_allocations),
        },
    }


# --- the dashboard and the overview -------------------------------------------------------------


def _series(*keys: str) -> list[charts.Series]:
    labels = {
        "plan": _("Plan"),
        "available": _("Available"),
        "committed": _("Committed"),
        "paid": _("Paid"),
    }
    return [charts.Series(key, labels[key]) for key in keys]


def _category_label(row: CategoryRow) -> str:
    if row.carried:
        return _("%(name)s (carried in from %(year)s)", name=row.name, year=row.owner_year)
    return row.name


class FundingView(SecureBaseView):
    """Shared by the funding pages: their stylesheet (charts)."""

    @property
    def extra_css(self) -> list[str]:
        return [url_for("static", filename="css/funding.css")]


class FundingDashboardView(FundingView):
    @expose("/")
    def index(self):
        years = list(db.session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars())
        asked = request.args.get("year")
        if asked:
            year = next((y for y in years if str(y.year) == asked.strip()), None)
            if year is None:
                abort(404)
        else:
            this_year = date.today().year
            year = next((y for y in years if y.year == this_year), years[-1] if years else None)
        context = {"years": years, "year": year}
        if year is not None:
            locale = current_language()
            categories = category_rows(db.session, year)
            kreise = kreis_rows(db.session, year)
            context.update(
                figures=ledger.year_figures(db.session, year),
                categories=categories,
                kreise=kreise,
                category_chart=charts.grouped_bars(
                    _("Plan, committed and paid per category"),
                    _series("plan", "committed", "paid"),
                    [
                        (
                            _category_label(row),
                            [row.planned_cents or row.carried_in_cents, row.committed_cents, row.paid_cents],
                        )
                        for row in categories
                    ],
                    locale=locale,
                ),
                kreis_chart=charts.grouped_bars(
                    _("Committed and paid per Kreis"),
                    _series("committed", "paid"),
                    [(row.name, [row.committed_cents, row.paid_cents]) for row in kreise],
                    locale=locale,
                ),
                category_label=_category_label,
            )
        return self.render("admin/funding/dashboard.html", **context)


class FundingOverviewView(FundingView):
    @expose("/")
    def index(self):
        rows = year_rows(db.session)
        chart = charts.grouped_bars(
            _("Available, committed and paid per year"),
            _series("available", "committed", "paid"),
            [
                (
                    str(row.year),
                    [row.figures.available_cents, row.figures.committed_cents, row.figures.paid_cents],
                )
                for row in rows
            ],
            locale=current_language(),
        )
        return self.render("admin/funding/overview.html", rows=rows, chart=chart)


# --- the distribution screen ----------------------------------------------------------------------

DISTRIBUTION_FIELDS = (
    *("year", "category", "method", "selection", "kreis", "amt", "keys", "total", "base"),
    *("purpose", "decision_date", "file_reference", "proof_of_use_due"),
)
# Where a service's RuleViolation.field is shown on the form.
FORM_FIELD = {
    "fiscal_year": "year",
    "category": "category",
    "total_cents": "total",
    "base_cents": "base",
    "keys": "keys",
    "method": "method",
    "selection": "selection",
    "purpose": "purpose",
    "file_reference": "file_reference",
    "decision_date": "decision_date",
    "proof_of_use_due": "proof_of_use_due",
}


@dataclass
class DistributionInput:
    """The distribution form as typed (``values``), what it means (``parsed``) and what is wrong
    with it, per field (``errors``; ``None`` for a message about the whole form)."""

    values: dict
    parsed: dict
    errors: dict

    def add_error(self, field: str | None, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    @classmethod
    def read(cls, form, session: Session) -> DistributionInput:
        values = {name: (form.get(name) or "").strip() for name in DISTRIBUTION_FIELDS}
        found = cls(values, {}, {})
        year = session.get(FiscalYear, _id(values["year"])) if _id(values["year"]) else None
        if year is None:
            found.add_error("year", _("Please choose a fiscal year."))
        category = session.get(BudgetCategory, _id(values["category"])) if _id(values["category"]) else None
        if category is None:
            found.add_error("category", _("Please choose a category."))
        if values["method"] not in {m.value for m in DistributionMethod}:
            found.add_error("method", _("Please choose a method."))
        selection = values["selection"]
        parameters: dict = {}
        if selection in (DistributionSelection.KREIS, DistributionSelection.AMT):
            parameters = {"key": values[selection]}
        elif selection == DistributionSelection.LIST:
            keys = values["keys"].replace(",", " ").replace(";", " ").split()
            parameters = {"keys": keys}
        elif selection != DistributionSelection.ALL:
            found.add_error("selection", _("Please choose which Gemeinden take part."))
        locale = current_language()
        total = base = None
        try:
            total = parse_money(values["total"], locale)
        except MoneyError as exc:
            found.add_error("total", str(exc))
        try:
            base = parse_money(values["base"], locale) if values["base"] else 0
        except MoneyError as exc:
            found.add_error("base", str(exc))
        dates = {}
        for name in ("decision_date", "proof_of_use_due"):
            try:
                dates[name] = date.fromisoformat(values[name]) if values[name] else None
            except ValueError:
                found.add_error(name, _("Please enter a date as YYYY-MM-DD."))
        found.parsed = {
            "fiscal_year": year,
            "category": category,
            "method": values["method"],
            "selection": selection,
            "parameters": parameters,
            "total_cents": total,
            "base_cents": base,
            "purpose": values["purpose"],
            "file_reference": values["file_reference"],
            **dates,
        }
        return found

    def refused(self, exc: RuleViolation) -> None:
        if exc.field == "key":  # the key of the chosen Kreis or Amt
            selection = self.values["selection"]
            self.add_error(selection if selection in ("kreis", "amt") else "selection", exc.message)
        else:
            self.add_error(FORM_FIELD.get(exc.field or ""), exc.message)

    def split_arguments(self) -> dict:
        names = ("fiscal_year", "category", "method", "selection", "parameters", "total_cents", "base_cents")
        return {name: self.parsed[name] for name in names}


def _distribution_options(session: Session) -> dict:
    """The years that are not closed with their categories, and the Kreise and Ämter (one query
    each; the latter shared with the municipality forms)."""
    from itvsh.tenants.admin import parent_options

    rows = session.execute(
        select(FiscalYear.id, FiscalYear.year, BudgetCategory.id, BudgetCategory.name)
        .join(BudgetCategory, BudgetCategory.fiscal_year_id == FiscalYear.id)
        .where(FiscalYear.status != YearStatus.CLOSED.value)
        .order_by(FiscalYear.year, BudgetCategory.position, BudgetCategory.id)
    ).all()
    years: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for year_id, year, category_id, name in rows:
        years.setdefault((year_id, year), []).append((category_id, name))
    parents = parent_options()
    return {
        "years": years,
        "kreise": parents[MunicipalityKind.KREIS],
        "amter": parents[MunicipalityKind.AMT],
        "methods": [(m.value, label) for m, label in DISTRIBUTION_METHOD_LABELS.items()],
        "selections": [(s.value, label) for s, label in DISTRIBUTION_SELECTION_LABELS.items()],
    }


def _share(amount_cents: int, total_cents: int) -> str:
    """The share of the total in per mille, three decimals, in the user's locale."""
    if not total_cents:
        return ""
    per_mille = (Decimal(amount_cents) * 1000 / Decimal(total_cents)).quantize(Decimal("0.001"))
    return format_decimal(per_mille, format="#,##0.000")


def _allocations_url(distribution_id: int) -> str | None:
    """The allocation list filtered by this distribution, where that list offers the filter."""
    view = current_app.extensions.get("itvsh_admin_views", {}).get("funding_allocations")
    if "distribution" not in getattr(view, "filter_url_names", ()):
        return None
    return url_for("funding_allocations.index_view", flt0_distribution=distribution_id)


class DistributionView(FundingView):
    """Preview (nothing written) and creation of a distribution's draft allocations."""

    allowed_roles = FEDERATION

    def _render(self, found: DistributionInput, options: dict, table=None, key: str | None = None):
        return self.render(
            "admin/funding/distribution.html",
            values=found.values,
            errors=found.errors,
            options=options,
            preview=table,
            idempotency_key=key,
            share=_share,
            fields=DISTRIBUTION_FIELDS,
        )

    @expose("/", methods=("GET", "POST"))
    def index(self):
        if request.method == "POST" and self.read_only:
            abort(403)
        options = _distribution_options(db.session)
        if request.method == "GET":
            this_year = next(
                (year_id for year_id, year in options["years"] if year == date.today().year),
                next(iter(options["years"]), (None, None))[0],
            )
            values = dict.fromkeys(DISTRIBUTION_FIELDS, "")
            values.update(year=str(this_year or ""), method="per_capita", selection="all")
            return self._render(DistributionInput(values, {}, {}), options)
        found = DistributionInput.read(request.form, db.session)
        if request.form.get("action") == "create":
            return self._create(found, options)
        return self._preview(found, options)

    def _preview(self, found: DistributionInput, options: dict):
        table = None
        if not found.errors:
            try:
                parsed = found.parsed
                ledger._check_text(parsed["purpose"], "purpose", 500, required=True)
                ledger._check_text(parsed["file_reference"], "file_reference", 100)
                ledger._check_dates(parsed["decision_date"], parsed["proof_of_use_due"], None)
                table = distribution.preview(db.session, **found.split_arguments())
            except RuleViolation as exc:
                found.refused(exc)
        return self._render(found, options, table, str(uuid.uuid4()) if table else None)

    def _create(self, found: DistributionInput, options: dict):
        if not found.errors:
            try:
                made = distribution.create_distribution(
                    db.session,
                    _actor(),
                    **found.split_arguments(),
                    purpose=found.parsed["purpose"],
                    decision_date=found.parsed["decision_date"],
                    file_reference=found.parsed["file_reference"],
                    proof_of_use_due=found.parsed["proof_of_use_due"],
                    idempotency_key=request.form.get("idempotency_key", ""),
                )
                db.session.commit()
            except RuleViolation as exc:
                db.session.rollback()
                found.refused(exc)
            else:
                created = db.session.execute(
                    select(func.count(Allocation.id)).where(Allocation.distribution_id == made.id)
                ).scalar_one()
                flash(
                    ngettext(
                        "Distribution %(id)s: %(num)d draft allocation was created.",
                        "Distribution %(id)s: %(num)d draft allocations were created.",
                        created,
                        id=made.id,
                    ),
                    "success",
                )
                return redirect(_allocations_url(made.id) or self.get_url(".index"))
        flash(_("Nothing was created."), "error")
        return self._render(found, options)


# --- the year-end close ---------------------------------------------------------------------------


class YearCloseView(FundingView):
    """Open commitments of an open year, carried over or released as chosen per allocation."""

    @expose("/", methods=("GET", "POST"))
    def index(self):
        if request.method == "POST" and self.read_only:
            abort(403)
        asked = request.values.get("year")
        year = db.session.get(FiscalYear, _id(asked)) if _id(asked) else None
        if asked and year is None:
            abort(404)
        summary = None
        if request.method == "POST":
            if year is None:
                abort(400)
            try:
                summary = ledger.close_year(db.session, _actor(), year, self._decisions())
                db.session.commit()
            except RuleViolation as exc:
                db.session.rollback()
                flash(exc.message, "error")
            year = db.session.get(FiscalYear, year.id)
        pending = []
        if year is not None and year.status == YearStatus.OPEN and summary is None:
            pending = ledger.open_commitments(db.session, year)
            self._load_recipients(pending)
        open_years = list(
            db.session.execute(
                select(FiscalYear).where(FiscalYear.status == YearStatus.OPEN.value).order_by(FiscalYear.year)
            ).scalars()
        )
        return self.render(
            "admin/funding/close.html",
            year=year,
            open_years=open_years,
            pending=pending,
            totals={
                "committed_cents": sum(item.committed_cents for item in pending),
                "paid_cents": sum(item.paid_cents for item in pending),
                "open_cents": sum(item.open_cents for item in pending),
            },
            summary=summary,
        )

    @staticmethod
    def _decisions() -> dict[int, str]:
        decisions = {}
        for name, value in request.form.items():
            if name.startswith("decision-"):
                allocation_id = _id(name.removeprefix("decision-"))
                if allocation_id is None:
                    abort(400)
                decisions[allocation_id] = value
        return decisions

    @staticmethod
    def _load_recipients(pending) -> None:
        """Recipients, categories and years of the listed allocations in three queries, not three per
        row: each is loaded once and set on its allocations."""
        relations = (
            ("municipality", Municipality, "municipality_id"),
            ("category", BudgetCategory, "category_id"),
            ("fiscal_year", FiscalYear, "fiscal_year_id"),
        )
        for name, model, column in relations:
            ids = {getattr(item.allocation, column) for item in pending} - {None}
            loaded = {}
            if ids:
                loaded = {
                    row.id: row
                    for row in db.session.execute(select(model).where(model.id.in_(ids))).scalars()
                }
            for item in pending:
                set_committed_value(item.allocation, name, loaded.get(getattr(item.allocation, column)))


def register(admin: Admin) -> None:
    """Add the funding dashboard, overview, distribution and year-close pages."""
    admin.add_view(
        FundingDashboardView(
            name=_l("Dashboard"), category=CATEGORY, endpoint="funding_dashboard", url="/admin/funding"
        )
    )
    admin.add_view(
        FundingOverviewView(
            name=_l("Multi-year overview"),
            category=CATEGORY,
            endpoint="funding_overview",
            url="/admin/funding/overview",
        )
    )
    admin.add_view(
        DistributionView(
            name=_l("Distribution"),
            category=CATEGORY,
            endpoint="funding_distribution",
            url="/admin/funding/distribution",
        )
    )
    admin.add_view(
        YearCloseView(
            name=_l("Year-end close"), category=CATEGORY, endpoint="funding_close", url="/admin/funding/close"
        )
    )
