"""Models and migrations agree: one Alembic head, autogenerate finds nothing to do on the session
database (SQLite or PostgreSQL), and the migrations go down to nothing and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from itvsh import create_app
from itvsh.core.audit import GENESIS_HASH
from itvsh.extensions import db
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for

EXPECTED_TRIGGERS = {
    "sqlite": {"audit_events_no_update", "audit_events_no_delete"},
    "postgresql": {"audit_events_append_only", "audit_events_no_truncate"},
}
TABLES = {
    "alembic_version",
    "audit_chain_head",
    "audit_events",
    "api_tokens",
    "memberships",
    "municipalities",
    "municipality_contacts",
    "users",
    "fiscal_years",
    "budget_categories",
    "distributions",
    "allocations",
    "bookings",
    "idempotency_keys",
    "settings",
    "staff_members",
    "secondments",
    "assignments",
    "staff_costs",
    "projects",
    "participations",
    "milestones",
    "project_services",
    "ozg_services",
    "ozg_statuses",
    "ozg_status_changes",
    "reports",
    "ozg_tallies",
    "ozg_snapshots",
}


def _script_directory(app) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", app.extensions["migrate"].directory)
    return ScriptDirectory.from_config(config)


def test_one_head(app):
    heads = _script_directory(app).get_heads()
    assert len(heads) == 1, f"several Alembic heads: {heads}; merge them"


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, db.metadata)


def test_models_match_migrations(app):
    connection = db.session.connection()
    assert _differences(connection) == []
    head = _script_directory(app).get_current_head()
    assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head


def _triggers(connection) -> set[str]:
    if connection.dialect.name == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
    return set(connection.execute(text(sql)).scalars())


def test_downgrade_to_base_and_upgrade_again(tmp_path_factory):
    url = migrated_database(tmp_path_factory, "updown")
    app = create_app(config_for(url))
    try:
        with app.app_context():
            downgrade(revision="base")
            with db.engine.connect() as connection:
                assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
                if connection.dialect.name == "postgresql":
                    functions = connection.execute(
                        text("SELECT count(*) FROM pg_proc WHERE proname = 'itvsh_refuse_change'")
                    ).scalar_one()
                    assert functions == 0
            upgrade()
            with db.engine.connect() as connection:
                assert set(inspect(connection).get_table_names()) == TABLES
                assert _differences(connection) == []
                assert _triggers(connection) == EXPECTED_TRIGGERS[connection.dialect.name]
                head = connection.execute(text("SELECT id, last_seq, last_hash FROM audit_chain_head")).all()
                assert [tuple(row) for row in head] == [(1, 0, GENESIS_HASH)]
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)
