"""`itvsh demo`: demo data from the real, shipped reference data, loaded idempotently.

All 1,201 tenants from the Destatis list (through the real importer), memberships for most of
them since the federation's founding, a few contacts, and one login per role — for the
municipality role a kreisfreie Stadt, a small Gemeinde, an Amt and a Kreis. It refuses to run
in production: the demo passwords are public.

Funding (loaded once, while there is no fiscal year yet): the years 2019 to the current one with
1,500,000.00 € and the default categories, everything booked through the funding services as the
demo actor: each year a per-capita distribution to the member Gemeinden of one Kreis (in
:data:`STATEWIDE_YEAR` to all of them), approved and paid (some in two instalments), allocations to
the demo tenants and to a few more Ämter and Kreise, the federation's own costs (staff,
infrastructure), releases, a repayment, a few reversals, proof-of-use dates and settlements; each
past year closed with carry-overs and releases; the current year open with drafts, approvals and
partial payments. Nothing is allocated to a municipality on a day it is not a member (Ottendorf,
:data:`REJOINED`, left 2021 and rejoined 2023). Dates lie in their year; in the current year they
are squeezed into the days gone by, so nothing is booked in the future.
"""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources

import click
from flask import current_app
from sqlalchemy import func, select

from itvsh.auth import services as auth_services
from itvsh.core.tenancy import ALL, set_scope
from itvsh.funding import distribution as distributions
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BudgetCategory,
    DistributionMethod,
    DistributionSelection,
    FiscalYear,
    RecipientKind,
    YearStatus,
)
from itvsh.projects.demo import fund_projects, load_projects
from itvsh.staffing.demo import book_staff_costs, load_staffing
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact, MunicipalityKind

DEMO_ACTOR = "demo"
FOUNDED = date(2019, 1, 1)
DEMO_LOGINS = (
    ("admin@itvsh.example", "admin", None, "demo-admin-passwort"),
    ("staff@itvsh.example", "staff", None, "demo-staff-passwort"),
    ("auditor@itvsh.example", "auditor", None, "demo-auditor-passwort"),
    ("kiel@itvsh.example", "municipality", "01002000", "demo-kiel-passwort"),  # kreisfreie Stadt
    ("krummwisch@itvsh.example", "municipality", "01058093", "demo-krummwisch-passwort"),  # small Gemeinde
    ("achterwehr@itvsh.example", "municipality", "010585803", "demo-achterwehr-passwort"),  # Amt
    ("rd-eck@itvsh.example", "municipality", "01058", "demo-rd-eck-passwort"),  # Kreis
)
# Not (yet) members in the demo, so the difference shows: every 12th Gemeinde by key, and one that
# left and rejoined.
REJOINED = "01058126"  # Ottendorf

# Funding: the first fiscal year, the year whose distribution goes to all member Gemeinden, and the
# Kreise whose member Gemeinden share the distribution in the other years, in turn from 2019.
FUNDING_FROM = 2019
STATEWIDE_YEAR = 2024
# Plön, Rendsburg-Eckernförde (Krummwisch, Ottendorf still a member), Ostholstein, Pinneberg, Stormarn,
# then (after the statewide year) Segeberg, Steinburg, ...
KREIS_ROTATION = (
    "01057",
    "01058",
    "01055",
    "01056",
    "01062",
    "01060",
    "01061",
    "01051",
    "01059",
    "01053",
    "01054",
)
KIEL, KRUMMWISCH, ACHTERWEHR, RD_ECK = "01002000", "01058093", "010585803", "01058"


def shipped_list() -> bytes:
    return resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()


def ensure_municipality(session, key: str) -> tuple[Municipality, bool]:
    """The tenant with ``key``, importing the shipped list first if it is not there yet."""
    municipality = tenant_services.get_by_key(session, key)
    if municipality is not None:
        return municipality, False
    import_municipalities(session, DEMO_ACTOR, shipped_list(), source="sh_municipalities.csv")
    municipality = tenant_services.get_by_key(session, key)
    if municipality is None:
        raise click.ClickException(f"{key} is not in the shipped municipality list")
    return municipality, True


def load_demo(session, *, today: date | None = None) -> list[str]:
    """Create what is missing; return what was created (empty on a second run). ``today`` moves the
    funding demo's end (tests: a demo loaded early in a year)."""
    set_scope(session, ALL)
    created = []
    if session.execute(select(func.count()).select_from(Municipality)).scalar_one() < 1201:
        result = import_municipalities(session, DEMO_ACTOR, shipped_list(), source="sh_municipalities.csv")
        created.append(f"{result.created} municipalities")
    if session.execute(select(func.count()).select_from(Membership)).scalar_one() == 0:
        municipalities = session.execute(select(Municipality).order_by(Municipality.key)).scalars().all()
        founders = [
            m
            for index, m in enumerate(municipalities)
            if not (m.is_local and index % 12 == 5 and m.key != "01002000")
        ]
        joined = tenant_services.join_many(session, DEMO_ACTOR, founders, FOUNDED)
        ottendorf = tenant_services.get_by_key(session, REJOINED)
        tenant_services.leave(session, DEMO_ACTOR, ottendorf, date(2021, 1, 1))
        tenant_services.join(session, DEMO_ACTOR, ottendorf, date(2023, 7, 1))
        created.append(f"{joined} memberships")
    if session.execute(select(func.count()).select_from(MunicipalityContact)).scalar_one() == 0:
        for key, role, name, email in (
            ("01002000", "OZG-Koordination", "Digitalisierungsbüro Kiel", "ozg@kiel.example"),
            ("01058093", "Bürgermeisterin", "Gemeinde Krummwisch", "buergermeisterin@krummwisch.example"),
            (
                "010585803",
                "Amtsverwaltung",
                "Amt Achterwehr, Digitalisierung",
                "digital@amt-achterwehr.example",
            ),
            ("01058", "Kreisverwaltung", "Kreis Rendsburg-Eckernförde, IT", "it@kreis-rd.example"),
        ):
            municipality = tenant_services.get_by_key(session, key)
            contact = MunicipalityContact(municipality=municipality, role=role, name=name, email=email)
            tenant_services.save_contact(session, DEMO_ACTOR, contact, None)
        created.append("4 contacts")
    for email, role, tenant, password in DEMO_LOGINS:
        if auth_services.find_user(session, email) is None:
            auth_services.create_user(
                session, DEMO_ACTOR, email=email, role=role, password=password, tenant_key=tenant
            )
            created.append(f"user {email}")
    created.extend(load_staffing(session, today))  # first: the funding demo books the staff cost
    created.extend(load_projects(session, today))  # before funding: its years fund the projects
    created.extend(load_funding(session, today))
    return created


# --- funding ----------------------------------------------------------------------------------------


def load_funding(session, today: date | None = None) -> list[str]:
    """The funding demo (see the module doc), once: nothing when a fiscal year exists already."""
    if session.execute(select(func.count()).select_from(FiscalYear)).scalar_one():
        return []
    today = today or date.today()
    if today.year < FUNDING_FROM:
        return []
    _FundingDemo(session, today).run()
    allocations = session.execute(select(func.count()).select_from(Allocation)).scalar_one()
    bookings = session.execute(select(func.count()).select_from(Booking)).scalar_one()
    return [
        f"{today.year - FUNDING_FROM + 1} fiscal years",
        f"{allocations} allocations",
        f"{bookings} bookings",
    ]


class _Calendar:
    """The day of a planned event in one year: as planned in a past year; in the current year
    squeezed into the days gone by (in order), so nothing is booked in the future."""

    def __init__(self, year: int, today: date):
        self.year, self.today = year, today
        self.current = year == today.year

    def __call__(self, month: int, day: int) -> date:
        planned = date(self.year, month, day)
        if not self.current:
            return planned
        start = date(self.year, 1, 1)
        elapsed = (self.today - start).days
        return min(start + timedelta(days=(planned - start).days * elapsed // 364), self.today)


def _share(cents: int, per_cent: int) -> int:
    """``per_cent`` of ``cents``, rounded down to whole euros (a payment instalment)."""
    return cents * per_cent // 100 // 100 * 100


class _FundingDemo:
    """Books the demo's funding years one after another, as the federation would have."""

    KIEL_PURPOSES = (
        "OZG-Umsetzung: Online-Dienste des Bürgeramts",
        "Digitale Bauakte (Pilot)",
        "E-Akte in der Stadtverwaltung",
        "Open-Data-Portal der Landeshauptstadt",
    )
    AMT_PURPOSES = (
        "Ausstattung des Bürgerbüros",
        "Schulungen zur Digitalisierung der Amtsverwaltung",
        "Informationssicherheit in der Amtsverwaltung",
    )
    KREIS_PURPOSES = ("Kreisweites Dokumentenmanagement", "Geodateninfrastruktur des Kreises")
    GEMEINDE_PURPOSES = ("Breitbandanschluss des Gemeindebüros", "Ratsinformationssystem")

    def __init__(self, session, today: date):
        self.session, self.today = session, today
        # Every tenant once in the session: the services' lazy loads then find them without SQL.
        self.everyone = {m.key: m for m in session.execute(select(Municipality)).scalars()}
        self.aemter = sorted(
            key for key, m in self.everyone.items() if m.kind == MunicipalityKind.AMT and key != ACHTERWEHR
        )

    # helpers

    def member(self, key: str, *days: date) -> Municipality | None:
        """The tenant ``key`` if it is a member today and on each of ``days`` (else None)."""
        municipality = self.everyone.get(key)
        if municipality is None:
            return None
        for day in (*days, None):
            if not tenant_services.is_current_member(self.session, municipality.id, day):
                return None
        return municipality

    def category(self, year: FiscalYear, code: str) -> BudgetCategory:
        return self.session.execute(
            select(BudgetCategory).where(
                BudgetCategory.fiscal_year_id == year.id, BudgetCategory.code == code
            )
        ).scalar_one()

    def allocate(self, year, code, municipality, purpose, amount_cents, reference, *, due=None):
        return ledger.create_allocation(
            self.session,
            DEMO_ACTOR,
            fiscal_year=year,
            category=self.category(year, code),
            recipient_kind=RecipientKind.MEMBER if municipality is not None else RecipientKind.FEDERATION,
            municipality=municipality,
            purpose=purpose,
            amount_cents=amount_cents,
            file_reference=reference,
            proof_of_use_due=due,
        )

    def pay(self, allocation, cents, on, note=""):
        return ledger.disburse(self.session, DEMO_ACTOR, allocation, cents, on=on, note=note)

    def open_cents(self, allocation) -> int:
        return ledger.allocation_figures(self.session, allocation).open_cents

    # the years

    def run(self) -> None:
        for number in range(FUNDING_FROM, self.today.year + 1):
            year = ledger.get_year(self.session, number) or ledger.create_fiscal_year(
                self.session, DEMO_ACTOR, number
            )
            if year.status == YearStatus.PLANNING:
                ledger.open_year(self.session, DEMO_ACTOR, year)
            when = _Calendar(number, self.today)
            self.carried_in(year, when)
            self.proofs_of_use(number - 1, when)
            self.federation(year, when)
            self.distribution(year, when)
            self.grants(year, when)
            book_staff_costs(self.session, DEMO_ACTOR, year, self.today)  # federation-borne secondments
            fund_projects(self.session, DEMO_ACTOR, year, self.today)  # the planned and running projects
            if not when.current:
                self.close(year)

    def carried_in(self, year: FiscalYear, when: _Calendar) -> None:
        """Pay what was carried into this year (Ausgabereste); in the current year only some of it."""
        carried = self.session.execute(
            select(Allocation)
            .where(Allocation.current_year_id == year.id, Allocation.fiscal_year_id != year.id)
            .where(Allocation.status.in_([s.value for s in ledger.ACTIVE]))
            .order_by(Allocation.id)
        ).scalars()
        for index, allocation in enumerate(list(carried)):
            if when.current and index % 2:
                continue
            left = self.open_cents(allocation)
            if left > 0:
                self.pay(allocation, left, when(2, 20 + index % 8), f"Auszahlung Ausgaberest {year.year - 1}")

    def proofs_of_use(self, number: int, when: _Calendar) -> None:
        """Proofs of use of last year's paid member allocations arrive: the grants' and every fourth
        of the distribution's are checked and settled; in the current year some still wait."""
        paid = self.session.execute(
            select(Allocation)
            .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
            .where(FiscalYear.year == number, Allocation.status == AllocationStatus.PAID)
            .where(Allocation.recipient_kind == RecipientKind.MEMBER)
            .order_by(Allocation.id)
        ).scalars()
        for index, allocation in enumerate(list(paid)):
            if allocation.distribution_id is not None and index % 4:
                continue
            received = when(4, 1 + index % 28)
            if when.current and index % 3 == 1:
                ledger.update_allocation(self.session, DEMO_ACTOR, allocation, proof_of_use_received=received)
            else:
                ledger.settle(self.session, DEMO_ACTOR, allocation, received_on=received)

    def federation(self, year: FiscalYear, when: _Calendar) -> None:
        """The federation's own costs: its office's staff (paid quarterly) and infrastructure."""
        number, current = year.year, when.current
        staff = self.allocate(
            year,
            "personal",
            None,
            f"Personalkosten der Geschäftsstelle {number}",
            min(138_000_00 + (number - FUNDING_FROM) * 1_500_00, year.appropriation_cents // 10),
            f"ITV-{number}-P-01",
        )
        ledger.approve(self.session, DEMO_ACTOR, staff, on=when(1, 10))
        quarter = _share(staff.amount_cents, 25)
        for index, (month, day) in enumerate(((3, 31), (6, 30), (9, 30), (12, 10))):
            if current and index == 3:
                break
            amount = quarter if index < 3 else self.open_cents(staff)
            self.pay(staff, amount, when(month, day), f"Abschlag {index + 1}. Quartal")
        hosting = self.allocate(
            year,
            "infrastruktur",
            None,
            f"Rechenzentrum und Hosting {number}",
            45_000_00,
            f"ITV-{number}-I-01",
        )
        ledger.approve(self.session, DEMO_ACTOR, hosting, on=when(1, 15))
        if number == 2021:  # typed 2,000.00 instead of 20,000.00: reversed and booked again
            wrong = self.pay(hosting, 2_000_00, when(4, 15), "Rechnung RZ 1/2021")
            ledger.reverse(
                self.session,
                DEMO_ACTOR,
                wrong,
                note="Betrag falsch erfasst (2.000,00 statt 20.000,00 €)",
                on=when(4, 19),
            )
        self.pay(hosting, 20_000_00, when(4, 20), "Rechnung RZ 1")
        if not current:
            self.pay(hosting, 20_000_00, when(10, 15), "Rechnung RZ 2")  # the rest is released at the close
        licences = self.allocate(
            year,
            "infrastruktur",
            None,
            f"Lizenzen für Fachverfahren {number}",
            25_000_00,
            f"ITV-{number}-I-02",
        )
        ledger.approve(self.session, DEMO_ACTOR, licences, on=when(2, 1))
        self.pay(licences, 25_000_00, when(3, 1), "Jahreslizenzen")

    def distribution(self, year: FiscalYear, when: _Calendar) -> None:
        """The year's per-capita distribution to member Gemeinden (one Kreis, or all), approved and
        paid — some in two instalments, a few only half by the year's end."""
        number = year.year
        category = self.category(year, "zuweisungen")
        if number == STATEWIDE_YEAR:
            selection, parameters, total = DistributionSelection.ALL, {}, 550_000_00
            label = "alle Mitgliedsgemeinden"
        else:
            turn = number - FUNDING_FROM - (number > STATEWIDE_YEAR)
            kreis = KREIS_ROTATION[turn % len(KREIS_ROTATION)]
            selection, parameters = DistributionSelection.KREIS, {"key": kreis}
            total = 380_000_00 + (number * 7 % 5) * 10_000_00
            label = f"Gemeinden im Kreis {self.everyone[kreis].name}"
        approved_on = when(3, 16)
        table = distributions.preview(
            self.session,
            fiscal_year=year,
            category=category,
            method=DistributionMethod.PER_CAPITA,
            selection=selection,
            parameters=parameters,
            total_cents=total,
        )
        # The preview takes today's members; the approval needs members on its day (Ottendorf).
        eligible = set(self.session.execute(tenant_services.current_members_query(approved_on)).scalars())
        if any(row.municipality_id not in eligible for row in table.rows):
            keys = [row.key for row in table.rows if row.municipality_id in eligible]
            selection, parameters = DistributionSelection.LIST, {"keys": keys}
        made = distributions.create_distribution(
            self.session,
            DEMO_ACTOR,
            fiscal_year=year,
            category=category,
            method=DistributionMethod.PER_CAPITA,
            selection=selection,
            parameters=parameters,
            total_cents=total,
            purpose=f"Digitalisierungspauschale {number} ({label})",
            file_reference=f"ITV-{number}-VS-01",
            proof_of_use_due=date(number + 1, 6, 30),
        )
        allocations = self.session.execute(
            select(Allocation).where(Allocation.distribution_id == made.id).order_by(Allocation.id)
        ).scalars()
        for index, allocation in enumerate(list(allocations)):
            if when.current and index % 3 == 2:
                continue  # still a draft
            ledger.approve(self.session, DEMO_ACTOR, allocation, on=approved_on)
            amount = allocation.amount_cents
            if when.current:
                if index % 3 == 0:
                    self.pay(allocation, amount - amount // 2, when(5, 20), "1. Rate")
            elif index % 4 == 1 and amount > 1 and number != STATEWIDE_YEAR:  # two instalments
                self.pay(allocation, amount - amount // 2, when(5, 20), "1. Rate")
                self.pay(allocation, amount // 2, when(10, 5), "2. Rate")
            elif index % 9 == 4 and amount > 1:  # half paid by the year's end
                self.pay(allocation, amount - amount // 2, when(5, 20), "1. Rate")
            else:
                self.pay(allocation, amount, when(5, 20))

    def grants(self, year: FiscalYear, when: _Calendar) -> None:
        """Allocations to single members: the demo logins' tenants and a few more Ämter and Kreise."""
        number, current = year.year, when.current
        turn = number - FUNDING_FROM
        due = date(number + 1, 6, 30)
        plans = [
            (KIEL, self.KIEL_PURPOSES[turn % 4], 60_000_00 + turn % 4 * 7_500_00, "two"),
            (ACHTERWEHR, self.AMT_PURPOSES[turn % 3], 25_000_00 + turn % 3 * 5_000_00, "one"),
            (RD_ECK, self.KREIS_PURPOSES[turn % 2], 45_000_00 + turn % 3 * 7_500_00, "part"),
        ]
        if turn % 2:
            plans.append((KRUMMWISCH, self.GEMEINDE_PURPOSES[turn // 2 % 2], 8_000_00 + turn * 500_00, "one"))
        if number != STATEWIDE_YEAR:
            kreis = KREIS_ROTATION[(turn - (number > STATEWIDE_YEAR)) % len(KREIS_ROTATION)]
            if kreis != RD_ECK:
                plans.append((kreis, "Koordinierungsstelle Digitalisierung im Kreis", 30_000_00, "two"))
        for offset in range(2):
            amt = self.aemter[(2 * turn + offset) * 7 % len(self.aemter)]
            plans.append((amt, "Digitalisierung der Amtsverwaltung", 20_000_00 + offset * 4_000_00, "less"))
        for index, (key, purpose, amount, course) in enumerate(plans):
            if not self.member(key, when(2, 1), when(12, 31)):
                continue  # never to a municipality on a day it is not a member
            allocation = self.allocate(
                year,
                "zuweisungen",
                self.everyone[key],
                purpose,
                amount,
                f"ITV-{number}-Z-{index + 1:02d}",
                due=due,
            )
            if current and index == len(plans) - 1:
                continue  # an application still being examined: a draft
            if current and index == len(plans) - 2:  # withdrawn by the Amt before the decision
                ledger.cancel(self.session, DEMO_ACTOR, allocation, reason="Antrag vom Amt zurückgezogen")
                continue
            self.grant_course(allocation, course, number, when)

    def grant_course(self, allocation: Allocation, course: str, number: int, when: _Calendar) -> None:
        session, amount, current = self.session, allocation.amount_cents, when.current
        if course == "part" and number == 2025:  # booked before the check was done: reversed
            early = ledger.approve(session, DEMO_ACTOR, allocation, on=when(2, 10))
            ledger.reverse(
                session,
                DEMO_ACTOR,
                early,
                note="Bewilligung vor Abschluss der Prüfung gebucht",
                on=when(2, 12),
            )
        ledger.approve(session, DEMO_ACTOR, allocation, on=when(2, 16))
        if course == "two":
            first = _share(amount, 50)
            self.pay(allocation, first, when(6, 15), "1. Rate")
            if number == 2020 or current:  # the first instalment booked twice
                twice = self.pay(allocation, first, when(6, 15), "1. Rate")
                ledger.reverse(session, DEMO_ACTOR, twice, note="Doppelt gebucht, Storno", on=when(6, 18))
            if not current:
                self.pay(allocation, amount - first, when(11, 15), "2. Rate")
        elif course == "one":
            self.pay(allocation, amount, when(7, 1))
            if number == 2023:  # part of the money was not needed and is paid back
                ledger.repay(
                    session,
                    DEMO_ACTOR,
                    allocation,
                    2_500_00,
                    on=when(11, 10),
                    note="Rückzahlung nicht verbrauchter Mittel",
                )
                ledger.release(
                    session,
                    DEMO_ACTOR,
                    allocation,
                    2_500_00,
                    on=when(11, 12),
                    note="Bindung nach Rückzahlung",
                )
        elif course == "part":  # 60 % paid by the year's end; the rest is carried over
            self.pay(allocation, _share(amount, 60), when(9, 1), "Abschlag")
        elif course == "less":  # the project cost less: the rest is released
            self.pay(allocation, _share(amount, 80), when(8, 20))
            if not current:
                ledger.release(
                    session,
                    DEMO_ACTOR,
                    allocation,
                    self.open_cents(allocation),
                    on=when(11, 30),
                    note="Maßnahme günstiger abgeschlossen",
                )

    def close(self, year: FiscalYear) -> None:
        """Close the year: the federation's and every third distribution share's open rest is
        released, all else carried into the next year."""
        decisions = {}
        for item in ledger.open_commitments(self.session, year):
            allocation = item.allocation
            released = allocation.recipient_kind == RecipientKind.FEDERATION or (
                allocation.distribution_id is not None and allocation.id % 3 == 0
            )
            decisions[allocation.id] = ledger.RELEASE if released else ledger.CARRY
        ledger.close_year(self.session, DEMO_ACTOR, year, decisions)


@click.command("demo")
@click.option("--allow-production", is_flag=True, help="Load the demo even with ITVSH_ENV=production.")
def demo_command(allow_production):
    """Load demo data (idempotent) and print the demo logins."""
    from itvsh.extensions import db

    if current_app.config["ITVSH_ENV"] == "production" and not allow_production:
        raise click.ClickException(
            "refusing to load demo accounts with public passwords in production "
            "(ITVSH_ENV=production); pass --allow-production if you mean it"
        )
    created = load_demo(db.session)
    db.session.commit()
    click.echo(f"demo data: {', '.join(created) if created else 'nothing to do (all there)'}")
    click.echo("demo logins (email / password / role):")
    for email, role, tenant, password in DEMO_LOGINS:
        click.echo(f"  {email:<26} {password:<26} {role}{' ' + tenant if tenant else ''}")
