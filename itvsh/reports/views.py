"""The ``/reports/`` screens (filled in by the screens work)."""

from __future__ import annotations

from flask import Blueprint

from itvsh.auth.roles import ALL_ROLES
from itvsh.core.access import roles_allowed

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.get("/")
@roles_allowed(ALL_ROLES)
def index():
    return "reports"
