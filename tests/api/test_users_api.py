"""The accounts API: admins list (one pagination convention), read, create and change users;
every refusal is a problem+json naming the field and writes nothing; other roles see only /me."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from itvsh.auth import services
from itvsh.auth.models import ApiToken, User
from itvsh.core.audit import AuditEvent
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from tests.api.helpers import assert_problem, field_errors

PASSWORD = "correct horse battery"
USER_FIELDS = {"id", "email", "role", "tenant", "active", "locale", "created_at", "last_login_at"}
_LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(response.headers.get("Link", ""))}


def counts() -> tuple[int, int]:
    """Users and audit events in the database: unchanged after every refused request."""
    return (
        db.session.execute(select(func.count()).select_from(User)).scalar_one(),
        db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


# --- listing ---------------------------------------------------------------------------------------


def test_list_users_answers_items_and_meta(client, admin, admin_headers, make_user):
    others = [make_user("staff") for _ in range(3)]
    response = client.get("/api/v1/users", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "meta"}
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 4, "pages": 1}
    emails = [item["email"] for item in body["items"]]
    assert emails == sorted(u.email for u in [admin, *others])
    for item in body["items"]:
        assert set(item) == USER_FIELDS
    assert "Link" not in response.headers  # one page: no next, no prev


def test_pagination_links_walk_every_user_once(client, admin, admin_headers, make_user):
    users = [admin] + [make_user("staff") for _ in range(4)]
    first = client.get("/api/v1/users?per_page=2", headers=admin_headers)
    assert first.get_json()["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    assert set(links(first)) == {"next"}

    seen, response, pages = [], first, []
    while True:
        body = response.get_json()
        pages.append(body["meta"]["page"])
        seen += [item["email"] for item in body["items"]]
        if "next" not in links(response):
            break
        response = client.get(links(response)["next"], headers=admin_headers)
        assert response.status_code == 200
    assert pages == [1, 2, 3]
    assert seen == sorted(u.email for u in users)

    middle = client.get("/api/v1/users?page=2&per_page=2", headers=admin_headers)
    assert set(links(middle)) == {"prev", "next"}
    prev_query = parse_qs(urlsplit(links(middle)["prev"]).query)
    assert prev_query == {"page": ["1"], "per_page": ["2"]}
    last = client.get("/api/v1/users?page=3&per_page=2", headers=admin_headers)
    assert set(links(last)) == {"prev"}
    assert len(last.get_json()["items"]) == 1


def test_pagination_links_keep_the_filters(client, admin_headers, make_user):
    for _ in range(3):
        make_user("auditor")
    response = client.get("/api/v1/users?role=auditor&per_page=1&page=2", headers=admin_headers)
    for url in links(response).values():
        query = parse_qs(urlsplit(url).query)
        assert query["role"] == ["auditor"]
        assert query["per_page"] == ["1"]
        assert urlsplit(url).path == "/api/v1/users"


def test_page_past_the_end_is_empty(client, admin_headers):
    response = client.get("/api/v1/users?page=7", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["items"] == []
    assert body["meta"] == {"page": 7, "per_page": 50, "total": 1, "pages": 1}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("per_page=0", "per_page"),
        ("per_page=501", "per_page"),
        ("per_page=-1", "per_page"),
        ("per_page=1.5", "per_page"),
        ("per_page=%C2%B2", "per_page"),  # "²" is a digit to str.isdigit, not to int()
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page=-2", "page"),
        ("page=99999999999999999999999", "page"),
        ("page=%20", "page"),
    ],
)
def test_bad_pagination_parameter_is_400_naming_it(client, admin_headers, query, parameter):
    body = assert_problem(client.get(f"/api/v1/users?{query}", headers=admin_headers), 400)
    assert parameter in body["detail"]
    other = {"page": "per_page", "per_page": "page"}[parameter]
    assert re.search(rf"\b{other}\b", body["detail"]) is None


def test_largest_allowed_page_size(client, admin_headers):
    response = client.get("/api/v1/users?per_page=500", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["meta"]["per_page"] == 500


def test_filter_by_role(client, admin, admin_headers, make_user):
    auditors = {make_user("auditor").email for _ in range(2)}
    make_user("staff")
    municipal = make_user("municipality", "01003000")
    body = client.get("/api/v1/users?role=auditor", headers=admin_headers).get_json()
    assert {item["email"] for item in body["items"]} == auditors
    assert body["meta"]["total"] == 2
    body = client.get("/api/v1/users?role=municipality", headers=admin_headers).get_json()
    assert [(i["email"], i["tenant"]) for i in body["items"]] == [(municipal.email, "01003000")]
    body = client.get("/api/v1/users?role=admin", headers=admin_headers).get_json()
    assert [i["email"] for i in body["items"]] == [admin.email]


def test_filter_by_unknown_role_is_422(client, admin_headers):
    errors = field_errors(client.get("/api/v1/users?role=superuser", headers=admin_headers))
    assert set(errors) == {"role"}


def test_filter_by_active(client, admin, admin_headers, make_user):
    gone = make_user("staff")
    kept = make_user("staff")
    services.deactivate_user(db.session, "test", gone)
    db.session.commit()
    inactive = client.get("/api/v1/users?active=false", headers=admin_headers).get_json()
    assert [(i["email"], i["active"]) for i in inactive["items"]] == [(gone.email, False)]
    active = client.get("/api/v1/users?active=true", headers=admin_headers).get_json()
    assert {i["email"] for i in active["items"]} == {admin.email, kept.email}
    assert all(i["active"] for i in active["items"])
    both = client.get("/api/v1/users?role=staff&active=true", headers=admin_headers).get_json()
    assert [i["email"] for i in both["items"]] == [kept.email]


# --- one user --------------------------------------------------------------------------------------


def test_get_one_user(client, admin_headers, make_user):
    user = make_user("municipality", "01004000", locale="en")
    response = client.get(f"/api/v1/users/{user.id}", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["role"] == "municipality"
    assert body["tenant"] == "01004000"
    assert body["locale"] == "en"
    assert body["active"] is True


@pytest.mark.parametrize("user_id", ["999999", "0", "2147483647", "2147483648", "99999999999999999999999"])
def test_get_unknown_user_is_404_problem(client, admin_headers, user_id):
    assert_problem(client.get(f"/api/v1/users/{user_id}", headers=admin_headers), 404)


# --- creating --------------------------------------------------------------------------------------


def test_create_user(client, admin, admin_headers):
    before_users, before_events = counts()
    response = client.post(
        "/api/v1/users",
        json={"email": "  New.Person@Example.ORG ", "role": "staff", "password": PASSWORD, "locale": "en"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body["email"] == "new.person@example.org"
    assert body["role"] == "staff"
    assert body["tenant"] is None
    assert body["active"] is True
    assert body["locale"] == "en"
    user = db.session.get(User, body["id"])
    assert user.email == "new.person@example.org"
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")

    events = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "user", AuditEvent.entity_id == str(user.id))
        )
        .scalars()
        .all()
    )
    assert [e.action for e in events] == ["create"]
    event = events[0]
    assert event.actor == admin.email
    assert event.actor_id == admin.id
    assert event.after == {
        "email": "new.person@example.org",
        "role": "staff",
        "tenant": None,
        "active": True,
        "locale": "en",
    }
    assert PASSWORD not in event.payload
    assert counts() == (before_users + 1, before_events + 1)


def test_create_municipality_user(client, admin_headers):
    ensure_municipality(db.session, "01051001")
    db.session.commit()
    response = client.post(
        "/api/v1/users",
        json={
            "email": "amt@test.example",
            "role": "municipality",
            "tenant": "01051001",
            "password": PASSWORD,
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["tenant"] == "01051001"
    assert db.session.get(User, response.get_json()["id"]).municipality.key == "01051001"


def test_created_user_can_log_in_through_the_api(client, admin_headers):
    response = client.post(
        "/api/v1/users",
        json={"email": "fresh@test.example", "role": "auditor", "password": PASSWORD},
        headers=admin_headers,
    )
    user = db.session.get(User, response.get_json()["id"])
    assert services.authenticate(db.session, "FRESH@test.example", PASSWORD) is user


BASE = {"email": "someone@test.example", "role": "staff", "password": PASSWORD}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BASE, "is_admin": True}, "is_admin"),
        ({**BASE, "id": 5}, "id"),
        ({**BASE, "active": False}, "active"),
        ({**BASE, "password_hash": "$argon2id$..."}, "password_hash"),
        ({k: v for k, v in BASE.items() if k != "email"}, "email"),
        ({k: v for k, v in BASE.items() if k != "role"}, "role"),
        ({k: v for k, v in BASE.items() if k != "password"}, "password"),
        ({**BASE, "role": "superuser"}, "role"),
        ({**BASE, "role": "Admin"}, "role"),
        ({**BASE, "password": "elevenchars"}, "password"),
        ({**BASE, "password": "            "}, "password"),
        ({**BASE, "password": "x" * 5000}, "password"),
        ({**BASE, "email": "not-an-address"}, "email"),
        ({**BASE, "email": "a@b"}, "email"),
        ({**BASE, "email": "x" * 250 + "@test.example"}, "email"),
        ({**BASE, "role": "municipality"}, "tenant"),
        ({**BASE, "role": "municipality", "tenant": ""}, "tenant"),
        ({**BASE, "role": "municipality", "tenant": "99999999"}, "tenant"),
        ({**BASE, "tenant": "01002000"}, "tenant"),
        ({**BASE, "locale": "fr"}, "locale"),
        ({**BASE, "email": None}, "email"),
        ({**BASE, "email": 42}, "email"),
        ({**BASE, "role": ["admin"]}, "role"),
        ({**BASE, "password": {"plain": PASSWORD}}, "password"),
    ],
)
def test_create_refusal_names_the_field_and_writes_nothing(client, admin_headers, body, field):
    ensure_municipality(db.session, "01002000")
    db.session.commit()
    before = counts()
    errors = field_errors(client.post("/api/v1/users", json=body, headers=admin_headers))
    assert field in errors, errors
    assert counts() == before
    if body.get("email") == BASE["email"]:
        assert services.find_user(db.session, BASE["email"]) is None


def test_unknown_field_is_named_alone(client, admin_headers):
    errors = field_errors(client.post("/api/v1/users", json={**BASE, "colour": "red"}, headers=admin_headers))
    assert set(errors) == {"colour"}


def test_duplicate_email_is_422_whatever_its_case(client, admin_headers, make_user):
    existing = make_user("staff", email="taken@test.example")
    before = counts()
    for email in ("taken@test.example", "TAKEN@Test.Example", "  taken@test.example  "):
        errors = field_errors(
            client.post("/api/v1/users", json={**BASE, "email": email}, headers=admin_headers)
        )
        assert set(errors) == {"email"}
    assert counts() == before
    assert db.session.get(User, existing.id).role == "staff"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (
            "email=x@test.example&role=staff&password=correct+horse+battery",
            "application/x-www-form-urlencoded",
        ),
        ('{"email": "x@test.example", "role": "staff", "password": "correct horse battery"}', "text/plain"),
        ("", None),
    ],
)
def test_non_json_body_is_400(client, admin_headers, data, content_type):
    before = counts()
    kwargs = {"content_type": content_type} if content_type else {}
    body = assert_problem(client.post("/api/v1/users", data=data, headers=admin_headers, **kwargs), 400)
    assert "JSON" in body["detail"]
    assert counts() == before


# --- changing --------------------------------------------------------------------------------------


def test_patch_role_and_tenant(client, admin, admin_headers, make_user):
    ensure_municipality(db.session, "01001000")
    db.session.commit()
    user = make_user("staff")
    version = user.session_version
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"role": "municipality", "tenant": "01001000"}, headers=admin_headers
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["role"] == "municipality"
    assert response.get_json()["tenant"] == "01001000"
    db.session.refresh(user)
    assert user.role == "municipality"
    assert user.municipality.key == "01001000"
    assert user.session_version == version + 1  # access changed: the user's sessions end

    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_id == str(user.id))
    ).scalar_one()
    assert event.actor == admin.email
    assert event.before["role"] == "staff"
    assert event.before["tenant"] is None
    assert event.after["role"] == "municipality"
    assert event.after["tenant"] == "01001000"

    response = client.patch(f"/api/v1/users/{user.id}", json={"role": "auditor"}, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["tenant"] is None  # leaving the municipality role drops the binding
    assert response.get_json()["role"] == "auditor"


def test_patch_tenant_of_municipality_user(client, admin_headers, make_user):
    ensure_municipality(db.session, "01003000")
    db.session.commit()
    user = make_user("municipality", "01002000")
    response = client.patch(f"/api/v1/users/{user.id}", json={"tenant": "01003000"}, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["tenant"] == "01003000"


def test_patch_active_false_deactivates_and_revokes_tokens(client, admin_headers, make_user, bearer):
    user = make_user("staff")
    their_headers = bearer(user)
    response = client.patch(f"/api/v1/users/{user.id}", json={"active": False}, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["active"] is False
    db.session.refresh(user)
    assert user.active is False
    tokens = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalars().all()
    assert tokens
    assert all(t.revoked_at is not None for t in tokens)
    assert_problem(client.get("/api/v1/me", headers=their_headers), 401)

    response = client.patch(f"/api/v1/users/{user.id}", json={"active": True}, headers=admin_headers)
    assert response.get_json()["active"] is True
    assert_problem(client.get("/api/v1/me", headers=their_headers), 401)  # revoked tokens stay revoked


def test_patch_nothing_changes_nothing(client, admin_headers, make_user):
    user = make_user("staff")
    before = counts()
    response = client.patch(f"/api/v1/users/{user.id}", json={}, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["role"] == "staff"
    assert counts() == before  # no audit event for a change that changed nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "other@test.example"}, "email"),
        ({"password": PASSWORD}, "password"),
        ({"role": "superuser"}, "role"),
        ({"role": "municipality"}, "tenant"),
        ({"tenant": "01002000"}, "tenant"),
        ({"active": "maybe"}, "active"),
        ({"active": None}, "active"),
        ({"locale": "fr"}, "locale"),
        ({"id": 1}, "id"),
    ],
)
def test_patch_refusal_names_the_field_and_writes_nothing(client, admin_headers, make_user, body, field):
    ensure_municipality(db.session, "01002000")
    db.session.commit()
    user = make_user("staff")
    before = counts()
    errors = field_errors(client.patch(f"/api/v1/users/{user.id}", json=body, headers=admin_headers))
    assert field in errors, errors
    assert counts() == before
    db.session.refresh(user)
    assert (user.role, user.municipality, user.active, user.locale) == ("staff", None, True, None)


def test_admin_cannot_demote_or_deactivate_self(client, admin, admin_headers):
    assert set(
        field_errors(client.patch(f"/api/v1/users/{admin.id}", json={"role": "staff"}, headers=admin_headers))
    ) == {"role"}
    assert set(
        field_errors(client.patch(f"/api/v1/users/{admin.id}", json={"active": False}, headers=admin_headers))
    ) == {"active"}
    db.session.refresh(admin)
    assert (admin.role, admin.active) == ("admin", True)


def test_patch_unknown_user_is_404(client, admin_headers):
    assert_problem(client.patch("/api/v1/users/424242", json={"locale": "en"}, headers=admin_headers), 404)


# --- who may -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "auditor", "municipality"])
def test_other_roles_get_403_on_users(client, make_user, bearer, role):
    target = make_user("staff")
    headers = bearer(make_user(role))
    before = counts()
    for response in (
        client.get("/api/v1/users", headers=headers),
        client.get(f"/api/v1/users/{target.id}", headers=headers),
        client.post("/api/v1/users", json={**BASE}, headers=headers),
        client.patch(f"/api/v1/users/{target.id}", json={"role": "admin"}, headers=headers),
    ):
        assert_problem(response, 403)
    assert counts() == before
    assert db.session.get(User, target.id).role == "staff"


@pytest.mark.parametrize("role", ["staff", "auditor", "municipality"])
def test_other_roles_get_403_through_the_session_too(client, login_as, role):
    login_as(role)
    assert_problem(client.get("/api/v1/users"), 403)


def test_anonymous_gets_401_on_users(client, make_user):
    user = make_user("staff")
    assert_problem(client.get("/api/v1/users"), 401)
    assert_problem(client.get(f"/api/v1/users/{user.id}"), 401)


@pytest.mark.parametrize("role", ["admin", "staff", "auditor", "municipality"])
def test_everybody_gets_their_own_me(client, make_user, bearer, role):
    user = make_user(role)
    make_user("admin")  # someone else, to be sure /me is not "the first user"
    body = client.get("/api/v1/me", headers=bearer(user)).get_json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["role"] == role
    assert body["tenant"] == ("01002000" if role == "municipality" else None)
