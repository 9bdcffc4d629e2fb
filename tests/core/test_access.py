"""Access control in one place: every endpoint declares the roles it admits, anything undeclared
is denied, and anonymous visitors are sent to the login page (pages) or answered 401 (API)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from itvsh.auth.roles import Role
from itvsh.core.access import PUBLIC, declared_roles, public, roles_allowed

KNOWN_ROLES = {str(role) for role in Role}
# What may be reached without logging in: the login flow, the language switch, health checks,
# static files and the OpenAPI document. Everything else must name roles.
EXPECTED_PUBLIC = {
    "static",
    "admin.static",
    "auth.index",
    "auth.login",
    "auth.logout",
    "auth.set_language",
    "health.healthz",
    "health.readyz",
    "api.openapi_document",
    "monitoring.index",  # the public OZG monitoring and its open data
    "monitoring.municipality",
    "monitoring.about",
    "monitoring.ozg_csv",
    "monitoring.ozg_json",
}


def _endpoints(app: Flask) -> set[str]:
    return {rule.endpoint for rule in app.url_map.iter_rules()}


def test_every_endpoint_declares_its_roles(app):
    undeclared = sorted(e for e in _endpoints(app) if declared_roles(app, e) is None)
    assert undeclared == [], f"endpoints without roles_allowed/public: {undeclared}"


def test_declarations_name_known_roles_and_public_is_deliberate(app):
    public_endpoints = set()
    for endpoint in _endpoints(app):
        roles = declared_roles(app, endpoint)
        if roles == PUBLIC:
            public_endpoints.add(endpoint)
            continue
        assert roles, f"{endpoint} admits nobody"
        assert set(roles) <= KNOWN_ROLES, f"{endpoint} names unknown roles {set(roles) - KNOWN_ROLES}"
    assert public_endpoints == EXPECTED_PUBLIC


def test_admin_views_are_not_for_municipalities(app):
    for endpoint in _endpoints(app):
        view = app.extensions["itvsh_admin_views"].get(endpoint.split(".", 1)[0])
        if view is not None and endpoint != "admin.static":
            assert Role.MUNICIPALITY not in declared_roles(app, endpoint), endpoint


def _add_undeclared_view(app: Flask, calls: list) -> None:
    def undeclared():
        calls.append(True)
        return "secret"

    app.add_url_rule("/test-undeclared", "test_undeclared", undeclared)
    app.add_url_rule("/api/v1/test-undeclared", "test_api_undeclared", undeclared)


@pytest.mark.parametrize("role", [None, "admin", "staff", "auditor", "municipality"])
def test_undeclared_view_answers_403(app, client, login_as, role):
    calls: list = []
    _add_undeclared_view(app, calls)
    if role:
        login_as(role)
    page = client.get("/test-undeclared")
    assert page.status_code == 403
    assert page.mimetype == "text/html"
    assert "secret" not in page.get_data(as_text=True)
    api = client.get("/api/v1/test-undeclared")
    assert api.status_code == 403
    assert api.mimetype == "application/problem+json"
    assert calls == []


def test_declared_test_views_are_admitted_by_role(app, client, login_as):
    @roles_allowed(Role.STAFF)
    def staff_only():
        return "for staff"

    @public
    def everyone():
        return "for everyone"

    app.add_url_rule("/test-staff", "test_staff", staff_only)
    app.add_url_rule("/test-public", "test_public", everyone)
    assert client.get("/test-public").get_data(as_text=True) == "for everyone"
    assert client.get("/test-staff").status_code == 302
    login_as("auditor")
    assert client.get("/test-staff").status_code == 403
    login_as("staff")
    assert client.get("/test-staff").get_data(as_text=True) == "for staff"


@pytest.mark.parametrize(
    "path",
    ["/portal/", "/admin/", "/admin/users/", "/admin/audit_events/?sort=1&desc=1", "/account/password"],
)
def test_anonymous_page_redirects_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": [path]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/users/1"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/1"),
        ("GET", "/api/v1/audit-events"),
        ("GET", "/api/v1/audit-events/verify"),
    ],
)
def test_anonymous_api_call_answers_401_problem(client, method, path):
    response = client.open(path, method=method, json={})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 401
    assert body["title"] and body["detail"]
    assert "Location" not in response.headers


def test_wrong_role_is_refused(client, login_as):
    login_as("staff")
    response = client.get("/api/v1/users")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert client.get("/portal/").status_code == 403
    assert client.get("/admin/audit_events/").status_code == 403


def test_municipality_refused_everywhere_in_the_admin(app, client, login_as):
    login_as("municipality")
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin/") and "GET" in rule.methods and not rule.arguments:
            if rule.endpoint == "admin.static":
                continue
            assert client.get(rule.rule).status_code == 403, rule.rule
