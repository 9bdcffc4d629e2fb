"""The projects and OZG demo: the shipped OZG catalogue, a few services of the Land and the Bund,
the federation's shared projects with their participants, milestones, OZG services and people, the
money the funding demo gives them, and OZG statuses of every member Gemeinde from 2019 to today.

Loaded once (nothing when a project exists), after the staffing demo (the leads and people are
its two persons) and before the funding demo, whose years call :func:`fund_projects`. Projects,
participants, milestones and assignments go through the services, so every rule holds. A project's
status follows its dates and ``today``: planned before its start, running after; one that has
ended is completed by the funding demo once its last year is funded (completed projects receive no
money), or at once when the funding demo will not run. One idea and one cancelled project.

The statuses are many (about 70,000 rows), so they are written with Core inserts in chunks, each
with its history row (copied by one INSERT ... SELECT), followed by one rebuild of the tallies, the
monthly snapshots from 2019 computed from the ``online_since`` days (Core inserts), and ONE audit
event for the whole load. They are
pseudo-random with a fixed seed (the same data on every machine): bigger towns further, services
of the projects further still; only members get statuses, reported on a day they were members,
and everything lies before the first day of today's month, so the last snapshot is the tallies.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources

from sqlalchemy import func, insert, select

from itvsh.core import audit
from itvsh.core.audit import actor_label
from itvsh.core.tenancy import ALL, set_scope
from itvsh.funding import ledger
from itvsh.funding.models import BudgetCategory, FiscalYear, RecipientKind, YearStatus
from itvsh.projects import ozg
from itvsh.projects import services as projects
from itvsh.projects.models import (
    ACTIVE_STATUSES,
    OzgService,
    OzgSnapshot,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    Participation,
    Project,
    ProjectService,
    ProjectStatus,
    Responsibility,
    TallyScope,
)
from itvsh.tenants.models import LOCAL_KINDS, Membership, Municipality, MunicipalityKind
from itvsh.tenants.services import is_current_member

FOUNDED = date(2019, 1, 1)
SEED = 20190101
KIEL, KRUMMWISCH, ACHTERWEHR, RD_ECK = "01002000", "01058093", "010585803", "01058"
FLENSBURG, LUEBECK, NEUMUENSTER, NORDERSTEDT, PINNEBERG = (
    "01001000",
    "01003000",
    "01004000",
    "01060063",
    "01056",
)
PORTAL_URL = "https://serviceportal.itv-sh.example"

# Services the municipalities do not provide (their status does not count in municipal progress).
RESPONSIBILITIES = (
    ("10077", Responsibility.BUND),  # Einkommensteuer
    ("10005", Responsibility.BUND),  # Kindergeld (Familienkasse)
    ("10056", Responsibility.LAND),  # Ausbildungsförderung (BAföG)
)


@dataclass(frozen=True)
class _Plan:
    name: str
    kind: str
    description: str
    starts_on: date | None
    ends_on: date | None
    lead: str | None  # a name from the staffing demo
    yearly_cents: int  # the money a full year of the project gets (0: none)
    participants: tuple  # (key, role, joined on)
    milestones: tuple  # (title, due on, done so many days after due, or None: open)
    services: tuple  # OZG-IDs it delivers
    outcome: str = ""  # "idea", "cancelled" (on ``cancelled_on``), or "" (follows its dates)
    cancelled_on: date | None = None


PROJECTS = (
    _Plan(
        "Serviceportal Schleswig-Holstein",
        "portal",
        "Ein gemeinsames Serviceportal, über das Bürgerinnen und Bürger die Online-Dienste aller "
        "Mitglieder finden und mit einem Nutzerkonto beantragen.",
        date(2019, 4, 1),
        date(2023, 12, 31),
        "Anna Petersen",
        70_000_00,
        (
            (KIEL, "pilot", date(2019, 4, 1)),
            (ACHTERWEHR, "pilot", date(2019, 4, 1)),
            (KRUMMWISCH, "participant", date(2019, 6, 1)),
            (RD_ECK, "participant", date(2019, 6, 1)),
            (LUEBECK, "participant", date(2020, 1, 15)),
            (FLENSBURG, "participant", date(2020, 3, 1)),
        ),
        (
            ("Konzept und Ausschreibung", date(2019, 9, 30), -3),
            ("Pilotbetrieb mit drei Kommunen", date(2020, 6, 30), 12),
            ("Anbindung aller Mitglieder", date(2022, 12, 31), -10),
            ("Übergabe in den Regelbetrieb", date(2023, 12, 15), 0),
        ),
        ("10124", "10559", "10160", "10173", "10145", "10557", "10237"),
    ),
    _Plan(
        "Digitaler Bauantrag SH",
        "shared_service",
        "Bauantrag, Bauvoranfrage und Baulastenauskunft online, angebunden an die Fachverfahren der "
        "unteren Bauaufsichtsbehörden.",
        date(2020, 7, 1),
        date(2026, 12, 31),
        "Anna Petersen",
        90_000_00,
        (
            (RD_ECK, "pilot", date(2020, 7, 1)),
            (KIEL, "pilot", date(2020, 7, 1)),
            (LUEBECK, "participant", date(2021, 2, 1)),
            (PINNEBERG, "participant", date(2022, 5, 1)),
            (NEUMUENSTER, "participant", date(2023, 1, 1)),
        ),
        (
            ("Anforderungsanalyse mit den Bauaufsichten", date(2020, 12, 15), 0),
            ("Pilotbetrieb im Kreis Rendsburg-Eckernförde", date(2022, 3, 31), 20),
            ("Anbindung an die Fachverfahren der Bauaufsicht", date(2023, 6, 30), -5),
            ("Rollout in allen Kreisen", date(2025, 6, 30), 77),
            ("Abschluss und Evaluation", date(2026, 12, 15), None),
        ),
        ("10519", "10518", "10520", "10521", "10517"),
    ),
    _Plan(
        "Rechenzentrumsbetrieb Kommunen",
        "infrastructure",
        "Betrieb der Fachverfahren kleiner Verwaltungen in einem zertifizierten Rechenzentrum, mit "
        "Datensicherung und Notfallvorsorge.",
        date(2021, 1, 1),
        date(2028, 12, 31),
        "Jens Hansen",
        60_000_00,
        (
            (ACHTERWEHR, "pilot", date(2021, 1, 1)),
            (KRUMMWISCH, "participant", date(2021, 3, 1)),
            (RD_ECK, "participant", date(2021, 3, 1)),
            (KIEL, "participant", date(2022, 1, 1)),
        ),
        (
            ("Ausschreibung der Rechenzentrumsleistungen", date(2021, 6, 30), 0),
            ("Migration der Pilotverwaltung", date(2022, 9, 30), 14),
            ("Zertifizierung nach BSI IT-Grundschutz", date(2024, 11, 30), -2),
            ("Anschluss weiterer Ämter", date(2026, 6, 30), 30),
            ("Verlängerung des Rahmenvertrags", date(2028, 6, 30), None),
        ),
        (),
    ),
    _Plan(
        "OZG-Referenzimplementierung Gewerbeanmeldung",
        "reference_implementation",
        "Gewerbeanzeigen nach dem Einer-für-Alle-Prinzip: einmal entwickelt, von allen Mitgliedern "
        "nachgenutzt.",
        date(2021, 4, 1),
        date(2024, 9, 30),
        "Jens Hansen",
        45_000_00,
        (
            (KIEL, "pilot", date(2021, 4, 1)),
            (KRUMMWISCH, "pilot", date(2021, 4, 1)),
            (ACHTERWEHR, "participant", date(2021, 9, 1)),
            (NORDERSTEDT, "participant", date(2022, 2, 1)),
        ),
        (
            ("Fachkonzept nach dem Einer-für-Alle-Prinzip", date(2021, 9, 30), 0),
            ("Pilotbetrieb in Kiel und Krummwisch", date(2022, 6, 30), 9),
            ("Nachnutzung durch weitere Kommunen", date(2024, 6, 30), 30),
        ),
        ("10294", "10293", "10564", "10287"),
    ),
    _Plan(
        "E-Akte Kommunal",
        "shared_service",
        "Eine gemeinsam beschaffte elektronische Akte für Ämter und Kreise, mit Anbindung an die "
        "Fachverfahren und an das Serviceportal.",
        date(2027, 1, 1),
        date(2030, 12, 31),
        "Jens Hansen",
        50_000_00,
        (
            (ACHTERWEHR, "pilot", date(2025, 3, 1)),
            (RD_ECK, "pilot", date(2025, 3, 1)),
            (KRUMMWISCH, "participant", date(2025, 9, 1)),
        ),
        (
            ("Marktanalyse und Ausschreibung", date(2027, 6, 30), None),
            ("Pilotbetrieb im Amt Achterwehr", date(2028, 6, 30), None),
        ),
        (),
    ),
    _Plan(
        "Kommunales Open-Data-Portal",
        "portal",
        "Idee: die offenen Daten der Mitglieder an einer Stelle, maschinenlesbar und unter offener Lizenz.",
        None,
        None,
        None,
        0,
        ((KIEL, "participant", date(2024, 2, 1)),),
        (),
        (),
        outcome="idea",
    ),
    _Plan(
        "Zentrales Ratsinformationssystem",
        "shared_service",
        "Ein gemeinsames Ratsinformationssystem; eingestellt, weil die meisten Mitglieder ihre "
        "bestehenden Verträge verlängert haben.",
        date(2020, 1, 1),
        date(2022, 12, 31),
        None,
        0,
        ((KRUMMWISCH, "pilot", date(2019, 10, 1)), (ACHTERWEHR, "participant", date(2019, 10, 1))),
        (("Ausschreibung", date(2020, 6, 30), None),),
        (),
        outcome="cancelled",
        cancelled_on=date(2020, 10, 1),
    ),
)

# People on projects, in the time the staffing demo leaves free (itvsh/staffing/demo.py ASSIGNMENTS):
# Anna has 20 % free in 2026 beside the Amt and Krummwisch, Jens 5 % of his half from July 2025.
# (person, project, first day, last day, share per mille, role); made only once started (by today).
PROJECT_ASSIGNMENTS = (
    ("Anna Petersen", "Digitaler Bauantrag SH", date(2026, 1, 1), date(2026, 12, 31), 200, "Projektleitung"),
    (
        "Jens Hansen",
        "Rechenzentrumsbetrieb Kommunen",
        date(2025, 7, 1),
        date(2027, 12, 31),
        50,
        "Projektleitung, Vertragsmanagement",
    ),
)

# How often a Themenfeld's services are online in a municipality, relative to the others.
TOPIC_FACTORS = {
    "Querschnitt": 1.6,
    "Bauen & Wohnen": 1.4,
    "Familie & Kind": 1.3,
    "Mobilität & Reisen": 1.2,
    "Engagement & Hobby": 1.2,
    "Unternehmensführung & -entwicklung": 0.9,
    "Steuern & Zoll": 0.5,
    "Forschung & Förderung": 0.4,
}
CHUNK = 10_000


def shipped_catalogue() -> bytes:
    return resources.files("itvsh.data").joinpath("ozg_services.csv").read_bytes()


def _funding_will_run(session, today: date) -> bool:
    """Whether the funding demo runs after this one (it does once, while there is no fiscal year)."""
    from itvsh.demo import FUNDING_FROM  # itvsh.demo imports this module

    none_yet = not session.execute(select(func.count()).select_from(FiscalYear)).scalar_one()
    return none_yet and today.year >= FUNDING_FROM


def load_projects(session, today: date | None = None) -> list[str]:
    """The projects and OZG demo (see the module doc), once: nothing when a project exists.
    Returns what was made."""
    from itvsh.demo import DEMO_ACTOR  # itvsh.demo imports this module

    today = today or date.today()
    set_scope(session, ALL)  # the capacity check sees all of a person's assignments
    if today < FOUNDED or session.execute(select(func.count()).select_from(Project)).scalar_one():
        return []
    made = []
    if not session.execute(select(func.count()).select_from(OzgService)).scalar_one():
        from itvsh.projects.catalogue import import_catalogue

        result = import_catalogue(session, DEMO_ACTOR, shipped_catalogue(), source="ozg_services.csv")
        made.append(f"{result.created} OZG services")
    services = {s.ozg_id: s for s in session.execute(select(OzgService)).scalars()}
    marked = 0
    for ozg_id, responsibility in RESPONSIBILITIES:
        service = services.get(ozg_id)
        if service is not None and service.responsibility == Responsibility.MUNICIPAL:
            ozg.set_responsibility(session, DEMO_ACTOR, service, responsibility.value)
            marked += 1
    if marked:
        made.append(f"{marked} services of the Land or the Bund")
    made.extend(_make_projects(session, DEMO_ACTOR, services, today))
    if not session.execute(select(OzgStatus.id).limit(1)).first():
        made.extend(load_statuses(session, DEMO_ACTOR, today))
    return made


# --- projects -------------------------------------------------------------------------------------


def _make_projects(session, actor, services: dict[str, OzgService], today: date) -> list[str]:
    from itvsh.staffing import services as staffing
    from itvsh.staffing.models import StaffMember

    people = {m.name: m for m in session.execute(select(StaffMember)).scalars()}
    tenants = {
        m.key: m
        for m in session.execute(
            select(Municipality).where(
                Municipality.key.in_({p[0] for plan in PROJECTS for p in plan.participants})
            )
        ).scalars()
    }
    complete_now = not _funding_will_run(session, today)
    made = {"projects": 0, "participants": 0, "milestones": 0, "assignments": 0}
    by_name = {}
    for plan in PROJECTS:
        project = projects.create_project(
            session,
            actor,
            name=plan.name,
            kind=plan.kind,
            description=plan.description,
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            lead=people.get(plan.lead) if plan.lead else None,
        )
        by_name[plan.name] = project
        made["projects"] += 1
        for key, role, joined_on in plan.participants:
            municipality, day = tenants.get(key), min(joined_on, today)
            if municipality is None or not is_current_member(session, municipality.id, day):
                continue
            projects.add_participant(session, actor, project, municipality, role, joined_on=day)
            made["participants"] += 1
        for title, due_on, done_after in plan.milestones:
            done_on = due_on + timedelta(days=done_after) if done_after is not None else None
            if done_on is not None and done_on > min(today, date.today()):
                done_on = None  # not yet done
            projects.add_milestone(session, actor, project, title=title, due_on=due_on, done_on=done_on)
            made["milestones"] += 1
        if plan.services:
            projects.set_services(
                session, actor, project, [services[i] for i in plan.services if i in services]
            )
        _move_along(session, actor, project, plan, today)
    for name, project_name, starts_on, ends_on, fte, role in PROJECT_ASSIGNMENTS:
        project, person = by_name[project_name], people.get(name)
        if person is None or starts_on > today or not project.is_active:
            continue
        staffing.create_assignment(
            session,
            actor,
            staff_member=person,
            municipality=None,
            project=project,
            target_kind="project",
            starts_on=starts_on,
            ends_on=ends_on,
            fte=fte,
            role=role,
        )
        made["assignments"] += 1
    if complete_now:
        for project in by_name.values():
            _complete_if_ended(session, actor, project, today, date.max)
    return [
        f"{made['projects']} projects",
        f"{made['participants']} participants",
        f"{made['milestones']} milestones",
        f"{made['assignments']} project assignments",
    ]


def _move_along(session, actor, project: Project, plan: _Plan, today: date) -> None:
    """The status as of ``today`` (all but the completion, see the module doc)."""
    if plan.outcome == "idea":
        return
    projects.change_status(session, actor, project, ProjectStatus.PLANNED.value, on=min(today, date.today()))
    if plan.outcome == "cancelled":
        if plan.cancelled_on is not None and plan.cancelled_on <= today:
            projects.change_status(
                session, actor, project, ProjectStatus.CANCELLED.value, on=plan.cancelled_on
            )
        return
    if plan.starts_on is not None and plan.starts_on <= today:
        projects.change_status(session, actor, project, ProjectStatus.RUNNING.value, on=plan.starts_on)


def _complete_if_ended(session, actor, project: Project, today: date, by: date) -> None:
    if (
        project.status == ProjectStatus.RUNNING
        and project.ends_on is not None
        and project.ends_on < today
        and project.ends_on <= by
    ):
        projects.change_status(session, actor, project, ProjectStatus.COMPLETED.value, on=project.ends_on)


# --- funding --------------------------------------------------------------------------------------


def _on(year: int, today: date, planned: date) -> date:
    """The day of a planned booking: as planned in a past year; in the current year squeezed into
    the days gone by (as the funding demo does), so nothing is booked in the future."""
    if year != today.year:
        return planned
    start = date(year, 1, 1)
    elapsed = (today - start).days
    return min(start + timedelta(days=(planned - start).days * elapsed // 364), today)


def fund_projects(session, actor, fiscal_year: FiscalYear, today: date) -> int:
    """Give the demo's planned and running projects their money of ``fiscal_year``: an allocation
    in the category ``projekte`` (a part-year's share in the first and last year; within the
    category's plan and the year's free money), approved and paid — in full in the project's last
    year, three quarters in the others (the rest is carried over), an instalment in the current
    year. Then complete the projects that ended in this year. Called by the funding demo for each
    year before closing it; returns the number of allocations made."""
    number = fiscal_year.year
    first, last = date(number, 1, 1), date(number, 12, 31)
    if first > today:
        return 0
    plans = {plan.name: plan for plan in PROJECTS}
    active = session.execute(
        select(Project)
        .where(Project.name.in_(list(plans)), Project.status.in_([s.value for s in ACTIVE_STATUSES]))
        .order_by(Project.starts_on, Project.id)
    ).scalars()
    active = list(active)
    category = session.execute(
        select(BudgetCategory).where(
            BudgetCategory.fiscal_year_id == fiscal_year.id, BudgetCategory.code == "projekte"
        )
    ).scalar_one_or_none()
    made = 0
    if category is not None and fiscal_year.status == YearStatus.OPEN:
        for index, project in enumerate(active):
            plan = plans[project.name]
            if not plan.yearly_cents or project.starts_on is None or project.starts_on > last:
                continue
            if project.ends_on is not None and project.ends_on < first:
                continue
            start, end = max(project.starts_on, first), min(project.ends_on or last, last)
            months = (end.year - start.year) * 12 + end.month - start.month + 1
            room = min(
                category.planned_cents - ledger.category_committed(session, fiscal_year, category),
                ledger.year_figures(session, fiscal_year).free_cents,
            )
            amount = min(plan.yearly_cents * months // 12, room) // 1_000_00 * 1_000_00
            if amount < 10_000_00:
                continue  # no room left worth an allocation
            allocation = ledger.create_allocation(
                session,
                actor,
                fiscal_year=fiscal_year,
                category=category,
                recipient_kind=RecipientKind.PROJECT.value,
                municipality=None,
                project=project,
                purpose=f"Projektmittel {number}: {project.name}",
                amount_cents=amount,
                file_reference=f"ITV-{number}-PR-{index + 1:02d}",
            )
            decided = _on(number, today, min(max(date(number, 2, 1), project.starts_on), date(number, 10, 1)))
            ledger.approve(session, actor, allocation, on=decided)
            made += 1
            if number == today.year:
                if project.starts_on > today:
                    continue  # approved; the first instalment comes once it has started
                share, note = 40, "Abschlag"
            elif project.ends_on is not None and project.ends_on <= last:
                share, note = 100, "Schlusszahlung"
            else:
                share, note = 75, "Abschlag"
            paid = amount * share // 100 // 100 * 100
            if paid > 0:
                on = max(_on(number, today, date(number, 11, 20)), decided)
                ledger.disburse(session, actor, allocation, paid, on=on, note=note)
    for project in active:
        _complete_if_ended(session, actor, project, today, last)
    return made


# --- OZG statuses ---------------------------------------------------------------------------------


@dataclass
class _Place:
    id: int
    key: str
    kreis_id: int | None  # the Kreis it counts in (a kreisfreie Stadt its own)
    amt_id: int | None
    size: float  # 0 (a hamlet) .. 1 (Kiel), from the population
    segments: list  # member days before the cut-off: (first, after the last)


def _places(session, cutoff: date) -> list[_Place]:
    """The member Gemeinden and Städte, with the days they were members before ``cutoff``."""
    rows = session.execute(
        select(
            Municipality.id,
            Municipality.key,
            Municipality.kind,
            Municipality.kreis_id,
            Municipality.amt_id,
            Municipality.population,
        )
        .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
        .order_by(Municipality.key)
    ).all()
    periods = defaultdict(list)
    for municipality_id, joined_on, left_on in session.execute(
        select(Membership.municipality_id, Membership.joined_on, Membership.left_on).order_by(
            Membership.joined_on
        )
    ):
        start, end = max(joined_on, FOUNDED), min(left_on or cutoff, cutoff)
        if start < end:
            periods[municipality_id].append((start, end))
    places = []
    for mid, key, kind, kreis_id, amt_id, population in rows:
        if not periods.get(mid):
            continue  # never a member: no status reported
        size = min(max((math.log10(max(population or 1000, 100)) - 2) / 3.4, 0.0), 1.0)
        kreis = mid if kind == MunicipalityKind.KREISFREIE_STADT else kreis_id
        places.append(_Place(mid, key, kreis, amt_id, size, periods[mid]))
    return places


def _pick_day(segments, earliest: date, u: float) -> tuple[date, date] | None:
    """The day at fraction ``u`` of the member days from ``earliest`` on, and the end of its period."""
    parts = [(max(s, earliest), e) for s, e in segments if e > max(s, earliest)]
    total = sum((e - s).days for s, e in parts)
    if total <= 0:
        return None
    offset = min(int(u * total), total - 1)
    for start, end in parts:
        span = (end - start).days
        if offset < span:
            return start + timedelta(days=offset), end
        offset -= span
    return None  # not reached


def _project_reach(session, places: list[_Place]) -> dict[int, tuple]:
    """Per OZG service delivered by a started project: (project id, live from, ids of the places
    taking part — directly, or through their Amt or Kreis)."""
    started = [ProjectStatus.RUNNING.value, ProjectStatus.COMPLETED.value]
    rows = session.execute(
        select(Project.id, Project.starts_on, ProjectService.service_id)
        .join(ProjectService, ProjectService.project_id == Project.id)
        .where(Project.status.in_(started), Project.starts_on.is_not(None))
        .order_by(Project.id, ProjectService.service_id)
    ).all()
    taking_part = defaultdict(set)
    for project_id, municipality_id in session.execute(
        select(Participation.project_id, Participation.municipality_id)
    ):
        taking_part[project_id].add(municipality_id)
    reach = {}
    for project_id, starts_on, service_id in rows:
        members = taking_part[project_id]
        ids = {p.id for p in places if members & {p.id, p.amt_id, p.kreis_id}}
        reach.setdefault(service_id, (project_id, starts_on + timedelta(days=270), ids))
    return reach


def load_statuses(session, actor, today: date) -> list[str]:
    """The demo's OZG statuses, their history, the tallies and the monthly snapshots (see the
    module doc); one audit event. Returns what was made."""
    cutoff = today.replace(day=1)  # everything known lies before today's month
    rng = random.Random(SEED)
    places = _places(session, cutoff)
    services = session.execute(
        select(OzgService.id, OzgService.ozg_id, OzgService.topic)
        .where(OzgService.responsibility == Responsibility.MUNICIPAL.value)
        .order_by(OzgService.ozg_id)
    ).all()
    weights = [(0.3 + 2.1 * rng.random() ** 2) * TOPIC_FACTORS.get(topic, 1.0) for _i, _o, topic in services]
    reach = _project_reach(session, places)
    stamp_by = actor_label(actor)
    catalogue = [
        (service_id, ozg_id, weight, reach.get(service_id))
        for (service_id, ozg_id, _topic), weight in zip(services, weights, strict=True)
    ]
    statuses, topics_of = [], {service_id: topic for service_id, _o, topic in services}
    draw = rng.random
    for place in places:
        coverage = 0.035 + 0.3 * place.size
        for service_id, ozg_id, weight, delivered in catalogue:
            if delivered is None:
                if draw() >= min(coverage * weight, 0.95):
                    continue
                r = draw() + 0.2 * place.size
                maturity = 1 if r < 0.35 else 2 if r < 0.65 else 3 if r < 0.93 else 4
                project_id, earliest, efa = None, FOUNDED, False
            else:  # an EfA service of a project: its participants first, others follow
                project_id, earliest, taking_part = delivered
                if draw() >= (0.9 if place.id in taking_part else 0.3 + 0.3 * place.size):
                    continue
                maturity = 4 if draw() < 0.4 + 0.4 * place.size else 3
                efa = True
            # later for the higher levels: information went online early, transactions recently
            picked = _pick_day(place.segments, earliest, draw() ** (0.9 if maturity < 3 else 0.6))
            if picked is None:
                continue
            online_since, period_end = picked
            lag = min(rng.randrange(0, 21), (period_end - online_since).days - 1)
            statuses.append(
                {
                    "municipality_id": place.id,
                    "service_id": service_id,
                    "maturity": maturity,
                    "maturity_model": "1.x",
                    "online_since": online_since,
                    "url": f"{PORTAL_URL}/leistungen/{ozg_id}?ags={place.key}" if maturity >= 3 else "",
                    "project_id": project_id,
                    "efa": efa,
                    "changed_by_id": None,
                    "changed_by": stamp_by,
                    "changed_at": datetime.combine(online_since + timedelta(days=lag), time(9, 30), UTC),
                }
            )
    for start in range(0, len(statuses), CHUNK):
        session.execute(insert(OzgStatus.__table__), statuses[start : start + CHUNK])
    # the history: one row per status, copied in the database (the table held no status before)
    columns = [name for name in statuses[0] if name != "id"] if statuses else []
    if columns:
        source = OzgStatus.__table__
        session.execute(
            insert(OzgStatusChange.__table__).from_select(columns, select(*[source.c[c] for c in columns]))
        )
    ozg.recompute_tallies(session)
    kreis_of = {place.id: place.kreis_id for place in places}
    snapshots, months = _snapshots(session, statuses, kreis_of, topics_of, cutoff)
    counts = {
        "statuses": len(statuses),
        "history": len(statuses),
        "municipalities": len({row["municipality_id"] for row in statuses}),
        "snapshots": snapshots,
        "months": months,
        "seed": SEED,
    }
    audit.record(session, actor, "import", "ozg_status", None, after={"source": "demo", **counts})
    return [f"{len(statuses)} OZG statuses", f"{snapshots} OZG snapshots"]


def _month_index(day: date) -> int:
    return (day.year - FOUNDED.year) * 12 + day.month - 1


def _snapshots(session, statuses, kreis_of, topics_of, cutoff: date) -> tuple[int, int]:
    """The Land's and the Kreise's tallies at the start of each month from 2019 to today's: the
    statuses online before that month's first day (``possible`` as the tallies have it)."""
    months = _month_index(cutoff) + 1
    added: dict[tuple, list[list[int]]] = defaultdict(lambda: [[0] * months for _level in range(5)])
    land = TallyScope.LAND.value, ozg.LAND_ID
    for row in statuses:
        index = _month_index(row["online_since"]) + 1  # counts from the next month's first day
        if index >= months:
            continue
        topic, level = topics_of[row["service_id"]], min(row["maturity"], 4)
        kreis = kreis_of[row["municipality_id"]]
        for scope in (land, (TallyScope.KREIS.value, kreis)) if kreis is not None else (land,):
            for row_topic in ("", topic):
                added[(*scope, row_topic)][level][index] += 1
    tallies = session.execute(
        select(OzgTally.scope, OzgTally.scope_id, OzgTally.topic, OzgTally.possible)
        .where(OzgTally.scope.in_([TallyScope.LAND.value, TallyScope.KREIS.value]))
        .order_by(OzgTally.scope, OzgTally.scope_id, OzgTally.topic)
    ).all()
    rows = []
    for scope, scope_id, topic, possible in tallies:
        levels = added.get((scope, scope_id, topic))
        running = [0] * 5
        for index in range(months):
            if levels is not None:
                for level in range(1, 5):
                    running[level] += levels[level][index]
            rows.append(
                {
                    "month": date(FOUNDED.year + index // 12, index % 12 + 1, 1),
                    "scope": scope,
                    "scope_id": scope_id,
                    "topic": topic,
                    "possible": possible,
                    **{f"level{level}": running[level] for level in range(1, 5)},
                }
            )
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(OzgSnapshot.__table__), rows[start : start + CHUNK])
    return len(rows), months
