"""Browser fixtures: Debian's chromium driven by pytest-playwright (one browser per session, a new
context per test) against a live server over its own committed database."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from itvsh import create_app
from itvsh.extensions import db
from tests.browser.helpers import PASSWORD
from tests.conftest import drop_database, migrated_database, require, test_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium (``playwright install`` downloads a browser; this machine must not)."""
    require(os.access(CHROMIUM, os.X_OK), "chromium is not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server):
    """Relative ``page.goto`` paths go to the live server. (This also replaces pytest-playwright's own
    fallback ``base_url`` fixture, an instance-method session fixture that pytest 9 deprecates.)"""
    return live_server.url


@dataclass
class LiveServer:
    """The served app, and set-up helpers that commit (and release the database) before returning."""

    url: str
    app: Flask
    _counter: list = field(default_factory=lambda: [0])

    def make_user(self, role: str, tenant: str | None = None) -> str:
        """A new account of ``role`` (created through the service, as the real code paths do); its email."""
        from itvsh.auth import services
        from itvsh.demo import ensure_municipality

        if role == "municipality" and tenant is None:
            tenant = "01002000"
        self._counter[0] += 1
        email = f"{role}{self._counter[0]}-{uuid.uuid4().hex[:6]}@browser.example"
        with self.app.app_context():
            if tenant is not None:
                ensure_municipality(db.session, tenant)
            services.create_user(
                db.session, "test", email=email, role=role, password=PASSWORD, tenant_key=tenant
            )
            db.session.commit()
            db.session.remove()
        return email

    def german(self, msgid: str) -> str:
        """The German text the app shows for ``msgid``; fails when the catalogue has no translation."""
        from flask_babel import force_locale, gettext

        with self.app.test_request_context(), force_locale("de"):
            text = gettext(msgid)
        assert text != msgid, f"no German translation of {msgid!r}"
        return text

    def issue_token(self, email: str) -> tuple[int, str]:
        """Issue an API token for ``email``; returns the token's id and its visible prefix."""
        from itvsh.auth import services
        from itvsh.auth.models import ApiToken

        with self.app.app_context():
            user = services.get_user(db.session, email)
            token = services.issue_token(db.session, "test", user)
            record = db.session.execute(
                select(ApiToken).where(ApiToken.token_hash == ApiToken.digest(token))
            ).scalar_one()
            result = record.id, record.prefix
            db.session.commit()
            db.session.remove()
        return result

    def token_revoked(self, token_id: int) -> bool:
        from itvsh.auth.models import ApiToken

        with self.app.app_context():
            revoked = db.session.get(ApiToken, token_id).revoked_at is not None
            db.session.commit()
            db.session.remove()
        return revoked

    def user_state(self, email: str) -> tuple[bool, str | None]:
        """``(active, locale)`` of the account, read fresh from the database."""
        from itvsh.auth import services

        with self.app.app_context():
            user = services.get_user(db.session, email)
            state = user.active, user.locale
            db.session.commit()
            db.session.remove()
        return state


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    url = migrated_database(tmp_path_factory, "browser")
    app = create_app(test_config(url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        with app.app_context():
            db.engine.dispose()
        drop_database(url)


@pytest.fixture
def console(page):
    """Console messages and uncaught errors of ``page``, as ``"type: text"`` strings."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    return messages
