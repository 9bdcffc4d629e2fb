"""Reads do not queue behind the writer on SQLite; a read-only unit of work that writes must say so."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from itvsh import create_app
from itvsh.auth import services
from itvsh.auth.models import User
from itvsh.core.db import ReadOnlyWorkError, begin_write, read_only_work
from itvsh.extensions import db
from tests.conftest import TEST_DATABASE_URL, drop_database, migrated_database
from tests.conftest import test_config as config_for

PASSWORD = "a long enough test password"


@pytest.fixture
def committed_app(tmp_path_factory):
    """An app on its own migrated database (committed, not rolled back), with one staff user."""
    url = migrated_database(tmp_path_factory, "modes")
    app = create_app(config_for(url))
    with app.app_context():
        services.create_user(db.session, "test", email="staff@modes.example", role="staff", password=PASSWORD)
        db.session.commit()
    yield app, url
    with app.app_context():
        db.engine.dispose()
    drop_database(url)


@pytest.fixture
def sqlite_app(committed_app):
    if TEST_DATABASE_URL:
        pytest.skip("SQLite's transaction modes; the PostgreSQL run covers FOR UPDATE elsewhere")
    app, url = committed_app
    return app, url.removeprefix("sqlite:///")


def _login(app, client):
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        session_id = user.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True


def test_get_pages_answer_while_another_connection_holds_the_write_lock(sqlite_app):
    app, path = sqlite_app
    client = app.test_client()
    _login(app, client)
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    writer.execute("BEGIN IMMEDIATE")  # a long writer elsewhere
    try:
        # were every request to BEGIN IMMEDIATE, this would wait out the busy timeout and fail
        response = client.get("/admin/municipalities/")
        assert response.status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_write_in_read_only_work_is_refused_until_begin_write(committed_app):
    """On every database, so the suite finds a GET view that writes without begin_write()."""
    app, _url = committed_app
    with app.app_context(), read_only_work():
        user = db.session.execute(select(User)).scalar_one()
        user.locale = "en"
        with pytest.raises(ReadOnlyWorkError):
            db.session.flush()
        db.session.rollback()
        begin_write(db.session)
        user = db.session.execute(select(User)).scalar_one()
        user.locale = "en"
        db.session.commit()
    with app.app_context():
        assert db.session.execute(select(User.locale)).scalar_one() == "en"
