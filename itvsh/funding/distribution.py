"""Distribution keys (Verteilungsschlüssel): split an amount over member Gemeinden.

Methods: equal shares, per capita, or a base amount for each plus the rest per capita. Only
Gemeinden (including Städte and kreisfreie Städte) take part: Ämter and Kreise receive individual
allocations, so no population is counted twice. Shares are rounded with the largest-remainder
method to whole cents, so they add up exactly to the amount and each lies within one cent of its
exact quota; ties go to the lower official key (AGS), so the result does not depend on the order
of the input. :func:`preview` shows the table; :func:`create_distribution` makes the draft
allocations in one transaction and keeps the key, its parameters and the population date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from itvsh.core import audit
from itvsh.core.rules import RuleViolation
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    BudgetCategory,
    Distribution,
    DistributionMethod,
    DistributionSelection,
    FiscalYear,
    RecipientKind,
    YearStatus,
)
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind
from itvsh.tenants.services import current_members_query

MAX_LIST = 2000


def largest_remainder(total_cents: int, weights: list[tuple[str, int]]) -> dict[str, int]:
    """Split ``total_cents`` in proportion to the integer ``weights`` (key, weight): each key gets
    the floor of its exact quota, and the cents left over go one each to the largest remainders,
    ties to the lower key. Exact integer arithmetic, no floats."""
    if total_cents < 0:
        raise ValueError("total must not be negative")
    weight_sum = sum(w for _key, w in weights)
    if weight_sum <= 0:
        raise ValueError("the weights must add up to more than zero")
    shares: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for key, weight in weights:
        if weight < 0:
            raise ValueError("weights must not be negative")
        quota, remainder = divmod(total_cents * weight, weight_sum)
        shares[key] = quota
        remainders.append((-remainder, key))
    left = total_cents - sum(shares.values())
    remainders.sort()
    for _negative_remainder, key in remainders[:left]:
        shares[key] += 1
    return shares


def split(
    method: str, total_cents: int, base_cents: int, recipients: list[tuple[str, int]]
) -> dict[str, int]:
    """The amount for each recipient (key, population) under ``method``."""
    if not recipients:
        raise ValueError("no recipients")
    if method == DistributionMethod.EQUAL:
        return largest_remainder(total_cents, [(key, 1) for key, _population in recipients])
    if method == DistributionMethod.PER_CAPITA:
        return largest_remainder(total_cents, recipients)
    if method == DistributionMethod.BASE_PLUS_PER_CAPITA:
        rest = total_cents - base_cents * len(recipients)
        if rest < 0:
            raise ValueError("the base amounts exceed the total")
        shares = largest_remainder(rest, recipients)
        return {key: base_cents + share for key, share in shares.items()}
    raise ValueError(f"unknown method {method!r}")


@dataclass
class PreviewRow:
    key: str
    name: str
    municipality_id: int
    population: int
    amount_cents: int


@dataclass
class Preview:
    fiscal_year: FiscalYear
    category: BudgetCategory
    method: str
    selection: str
    parameters: dict
    total_cents: int
    base_cents: int
    population_date: date | None
    rows: list[PreviewRow] = field(default_factory=list)

    @property
    def population(self) -> int:
        return sum(row.population for row in self.rows)

    @property
    def allocated_cents(self) -> int:
        return sum(row.amount_cents for row in self.rows)

    def share_per_mille(self, row: PreviewRow) -> int:
        return row.amount_cents * 1000 // self.total_cents if self.total_cents else 0


def _recipients(session: Session, selection: str, parameters: dict, on: date | None):
    """Current member Gemeinden of the selection: (id, key, name, population, population_date)."""
    query = (
        select(
            Municipality.id,
            Municipality.key,
            Municipality.name,
            Municipality.population,
            Municipality.population_date,
        )
        .where(Municipality.kind.in_([kind.value for kind in LOCAL_KINDS]))
        .where(Municipality.id.in_(current_members_query(on)))
        .order_by(Municipality.key)
    )
    if selection == DistributionSelection.ALL:
        pass
    elif selection in (DistributionSelection.KREIS, DistributionSelection.AMT):
        key = str(parameters.get("key") or "").strip()
        kind = MunicipalityKind.KREIS if selection == DistributionSelection.KREIS else MunicipalityKind.AMT
        parent = session.execute(
            select(Municipality.id, Municipality.kind).where(Municipality.key == key)
        ).one_or_none()
        if parent is None or parent.kind != kind.value:
            what = _("Kreis") if kind == MunicipalityKind.KREIS else _("Amt")
            raise RuleViolation(_("There is no %(what)s with the key “%(key)s”.", what=what, key=key), "key")
        column = Municipality.kreis_id if kind == MunicipalityKind.KREIS else Municipality.amt_id
        query = query.where(column == parent.id)
    elif selection == DistributionSelection.LIST:
        keys = [str(k).strip() for k in parameters.get("keys") or [] if str(k).strip()]
        if not keys:
            raise RuleViolation(_("Please list the official keys of the Gemeinden."), "keys")
        if len(keys) > MAX_LIST:
            raise RuleViolation(_("At most %(n)s Gemeinden can be listed.", n=MAX_LIST), "keys")
        duplicates = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) != len(keys) else []
        if duplicates:
            raise RuleViolation(_("Listed twice: %(keys)s", keys=", ".join(duplicates)), "keys")
        query = query.where(Municipality.key.in_(keys))
        rows = session.execute(query).all()
        missing = sorted(set(keys) - {row.key for row in rows})
        if missing:
            raise RuleViolation(
                _("Not a current member Gemeinde: %(keys)s", keys=", ".join(missing[:20])), "keys"
            )
        return rows
    else:
        raise RuleViolation(_("Unknown selection."), "selection")
    return session.execute(query).all()


def preview(
    session: Session,
    *,
    fiscal_year: FiscalYear,
    category: BudgetCategory,
    method: str,
    selection: str,
    parameters: dict | None = None,
    total_cents: int,
    base_cents: int = 0,
    on: date | None = None,
) -> Preview:
    """The table of shares (nothing is written)."""
    parameters = dict(parameters or {})
    if category.fiscal_year_id != fiscal_year.id:
        raise RuleViolation(_("The category belongs to another year."), "category")
    if method not in {m.value for m in DistributionMethod}:
        raise RuleViolation(_("Unknown method."), "method")
    ledger._check_amount(total_cents, "total_cents")
    ledger._check_amount(base_cents, "base_cents", allow_zero=True)
    if method != DistributionMethod.BASE_PLUS_PER_CAPITA and base_cents:
        raise RuleViolation(_("A base amount belongs only to “base amount plus per capita”."), "base_cents")
    rows = _recipients(session, selection, parameters, on)
    if not rows:
        raise RuleViolation(_("The selection contains no current member Gemeinde."), "selection")
    missing_population = [row.key for row in rows if row.population is None]
    if method != DistributionMethod.EQUAL and missing_population:
        raise RuleViolation(
            _("No population is known for: %(keys)s", keys=", ".join(missing_population[:20])), "method"
        )
    weights = [(row.key, row.population or 0) for row in rows]
    if method != DistributionMethod.EQUAL and sum(w for _k, w in weights) <= 0:
        raise RuleViolation(_("The selected Gemeinden have no population to distribute by."), "method")
    if method == DistributionMethod.BASE_PLUS_PER_CAPITA and base_cents * len(rows) > total_cents:
        raise RuleViolation(
            _(
                "%(n)s base amounts of %(base)s add up to more than the total.",
                n=len(rows),
                base=ledger.money(base_cents),
            ),
            "base_cents",
        )
    shares = split(method, total_cents, base_cents, weights)
    if method == DistributionMethod.EQUAL:
        zero = [row.key for row in rows if shares[row.key] == 0]
        if zero:
            raise RuleViolation(
                _("The amount is too small to give every Gemeinde at least one cent."), "total_cents"
            )
    dates = {row.population_date for row in rows if row.population_date is not None}
    result = Preview(
        fiscal_year=fiscal_year,
        category=category,
        method=method,
        selection=selection,
        parameters=parameters,
        total_cents=total_cents,
        base_cents=base_cents,
        population_date=max(dates) if dates else None,
        rows=[PreviewRow(row.key, row.name, row.id, row.population or 0, shares[row.key]) for row in rows],
    )
    return result


def create_distribution(
    session: Session,
    actor,
    *,
    fiscal_year: FiscalYear,
    category: BudgetCategory,
    method: str,
    selection: str,
    parameters: dict | None = None,
    total_cents: int,
    base_cents: int = 0,
    purpose: str,
    decision_date: date | None = None,
    file_reference: str = "",
    proof_of_use_due: date | None = None,
    idempotency_key: str | None = None,
) -> Distribution:
    """Create the draft allocations of a distribution in one go (one audit event with the shares)."""
    ledger.check_key(idempotency_key)
    year = ledger.lock_year(session, fiscal_year.id)
    print_ = ledger.fingerprint(
        year=year.id,
        category=category.id,
        method=method,
        selection=selection,
        parameters=parameters,
        total=total_cents,
        base=base_cents,
        purpose=purpose,
        decision=decision_date,
        file=file_reference,
        due=proof_of_use_due,
    )
    earlier = ledger.replayed(session, idempotency_key, "create_distribution", print_)
    if earlier is not None:
        return session.get(Distribution, earlier.entity_id)
    if year.status == YearStatus.CLOSED:
        raise RuleViolation(_("The fiscal year %(year)s is closed.", year=year.year), "fiscal_year")
    purpose = ledger._check_text(purpose, "purpose", 500, required=True)
    file_reference = ledger._check_text(file_reference, "file_reference", 100)
    ledger._check_dates(decision_date, proof_of_use_due, None)
    table = preview(
        session,
        fiscal_year=year,
        category=category,
        method=method,
        selection=selection,
        parameters=parameters,
        total_cents=total_cents,
        base_cents=base_cents,
    )
    distribution = Distribution(
        fiscal_year_id=year.id,
        category_id=category.id,
        method=method,
        selection=selection,
        parameters=table.parameters,
        total_cents=total_cents,
        base_cents=base_cents,
        population_date=table.population_date,
        recipients=len(table.rows),
        purpose=purpose,
        created_by_id=getattr(actor, "id", None),
    )
    session.add(distribution)
    session.flush()
    values = [
        {
            "fiscal_year_id": year.id,
            "current_year_id": year.id,
            "category_id": category.id,
            "recipient_kind": RecipientKind.MEMBER.value,
            "municipality_id": row.municipality_id,
            "purpose": purpose,
            "amount_cents": row.amount_cents,
            "status": AllocationStatus.DRAFT.value,
            "decision_date": decision_date,
            "file_reference": file_reference,
            "proof_of_use_due": proof_of_use_due,
            "distribution_id": distribution.id,
            "note": "",
            "created_by_id": getattr(actor, "id", None),
        }
        for row in table.rows
        if row.amount_cents > 0  # a Gemeinde whose share rounds to nothing gets no allocation
    ]
    session.execute(insert(Allocation), values)
    ledger.remember(
        session, idempotency_key, "create_distribution", print_, "distribution", distribution.id, actor
    )
    audit.record(
        session,
        actor,
        "create",
        "distribution",
        distribution,
        after={**distribution.audit_view(), "shares": [[row.key, row.amount_cents] for row in table.rows]},
    )
    return distribution
