"""Response headers (a nonce-based CSP without 'unsafe-inline', nosniff, referrer policy, no-store
for logged-in answers), admin pages free of inline handlers, and the ``next`` redirect check."""

from __future__ import annotations

import re

import pytest

from itvsh.auth import services
from itvsh.core import audit
from itvsh.core.security import safe_next
from itvsh.demo import ensure_municipality
from itvsh.extensions import db


def _csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def _nonce(response) -> str:
    sources = _csp(response)["script-src"]
    nonces = [s[len("'nonce-") : -1] for s in sources if s.startswith("'nonce-")]
    assert len(nonces) == 1, sources
    return nonces[0]


def _assert_common_headers(response) -> None:
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    directives = _csp(response)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert set(directives["script-src"]) == {"'self'", f"'nonce-{_nonce(response)}'"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    )


def _token(make_user, role: str = "admin") -> str:
    user = make_user(role)
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    return token


def test_headers_on_a_public_page(client):
    response = client.get("/login")
    assert response.status_code == 200
    _assert_common_headers(response)
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_headers_on_a_logged_in_page(client, login_as):
    login_as("staff")
    response = client.get("/admin/")
    assert response.status_code == 200
    _assert_common_headers(response)
    assert "no-store" in response.headers["Cache-Control"]


def test_headers_on_an_api_response_with_a_token(client, make_user):
    token = _token(make_user)
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    _assert_common_headers(response)
    assert "no-store" in response.headers["Cache-Control"]


def test_no_store_on_session_api_and_error_answers(client, login_as):
    login_as("staff")
    for path in ("/api/v1/me", "/api/v1/users", "/no-such-page"):
        response = client.get(path)
        _assert_common_headers(response)
        assert "no-store" in response.headers["Cache-Control"], path


def test_nonce_differs_per_response(client):
    assert _nonce(client.get("/login")) != _nonce(client.get("/login"))


def _seed_rows(make_user) -> None:
    for key in ("01002000", "01003000", "01001000"):
        ensure_municipality(db.session, key)
    db.session.commit()
    make_user("staff")
    make_user("auditor")
    make_user("municipality", "01003000")
    audit.record(db.session, "test", "export", "user", after={"note": "<script>alert(1)</script>"})
    db.session.commit()


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""javascript:([^"'>]*)""", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def _assert_no_inline_script(response) -> None:
    assert response.status_code == 200, response.request.path
    html = response.get_data(as_text=True)
    handlers = INLINE_HANDLER.findall(html)
    assert handlers == [], f"inline event handlers: {handlers}"
    # flask-admin's dropdown toggles keep href="javascript:void(0)"; admin-csp.js cancels those
    # clicks. No javascript: URL may carry code.
    assert set(JS_URL.findall(html)) <= {"void(0)"}
    nonce = _nonce(response)
    tags = SCRIPT_TAG.findall(html)
    assert tags, "the admin page loads its scripts"
    for tag in tags:
        assert f'nonce="{nonce}"' in tag, tag
    assert "<script>alert(1)</script>" not in html


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/users/", "/admin/audit_events/", "/admin/municipalities/"]
)
def test_admin_list_pages_have_no_inline_handlers(client, login_as, make_user, path):
    _seed_rows(make_user)
    login_as("admin")
    _assert_no_inline_script(client.get(path))


def test_admin_forms_and_details_have_no_inline_handlers(client, login_as, make_user):
    _seed_rows(make_user)
    admin = login_as("admin")
    export_event = db.session.execute(
        db.select(audit.AuditEvent.id).where(audit.AuditEvent.action == "export")
    ).scalar_one()
    municipality = ensure_municipality(db.session, "01002000")[0]
    for path in (
        "/admin/users/new/",
        f"/admin/users/edit/?id={admin.id}",
        f"/admin/users/details/?id={admin.id}",
        f"/admin/audit_events/details/?id={export_event}",
        f"/admin/municipalities/details/?id={municipality.id}",
        "/admin/api_tokens/",
    ):
        _assert_no_inline_script(client.get(path))


@pytest.mark.parametrize(
    "target", ["/", "/admin/", "/admin/users/?page=2&sort=1", "/portal/#top", "/a/b?next=//evil.example"]
)
def test_safe_next_keeps_paths_on_this_site(target):
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "   ",
        "http://evil.example/",
        "https://evil.example/admin/",
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "javascript:alert(1)",
        "evil.example/admin/",
        "admin/",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\x00",
        "mailto:someone@evil.example",
    ],
)
def test_safe_next_refuses_other_sites_and_tricks(target):
    assert safe_next(target) is None


def test_login_redirect_uses_safe_next(client, make_user, csrf):
    make_user("staff", email="next@test.example", password="a long enough password")
    data = {"email": "next@test.example", "password": "a long enough password", "csrf_token": csrf()}
    response = client.post("/login?next=//evil.example/", data=data)
    assert response.status_code == 302
    assert response.headers["Location"] in ("/admin/", "http://localhost/admin/")
