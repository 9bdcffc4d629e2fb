"""Who may call /api/v1: Bearer tokens (API only, no CSRF), session cookies (with CSRF on writes),
and a problem+json 401 for every token that is malformed, unknown, revoked or belongs to a
deactivated account."""

from __future__ import annotations

import secrets

import pytest

from itvsh.auth import services
from itvsh.auth.models import User
from itvsh.extensions import db
from tests.api.helpers import assert_problem

NEW_USER = {"role": "staff", "password": "correct horse battery"}


def _new_user_body() -> dict:
    return {**NEW_USER, "email": f"new-{secrets.token_hex(4)}@test.example"}


def _user_count() -> int:
    return services.count_users(db.session)


def test_bearer_token_authenticates_me(client, make_user, bearer):
    user = make_user("auditor")
    response = client.get("/api/v1/me", headers=bearer(user))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["role"] == "auditor"
    assert "password" not in body
    assert "password_hash" not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_bearer_token_opens_no_session(client, make_user, bearer):
    """A token call must not leave a login cookie behind that would authenticate without the token."""
    headers = bearer(make_user("staff"))
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert_problem(client.get("/api/v1/me"), 401)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer itvsh_",
        "Basic dXNlcjpjb3JyZWN0IGhvcnNlIGJhdHRlcnk=",
        "Token {token}",
        "{token}",
        "Bearer {token}x",
        "Bearer {token} {token}",
        "Bearer " + "itvsh_" + "a" * 5000,
        "Bearer not-an-itvsh-token",
    ],
)
def test_malformed_authorization_header_is_401(client, make_user, bearer, header):
    token = bearer(make_user("admin"))["Authorization"].removeprefix("Bearer ")
    response = client.get("/api/v1/me", headers={"Authorization": header.format(token=token)})
    body = assert_problem(response, 401)
    assert body["type"] == "about:blank"
    assert "Location" not in response.headers


def test_unknown_token_is_401(client, make_user, bearer):
    make_user("admin")
    unknown = "itvsh_" + secrets.token_urlsafe(32)
    assert_problem(client.get("/api/v1/me", headers={"Authorization": f"Bearer {unknown}"}), 401)


def test_no_credentials_is_401_not_a_redirect(client):
    response = client.get("/api/v1/me")
    assert_problem(response, 401)
    assert "Location" not in response.headers


def test_revoked_token_is_401(client, make_user, bearer):
    user = make_user("admin")
    headers = bearer(user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert services.revoke_tokens(db.session, "test", user) == 1
    db.session.commit()
    assert_problem(client.get("/api/v1/me", headers=headers), 401)


def test_revoking_one_token_keeps_the_others(client, make_user, bearer):
    from itvsh.auth.models import ApiToken

    user = make_user("staff")
    first, second = bearer(user), bearer(user)
    token = db.session.execute(
        db.select(ApiToken).where(ApiToken.digest(first["Authorization"][7:]) == ApiToken.token_hash)
    ).scalar_one()
    services.revoke_token(db.session, "test", token)
    db.session.commit()
    assert_problem(client.get("/api/v1/me", headers=first), 401)
    assert client.get("/api/v1/me", headers=second).status_code == 200


def test_token_of_deactivated_user_is_401(client, make_user, bearer):
    user = make_user("staff")
    headers = bearer(user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    services.deactivate_user(db.session, "test", user)
    db.session.commit()
    assert_problem(client.get("/api/v1/me", headers=headers), 401)


def test_live_token_of_inactive_user_is_401(client, make_user, bearer):
    """Even a token that escaped revocation stops working when its account is inactive."""
    user = make_user("staff")
    headers = bearer(user)
    user.active = False  # bypass the service on purpose: the token row stays live
    db.session.commit()
    assert_problem(client.get("/api/v1/me", headers=headers), 401)


def test_session_login_works_for_get(client, login_as):
    user = login_as("municipality")
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == user.email
    assert body["role"] == "municipality"
    assert body["tenant"] == "01002000"


def test_session_ended_elsewhere_is_401(client, login_as):
    user = login_as("staff")
    assert client.get("/api/v1/me").status_code == 200
    services.logout(db.session, user)  # e.g. logout on another device bumps the session version
    db.session.commit()
    assert_problem(client.get("/api/v1/me"), 401)


def test_session_post_without_csrf_token_is_refused(client, login_as):
    login_as("admin")
    before = _user_count()
    response = client.post("/api/v1/users", json=_new_user_body())
    assert_problem(response, 400)
    assert _user_count() == before


def test_session_post_with_wrong_csrf_token_is_refused(client, login_as, csrf):
    csrf()
    login_as("admin")
    before = _user_count()
    response = client.post("/api/v1/users", json=_new_user_body(), headers={"X-CSRFToken": "forged"})
    assert_problem(response, 400)
    assert _user_count() == before


def test_session_post_with_csrf_header_works(client, login_as, csrf):
    token = csrf()  # the token is bound to this client's session, which the login below keeps
    login_as("admin")
    body = _new_user_body()
    response = client.post("/api/v1/users", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["email"] == body["email"]
    assert services.find_user(db.session, body["email"]) is not None


def test_session_patch_needs_csrf_too(client, login_as, make_user, csrf):
    token = csrf()
    login_as("admin")
    target = make_user("staff")
    assert_problem(client.patch(f"/api/v1/users/{target.id}", json={"locale": "en"}), 400)
    assert db.session.get(User, target.id).locale is None
    response = client.patch(
        f"/api/v1/users/{target.id}", json={"locale": "en"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200
    assert response.get_json()["locale"] == "en"


def test_bearer_post_needs_no_csrf_token(client, admin_headers):
    body = _new_user_body()
    response = client.post("/api/v1/users", json=body, headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    assert services.find_user(db.session, body["email"]) is not None


def test_anonymous_post_is_refused_and_writes_nothing(client, make_user):
    make_user("admin")
    before = _user_count()
    response = client.post("/api/v1/users", json=_new_user_body())
    assert response.status_code in (400, 401)  # no CSRF token and no login: either refusal is fine
    assert_problem(response, response.status_code)
    assert _user_count() == before


@pytest.mark.parametrize("url", ["/admin/", "/admin/users/", "/portal/", "/account/password"])
def test_bearer_token_does_not_authenticate_pages(client, make_user, bearer, url):
    headers = bearer(make_user("admin"))
    response = client.get(url, headers=headers)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_bearer_token_does_not_authenticate_page_posts(client, make_user, bearer):
    headers = bearer(make_user("admin"))
    before = _user_count()
    response = client.post(
        "/admin/users/new/", data={"email": "sneaky@test.example", "role": "staff"}, headers=headers
    )
    assert response.status_code in (302, 400, 401, 403)
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
    assert _user_count() == before
