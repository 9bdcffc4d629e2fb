"""The ITV-SH administration system: the app factory.

``create_app(config=None)`` reads the ``ITVSH_*`` environment (see ``config.py``), lets ``config``
override it (tests), binds the extensions and registers admin, blueprints, error handlers and CLI.
Nothing here runs at import time, so tests can make as many apps as they like.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from itvsh.config import ConfigError, load_config
from itvsh.extensions import babel, csrf, db, limiter, login_manager, migrate

__all__ = ["ConfigError", "create_app"]


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config(app.instance_path, config))
    register_proxy(app)
    register_extensions(app)
    register_blueprints(app)
    register_admin_ui(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_proxy(app: Flask) -> None:
    hops = app.config["ITVSH_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )


def register_extensions(app: Flask) -> None:
    from itvsh.auth.views import register_login_manager
    from itvsh.core.access import register_access_control
    from itvsh.core.db import configure_engine, register_transaction_modes
    from itvsh.core.i18n import register_i18n, select_locale
    from itvsh.core.security import register_security
    from itvsh.reports.jobs import register_jobs
    from itvsh.tenants.scope import register_request_scope

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    register_transaction_modes(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    register_login_manager(login_manager)
    register_access_control(app)
    register_request_scope(app)
    register_security(app)
    register_i18n(app)
    register_jobs(app)


def _migrations_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "migrations")


def register_blueprints(app: Flask) -> None:
    from itvsh.api import bp as api_bp
    from itvsh.api import openapi  # noqa: F401  (adds /api/v1/openapi.json to the API blueprint)
    from itvsh.auth import api as auth_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.auth.views import bp as auth_bp
    from itvsh.core import audit_api  # noqa: F401
    from itvsh.core.health import bp as health_bp
    from itvsh.funding import api as funding_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.funding.portal import bp as funding_portal_bp
    from itvsh.projects import api as projects_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.projects.monitoring import bp as monitoring_bp
    from itvsh.projects.portal import bp as projects_portal_bp
    from itvsh.reports import api as reports_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.reports.views import bp as reports_bp
    from itvsh.staffing import api as staffing_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.staffing.portal import bp as staffing_portal_bp
    from itvsh.tenants import api as tenants_api  # noqa: F401  (endpoints on the API blueprint)
    from itvsh.tenants.views import bp as portal_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(funding_portal_bp)
    app.register_blueprint(staffing_portal_bp)
    app.register_blueprint(projects_portal_bp)
    app.register_blueprint(monitoring_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(api_bp)


def register_admin_ui(app: Flask) -> None:
    from itvsh.core.admin import register_admin

    register_admin(app)


def register_errorhandlers(app: Flask) -> None:
    from itvsh.core.errors import register_errorhandlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from itvsh.auth.cli import users_cli
    from itvsh.core.cli import audit_cli
    from itvsh.demo import demo_command
    from itvsh.projects.cli import ozg_cli
    from itvsh.reports.cli import reports_cli, worker_command
    from itvsh.staffing.cli import staff_cli
    from itvsh.tenants.cli import tenants_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(tenants_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(ozg_cli)
    app.cli.add_command(reports_cli)
    app.cli.add_command(worker_command)
