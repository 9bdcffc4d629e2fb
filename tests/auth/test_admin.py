"""Account management in the admin UI (admins only, every change audited), and who may do what in
the admin at all: staff and auditors never see accounts, auditors are read-only on every model view
(also when typing URLs), municipality users are refused everywhere under /admin/."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from itvsh.auth import passwords, services
from itvsh.auth.models import ApiToken, User
from itvsh.core.audit import AuditEvent
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from tests.auth.helpers import PASSWORD, audit_events, post_login
from tests.conftest import csrf_token

KIEL = "01002000"
LUEBECK = "01003000"
WRITE_ENDPOINTS = ("create_view", "edit_view", "delete_view", "action_view", "ajax_update")


def _user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def _count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def admin_client(app, make_user):
    """A client logged in through the login form as a fresh admin; ``.user`` is the admin."""
    admin = make_user("admin")
    client = app.test_client()
    assert post_login(client, admin.email).status_code == 302
    client.user = admin
    return client


def _token(client) -> str:
    return csrf_token(client, "/admin/users/new/")


def _edit(client, user: User, **fields):
    data = {
        "role": user.role,
        "tenant_key": user.municipality.key if user.municipality else "",
        "active": "y" if user.active else "",
        "new_password": "",
        "csrf_token": _token(client),
    }
    data.update(fields)
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(f"/admin/users/edit/?id={user.id}", data=data)


def _action(client, action: str, *ids: int):
    return client.post(
        "/admin/users/action/",
        data={"action": action, "rowid": [str(i) for i in ids], "csrf_token": _token(client)},
    )


# --- admins manage accounts -------------------------------------------------------------------


def test_admin_sees_the_account_list(admin_client, make_user):
    other = make_user("auditor")
    page = admin_client.get("/admin/users/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert other.email in body
    assert admin_client.user.email in body
    assert admin_client.get("/admin/users/new/").status_code == 200
    assert admin_client.get(f"/admin/users/edit/?id={other.id}").status_code == 200


def test_admin_creates_an_account(admin_client):
    ensure_municipality(db.session, KIEL)
    db.session.commit()
    response = admin_client.post(
        "/admin/users/new/",
        data={
            "email": " New.Kiel@Test.Example ",
            "role": "municipality",
            "tenant_key": KIEL,
            "password": "a long enough password",
            "csrf_token": _token(admin_client),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    user = services.find_user(db.session, "new.kiel@test.example")
    assert user is not None
    assert (user.role, user.municipality.key, user.active) == ("municipality", KIEL, True)
    assert passwords.verify_password(user.password_hash, "a long enough password")
    [event] = audit_events(action="create", entity="user", entity_id=str(user.id))
    assert (event.actor, event.actor_id) == (admin_client.user.email, admin_client.user.id)
    assert event.after["tenant"] == KIEL
    assert "a long enough password" not in event.payload


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "short@test.example", "role": "staff", "password": "too short"}, "password"),
        ({"email": "kiel@test.example", "role": "municipality", "password": "long enough pw"}, "tenant"),
        (
            {
                "email": "ghost@test.example",
                "role": "municipality",
                "tenant_key": "99999999",
                "password": "x" * 12,
            },
            "tenant",
        ),
        (
            {"email": "staff@test.example", "role": "staff", "tenant_key": KIEL, "password": "x" * 12},
            "tenant",
        ),
        ({"email": "not-an-address", "role": "staff", "password": "long enough pw"}, "email"),
        ({"email": "role@test.example", "role": "superuser", "password": "long enough pw"}, "role"),
    ],
)
def test_admin_create_refusals_write_nothing(admin_client, fields, field):
    ensure_municipality(db.session, KIEL)
    db.session.commit()
    users, events = _count(User), _count(AuditEvent)
    response = admin_client.post("/admin/users/new/", data={**fields, "csrf_token": _token(admin_client)})
    assert response.status_code == 200  # the form again, with the reason
    assert 'class="invalid-feedback"' in response.get_data(
        as_text=True
    ) or "alert-danger" in response.get_data(as_text=True)
    assert (_count(User), _count(AuditEvent)) == (users, events)


def test_admin_create_refuses_duplicate_email(admin_client, make_user):
    make_user("staff", email="taken@test.example")
    users = _count(User)
    response = admin_client.post(
        "/admin/users/new/",
        data={
            "email": "TAKEN@test.example",
            "role": "auditor",
            "password": "a long enough password",
            "csrf_token": _token(admin_client),
        },
    )
    assert response.status_code == 200
    assert _count(User) == users
    assert services.find_user(db.session, "taken@test.example").role == "staff"


def test_admin_create_needs_csrf_token(admin_client):
    response = admin_client.post(
        "/admin/users/new/",
        data={"email": "nocsrf@test.example", "role": "staff", "password": "a long enough password"},
    )
    assert response.status_code == 400
    assert services.find_user(db.session, "nocsrf@test.example") is None


def test_admin_changes_role_and_tenant(admin_client, make_user):
    user = make_user("staff")
    ensure_municipality(db.session, KIEL)
    ensure_municipality(db.session, LUEBECK)
    db.session.commit()

    response = _edit(admin_client, user, role="municipality", tenant_key=KIEL)
    assert response.status_code == 302, response.get_data(as_text=True)
    user = _user(user.id)
    assert (user.role, user.municipality.key, user.session_version) == ("municipality", KIEL, 2)

    assert _edit(admin_client, user, tenant_key=LUEBECK).status_code == 302
    user = _user(user.id)
    assert (user.municipality.key, user.session_version) == (LUEBECK, 3)

    assert _edit(admin_client, user, role="auditor", tenant_key="").status_code == 302
    user = _user(user.id)
    assert (user.role, user.municipality, user.session_version) == ("auditor", None, 4)

    events = audit_events(action="update", entity_id=str(user.id))
    assert [(e.before["role"], e.after["role"], e.after["tenant"]) for e in events] == [
        ("staff", "municipality", KIEL),
        ("municipality", "municipality", LUEBECK),
        ("municipality", "auditor", None),
    ]
    assert {e.actor for e in events} == {admin_client.user.email}


def test_admin_edit_refuses_role_tenant_mismatch(admin_client, make_user):
    user = make_user("staff")
    events = _count(AuditEvent)
    response = _edit(admin_client, user, role="municipality", tenant_key="")
    assert response.status_code == 200
    response = _edit(admin_client, user, tenant_key="99999999")
    assert response.status_code == 200
    user = _user(user.id)
    assert (user.role, user.municipality, user.session_version) == ("staff", None, 1)
    assert _count(AuditEvent) == events


def test_admin_sets_a_new_password(app, admin_client, make_user):
    user = make_user("staff")
    response = _edit(admin_client, user, new_password="set by the admin today")
    assert response.status_code == 302
    user = _user(user.id)
    assert passwords.verify_password(user.password_hash, "set by the admin today")
    assert not passwords.verify_password(user.password_hash, PASSWORD)
    assert user.session_version == 2
    [event] = audit_events(action="password_set", entity_id=str(user.id))
    assert event.actor == admin_client.user.email
    assert "set by the admin today" not in event.payload
    assert post_login(app.test_client(), user.email, "set by the admin today").status_code == 302


def test_admin_password_too_short_is_refused(admin_client, make_user):
    user = make_user("staff")
    old_hash = user.password_hash
    response = _edit(admin_client, user, new_password="short")
    assert response.status_code == 200
    assert _user(user.id).password_hash == old_hash
    assert audit_events(action="password_set") == []


def test_admin_deactivates_through_bulk_action(app, admin_client, make_user):
    user = make_user("staff")
    bystander = make_user("staff")
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    user_client = app.test_client()
    post_login(user_client, user.email)

    response = _action(admin_client, "deactivate", user.id)
    assert response.status_code == 302
    user = _user(user.id)
    assert (user.active, user.session_version) == (False, 2)
    assert _user(bystander.id).active is True
    assert services.user_for_token(db.session, token) is None
    assert user_client.get("/admin/").status_code == 302  # its session ended
    [event] = audit_events(action="update", entity_id=str(user.id))
    assert (event.actor, event.before["active"], event.after["active"]) == (
        admin_client.user.email,
        True,
        False,
    )
    assert post_login(app.test_client(), user.email).status_code == 401


def test_admin_deactivates_several_accounts(admin_client, make_user):
    one, two = make_user("staff"), make_user("auditor")
    assert _action(admin_client, "deactivate", one.id, two.id).status_code == 302
    assert (_user(one.id).active, _user(two.id).active) == (False, False)
    assert len(audit_events(action="update")) == 2


def test_admin_cannot_deactivate_self(admin_client, make_user):
    other = make_user("staff")
    response = _action(admin_client, "deactivate", other.id, admin_client.user.id)
    assert response.status_code == 302
    # All or nothing: the refusal rolls back the whole action.
    assert _user(admin_client.user.id).active is True
    assert _user(other.id).active is True
    assert audit_events(action="update") == []
    assert admin_client.get("/admin/users/").status_code == 200


def test_admin_cannot_deactivate_self_through_edit_form(admin_client):
    admin = _user(admin_client.user.id)
    assert _edit(admin_client, admin, active="").status_code == 200
    assert _edit(admin_client, admin, role="staff").status_code == 200
    admin = _user(admin.id)
    assert (admin.active, admin.role) == (True, "admin")


def test_admin_reactivates_through_edit_form(admin_client, make_user):
    user = make_user("staff")
    services.deactivate_user(db.session, "test", user)
    db.session.commit()
    assert _edit(admin_client, _user(user.id), active="y").status_code == 302
    assert _user(user.id).active is True


def test_admin_revokes_tokens_through_bulk_action(admin_client, make_user):
    user = make_user("staff")
    other = make_user("staff")
    tokens = [services.issue_token(db.session, "test", user) for _ in range(2)]
    kept = services.issue_token(db.session, "test", other)
    db.session.commit()
    assert _action(admin_client, "revoke_tokens", user.id).status_code == 302
    assert all(services.user_for_token(db.session, token) is None for token in tokens)
    assert services.user_for_token(db.session, kept).id == other.id
    assert _user(user.id).active is True
    [event] = audit_events(action="tokens_revoked")
    assert (event.actor, event.entity_id, event.after) == (
        admin_client.user.email,
        str(user.id),
        {"revoked": 2},
    )


def test_admin_revokes_one_token_in_the_token_list(admin_client, make_user):
    user = make_user("staff")
    token = services.issue_token(db.session, "test", user)
    second = services.issue_token(db.session, "test", user)
    db.session.commit()
    record = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.digest(token))
    ).scalar_one()
    page = admin_client.get("/admin/api_tokens/")
    assert page.status_code == 200
    assert record.prefix in page.get_data(as_text=True)
    assert token not in page.get_data(as_text=True)
    response = admin_client.post(
        "/admin/api_tokens/delete/", data={"id": str(record.id), "csrf_token": _token(admin_client)}
    )
    assert response.status_code == 302
    assert services.user_for_token(db.session, token) is None
    assert services.user_for_token(db.session, second).id == user.id
    assert _count(ApiToken) == 2  # revoked, not deleted
    [event] = audit_events(action="token_revoked")
    assert event.after == {"token_id": record.id, "prefix": record.prefix}


def test_admin_action_with_bad_ids_is_refused(admin_client, make_user):
    user = make_user("staff")
    response = _action(admin_client, "deactivate", user.id)
    assert response.status_code == 302
    response = admin_client.post(
        "/admin/users/action/",
        data={"action": "deactivate", "rowid": ["1 OR 1=1"], "csrf_token": _token(admin_client)},
    )
    assert response.status_code == 400


# --- who may use the admin --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "auditor"])
@pytest.mark.parametrize(
    "url", ["/admin/users/", "/admin/users/new/", "/admin/users/edit/?id=1", "/admin/api_tokens/"]
)
def test_staff_and_auditors_cannot_manage_accounts(client, login_as, role, url):
    login_as(role)
    response = client.get(url)
    assert response.status_code == 403
    assert '<html lang="de"' in response.get_data(as_text=True)


def test_staff_use_the_admin_but_not_the_audit_trail(client, login_as):
    login_as("staff")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/municipalities/").status_code == 200
    assert client.get("/admin/audit_events/").status_code == 403


def _existing_ids() -> dict[str, int]:
    """An existing row per model view, so a refusal is not just "record not found"."""
    municipality, _ = ensure_municipality(db.session, KIEL)
    db.session.commit()
    event = db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().first()
    user = db.session.execute(select(User)).scalars().first()
    token = db.session.execute(select(ApiToken)).scalars().first()
    return {
        "municipalities": municipality.id,
        "audit_events": event.id,
        "users": user.id,
        "api_tokens": token.id,
    }


def _write_requests(view_endpoint: str, row_id: int, base: str | None = None):
    base = base or f"/admin/{view_endpoint}"
    yield "GET", f"{base}/new/", {}
    yield "POST", f"{base}/new/", {"key": "01003000", "name": "x", "email": "x@test.example"}
    yield "GET", f"{base}/edit/?id={row_id}", {}
    yield "POST", f"{base}/edit/?id={row_id}", {"name": "changed", "role": "admin"}
    yield "POST", f"{base}/delete/", {"id": str(row_id)}
    yield "POST", f"{base}/action/", {"action": "delete", "rowid": str(row_id)}
    yield "POST", f"{base}/ajax/update/", {"list_form_pk": str(row_id), "name": "changed"}


def _snapshot():
    counts = [
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (User, ApiToken, AuditEvent)
    ]
    return (*counts, db.session.execute(select(User.role, User.active).order_by(User.id)).all())


def test_auditor_is_read_only_on_every_model_view(app, client, login_as, make_user):
    auditor = login_as("auditor")
    services.issue_token(db.session, "test", make_user("staff"))
    db.session.commit()
    ids = _existing_ids()
    views = {ep: view for ep, view in app.extensions["itvsh_admin_views"].items() if hasattr(view, "model")}
    assert {"users", "api_tokens", "audit_events", "municipalities"} <= set(views)
    token = csrf_token(client, "/logout")
    before = _snapshot()
    for endpoint, view in views.items():
        assert set(WRITE_ENDPOINTS) <= {name for _url, name, _methods in view._urls}
        for method, url, data in _write_requests(endpoint, ids.get(endpoint, 1), view.url):
            if method == "GET":
                response = client.get(url)
            else:
                response = client.post(url, data={**data, "csrf_token": token})
            assert response.status_code == 403, (method, url, response.status_code)
    db.session.expire_all()
    assert _snapshot() == before
    assert _user(auditor.id).role == "auditor"


def test_auditor_reads_the_audit_trail(client, login_as):
    login_as("auditor")
    services.create_user(
        db.session, "import-job", email="someone@test.example", role="staff", password="long enough pw"
    )
    db.session.commit()
    [event] = audit_events(actor="import-job")
    page = client.get("/admin/audit_events/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "import-job" in body
    # no create link, no bulk actions, no delete buttons for a read-only role
    assert "/admin/audit_events/new/" not in body
    assert 'action="/admin/audit_events/action/"' not in body
    assert 'action="/admin/audit_events/delete/"' not in body
    assert client.get(f"/admin/audit_events/details/?id={event.id}").status_code == 200
    assert client.get("/admin/audit_events/?search=create").status_code == 200
    assert client.get("/admin/").status_code == 200
    municipalities = client.get("/admin/municipalities/")
    assert municipalities.status_code == 200
    assert "/admin/municipalities/new/" not in municipalities.get_data(as_text=True)


def _admin_urls(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint == "admin.static":
            continue
        url = re.sub(r"<(?:\w+:)?export_type>", "csv", rule.rule)
        assert "<" not in url, url
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


def test_municipality_user_is_refused_on_every_admin_url(app, client, login_as):
    login_as("municipality")
    token = csrf_token(client, "/logout")
    before = _snapshot()
    checked = 0
    for method, url in _admin_urls(app):
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token, "action": "delete", "rowid": "1"})
        assert response.status_code == 403, (method, url, response.status_code)
        assert '<html lang="de"' in response.get_data(as_text=True), (method, url)
        checked += 1
    assert checked >= 30
    assert client.get("/admin").status_code in (301, 308, 403)
    db.session.expire_all()
    assert _snapshot() == before


def test_anonymous_visitor_is_sent_to_login_from_admin(client):
    response = client.get("/admin/users/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert client.post("/admin/users/action/", data={"action": "deactivate"}).status_code in (400, 401)
