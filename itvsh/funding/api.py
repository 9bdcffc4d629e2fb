"""Funding endpoints of the JSON API (on the API blueprint): fiscal years with their figures,
allocations and their lifecycle actions, the bookings of the ledger, and distributions.

Money is integer cents (``*_cents``). Every figure is a sum of bookings, computed for a whole page
in one grouped query. Reads: every logged-in role. A year's totals and its categories' totals are
public money and show the whole year to everyone; allocations and bookings are private to their
recipient, so the central tenant scope (core/tenancy.py) limits them for municipality users and
another tenant's allocation or booking answers 404. Allocations to a shared project (``recipient_kind``
``project``, ``project``: its id) and to the federation itself belong to no member: only admin, staff
and auditors see them. Writes: staff and admins; all of them go
through the funding services (``ledger.py``, ``distribution.py``), which check, audit and flush;
each view commits once, and a refusal rolls the whole unit of work back and names the field as
the request names it.

Every write honours an ``Idempotency-Key`` header: the same key again answers what the first
request made, writes nothing more; the same key with other parameters is refused (422). Services
that take ``idempotency_key=`` handle it themselves; for the others (fiscal years, allocation
changes, cancel, settle) this module keeps the key in the same table through ``ledger.replayed`` /
``ledger.remember`` under the year's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import abort, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased, joinedload

from itvsh.api import MAX_ID, bp, doc, json_body, paginate, refusal_writes_nothing, unit_of_work
from itvsh.auth.roles import ALL_ROLES, Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, pop_scope, push_scope
from itvsh.extensions import db
from itvsh.funding import distribution as distributions
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    Booking,
    BudgetCategory,
    Distribution,
    FiscalYear,
    RecipientKind,
)
from itvsh.funding.schemas import (
    ALLOCATION_STATUSES,
    BOOKING_KINDS,
    FEDERATION,
    AllocationCreateSchema,
    AllocationDetailSchema,
    AllocationSchema,
    AllocationUpdateSchema,
    ApproveSchema,
    BookingSchema,
    CancelSchema,
    DistributionCreateSchema,
    DistributionPreviewRequestSchema,
    DistributionPreviewSchema,
    DistributionSchema,
    FiscalYearCreateSchema,
    FiscalYearDetailSchema,
    FiscalYearSchema,
    FiscalYearUpdateSchema,
    PaymentSchema,
    ReverseSchema,
    SettleSchema,
)
from itvsh.projects.models import Project
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality, MunicipalityKind
from itvsh.tenants.schemas import Digits

WRITERS = (Role.STAFF, Role.ADMIN)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The services name fields by their columns and objects; the API names them as the request does.
REQUEST_FIELDS = {
    "fiscal_year": "year",
    "municipality": "recipient",
    "municipality_id": "recipient",
    "category_id": "category",
    "project_id": "project",
    "idempotency_key": IDEMPOTENCY_HEADER,
    "key": "parameters.key",
    "keys": "parameters.keys",
}
IDEMPOTENCY_PARAM = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "any unique text of 1 to 100 characters: repeating the request with the same key "
    "answers the first result and writes nothing more; the same key with other parameters is refused",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
}
_YEAR_PARAM = {"name": "year", "in": "query", "description": "fiscal year", "schema": {"type": "integer"}}
_RECIPIENT_PARAM = {
    "name": "recipient",
    "in": "query",
    "description": "official key of the member (AGS, Amt or Kreis key), or 'federation'",
    "schema": {"type": "string"},
}
ALLOCATION_PARAMS = [
    {**_YEAR_PARAM, "description": "the fiscal year it was granted from"},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ALLOCATION_STATUSES}},
    _RECIPIENT_PARAM,
    {"name": "category", "in": "query", "description": "category code", "schema": {"type": "string"}},
    {
        "name": "kreis",
        "in": "query",
        "description": "Kreis key (5 digits): allocations to the Kreis and to its Ämter and Gemeinden",
        "schema": {"type": "string"},
    },
    {"name": "distribution", "in": "query", "description": "distribution id", "schema": {"type": "integer"}},
    {
        "name": "project",
        "in": "query",
        "description": "project id: the allocations to that project",
        "schema": {"type": "integer"},
    },
]
BOOKING_PARAMS = [
    _YEAR_PARAM,
    _RECIPIENT_PARAM,
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": BOOKING_KINDS}},
    {"name": "allocation", "in": "query", "description": "allocation id", "schema": {"type": "integer"}},
]


def _me():
    return current_user._get_current_object()


def _staff_only_fields() -> tuple[str, ...]:
    """Booking fields a municipality user does not get: who at the federation booked (the staff
    member's email is their personal data, not the recipient's business)."""
    return ("booked_by",) if current_user.role == Role.MUNICIPALITY else ()


# --- units of work and idempotency ------------------------------------------------------------------


def _refusal_writes_nothing():
    """A refusal rolls back everything the services may have changed before refusing, and names
    the field as the request names it."""
    return refusal_writes_nothing(REQUEST_FIELDS)


def _unit_of_work():
    """Run a write and commit it once (a refusal writes nothing)."""
    return unit_of_work(REQUEST_FIELDS)


def _idempotency_key() -> str | None:
    return request.headers.get(IDEMPOTENCY_HEADER)


@dataclass
class _Replay:
    """The idempotency state of a write whose service takes no key: ``earlier`` is the id of what
    a first request with this key made (replay it), else :meth:`remember` after the write."""

    key: str | None
    action: str
    fingerprint: str = ""
    earlier: int | None = None

    def remember(self, entity: str, entity_id: int) -> None:
        ledger.remember(db.session, self.key, self.action, self.fingerprint, entity, entity_id, _me())


def _replay(action: str, *, lock_year_id: int | None = None, **parameters) -> _Replay:
    """Look the request's key up (under the year's lock, so a repeat racing the first waits)."""
    key = _idempotency_key()
    if key is None:
        return _Replay(None, action)
    ledger.check_key(key)
    if lock_year_id is not None:
        ledger.lock_year(db.session, lock_year_id)
    print_ = ledger.fingerprint(**parameters)
    earlier = ledger.replayed(db.session, key, action, print_)
    return _Replay(key, action, print_, earlier.entity_id if earlier is not None else None)


def _body(schema: Schema) -> dict:
    """The JSON body loaded through ``schema``; errors of nested fields flattened to dotted names
    (``parameters.keys``), so every error is a field name with its messages."""
    try:
        return json_body(schema)
    except ValidationError as exc:
        if isinstance(exc.messages, dict):
            raise ValidationError(_flat(exc.messages)) from None
        raise


def _flat(messages: dict, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    for name, value in messages.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            # A nested object's own errors (e.g. not an object at all) belong to its field.
            where = prefix.rstrip(".") if name == "_schema" and prefix else f"{prefix}{name}"
            flat[where] = [str(m) for m in (value if isinstance(value, list) else [value])]
    return flat


# --- query parameters ---------------------------------------------------------------------------


def _year_arg() -> int | None:
    raw = request.args.get("year", "")
    if not raw:
        return None
    if not (
        raw.isascii() and raw.isdigit() and len(raw) == 4 and ledger.MIN_YEAR <= int(raw) <= ledger.MAX_YEAR
    ):
        raise RuleViolation(
            _("year must be a year from %(a)s to %(b)s.", a=ledger.MIN_YEAR, b=ledger.MAX_YEAR), "year"
        )
    return int(raw)


def _id_arg(name: str) -> int | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= MAX_ID):
        raise RuleViolation(_("%(name)s must be an id (a whole number).", name=name), name)
    return int(raw)


def _choice_arg(name: str, choices: list[str]) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    if value not in choices:
        raise RuleViolation(
            _("Unknown %(name)s; one of: %(choices)s.", name=name, choices=", ".join(choices)), name
        )
    return value


def _recipient_arg():
    """The ``recipient`` filter: FEDERATION, an official key, or None."""
    value = request.args.get("recipient", "")
    if not value or value == FEDERATION:
        return value or None
    try:
        return Digits(5, 8, 9)(value)
    except ValidationError:
        raise RuleViolation(
            _("recipient must be an official key (5, 8 or 9 digits) or “federation”."), "recipient"
        ) from None


def _key_arg(name: str, length: int) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    try:
        return Digits(length)(value)
    except ValidationError:
        raise RuleViolation(
            _("%(name)s must be an official key of %(length)d digits.", name=name, length=length), name
        ) from None


def _recipient_condition(kind_column, municipality_column, recipient: str):
    if recipient == FEDERATION:
        return kind_column == FEDERATION
    return municipality_column.in_(select(Municipality.id).where(Municipality.key == recipient))


def _year_id_condition(column, year: int):
    return column.in_(select(FiscalYear.id).where(FiscalYear.year == year))


# --- lookups ------------------------------------------------------------------------------------


def _year_or_404(year: int) -> FiscalYear:
    fiscal_year = ledger.get_year(db.session, year)
    if fiscal_year is None:
        abort(404)
    return fiscal_year


def _allocation_or_404(allocation_id: int) -> Allocation:
    # A select, not session.get: it always asks the database, through the tenant scope.
    allocation = db.session.execute(
        select(Allocation).where(Allocation.id == allocation_id)
    ).scalar_one_or_none()
    if allocation is None:
        abort(404)
    return allocation


def _booking_or_404(booking_id: int) -> Booking:
    booking = db.session.execute(select(Booking).where(Booking.id == booking_id)).scalar_one_or_none()
    if booking is None:
        abort(404)
    return booking


def _year_named(year: int) -> FiscalYear:
    fiscal_year = ledger.get_year(db.session, year)
    if fiscal_year is None:
        raise RuleViolation(_("There is no fiscal year %(year)s.", year=year), "year")
    return fiscal_year


def _category_named(fiscal_year: FiscalYear, code: str) -> BudgetCategory:
    category = db.session.execute(
        select(BudgetCategory).where(
            BudgetCategory.fiscal_year_id == fiscal_year.id, BudgetCategory.code == code
        )
    ).scalar_one_or_none()
    if category is None:
        raise RuleViolation(
            _("The year %(year)s has no category “%(code)s”.", year=fiscal_year.year, code=code), "category"
        )
    return category


def _project_named(project_id: int | None):
    """The project a body names by id (None stays None); an unknown id is refused."""
    if project_id is None:
        return None
    project = db.session.execute(select(Project).where(Project.id == project_id)).scalar_one_or_none()
    if project is None:
        raise RuleViolation(_("There is no project with the id %(id)s.", id=project_id), "project")
    return project


def _recipient_named(key: str | None) -> Municipality | None:
    if key is None:
        return None
    municipality = tenant_services.get_by_key(db.session, key)
    if municipality is None:
        raise RuleViolation(_("There is no municipality with the key %(key)s.", key=key), "recipient")
    return municipality


# --- figures: sums of bookings, one grouped query per page ----------------------------------------


@contextmanager
def _public_totals() -> Iterator[None]:
    """A year's and a category's totals are public money: sum over every tenant's bookings. Only
    sums leave this block, never a tenant's rows."""
    previous = push_scope(db.session, ALL)
    try:
        yield
    finally:
        pop_scope(db.session, previous)


def _sums(group_column, *where) -> dict[int, tuple[int, int, int]]:
    """(committed, paid, carried in) per value of ``group_column``, in one grouped query."""
    rows = db.session.execute(
        select(
            group_column,
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
            func.coalesce(func.sum(Booking.available_delta_cents), 0),
        )
        .where(*where)
        .group_by(group_column)
    ).all()
    return {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in rows}


def _year_view(fiscal_year: FiscalYear, sums: tuple[int, int, int], categories=None) -> dict:
    committed, paid, carried_in = sums
    figures = ledger.YearFigures(fiscal_year.appropriation_cents, carried_in, committed, paid)
    view = {
        "year": fiscal_year.year,
        "status": fiscal_year.status,
        "note": fiscal_year.note,
        "closed_at": fiscal_year.closed_at,
        "appropriation_cents": figures.appropriation_cents,
        "carried_in_cents": figures.carried_in_cents,
        "available_cents": figures.available_cents,
        "committed_cents": figures.committed_cents,
        "paid_cents": figures.paid_cents,
        "open_cents": figures.open_cents,
        "free_cents": figures.free_cents,
    }
    if categories is not None:
        view["categories"] = categories
    return view


def _years_with_figures(years: list[FiscalYear]) -> list[dict]:
    sums = {}
    if years:
        with _public_totals():
            sums = _sums(Booking.fiscal_year_id, Booking.fiscal_year_id.in_([y.id for y in years]))
    return [_year_view(y, sums.get(y.id, (0, 0, 0))) for y in years]


def _year_detail(fiscal_year: FiscalYear) -> dict:
    categories = (
        db.session.execute(
            select(BudgetCategory)
            .where(BudgetCategory.fiscal_year_id == fiscal_year.id)
            .order_by(BudgetCategory.position, BudgetCategory.id)
        )
        .scalars()
        .all()
    )
    with _public_totals():
        per_category = _sums(Booking.category_id, Booking.fiscal_year_id == fiscal_year.id)
        year_sums = _sums(Booking.fiscal_year_id, Booking.fiscal_year_id == fiscal_year.id)
    rows = []
    for category in categories:
        committed, paid, _carried = per_category.get(category.id, (0, 0, 0))
        rows.append(
            {
                "code": category.code,
                "name": category.name,
                "position": category.position,
                "planned_cents": category.planned_cents,
                "committed_cents": committed,
                "paid_cents": paid,
                "free_cents": category.planned_cents - committed,
            }
        )
    view = _year_view(fiscal_year, year_sums.get(fiscal_year.id, (0, 0, 0)), rows)
    return FiscalYearDetailSchema().dump(view)


@dataclass
class AllocationView:
    """An allocation with its figures (and, for the detail, its bookings) for the schemas."""

    allocation: Allocation
    figures: ledger.AllocationFigures
    bookings: list[Booking] = field(default_factory=list)

    def __getattr__(self, name: str):
        if name in ("committed_cents", "paid_cents", "open_cents"):
            return getattr(self.figures, name)
        return getattr(self.allocation, name)


def _allocations_with_figures(allocations: list[Allocation]) -> list[AllocationView]:
    sums = {}
    if allocations:
        sums = _sums(Booking.allocation_id, Booking.allocation_id.in_([a.id for a in allocations]))
    views = []
    for allocation in allocations:
        committed, paid, _carried = sums.get(allocation.id, (0, 0, 0))
        views.append(AllocationView(allocation, ledger.AllocationFigures(committed, paid)))
    return views


@dataclass
class _PageDumper:
    """What :func:`paginate` dumps a page with: the schema, after ``prepare`` added the page's
    figures (one query for the whole page)."""

    schema: Schema
    prepare: Callable[[list], list]

    def dump(self, items, many: bool = True):
        return self.schema.dump(self.prepare(list(items)), many=True)


def _allocation_detail(allocation: Allocation) -> dict:
    bookings = (
        db.session.execute(
            select(Booking)
            .where(Booking.allocation_id == allocation.id)
            .options(joinedload(Booking.fiscal_year), joinedload(Booking.category))
            .order_by(Booking.id)
        )
        .scalars()
        .all()
    )
    figures = ledger.allocation_figures(db.session, allocation)
    schema = AllocationDetailSchema(exclude=[f"bookings.{name}" for name in _staff_only_fields()])
    return schema.dump(AllocationView(allocation, figures, list(bookings)))


def _booking_answer(booking: Booking):
    return jsonify(BookingSchema().dump(booking)), 201


# --- fiscal years -------------------------------------------------------------------------------


@bp.get("/fiscal-years")
@roles_allowed(ALL_ROLES)
@doc(
    "Fiscal years with their figures (sums of bookings), newest first",
    response=FiscalYearSchema,
    paginated=True,
)
def list_fiscal_years():
    statement = select(FiscalYear).order_by(FiscalYear.year.desc())
    return paginate(db.session, statement, _PageDumper(FiscalYearSchema(), _years_with_figures))


@bp.get("/fiscal-years/<int:year>")
@roles_allowed(ALL_ROLES)
@doc(
    "One fiscal year with its figures and its categories' plans and figures", response=FiscalYearDetailSchema
)
def get_fiscal_year(year: int):
    return jsonify(_year_detail(_year_or_404(year)))


@bp.post("/fiscal-years")
@roles_allowed(WRITERS)
@doc(
    "Create a fiscal year (in planning), with the default categories unless told otherwise",
    body=FiscalYearCreateSchema,
    response=FiscalYearDetailSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def create_fiscal_year():
    data = _body(FiscalYearCreateSchema())
    with _unit_of_work():
        replay = _replay("api_create_fiscal_year", **data)
        if replay.earlier is not None:
            fiscal_year = db.session.get(FiscalYear, replay.earlier)
        else:
            fiscal_year = ledger.create_fiscal_year(db.session, _me(), **data)
            replay.remember("fiscal_year", fiscal_year.id)
    location = url_for(".get_fiscal_year", year=fiscal_year.year)
    return jsonify(_year_detail(fiscal_year)), 201, {"Location": location}


@bp.patch("/fiscal-years/<int:year>")
@roles_allowed(WRITERS)
@doc(
    "Change a year's appropriation or note",
    body=FiscalYearUpdateSchema,
    response=FiscalYearDetailSchema,
    params=[IDEMPOTENCY_PARAM],
)
def update_fiscal_year(year: int):
    fiscal_year = _year_or_404(year)
    data = _body(FiscalYearUpdateSchema())
    with _unit_of_work():
        replay = _replay("api_update_fiscal_year", lock_year_id=fiscal_year.id, year=fiscal_year.id, **data)
        if replay.earlier is None:
            ledger.update_fiscal_year(db.session, _me(), fiscal_year, **data)
            replay.remember("fiscal_year", fiscal_year.id)
    return jsonify(_year_detail(fiscal_year))


# --- allocations --------------------------------------------------------------------------------


@bp.get("/allocations")
@roles_allowed(ALL_ROLES)
@tenant_params(recipient="municipality_key")
@doc(
    "Allocations you may see, with their figures (sums of bookings)",
    response=AllocationSchema,
    paginated=True,
    params=ALLOCATION_PARAMS,
)
def list_allocations():
    statement = (
        select(Allocation)
        .options(
            joinedload(Allocation.fiscal_year),
            joinedload(Allocation.current_year),
            joinedload(Allocation.category),
            # The recipient's Kreis, too: else each distinct Kreis on the page costs a query.
            joinedload(Allocation.municipality).joinedload(Municipality.kreis),
            joinedload(Allocation.project),
        )
        .order_by(Allocation.id)
    )
    if (year := _year_arg()) is not None:
        statement = statement.where(_year_id_condition(Allocation.fiscal_year_id, year))
    if status := _choice_arg("status", ALLOCATION_STATUSES):
        statement = statement.where(Allocation.status == status)
    if recipient := _recipient_arg():
        statement = statement.where(
            _recipient_condition(Allocation.recipient_kind, Allocation.municipality_id, recipient)
        )
    if code := request.args.get("category", ""):
        statement = statement.where(
            Allocation.category_id.in_(select(BudgetCategory.id).where(BudgetCategory.code == code))
        )
    if kreis := _key_arg("kreis", 5):
        parent = aliased(Municipality)
        kreis_id = select(parent.id).where(parent.key == kreis, parent.kind == MunicipalityKind.KREIS.value)
        statement = statement.where(
            Allocation.municipality_id.in_(
                select(Municipality.id).where(
                    or_(Municipality.id.in_(kreis_id), Municipality.kreis_id.in_(kreis_id))
                )
            )
        )
    if (distribution_id := _id_arg("distribution")) is not None:
        statement = statement.where(Allocation.distribution_id == distribution_id)
    if (project_id := _id_arg("project")) is not None:
        statement = statement.where(Allocation.project_id == project_id)
    return paginate(db.session, statement, _PageDumper(AllocationSchema(), _allocations_with_figures))


@bp.get("/allocations/<int:allocation_id>")
@roles_allowed(ALL_ROLES)
@tenant_params(allocation_id="allocation_id")
@doc("One allocation with its figures and its bookings", response=AllocationDetailSchema)
def get_allocation(allocation_id: int):
    return jsonify(_allocation_detail(_allocation_or_404(allocation_id)))


@bp.post("/allocations")
@roles_allowed(WRITERS)
@doc(
    "Create a draft allocation (it binds money only once approved)",
    body=AllocationCreateSchema,
    response=AllocationDetailSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def create_allocation():
    data = _body(AllocationCreateSchema())
    with _unit_of_work():
        fiscal_year = _year_named(data.pop("year"))
        category = _category_named(fiscal_year, data.pop("category"))
        municipality = _recipient_named(data.pop("recipient", None))
        project = _project_named(data.pop("project", None))
        allocation = ledger.create_allocation(
            db.session,
            _me(),
            fiscal_year=fiscal_year,
            category=category,
            municipality=municipality,
            project=project,
            idempotency_key=_idempotency_key(),
            **data,
        )
    location = url_for(".get_allocation", allocation_id=allocation.id)
    return jsonify(_allocation_detail(allocation)), 201, {"Location": location}


def _allocation_changes(allocation: Allocation, data: dict) -> dict:
    """The request's fields as the service's columns: category code → category_id, recipient key
    → municipality_id (a member recipient unless said otherwise), project id → project_id (a project
    recipient unless said otherwise). A new kind of recipient drops the other kinds' ids the request
    does not name (the federation has neither)."""
    changes = dict(data)
    if "category" in changes:
        changes["category_id"] = _category_named(allocation.fiscal_year, changes.pop("category")).id
    if "recipient" in changes:
        municipality = _recipient_named(changes.pop("recipient"))
        changes["municipality_id"] = getattr(municipality, "id", None)
        if municipality is not None:
            changes.setdefault("recipient_kind", RecipientKind.MEMBER.value)
    if "project" in changes:
        project = _project_named(changes.pop("project"))
        changes["project_id"] = getattr(project, "id", None)
        if project is not None:
            changes.setdefault("recipient_kind", RecipientKind.PROJECT.value)
    kind = changes.get("recipient_kind")
    if kind in (RecipientKind.FEDERATION, RecipientKind.PROJECT):
        changes.setdefault("municipality_id", None)
    if kind in (RecipientKind.FEDERATION, RecipientKind.MEMBER):
        changes.setdefault("project_id", None)
    return changes


@bp.patch("/allocations/<int:allocation_id>")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Change an allocation (once approved: only purpose, file reference, dates and note)",
    body=AllocationUpdateSchema,
    response=AllocationDetailSchema,
    params=[IDEMPOTENCY_PARAM],
)
def update_allocation(allocation_id: int):
    allocation = _allocation_or_404(allocation_id)
    data = _body(AllocationUpdateSchema())
    with _unit_of_work():
        replay = _replay(
            "api_update_allocation", lock_year_id=allocation.current_year_id, allocation=allocation.id, **data
        )
        if replay.earlier is None:
            ledger.update_allocation(db.session, _me(), allocation, **_allocation_changes(allocation, data))
            replay.remember("allocation", allocation.id)
    return jsonify(_allocation_detail(allocation))


@bp.post("/allocations/<int:allocation_id>/approve")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Approve a draft: book its amount as a commitment (answers the booking)",
    body=ApproveSchema,
    response=BookingSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def approve_allocation(allocation_id: int):
    allocation = _allocation_or_404(allocation_id)
    data = _body(ApproveSchema())
    with _unit_of_work():
        booking = ledger.approve(
            db.session, _me(), allocation, on=data["booked_on"], idempotency_key=_idempotency_key()
        )
    return _booking_answer(booking)


def _payment(allocation_id: int, book: Callable) -> tuple:
    allocation = _allocation_or_404(allocation_id)
    data = _body(PaymentSchema())
    with _unit_of_work():
        booking = book(
            db.session,
            _me(),
            allocation,
            data["amount_cents"],
            on=data["booked_on"],
            note=data["note"],
            idempotency_key=_idempotency_key(),
        )
    return _booking_answer(booking)


@bp.post("/allocations/<int:allocation_id>/disburse")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Pay (part of) an approved allocation (answers the booking)",
    body=PaymentSchema,
    response=BookingSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def disburse_allocation(allocation_id: int):
    return _payment(allocation_id, ledger.disburse)


@bp.post("/allocations/<int:allocation_id>/release")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Give back part of the open commitment (answers the booking)",
    body=PaymentSchema,
    response=BookingSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def release_allocation(allocation_id: int):
    return _payment(allocation_id, ledger.release)


@bp.post("/allocations/<int:allocation_id>/repay")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Book money paid back by the recipient (answers the booking)",
    body=PaymentSchema,
    response=BookingSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def repay_allocation(allocation_id: int):
    return _payment(allocation_id, ledger.repay)


@bp.post("/allocations/<int:allocation_id>/cancel")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Cancel a draft, or an approved allocation nothing was paid on (its commitment is released)",
    body=CancelSchema,
    response=AllocationDetailSchema,
    params=[IDEMPOTENCY_PARAM],
)
def cancel_allocation(allocation_id: int):
    allocation = _allocation_or_404(allocation_id)
    data = _body(CancelSchema())
    with _unit_of_work():
        replay = _replay(
            "api_cancel", lock_year_id=allocation.current_year_id, allocation=allocation.id, **data
        )
        if replay.earlier is None:
            ledger.cancel(db.session, _me(), allocation, reason=data["reason"], idempotency_key=replay.key)
            replay.remember("allocation", allocation.id)
    return jsonify(_allocation_detail(allocation))


@bp.post("/allocations/<int:allocation_id>/settle")
@roles_allowed(WRITERS)
@tenant_params(allocation_id="allocation_id")
@doc(
    "Record the proof of use of a fully paid allocation and settle it",
    body=SettleSchema,
    response=AllocationDetailSchema,
    params=[IDEMPOTENCY_PARAM],
)
def settle_allocation(allocation_id: int):
    allocation = _allocation_or_404(allocation_id)
    data = _body(SettleSchema())
    with _unit_of_work():
        replay = _replay(
            "api_settle", lock_year_id=allocation.current_year_id, allocation=allocation.id, **data
        )
        if replay.earlier is None:
            ledger.settle(db.session, _me(), allocation, received_on=data["proof_of_use_received"])
            replay.remember("allocation", allocation.id)
    return jsonify(_allocation_detail(allocation))


# --- bookings -------------------------------------------------------------------------------------


@bp.get("/bookings")
@roles_allowed(ALL_ROLES)
@tenant_params(recipient="municipality_key")
@doc(
    "Bookings of the ledger you may see, in booking order",
    response=BookingSchema,
    paginated=True,
    params=BOOKING_PARAMS,
)
def list_bookings():
    statement = (
        select(Booking)
        .options(
            joinedload(Booking.fiscal_year),
            joinedload(Booking.category),
            joinedload(Booking.allocation).joinedload(Allocation.municipality),
        )
        .order_by(Booking.id)
    )
    if (year := _year_arg()) is not None:
        statement = statement.where(_year_id_condition(Booking.fiscal_year_id, year))
    if recipient := _recipient_arg():
        kind = (
            select(Allocation.recipient_kind).where(Allocation.id == Booking.allocation_id).scalar_subquery()
        )
        statement = statement.where(_recipient_condition(kind, Booking.municipality_id, recipient))
    if kind_ := _choice_arg("kind", BOOKING_KINDS):
        statement = statement.where(Booking.kind == kind_)
    if (allocation_id := _id_arg("allocation")) is not None:
        statement = statement.where(Booking.allocation_id == allocation_id)
    return paginate(db.session, statement, BookingSchema(exclude=_staff_only_fields()))


@bp.post("/bookings/<int:booking_id>/reverse")
@roles_allowed(WRITERS)
@tenant_params(booking_id="booking_id")
@doc(
    "Reverse a booking whole (Storno; at most once, the reason is required; answers the reversal)",
    body=ReverseSchema,
    response=BookingSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def reverse_booking(booking_id: int):
    booking = _booking_or_404(booking_id)
    data = _body(ReverseSchema())
    with _unit_of_work():
        reversal = ledger.reverse(
            db.session,
            _me(),
            booking,
            note=data["note"],
            on=data["booked_on"],
            idempotency_key=_idempotency_key(),
        )
    return _booking_answer(reversal)


# --- distributions --------------------------------------------------------------------------------


@dataclass
class PreviewView:
    """The preview table with its totals, for the schema."""

    preview: distributions.Preview

    @property
    def totals(self) -> dict:
        p = self.preview
        return {"recipients": len(p.rows), "population": p.population, "amount_cents": p.allocated_cents}

    def __getattr__(self, name: str):
        return getattr(self.preview, name)


@dataclass
class DistributionView:
    """A distribution as created, with the ids of its draft allocations, for the schema."""

    distribution: Distribution
    allocation_ids: list[int]
    allocation_count: int

    def __getattr__(self, name: str):
        return getattr(self.distribution, name)


def _distribution_arguments(data: dict) -> dict:
    fiscal_year = _year_named(data.pop("year"))
    category = _category_named(fiscal_year, data.pop("category"))
    return {**data, "fiscal_year": fiscal_year, "category": category}


@bp.post("/distributions/preview")
@roles_allowed(WRITERS)
@doc(
    "Preview a distribution: the share of each member Gemeinde (writes nothing)",
    body=DistributionPreviewRequestSchema,
    response=DistributionPreviewSchema,
)
def preview_distribution():
    data = _body(DistributionPreviewRequestSchema())
    with _refusal_writes_nothing():
        table = distributions.preview(db.session, **_distribution_arguments(data))
    body = DistributionPreviewSchema().dump(PreviewView(table))
    db.session.rollback()  # nothing was written: end the unit of work (and SQLite's write lock) now
    return jsonify(body)


@bp.post("/distributions")
@roles_allowed(WRITERS)
@doc(
    "Create the draft allocations of a distribution in one transaction",
    body=DistributionCreateSchema,
    response=DistributionSchema,
    params=[IDEMPOTENCY_PARAM],
    status=201,
)
def create_distribution():
    data = _body(DistributionCreateSchema())
    with _unit_of_work():
        made = distributions.create_distribution(
            db.session, _me(), idempotency_key=_idempotency_key(), **_distribution_arguments(data)
        )
    ids = (
        db.session.execute(
            select(Allocation.id).where(Allocation.distribution_id == made.id).order_by(Allocation.id)
        )
        .scalars()
        .all()
    )
    body = DistributionSchema().dump(
        DistributionView(made, allocation_ids=list(ids), allocation_count=len(ids))
    )
    return jsonify(body), 201
