"""The user list costs the same number of SQL statements for 5 users as for 50: no query per row
(for example a lazy load of each user's municipality). Counted, not timed."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import lazyload

from itvsh.auth.models import User
from itvsh.extensions import db

# Savepoints come from the test fixture (commits become savepoints), not from the endpoint.
_DATA_STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
TENANTS = ["01001000", "01002000", "01003000", "01004000", "01051001", "01051002"]


@contextmanager
def recorded_statements():
    """Statements sent to the database meanwhile. The ``app`` fixture binds the session to a
    connection of ``db.engine``; engine listeners also see that connection's statements."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if _DATA_STATEMENT.match(statement):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def fill_users(make_user, total: int, already: int) -> None:
    """Bring the number of users to ``total``: every role, municipality users across several tenants."""
    roles = ["staff", "auditor", "municipality", "admin"]
    for n in range(already, total):
        role = roles[n % len(roles)]
        make_user(role, TENANTS[(n // len(roles)) % len(TENANTS)] if role == "municipality" else None)


def list_statements(client, headers: dict) -> tuple[list[str], dict]:
    db.session.expunge_all()  # a cold session, as a new request in production has
    with recorded_statements() as statements:
        response = client.get("/api/v1/users", headers=headers)
    assert response.status_code == 200
    return statements, response.get_json()


@pytest.mark.parametrize("auth", ["bearer", "session"])
def test_user_list_query_count_does_not_grow_with_users(client, make_user, bearer, login_as, auth):
    if auth == "bearer":
        headers = bearer(make_user("admin"))
    else:
        login_as("admin")
        headers = {}
    fill_users(make_user, 5, already=1)
    small, body = list_statements(client, headers)
    assert body["meta"]["total"] == 5
    assert len({item["tenant"] for item in body["items"] if item["role"] == "municipality"}) >= 1

    fill_users(make_user, 50, already=5)
    large, body = list_statements(client, headers)
    assert body["meta"]["total"] == 50
    assert len(body["items"]) == 50
    assert len({item["tenant"] for item in body["items"] if item["role"] == "municipality"}) == len(TENANTS)

    assert small  # the listener does see the endpoint's statements
    assert len(large) == len(small), (small, large)


def test_the_counter_sees_a_query_per_row_when_there_is_one(make_user):
    """Proves the measurement can fail: a lazy load of each user's municipality shows up in the count."""
    for tenant in TENANTS[:3]:
        make_user("municipality", tenant)
    db.session.expunge_all()
    with recorded_statements() as statements:
        users = db.session.execute(select(User).options(lazyload(User.municipality))).scalars().all()
        keys = {u.municipality.key for u in users}
    assert keys == set(TENANTS[:3])
    assert len(statements) == 1 + 3
