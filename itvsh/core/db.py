"""Database engine set-up shared by all domains: SQLite pragmas and writer serialisation, UTC times.

SQLite allows one writer at a time, and a transaction that first reads and later writes can fail
with "database is locked" when another writer got in between. So on SQLite a transaction that may
write starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front and waits for it), which
makes the embedded database serialise writers the way ``SELECT ... FOR UPDATE`` does on PostgreSQL.

Reads must not queue behind that lock: a GET or HEAD request (and read-only work such as reports,
through :func:`read_only_work`) starts ``BEGIN DEFERRED``, so readers run side by side with each
other and with the one writer (WAL). Such a unit of work that must write after all (an export is
audited) calls :func:`begin_write` first; a flush in a read-only unit of work without it is a
programming error and raises at once, on every database, so tests find it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How the next SQLite transaction of this unit of work begins: IMMEDIATE (may write) or DEFERRED.
_begin_mode: ContextVar[str] = ContextVar("itvsh_sqlite_begin", default="IMMEDIATE")


class ReadOnlyWorkError(RuntimeError):
    """A read-only unit of work tried to write without :func:`begin_write`."""


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
        mode = conn.get_execution_options().get("sqlite_begin") or _begin_mode.get()
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"sqlite_begin must be IMMEDIATE or DEFERRED, not {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def begin_write(session: Session) -> None:
    """Turn the current read-only unit of work into a writer: end its read transaction (nothing
    was written in it) so that the next one starts ``BEGIN IMMEDIATE`` and waits for the write
    lock. Does nothing in a unit of work that may already write."""
    if _begin_mode.get() == "IMMEDIATE":
        return
    session.commit()  # ends the read transaction, if any (nothing was written in it)
    _begin_mode.set("IMMEDIATE")


@contextmanager
def read_only_work() -> Iterator[None]:
    """Run a block as read-only work: its SQLite transactions start DEFERRED (see module doc)."""
    token = _begin_mode.set("DEFERRED")
    try:
        yield
    finally:
        _begin_mode.reset(token)


@contextmanager
def write_step(session: Session) -> Iterator[None]:
    """Inside read-only work, make one short write (a job's progress, its end) and commit it: the
    read transaction ends first and the write starts ``BEGIN IMMEDIATE`` on SQLite, so it waits for
    the lock instead of failing to upgrade a stale read. Rolled back if the block raises."""
    session.commit()
    token = _begin_mode.set("IMMEDIATE")
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _begin_mode.reset(token)


@event.listens_for(Session, "before_flush")
def _refuse_write_in_read_only_work(session: Session, _flush_context, _instances) -> None:
    if _begin_mode.get() == "DEFERRED" and (session.new or session.dirty or session.deleted):
        raise ReadOnlyWorkError(
            "a read-only unit of work (GET request, report) writes: call begin_write(session) first"
        )


def register_transaction_modes(app: Flask) -> None:
    """Safe-method requests are read-only work (see module doc); registered before any hook that
    touches the database."""

    def _start():
        if request.method in _SAFE_METHODS:
            request.environ["itvsh.begin_token"] = _begin_mode.set("DEFERRED")

    def _end(_exc):
        token = request.environ.pop("itvsh.begin_token", None)
        if token is not None:
            _begin_mode.reset(token)

    app.before_request(_start)
    app.teardown_request(_end)
