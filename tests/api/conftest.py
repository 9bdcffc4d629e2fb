"""Fixtures for the API tests: Bearer tokens for test users. (Each request gets a fresh ``g``
from the shared ``app`` fixture, so a token's user never leaks into the next request.)"""

from __future__ import annotations

import pytest

from itvsh.auth import services
from itvsh.extensions import db


@pytest.fixture
def bearer(app):
    """``bearer(user)``: headers carrying a freshly issued (and committed) API token of ``user``."""

    def headers(user) -> dict[str, str]:
        token = services.issue_token(db.session, "test", user)
        db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def admin(make_user):
    return make_user("admin")


@pytest.fixture
def admin_headers(admin, bearer):
    return bearer(admin)
