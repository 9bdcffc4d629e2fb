"""The public OZG monitoring and its open data: no login, German by default, no personal data.

``/monitoring/`` shows the share of municipal OZG services at maturity >= 3 (OZG-compliant) for the
Land, per Themenfeld, per Kreis (a kreisfreie Stadt is its own Kreis) and per municipality (search
by name or AGS), the trend by month, and next to it the support the federation allocated
(committed) and paid per Kreis and municipality in a year: public money, sums of the bookings of
allocations to members. Progress is read only from the stored aggregates (``ozg_tallies``,
``ozg_snapshots``), never grouped over status rows, so a page runs at most four SQL statements
whatever the number of status rows.

The overview's figures change only when something is changed, and every change is audited: the
audit chain's head (``max(seq)``, one indexed lookup) is their version. The rendered figures are
kept per app, language and year under that version (and for at most CACHE_SECONDS, for changes
made around the services), so a visit costs one statement (plus one for a search) and a render of
the page's frame, while the first visit after a change reads the aggregates: version, progress
(tallies and snapshots in one statement), support and search - four at most.

``/monitoring/ozg.csv`` and ``/monitoring/ozg.json`` publish every known status row of a municipal
service (documented, stable columns), streamed so memory does not grow with the data, with ETag and
Last-Modified derived from a few indexed maxima (304 when unchanged). ``/monitoring/about``
documents the columns and the licence.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache

from babel.dates import get_month_names
from flask import Blueprint, Response, current_app, render_template, request, stream_with_context
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from werkzeug.exceptions import NotFound
from werkzeug.http import http_date, is_resource_modified

from itvsh.core.access import public, tenant_params
from itvsh.core.admin import neutralise_formula
from itvsh.core.audit import AuditEvent
from itvsh.core.i18n import current_language
from itvsh.core.tenancy import ALL, pop_scope, push_scope
from itvsh.extensions import db
from itvsh.funding.models import Booking, FiscalYear
from itvsh.projects.models import (
    MATURITY_LABELS,
    OzgService,
    OzgSnapshot,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    Project,
    Responsibility,
    TallyScope,
)
from itvsh.projects.ozg import LAND_ID
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind

bp = Blueprint("monitoring", __name__, url_prefix="/monitoring")

LOCAL_KIND_VALUES = tuple(kind.value for kind in LOCAL_KINDS)
OWN_KREIS_KINDS = (MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value)
SEARCH_LIMIT = 50
MAX_MONTHS = 240  # the trend shows at most the last twenty years
CACHE_SECONDS = 60  # the longest a change made around the audited services stays unseen
CACHE_ENTRIES = 64  # versions x languages x years kept per app
STREAM_BATCH = 2000
OPEN_DATA_MAX_AGE = 300  # seconds: short, the data changes whenever a municipality reports
OPEN_DATA_VERSION = "1"  # part of the ETag: a change of the files' shape changes every ETag

# The open data's columns: stable (scripts rely on them), documented on the about page and, in
# English, in the JSON. Descriptions are msgids, so the JSON takes them as they are.
COLUMNS = (
    ("ags", _l("Official municipality key (AGS, 8 digits)."), "01002000"),
    ("municipality", _l("Name of the Gemeinde or Stadt, as Destatis writes it."), "Kiel, Landeshauptstadt"),
    ("kreis", _l("Name of its Kreis; a kreisfreie Stadt is its own Kreis."), "Rendsburg-Eckernförde"),
    ("ozg_id", _l("OZG-ID of the service in the OZG catalogue."), "10169"),
    ("service", _l("Name of the OZG service (OZG-Leistung)."), "Führerschein"),
    ("themenfeld", _l("Themenfeld of the service."), "Mobilität & Reisen"),
    ("maturity", _l("Maturity (Reifegrad) 0 to 4 of model 1.x; 3 and 4 count as OZG-compliant."), "3"),
    ("maturity_model", _l("The maturity model the value belongs to (1.x: levels 0 to 4)."), "1.x"),
    ("online_since", _l("Day the online service went live (YYYY-MM-DD), empty if unknown."), "2021-05-01"),
)
COLUMN_NAMES = tuple(name for name, _description, _example in COLUMNS)
LICENCE = {
    "id": "dl-de/by-2-0",
    "name": "Datenlizenz Deutschland - Namensnennung - Version 2.0",
    "url": "https://www.govdata.de/dl-de/by-2-0",
}
ATTRIBUTION = {
    "status": "IT-Verbund Schleswig-Holstein (ITV-SH), OZG-Monitoring",
    "municipalities": "© Statistisches Bundesamt (Destatis), Gemeindeverzeichnis GV-ISys",
    "catalogue": "OZG-Umsetzungskatalog (BMI), via kdn-nrw/OZG-Datenbank-NRW (MIT licence)",
}
NOTES = (
    "One row per known status of a municipal OZG service in a Gemeinde or Stadt.",
    "A service without a row has maturity 0 (not online): only rows where something is known are stored.",
    "Services that the Land or the Bund provides are left out; they do not count in municipal progress.",
    "Share OZG-compliant = rows with maturity >= 3 / (Gemeinden and Städte x municipal services).",
)


# --- formatting (a page formats a few hundred figures: plain Python, not Babel per figure) -------


def percent(share: float | None, lang: str) -> str | None:
    """``12,3 %`` (German) or ``12.3%`` (English); None when there is nothing to divide by."""
    if share is None:
        return None
    text = f"{share * 100:.1f}"
    return text.replace(".", ",") + "\u00a0%" if lang == "de" else text + "%"


def number(value: int, lang: str) -> str:
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "de" else text


def euro(cents: int, lang: str) -> str:
    """Integer cents as ``core.money.format_money`` writes them (``1.234,56 €`` / ``€1,234.56``)."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    if lang == "de":
        return f"{sign}{whole:,}".replace(",", ".") + f",{rest:02d}\u00a0€"
    return f"{sign}€{whole:,}.{rest:02d}"


def day(value: date, lang: str) -> str:
    """``01.05.2021`` (German) or ``May 1, 2021`` (English), as Babel's medium format writes them."""
    if lang == "de":
        return f"{value.day:02d}.{value.month:02d}.{value.year}"
    return f"{get_month_names('abbreviated', locale='en')[value.month]} {value.day}, {value.year}"


@dataclass(frozen=True)
class Progress:
    """Counts per maturity level (0 = no row or level 0) of a scope's municipal services."""

    possible: int
    level1: int = 0
    level2: int = 0
    level3: int = 0
    level4: int = 0

    @property
    def compliant(self) -> int:
        return self.level3 + self.level4

    @property
    def level0(self) -> int:
        return self.possible - self.level1 - self.level2 - self.level3 - self.level4

    @property
    def share(self) -> float | None:
        return self.compliant / self.possible if self.possible else None

    def levels(self) -> list[int]:
        return [self.level0, self.level1, self.level2, self.level3, self.level4]


@dataclass(frozen=True)
class Figure:
    """A Progress with its texts, ready for the template (which then only prints strings)."""

    compliant: int
    possible: int
    share: float | None
    compliant_text: str
    possible_text: str
    share_text: str
    meter: str | None  # the share for a <meter>, or None

    @classmethod
    def of(cls, progress: Progress | None, lang: str) -> Figure | None:
        if progress is None:
            return None
        share = progress.share
        return cls(
            progress.compliant,
            progress.possible,
            share,
            number(progress.compliant, lang),
            number(progress.possible, lang),
            percent(share, lang) or "—",
            f"{share:.4f}" if share is not None else None,
        )


@dataclass(frozen=True)
class Money:
    committed_cents: int
    paid_cents: int
    committed: str
    paid: str

    @classmethod
    def of(cls, committed: int, paid: int, lang: str) -> Money:
        return cls(committed, paid, euro(committed, lang), euro(paid, lang))


@dataclass(frozen=True)
class Row:
    """A Kreis, a municipality, a Themenfeld or a month: its key, label and figures."""

    key: str
    name: str
    figure: Figure | None = None
    money: Money | None = None
    kreis: str = ""


def _progress(row, offset: int) -> Progress | None:
    """A Progress from ``possible, level1..level4`` at ``offset`` of a result row (None: no tally)."""
    if row[offset] is None:
        return None
    return Progress(*(int(value or 0) for value in row[offset : offset + 5]))


def _day(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # an aggregate's date as text (SQLite)


@contextmanager
def _public_money() -> Iterator[None]:
    """Sums of bookings are public money: read over every tenant's bookings; only sums leave."""
    previous = push_scope(db.session, ALL)
    try:
        yield
    finally:
        pop_scope(db.session, previous)


def _kreis_name(kreis):
    """The Kreis a Gemeinde or Stadt counts in, by name (a kreisfreie Stadt is its own)."""
    return case(
        (Municipality.kind == MunicipalityKind.KREISFREIE_STADT.value, Municipality.name),
        else_=func.coalesce(kreis.name, ""),
    )


# --- the statements of the overview, built once ---------------------------------------------------


@cache
def _version_statement():
    """The audit chain's head and the snapshots' first and last month: three indexed lookups."""
    return select(
        select(func.max(AuditEvent.seq)).scalar_subquery(),
        select(func.min(OzgSnapshot.month)).scalar_subquery(),
        select(func.max(OzgSnapshot.month)).scalar_subquery(),
    )


@cache
def _progress_statement():
    """The Land's tallies (overall and per Themenfeld), each Kreis's overall tally with its key
    and name, and the Land's snapshots of ``:months`` (each found by the snapshots' unique key
    month, scope, scope_id, topic - not by scanning every snapshot row)."""
    kreis = aliased(Municipality)
    tallies = (
        select(
            literal(0).label("part"),
            OzgTally.scope.label("scope"),
            OzgTally.scope_id.label("scope_id"),
            OzgTally.topic.label("topic"),
            cast(null(), Date).label("month"),
            OzgTally.possible,
            OzgTally.level1,
            OzgTally.level2,
            OzgTally.level3,
            OzgTally.level4,
            kreis.key.label("key"),
            kreis.name.label("name"),
        )
        .outerjoin(kreis, and_(OzgTally.scope == TallyScope.KREIS.value, kreis.id == OzgTally.scope_id))
        .where(
            or_(
                and_(OzgTally.scope == TallyScope.LAND.value, OzgTally.scope_id == LAND_ID),
                and_(OzgTally.scope == TallyScope.KREIS.value, OzgTally.topic == ""),
            )
        )
    )
    snapshots = select(
        literal(1),
        OzgSnapshot.scope,
        OzgSnapshot.scope_id,
        OzgSnapshot.topic,
        OzgSnapshot.month,
        OzgSnapshot.possible,
        OzgSnapshot.level1,
        OzgSnapshot.level2,
        OzgSnapshot.level3,
        OzgSnapshot.level4,
        cast(null(), kreis.key.type),
        cast(null(), kreis.name.type),
    ).where(
        OzgSnapshot.month.in_(bindparam("months", expanding=True)),
        OzgSnapshot.scope == TallyScope.LAND.value,
        OzgSnapshot.scope_id == LAND_ID,
        OzgSnapshot.topic == "",
    )
    return union_all(tallies, snapshots)


@cache
def _support_statement(latest: bool):
    """Every fiscal year (for the selector) and, for the chosen year, committed and paid per Kreis
    over the bookings of allocations to members, grouped once. The chosen year is ``:year``, or
    with ``latest`` the latest year up to ``:year`` (else the latest there is)."""
    year = bindparam("year", type_=Integer)
    if latest:
        chosen = func.coalesce(
            select(func.max(FiscalYear.year)).where(FiscalYear.year <= year).scalar_subquery(),
            select(func.max(FiscalYear.year)).scalar_subquery(),
        )
    else:
        chosen = year
    chosen_id = select(FiscalYear.id).where(FiscalYear.year == chosen).scalar_subquery()
    recipient, kreis = aliased(Municipality), aliased(Municipality)
    # A Kreis or kreisfreie Stadt is its own Kreis; a Gemeinde's or an Amt's is its Kreis.
    kreis_id = case(
        (recipient.kind.in_(OWN_KREIS_KINDS), recipient.id),
        else_=func.coalesce(recipient.kreis_id, recipient.id),
    )
    sums = (
        select(
            kreis_id.label("kreis_id"),
            func.sum(Booking.committed_delta_cents).label("committed"),
            func.sum(Booking.paid_delta_cents).label("paid"),
        )
        .join(recipient, recipient.id == Booking.municipality_id)
        .where(Booking.fiscal_year_id == chosen_id)
        .group_by(kreis_id)
        .subquery()
    )
    years = select(
        literal(0).label("part"),
        FiscalYear.year.label("year"),
        FiscalYear.id.label("year_id"),
        case((FiscalYear.year == chosen, 1), else_=0).label("chosen"),
        cast(null(), Integer).label("kreis_id"),
        cast(null(), kreis.key.type).label("key"),
        cast(null(), kreis.name.type).label("name"),
        literal(0).label("committed"),
        literal(0).label("paid"),
    )
    per_kreis = select(
        literal(1),
        literal(0),
        literal(0),
        literal(0),
        kreis.id,
        kreis.key,
        kreis.name,
        sums.c.committed,
        sums.c.paid,
    ).join(sums, sums.c.kreis_id == kreis.id)
    both = union_all(years, per_kreis).subquery()
    return select(both).order_by(both.c.part, both.c.year)


@cache
def _search_statement(by_key: bool):
    """Gemeinden and Städte whose AGS starts with ``:pattern`` or whose name is like it, with their
    overall tally and their support in the fiscal year ``:year_id``; ``:limit`` rows."""
    kreis = aliased(Municipality)
    pattern = bindparam("pattern", type_=String)
    match = Municipality.key.like(pattern) if by_key else Municipality.name.ilike(pattern, escape="\\")

    def booked(column):
        return (
            select(func.coalesce(func.sum(column), 0))
            .where(Booking.municipality_id == Municipality.id, Booking.fiscal_year_id == bindparam("year_id"))
            .correlate(Municipality)
            .scalar_subquery()
        )

    return (
        select(
            Municipality.key,
            Municipality.name,
            _kreis_name(kreis),
            OzgTally.possible,
            OzgTally.level1,
            OzgTally.level2,
            OzgTally.level3,
            OzgTally.level4,
            booked(Booking.committed_delta_cents),
            booked(Booking.paid_delta_cents),
        )
        .outerjoin(kreis, kreis.id == Municipality.kreis_id)
        .outerjoin(
            OzgTally,
            and_(
                OzgTally.scope == TallyScope.MUNICIPALITY.value,
                OzgTally.scope_id == Municipality.id,
                OzgTally.topic == "",
            ),
        )
        .where(Municipality.kind.in_(LOCAL_KIND_VALUES), match)
        .order_by(Municipality.name, Municipality.key)
        .limit(bindparam("limit", type_=Integer))
    )


# --- reading ----------------------------------------------------------------------------------


def read_version() -> tuple[int | None, list[date]]:
    """One statement: the audit chain's head and the months that have snapshots (the last
    MAX_MONTHS of them)."""
    version, first, last = db.session.execute(_version_statement()).one()
    first, last = _day(first), _day(last)
    if first is None or last is None:
        return version, []
    start, end = first.year * 12 + first.month - 1, last.year * 12 + last.month - 1
    return version, [date(n // 12, n % 12 + 1, 1) for n in range(max(start, end - MAX_MONTHS + 1), end + 1)]


def read_progress(months: list[date]):
    """One statement: the Land's Progress, ``[(Themenfeld, Progress)]``, ``{Kreis id: (key,
    name, Progress)}`` and the Land's trend ``[(month, Progress)]`` over ``months``."""
    land, topics, kreise, trend = None, [], {}, []
    for row in db.session.execute(_progress_statement(), {"months": months}):
        progress = _progress(row, 5)
        if row.part == 1:
            trend.append((_day(row.month), progress))
        elif row.scope == TallyScope.LAND.value:
            if row.topic == "":
                land = progress
            else:
                topics.append((row.topic, progress))
        elif row.key is not None:
            kreise[row.scope_id] = (row.key, row.name, progress)
    topics.sort(key=lambda item: item[0].casefold())
    trend.sort(key=lambda item: item[0])
    return land, topics, kreise, trend


def support_by_kreis(year: int | None) -> tuple[list[tuple[int, int]], tuple[int, int] | None, dict]:
    """One grouped statement: ``[(year, id)]`` of every fiscal year, the chosen ``(year, id)`` (None
    if ``year`` has none) and ``{Kreis id: (key, name, committed, paid)}`` in it."""
    with _public_money():
        rows = db.session.execute(
            _support_statement(year is None), {"year": date.today().year if year is None else year}
        ).all()
    fiscal_years, chosen, kreise = [], None, {}
    for row in rows:
        if row.part == 0:
            fiscal_years.append((row.year, row.year_id))
            if row.chosen:
                chosen = (row.year, row.year_id)
        else:
            kreise[row.kreis_id] = (row.key, row.name, int(row.committed), int(row.paid))
    return fiscal_years, chosen, kreise


def search_municipalities(query: str, year_id: int | None, limit: int = SEARCH_LIMIT + 1) -> list:
    """One statement: Gemeinden and Städte whose AGS starts with ``query`` (digits) or whose name
    contains it, with their overall tally and support in the fiscal year ``year_id``."""
    by_key = query.isascii() and query.isdigit()
    if by_key:
        pattern = query + "%"
    else:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with _public_money():
        return db.session.execute(
            _search_statement(by_key), {"pattern": pattern, "year_id": year_id, "limit": limit}
        ).all()


# --- the trend chart, drawn as inline SVG by the template -----------------------------------------

CHART_WIDTH, CHART_HEIGHT = 720, 260
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 56, 16, 14, 32


def trend_chart(trend: list[tuple[date, Progress]], lang: str) -> dict | None:
    """Geometry of a line chart of the Land's share over the months (None without snapshots)."""
    points = [(month, p.share) for month, p in trend if p.share is not None]
    if not points:
        return None
    top_share = max(share for _month, share in points)
    step = 0.05 if top_share <= 0.2 else 0.1 if top_share <= 0.6 else 0.2
    top = max(1, math.ceil(round(top_share / step, 6))) * step
    plot_w = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    bottom = CHART_TOP + plot_h
    spread = max(len(points) - 1, 1)
    coordinates, years = [], []
    for index, (month, share) in enumerate(points):
        x = round(CHART_LEFT + (plot_w * index / spread if len(points) > 1 else plot_w / 2), 1)
        y = round(bottom - plot_h * min(share / top, 1), 1)
        coordinates.append((x, y))
        if index == 0 or month.month == 1:
            years.append({"x": x, "label": str(month.year)})
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "bottom": bottom,
        "line": " ".join(f"{x},{y}" for x, y in coordinates),
        "ticks": [
            {"y": round(bottom - plot_h * n * step / top, 1), "label": percent(n * step, lang)}
            for n in range(round(top / step) + 1)
        ],
        "years": years,
        "last": {"x": coordinates[-1][0], "y": coordinates[-1][1]},
    }


# --- the overview, kept per version -------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    """The rendered figures of the overview for one language and year (no request's data)."""

    fiscal_years: list[int]
    year: int | None
    year_id: int | None
    progress_html: Markup
    kreise_html: Markup


class _Kept:
    """A small LRU of Overviews per (version, language, year), each kept at most CACHE_SECONDS."""

    def __init__(self):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key) -> Overview | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > CACHE_SECONDS:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key, overview: Overview) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), overview)
            self._entries.move_to_end(key)
            while len(self._entries) > CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def kept_overviews(app=None) -> _Kept:
    app = app or current_app
    return app.extensions.setdefault("itvsh_monitoring_overviews", _Kept())


def overview(lang: str, year: int | None) -> Overview:
    """The overview's figures for ``lang`` and ``year``: from the kept ones while the version
    stands (one statement), else read (two more) and rendered."""
    version, months = read_version()
    key = (version, lang, year)
    kept = kept_overviews()
    found = kept.get(key)
    if found is not None:
        return found
    land, topics, kreis_progress, trend = read_progress(months)
    fiscal_years, chosen, kreis_support = support_by_kreis(year)
    kreise = []
    for kreis_id in {*kreis_progress, *kreis_support}:
        kreis_key, name, progress = kreis_progress.get(kreis_id) or (*kreis_support[kreis_id][:2], None)
        committed, paid = kreis_support[kreis_id][2:] if kreis_id in kreis_support else (0, 0)
        kreise.append(Row(kreis_key, name, Figure.of(progress, lang), Money.of(committed, paid, lang)))
    kreise.sort(key=lambda row: row.name.casefold())
    month_names = get_month_names("wide", locale=lang)
    trend_rows = [
        Row(month.isoformat(), f"{month_names[month.month]} {month.year}", Figure.of(progress, lang))
        for month, progress in trend
    ]
    levels = []
    if land is not None and land.possible:
        levels = [
            (label, count, number(count, lang), percent(count / land.possible, lang))
            for label, count in zip(_maturity_labels(), land.levels(), strict=True)
        ]
    shown_year = chosen[0] if chosen else None
    progress_html = render_template(
        "monitoring/_progress.html",
        land=Figure.of(land, lang),
        levels=levels,
        topics=[Row(topic, topic, Figure.of(progress, lang)) for topic, progress in topics],
        trend=trend_rows,
        chart=trend_chart(trend, lang),
        first=trend_rows[0] if trend_rows else None,
        last=trend_rows[-1] if trend_rows else None,
    )
    kreise_html = render_template(
        "monitoring/_kreise.html",
        kreise=kreise,
        land=Figure.of(land, lang),
        total=Money.of(
            sum(row.money.committed_cents for row in kreise),
            sum(row.money.paid_cents for row in kreise),
            lang,
        ),
        year=shown_year,
    )
    result = Overview(
        fiscal_years=[y for y, _id in reversed(fiscal_years)],
        year=shown_year,
        year_id=chosen[1] if chosen else None,
        progress_html=Markup(progress_html),  # noqa: S704  (rendered by Jinja with autoescape)
        kreise_html=Markup(kreise_html),  # noqa: S704
    )
    kept.put(key, result)
    return result


# --- pages ----------------------------------------------------------------------------------------


def _year_arg() -> tuple[int | None, str | None]:
    raw = (request.args.get("year") or "").strip()
    if not raw:
        return None, None
    if raw.isascii() and raw.isdigit() and len(raw) == 4:
        return int(raw), None
    return None, _("The year must be a year such as %(example)s.", example=date.today().year)


def _search_arg() -> tuple[str, str, str | None]:
    """(the query to search, the text to show in the field, a problem)."""
    query = " ".join((request.args.get("q") or "").split())
    shown = query[:100]
    if not query:
        return "", "", None
    if len(query) > 100:
        return "", shown, _("Please search with at most 100 characters.")
    if len(query) < 2:
        return "", shown, _("Please enter at least two characters of a name or an AGS.")
    return query, shown, None


def _maturity_labels() -> list[str]:
    return [str(MATURITY_LABELS[level]) for level in range(5)]


@bp.get("/")
@public
def index():
    lang = current_language()
    year, year_problem = _year_arg()
    query, shown_query, query_problem = _search_arg()
    figures = overview(lang, year)
    matches = search_municipalities(query, figures.year_id) if query else None
    if year is not None and figures.year is None:
        year_problem = _("There are no figures for %(year)s.", year=year)
    return render_template(
        "monitoring/index.html",
        overview=figures,
        year_problem=year_problem,
        query=shown_query,
        query_problem=query_problem,
        matches=[
            Row(
                row[0],
                row[1],
                Figure.of(_progress(row, 3), lang),
                Money.of(int(row[8]), int(row[9]), lang),
                kreis=row[2],
            )
            for row in matches[:SEARCH_LIMIT]
        ]
        if matches is not None
        else None,
        more_matches=matches is not None and len(matches) > SEARCH_LIMIT,
        search_limit=SEARCH_LIMIT,
    )


def _municipality_or_404(key: str):
    kreis = aliased(Municipality)
    found = None
    if key.isascii() and key.isdigit() and len(key) == 8:
        found = db.session.execute(
            select(Municipality.id, Municipality.key, Municipality.name, _kreis_name(kreis).label("kreis"))
            .outerjoin(kreis, kreis.id == Municipality.kreis_id)
            .where(Municipality.key == key, Municipality.kind.in_(LOCAL_KIND_VALUES))
        ).first()
    if found is None:
        exc = NotFound()
        exc.itvsh_detail = _("There is no Gemeinde or Stadt with the AGS %(key)s.", key=key[:20])
        raise exc
    return found


@bp.get("/municipality/<key>")
@public
@tenant_params(key="municipality_key")
def municipality(key: str):
    """One Gemeinde's or Stadt's share overall and per Themenfeld (its tallies), its known
    statuses and the support it received per year: four statements."""
    lang = current_language()
    found = _municipality_or_404(key)
    tallies = db.session.execute(
        select(
            OzgTally.topic,
            OzgTally.possible,
            OzgTally.level1,
            OzgTally.level2,
            OzgTally.level3,
            OzgTally.level4,
        ).where(OzgTally.scope == TallyScope.MUNICIPALITY.value, OzgTally.scope_id == found.id)
    ).all()
    overall = next((_progress(row, 1) for row in tallies if row.topic == ""), None)
    topics = sorted(
        (Row(row.topic, row.topic, Figure.of(_progress(row, 1), lang)) for row in tallies if row.topic),
        key=lambda row: row.name.casefold(),
    )
    statuses = db.session.execute(
        select(
            OzgService.ozg_id,
            OzgService.name,
            OzgService.topic,
            OzgStatus.maturity,
            OzgStatus.online_since,
            OzgStatus.url,
            OzgStatus.efa,
            Project.name.label("project"),
        )
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .outerjoin(Project, Project.id == OzgStatus.project_id)
        .where(
            OzgStatus.municipality_id == found.id,
            OzgService.responsibility == Responsibility.MUNICIPAL.value,
        )
        .order_by(OzgService.topic, OzgService.ozg_id)
    ).all()
    with _public_money():
        support = db.session.execute(
            select(
                FiscalYear.year,
                func.coalesce(func.sum(Booking.committed_delta_cents), 0),
                func.coalesce(func.sum(Booking.paid_delta_cents), 0),
            )
            .join(FiscalYear, FiscalYear.id == Booking.fiscal_year_id)
            .where(Booking.municipality_id == found.id)
            .group_by(FiscalYear.year)
            .order_by(FiscalYear.year.desc())
        ).all()
    labels = _maturity_labels()
    return render_template(
        "monitoring/municipality.html",
        municipality=found,
        overall=Figure.of(overall, lang),
        topics=topics,
        statuses=[
            {
                "ozg_id": s.ozg_id,
                "name": s.name,
                "topic": s.topic,
                "maturity": s.maturity,
                "maturity_label": labels[s.maturity] if 0 <= s.maturity < len(labels) else str(s.maturity),
                "online_since": day(s.online_since, lang) if s.online_since else None,
                "url": s.url,
                "efa": s.efa,
                "project": s.project,
            }
            for s in statuses
        ],
        support=[(year, Money.of(int(c), int(p), lang)) for year, c, p in support],
    )


@bp.get("/about")
@public
def about():
    return render_template(
        "monitoring/about.html",
        columns=COLUMNS,
        licence=LICENCE,
        attribution=ATTRIBUTION,
        maturity_labels=_maturity_labels(),
    )


# --- open data ------------------------------------------------------------------------------------


def _aware(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without a declared type on an aggregate
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def open_data_version() -> tuple[str, datetime | None]:
    """A fingerprint of everything the open data shows, from indexed maxima and small tables in
    one statement: (the hash, the last change). Every status change appends a history row; tally
    rebuilds (Core loads, responsibility changes) stamp the tallies; renames stamp their rows."""
    values = db.session.execute(
        select(
            select(func.max(OzgStatusChange.id)).scalar_subquery(),
            select(func.max(OzgStatusChange.changed_at)).scalar_subquery(),
            select(func.max(OzgStatus.id)).scalar_subquery(),
            select(func.max(OzgTally.updated_at)).scalar_subquery(),
            select(func.max(OzgService.id)).scalar_subquery(),
            select(func.max(OzgService.updated_at)).scalar_subquery(),
            select(func.max(Municipality.id)).scalar_subquery(),
            select(func.max(Municipality.updated_at)).scalar_subquery(),
        )
    ).one()
    stamps = [_aware(values[i]) for i in (1, 3, 5, 7)]
    known = [stamp for stamp in stamps if stamp is not None]
    text = "|".join([OPEN_DATA_VERSION, *(str(v) for v in values[::2]), *(str(s) for s in stamps)])
    return hashlib.sha256(text.encode()).hexdigest()[:32], max(known) if known else None


def open_data_statement():
    """Every known status of a municipal service in a Gemeinde or Stadt: the columns of COLUMNS,
    unordered. The open data orders it and streams it; the OZG export (``reports.renderers.ozg``)
    adds its batch's municipalities and its own order, so both publish the same rows and cells."""
    kreis = aliased(Municipality)
    return (
        select(
            Municipality.key,
            Municipality.name,
            _kreis_name(kreis),
            OzgService.ozg_id,
            OzgService.name,
            OzgService.topic,
            OzgStatus.maturity,
            OzgStatus.maturity_model,
            OzgStatus.online_since,
        )
        .select_from(OzgStatus)
        .join(Municipality, Municipality.id == OzgStatus.municipality_id)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .outerjoin(kreis, kreis.id == Municipality.kreis_id)
        .where(
            OzgService.responsibility == Responsibility.MUNICIPAL.value,
            Municipality.kind.in_(LOCAL_KIND_VALUES),
        )
    )


def csv_cells(row) -> tuple:
    """One row of ``open_data_statement`` as the CSV cells of the open data: text formula-safe,
    maturity a number, ``online_since`` as YYYY-MM-DD (empty when unknown)."""
    ags, name, kreis, ozg_id, service, topic, maturity, model, since = row
    return (
        neutralise_formula(ags),
        neutralise_formula(name),
        neutralise_formula(kreis),
        neutralise_formula(ozg_id),
        neutralise_formula(service),
        neutralise_formula(topic),
        maturity,
        neutralise_formula(model),
        since.isoformat() if since else "",
    )


def _open_data_rows():
    """The open data's rows by AGS and OZG-ID, in batches (a server-side cursor on PostgreSQL)."""
    statement = (
        open_data_statement()
        .order_by(Municipality.key, OzgService.ozg_id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    yield from db.session.execute(statement).partitions()


def _open_data_headers(etag: str, last_modified: datetime | None) -> dict:
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": f"public, max-age={OPEN_DATA_MAX_AGE}",
        "Link": f'<{LICENCE["url"]}>; rel="license", </monitoring/about>; rel="describedby"',
    }
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    return headers


def _open_data(kind: str, mimetype: str, body):
    etag, last_modified = open_data_version()
    etag = hashlib.sha256(f"{kind}|{etag}".encode()).hexdigest()[:32]
    headers = _open_data_headers(etag, last_modified)
    if not is_resource_modified(request.environ, etag=etag, last_modified=last_modified):
        return Response(status=304, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="ozg-status-sh.{kind}"'
    return Response(stream_with_context(body()), mimetype=mimetype, headers=headers)


def _csv_body():
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMN_NAMES)
    yield out.getvalue().encode("utf-8")
    for batch in _open_data_rows():
        out.seek(0)
        out.truncate()
        writer.writerows(csv_cells(row) for row in batch)
        yield out.getvalue().encode("utf-8")


def open_data_meta() -> dict:
    """The JSON's metadata: licence, sources, columns, notes and the Land's figures (one statement)."""
    land = db.session.execute(
        select(OzgTally.possible, OzgTally.level1, OzgTally.level2, OzgTally.level3, OzgTally.level4).where(
            OzgTally.scope == TallyScope.LAND.value, OzgTally.scope_id == LAND_ID, OzgTally.topic == ""
        )
    ).first()
    progress = _progress(land, 0) if land is not None else Progress(0)
    with force_locale("en"):  # the msgids are the English descriptions
        columns = [{"name": name, "description": str(text)} for name, text, _example in COLUMNS]
    return {
        "title": "OZG status of the municipalities of Schleswig-Holstein",
        "publisher": "IT-Verbund Schleswig-Holstein (ITV-SH)",
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "documentation": "/monitoring/about",
        "columns": columns,
        "notes": list(NOTES),
        "land": {
            "possible": progress.possible,
            "levels": progress.levels(),
            "compliant": progress.compliant,
            "share_compliant": round(progress.share, 6) if progress.share is not None else None,
        },
    }


def _json_body():
    meta = json.dumps(open_data_meta(), ensure_ascii=False)
    yield (meta[:-1] + ', "rows": [').encode("utf-8")
    first = True
    for batch in _open_data_rows():
        parts = []
        for ags, name, kreis, ozg_id, service, topic, maturity, model, since in batch:
            row = {
                "ags": ags,
                "municipality": name,
                "kreis": kreis,
                "ozg_id": ozg_id,
                "service": service,
                "themenfeld": topic,
                "maturity": maturity,
                "maturity_model": model,
                "online_since": since.isoformat() if since else None,
            }
            parts.append(json.dumps(row, ensure_ascii=False))
        if parts:
            yield (("" if first else ",") + ",".join(parts)).encode("utf-8")
            first = False
    yield b"]}"


@bp.get("/ozg.csv")
@public
def ozg_csv():
    return _open_data("csv", "text/csv", _csv_body)


@bp.get("/ozg.json")
@public
def ozg_json():
    return _open_data("json", "application/json", _json_body)
