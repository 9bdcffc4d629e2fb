"""Database engine set-up shared by all domains: SQLite pragmas and writer serialisation, UTC times.

SQLite allows one writer at a time, and a transaction that first reads and later writes can fail
with "database is locked" when another writer got in between. So on SQLite every transaction
starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front and waits for it), which makes the
embedded database serialise writers the way ``SELECT ... FOR UPDATE`` does on PostgreSQL. Long
read-only work (reports) may opt out with the execution option ``sqlite_begin="DEFERRED"``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.engine import Engine


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware (a callable, for column defaults)."""
    return datetime.now(UTC)


def configure_engine(engine: Engine) -> None:
    """Attach the SQLite pragmas and explicit transaction handling; nothing to do on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy (below) emit BEGIN itself instead of pysqlite's implicit, late BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"sqlite_begin must be IMMEDIATE or DEFERRED, not {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")
