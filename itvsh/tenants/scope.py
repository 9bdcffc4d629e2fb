"""Sets the tenant scope once per request, from the logged-in user (see core/tenancy.py)."""

from __future__ import annotations

from flask import Flask, g
from flask_login import current_user

from itvsh.core.tenancy import pop_scope, push_scope
from itvsh.extensions import db
from itvsh.tenants.services import scope_for_user


def _scope_request():
    user = current_user._get_current_object() if current_user.is_authenticated else None
    g.itvsh_previous_scope = push_scope(db.session, scope_for_user(db.session, user))


def _restore_scope(_exc):
    if "itvsh_previous_scope" in g:
        pop_scope(db.session, g.pop("itvsh_previous_scope"))


def register_request_scope(app: Flask) -> None:
    app.before_request(_scope_request)
    app.teardown_request(_restore_scope)
