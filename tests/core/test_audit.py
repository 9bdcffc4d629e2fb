"""The audit trail: events are numbered and hash-chained when the unit of work commits, rolled-back
work leaves no events, the database refuses UPDATE and DELETE, ``itvsh audit verify`` names the
first altered, removed or inserted event, and parallel writers never fork the chain."""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask.cli import ScriptInfo
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import JSON, DateTime, bindparam, func, select, text
from sqlalchemy import event as orm_event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import scoped_session, sessionmaker

from itvsh import create_app
from itvsh.auth import services
from itvsh.cli import main as itvsh_main
from itvsh.core import audit
from itvsh.core.audit import GENESIS_HASH, AuditChainHead, AuditEvent, verify_chain
from itvsh.extensions import db
from tests.conftest import TEST_DATABASE_URL, drop_database, migrated_database
from tests.conftest import test_config as config_for

PASSWORD = "correct horse battery"


def _events(session) -> list[AuditEvent]:
    return list(session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())


def _head(session) -> AuditChainHead:
    return session.execute(select(AuditChainHead).where(AuditChainHead.id == 1)).scalar_one()


def _drop_triggers(session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
    else:
        session.execute(text("DROP TRIGGER audit_events_no_update"))
        session.execute(text("DROP TRIGGER audit_events_no_delete"))


# --- chaining in the rolled-back session database -------------------------------------------------


def test_events_are_chained_at_commit(app):
    start = _head(db.session).last_seq
    users = []
    for n in range(3):
        users.append(
            services.create_user(
                db.session, "test", email=f"chain{n}@test.example", role="staff", password=PASSWORD
            )
        )
        # recorded, but nothing is written before the commit (a flush alone writes no event)
        db.session.flush()
        assert len(_events(db.session)) == start + n
        db.session.commit()
    audit.record(db.session, "test", "export", "user", after={"format": "csv", "note": "Grüße €"})
    audit.record(db.session, "test", "export", "user", after={"format": "xlsx"})
    db.session.commit()

    events = _events(db.session)[start:]
    assert [e.seq for e in events] == list(range(start + 1, start + 6))
    assert [e.action for e in events] == ["create", "create", "create", "export", "export"]
    # the entity id of a new object is read at commit, once it has one
    assert [e.entity_id for e in events[:3]] == [str(u.id) for u in users]
    assert events[0].after["email"] == "chain0@test.example"
    assert events[3].after == {"format": "csv", "note": "Grüße €"}

    previous = _events(db.session)[start - 1].hash if start else GENESIS_HASH
    for event in events:
        assert event.prev_hash == previous
        expected = hashlib.sha256(f"{event.prev_hash}\n{event.payload}".encode()).hexdigest()
        assert event.hash == expected
        # the payload is canonical JSON (sorted keys, no whitespace) of exactly the stored fields
        data = json.loads(event.payload)
        assert event.payload == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert data["seq"] == event.seq
        assert data["actor"] == event.actor == "test"
        assert data["action"] == event.action
        assert data["entity"] == event.entity == "user"
        assert data["entity_id"] == event.entity_id
        assert data["before"] == event.before
        assert data["after"] == event.after
        assert data["address"] == event.address == ""
        assert data["occurred_at"].endswith("+00:00")
        previous = event.hash

    head = _head(db.session)
    assert (head.last_seq, head.last_hash) == (events[-1].seq, events[-1].hash)
    result = verify_chain(db.session)
    assert result.ok, result.problem
    assert (result.count, result.head, result.bad_seq) == (start + 5, events[-1].hash, None)


def test_rollback_drops_pending_events(app):
    start = _head(db.session).last_seq
    audit.record(db.session, "test", "discarded", "thing", 1)
    db.session.rollback()
    audit.record(db.session, "test", "kept", "thing", 2)
    db.session.commit()
    events = _events(db.session)[start:]
    assert [(e.seq, e.action, e.entity_id) for e in events] == [(start + 1, "kept", "2")]


def test_failed_service_call_writes_nothing(app):
    start = _head(db.session).last_seq
    services.create_user(db.session, "test", email="twice@test.example", role="staff", password=PASSWORD)
    db.session.commit()
    from itvsh.core.rules import RuleViolation

    with pytest.raises(RuleViolation):
        services.create_user(db.session, "test", email="TWICE@test.example", role="staff", password=PASSWORD)
    db.session.rollback()
    db.session.commit()
    assert [e.action for e in _events(db.session)[start:]] == ["create"]
    assert verify_chain(db.session).ok


def test_verify_command_on_intact_chain(app, runner):
    services.create_user(db.session, "test", email="verify@test.example", role="staff", password=PASSWORD)
    db.session.commit()
    head = _head(db.session)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert f"{head.last_seq} events" in result.stdout
    assert head.last_hash in result.stdout
    assert "intact" in result.stdout


def _trigger_names(session) -> set[str]:
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
            )
        )
    else:
        rows = session.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'")
        )
    return set(rows.scalars())


def test_append_only_triggers_exist(app):
    if db.session.get_bind().dialect.name == "postgresql":
        assert _trigger_names(db.session) == {"audit_events_append_only", "audit_events_no_truncate"}
    else:
        assert _trigger_names(db.session) == {"audit_events_no_update", "audit_events_no_delete"}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'forged'",
        "UPDATE audit_events SET after = NULL",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
def test_database_refuses_changes_to_events(app, statement):
    if statement.startswith("TRUNCATE") and db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    audit.record(db.session, "test", "ping", "thing", 1, after={"n": 1})
    db.session.commit()
    before = [(e.seq, e.hash) for e in _events(db.session)]
    assert before
    savepoint = db.session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement))
    savepoint.rollback()
    db.session.expire_all()
    assert [(e.seq, e.hash) for e in _events(db.session)] == before


# --- tampering with a committed trail ----------------------------------------------------------------

N_EVENTS = 5


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    """A committed database holding a trail of N_EVENTS events written by the services."""
    url = migrated_database(tmp_path_factory, "audit")
    app = create_app(config_for(url))
    with app.app_context():
        for n in range(N_EVENTS - 1):
            services.create_user(
                db.session, "test", email=f"user{n}@audit.example", role="staff", password=PASSWORD
            )
            db.session.commit()
        audit.record(db.session, "test", "export", "user", after={"format": "csv", "note": "Grüße"})
        db.session.commit()
        assert [e.seq for e in _events(db.session)] == list(range(1, N_EVENTS + 1))
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(url)


@contextmanager
def tampered(app):
    """An app context whose ``db.session`` runs in one transaction that is rolled back afterwards,
    so each test tampers with the committed trail without harming the next; the append-only
    triggers are dropped inside it (an attacker with database access would do so)."""
    with app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        original = db.session
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint"), scopefunc=_app_ctx_id
        )
        try:
            assert verify_chain(db.session).ok  # the precondition: an intact trail
            _drop_triggers(db.session)
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            transaction.rollback()
            connection.close()


def _verify_cli(app):
    """Run ``itvsh audit verify`` (the console script's group) against ``app``."""
    return app.test_cli_runner().invoke(
        itvsh_main, ["audit", "verify"], obj=ScriptInfo(create_app=lambda: app)
    )


def test_verify_cli_on_committed_trail(trail):
    result = _verify_cli(trail)
    assert result.exit_code == 0, result.output
    with trail.app_context():
        head = _head(db.session)
        assert head.last_seq == N_EVENTS
        assert f"{N_EVENTS} events" in result.stdout
        assert head.last_hash in result.stdout
        assert head.last_hash == _events(db.session)[-1].hash


def _assert_broken(app, seq: int, *words: str) -> str:
    db.session.expire_all()  # as a fresh process would, read what the raw SQL left
    result = _verify_cli(app)
    assert result.exit_code == 1, result.output
    assert f"#{seq}" in result.stderr
    for word in words:
        assert word in result.stderr
    outcome = verify_chain(db.session)
    assert not outcome.ok
    assert outcome.bad_seq == seq, outcome.problem
    return result.stderr


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "login"),
        ("actor", "someone-else"),
        ("entity_id", "999"),
        ("address", "203.0.113.9"),
        ("after", {"email": "forged@audit.example", "role": "admin"}),
        ("before", {"role": "staff"}),
    ],
)
def test_altered_field_is_detected(trail, column, value):
    with tampered(trail) as session:
        param = bindparam("v", value, type_=JSON) if isinstance(value, dict) else bindparam("v", value)
        session.execute(text(f"UPDATE audit_events SET {column} = :v WHERE seq = 2").bindparams(param))
        stderr = _assert_broken(trail, 2, "altered")
        assert "#1 " not in stderr and "#3" not in stderr


def test_altered_time_is_detected(trail):
    with tampered(trail) as session:
        second = _events(session)[1]
        session.execute(
            text("UPDATE audit_events SET occurred_at = :t WHERE seq = 2").bindparams(
                bindparam("t", second.occurred_at - timedelta(days=1), type_=DateTime(timezone=True))
            )
        )
        session.expire_all()
        _assert_broken(trail, 2, "altered")


def test_altered_payload_or_hash_is_detected(trail):
    with tampered(trail) as session:
        session.execute(
            text("UPDATE audit_events SET payload = replace(payload, 'user0', 'userX') WHERE seq = 1")
        )
        _assert_broken(trail, 1, "altered")
    with tampered(trail) as session:
        session.execute(text("UPDATE audit_events SET hash = :h WHERE seq = 3").bindparams(h="f" * 64))
        _assert_broken(trail, 3, "altered")


def test_deleted_event_is_named_missing(trail):
    with tampered(trail) as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        _assert_broken(trail, 2, "missing")


def test_renumbered_chain_is_detected(trail):
    """Deleting #2 and closing the gap by renumbering breaks the link of the moved event."""
    with tampered(trail) as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        for seq in range(3, N_EVENTS + 1):
            session.execute(
                text("UPDATE audit_events SET seq = :n WHERE seq = :o").bindparams(n=seq - 1, o=seq)
            )
        _assert_broken(trail, 2)


def test_deleted_last_event_is_detected_by_the_head(trail):
    with tampered(trail) as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = :n").bindparams(n=N_EVENTS))
        stderr = _assert_broken(trail, N_EVENTS, "head")
        assert f"{N_EVENTS - 1} events verified" in stderr


def _insert_event(session, *, seq, payload, prev_hash, digest, action="create") -> None:
    session.execute(
        text(
            "INSERT INTO audit_events (seq, occurred_at, actor_id, actor, action, entity, entity_id, "
            "before, after, address, payload, prev_hash, hash) VALUES (:seq, :at, NULL, 'test', :action, "
            "'user', '1', NULL, NULL, '', :payload, :prev, :hash)"
        ).bindparams(
            bindparam("at", type_=DateTime(timezone=True)),
            seq=seq,
            action=action,
            payload=payload,
            prev=prev_hash,
            hash=digest,
        ),
        {"at": _events(session)[0].occurred_at},
    )


def _well_forged(session, seq: int, prev_hash: str) -> tuple[str, str]:
    """The payload and hash a forger who read audit.py would compute for an event."""
    payload = audit.canonical_payload(
        seq=seq,
        occurred_at=_events(session)[0].occurred_at,
        actor_id=None,
        actor="test",
        action="create",
        entity="user",
        entity_id="1",
        before=None,
        after=None,
        address="",
    )
    return payload, audit.chain_hash(prev_hash, payload)


def test_naively_forged_event_is_detected(trail):
    with tampered(trail) as session:
        last = _events(session)[-1]
        _insert_event(
            session, seq=N_EVENTS + 1, payload=last.payload, prev_hash=last.prev_hash, digest="e" * 64
        )
        _assert_broken(trail, N_EVENTS + 1)


def test_well_forged_appended_event_is_detected_by_the_head(trail):
    with tampered(trail) as session:
        last = _events(session)[-1]
        payload, digest = _well_forged(session, N_EVENTS + 1, last.hash)
        _insert_event(session, seq=N_EVENTS + 1, payload=payload, prev_hash=last.hash, digest=digest)
        _assert_broken(trail, N_EVENTS + 1, "head")


def test_replaced_last_event_is_detected_by_the_head(trail):
    with tampered(trail) as session:
        last = _events(session)[-1]
        session.execute(text("DELETE FROM audit_events WHERE seq = :n").bindparams(n=N_EVENTS))
        payload, digest = _well_forged(session, N_EVENTS, last.prev_hash)
        _insert_event(session, seq=N_EVENTS, payload=payload, prev_hash=last.prev_hash, digest=digest)
        _assert_broken(trail, N_EVENTS, "head")


def test_recomputed_hash_breaks_the_next_link(trail):
    """Altering #2 and recomputing its payload and hash makes #2 consistent, but #3 no longer links."""
    with tampered(trail) as session:
        second = _events(session)[1]
        data = json.loads(second.payload)
        data["after"] = {**data["after"], "role": "admin"}
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = audit.chain_hash(second.prev_hash, payload)
        session.execute(
            text(
                "UPDATE audit_events SET after = :after, payload = :payload, hash = :hash WHERE seq = 2"
            ).bindparams(bindparam("after", data["after"], type_=JSON), payload=payload, hash=digest)
        )
        session.expire_all()
        assert verify_chain(db.session).bad_seq == 3
        _assert_broken(trail, 3, "link")


def test_tampering_tests_left_the_trail_intact(trail):
    with trail.app_context():
        result = verify_chain(db.session)
        assert result.ok, result.problem
        assert result.count == N_EVENTS
        db.session.remove()


# --- parallel writers --------------------------------------------------------------------------------

WRITERS, EVENTS_EACH = 4, 15


def test_parallel_writers_never_fork_the_chain(tmp_path_factory):
    url = migrated_database(tmp_path_factory, "parallel")
    app = create_app(config_for(url))
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with app.app_context():
                start.wait(timeout=60)
                for i in range(EVENTS_EACH):
                    audit.record(db.session, "test", "ping", f"writer-{n}", i)
                    db.session.commit()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a writer hangs"
        assert errors == []
        with app.app_context():
            events = _events(db.session)
            total = WRITERS * EVENTS_EACH
            assert [e.seq for e in events] == list(range(1, total + 1))
            for n in range(WRITERS):
                mine = [int(e.entity_id) for e in events if e.entity == f"writer-{n}"]
                assert mine == list(range(EVENTS_EACH))  # each writer's events in its commit order
            assert (
                db.session.execute(select(func.count(func.distinct(AuditEvent.hash)))).scalar_one() == total
            )
            result = verify_chain(db.session)
            assert result.ok, result.problem
            assert result.count == total
            assert _head(db.session).last_seq == total
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)


@pytest.mark.parametrize("moment", ["before_walk", "after_walk"])
def test_verify_during_concurrent_appends_is_no_false_alarm(tmp_path_factory, moment):
    """A writer committing while ``verify`` walks the chain (READ COMMITTED on PostgreSQL) must not
    look like tampering: neither as an event beyond the head nor as events removed from its end."""
    if TEST_DATABASE_URL is None:
        pytest.skip("on SQLite verify holds the write lock (BEGIN IMMEDIATE): no writer gets between")
    url = migrated_database(tmp_path_factory, "race")
    app = create_app(config_for(url))
    try:
        with app.app_context():
            for i in range(3):
                audit.record(db.session, "test", "ping", "early", i)
                db.session.commit()
            db.session.remove()

        def append_one() -> None:
            with app.app_context():
                audit.record(db.session, "test", "ping", "late", 1)
                db.session.commit()

        walked, appended = [], []

        def interleave(state) -> None:
            mappers = state.all_mappers
            if AuditEvent.__mapper__ in mappers:
                walked.append(True)
            moment_reached = (
                AuditEvent.__mapper__ in mappers
                if moment == "before_walk"
                else (walked and AuditChainHead.__mapper__ in mappers)
            )
            if moment_reached and not appended:
                writer = threading.Thread(target=append_one)
                writer.start()
                writer.join(timeout=60)
                appended.append(not writer.is_alive())

        with app.app_context():
            orm_event.listen(db.session(), "do_orm_execute", interleave)
            result = verify_chain(db.session)
            assert appended == [True]
            assert result.ok, result.problem
            assert result.count == (4 if moment == "before_walk" else 3)
            db.session.remove()
        with app.app_context():
            assert verify_chain(db.session).count == 4
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)
