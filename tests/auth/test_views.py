"""Login, logout, password change and language through the test client, with CSRF enabled: German
by default, one generic failure message, throttling, safe ``next`` redirects, cookie flags, and
every way a session ends (logout, copied cookies, password change, deactivation)."""

from __future__ import annotations

import html
from urllib.parse import unquote, urlsplit

import pytest

from itvsh import create_app
from itvsh.auth.models import User
from itvsh.extensions import db
from tests.auth.helpers import PASSWORD, audit_events, page_text, post_login, translated
from tests.conftest import csrf_token
from tests.conftest import test_config as config_for

GENERIC_FAILURE = "Email or password is wrong, or the account is deactivated."
CSRF_FAILURE = (
    "The form was open too long or is incomplete (security token missing or expired). "
    "Please reload the page and submit it again."
)


def _path(response) -> str:
    """The redirect target as a path; it must not name another host."""
    target = urlsplit(response.headers["Location"])
    assert target.scheme in ("", "http")
    assert target.netloc in ("", "localhost")
    return target.path + (f"?{target.query}" if target.query else "")


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def _logged_in(client) -> bool:
    """Whether ``client`` has a live session (the admin/portal answers, not a redirect to /login)."""
    response = client.get("/account/password")
    if response.status_code == 302:
        assert _path(response).startswith("/login")
        return False
    assert response.status_code == 200
    return True


def _post_with_csrf(client, url, data=None, form_url="/logout", **kwargs):
    token = csrf_token(client, form_url)
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)


# --- language ---------------------------------------------------------------------------------


def test_login_page_is_german_by_default(client):
    response = client.get("/login")
    assert response.status_code == 200
    body = _text(response)
    assert '<html lang="de"' in body
    assert "Anmelden" in body
    assert 'name="csrf_token"' in body


def test_login_page_ignores_browser_language(client):
    # German is the default for everybody until they choose otherwise.
    response = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="de"' in _text(response)


def test_language_switch_for_anonymous_visitor(client):
    response = _post_with_csrf(client, "/language", {"language": "en", "next": "/login"}, form_url="/login")
    assert response.status_code == 302
    assert _path(response) == "/login"
    body = _text(client.get("/login"))
    assert '<html lang="en"' in body
    assert "Log in" in body
    assert "Anmelden" not in body


def test_unknown_language_changes_nothing(client):
    response = _post_with_csrf(client, "/language", {"language": "fr"}, form_url="/login")
    assert response.status_code == 302
    assert '<html lang="de"' in _text(client.get("/login"))


def test_language_choice_is_remembered_for_the_user(app, client, make_user):
    user = make_user("staff")
    assert post_login(client, user.email).status_code == 302
    response = _post_with_csrf(client, "/language", {"language": "en", "next": "/account/password"})
    assert _path(response) == "/account/password"
    assert '<html lang="en"' in _text(client.get("/account/password"))
    assert _user(user.id).locale == "en"
    [event] = audit_events(action="update", entity_id=str(user.id))
    assert (event.before["locale"], event.after["locale"]) == (None, "en")
    assert _user(user.id).session_version == 1  # a language change keeps the session

    # Next login, from a fresh browser: German until logged in, then the user's English.
    other = app.test_client()
    assert '<html lang="de"' in _text(other.get("/login"))
    assert post_login(other, user.email).status_code == 302
    assert '<html lang="en"' in _text(other.get("/account/password"))

    # Switching back is remembered too.
    _post_with_csrf(other, "/language", {"language": "de"})
    assert _user(user.id).locale == "de"
    third = app.test_client()
    post_login(third, user.email)
    assert '<html lang="de"' in _text(third.get("/account/password"))


# --- login ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "home"),
    [("admin", "/admin/"), ("staff", "/admin/"), ("auditor", "/admin/"), ("municipality", "/portal/")],
)
def test_login_redirects_to_the_home_of_the_role(client, make_user, role, home):
    user = make_user(role)
    response = post_login(client, user.email.upper())
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _path(response) == home
    assert client.get(home).status_code == 200
    [event] = audit_events(action="login")
    assert event.actor == user.email


def test_logged_in_user_visiting_login_goes_home(client, make_user):
    user = make_user("municipality")
    post_login(client, user.email)
    response = client.get("/login")
    assert response.status_code == 302
    assert _path(response) == "/portal/"


def test_login_starts_a_fresh_session(client, make_user):
    user = make_user("staff")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    post_login(client, user.email)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"] == f"{user.id}:1"


def test_failed_logins_look_the_same(app, client, make_user):
    active = make_user("staff", email="active@test.example")
    inactive = make_user("staff", email="inactive@test.example")
    inactive.active = False
    db.session.commit()

    responses = [
        post_login(client, active.email, "not the right password"),
        post_login(client, "nobody@test.example", PASSWORD),
        post_login(client, inactive.email, PASSWORD),
    ]
    message = translated(app, GENERIC_FAILURE)
    for response in responses:
        assert response.status_code == 401
        assert _text(response).count(message) == 1
        assert '<html lang="de"' in _text(response)
    texts = {page_text(response) for response in responses}
    assert len(texts) == 1, "the pages differ: they tell which failure it was"
    assert not _logged_in(client)
    reasons = [event.after["reason"] for event in audit_events(action="login_failed")]
    assert reasons == ["wrong_password", "unknown_account", "inactive"]
    assert audit_events(action="login") == []


def test_login_without_csrf_token_is_refused_and_writes_nothing(app, client, make_user):
    user = make_user("staff")
    before = len(audit_events())
    client.get("/login")  # a session exists, but the form lacks its token
    for data in (
        {"email": user.email, "password": PASSWORD},
        {"email": user.email, "password": PASSWORD, "csrf_token": "forged"},
    ):
        response = client.post("/login", data=data)
        assert response.status_code == 400
        assert translated(app, CSRF_FAILURE) in _text(response)
        assert '<html lang="de"' in _text(response)
    assert len(audit_events()) == before
    assert _user(user.id).last_login_at is None
    assert not _logged_in(client)


def test_token_from_another_session_is_refused(app, client, make_user):
    user = make_user("staff")
    stolen = csrf_token(app.test_client(), "/login")
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": stolen})
    assert response.status_code == 400
    assert not _logged_in(client)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("x" * 10_000 + "@test.example", PASSWORD),
        (None, "p" * 100_000),
        ("y" * 300_000, "p" * 300_000),
        ("", ""),
    ],
)
def test_bad_login_input_is_refused_without_error(client, make_user, email, password):
    user = make_user("staff")
    before = len(audit_events())
    response = post_login(client, user.email if email is None else email, password)
    assert response.status_code == 401
    assert '<html lang="de"' in _text(response)
    assert len(audit_events()) == before
    assert not _logged_in(client)


@pytest.mark.parametrize(
    ("email", "password"),
    [("nul\x00@test.example", PASSWORD), (None, "nul\x00 in the password"), ("\x00", "\x00" * 20)],
)
def test_nul_bytes_in_login_fields_are_refused_without_error(client, make_user, email, password):
    user = make_user("staff")
    response = post_login(client, user.email if email is None else email, password)
    assert response.status_code == 401
    assert translated(client.application, GENERIC_FAILURE) in _text(response)
    assert not _logged_in(client)
    assert audit_events(action="login") == []


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/admin/",
        "https://evil.example",
        "https://evil.example/admin/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " //evil.example",
        "/\t/evil.example",
        "http:evil.example",
        "",
    ],
)
def test_next_never_leaves_the_site(client, make_user, target):
    user = make_user("staff")
    response = post_login(client, user.email, next_url=target)
    assert response.status_code == 302
    assert _path(response) == "/admin/"
    assert "evil" not in response.headers["Location"]


@pytest.mark.parametrize("target", ["/admin/users/", "/admin/audit_events/?page=2", "/account/password"])
def test_next_within_the_site_is_followed(client, make_user, target):
    user = make_user("admin")
    response = post_login(client, user.email, next_url=target)
    assert response.status_code == 302
    assert _path(response) == target


def test_next_on_login_page_and_language_switch_is_checked_too(client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    response = client.get("/login?next=//evil.example")
    assert _path(response) == "/admin/"
    assert _path(client.get("/login?next=/admin/users/")) == "/admin/users/"
    response = _post_with_csrf(client, "/language", {"language": "de", "next": "https://evil.example"})
    assert response.status_code == 302
    assert "evil" not in response.headers["Location"]


def test_protected_page_sends_anonymous_visitor_to_login_and_back(client, make_user):
    response = client.get("/admin/users/")
    assert response.status_code == 302
    assert unquote(_path(response)) == "/login?next=/admin/users/"
    user = make_user("admin")
    response = post_login(client, user.email, next_url="/admin/users/")
    assert _path(response) == "/admin/users/"


# --- throttling -------------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_account(app, client, make_user):
    app.config["ITVSH_LOGIN_LIMIT_ACCOUNT"] = "3 per hour"
    user = make_user("staff", email="target@test.example")
    bystander = make_user("staff")
    for _ in range(3):
        assert post_login(client, user.email, "guessing the password").status_code == 401
    # The next attempt is refused even with the right password, and however the email is typed.
    for email in (user.email, " TARGET@test.example"):
        response = post_login(client, email, PASSWORD)
        assert response.status_code == 429
        assert '<html lang="de"' in _text(response)
        assert translated(app, "Too many attempts. Please wait a few minutes and try again.") in _text(
            response
        )
    # The limit follows the account to other addresses ...
    elsewhere = app.test_client()
    response = post_login(elsewhere, user.email, PASSWORD, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 429
    assert not _logged_in(client)
    assert not _logged_in(elsewhere)
    assert _user(user.id).last_login_at is None
    # ... but other accounts from the same address still log in.
    assert post_login(app.test_client(), bystander.email).status_code == 302
    assert len(audit_events(action="login_failed")) == 3


def test_successful_logins_do_not_count_against_the_account(app, make_user):
    app.config["ITVSH_LOGIN_LIMIT_ACCOUNT"] = "2 per hour"
    user = make_user("staff")
    for _ in range(4):
        assert post_login(app.test_client(), user.email).status_code == 302


def test_logins_are_throttled_per_address(app, make_user):
    app.config["ITVSH_LOGIN_LIMIT_ADDRESS"] = "3 per hour"
    user = make_user("staff")
    client = app.test_client()
    for n in range(3):
        assert post_login(client, f"unknown{n}@test.example", "some password").status_code == 401
    response = post_login(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert '<html lang="de"' in _text(response)
    assert not _logged_in(client)
    # Another address is not affected.
    other = app.test_client()
    response = post_login(other, user.email, PASSWORD, environ_base={"REMOTE_ADDR": "192.0.2.99"})
    assert response.status_code == 302


# --- cookies ----------------------------------------------------------------------------------


def _set_cookies(response) -> dict[str, str]:
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        name = header.split("=", 1)[0]
        cookies[name] = header
    return cookies


def _flags(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


def test_session_cookie_flags_and_no_remember_cookie(app, client, make_user):
    user = make_user("staff")
    response = post_login(client, user.email)
    assert response.status_code == 302
    cookies = _set_cookies(response)
    assert set(cookies) == {"itvsh_session"}, cookies
    header = cookies["itvsh_session"]
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    # A browser-session cookie: it ends with the browser (no Expires / Max-Age).
    assert not {"expires", "max-age"} & _flags(header)
    assert "secure" not in _flags(header)  # testing runs over plain http
    assert client.get_cookie("remember_token") is None
    assert app.config["REMEMBER_COOKIE_DURATION"] == 0


def test_cookies_are_secure_in_production(database_url):
    production = create_app(config_for(database_url, ITVSH_ENV="production"))
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["REMEMBER_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_HTTPONLY"] is True
    assert production.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    client = production.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.status_code == 200
    header = _set_cookies(response)["itvsh_session"]
    assert {"secure", "httponly", "samesite"} <= _flags(header)
    assert "SameSite=Lax" in header
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    with production.app_context():
        db.engine.dispose()


# --- logout and ending sessions ---------------------------------------------------------------


def test_get_logout_asks_and_does_not_log_out(client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    response = client.get("/logout")
    assert response.status_code == 200
    body = _text(response)
    assert 'action="/logout"' in body
    assert 'method="post"' in body
    assert 'name="csrf_token"' in body
    assert _logged_in(client)
    assert _user(user.id).session_version == 1
    assert audit_events(action="logout") == []


def test_logout_ends_the_session_and_copied_cookies(app, client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    stolen = client.get_cookie("itvsh_session").value
    thief = app.test_client()
    thief.set_cookie("itvsh_session", stolen)
    assert _logged_in(thief)  # the copy works while the session lives

    response = _post_with_csrf(client, "/logout")
    assert response.status_code == 200
    assert not _logged_in(client)
    assert not _logged_in(thief)
    assert thief.get("/admin/").status_code == 302
    assert _user(user.id).session_version == 2
    [event] = audit_events(action="logout")
    assert event.actor == user.email


def test_logout_needs_csrf_token(client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    assert client.post("/logout").status_code == 400
    assert _logged_in(client)
    assert _user(user.id).session_version == 1


def test_logout_when_not_logged_in(client):
    response = _post_with_csrf(client, "/logout", form_url="/login")
    assert response.status_code == 200
    assert client.get("/logout").status_code == 200


def test_password_change_ends_other_sessions_but_keeps_this_one(app, client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    other_device = app.test_client()
    post_login(other_device, user.email)
    assert _logged_in(other_device)

    response = _post_with_csrf(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a fresh new passphrase",
            "confirm_password": "a fresh new passphrase",
        },
        form_url="/account/password",
    )
    assert response.status_code == 302
    assert _path(response) == "/admin/"
    assert _logged_in(client)
    assert client.get("/admin/").status_code == 200
    assert not _logged_in(other_device)
    assert _user(user.id).session_version == 2
    assert post_login(app.test_client(), user.email, PASSWORD).status_code == 401
    assert post_login(app.test_client(), user.email, "a fresh new passphrase").status_code == 302
    assert len(audit_events(action="password_set")) == 1


@pytest.mark.parametrize(
    ("current", "new", "confirm"),
    [
        ("wrong current password", "a fresh new passphrase", "a fresh new passphrase"),
        (PASSWORD, "a fresh new passphrase", "a different passphrase"),
        (PASSWORD, "too short", "too short"),
        (PASSWORD, PASSWORD, PASSWORD),
    ],
)
def test_password_change_refusals_change_nothing(app, client, make_user, current, new, confirm):
    user = make_user("staff")
    post_login(client, user.email)
    old_hash = _user(user.id).password_hash
    response = _post_with_csrf(
        client,
        "/account/password",
        {"current_password": current, "new_password": new, "confirm_password": confirm},
        form_url="/account/password",
    )
    assert response.status_code == 400
    assert 'class="invalid-feedback"' in response.get_data(as_text=True)
    assert (_user(user.id).password_hash, _user(user.id).session_version) == (old_hash, 1)
    assert audit_events(action="password_set") == []
    assert _logged_in(client)


def test_deactivation_by_an_admin_ends_the_users_sessions(app, client, make_user):
    user = make_user("staff")
    post_login(client, user.email)
    assert _logged_in(client)
    admin_client = app.test_client()
    post_login(admin_client, make_user("admin").email)
    response = _post_with_csrf(
        admin_client,
        "/admin/users/action/",
        {"action": "deactivate", "rowid": str(user.id)},
        form_url="/admin/users/new/",
    )
    assert response.status_code == 302
    assert not _logged_in(client)
    assert _user(user.id).active is False
    assert post_login(app.test_client(), user.email).status_code == 401


def test_logins_still_work_while_the_throttle_store_redis_is_down(tmp_path_factory):
    """The limiter keeps its counts in Redis in production; Redis down must not stop logins (it
    falls back to per-process memory meanwhile), nor turn a wrong password into a server error."""
    from tests.conftest import drop_database, migrated_database

    url = migrated_database(tmp_path_factory, "throttle")
    try:
        app = create_app(config_for(url, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0"))
        assert app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] is True
        with app.app_context():
            from itvsh.auth import services

            services.create_user(
                db.session, "test", email="down@test.example", role="staff", password=PASSWORD
            )
            db.session.commit()
            client = app.test_client()
            assert post_login(client, "down@test.example", "wrong password").status_code == 401
            assert post_login(client, "down@test.example").status_code == 302
            db.session.remove()
            db.engine.dispose()
    finally:
        drop_database(url)
