"""The staffing demo: the two people the Land seconds to the federation from 2019, their secondments,
their assignments to members over the years and the personnel cost the federation bears.

Loaded once (nothing when the staff register has anyone), everything through the staffing services
as the demo actor, so every rule holds: Anna Petersen is seconded full time (Abordnung, the Land
pays) and works full time for Kiel, then half for Kiel and half for the Kreis, then — after a
quarter without assignments — for the Amt and Kiel, later partly for Krummwisch; Jens Hansen is
assigned (Zuweisung) full time until the end of 2020, is away in the first half of 2021 and comes
back half time (Personalgestellung, the federation pays) for Kiel, then for the Kreis and
Krummwisch. Several assignments end the day before the next one starts; some run into the future
(plans). Nothing starts after ``today``.

The federation-borne secondment's cost is booked for every open fiscal year from its start (closed
years take no bookings) and paid quarter by quarter as far as ``today``. Where the category
Personal has no room left for it, its plan is raised and another category's plan lowered by the
same amount, so the plans stay within the appropriation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.funding import ledger
from itvsh.funding.models import Allocation, BudgetCategory, FiscalYear, YearStatus
from itvsh.staffing import services
from itvsh.staffing.models import CostBearer, Instrument, Secondment, StaffCost, StaffMember
from itvsh.staffing.periods import end_of, month_end
from itvsh.tenants.services import get_by_key

SECONDED_FROM = date(2019, 1, 1)
# The demo logins' tenants (itvsh/demo.py DEMO_LOGINS), so their portal shows staff.
KIEL, KRUMMWISCH, ACHTERWEHR, RD_ECK = "01002000", "01058093", "010585803", "01058"

PEOPLE = {
    "anna": {
        "name": "Anna Petersen",
        "work_email": "anna.petersen@itv-sh.example",
        "home_authority": "Ministerium für Energiewende, Landwirtschaft, Umwelt, Natur und Digitalisierung",
        "notes": "Ansprechpartnerin für die OZG-Koordination in den Kommunen.",
        "annual_cost_cents": 86_400_00,
    },
    "jens": {
        "name": "Jens Hansen",
        "work_email": "jens.hansen@itv-sh.example",
        "home_authority": "Finanzministerium",
        "notes": "Schwerpunkt Dokumentenmanagement und E-Akte.",
        "annual_cost_cents": 74_800_00,
    },
}


@dataclass(frozen=True)
class _Secondment:
    key: str
    person: str
    instrument: Instrument
    starts_on: date
    ends_on: date | None
    fte: int
    cost_bearer: CostBearer
    legal_reference: str


SECONDMENTS = (
    _Secondment(
        "anna",
        "anna",
        Instrument.ABORDNUNG,
        SECONDED_FROM,
        None,
        1000,
        CostBearer.LAND,
        "Abordnung nach dem Landesbeamtengesetz",
    ),
    _Secondment(
        "jens-1",
        "jens",
        Instrument.ZUWEISUNG,
        SECONDED_FROM,
        date(2020, 12, 31),
        1000,
        CostBearer.LAND,
        "§ 4 Abs. 2 TV-L",
    ),
    # The first half of 2021 Jens is back at the ministry: a gap between his secondments.
    _Secondment(
        "jens-2",
        "jens",
        Instrument.PERSONALGESTELLUNG,
        date(2021, 7, 1),
        None,
        500,
        CostBearer.FEDERATION,
        "§ 4 Abs. 3 TV-L",
    ),
)

# (person, member key, first day, last day or None, share per mille, role)
ASSIGNMENTS = (
    # Anna: full time for Kiel; from the next day half for Kiel, half for the Kreis.
    ("anna", KIEL, SECONDED_FROM, date(2020, 6, 30), 1000, "OZG-Koordination: Online-Dienste des Bürgeramts"),
    ("anna", KIEL, date(2020, 7, 1), date(2022, 12, 31), 500, "OZG-Koordination der Landeshauptstadt"),
    ("anna", RD_ECK, date(2020, 7, 1), date(2022, 12, 31), 500, "Kreisweites Dokumentenmanagement"),
    # January to March 2023 without assignments (free time), then the Amt and Kiel.
    ("anna", ACHTERWEHR, date(2023, 4, 1), None, 600, "Digitalisierung der Amtsverwaltung"),
    ("anna", KIEL, date(2023, 4, 1), date(2025, 12, 31), 400, "E-Akte in der Stadtverwaltung"),
    ("anna", KRUMMWISCH, date(2026, 1, 1), date(2027, 6, 30), 200, "Ratsinformationssystem"),
    # Jens, first secondment: full time for the Kreis, then split between Krummwisch and the Amt.
    ("jens", RD_ECK, SECONDED_FROM, date(2019, 12, 31), 1000, "Geodateninfrastruktur des Kreises"),
    ("jens", KRUMMWISCH, date(2020, 1, 1), date(2020, 12, 31), 500, "Breitbandanschluss des Gemeindebüros"),
    ("jens", ACHTERWEHR, date(2020, 1, 1), date(2020, 12, 31), 500, "Informationssicherheit im Amt"),
    # Jens, second secondment (half time): Kiel, then the Kreis and Krummwisch.
    ("jens", KIEL, date(2021, 7, 1), date(2023, 6, 30), 500, "Open-Data-Portal der Landeshauptstadt"),
    ("jens", RD_ECK, date(2023, 7, 1), date(2025, 6, 30), 250, "Rollout Dokumentenmanagement"),
    ("jens", KRUMMWISCH, date(2023, 7, 1), None, 250, "Ansprechpartner Digitalisierung"),
    ("jens", RD_ECK, date(2025, 7, 1), date(2027, 12, 31), 200, "E-Akte in der Kreisverwaltung"),
)


def load_staffing(session, today: date | None = None) -> list[str]:
    """The staffing demo (see the module doc), once: nothing when a staff member exists already.
    Returns what was made, e.g. ``["2 staff members", "3 secondments", "13 assignments", ...]``."""
    from itvsh.demo import DEMO_ACTOR  # itvsh.demo imports this module

    today = today or date.today()
    set_scope(session, ALL)  # the capacity check sees all of a person's assignments
    if today < SECONDED_FROM or session.execute(select(func.count()).select_from(StaffMember)).scalar_one():
        return []
    people = {
        key: services.create_staff_member(session, DEMO_ACTOR, **fields) for key, fields in PEOPLE.items()
    }
    secondments = {
        plan.key: services.create_secondment(
            session,
            DEMO_ACTOR,
            staff_member=people[plan.person],
            instrument=plan.instrument.value,
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            fte=plan.fte,
            cost_bearer=plan.cost_bearer.value,
            legal_reference=plan.legal_reference,
        )
        for plan in SECONDMENTS
        if plan.starts_on <= today
    }
    members = {key: get_by_key(session, key) for key in {a[1] for a in ASSIGNMENTS}}
    made = 0
    for person, key, starts_on, ends_on, fte, role in ASSIGNMENTS:
        if starts_on > today:
            continue  # nothing starts in the future; what has started may end there (a plan)
        services.create_assignment(
            session,
            DEMO_ACTOR,
            staff_member=people[person],
            municipality=members[key],
            starts_on=starts_on,
            ends_on=ends_on,
            fte=fte,
            role=role,
        )
        made += 1
    open_years = session.execute(
        select(FiscalYear).where(FiscalYear.status == YearStatus.OPEN.value).order_by(FiscalYear.year)
    ).scalars()
    booked = sum(book_staff_costs(session, DEMO_ACTOR, year, today) for year in list(open_years))
    made_list = [f"{len(people)} staff members", f"{len(secondments)} secondments", f"{made} assignments"]
    # itvsh.demo loads staffing before funding, whose years then book the cost (so usually none here)
    return made_list + ([f"{booked} staff cost bookings"] if booked else [])


def book_staff_costs(session, actor, fiscal_year: FiscalYear, today: date) -> int:
    """Book the cost of every federation-borne secondment that falls into ``fiscal_year`` and has
    started by ``today`` (once per secondment and year), and pay it quarter by quarter as far as
    ``today``. The year must be open; returns how many were booked. The funding demo may call this
    for each year before closing it."""
    first, last = date(fiscal_year.year, 1, 1), date(fiscal_year.year, 12, 31)
    booked_already = select(StaffCost.secondment_id).where(StaffCost.fiscal_year_id == fiscal_year.id)
    secondments = session.execute(
        select(Secondment)
        .where(Secondment.cost_bearer == CostBearer.FEDERATION.value)
        .where(Secondment.starts_on <= min(last, today))
        .where(Secondment.ends_on.is_(None) | (Secondment.ends_on >= first))
        .where(Secondment.id.not_in(booked_already))
        .order_by(Secondment.starts_on, Secondment.id)
    ).scalars()
    booked = 0
    for secondment in list(secondments):
        amount = services.staff_cost_cents(secondment, fiscal_year.year)
        if amount <= 0:
            continue  # no personnel cost on record
        _make_room(session, actor, fiscal_year, amount)
        period_start = max(secondment.starts_on, first)
        period_end = min(end_of(secondment.ends_on), last)
        on = min(max(period_start, date(fiscal_year.year, 1, 10)), period_end, today)
        cost = services.book_staff_cost(session, actor, secondment, fiscal_year.year, on=on)
        _pay_quarterly(session, actor, cost, period_start, period_end, today)
        booked += 1
    return booked


def _pay_quarterly(session, actor, cost: StaffCost, start: date, end: date, today: date) -> None:
    """Pay the booked cost in equal parts at the end of each quarter the period touches (on its
    last day in the quarter; the last part takes the rest), as far as ``today``."""
    quarters = []
    for number in (1, 2, 3, 4):
        first, last = date(start.year, 3 * number - 2, 1), month_end(date(start.year, 3 * number, 1))
        if first <= end and last >= start:
            quarters.append((number, min(last, end)))
    part = cost.amount_cents // len(quarters)
    allocation = session.get(Allocation, cost.allocation_id)
    for index, (number, day) in enumerate(quarters):
        if day > today:
            break
        amount = part if index < len(quarters) - 1 else cost.amount_cents - part * index
        ledger.disburse(session, actor, allocation, amount, on=day, note=f"Abschlag {number}. Quartal")


def _make_room(session, actor, year: FiscalYear, amount: int) -> None:
    """Let the category Personal take ``amount`` more: where its plan is too small, move the missing
    part over from the category with the most unused plan (lowered first, so the plans never sum
    above the appropriation)."""
    categories = list(
        session.execute(select(BudgetCategory).where(BudgetCategory.fiscal_year_id == year.id)).scalars()
    )
    room = {c.id: c.planned_cents - ledger.category_committed(session, year, c) for c in categories}
    personal = next(c for c in categories if c.code == "personal")
    missing = amount - room[personal.id]
    if missing <= 0:
        return
    donor = max((c for c in categories if c.id != personal.id), key=lambda c: (room[c.id], -c.id))
    for category, planned in (
        (donor, donor.planned_cents - missing),
        (personal, personal.planned_cents + missing),
    ):
        ledger.save_category(
            session,
            actor,
            category,
            year,
            code=category.code,
            name=category.name,
            planned_cents=planned,
            position=category.position,
        )
