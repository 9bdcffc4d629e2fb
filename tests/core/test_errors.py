"""Error answers: German (or English) HTML pages for people, problem+json under /api/, and never a
traceback; an unexpected exception is logged and answered with the 500 page."""

from __future__ import annotations

import logging

import pytest

from itvsh.auth import services
from itvsh.core.access import public
from itvsh.extensions import db

GERMAN_TITLES = {
    400: "Ungültige Anfrage",
    403: "Zugriff verweigert",
    404: "Nicht gefunden",
    405: "Methode nicht zulässig",
    500: "Interner Fehler",
}
ENGLISH_TITLES = {
    400: "Bad request",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    500: "Internal error",
}
SECRET = "boom-secret-detail"


def _assert_page(response, status: int, lang: str = "de") -> str:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    titles = GERMAN_TITLES if lang == "de" else ENGLISH_TITLES
    assert f"{status} · {titles[status]}" in html
    assert "Traceback" not in html
    assert 'File "' not in html
    return html


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def _token(make_user, role: str) -> dict:
    token = services.issue_token(db.session, "test", make_user(role))
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_404_page_in_german(client):
    html = _assert_page(client.get("/no-such-page"), 404)
    assert "Unter dieser Adresse gibt es keine Seite." in html


def test_405_page_in_german_with_allow_header(client):
    response = client.get("/language")  # POST only
    _assert_page(response, 405)
    assert "POST" in response.headers["Allow"]


def test_403_page_in_german(client, login_as):
    login_as("municipality")
    _assert_page(client.get("/admin/"), 403)


def test_400_page_in_german_for_a_missing_csrf_token(client):
    _assert_page(client.post("/login", data={"email": "x@test.example", "password": "y"}), 400)


def test_error_pages_in_english_when_chosen(client, csrf):
    response = client.post("/language", data={"language": "en", "csrf_token": csrf()})
    assert response.status_code == 302
    _assert_page(client.get("/no-such-page"), 404, "en")
    _assert_page(client.get("/language"), 405, "en")


def test_api_404_and_405_are_problem_json(client, make_user):
    headers = _token(make_user, "admin")
    assert _assert_problem(client.get("/api/v1/no-such-thing", headers=headers), 404)["title"]
    _assert_problem(client.get("/api/v1/users/999999", headers=headers), 404)
    response = client.delete("/api/v1/me", headers=headers)
    _assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_api_403_and_400_are_problem_json(client, make_user):
    _assert_problem(client.get("/api/v1/users", headers=_token(make_user, "staff")), 403)
    admin = _token(make_user, "admin")
    _assert_problem(client.post("/api/v1/users", headers=admin, data="not json"), 400)
    _assert_problem(
        client.post("/api/v1/users", headers={**admin, "Content-Type": "application/json"}, data="{broken"),
        400,
    )


def test_api_problem_titles_follow_the_language(client, make_user):
    headers = _token(make_user, "admin")
    assert client.get("/api/v1/no-such-thing", headers=headers).get_json()["title"] == "Nicht gefunden"


@pytest.fixture
def failing_app(app):
    """The per-test app with two views that raise (registered before its first request)."""

    @public
    def page_boom():
        raise RuntimeError(SECRET)

    @public
    def api_boom():
        raise KeyError(SECRET)

    app.add_url_rule("/test-boom", "test_boom", page_boom)
    app.add_url_rule("/api/v1/test-boom", "test_api_boom", api_boom)
    return app


def _assert_logged(caplog, path: str, exc_type: type) -> None:
    records = [r for r in caplog.records if r.levelno >= logging.ERROR and path in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    assert records[0].exc_info and records[0].exc_info[0] is exc_type
    assert SECRET in str(records[0].exc_info[1])


def test_unexpected_exception_answers_the_500_page_and_is_logged(failing_app, caplog):
    caplog.set_level(logging.ERROR)
    response = failing_app.test_client().get("/test-boom")
    html = _assert_page(response, 500)
    assert SECRET not in html
    _assert_logged(caplog, "/test-boom", RuntimeError)


def test_unexpected_exception_under_api_is_problem_json(failing_app, caplog):
    caplog.set_level(logging.ERROR)
    response = failing_app.test_client().get("/api/v1/test-boom")
    body = _assert_problem(response, 500)
    assert SECRET not in response.get_data(as_text=True)
    assert body["title"] == "Interner Fehler"
    _assert_logged(caplog, "/api/v1/test-boom", KeyError)
