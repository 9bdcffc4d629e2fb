"""The member portal: what a municipality user sees of its own tenant (the Tenants issue adds more)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
@roles_allowed(Role.MUNICIPALITY)
def index():
    return render_template("portal/index.html", municipality=current_user.municipality)
