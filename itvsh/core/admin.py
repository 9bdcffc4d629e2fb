"""The admin UI shell: one Flask-Admin per app, and the base views every domain's admin builds on.

Role checks happen per request (views are shared between users): ``allowed_roles`` says who may
open a view at all, ``READ_ONLY`` roles (auditors) never get create, edit, delete or actions —
also not by typing a URL. Exports are audited and neutralise spreadsheet formulas.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from itvsh.auth.roles import ADMIN_UI, READ_ONLY
from itvsh.core import audit
from itvsh.core.db import begin_write
from itvsh.core.i18n import current_language
from itvsh.core.security import csp_nonce
from itvsh.extensions import db

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
WRITE_VIEWS = {"create_view", "edit_view", "delete_view", "action_view", "ajax_update"}


def neutralise_formula(value):
    """Prefix text that a spreadsheet would run as a formula, so it stays text (CSV/XLSX exports)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class SecureViewMixin:
    """Role checks shared by every admin view."""

    allowed_roles = ADMIN_UI

    def is_accessible(self) -> bool:
        return current_user.is_authenticated and current_user.role in self.allowed_roles

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(403)

    @property
    def read_only(self) -> bool:
        return current_user.is_authenticated and current_user.role in READ_ONLY


class SecureModelView(SecureViewMixin, ModelView):
    """Base of all model views. Subclasses set ``allow_create``/``allow_edit``/``allow_delete``."""

    allow_create = False
    allow_edit = False
    allow_delete = False
    allow_export = True
    can_view_details = True
    can_set_page_size = True
    page_size = 20  # rendering, not SQL, dominates a list page: 50 rows cost 2.5x (bench)
    export_types = ["csv", "xlsx"]
    write_views: frozenset[str] = frozenset()  # a subclass's own write endpoints (closed to auditors)
    export_max_rows = 100_000

    def __init__(self, model, *args, **kwargs):
        super().__init__(model, db, *args, **kwargs)

    # Per-request permissions (properties: the view object is shared by all users).
    @property
    def can_create(self) -> bool:
        return self.allow_create and not self.read_only

    @property
    def can_edit(self) -> bool:
        return self.allow_edit and not self.read_only

    @property
    def can_delete(self) -> bool:
        return self.allow_delete and not self.read_only

    @property
    def can_export(self) -> bool:
        return self.allow_export

    def is_action_allowed(self, name: str) -> bool:
        if self.read_only:
            return False
        return super().is_action_allowed(name)

    def _handle_view(self, name, **kwargs):
        refused = super()._handle_view(name, **kwargs)
        if refused is not None:
            return refused
        if (name in WRITE_VIEWS or name in self.write_views) and self.read_only:
            abort(403)
        return None

    def get_export_value(self, model, name):
        return neutralise_formula(super().get_export_value(model, name))

    @expose("/export/<export_type>/")
    def export(self, export_type: str):
        if self.can_export and export_type in self.export_types:
            begin_write(db.session)
            audit.record(
                db.session,
                current_user._get_current_object(),
                "export",
                self.model.__tablename__,
                after={"format": export_type, "query": request.query_string.decode()[:500]},
            )
            db.session.commit()
        return super().export(export_type)

    def selected_ids(self, ids) -> list[int]:
        """Ids posted by a bulk action as integers (psycopg 3 refuses comparing integer to text)."""
        try:
            return [int(i) for i in ids]
        except (TypeError, ValueError):
            abort(400)


class SecureBaseView(SecureViewMixin, BaseView):
    """Base of admin pages that are not model lists."""


class DashboardView(SecureViewMixin, AdminIndexView):
    """The admin start page: what is in the system, and the state of the audit trail."""

    @expose("/")
    def index(self):
        from itvsh.auth.models import User
        from itvsh.tenants.models import Municipality

        counts = db.session.execute(
            select(
                select(func.count()).select_from(User).where(User.active.is_(True)).scalar_subquery(),
                select(func.count()).select_from(Municipality).scalar_subquery(),
                select(audit.AuditChainHead.last_seq).where(audit.AuditChainHead.id == 1).scalar_subquery(),
            )
        ).one()
        return self.render(
            "admin/dashboard.html",
            active_users=counts[0],
            municipalities=counts[1],
            audit_events=counts[2] or 0,
        )


def cached_menu(admin_view, render):
    """The admin's main menu as HTML, rendered once per role, page and language and then reused.

    Which entries a user sees depends only on their role (``allowed_roles``), which entry is
    highlighted only on the page, and the labels only on the language; rendering the ~20 entries
    anew cost about 5 % of a list page. A view whose menu entry depends on anything else must not
    be listed in the menu."""
    key = (
        getattr(current_user, "role", None),
        admin_view.endpoint,
        current_language(),
        request.script_root,
    )
    cache = current_app.extensions.setdefault("itvsh_menu_cache", {})
    html = cache.get(key)
    if html is None:
        html = cache[key] = render()  # a macro call: already Markup
    return html


def register_admin(app: Flask) -> Admin:
    """Build this app's Admin and add every domain's views (never a module-level Admin)."""
    from itvsh.auth.admin import register as register_auth_admin
    from itvsh.core.audit_admin import register as register_audit_admin
    from itvsh.funding.admin import register as register_funding_admin
    from itvsh.funding.dashboard import register as register_funding_dashboard
    from itvsh.projects.admin import register as register_projects_admin
    from itvsh.projects.ozg_admin import register as register_ozg_admin
    from itvsh.reports.admin import register as register_reports_admin
    from itvsh.staffing.admin import register as register_staffing_admin
    from itvsh.staffing.capacity import register as register_staffing_capacity
    from itvsh.tenants.admin import register as register_tenants_admin

    admin = Admin(
        app,
        name="ITV-SH",
        theme=Bootstrap4Theme(swatch="default", fluid=True),
        index_view=DashboardView(name=_l("Overview"), url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    register_tenants_admin(admin)
    register_funding_dashboard(admin)
    register_funding_admin(admin)
    register_staffing_admin(admin)
    register_staffing_capacity(admin)
    register_projects_admin(admin)
    register_ozg_admin(admin)
    register_reports_admin(admin)
    register_auth_admin(admin)
    register_audit_admin(admin)
    app.extensions["itvsh_admin_views"] = {view.endpoint: view for view in admin._views}
    app.jinja_env.globals["cached_menu"] = cached_menu
    return admin
