"""Concurrent assignments of one person on PostgreSQL: each writer in its own thread, app context,
session and connection, released together by a barrier, on a committed database. The row lock on
the staff member (``services.lock_staff_member``) serialises them, so assignments that together
exceed the person's share never both get in: exactly as many succeed as fit, each refusal is a
clean RuleViolation naming the first over-planned day, and the audit trail holds one event per
accepted assignment.

On SQLite a unit of work takes the database's write lock when it begins (BEGIN IMMEDIATE), so
writers never run side by side there; these tests run on PostgreSQL (ITVSH_TEST_DATABASE_URL)."""

from __future__ import annotations

import re
import threading
from datetime import date, timedelta
from importlib import resources

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from itvsh import create_app
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import Assignment, StaffMember
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import LOCAL_KINDS, Municipality
from tests.conftest import TEST_DATABASE_URL, drop_database, migrated_database
from tests.conftest import test_config as config_for

WRITERS = 8
ACTOR = "race-test"
START, END = date(2020, 3, 1), date(2020, 8, 31)


@pytest.fixture
def race(tmp_path_factory):
    """A committed PostgreSQL database with the shipped municipalities (WRITERS of them members) and
    one person seconded full time from 2019 on."""
    if TEST_DATABASE_URL is None:
        pytest.skip(
            "PostgreSQL only (set ITVSH_TEST_DATABASE_URL): on SQLite a unit of work takes the write "
            "lock when it begins (BEGIN IMMEDIATE), so no two writers ever run side by side"
        )
    url = migrated_database(tmp_path_factory, "staffing_race")
    app = create_app(config_for(url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": WRITERS + 2, "max_overflow": 0}))
    with app.app_context():
        set_scope(db.session, ALL)
        shipped = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()
        import_municipalities(db.session, ACTOR, shipped, source="test")
        gemeinden = (
            db.session.execute(
                select(Municipality)
                .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
                .order_by(Municipality.key)
                .limit(WRITERS)
            )
            .scalars()
            .all()
        )
        tenant_services.join_many(db.session, ACTOR, gemeinden, date(2019, 1, 1))
        person = services.create_staff_member(
            db.session, ACTOR, name="Rita Rennen", work_email="rita.rennen@itv-sh.example"
        )
        services.create_secondment(
            db.session,
            ACTOR,
            staff_member=person,
            instrument="abordnung",
            starts_on=date(2019, 1, 1),
            ends_on=None,
            fte=1000,
        )
        db.session.commit()
        ids = (person.id, [m.id for m in gemeinden])
        # open the writers' connections now, so that none has to be made after the barrier
        connections = [db.engine.connect() for _ in range(WRITERS)]
        for connection in connections:
            connection.close()
        db.session.remove()
    try:
        yield app, ids
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)


def _assign(person_id: int, municipality_id: int, fte: int, start: date = START, end: date = END) -> int:
    person = db.session.get(StaffMember, person_id)
    municipality = db.session.get(Municipality, municipality_id)
    return services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=municipality,
        starts_on=start,
        ends_on=end,
        fte=fte,
    ).id


def _run_together(app, work, arguments) -> dict:
    """Run ``work(argument)`` in one thread per argument, each in its own app context (so its own
    session and connection), all released at once; return {argument: assignment id | RuleViolation}."""
    start = threading.Barrier(len(arguments))
    outcomes: dict = {}
    errors: list[BaseException] = []

    def writer(argument) -> None:
        try:
            with app.app_context(), app.test_request_context("/"), force_locale("en"):
                start.wait(timeout=60)
                set_scope(db.session, ALL)
                try:
                    outcomes[argument] = work(argument)
                    db.session.commit()
                except RuleViolation as refusal:
                    db.session.rollback()  # as the views do
                    outcomes[argument] = refusal
                finally:
                    db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(argument,)) for argument in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a writer hangs"
    assert errors == [], errors
    assert set(outcomes) == set(arguments)
    return outcomes


def _stored(person_id: int) -> list[tuple[int, int]]:
    set_scope(db.session, ALL)
    return db.session.execute(
        select(Assignment.id, Assignment.fte)
        .where(Assignment.staff_member_id == person_id)
        .order_by(Assignment.id)
    ).all()


def _daily_maximum(person_id: int) -> int:
    """The largest sum of shares on any day (brute force over the stored rows)."""
    set_scope(db.session, ALL)
    rows = db.session.execute(
        select(Assignment.starts_on, Assignment.ends_on, Assignment.fte).where(
            Assignment.staff_member_id == person_id
        )
    ).all()
    best, on = 0, date(2019, 1, 1)
    while on <= date(2021, 12, 31):
        best = max(
            best, sum(r.fte for r in rows if r.starts_on <= on and (r.ends_on is None or on <= r.ends_on))
        )
        on += timedelta(days=1)
    return best


def _assert_audited(accepted: list[int]) -> None:
    audited = db.session.execute(
        select(AuditEvent.entity_id).where(AuditEvent.entity == "assignment", AuditEvent.action == "create")
    ).scalars()
    assert sorted(int(i) for i in audited) == sorted(accepted)
    result = verify_chain(db.session)
    assert result.ok, result.problem


def test_two_writers_that_together_exceed_the_share_one_gets_in(race):
    app, (person_id, municipality_ids) = race
    outcomes = _run_together(app, lambda n: _assign(person_id, municipality_ids[n], 600), [0, 1])
    accepted = [outcome for outcome in outcomes.values() if isinstance(outcome, int)]
    refused = [outcome for outcome in outcomes.values() if isinstance(outcome, RuleViolation)]
    assert len(accepted) == 1 and len(refused) == 1
    assert refused[0].field == "fte"
    assert (
        refused[0].message.startswith(f"On {START.isoformat()} ") and f"#{accepted[0]}" in refused[0].message
    )
    with app.app_context():
        assert _stored(person_id) == [(accepted[0], 600)]
        assert _daily_maximum(person_id) == 600
        _assert_audited(accepted)
        db.session.remove()


def test_many_writers_get_in_exactly_as_far_as_the_share_goes(race):
    app, (person_id, municipality_ids) = race
    outcomes = _run_together(
        app, lambda n: _assign(person_id, municipality_ids[n], 300), list(range(WRITERS))
    )
    accepted = [outcome for outcome in outcomes.values() if isinstance(outcome, int)]
    refused = [outcome for outcome in outcomes.values() if isinstance(outcome, RuleViolation)]
    assert len(accepted) == 3 and len(refused) == WRITERS - 3  # 3 x 30 % fit into 100 %, a fourth does not
    for refusal in refused:
        assert refusal.field == "fte" and "120 %" in refusal.message  # 3 x 30 % + 30 %
        assert {int(n) for n in re.findall(r"#(\d+)", refusal.message)} == set(accepted)
    with app.app_context():
        assert sorted(i for i, _ in _stored(person_id)) == sorted(accepted)
        assert _daily_maximum(person_id) == 900
        _assert_audited(accepted)
        db.session.remove()


def test_a_second_writer_waits_for_the_first_and_then_sees_its_assignment(race):
    """Deterministic: the first unit of work holds the person's lock (assignment flushed, not yet
    committed); the second blocks in lock_staff_member until the first commits, then checks against
    the person's assignments as they are now (READ COMMITTED) and is refused."""
    app, (person_id, municipality_ids) = race
    outcome: dict = {}

    def second_writer() -> None:
        try:
            with app.app_context(), app.test_request_context("/"), force_locale("en"):
                set_scope(db.session, ALL)
                try:
                    outcome["result"] = _assign(person_id, municipality_ids[1], 600)
                    db.session.commit()
                except RuleViolation as refusal:
                    db.session.rollback()
                    outcome["result"] = refusal
                finally:
                    db.session.remove()
        except BaseException as exc:
            outcome["error"] = exc

    with app.app_context(), app.test_request_context("/"), force_locale("en"):
        set_scope(db.session, ALL)
        first = _assign(person_id, municipality_ids[0], 600)  # holds the lock until the commit
        other = threading.Thread(target=second_writer)
        other.start()
        other.join(timeout=1.0)
        # still waiting for the lock (a writer without it would long have passed the check)
        assert other.is_alive() and not outcome
        db.session.commit()
        db.session.remove()
    other.join(timeout=60)
    assert not other.is_alive() and "error" not in outcome, outcome
    refusal = outcome["result"]
    assert isinstance(refusal, RuleViolation), refusal
    assert refusal.field == "fte" and f"#{first}" in refusal.message and "120 %" in refusal.message
    with app.app_context():
        assert _stored(person_id) == [(first, 600)]
        _assert_audited([first])
        db.session.remove()


def test_writers_for_different_people_do_not_wait_for_each_other(race):
    """The lock is per person: a second person's assignment goes through while the first person's
    row is locked."""
    app, (person_id, municipality_ids) = race
    with app.app_context():
        set_scope(db.session, ALL)
        other_person = services.create_staff_member(
            db.session, ACTOR, name="Otto Anders", work_email="otto.anders@itv-sh.example"
        )
        services.create_secondment(
            db.session,
            ACTOR,
            staff_member=other_person,
            instrument="zuweisung",
            starts_on=date(2019, 1, 1),
            ends_on=None,
            fte=500,
        )
        db.session.commit()
        other_id = other_person.id
        db.session.remove()
    done = threading.Event()
    outcome: dict = {}

    def other_writer() -> None:
        try:
            with app.app_context(), app.test_request_context("/"), force_locale("en"):
                set_scope(db.session, ALL)
                outcome["result"] = _assign(other_id, municipality_ids[1], 500)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    with app.app_context(), app.test_request_context("/"), force_locale("en"):
        set_scope(db.session, ALL)
        services.lock_staff_member(db.session, person_id)  # Rita's row stays locked meanwhile
        writer = threading.Thread(target=other_writer)
        writer.start()
        finished = done.wait(timeout=60)
        db.session.rollback()
        db.session.remove()
    writer.join(timeout=60)
    assert finished and "error" not in outcome, outcome
    assert isinstance(outcome["result"], int)
