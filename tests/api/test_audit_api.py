"""The audit trail in the API: admins and auditors page through it newest first, filter it and
verify its hash chain; staff and municipality users are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from itvsh.auth import services
from itvsh.core.audit import AuditEvent
from itvsh.extensions import db
from tests.api.helpers import assert_problem

EVENT_FIELDS = {
    "seq",
    "occurred_at",
    "actor",
    "actor_id",
    "action",
    "entity",
    "entity_id",
    "before",
    "after",
    "address",
    "prev_hash",
    "hash",
}


def all_events() -> list[AuditEvent]:
    return db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()


@pytest.fixture
def trail(make_user):
    """A few events of different kinds: creates, a token, an update, a failed login."""
    admin = make_user("admin")
    staff = make_user("staff")
    services.update_user(db.session, admin, staff, locale="en")
    services.authenticate(db.session, staff.email, "wrong password!!")
    db.session.commit()
    return {"admin": admin, "staff": staff}


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_readers_list_events_newest_first(client, trail, make_user, bearer, role):
    headers = bearer(make_user(role))
    stored = all_events()
    response = client.get("/api/v1/audit-events", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"] == {"page": 1, "per_page": 50, "total": len(stored), "pages": 1}
    seqs = [item["seq"] for item in body["items"]]
    assert seqs == sorted((e.seq for e in stored), reverse=True)
    newest = body["items"][0]
    assert set(newest) == EVENT_FIELDS
    assert newest["action"] == "token_issued"  # the reader's own token is the latest event
    assert newest["hash"] == stored[-1].hash
    assert newest["prev_hash"] == stored[-2].hash


def test_events_carry_what_the_trail_recorded(client, trail, admin_headers):
    staff = trail["staff"]
    items = client.get(
        f"/api/v1/audit-events?action=update&entity_id={staff.id}", headers=admin_headers
    ).get_json()["items"]
    assert len(items) == 1
    event = items[0]
    assert event["entity"] == "user"
    assert event["actor"] == trail["admin"].email
    assert event["actor_id"] == trail["admin"].id
    assert event["before"]["locale"] is None
    assert event["after"]["locale"] == "en"


def test_filter_by_action(client, trail, admin_headers):
    items = client.get("/api/v1/audit-events?action=login_failed", headers=admin_headers).get_json()["items"]
    assert [(i["action"], i["entity_id"]) for i in items] == [("login_failed", str(trail["staff"].id))]
    assert items[0]["after"] == {"reason": "wrong_password"}


def test_filter_by_entity_and_entity_id(client, trail, admin_headers):
    stored = all_events()
    body = client.get("/api/v1/audit-events?entity=municipality", headers=admin_headers).get_json()
    assert body["meta"]["total"] == sum(e.entity == "municipality" for e in stored)
    assert all(i["entity"] == "municipality" for i in body["items"])

    staff_id = str(trail["staff"].id)
    url = f"/api/v1/audit-events?entity=user&entity_id={staff_id}"
    body = client.get(url, headers=admin_headers).get_json()
    expected = [e.seq for e in reversed(stored) if e.entity == "user" and e.entity_id == staff_id]
    assert [i["seq"] for i in body["items"]] == expected
    assert {i["action"] for i in body["items"]} == {"create", "update", "login_failed"}


def test_filters_combine(client, trail, admin_headers):
    staff_id = str(trail["staff"].id)
    body = client.get(
        f"/api/v1/audit-events?action=create&entity=user&entity_id={staff_id}", headers=admin_headers
    ).get_json()
    assert [(i["action"], i["entity_id"]) for i in body["items"]] == [("create", staff_id)]
    body = client.get("/api/v1/audit-events?action=create&entity=nothing", headers=admin_headers).get_json()
    assert body == {"items": [], "meta": {"page": 1, "per_page": 50, "total": 0, "pages": 1}}


def test_events_are_paginated(client, trail, admin_headers):
    total = len(all_events())
    first = client.get("/api/v1/audit-events?per_page=2", headers=admin_headers)
    body = first.get_json()
    assert body["meta"]["total"] == total
    assert body["meta"]["pages"] == -(-total // 2)
    assert 'rel="next"' in first.headers["Link"]
    second = client.get("/api/v1/audit-events?per_page=2&page=2", headers=admin_headers).get_json()
    assert body["items"][-1]["seq"] > second["items"][0]["seq"]
    assert_problem(client.get("/api/v1/audit-events?per_page=0", headers=admin_headers), 400)


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_readers_verify_the_chain(client, trail, make_user, bearer, role):
    headers = bearer(make_user(role))
    stored = all_events()
    response = client.get("/api/v1/audit-events/verify", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True
    assert body["count"] == len(stored)
    assert body["head"] == stored[-1].hash
    assert body["problem"] == ""
    assert body["bad_seq"] is None


def test_verify_does_not_write_to_the_trail(client, trail, admin_headers):
    before = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    client.get("/api/v1/audit-events/verify", headers=admin_headers)
    client.get("/api/v1/audit-events", headers=admin_headers)
    assert db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == before


@pytest.mark.parametrize("role", ["staff", "municipality"])
def test_other_roles_are_refused(client, trail, make_user, bearer, role):
    headers = bearer(make_user(role))
    assert_problem(client.get("/api/v1/audit-events", headers=headers), 403)
    assert_problem(client.get("/api/v1/audit-events/verify", headers=headers), 403)


@pytest.mark.parametrize("role", ["staff", "municipality"])
def test_other_roles_are_refused_through_the_session(client, login_as, role):
    login_as(role)
    assert_problem(client.get("/api/v1/audit-events"), 403)
    assert_problem(client.get("/api/v1/audit-events/verify"), 403)


def test_anonymous_is_401(client, trail):
    assert_problem(client.get("/api/v1/audit-events"), 401)
    assert_problem(client.get("/api/v1/audit-events/verify"), 401)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_trail_cannot_be_written_through_the_api(client, trail, admin_headers, method):
    before = [(e.seq, e.hash) for e in all_events()]
    send = getattr(client, method)
    response = send("/api/v1/audit-events", json={"action": "forged"}, headers=admin_headers)
    assert_problem(response, 405)
    assert [(e.seq, e.hash) for e in all_events()] == before
