"""The ledger is append-only in the database itself: raw SQL that changes or removes a booking
fails on SQLite and PostgreSQL (TRUNCATE too, on PostgreSQL), whatever the application does; the
triggers that refuse it exist under their names."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Booking
from tests.conftest import TEST_DATABASE_URL
from tests.funding.conftest import ACTOR, KRUMMWISCH, category


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _trigger_names() -> set[str]:
    if _dialect() == "postgresql":
        rows = db.session.execute(
            text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'bookings'::regclass AND NOT tgisinternal")
        )
    else:
        rows = db.session.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'bookings'")
        )
    return set(rows.scalars())


def test_append_only_triggers_exist(app):
    if _dialect() == "postgresql":
        assert _trigger_names() == {"bookings_append_only", "bookings_no_truncate"}
    else:
        assert _trigger_names() == {"bookings_no_update", "bookings_no_delete"}


@pytest.fixture
def booked(open_year, members):
    """Three committed bookings: a commitment, a disbursement and its reversal."""
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year),
        recipient_kind="member",
        municipality=members[KRUMMWISCH],
        purpose="Breitband",
        amount_cents=100_000,
    )
    ledger.approve(db.session, ACTOR, allocation)
    payment = ledger.disburse(db.session, ACTOR, allocation, 40_000)
    ledger.reverse(db.session, ACTOR, payment, note="wrong account")
    db.session.commit()
    set_scope(db.session, ALL)
    return allocation


def _rows() -> list[tuple]:
    db.session.expire_all()
    set_scope(db.session, ALL)
    return db.session.execute(
        select(
            Booking.id,
            Booking.kind,
            Booking.amount_cents,
            Booking.committed_delta_cents,
            Booking.paid_delta_cents,
            Booking.reverses_id,
            Booking.note,
        ).order_by(Booking.id)
    ).all()


STATEMENTS = [
    "UPDATE bookings SET amount_cents = 1",
    "UPDATE bookings SET paid_delta_cents = 0 WHERE kind = 'disbursement'",
    "UPDATE bookings SET note = 'forged' WHERE id = (SELECT MIN(id) FROM bookings)",
    "UPDATE bookings SET reverses_id = NULL, kind = 'disbursement' WHERE kind = 'reversal'",
    "DELETE FROM bookings",
    "DELETE FROM bookings WHERE kind = 'reversal'",
]
if TEST_DATABASE_URL is not None:  # PostgreSQL; SQLite has no TRUNCATE
    STATEMENTS += ["TRUNCATE bookings", "TRUNCATE bookings CASCADE"]


@pytest.mark.parametrize("statement", STATEMENTS)
def test_raw_sql_cannot_change_or_remove_bookings(booked, statement):
    before = _rows()
    assert [row.kind for row in before] == ["commitment", "disbursement", "reversal"]
    savepoint = db.session.begin_nested()
    with pytest.raises(DBAPIError, match="bookings is append-only"):
        db.session.execute(text(statement))
    savepoint.rollback()
    assert _rows() == before
    figures = ledger.allocation_figures(db.session, booked)
    assert (figures.committed_cents, figures.paid_cents) == (100_000, 0)


def test_inserting_is_still_allowed(booked):
    """Append-only, not read-only: the services go on booking."""
    ledger.disburse(db.session, ACTOR, booked, 100_000)
    db.session.commit()
    assert [row.kind for row in _rows()] == ["commitment", "disbursement", "reversal", "disbursement"]
