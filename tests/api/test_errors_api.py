"""Errors of the API are problem+json, never a page and never a 500: unknown addresses, wrong
methods, and a battery of malformed bodies, query strings and ids against every write endpoint."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from itvsh.auth.models import User
from itvsh.core.audit import AuditEvent
from itvsh.extensions import db
from tests.api.helpers import assert_problem

PASSWORD = "correct horse battery"
HUGE = "x" * 1_000_000


def counts() -> tuple[int, int]:
    return (
        db.session.execute(select(func.count()).select_from(User)).scalar_one(),
        db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/users/abc", "/api/v1/", "/api/v2/users"])
def test_unknown_address_is_404_problem(client, path):
    response = assert_problem(client.get(path), 404)
    assert response["type"] == "about:blank"


def test_unknown_address_is_404_problem_when_logged_in(client, admin_headers):
    assert_problem(client.get("/api/v1/nothing", headers=admin_headers), 404)
    assert_problem(client.post("/api/v1/nothing", json={}, headers=admin_headers), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/api/v1/me", {"GET"}),
        ("post", "/api/v1/me", {"GET"}),
        ("put", "/api/v1/users/1", {"GET", "PATCH"}),
        ("delete", "/api/v1/users", {"GET", "POST"}),
        ("post", "/api/v1/openapi.json", {"GET"}),
        ("patch", "/api/v1/audit-events/verify", {"GET"}),
    ],
)
def test_wrong_method_is_405_problem(client, admin_headers, method, path, allowed):
    response = getattr(client, method)(path, json={}, headers=admin_headers)
    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["Allow"].split(",")} - {"HEAD", "OPTIONS"} == allowed


RAW_BODIES = [
    b"",
    b"{",
    b"not json at all",
    b'{"email": "a@b.de",}',
    b"\xff\xfe\x00garbage",
    b"[]",
    b'[{"email": "a@b.de", "role": "staff", "password": "correct horse battery"}]',
    b"null",
    b"0",
    b'"a string"',
    b"true",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"1e99999",
    b'{"email": NaN}',
]

JSON_BODIES = [
    {"email": None, "role": None, "password": None, "tenant": None, "locale": None},
    {"email": 42, "role": "staff", "password": PASSWORD},
    {"email": ["a@test.example"], "role": "staff", "password": PASSWORD},
    {"email": {"$ne": ""}, "role": "staff", "password": PASSWORD},
    {"email": "a@test.example", "role": 5, "password": PASSWORD},
    {"email": "a@test.example", "role": "staff", "password": 123456789012345},
    {"email": "a@test.example", "role": "staff", "password": True},
    {"email": "a@test.example", "role": "municipality", "password": PASSWORD, "tenant": 1002000},
    {"email": "a@test.example", "role": "staff", "password": PASSWORD, "locale": True},
    {"email": HUGE + "@test.example", "role": "staff", "password": PASSWORD},
    {"email": "a@test.example", "role": HUGE, "password": PASSWORD},
    {"email": "a@test.example", "role": "staff", "password": HUGE},
    {"email": "a@test.example", "role": "municipality", "password": PASSWORD, "tenant": HUGE},
    {"email": "a@test.example", "role": "staff", "password": PASSWORD, HUGE: 1},
    {"email": "a\x00@test.example", "role": "staff", "password": PASSWORD},
    {"email": "a@test.example", "role": "municipality", "password": PASSWORD, "tenant": "0100\x002000"},
    {"email": "a@test.example", "role": "staff", "password": PASSWORD + "\x00"},
    {"email": "a\ud800@test.example", "role": "staff", "password": PASSWORD},
    {"email": "a@test.example", "role": "staff", "password": PASSWORD + "\udfff"},
    {"email": "a@test.example", "role": "staff\x00", "password": PASSWORD},
    {"email": "a@test.example", "role": "staff", "password": PASSWORD, "a\x00b": 1},
    {"email": "\u202ea@test.example", "role": "staff", "password": PASSWORD, "locale": "de\x00"},
    {"active": "definitely"},
    {"active": [True]},
    {"active": None},
    {"role": None},
    {"role": "municipality", "tenant": None},
    {"tenant": 5},
    {"tenant": ["01002000"]},
    {"locale": "fr"},
    {"locale": HUGE},
    {"role": "admin" * 10_000},
    {"tenant": "\x00"},
]


def _surrogate_safe_json(value) -> bytes:
    # json.dumps escapes lone surrogates as \\udXXX (ensure_ascii), like a careless client would send
    return json.dumps(value).encode()


def _malformed_requests(user_id: int):
    for raw in RAW_BODIES:
        for method, path in (("post", "/api/v1/users"), ("patch", f"/api/v1/users/{user_id}")):
            yield method, path, raw
    for body in JSON_BODIES:
        for method, path in (("post", "/api/v1/users"), ("patch", f"/api/v1/users/{user_id}")):
            yield method, path, _surrogate_safe_json(body)


def test_no_write_endpoint_answers_500_to_malformed_bodies(client, admin_headers, make_user):
    target = make_user("staff")
    before = counts()
    answered = []
    for method, path, data in _malformed_requests(target.id):
        response = getattr(client, method)(
            path, data=data, content_type="application/json", headers=admin_headers
        )
        label = f"{method.upper()} {path} {data[:60]!r}"
        assert response.status_code < 500, label
        assert response.status_code in (400, 413, 422), (label, response.status_code)
        assert_problem(response, response.status_code)
        answered.append(response.status_code)
    assert counts() == before  # nothing was written by any of them
    db.session.refresh(target)
    assert (target.role, target.active, target.locale, target.municipality) == ("staff", True, None, None)
    assert {400, 422} <= set(answered)


def test_unstorable_text_names_its_field(client, admin_headers):
    for field, body in (
        ("email", {"email": "a\x00@test.example", "role": "staff", "password": PASSWORD}),
        ("password", {"email": "a@test.example", "role": "staff", "password": PASSWORD + "\ud800"}),
    ):
        data = _surrogate_safe_json(body)
        response = client.post(
            "/api/v1/users", data=data, content_type="application/json", headers=admin_headers
        )
        body = assert_problem(response, 422)
        assert set(body["errors"]) == {field}


def test_oversized_body_is_413_problem(client, admin_headers):
    before = counts()
    data = b'{"email": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/users", data=data, content_type="application/json", headers=admin_headers)
    assert_problem(response, 413)
    assert counts() == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/users?page=%C2%B2",
        "/api/v1/users?per_page=%D9%A1",
        "/api/v1/users?page=1e3",
        "/api/v1/users?page=" + "9" * 5000,
        "/api/v1/users?role=%00",
        "/api/v1/users?active=%00",
        "/api/v1/users?%00=1",
        "/api/v1/users?role=" + "r" * 10_000,
        "/api/v1/users?role=%ED%A0%80",
        "/api/v1/audit-events?action=%00",
        "/api/v1/audit-events?entity=%00",
        "/api/v1/audit-events?entity_id=%00",
        "/api/v1/audit-events?entity_id=" + "1" * 10_000,
        "/api/v1/audit-events?action=%FF%FE",
        "/api/v1/users/99999999999999999999999",
        "/api/v1/users/2147483648",
        "/api/v1/users/-1",
        "/api/v1/users/" + "9" * 5000,
    ],
)
def test_no_read_endpoint_answers_500_to_malformed_queries(client, admin_headers, url):
    response = client.get(url, headers=admin_headers)
    assert response.status_code < 500, url
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


def test_nul_in_query_is_400_problem(client, admin_headers):
    for url in ("/api/v1/audit-events?action=%00", "/api/v1/users?role=staff%00"):
        assert_problem(client.get(url, headers=admin_headers), 400)


def test_patch_with_huge_id_is_404(client, admin_headers):
    url = "/api/v1/users/99999999999999999999"
    response = client.patch(url, json={"locale": "en"}, headers=admin_headers)
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "itvsh_" + "\u00e4" * 50,
        "Bearer itvsh_" + "x" * 100_000,
        "Bearer \t itvsh_abc",
        "Bearer itvsh_%00",
        "Basic " + "=" * 100,
    ],
)
def test_odd_authorization_headers_never_500(client, header):
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert_problem(response, 401)
    response = client.post("/api/v1/users", json={}, headers={"Authorization": header})
    assert response.status_code in (400, 401)
    assert_problem(response, response.status_code)


def test_errors_carry_no_traceback_or_sql(client, admin_headers):
    response = client.post(
        "/api/v1/users",
        data=b'{"email": "a@test.example", "role": "staff\' OR 1=1 --", "password": "correct horse battery"}',
        content_type="application/json",
        headers=admin_headers,
    )
    text = response.get_data(as_text=True)
    assert_problem(response, 422)
    for leak in ("Traceback", "SELECT", "sqlalchemy", 'File "'):
        assert leak not in text
