"""Admin pages of staff capacity: the timeline (months x people, also as a CSV download) and the
FTE-months that went to each Kreis and municipality in a year.

Both read their figures from ``staffing/services.py`` in a fixed number of statements whatever the
number of people, months or assignments: the timeline needs three (people, secondments,
assignments), the effort page two (assignments with their members, the named places) and one for
the year selector, besides the logged-in user. Auditors see people by pseudonym unless an admin lets
them see names (``services.names_visible``); the CSV download follows the same rule and is audited.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from flask import Response, request, url_for
from flask_admin import Admin, expose
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from itvsh.core import audit
from itvsh.core.admin import SecureBaseView, neutralise_formula
from itvsh.core.db import begin_write
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import DASH, Secondment, format_fte
from itvsh.staffing.periods import months
from itvsh.tenants.models import KIND_LABELS, Municipality, MunicipalityKind

CATEGORY = _l("Staffing")
MAX_MONTHS = 120  # ten years
FIRST_YEAR, LAST_YEAR = services.MIN_DAY.year, services.MAX_DAY.year
MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
YEAR_RE = re.compile(r"\d{4}")
STATES = ("none", "free", "planned", "full", "over")
STATE_LABELS = {
    "none": _l("not seconded"),
    "free": _l("free"),
    "planned": _l("partly planned"),
    "full": _l("fully planned"),
    "over": _l("over-planned"),
}
STATE_HINTS = {
    "none": _l("no secondment in this month"),
    "free": _l("seconded, nothing assigned"),
    "planned": _l("assigned less than available"),
    "full": _l("assigned exactly what is available"),
    "over": _l("on at least one day more is assigned than available"),
}


def _month_text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


# --- the period asked for -------------------------------------------------------------------------


@dataclass
class TimelinePeriod:
    """The months asked for (``from``/``to`` as typed), the months shown, and what was wrong with
    the request (per field; the defaults are shown instead)."""

    start: date
    end: date
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def start_text(self) -> str:
        return _month_text(self.start)

    @property
    def end_text(self) -> str:
        return _month_text(self.end)

    @property
    def messages(self) -> list[str]:
        return [*self.errors.values(), *self.notes]


def default_period(today: date | None = None) -> tuple[date, date]:
    """The current calendar year."""
    year = (today or date.today()).year
    return date(year, 1, 1), date(year, 12, 1)


def _parse_month(text: str, label: str) -> tuple[date | None, str | None]:
    match = MONTH_RE.fullmatch(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None, _(
            "%(field)s: “%(value)s” is not a month; write year and month as YYYY-MM, e.g. %(example)s.",
            field=label,
            value=text[:20],
            example=_month_text(date.today().replace(day=1)),
        )
    month = date(int(match.group(1)), int(match.group(2)), 1)
    if not FIRST_YEAR <= month.year <= LAST_YEAR:
        return None, _(
            "%(field)s: only months from %(first)s-01 to %(last)s-12 can be shown.",
            field=label,
            first=FIRST_YEAR,
            last=LAST_YEAR,
        )
    return month, None


def parse_period(args, today: date | None = None) -> TimelinePeriod:
    """The months of ``?from=YYYY-MM&to=YYYY-MM``; missing values default to the current year's
    first or last month. Anything wrong gives a message and the whole current year instead."""
    first, last = default_period(today)
    labels = {"from": _("From"), "to": _("To")}
    values = {name: (args.get(name) or "").strip() for name in labels}
    parsed = {"from": first, "to": last}
    errors: dict[str, str] = {}
    for name, label in labels.items():
        if values[name]:
            month, error = _parse_month(values[name], label)
            if error:
                errors[name] = error
            else:
                parsed[name] = month
    start, end = parsed["from"], parsed["to"]
    if not errors and end < start:
        errors["to"] = _("%(field)s: the last month cannot be before the first.", field=labels["to"])
    elif not errors and len(months(start, end)) > MAX_MONTHS:
        errors["to"] = _(
            "%(field)s: at most %(n)d months (10 years) can be shown at once.",
            field=labels["to"],
            n=MAX_MONTHS,
        )
    period = TimelinePeriod(start, end, values, errors)
    if errors:
        period.start, period.end = first, last
        period.notes.append(
            _("Showing %(start)s to %(end)s instead.", start=period.start_text, end=period.end_text)
        )
    return period


# --- the timeline ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    label: str


@dataclass(frozen=True)
class Cell:
    """One person in one month, as the page and the download show it."""

    person: Person
    month: date
    state: str
    available: int
    assigned: int
    free: int

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[self.state])

    @property
    def text(self) -> str:
        """Assigned / available, e.g. "50 % / 100 %"; a dash where the person is not seconded."""
        if self.state == "none":
            return DASH
        return f"{format_fte(self.assigned)} / {format_fte(self.available)}"

    @property
    def title(self) -> str:
        if self.state == "none":
            return _(
                "%(person)s, %(month)s: not seconded", person=self.person.label, month=_month_text(self.month)
            )
        return _(
            "%(person)s, %(month)s: %(assigned)s of %(available)s assigned, %(free)s free (%(state)s)",
            person=self.person.label,
            month=_month_text(self.month),
            assigned=format_fte(self.assigned),
            available=format_fte(self.available),
            free=format_fte(self.free),
            state=self.state_label,
        )


@dataclass(frozen=True)
class MonthRow:
    month: date
    cells: list[Cell]

    @property
    def key(self) -> str:
        return _month_text(self.month)

    @property
    def label(self) -> str:
        return format_date(self.month, "MMM y")


@dataclass(frozen=True)
class Timeline:
    people: list[Person]
    rows: list[MonthRow]

    def over_count(self, person: Person) -> int:
        index = self.people.index(person)
        return sum(1 for row in self.rows if row.cells[index].state == "over")

    @property
    def over_total(self) -> int:
        return sum(1 for row in self.rows for cell in row.cells if cell.state == "over")


def timeline(session, start: date, end: date, names: bool) -> Timeline:
    """Months as rows, people as columns (ordered by what is shown of them, so pseudonyms do not
    give away the order of names). Three statements, see ``services.capacity``."""
    people = services.capacity(session, start, end)
    shown = [(Person(p.staff_member.id, services.shown_name(p.staff_member, names)), p) for p in people]
    shown.sort(key=lambda pair: (pair[0].label.casefold(), pair[0].id))
    columns = [person for person, _capacity in shown]
    rows = []
    for index, month in enumerate(months(start, end)):
        cells = []
        for person, capacity in shown:
            m = capacity.months[index]
            cells.append(Cell(person, month, m.state, m.available, m.assigned, m.free))
        rows.append(MonthRow(month, cells))
    return Timeline(columns, rows)


def timeline_csv(data: Timeline) -> str:
    """One line per person and month; every cell neutralised against spreadsheet formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = [_("Person"), _("Month"), _("Available"), _("Assigned"), _("Free"), _("State")]
    writer.writerow([neutralise_formula(str(value)) for value in header])
    for person_index, person in enumerate(data.people):
        for row in data.rows:
            cell = row.cells[person_index]
            values = [
                person.label,
                row.key,
                format_fte(cell.available),
                format_fte(cell.assigned),
                format_fte(cell.free),
                cell.state_label,
            ]
            writer.writerow([neutralise_formula(value) for value in values])
    return out.getvalue()


# --- effort per year ------------------------------------------------------------------------------


def _fte_months_text(value: Fraction) -> str:
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return format_decimal(rounded, "#,##0.00")


@dataclass(frozen=True)
class EffortRow:
    """A Kreis or municipality (``key`` None: assignments whose member has no Kreis) and the
    FTE-months that went to it."""

    key: str | None
    name: str
    kind: str
    kreis: str
    fte_months: Fraction

    @property
    def text(self) -> str:
        return _fte_months_text(self.fte_months)

    @property
    def exact(self) -> str:
        """The exact value as a fraction, for machines (tests, copy and paste)."""
        return f"{self.fte_months.numerator}/{self.fte_months.denominator}"


def _effort_order(row: EffortRow):
    return (-row.fte_months, row.name.casefold(), row.key or "")


def _kind_label(place: Municipality) -> str:
    return str(KIND_LABELS.get(place.kind, place.kind))


def _kreis_of(place: Municipality) -> int | None:
    if place.kind in (MunicipalityKind.KREIS, MunicipalityKind.KREISFREIE_STADT):
        return place.id
    return place.kreis_id


def effort_rows(session, effort: services.YearEffort) -> tuple[list[EffortRow], list[EffortRow]]:
    """Rows per Kreis and per municipality, most effort first; the named places in one statement."""
    ids = set(effort.by_municipality) | {kreis for kreis in effort.by_kreis if kreis is not None}
    places = {}
    if ids:
        places = {
            place.id: place
            for place in session.execute(select(Municipality).where(Municipality.id.in_(ids))).scalars()
        }
    unknown = _("(unknown)")

    def name_of(place_id):
        place = places.get(place_id)
        return place.name if place is not None else unknown

    kreise = []
    for kreis_id, value in effort.by_kreis.items():
        place = places.get(kreis_id)
        if place is None:
            kreise.append(EffortRow(None, _("Without Kreis"), "", "", value))
        else:
            kreise.append(EffortRow(place.key, place.name, _kind_label(place), place.name, value))
    municipalities = []
    for place_id, value in effort.by_municipality.items():
        place = places.get(place_id)
        if place is None:  # cannot happen: the ids come from the same rows
            continue
        kreis_id = _kreis_of(place)
        kreis = name_of(kreis_id) if kreis_id is not None else DASH
        municipalities.append(EffortRow(place.key, place.name, _kind_label(place), kreis, value))
    return sorted(kreise, key=_effort_order), sorted(municipalities, key=_effort_order)


def parse_year(text: str | None, today: date | None = None) -> tuple[int, str | None]:
    """The year of ``?year=YYYY`` (default: the current year), and a message if it was unusable."""
    this_year = (today or date.today()).year
    value = (text or "").strip()
    if not value:
        return this_year, None
    if YEAR_RE.fullmatch(value) and FIRST_YEAR <= int(value) <= LAST_YEAR:
        return int(value), None
    return this_year, _(
        "%(field)s: “%(value)s” is not a year from %(first)s to %(last)s. Showing %(year)s instead.",
        field=_("Year"),
        value=value[:20],
        first=FIRST_YEAR,
        last=LAST_YEAR,
        year=this_year,
    )


# --- the views ------------------------------------------------------------------------------------


class StaffingPageView(SecureBaseView):
    """Shared by the capacity pages: their stylesheet."""

    @property
    def extra_css(self) -> list[str]:
        return [url_for("static", filename="css/staffing.css")]


class TimelineView(StaffingPageView):
    """Available and assigned share per person and month; ``?format=csv`` downloads it."""

    @expose("/")
    def index(self):
        period = parse_period(request.args)
        wanted = (request.args.get("format") or "").strip().lower()
        names = services.names_visible(db.session, current_user)
        if wanted == "csv":
            return self._download(period, names)
        if wanted:
            period.notes.insert(0, _("Format: only “csv” can be downloaded; here is the page."))
        data = timeline(db.session, period.start, period.end, names)
        return self.render(
            "admin/staffing/capacity_timeline.html",
            period=period,
            timeline=data,
            names=names,
            states=STATES,
            state_labels=STATE_LABELS,
            state_hints=STATE_HINTS,
            dash=DASH,
        )

    def _download(self, period: TimelinePeriod, names: bool) -> Response:
        begin_write(db.session)
        audit.record(
            db.session,
            current_user._get_current_object(),
            "export",
            "staff_capacity",
            after={"format": "csv", "from": period.start_text, "to": period.end_text, "names": names},
        )
        db.session.commit()
        body = timeline_csv(timeline(db.session, period.start, period.end, names))
        filename = f"capacity_{period.start_text}_{period.end_text}.csv"
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


def project_effort_rows(session, effort: services.YearEffort) -> list[tuple[int, str, str, str]]:
    """(id, name, FTE-months text, exact fraction) per project, most effort first; one statement."""
    from itvsh.projects.models import Project

    if not effort.by_project:
        return []
    names = dict(
        session.execute(select(Project.id, Project.name).where(Project.id.in_(effort.by_project))).all()
    )
    ordered = sorted(effort.by_project.items(), key=lambda item: (-item[1], names.get(item[0], "")))
    return [
        (pid, names.get(pid, "?"), _fte_months_text(value), f"{value.numerator}/{value.denominator}")
        for pid, value in ordered
    ]


class EffortView(StaffingPageView):
    """FTE-months per Kreis and municipality in one year."""

    @expose("/")
    def index(self):
        year, error = parse_year(request.args.get("year"))
        effort = services.effort_by_target(db.session, year)
        kreise, municipalities = effort_rows(db.session, effort)
        projects = project_effort_rows(db.session, effort)
        this_year = date.today().year
        first_start = db.session.execute(select(func.min(Secondment.starts_on))).scalar()
        first = min(first_start.year if first_start else this_year, this_year, year)
        years = list(range(max(this_year + 1, year), first - 1, -1))
        return self.render(
            "admin/staffing/capacity_effort.html",
            year=year,
            years=years,
            error=error,
            asked=(request.args.get("year") or "").strip(),
            effort=effort,
            kreise=kreise,
            municipalities=municipalities,
            projects=projects,
            projects_total_text=_fte_months_text(effort.projects_total),
            total_text=_fte_months_text(effort.total),
            total_exact=f"{effort.total.numerator}/{effort.total.denominator}",
            dash=DASH,
        )


def register(admin: Admin) -> None:
    """Add the capacity timeline and the effort per year to the Staffing menu."""
    admin.add_view(
        TimelineView(
            name=_l("Capacity"), category=CATEGORY, endpoint="staff_capacity", url="/admin/staffing/capacity"
        )
    )
    admin.add_view(
        EffortView(
            name=_l("Effort per year"),
            category=CATEGORY,
            endpoint="staff_effort",
            url="/admin/staffing/effort",
        )
    )
