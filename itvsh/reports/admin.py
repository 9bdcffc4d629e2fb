"""The admin menu's way to the reports: a link to ``/reports/`` (the screens live outside
Flask-Admin, as members use them too)."""

from __future__ import annotations

from flask_admin import Admin
from flask_admin.menu import MenuLink
from flask_babel import lazy_gettext as _l


def register(admin: Admin) -> None:
    admin.add_link(MenuLink(name=_l("Reports"), endpoint="reports.index"))
