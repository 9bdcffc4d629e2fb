"""Admin views of the OZG catalogue and status: the catalogue (search, filters, who is responsible
for a service, the upload of a newer catalogue), the matrix of one municipality's services with a
bulk edit for staff and each service's history, and the read-only list of all status rows with
filters and audited CSV/XLSX export.

Thin views: every change goes through ``projects.ozg`` (``set_status``, ``set_responsibility``) or
``projects.catalogue.import_catalogue``, which check, keep tallies and history and audit; the view
commits once, or rolls back and shows the messages (nothing changed). Auditors read everything and
get 403 from every write. The matrix costs five statements whatever the size of the catalogue: the
user, the municipality, the services, its status rows and the projects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from flask import abort, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.babel import lazy_gettext as _admin_l
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_babel import format_date, format_datetime, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from markupsafe import Markup
from sqlalchemy import String, cast, literal_column, or_, select, union_all
from sqlalchemy.orm import joinedload, lazyload, load_only
from wtforms import SelectField

from itvsh.core.admin import SecureBaseView, SecureModelView
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.catalogue import CatalogueImportError, import_catalogue
from itvsh.projects.models import (
    COMPLIANT_FROM,
    MATURITY_LABELS,
    MATURITY_RANGE,
    RESPONSIBILITY_LABELS,
    MaturityModel,
    OzgService,
    OzgStatus,
    OzgStatusChange,
    Project,
)
from itvsh.tenants.models import KIND_LABELS, LOCAL_KINDS, Municipality, MunicipalityKind

CATEGORY = _l("OZG")
LOCAL_KIND_VALUES = tuple(kind.value for kind in LOCAL_KINDS)
LOW, HIGH = MATURITY_RANGE[MaturityModel.V1]
LEVELS = tuple(range(LOW, HIGH + 1))
CANDIDATE_LIMIT = 25  # municipalities listed when a name matches several
HISTORY_LIMIT = 500
FIELD_LABELS = {
    "maturity": _l("Maturity"),
    "online_since": _l("Online since"),
    "url": _l("URL"),
    "project": _l("Project"),
    "efa": _l("EfA"),
    "municipality": _l("Municipality"),
    "service": _l("Service"),
}


def _actor():
    return current_user._get_current_object()


def _id(value) -> int | None:
    """A primary key as sent in a URL or form, or None (also for "abc" or an id too large for the
    column, which PostgreSQL would refuse with an error)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def _maturity_label(level: int) -> str:
    return str(MATURITY_LABELS.get(level, level))


# --- filter options: Themenfelder, Lebenslagen, Kreise and projects in one query per request ------


def filter_options() -> dict[str, list[tuple[str, str]]]:
    if "itvsh_ozg_options" not in g:
        topics = select(
            literal_column("'topic'").label("kind"),
            OzgService.topic.label("value"),
            OzgService.topic.label("label"),
        ).distinct()
        life_events = (
            select(literal_column("'life_event'"), OzgService.life_event, OzgService.life_event)
            .where(OzgService.life_event != "")
            .distinct()
        )
        kreise = select(literal_column("'kreis'"), Municipality.key, Municipality.name).where(
            Municipality.kind.in_([MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value])
        )
        projects = select(literal_column("'project'"), cast(Project.id, String), Project.name)
        rows = db.session.execute(union_all(topics, life_events, kreise, projects)).all()
        options: dict[str, list[tuple[str, str]]] = {
            "topic": [],
            "life_event": [],
            "kreis": [],
            "project": [],
        }
        for row in sorted(rows, key=lambda r: (r.label.casefold(), r.value)):
            label = f"{row.label} ({row.value})" if row.kind == "kreis" else row.label
            options[row.kind].append((row.value, label))
        g.itvsh_ozg_options = options
    return g.itvsh_ozg_options


class _LazyOptions:
    """Filter options read per request (Flask-Admin would otherwise read them once, when the view
    is built, before the database is even there)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(filter_options()[self.kind])


class ClauseFilter(BaseSQLAFilter):
    """Equality with an offered value (or one ``check`` accepts), applied as ``clause(value)``. The
    column is always the view's own, so Flask-Admin adds no joins; related tables are reached
    through subqueries in the clause."""

    def __init__(self, column, name, clause, *, options=None, check=None):
        super().__init__(column, name, options=options)
        self.clause = clause
        self.check = check

    def validate(self, value) -> bool:
        if self.check is not None:
            return self.check(value)
        return value in {str(v) for v, _label in self.options}

    def apply(self, query, value, alias=None):
        return query.filter(self.clause(value))

    def operation(self):
        return _admin_l("equals")  # Flask-Admin's own catalogue translates it


def _is_ags(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) == 8


class _OzgModelView(SecureModelView):
    filter_url_names: tuple[str, ...] = ()

    @property
    def extra_css(self) -> list[str]:
        return [url_for("static", filename="css/ozg.css")]

    def get_filter_arg(self, index, flt):
        return self.filter_url_names[index]

    def get_one(self, id):
        number = _id(id)
        return db.session.get(self.model, number) if number is not None else None


# --- the catalogue --------------------------------------------------------------------------------


class ResponsibilityForm(FlaskForm):
    responsibility = SelectField(
        _l("Responsibility"),
        choices=lambda: [(r.value, label) for r, label in RESPONSIBILITY_LABELS.items()],
        description=_l("Only services of the municipalities count in their OZG progress."),
    )


class CatalogueImportForm(FlaskForm):
    file = FileField(
        _l("OZG catalogue (CSV, UTF-8)"),
        validators=[FileRequired(_l("Please choose a file."))],
        description=_l("In the shape of the shipped ozg_services.csv (OZG-Umsetzungskatalog)."),
    )


def _leika_short(view, context, model, name) -> str:
    keys = model.leika_key_list
    if len(keys) <= 3:
        return ", ".join(keys)
    return _("%(keys)s and %(more)d more", keys=", ".join(keys[:3]), more=len(keys) - 3)


class OzgServiceView(_OzgModelView):
    """The OZG catalogue: no create or delete (the import keeps it); staff change who is responsible."""

    allow_edit = True
    list_template = "admin/ozg/service_list.html"
    edit_template = "admin/ozg/service_edit.html"
    column_list = ("ozg_id", "name", "topic", "life_event", "leika_keys", "responsibility")
    column_details_list = (*column_list, "created_at", "updated_at")
    column_export_list = column_list
    column_searchable_list = ("ozg_id", "name", "leika_keys")
    column_sortable_list = ("ozg_id", "name", "topic", "life_event", "responsibility")
    column_default_sort = "ozg_id"
    column_filters = (
        ClauseFilter(
            OzgService.topic, _l("Themenfeld"), lambda v: OzgService.topic == v, options=_LazyOptions("topic")
        ),
        ClauseFilter(
            OzgService.life_event,
            _l("Lebenslage"),
            lambda v: OzgService.life_event == v,
            options=_LazyOptions("life_event"),
        ),
        ClauseFilter(
            OzgService.responsibility,
            _l("Responsibility"),
            lambda v: OzgService.responsibility == v,
            options=[(r.value, label) for r, label in RESPONSIBILITY_LABELS.items()],
        ),
    )
    filter_url_names = ("topic", "life_event", "responsibility")
    column_labels = {
        "ozg_id": _l("OZG-ID"),
        "name": _l("Name"),
        "topic": _l("Themenfeld"),
        "life_event": _l("Lebenslage"),
        "leika_keys": _l("LeiKa keys"),
        "responsibility": _l("Responsibility"),
        "created_at": _l("Created"),
        "updated_at": _l("Updated"),
    }
    column_descriptions = {"leika_keys": _l("Search finds a service by any of its LeiKa keys.")}
    column_formatters = {
        "leika_keys": _leika_short,
        "responsibility": lambda v, c, m, n: m.responsibility_label,
    }
    column_formatters_detail = {
        "leika_keys": lambda v, c, m, n: ", ".join(m.leika_key_list),
        "responsibility": lambda v, c, m, n: m.responsibility_label,
    }

    def edit_form(self, obj=None):
        return ResponsibilityForm(obj=obj)

    def update_model(self, form, model):
        try:
            ozg.set_responsibility(db.session, _actor(), model, form.responsibility.data)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            form.responsibility.errors = [*form.responsibility.errors, exc.message]
            flash(exc.message, "error")
            return False
        flash(
            _(
                "%(service)s: responsibility set to %(label)s; the OZG figures were recomputed.",
                service=f"{model.ozg_id} {model.name}",
                label=model.responsibility_label,
            ),
            "success",
        )
        return True

    @expose("/import/", methods=("GET", "POST"))
    def import_view(self):
        if self.read_only:
            abort(403)
        form = CatalogueImportForm()
        errors: list[str] = []
        result = None
        if form.validate_on_submit():
            upload = form.file.data
            try:
                result = import_catalogue(
                    db.session, _actor(), upload.read(), source=(upload.filename or "")[:200]
                )
                db.session.commit()
                flash(_("The catalogue was imported."), "success")
            except CatalogueImportError as exc:
                db.session.rollback()
                errors = list(exc.errors)
        return self.render(
            "admin/ozg/service_import.html",
            form=form,
            errors=errors,
            result=result,
        )


# --- the status list ------------------------------------------------------------------------------


def _in_kreis(key: str):
    kreis = (
        select(Municipality.id)
        .where(
            Municipality.key == key,
            Municipality.kind.in_([MunicipalityKind.KREIS.value, MunicipalityKind.KREISFREIE_STADT.value]),
        )
        .scalar_subquery()
    )
    members = select(Municipality.id).where(or_(Municipality.kreis_id == kreis, Municipality.id == kreis))
    return OzgStatus.municipality_id.in_(members)


def _kreis_name(municipality: Municipality) -> str:
    if municipality.kind == MunicipalityKind.KREISFREIE_STADT:
        return municipality.name
    return municipality.kreis.name if municipality.kreis is not None else ""


def _yes_no(value: bool) -> str:
    return _("yes") if value else _("no")


def _matrix_link(view, context, model, name):
    municipality = model.municipality
    url = url_for("ozg_matrix.index", municipality=municipality.key) + f"#service-{model.service_id}"
    return Markup('<a href="{}">{}</a>').format(url, f"{municipality.name} ({municipality.key})")


class OzgStatusView(_OzgModelView):
    """Every status row (read-only here: changes go through the matrix), with filters and export."""

    can_view_details = False
    column_list = (
        "municipality",
        "kreis",
        "service",
        "topic",
        "maturity",
        "online_since",
        "url",
        "project",
        "efa",
        "changed_by",
        "changed_at",
    )
    column_export_list = (
        "ags",
        "municipality_name",
        "kreis",
        "ozg_id",
        "service_name",
        "topic",
        "maturity",
        "maturity_model",
        "online_since",
        "url",
        "project",
        "efa",
        "changed_by",
        "changed_at",
    )
    column_sortable_list = (
        ("municipality", "municipality.key"),
        ("service", "service.ozg_id"),
        "maturity",
        "online_since",
        "efa",
        "changed_at",
    )
    column_default_sort = [("changed_at", True), ("id", True)]
    column_filters = (
        ClauseFilter(
            OzgStatus.municipality_id,
            _l("Municipality (AGS)"),
            lambda v: (
                OzgStatus.municipality_id
                == select(Municipality.id).where(Municipality.key == v).scalar_subquery()
            ),
            check=_is_ags,
        ),
        ClauseFilter(OzgStatus.municipality_id, _l("Kreis"), _in_kreis, options=_LazyOptions("kreis")),
        ClauseFilter(
            OzgStatus.service_id,
            _l("Themenfeld"),
            lambda v: OzgStatus.service_id.in_(select(OzgService.id).where(OzgService.topic == v)),
            options=_LazyOptions("topic"),
        ),
        ClauseFilter(
            OzgStatus.maturity,
            _l("Maturity"),
            lambda v: OzgStatus.maturity == int(v),
            options=[(str(level), MATURITY_LABELS[level]) for level in LEVELS],
        ),
        ClauseFilter(
            OzgStatus.efa,
            _l("EfA"),
            lambda v: OzgStatus.efa.is_(v == "1"),
            options=[("1", _l("yes")), ("0", _l("no"))],
        ),
        ClauseFilter(
            OzgStatus.project_id,
            _l("Project"),
            lambda v: OzgStatus.project_id == int(v),
            options=_LazyOptions("project"),
        ),
    )
    filter_url_names = ("municipality", "kreis", "topic", "maturity", "efa", "project")
    column_labels = {
        "municipality": _l("Municipality"),
        "kreis": _l("Kreis"),
        "service": _l("Service"),
        "topic": _l("Themenfeld"),
        "maturity": _l("Maturity"),
        "maturity_model": _l("Maturity model"),
        "online_since": _l("Online since"),
        "url": _l("URL"),
        "project": _l("Project"),
        "efa": _l("EfA"),
        "changed_by": _l("Changed by"),
        "changed_at": _l("Changed at"),
        "ags": _l("AGS"),
        "municipality_name": _l("Municipality"),
        "ozg_id": _l("OZG-ID"),
        "service_name": _l("Service"),
    }
    column_formatters = {
        "municipality": _matrix_link,
        "kreis": lambda v, c, m, n: _kreis_name(m.municipality),
        "service": lambda v, c, m, n: f"{m.service.ozg_id} {m.service.name}",
        "topic": lambda v, c, m, n: m.service.topic,
        "maturity": lambda v, c, m, n: _maturity_label(m.maturity),
        "online_since": lambda v, c, m, n: format_date(m.online_since) if m.online_since else "",
        "project": lambda v, c, m, n: m.project.name if m.project is not None else "",
        "efa": lambda v, c, m, n: _yes_no(m.efa),
        "changed_at": lambda v, c, m, n: format_datetime(m.changed_at, "short"),
    }
    column_formatters_export = {
        "ags": lambda v, c, m, n: m.municipality.key,
        "municipality_name": lambda v, c, m, n: m.municipality.name,
        "kreis": lambda v, c, m, n: _kreis_name(m.municipality),
        "ozg_id": lambda v, c, m, n: m.service.ozg_id,
        "service_name": lambda v, c, m, n: m.service.name,
        "topic": lambda v, c, m, n: m.service.topic,
        "online_since": lambda v, c, m, n: m.online_since.isoformat() if m.online_since else "",
        "project": lambda v, c, m, n: m.project.name if m.project is not None else "",
        "efa": lambda v, c, m, n: "1" if m.efa else "0",
        "changed_at": lambda v, c, m, n: m.changed_at.isoformat() if m.changed_at else "",
    }

    def get_query(self):
        # The municipality with its Kreis by key and name only (no Amt, no membership subquery).
        return (
            super()
            .get_query()
            .options(
                joinedload(OzgStatus.municipality).options(
                    load_only(Municipality.key, Municipality.name, Municipality.kind, Municipality.kreis_id),
                    joinedload(Municipality.kreis).load_only(Municipality.key, Municipality.name),
                    lazyload(Municipality.amt),
                ),
                joinedload(OzgStatus.service),
                joinedload(OzgStatus.project).load_only(Project.name),
            )
        )


# --- the matrix of one municipality -----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceInfo:
    """What the matrix shows of a service (plain values: they survive a rollback)."""

    id: int
    ozg_id: str
    name: str
    topic: str
    life_event: str
    is_municipal: bool
    responsibility_label: str

    @classmethod
    def of(cls, service: OzgService) -> ServiceInfo:
        return cls(
            service.id,
            service.ozg_id,
            service.name,
            service.topic,
            service.life_event,
            service.is_municipal,
            service.responsibility_label,
        )


@dataclass
class MatrixRow:
    """One service in the matrix: what is stored, or (after a refused bulk edit) what was sent."""

    service: ServiceInfo
    maturity: int = 0
    online_since: str = ""
    url: str = ""
    project_id: int | None = None
    efa: bool = False
    changed_by: str = ""
    changed_at: datetime | None = None
    stored: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, service: OzgService, status: OzgStatus | None) -> MatrixRow:
        info = ServiceInfo.of(service)
        if status is None:
            return cls(info)
        return cls(
            info,
            maturity=status.maturity,
            online_since=status.online_since.isoformat() if status.online_since else "",
            url=status.url or "",
            project_id=status.project_id,
            efa=bool(status.efa),
            changed_by=status.changed_by,
            changed_at=status.changed_at,
            stored=True,
        )

    @property
    def maturity_label(self) -> str:
        return _maturity_label(self.maturity)

    def same_values(self, other: MatrixRow) -> bool:
        return (self.maturity, self.online_since, self.url, self.project_id, self.efa) == (
            other.maturity,
            other.online_since,
            other.url,
            other.project_id,
            other.efa,
        )


@dataclass
class Matrix:
    """A municipality's row per service, the services and the projects to choose from."""

    rows: list[MatrixRow]
    services: dict[int, OzgService]
    projects: dict[int, Project]

    @property
    def project_names(self) -> dict[int, str]:
        return {project_id: project.name for project_id, project in self.projects.items()}

    def topics(self, only: str = "") -> list[tuple[str, list[MatrixRow]]]:
        grouped: dict[str, list[MatrixRow]] = {}
        for row in self.rows:
            if not only or row.service.topic == only:
                grouped.setdefault(row.service.topic, []).append(row)
        return list(grouped.items())

    def summary(self) -> dict:
        """Counts per maturity level over the municipal services, as the tallies count them."""
        municipal = [row for row in self.rows if row.service.is_municipal]
        start = COMPLIANT_FROM[MaturityModel.V1]
        return {
            "municipal": len(municipal),
            "levels": {level: sum(1 for row in municipal if row.maturity == level) for level in LEVELS},
            "compliant": sum(1 for row in municipal if row.maturity >= start),
        }


def find_municipality(text: str) -> tuple[Municipality | None, list[Municipality], str | None]:
    """The Gemeinde or Stadt meant by a key or a name: (found, candidates to choose from, message)."""
    text = text.strip()[:200]
    if not text:
        return None, [], None
    if text.isascii() and text.isdigit():
        found = db.session.execute(select(Municipality).where(Municipality.key == text)).scalar_one_or_none()
        if found is None:
            return None, [], _("There is no municipality with the key %(key)s.", key=text)
        if found.kind not in LOCAL_KIND_VALUES:
            message = _(
                "%(name)s is a %(kind)s: OZG status is kept for Gemeinden and Städte.",
                name=found.name,
                kind=KIND_LABELS[MunicipalityKind(found.kind)],
            )
            return None, [], message
        return found, [], None
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    candidates = list(
        db.session.execute(
            select(Municipality)
            .where(Municipality.kind.in_(LOCAL_KIND_VALUES), Municipality.name.ilike(pattern, escape="\\"))
            .order_by(Municipality.name, Municipality.key)
            .limit(CANDIDATE_LIMIT + 1)
        ).scalars()
    )
    exact = [m for m in candidates if m.name.casefold() == text.casefold()]
    if len(exact) == 1:
        return exact[0], [], None
    if len(candidates) == 1:
        return candidates[0], [], None
    if not candidates:
        return None, [], _("No Gemeinde or Stadt is called “%(name)s”.", name=text)
    if len(candidates) > CANDIDATE_LIMIT:
        message = _(
            "More than %(n)d municipalities match “%(name)s”; the first are listed.",
            n=CANDIDATE_LIMIT,
            name=text,
        )
    else:
        message = _("Several municipalities match “%(name)s”; please choose one.", name=text)
    return None, candidates[:CANDIDATE_LIMIT], message


def load_matrix(municipality: Municipality) -> Matrix:
    """Every service of the catalogue with the municipality's status (no row = maturity 0) and the
    projects: three statements whatever the size of the catalogue."""
    services = list(
        db.session.execute(select(OzgService).order_by(OzgService.topic, OzgService.ozg_id)).scalars()
    )
    statuses = {
        status.service_id: status
        for status in db.session.execute(
            select(OzgStatus).where(OzgStatus.municipality_id == municipality.id)
        ).scalars()
    }
    projects = {
        project.id: project
        for project in db.session.execute(
            select(Project).options(lazyload("*")).order_by(Project.name, Project.id)
        ).scalars()
    }
    rows = [MatrixRow.of(service, statuses.get(service.id)) for service in services]
    return Matrix(rows, {service.id: service for service in services}, projects)


def read_row(form, row: MatrixRow, projects: dict[int, Project]) -> MatrixRow | None:
    """The values sent for one row (None if the row was not in the form); values that cannot be
    read are kept as sent, with a message per field on the row."""
    prefix = f"s{row.service.id}-"
    if prefix + "maturity" not in form:
        return None
    sent = MatrixRow(
        row.service,
        online_since=(form.get(prefix + "online_since") or "").strip()[:20],
        url=(form.get(prefix + "url") or "").strip()[:600],
        efa=form.get(prefix + "efa") in ("1", "y", "on", "true"),
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        stored=row.stored,
    )
    maturity = (form.get(prefix + "maturity") or "").strip()
    if maturity.isascii() and maturity.isdigit() and len(maturity) <= 2:
        sent.maturity = int(maturity)
    else:
        sent.maturity = row.maturity
        sent.errors["maturity"] = _("Please choose a maturity from %(low)d to %(high)d.", low=LOW, high=HIGH)
    if sent.online_since:
        try:
            date.fromisoformat(sent.online_since)
        except ValueError:
            sent.errors["online_since"] = _("Please enter a date as YYYY-MM-DD.")
    project = (form.get(prefix + "project") or "").strip()
    if project:
        sent.project_id = _id(project)
        if sent.project_id not in projects:
            sent.errors["project"] = _("Unknown project.")
    return sent


class OzgMatrixView(SecureBaseView):
    """One municipality's services by Themenfeld with maturity, online since, URL, project and EfA;
    staff change several at once (all or nothing); each service's history."""

    @property
    def extra_css(self) -> list[str]:
        return [url_for("static", filename="css/ozg.css")]

    def _render(self, asked: str, topic: str, found, matrix: Matrix | None = None, refused=()):
        municipality, candidates, message = found
        topics = sorted({row.service.topic for row in matrix.rows}) if matrix else []
        return self.render(
            "admin/ozg/matrix.html",
            asked=asked,
            municipality=municipality,
            candidates=candidates,
            message=message,
            matrix=matrix,
            groups=matrix.topics(topic if topic in topics else "") if matrix else [],
            summary=matrix.summary() if matrix else None,
            project_names=matrix.project_names if matrix else {},
            refused=list(refused),
            topic=topic if topic in topics else "",
            topics=topics,
            levels=LEVELS,
            maturity_labels={level: _maturity_label(level) for level in LEVELS},
            field_labels=FIELD_LABELS,
            can_edit=not self.read_only,
            kind_labels=KIND_LABELS,
        )

    @expose("/", methods=("GET", "POST"))
    def index(self):
        asked = (request.values.get("municipality") or "").strip()[:200]
        topic = (request.values.get("topic") or "").strip()[:100]
        if request.method == "POST":
            if self.read_only:
                abort(403)
            return self._bulk_edit(asked, topic)
        found = find_municipality(asked)
        matrix = load_matrix(found[0]) if found[0] is not None else None
        return self._render(asked, topic, found, matrix)

    def _bulk_edit(self, asked: str, topic: str):
        """Every changed row through ``set_status`` in one transaction: if any row is refused, all
        are rolled back and the refused rows are shown with their messages."""
        found = find_municipality(asked)
        municipality = found[0]
        if municipality is None:
            flash(found[2] or _("Please choose a municipality."), "error")
            return self._render(asked, topic, found)
        matrix = load_matrix(municipality)
        actor = _actor()
        refused: list[MatrixRow] = []
        changed = 0
        for index, row in enumerate(matrix.rows):
            sent = read_row(request.form, row, matrix.projects)
            if sent is None:
                continue
            matrix.rows[index] = sent
            if not sent.errors and sent.same_values(row):
                continue
            if not sent.errors:
                try:
                    result = ozg.set_status(
                        db.session,
                        actor,
                        municipality,
                        matrix.services[row.service.id],
                        maturity=sent.maturity,
                        online_since=date.fromisoformat(sent.online_since) if sent.online_since else None,
                        url=sent.url,
                        project=matrix.projects.get(sent.project_id) if sent.project_id else None,
                        efa=sent.efa,
                    )
                    changed += int(result.changed)
                except RuleViolation as exc:
                    sent.errors[exc.field if exc.field in FIELD_LABELS else "service"] = exc.message
            if sent.errors:
                refused.append(sent)
        if refused:
            db.session.rollback()
            flash(
                ngettext(
                    "%(num)d row was refused; nothing was changed.",
                    "%(num)d rows were refused; nothing was changed.",
                    len(refused),
                ),
                "error",
            )
            return self._render(asked, topic, find_municipality(asked), matrix, refused)
        db.session.commit()
        flash(ngettext("%(num)d status was changed.", "%(num)d statuses were changed.", changed), "success")
        arguments = {"municipality": municipality.key}
        if topic:
            arguments["topic"] = topic
        return redirect(url_for(".index", **arguments))

    @expose("/history/")
    def history(self):
        municipality = find_municipality(request.args.get("municipality") or "")[0]
        ozg_id = (request.args.get("service") or "").strip()[:10]
        service = None
        if municipality is not None and ozg_id:
            service = db.session.execute(
                select(OzgService).where(OzgService.ozg_id == ozg_id)
            ).scalar_one_or_none()
        if municipality is None or service is None:
            abort(404)
        changes = db.session.execute(
            select(OzgStatusChange, Project.name)
            .outerjoin(Project, Project.id == OzgStatusChange.project_id)
            .where(
                OzgStatusChange.municipality_id == municipality.id,
                OzgStatusChange.service_id == service.id,
            )
            .order_by(OzgStatusChange.changed_at.desc(), OzgStatusChange.id.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        return self.render(
            "admin/ozg/history.html",
            municipality=municipality,
            service=service,
            changes=changes,
            limit=HISTORY_LIMIT,
            maturity_labels={level: _maturity_label(level) for level in range(0, 8)},
            yes_no=_yes_no,
        )


def register(admin) -> None:
    """Add the catalogue, the matrix and the status list to the OZG menu."""
    admin.add_view(
        OzgServiceView(
            OzgService,
            name=_l("Catalogue"),
            category=CATEGORY,
            endpoint="ozg_services",
            url="/admin/ozg/services",
        )
    )
    admin.add_view(
        OzgMatrixView(name=_l("Matrix"), category=CATEGORY, endpoint="ozg_matrix", url="/admin/ozg/matrix")
    )
    admin.add_view(
        OzgStatusView(
            OzgStatus,
            name=_l("Status list"),
            category=CATEGORY,
            endpoint="ozg_statuses",
            url="/admin/ozg/statuses",
        )
    )
