"""Fixtures: a migrated test database (SQLite by default, PostgreSQL with ITVSH_TEST_DATABASE_URL),
an ``app`` per test whose session is rolled back afterwards, ``client``, ``login_as`` and helpers
for tests that need real services (PostgreSQL, Redis, chromium): they skip with a reason, or fail
when ``ITVSH_REQUIRE_ALL=1`` (CI)."""

from __future__ import annotations

import os
import re
import tempfile
import uuid

import pytest
from flask import g, request_started
from flask_migrate import upgrade
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from itvsh import create_app
from itvsh.extensions import db

REQUIRE_ALL = os.environ.get("ITVSH_REQUIRE_ALL") == "1"
TEST_DATABASE_URL = os.environ.get("ITVSH_TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("ITVSH_TEST_REDIS_URL") or None
REPORTS_DIR = tempfile.mkdtemp(prefix="itvsh-test-reports-")


def require(condition: bool, reason: str) -> None:
    """Skip (fresh machine) or fail (CI, ITVSH_REQUIRE_ALL=1) when a needed service is missing."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"ITVSH_REQUIRE_ALL=1 but {reason}")
    pytest.skip(reason)


def test_config(database_url: str, **extra) -> dict:
    config = {
        "ITVSH_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": database_url,
        # Cheap hashing keeps hundreds of logins fast; tests/auth proves the production parameters.
        "ITVSH_ARGON2_TIME_COST": 1,
        "ITVSH_ARGON2_MEMORY_KIB": 1024,
        "ITVSH_ARGON2_PARALLELISM": 1,
        "RATELIMIT_STORAGE_URI": "memory://",
        "ITVSH_REDIS_URL": None,
        "ITVSH_REPORTS_DIR": REPORTS_DIR,
    }
    config.update(extra)
    return config


def new_database(tmp_path_factory, label: str = "main") -> str:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database on the test server."""
    if TEST_DATABASE_URL is None:
        path = tmp_path_factory.mktemp("db") / f"{label}.db"
        return f"sqlite:///{path}"
    base = make_url(TEST_DATABASE_URL)
    name = f"{base.database or 'itvsh_test'}_{label}_{uuid.uuid4().hex[:8]}"
    assert re.fullmatch(r"\w+", name)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def migrated_database(tmp_path_factory, label: str = "main") -> str:
    """A new database brought to the head migration (never create_all: triggers live in migrations)."""
    url = new_database(tmp_path_factory, label)
    app = create_app(test_config(url))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = migrated_database(tmp_path_factory)
    yield url
    drop_database(url)


@pytest.fixture
def app(database_url, tmp_path):
    """An app whose database work is rolled back after the test (commits become savepoints), with
    its own reports folder (SQLite reuses the ids of rolled-back rows)."""
    app = create_app(test_config(database_url, ITVSH_REPORTS_DIR=str(tmp_path / "reports")))
    # The test keeps one app context open, which Flask reuses for every request: give each request
    # an empty ``g`` (as a real server does), or the logged-in user and locale leak between requests.
    request_started.connect(_fresh_g, app, weak=False)
    with app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        original = db.session
        # Flask-SQLAlchemy's own Session picks the engine itself and would ignore ``bind``.
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint"), scopefunc=_app_ctx_id
        )
        try:
            yield app
        finally:
            db.session.remove()
            db.session = original
            transaction.rollback()
            connection.close()
            db.engine.dispose()
            request_started.disconnect(_fresh_g, app)


def _fresh_g(sender, **extra):
    for name in list(vars(g)):
        delattr(g, name)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create an account through the service (as the real code paths do)."""
    from itvsh.auth import services
    from itvsh.demo import ensure_municipality

    counter = iter(range(1, 10_000))

    def make(
        role: str = "staff",
        tenant: str | None = None,
        email: str | None = None,
        password: str = "correct horse battery",
        **kwargs,
    ):
        if role == "municipality" and tenant is None:
            tenant = "01002000"
        if tenant is not None:
            ensure_municipality(db.session, tenant)
        email = email or f"{role}{next(counter)}-{uuid.uuid4().hex[:6]}@test.example"
        user = services.create_user(
            db.session, "test", email=email, role=role, password=password, tenant_key=tenant, **kwargs
        )
        db.session.commit()
        return user

    return make


@pytest.fixture
def login_as(client, make_user):
    """Log the test client in as a new user of ``role`` (bound to ``tenant`` for municipalities)."""

    def login(role: str = "staff", tenant: str | None = None, **kwargs):
        user = make_user(role, tenant, **kwargs)
        with client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True
        return user

    return login


_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, url: str = "/login") -> str:
    """The CSRF token a real browser would send, read from a form on ``url``."""
    html = client.get(url).get_data(as_text=True)
    match = _CSRF_RE.search(html)
    assert match, f"no csrf_token on {url}"
    return match.group(1)


@pytest.fixture
def csrf(client):
    return lambda url="/login": csrf_token(client, url)
