"""The funding services: fiscal years, categories, allocations and every booking of the ledger.

All changes to funding data go through here (admin, API, CLI and demo alike). Each writer first
locks the fiscal year it books into (:func:`lock_year`: ``SELECT ... FOR UPDATE`` on PostgreSQL;
on SQLite the unit of work already holds the write lock from ``BEGIN IMMEDIATE``, see core/db.py),
then re-reads what it depends on, checks every limit against sums of bookings and books. A
refusal raises :class:`RuleViolation` naming the limit and what is left, before anything is
written; the caller rolls back. The lock on the year is taken before the audit chain head (which
is locked at commit), so concurrent writers always lock in the same order.

Limits: committed ≤ available in the year (appropriation + carried in) and ≤ the category's plan;
paid ≤ committed per allocation; released ≤ open commitment; repaid ≤ paid; nothing booked into a
closed year (nor, but for carry-overs, into a year still in planning); amounts > 0 in whole cents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.core.i18n import current_language
from itvsh.core.money import MAX_CENTS, format_money
from itvsh.core.rules import RuleViolation
from itvsh.funding.models import (
    BOOKING_KIND_LABELS,
    DEFAULT_APPROPRIATION_CENTS,
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    IdempotencyKey,
    RecipientKind,
    YearStatus,
)
from itvsh.tenants.models import Municipality
from itvsh.tenants.services import require_current_member

# The categories a new year starts with (code, name, share of the appropriation in per mille).
DEFAULT_CATEGORIES = (
    ("zuweisungen", "Zuweisungen an Kommunen", 600),
    ("projekte", "Gemeinsame Projekte", 250),
    ("personal", "Personal", 100),
    ("infrastruktur", "Infrastruktur", 50),
)
MIN_YEAR, MAX_YEAR = 2000, 2100
LOCKED_ONCE_APPROVED = (
    "fiscal_year_id",
    "category_id",
    "recipient_kind",
    "municipality_id",
    "project_id",
    "amount_cents",
)
EDITABLE_FIELDS = (
    "category_id",
    "recipient_kind",
    "municipality_id",
    "project_id",
    "purpose",
    "amount_cents",
    "decision_date",
    "file_reference",
    "proof_of_use_due",
    "proof_of_use_received",
    "note",
)
ACTIVE = (AllocationStatus.APPROVED, AllocationStatus.PARTIALLY_PAID, AllocationStatus.PAID)


def money(cents: int) -> str:
    return format_money(int(cents), current_language())


# --- figures: every one a sum of bookings -------------------------------------------------------


@dataclass(frozen=True)
class YearFigures:
    appropriation_cents: int
    carried_in_cents: int
    committed_cents: int
    paid_cents: int

    @property
    def available_cents(self) -> int:
        return self.appropriation_cents + self.carried_in_cents

    @property
    def free_cents(self) -> int:
        return self.available_cents - self.committed_cents

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents


@dataclass(frozen=True)
class AllocationFigures:
    committed_cents: int
    paid_cents: int

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents


def _sums(session: Session, *where) -> tuple[int, int, int]:
    row = session.execute(
        select(
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
            func.coalesce(func.sum(Booking.available_delta_cents), 0),
        ).where(*where)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def year_figures(session: Session, year: FiscalYear) -> YearFigures:
    committed, paid, carried_in = _sums(session, Booking.fiscal_year_id == year.id)
    return YearFigures(year.appropriation_cents, carried_in, committed, paid)


def category_committed(session: Session, year: FiscalYear, category: BudgetCategory) -> int:
    return _sums(session, Booking.fiscal_year_id == year.id, Booking.category_id == category.id)[0]


def allocation_figures(
    session: Session, allocation: Allocation, year: FiscalYear | None = None
) -> AllocationFigures:
    where = [Booking.allocation_id == allocation.id]
    if year is not None:
        where.append(Booking.fiscal_year_id == year.id)
    committed, paid, _carried = _sums(session, *where)
    return AllocationFigures(committed, paid)


# --- locking and idempotency --------------------------------------------------------------------


def lock_year(session: Session, year_id: int) -> FiscalYear:
    """Lock the fiscal year row for the rest of the transaction and return it as it is now."""
    year = session.execute(
        select(FiscalYear)
        .where(FiscalYear.id == year_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return year


def _lock_allocation_year(session: Session, allocation: Allocation) -> FiscalYear:
    """Lock the year the allocation's money sits in, re-reading the allocation under the lock (a
    year close may have moved it on meanwhile)."""
    for _attempt in range(3):
        year = lock_year(session, allocation.current_year_id)
        session.refresh(allocation)
        if allocation.current_year_id == year.id:
            return year
    raise RuleViolation(_("The allocation is being moved to another year; please try again."))


def fingerprint(**parameters) -> str:
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def replayed(session: Session, key: str | None, action: str, print_: str):
    """What an earlier request with this idempotency key made (entity, id), or None. A key used
    for a different request is refused."""
    if not key:
        return None
    row = session.execute(select(IdempotencyKey).where(IdempotencyKey.key == key)).scalar_one_or_none()
    if row is None:
        return None
    if row.action != action or row.fingerprint != print_:
        raise RuleViolation(
            _("This idempotency key was already used for a different request."), "idempotency_key"
        )
    return row


def remember(session: Session, key: str | None, action: str, print_: str, entity: str, entity_id: int, actor):
    if not key:
        return
    if len(key) > 100:
        raise RuleViolation(_("The idempotency key is too long (at most 100 characters)."), "idempotency_key")
    session.add(
        IdempotencyKey(
            key=key,
            action=action,
            fingerprint=print_,
            entity=entity,
            entity_id=entity_id,
            user_id=getattr(actor, "id", None),
        )
    )


def check_key(key: str | None) -> None:
    if key is not None and (not key.strip() or len(key) > 100):
        raise RuleViolation(_("The idempotency key must be 1 to 100 characters long."), "idempotency_key")


# --- fiscal years and categories ----------------------------------------------------------------


def _check_amount(cents, field: str, *, allow_zero: bool = False) -> int:
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise RuleViolation(_("The amount must be a whole number of cents."), field)
    if cents < 0 or (cents == 0 and not allow_zero):
        raise RuleViolation(_("The amount must be greater than zero."), field)
    if cents > MAX_CENTS:
        raise RuleViolation(
            _("This amount is implausibly large (the limit is %(limit)s).", limit=money(MAX_CENTS)), field
        )
    return cents


def get_year(session: Session, year: int) -> FiscalYear | None:
    return session.execute(select(FiscalYear).where(FiscalYear.year == year)).scalar_one_or_none()


def create_fiscal_year(
    session: Session,
    actor,
    year: int,
    appropriation_cents: int = DEFAULT_APPROPRIATION_CENTS,
    *,
    default_categories: bool = True,
    note: str = "",
) -> FiscalYear:
    if isinstance(year, bool) or not isinstance(year, int) or not MIN_YEAR <= year <= MAX_YEAR:
        raise RuleViolation(_("The year must lie between %(a)s and %(b)s.", a=MIN_YEAR, b=MAX_YEAR), "year")
    _check_amount(appropriation_cents, "appropriation_cents", allow_zero=True)
    if get_year(session, year) is not None:
        raise RuleViolation(_("The fiscal year %(year)s exists already.", year=year), "year")
    fiscal_year = FiscalYear(year=year, appropriation_cents=appropriation_cents, note=note or "")
    session.add(fiscal_year)
    session.flush()
    audit.record(session, actor, "create", "fiscal_year", fiscal_year, after=fiscal_year.audit_view())
    if default_categories:
        for position, (code, name, per_mille) in enumerate(DEFAULT_CATEGORIES):
            planned = appropriation_cents * per_mille // 1000
            save_category(
                session,
                actor,
                None,
                fiscal_year,
                code=code,
                name=name,
                planned_cents=planned,
                position=position,
            )
    return fiscal_year


def update_fiscal_year(
    session: Session, actor, fiscal_year: FiscalYear, *, appropriation_cents=None, note=None
) -> FiscalYear:
    year = lock_year(session, fiscal_year.id)
    before = year.audit_view()
    if appropriation_cents is not None and appropriation_cents != year.appropriation_cents:
        _check_amount(appropriation_cents, "appropriation_cents", allow_zero=True)
        if year.status == YearStatus.CLOSED:
            raise RuleViolation(
                _("The fiscal year %(year)s is closed.", year=year.year), "appropriation_cents"
            )
        planned = _planned_total(session, year)
        if appropriation_cents < planned:
            raise RuleViolation(
                _(
                    "The category plans add up to %(planned)s; the appropriation cannot be lower.",
                    planned=money(planned),
                ),
                "appropriation_cents",
            )
        figures = year_figures(session, year)
        if appropriation_cents + figures.carried_in_cents < figures.committed_cents:
            raise RuleViolation(
                _(
                    "%(committed)s are committed in %(year)s; "
                    "the appropriation cannot be lower than %(min)s.",
                    committed=money(figures.committed_cents),
                    year=year.year,
                    min=money(figures.committed_cents - figures.carried_in_cents),
                ),
                "appropriation_cents",
            )
        year.appropriation_cents = appropriation_cents
    if note is not None:
        year.note = note
    after = year.audit_view()
    if after != before or note is not None:
        audit.record(session, actor, "update", "fiscal_year", year, before=before, after=after)
    return year


def open_year(session: Session, actor, fiscal_year: FiscalYear) -> FiscalYear:
    year = lock_year(session, fiscal_year.id)
    if year.status != YearStatus.PLANNING:
        raise RuleViolation(_("Only a year in planning can be opened."), "status")
    year.status = YearStatus.OPEN.value
    audit.record(
        session, actor, "open", "fiscal_year", year, before={"status": "planning"}, after={"status": "open"}
    )
    return year


def reopen_year(session: Session, actor, fiscal_year: FiscalYear, reason: str = "") -> FiscalYear:
    if getattr(actor, "role", None) != Role.ADMIN:
        raise RuleViolation(_("Only an administrator can reopen a closed year."), "status")
    year = lock_year(session, fiscal_year.id)
    if year.status != YearStatus.CLOSED:
        raise RuleViolation(_("Only a closed year can be reopened."), "status")
    if not (reason or "").strip():
        raise RuleViolation(_("Please give a reason for reopening the year."), "reason")
    year.status = YearStatus.OPEN.value
    year.closed_at = None
    audit.record(
        session,
        actor,
        "reopen",
        "fiscal_year",
        year,
        before={"status": "closed"},
        after={"status": "open", "reason": reason.strip()},
    )
    return year


def _planned_total(session: Session, year: FiscalYear, *, without: BudgetCategory | None = None) -> int:
    query = select(func.coalesce(func.sum(BudgetCategory.planned_cents), 0)).where(
        BudgetCategory.fiscal_year_id == year.id
    )
    if without is not None and without.id is not None:
        query = query.where(BudgetCategory.id != without.id)
    return int(session.execute(query).scalar_one())


def save_category(
    session: Session,
    actor,
    category: BudgetCategory | None,
    fiscal_year: FiscalYear,
    *,
    code: str,
    name: str,
    planned_cents: int,
    position: int | None = None,
) -> BudgetCategory:
    """Create (``category`` None) or change a category; plans never sum above the appropriation,
    and a plan never drops below what is committed in the category."""
    year = lock_year(session, fiscal_year.id)
    code, name = (code or "").strip(), (name or "").strip()
    if not code or len(code) > 40:
        raise RuleViolation(_("Please enter a short code (at most 40 characters)."), "code")
    if not name or len(name) > 200:
        raise RuleViolation(_("Please enter a name (at most 200 characters)."), "name")
    _check_amount(planned_cents, "planned_cents", allow_zero=True)
    if year.status == YearStatus.CLOSED:
        raise RuleViolation(_("The fiscal year %(year)s is closed.", year=year.year), "planned_cents")
    if category is not None and category.fiscal_year_id != year.id:
        raise RuleViolation(_("The category belongs to another year."), "fiscal_year")
    clash = session.execute(
        select(BudgetCategory.id).where(BudgetCategory.fiscal_year_id == year.id, BudgetCategory.code == code)
    ).scalar_one_or_none()
    if clash is not None and (category is None or clash != category.id):
        raise RuleViolation(_("The year already has a category with the code %(code)s.", code=code), "code")
    others = _planned_total(session, year, without=category)
    if others + planned_cents > year.appropriation_cents:
        raise RuleViolation(
            _(
                "The plans would add up to %(total)s, more than the appropriation of %(appropriation)s "
                "(%(left)s left to plan).",
                total=money(others + planned_cents),
                appropriation=money(year.appropriation_cents),
                left=money(max(year.appropriation_cents - others, 0)),
            ),
            "planned_cents",
        )
    if category is not None:
        committed = category_committed(session, year, category)
        if planned_cents < committed:
            raise RuleViolation(
                _(
                    "%(committed)s are committed in this category; the plan cannot be lower.",
                    committed=money(committed),
                ),
                "planned_cents",
            )
        before = category.audit_view()
        category.code, category.name, category.planned_cents = code, name, planned_cents
        if position is not None:
            category.position = position
        after = category.audit_view()
        if after != before:
            audit.record(session, actor, "update", "budget_category", category, before=before, after=after)
        return category
    category = BudgetCategory(
        fiscal_year_id=year.id, code=code, name=name, planned_cents=planned_cents, position=position or 0
    )
    session.add(category)
    session.flush()
    audit.record(session, actor, "create", "budget_category", category, after=category.audit_view())
    return category


# --- allocations ----------------------------------------------------------------------------------


def _check_recipient(
    session: Session,
    recipient_kind: str,
    municipality: Municipality | None,
    on: date | None,
    project=None,
):
    if recipient_kind == RecipientKind.MEMBER:
        if municipality is None:
            raise RuleViolation(_("Please choose the member that receives the allocation."), "municipality")
        if project is not None:
            raise RuleViolation(_("An allocation to a member names no project."), "project")
        require_current_member(session, municipality, on)
    elif recipient_kind == RecipientKind.PROJECT:
        if project is None:
            raise RuleViolation(_("Please choose the project that receives the allocation."), "project")
        if municipality is not None:
            raise RuleViolation(_("An allocation to a project has no member."), "municipality")
        if not project.is_active:
            raise RuleViolation(
                _(
                    "The project %(name)s is %(status)s; only planned or running projects receive money.",
                    name=project.name,
                    status=project.status_label,
                ),
                "project",
            )
    elif recipient_kind == RecipientKind.FEDERATION:
        if municipality is not None:
            raise RuleViolation(_("An allocation to the federation itself has no member."), "municipality")
        if project is not None:
            raise RuleViolation(_("An allocation to the federation itself names no project."), "project")
    else:
        raise RuleViolation(_("Unknown kind of recipient."), "recipient_kind")


def _check_text(value, field: str, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise RuleViolation(_("Please fill in this field."), field)
    if len(text) > limit:
        raise RuleViolation(_("At most %(n)s characters.", n=limit), field)
    return text


def _check_dates(decision_date, due, received) -> None:
    if due is not None and decision_date is not None and due < decision_date:
        raise RuleViolation(_("The proof of use cannot be due before the decision."), "proof_of_use_due")
    if received is not None and received > date.today():
        raise RuleViolation(_("The proof of use cannot be received in the future."), "proof_of_use_received")


def create_allocation(
    session: Session,
    actor,
    *,
    fiscal_year: FiscalYear,
    category: BudgetCategory,
    recipient_kind: str,
    municipality: Municipality | None,
    purpose: str,
    amount_cents: int,
    project=None,
    decision_date: date | None = None,
    file_reference: str = "",
    proof_of_use_due: date | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> Allocation:
    """A draft allocation; it binds money only once approved."""
    check_key(idempotency_key)
    year = lock_year(session, fiscal_year.id)
    print_ = fingerprint(
        year=year.id,
        category=category.id,
        kind=recipient_kind,
        municipality=getattr(municipality, "id", None),
        purpose=purpose,
        amount=amount_cents,
        decision=decision_date,
        file=file_reference,
        due=proof_of_use_due,
        note=note,
        **({"project": project.id} if project is not None else {}),
    )
    earlier = replayed(session, idempotency_key, "create_allocation", print_)
    if earlier is not None:
        return session.get(Allocation, earlier.entity_id)
    if year.status == YearStatus.CLOSED:
        raise RuleViolation(_("The fiscal year %(year)s is closed.", year=year.year), "fiscal_year")
    if category.fiscal_year_id != year.id:
        raise RuleViolation(_("The category belongs to another year."), "category")
    _check_amount(amount_cents, "amount_cents")
    _check_recipient(session, recipient_kind, municipality, None, project)
    purpose = _check_text(purpose, "purpose", 500, required=True)
    file_reference = _check_text(file_reference, "file_reference", 100)
    _check_dates(decision_date, proof_of_use_due, None)
    allocation = Allocation(
        fiscal_year_id=year.id,
        current_year_id=year.id,
        category_id=category.id,
        recipient_kind=str(recipient_kind),
        municipality_id=getattr(municipality, "id", None),
        project_id=getattr(project, "id", None),
        purpose=purpose,
        amount_cents=amount_cents,
        decision_date=decision_date,
        file_reference=file_reference,
        proof_of_use_due=proof_of_use_due,
        note=note or "",
        created_by_id=getattr(actor, "id", None),
        status=AllocationStatus.DRAFT.value,
    )
    session.add(allocation)
    session.flush()
    remember(session, idempotency_key, "create_allocation", print_, "allocation", allocation.id, actor)
    audit.record(session, actor, "create", "allocation", allocation, after=allocation.audit_view())
    return allocation


def update_allocation(session: Session, actor, allocation: Allocation, **changes) -> Allocation:
    """Change an allocation's fields. Once approved, year, category, recipient and amount are fixed
    (the ledger holds what was bound); purpose, file reference, dates and note stay editable."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise RuleViolation(_("Unknown field: %(name)s", name=", ".join(sorted(unknown))), sorted(unknown)[0])
    year = _lock_allocation_year(session, allocation)
    before = allocation.audit_view()
    if allocation.status != AllocationStatus.DRAFT:
        for name in LOCKED_ONCE_APPROVED:
            if name in changes and changes[name] != getattr(allocation, name):
                raise RuleViolation(
                    _("Only a draft can change its year, category, recipient or amount."), name
                )
    if allocation.status == AllocationStatus.CANCELLED:
        raise RuleViolation(_("A cancelled allocation cannot be changed."), "status")
    if "amount_cents" in changes:
        _check_amount(changes["amount_cents"], "amount_cents")
    if "category_id" in changes:
        category = session.get(BudgetCategory, changes["category_id"])
        if category is None or category.fiscal_year_id != allocation.fiscal_year_id:
            raise RuleViolation(_("The category belongs to another year."), "category")
    if "recipient_kind" in changes or "municipality_id" in changes or "project_id" in changes:
        from itvsh.projects.models import Project

        kind = changes.get("recipient_kind", allocation.recipient_kind)
        municipality_id = changes.get("municipality_id", allocation.municipality_id)
        project_id = changes.get("project_id", allocation.project_id)
        municipality = session.get(Municipality, municipality_id) if municipality_id else None
        project = session.get(Project, project_id) if project_id else None
        if project_id and project is None:
            raise RuleViolation(_("There is no such project."), "project")
        _check_recipient(session, kind, municipality, None, project)
    if "purpose" in changes:
        changes["purpose"] = _check_text(changes["purpose"], "purpose", 500, required=True)
    if "file_reference" in changes:
        changes["file_reference"] = _check_text(changes["file_reference"], "file_reference", 100)
    if "note" in changes:
        changes["note"] = changes["note"] or ""
    _check_dates(
        changes.get("decision_date", allocation.decision_date),
        changes.get("proof_of_use_due", allocation.proof_of_use_due),
        changes.get("proof_of_use_received", allocation.proof_of_use_received),
    )
    del year
    for name, value in changes.items():
        setattr(allocation, name, value)
    after = allocation.audit_view()
    if after != before or "note" in changes:
        audit.record(session, actor, "update", "allocation", allocation, before=before, after=after)
    return allocation


# --- bookings ---------------------------------------------------------------------------------------


def _book(
    session: Session,
    actor,
    year: FiscalYear,
    allocation: Allocation,
    kind: BookingKind,
    amount_cents: int,
    *,
    committed: int = 0,
    paid: int = 0,
    available: int = 0,
    booked_on: date | None = None,
    note: str = "",
    reverses: Booking | None = None,
    carried_from: Booking | None = None,
) -> Booking:
    booking = Booking(
        fiscal_year_id=year.id,
        allocation_id=allocation.id,
        category_id=allocation.category_id,
        municipality_id=allocation.municipality_id,
        kind=kind.value,
        amount_cents=amount_cents,
        committed_delta_cents=committed,
        paid_delta_cents=paid,
        available_delta_cents=available,
        reverses_id=getattr(reverses, "id", None),
        carried_from_id=getattr(carried_from, "id", None),
        booked_on=booked_on or date.today(),
        note=_check_text(note, "note", 500),
        booked_by_id=getattr(actor, "id", None),
        booked_by=audit.actor_label(actor),
    )
    session.add(booking)
    session.flush()
    audit.record(session, actor, "booking", "booking", booking, after=booking.audit_view())
    return booking


def _check_bookable(year: FiscalYear, field: str = "fiscal_year") -> None:
    if year.status == YearStatus.CLOSED:
        raise RuleViolation(
            _("The fiscal year %(year)s is closed; nothing can be booked into it.", year=year.year), field
        )
    if year.status == YearStatus.PLANNING:
        raise RuleViolation(
            _("The fiscal year %(year)s is still in planning; open it before booking.", year=year.year), field
        )


def _check_limits(
    session: Session,
    year: FiscalYear,
    allocation: Allocation,
    *,
    committed: int,
    paid: int,
    field: str = "amount_cents",
) -> None:
    """Refuse a booking with these effects if it breaks a limit; say which and what is left."""
    if committed > 0:
        figures = year_figures(session, year)
        if figures.committed_cents + committed > figures.available_cents:
            raise RuleViolation(
                _(
                    "Not enough money in %(year)s: %(left)s are still free, %(asked)s were asked for.",
                    year=year.year,
                    left=money(max(figures.free_cents, 0)),
                    asked=money(committed),
                ),
                field,
            )
        # the plan as it is now (under the year's lock), not as this session may have loaded it before
        category = session.get(BudgetCategory, allocation.category_id, populate_existing=True)
        if category.fiscal_year_id == year.id:
            used = category_committed(session, year, category)
            if used + committed > category.planned_cents:
                raise RuleViolation(
                    _(
                        "The plan of the category “%(category)s” would be exceeded: %(left)s are left of "
                        "%(planned)s, %(asked)s were asked for.",
                        category=category.name,
                        left=money(max(category.planned_cents - used, 0)),
                        planned=money(category.planned_cents),
                        asked=money(committed),
                    ),
                    field,
                )
    figures = allocation_figures(session, allocation)
    in_year = allocation_figures(session, allocation, year)
    if paid > 0 and (
        figures.paid_cents + paid > figures.committed_cents + committed
        or in_year.paid_cents + paid > in_year.committed_cents + committed
    ):
        left = min(figures.open_cents, in_year.open_cents) + committed
        raise RuleViolation(
            _(
                "That is more than is committed: %(left)s of the allocation are still open for payment.",
                left=money(max(left, 0)),
            ),
            field,
        )
    if paid < 0 and figures.paid_cents + paid < 0:
        raise RuleViolation(
            _("That is more than was paid: %(paid)s have been paid out.", paid=money(figures.paid_cents)),
            field,
        )
    if committed < 0 and (
        figures.committed_cents + committed < figures.paid_cents + paid
        or in_year.committed_cents + committed < in_year.paid_cents + paid
    ):
        left = min(figures.open_cents, in_year.open_cents)
        raise RuleViolation(
            _(
                "That is more than the open commitment: %(left)s are committed and not yet paid.",
                left=money(max(left, 0)),
            ),
            field,
        )


def _refresh_status(session: Session, actor, allocation: Allocation) -> None:
    if allocation.status not in ACTIVE:
        return
    figures = allocation_figures(session, allocation)
    if figures.paid_cents <= 0:
        status = AllocationStatus.APPROVED
    elif figures.paid_cents < figures.committed_cents:
        status = AllocationStatus.PARTIALLY_PAID
    else:
        status = AllocationStatus.PAID
    _set_status(session, actor, allocation, status)


def _set_status(session: Session, actor, allocation: Allocation, status: AllocationStatus, **extra) -> None:
    if allocation.status == status.value:
        return
    before = allocation.status
    allocation.status = status.value
    audit.record(
        session,
        actor,
        "status",
        "allocation",
        allocation,
        before={"status": before},
        after={"status": status.value, **extra},
    )


def _replay_booking(session: Session, key: str | None, action: str, **parameters):
    print_ = fingerprint(**parameters)
    earlier = replayed(session, key, action, print_)
    return print_, (session.get(Booking, earlier.entity_id) if earlier is not None else None)


def approve(
    session: Session,
    actor,
    allocation: Allocation,
    *,
    on: date | None = None,
    idempotency_key: str | None = None,
) -> Booking:
    """Approve a draft (Bewilligung): book its amount as a commitment in its year."""
    check_key(idempotency_key)
    year = _lock_allocation_year(session, allocation)
    print_, earlier = _replay_booking(session, idempotency_key, "approve", allocation=allocation.id, on=on)
    if earlier is not None:
        return earlier
    if allocation.status != AllocationStatus.DRAFT:
        raise RuleViolation(
            _("Only a draft can be approved; this allocation is %(status)s.", status=allocation.status_label),
            "status",
        )
    _check_bookable(year)
    if allocation.recipient_kind == RecipientKind.MEMBER:
        require_current_member(session, allocation.municipality, on)
    elif allocation.recipient_kind == RecipientKind.PROJECT:
        _check_recipient(session, RecipientKind.PROJECT, None, on, allocation.project)
    _check_limits(session, year, allocation, committed=allocation.amount_cents, paid=0)
    booking = _book(
        session,
        actor,
        year,
        allocation,
        BookingKind.COMMITMENT,
        allocation.amount_cents,
        committed=allocation.amount_cents,
        booked_on=on,
    )
    if allocation.decision_date is None:
        allocation.decision_date = booking.booked_on
    _set_status(session, actor, allocation, AllocationStatus.APPROVED)
    remember(session, idempotency_key, "approve", print_, "booking", booking.id, actor)
    return booking


def disburse(
    session: Session,
    actor,
    allocation: Allocation,
    amount_cents: int,
    *,
    on: date | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> Booking:
    """Pay (part of) an approved allocation (Auszahlung)."""
    return _money_booking(
        session,
        actor,
        allocation,
        BookingKind.DISBURSEMENT,
        amount_cents,
        on,
        note,
        idempotency_key,
        paid_sign=1,
    )


def repay(
    session: Session,
    actor,
    allocation: Allocation,
    amount_cents: int,
    *,
    on: date | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> Booking:
    """Money paid back by the recipient (Rückzahlung); the commitment stays open until released."""
    return _money_booking(
        session,
        actor,
        allocation,
        BookingKind.REPAYMENT,
        amount_cents,
        on,
        note,
        idempotency_key,
        paid_sign=-1,
    )


def release(
    session: Session,
    actor,
    allocation: Allocation,
    amount_cents: int,
    *,
    on: date | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> Booking:
    """Give back part of an open commitment (e.g. the project cost less)."""
    return _money_booking(
        session,
        actor,
        allocation,
        BookingKind.RELEASE,
        amount_cents,
        on,
        note,
        idempotency_key,
        committed_sign=-1,
    )


def _money_booking(
    session,
    actor,
    allocation,
    kind: BookingKind,
    amount_cents,
    on,
    note,
    key,
    *,
    committed_sign: int = 0,
    paid_sign: int = 0,
) -> Booking:
    check_key(key)
    _check_amount(amount_cents, "amount_cents")  # before any arithmetic on it: text or None is refused
    committed, paid = committed_sign * amount_cents, paid_sign * amount_cents
    year = _lock_allocation_year(session, allocation)
    print_, earlier = _replay_booking(
        session, key, kind.value, allocation=allocation.id, amount=amount_cents, on=on, note=note
    )
    if earlier is not None:
        return earlier
    allowed = ACTIVE + ((AllocationStatus.SETTLED,) if kind != BookingKind.DISBURSEMENT else ())
    if allocation.status not in allowed:
        raise RuleViolation(
            _(
                "This allocation is %(status)s; a %(kind)s is not possible.",
                status=allocation.status_label,
                kind=BOOKING_KIND_LABELS[kind],
            ),
            "status",
        )
    _check_bookable(year)
    _check_limits(session, year, allocation, committed=committed, paid=paid)
    if kind == BookingKind.RELEASE:
        figures = allocation_figures(session, allocation)
        if figures.committed_cents - amount_cents <= 0 and figures.paid_cents <= 0:
            raise RuleViolation(
                _("Releasing everything cancels the allocation: use “cancel” instead."), "amount_cents"
            )
    booking = _book(
        session,
        actor,
        year,
        allocation,
        kind,
        amount_cents,
        committed=committed,
        paid=paid,
        booked_on=on,
        note=note,
    )
    _refresh_status(session, actor, allocation)
    remember(session, key, kind.value, print_, "booking", booking.id, actor)
    return booking


def reverse(
    session: Session,
    actor,
    booking: Booking,
    *,
    note: str = "",
    on: date | None = None,
    idempotency_key: str | None = None,
) -> Booking:
    """Cancel one booking whole with a Storno that names it (at most once, in its own year)."""
    check_key(idempotency_key)
    allocation = booking.allocation
    year = lock_year(session, booking.fiscal_year_id)
    session.refresh(allocation)
    print_, earlier = _replay_booking(
        session, idempotency_key, "reverse", booking=booking.id, note=note, on=on
    )
    if earlier is not None:
        return earlier
    if not (note or "").strip():
        raise RuleViolation(_("Please give the reason for the reversal."), "note")
    if booking.kind == BookingKind.REVERSAL:
        raise RuleViolation(
            _("A reversal cannot itself be reversed; book the amount again instead."), "booking"
        )
    if booking.kind == BookingKind.CARRY_OVER:
        raise RuleViolation(_("A carry-over is part of a year's close and cannot be reversed."), "booking")
    if allocation.status not in ACTIVE:
        raise RuleViolation(
            _(
                "This allocation is %(status)s; its bookings cannot be reversed.",
                status=allocation.status_label,
            ),
            "booking",
        )
    already = session.execute(
        select(Booking.id).where(Booking.reverses_id == booking.id)
    ).scalar_one_or_none()
    if already is not None:
        raise RuleViolation(
            _("Booking %(id)s has already been reversed (by booking %(by)s).", id=booking.id, by=already),
            "booking",
        )
    _check_bookable(year)
    committed, paid = -booking.committed_delta_cents, -booking.paid_delta_cents
    _check_limits(session, year, allocation, committed=committed, paid=paid)
    reversal = _book(
        session,
        actor,
        year,
        allocation,
        BookingKind.REVERSAL,
        booking.amount_cents,
        committed=committed,
        paid=paid,
        available=-booking.available_delta_cents,
        booked_on=on,
        note=note,
        reverses=booking,
    )
    if booking.kind == BookingKind.COMMITMENT:
        figures = allocation_figures(session, allocation)
        if figures.committed_cents == 0 and figures.paid_cents == 0:
            _set_status(session, actor, allocation, AllocationStatus.DRAFT, reason="commitment reversed")
    _refresh_status(session, actor, allocation)
    remember(session, idempotency_key, "reverse", print_, "booking", reversal.id, actor)
    return reversal


def cancel(
    session: Session,
    actor,
    allocation: Allocation,
    *,
    reason: str = "",
    on: date | None = None,
    idempotency_key: str | None = None,
) -> Booking | None:
    """Cancel a draft, or an approved allocation nothing was paid on (its commitment is released)."""
    check_key(idempotency_key)
    year = _lock_allocation_year(session, allocation)
    if allocation.status == AllocationStatus.CANCELLED:
        return None  # a second submission changes nothing
    if allocation.status not in (AllocationStatus.DRAFT, AllocationStatus.APPROVED):
        raise RuleViolation(
            _(
                "Only a draft or an approved allocation without payments can be cancelled; this one is "
                "%(status)s.",
                status=allocation.status_label,
            ),
            "status",
        )
    booking = None
    if allocation.status == AllocationStatus.APPROVED:
        figures = allocation_figures(session, allocation)
        if figures.paid_cents > 0:
            raise RuleViolation(
                _("Payments were made on this allocation; release the rest instead."), "status"
            )
        _check_bookable(year)
        if figures.committed_cents > 0:
            booking = _book(
                session,
                actor,
                year,
                allocation,
                BookingKind.RELEASE,
                figures.committed_cents,
                committed=-figures.committed_cents,
                booked_on=on,
                note=reason or "Storniert / cancelled",
            )
    _set_status(session, actor, allocation, AllocationStatus.CANCELLED, reason=(reason or "").strip())
    return booking


def settle(session: Session, actor, allocation: Allocation, *, received_on: date | None = None) -> Allocation:
    """Record the proof of use (Verwendungsnachweis) of a fully paid allocation and settle it."""
    _lock_allocation_year(session, allocation)
    if allocation.status == AllocationStatus.SETTLED:
        return allocation
    if allocation.status != AllocationStatus.PAID:
        raise RuleViolation(
            _(
                "Only a fully paid allocation can be settled; this one is %(status)s.",
                status=allocation.status_label,
            ),
            "status",
        )
    received = received_on or allocation.proof_of_use_received
    if received is None:
        raise RuleViolation(
            _("Please enter the date the proof of use was received."), "proof_of_use_received"
        )
    _check_dates(allocation.decision_date, allocation.proof_of_use_due, received)
    allocation.proof_of_use_received = received
    _set_status(
        session, actor, allocation, AllocationStatus.SETTLED, proof_of_use_received=received.isoformat()
    )
    return allocation


# --- year-end close -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenCommitment:
    allocation: Allocation
    committed_cents: int
    paid_cents: int

    @property
    def open_cents(self) -> int:
        return self.committed_cents - self.paid_cents


def open_commitments(session: Session, fiscal_year: FiscalYear) -> list[OpenCommitment]:
    """Allocations whose money sits in this year and is committed but not yet paid."""
    rows = session.execute(
        select(
            Allocation,
            func.coalesce(func.sum(Booking.committed_delta_cents), 0),
            func.coalesce(func.sum(Booking.paid_delta_cents), 0),
        )
        .join(Booking, (Booking.allocation_id == Allocation.id) & (Booking.fiscal_year_id == fiscal_year.id))
        .where(Allocation.current_year_id == fiscal_year.id)
        .group_by(Allocation.id)
        .having(func.sum(Booking.committed_delta_cents) - func.sum(Booking.paid_delta_cents) > 0)
        .order_by(Allocation.id)
        .execution_options(populate_existing=True)  # as they are now, not as loaded before the lock
    ).all()
    return [OpenCommitment(allocation, int(c), int(p)) for allocation, c, p in rows]


CARRY, RELEASE = "carry", "release"


def close_year(
    session: Session,
    actor,
    fiscal_year: FiscalYear,
    decisions: dict[int, str] | None = None,
    *,
    on: date | None = None,
) -> dict:
    """Close an open year: per allocation with an open commitment, carry the unspent money into the
    next year (a ``carry_over`` pair; the default) or release it. Creates the next year (in planning)
    if it does not exist. Returns counts and sums."""
    decisions = decisions or {}
    for allocation_id, decision in decisions.items():
        if decision not in (CARRY, RELEASE):
            raise RuleViolation(
                _("Allocation %(id)s: choose “carry” or “release”.", id=allocation_id), "decisions"
            )
    year = lock_year(session, fiscal_year.id)
    if year.status != YearStatus.OPEN:
        raise RuleViolation(_("Only an open year can be closed."), "status")
    following = get_year(session, year.year + 1)
    if following is None:
        following = create_fiscal_year(session, actor, year.year + 1)
    following = lock_year(session, following.id)
    if following.status == YearStatus.CLOSED:
        raise RuleViolation(_("The following year %(year)s is closed.", year=following.year), "status")
    pending = open_commitments(session, year)
    unknown = set(decisions) - {item.allocation.id for item in pending}
    if unknown:
        raise RuleViolation(
            _("Allocation %(id)s has no open commitment in %(year)s.", id=min(unknown), year=year.year),
            "decisions",
        )
    carried = released = carried_cents = released_cents = 0
    when = on or date(year.year, 12, 31)
    for item in pending:
        allocation, amount = item.allocation, item.open_cents
        if decisions.get(allocation.id, CARRY) == RELEASE:
            _book(
                session,
                actor,
                year,
                allocation,
                BookingKind.RELEASE,
                amount,
                committed=-amount,
                booked_on=when,
                note=f"Jahresabschluss {year.year}",
            )
            released += 1
            released_cents += amount
            figures = allocation_figures(session, allocation)
            if allocation.status in ACTIVE and figures.committed_cents == 0 and figures.paid_cents == 0:
                # nothing is left of it: cancelled (it could not be cancelled later, in a closed year)
                _set_status(
                    session,
                    actor,
                    allocation,
                    AllocationStatus.CANCELLED,
                    reason=f"Jahresabschluss {year.year}",
                )
            else:
                _refresh_status(session, actor, allocation)
        else:
            out = _book(
                session,
                actor,
                year,
                allocation,
                BookingKind.CARRY_OVER,
                amount,
                committed=-amount,
                booked_on=when,
                note=f"Ausgaberest {year.year} → {following.year}",
            )
            _book(
                session,
                actor,
                following,
                allocation,
                BookingKind.CARRY_OVER,
                amount,
                committed=amount,
                available=amount,
                booked_on=date(following.year, 1, 1),
                carried_from=out,
                note=f"Ausgaberest aus {year.year}",
            )
            allocation.current_year_id = following.id
            carried += 1
            carried_cents += amount
    year.status = YearStatus.CLOSED.value
    year.closed_at = utcnow()
    summary = {
        "carried": carried,
        "carried_cents": carried_cents,
        "released": released,
        "released_cents": released_cents,
        "next_year": following.year,
    }
    audit.record(
        session,
        actor,
        "close",
        "fiscal_year",
        year,
        before={"status": "open"},
        after={"status": "closed", **summary},
    )
    return summary
