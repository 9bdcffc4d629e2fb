"""Access control in one place: every view declares the roles it admits; undeclared is denied.

Views declare with :func:`roles_allowed` or :func:`public`. Flask-Admin views declare through
their class attribute ``allowed_roles`` (see ``core/admin.py``). One ``before_request`` hook
checks the declaration of whatever endpoint the request reached, so a forgotten declaration
answers 403 instead of leaking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask, abort, current_app, redirect, request, url_for
from flask_login import current_user

PUBLIC = "public"
_ATTR = "itvsh_roles"


def roles_allowed(*roles: str | Iterable[str]):
    """Admit logged-in users having one of ``roles`` (role names or sets of them)."""
    flat: set[str] = set()
    for role in roles:
        flat.update([role] if isinstance(role, str) else role)

    def decorate(view: Callable) -> Callable:
        setattr(view, _ATTR, frozenset(str(r) for r in flat))
        return view

    return decorate


def public(view: Callable) -> Callable:
    """Admit everyone, logged in or not."""
    setattr(view, _ATTR, PUBLIC)
    return view


def declared_roles(app: Flask, endpoint: str):
    """The roles an endpoint admits: a frozenset, PUBLIC, or None when nothing was declared."""
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC
    admin_view = app.extensions.get("itvsh_admin_views", {}).get(endpoint.split(".", 1)[0])
    if admin_view is not None:
        return frozenset(str(r) for r in admin_view.allowed_roles)
    view = app.view_functions.get(endpoint)
    return getattr(view, _ATTR, None)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def enforce_declared_roles():
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: the 404/405 handlers answer
        return None
    roles = declared_roles(current_app, endpoint)
    if roles == PUBLIC:
        return None
    if roles is None:
        current_app.logger.error("endpoint %s declares no roles; denied", endpoint)
        abort(403)
    if not current_user.is_authenticated:
        if _wants_json() or request.method not in ("GET", "HEAD"):
            abort(401)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if current_user.role not in roles:
        abort(403)
    return None


def register_access_control(app: Flask) -> None:
    app.before_request(enforce_declared_roles)


def tenant_params(**params: str):
    """Declare which URL or query parameters of a view name a tenant's object, and what they are
    (e.g. ``key="municipality_key"``, ``contact_id="contact_id"``). The isolation harness fills them
    with another tenant's values and checks nothing private leaks."""

    def decorate(view: Callable) -> Callable:
        view.itvsh_tenant_params = dict(params)
        return view

    return decorate
