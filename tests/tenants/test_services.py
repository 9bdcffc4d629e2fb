"""The tenant rules in ``itvsh.tenants.services``, without HTTP: membership periods (join, leave,
rejoin with history; every refusal names its field and writes nothing; the current-member check at
the edges of a period; audited), creating and changing municipalities (official key per kind,
parents, population), contacts, and the scope each kind of user gets."""

from __future__ import annotations

from datetime import date

import pytest
from flask_login import AnonymousUserMixin
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact

RD_ECK, ACHTERWEHR, KRUMMWISCH, FELDE, ALTENHOLZ, KIEL = (
    "01058",
    "010585803",
    "01058093",
    "01058050",
    "01058005",
    "01002000",
)
FOUNDED = date(2019, 1, 1)


def _events(**filters) -> list[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.seq)
    for column, value in filters.items():
        statement = statement.where(getattr(AuditEvent, column) == value)
    return list(db.session.execute(statement).scalars())


def _count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _snapshot() -> tuple:
    """Everything a refused change must leave alone."""
    set_scope(db.session, ALL)
    db.session.expire_all()
    rows = db.session.execute(select(Municipality).order_by(Municipality.key)).scalars()
    periods = db.session.execute(
        select(Membership.municipality_id, Membership.joined_on, Membership.left_on).order_by(Membership.id)
    ).all()
    return (
        [m.public_view() for m in rows],
        periods,
        _count(MunicipalityContact),
        _count(AuditEvent),
    )


def _refused(field: str, call, *args, **kwargs) -> RuleViolation:
    """``call`` is refused naming ``field``; after the caller's rollback nothing was written."""
    before = _snapshot()
    with pytest.raises(RuleViolation) as caught:
        call(*args, **kwargs)
    assert caught.value.field == field, caught.value.message
    assert caught.value.message
    db.session.rollback()
    db.session.commit()  # a pending audit event would be written now
    assert _snapshot() == before
    return caught.value


def _world() -> dict[str, Municipality]:
    """The Kreis Rendsburg-Eckernförde, the Amt Achterwehr with two Gemeinden, an amtsfreie
    Gemeinde and Kiel (kreisfreie Stadt) -- made through the service, as staff would."""
    make = services.create_municipality
    s = db.session
    world = {
        "kreis": make(s, "test", key=RD_ECK, kind="kreis", name="Rendsburg-Eckernförde"),
        "amt": make(s, "test", key=ACHTERWEHR, kind="amt", name="Achterwehr", kreis=RD_ECK),
    }
    world["krummwisch"] = make(
        s, "test", key=KRUMMWISCH, kind="gemeinde", name="Krummwisch", kreis=RD_ECK, amt=ACHTERWEHR,
        population=681,
    )  # fmt: skip
    world["felde"] = make(
        s, "test", key=FELDE, kind="gemeinde", name="Felde", kreis=RD_ECK, amt=ACHTERWEHR, population=2121
    )
    world["altenholz"] = make(
        s, "test", key=ALTENHOLZ, kind="gemeinde", name="Altenholz", kreis=RD_ECK, population=9998
    )
    world["kiel"] = make(
        s, "test", key=KIEL, kind="kreisfreie_stadt", name="Kiel, Landeshauptstadt", population=246794
    )
    db.session.commit()
    return world


@pytest.fixture
def world(app):
    return _world()


# --- membership ------------------------------------------------------------------------------


def test_join_leave_and_rejoin_keep_the_history(world):
    town = world["krummwisch"]
    services.join(db.session, "test", town, FOUNDED, note="founding member")
    services.leave(db.session, "test", town, date(2021, 1, 1))
    services.join(db.session, "test", town, date(2023, 7, 1))
    db.session.commit()
    periods = db.session.execute(
        select(Membership.joined_on, Membership.left_on, Membership.note)
        .where(Membership.municipality_id == town.id)
        .order_by(Membership.joined_on)
    ).all()
    assert periods == [(FOUNDED, date(2021, 1, 1), "founding member"), (date(2023, 7, 1), None, "")]
    db.session.expire_all()
    assert [(m.joined_on, m.left_on) for m in town.memberships] == [(p[0], p[1]) for p in periods]
    assert services.is_current_member(db.session, town.id, date(2020, 6, 1))
    assert not services.is_current_member(db.session, town.id, date(2022, 6, 1))
    assert services.is_current_member(db.session, town.id, date(2024, 1, 1))


def test_rejoining_on_the_day_of_leaving_is_allowed(world):
    town = world["felde"]
    services.join(db.session, "test", town, FOUNDED)
    services.leave(db.session, "test", town, date(2021, 1, 1))
    services.join(db.session, "test", town, date(2021, 1, 1))
    db.session.commit()
    assert services.is_current_member(db.session, town.id, date(2021, 1, 1))
    assert services.is_current_member(db.session, town.id, date(2020, 12, 31))


def test_joining_while_a_member_is_refused(world):
    town = world["krummwisch"]
    services.join(db.session, "test", town, FOUNDED)
    db.session.commit()
    error = _refused("joined_on", services.join, db.session, "test", town, date(2024, 1, 1))
    assert FOUNDED.isoformat() in error.message
    assert town.name in error.message


def test_leaving_without_being_a_member_is_refused(world):
    town = world["krummwisch"]
    error = _refused("left_on", services.leave, db.session, "test", town, date(2024, 1, 1))
    assert town.name in error.message
    services.join(db.session, "test", town, FOUNDED)
    services.leave(db.session, "test", town, date(2020, 1, 1))
    db.session.commit()
    _refused("left_on", services.leave, db.session, "test", town, date(2021, 1, 1))


def test_leaving_before_joining_is_refused(world):
    town = world["krummwisch"]
    services.join(db.session, "test", town, date(2020, 5, 1))
    db.session.commit()
    error = _refused("left_on", services.leave, db.session, "test", town, date(2020, 4, 30))
    assert "2020-05-01" in error.message


@pytest.mark.parametrize("rejoin", [date(2020, 6, 1), date(2020, 12, 31), date(2018, 1, 1)])
def test_rejoining_into_an_earlier_period_is_refused(world, rejoin):
    town = world["krummwisch"]
    services.join(db.session, "test", town, FOUNDED)
    services.leave(db.session, "test", town, date(2021, 1, 1))
    db.session.commit()
    error = _refused("joined_on", services.join, db.session, "test", town, rejoin)
    assert "2021-01-01" in error.message


def test_is_current_member_at_the_edges_of_a_period(world):
    town = world["krummwisch"]
    assert not services.is_current_member(db.session, town.id)
    services.join(db.session, "test", town, date(2020, 3, 1))
    services.leave(db.session, "test", town, date(2022, 3, 1))
    db.session.commit()
    member = {
        date(2020, 2, 29): False,  # the day before joining
        date(2020, 3, 1): True,  # the day of joining
        date(2022, 2, 28): True,  # the last day
        date(2022, 3, 1): False,  # the day of leaving is the first day outside
        date(2030, 1, 1): False,
    }
    assert {day: services.is_current_member(db.session, town.id, day) for day in member} == member
    # Without a date, today counts.
    assert services.is_current_member(db.session, town.id) is False


def test_open_membership_counts_today_and_in_the_model(world):
    town, other = world["krummwisch"], world["felde"]
    services.join(db.session, "test", town, date(2020, 1, 1))
    db.session.commit()
    db.session.expire_all()
    assert services.is_current_member(db.session, town.id)
    assert (town.is_member, other.is_member) == (True, False)


def test_require_current_member(world):
    town = world["krummwisch"]
    with pytest.raises(RuleViolation) as caught:
        services.require_current_member(db.session, town, date(2024, 1, 1))
    assert caught.value.field == "municipality"
    assert town.name in caught.value.message and "2024-01-01" in caught.value.message
    services.join(db.session, "test", town, date(2024, 1, 1))
    services.require_current_member(db.session, town, date(2024, 1, 1))  # no exception
    services.leave(db.session, "test", town, date(2024, 6, 1))
    services.require_current_member(db.session, town, date(2024, 5, 31))
    with pytest.raises(RuleViolation):
        services.require_current_member(db.session, town, date(2024, 6, 1))


def test_membership_changes_are_audited(world):
    town = world["krummwisch"]
    services.join(db.session, "staff@test.example", town, FOUNDED, note="founding member")
    services.leave(db.session, "staff@test.example", town, date(2021, 1, 1), note="left after the vote")
    db.session.commit()
    joined, left = _events(entity="municipality", entity_id=KRUMMWISCH)[-2:]
    assert (joined.action, joined.actor, joined.before) == ("join", "staff@test.example", None)
    assert joined.after == {"joined_on": "2019-01-01", "note": "founding member"}
    assert (left.action, left.actor) == ("leave", "staff@test.example")
    assert (left.before, left.after) == ({"joined_on": "2019-01-01"}, {"left_on": "2021-01-01"})
    assert db.session.execute(select(Membership.note)).scalar_one() == "left after the vote"


# --- creating and changing municipalities ----------------------------------------------------


def test_create_municipality_records_everything_and_audits(world):
    town = services.create_municipality(
        db.session,
        "test",
        key="01058171",
        kind="gemeinde",
        name="  Westensee ",
        ars="010585803171",
        kreis=RD_ECK,
        amt=ACHTERWEHR,
        population=1553,
        population_date=date(2019, 12, 31),
        postcode="24259",
    )
    db.session.commit()
    db.session.expire_all()
    assert (town.name, town.kreis.key, town.amt.key, town.population) == (
        "Westensee",
        RD_ECK,
        ACHTERWEHR,
        1553,
    )
    assert town.is_local
    [event] = _events(action="create", entity="municipality", entity_id="01058171")
    assert event.after == town.public_view()
    db.session.expire_all()
    assert world["amt"].total_population == 681 + 2121 + 1553
    assert world["kreis"].total_population == 681 + 2121 + 1553 + 9998


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("0105809a", "gemeinde"),  # digits only
        ("01058 93", "gemeinde"),
        ("\uff10\uff11\uff10\uff15\uff18\uff10\uff19\uff19", "gemeinde"),  # full-width digits
        ("010580990", "gemeinde"),  # 9 digits for a Gemeinde
        ("0105809", "stadt"),
        ("01058099", "amt"),  # 8 digits for an Amt
        ("0105858", "amt"),
        ("01059099", "kreis"),  # 8 digits for a Kreis
        ("010", "kreis"),
        ("02058099", "gemeinde"),  # Land prefix 01
        ("020585899", "amt"),
        ("02058", "kreis"),
        ("", "gemeinde"),
    ],
)
def test_create_refuses_malformed_keys(world, key, kind):
    _refused("key", services.create_municipality, db.session, "test", key=key, kind=kind, name="Neu")


def test_create_refuses_a_duplicate_key_and_unknown_kind(world):
    _refused(
        "key", services.create_municipality, db.session, "test", key=KRUMMWISCH, kind="gemeinde", name="Neu"
    )
    _refused(
        "kind", services.create_municipality, db.session, "test", key="01058999", kind="dorf", name="Neu"
    )


@pytest.mark.parametrize(
    ("field", "data"),
    [
        ("name", {"name": "   "}),
        ("kreis", {"kreis": "01099"}),  # no such Kreis
        ("kreis", {"kreis": ACHTERWEHR}),  # an Amt is not a Kreis
        ("kreis", {"kreis": "kreis"}),
        ("amt", {"kreis": RD_ECK, "amt": "010589999"}),  # no such Amt
        ("amt", {"kreis": RD_ECK, "amt": RD_ECK}),  # a Kreis is not an Amt
        ("population", {"kreis": RD_ECK, "population": -1}),
        ("ars", {"kreis": RD_ECK, "ars": "01058099"}),
        ("ars", {"kreis": RD_ECK, "ars": "020580000099"}),
        ("postcode", {"kreis": RD_ECK, "postcode": "2425"}),
    ],
)
def test_create_refuses_bad_master_data(world, field, data):
    fields = {"name": "Neu", **data}
    _refused(
        field, services.create_municipality, db.session, "test", key="01058099", kind="gemeinde", **fields
    )


@pytest.mark.parametrize(
    ("key", "kind", "field", "data"),
    [
        ("010585899", "amt", "population", {"kreis": RD_ECK, "population": 100}),
        ("01099", "kreis", "population", {"population": 100}),
        ("01099", "kreis", "kreis", {"kreis": RD_ECK}),  # a Kreis belongs to no Kreis
        ("01005000", "kreisfreie_stadt", "kreis", {"kreis": RD_ECK, "population": 1}),
        ("010585899", "amt", "amt", {"kreis": RD_ECK, "amt": ACHTERWEHR}),  # an Amt belongs to no Amt
    ],
)
def test_create_refuses_population_and_parents_where_they_do_not_belong(world, key, kind, field, data):
    _refused(field, services.create_municipality, db.session, "test", key=key, kind=kind, name="Neu", **data)


def test_update_changes_master_data_and_audits_only_the_changes(world):
    town = world["krummwisch"]
    services.update_municipality(db.session, "test", town, name="Krummwisch (neu)", population=700)
    db.session.commit()
    [event] = _events(action="update", entity="municipality", entity_id=KRUMMWISCH)
    assert event.before == {"name": "Krummwisch", "population": 681}
    assert event.after == {"name": "Krummwisch (neu)", "population": 700}
    # Nothing changed: no event.
    services.update_municipality(db.session, "test", town, name="Krummwisch (neu)", population=700)
    db.session.commit()
    assert len(_events(action="update", entity="municipality")) == 1


def test_update_moves_a_gemeinde_out_of_its_amt(world):
    town = world["felde"]
    services.update_municipality(db.session, "test", town, amt=None)
    db.session.commit()
    db.session.expire_all()
    assert town.amt is None and town.kreis.key == RD_ECK
    assert world["amt"].total_population == 681
    [event] = _events(action="update", entity="municipality", entity_id=FELDE)
    assert (event.before, event.after) == ({"amt": ACHTERWEHR}, {"amt": None})


@pytest.mark.parametrize(
    ("target", "field", "data"),
    [
        ("krummwisch", "key", {"key": "01058094"}),  # the key is the identity
        ("krummwisch", "id", {"id": 5}),
        ("krummwisch", "name", {"name": ""}),
        ("krummwisch", "population", {"population": -5}),
        ("krummwisch", "population", {"name": "Neu", "population": -5}),
        ("krummwisch", "kreis", {"kreis": "01099"}),
        ("krummwisch", "amt", {"amt": "010589999"}),
        ("krummwisch", "kind", {"kind": "amt"}),  # an 8-digit key is no Amt key
        ("krummwisch", "kind", {"kind": "unknown"}),
        ("amt", "population", {"population": 10}),
        ("kreis", "population", {"population": 10}),
        ("kreis", "kreis", {"kreis": RD_ECK}),
        ("kiel", "kreis", {"kreis": RD_ECK}),
        ("kiel", "postcode", {"postcode": "abcde"}),
    ],
)
def test_update_refuses_bad_changes(world, target, field, data):
    _refused(field, services.update_municipality, db.session, "test", world[target], **data)


def test_get_by_key(world):
    assert services.get_by_key(db.session, KRUMMWISCH).name == "Krummwisch"
    assert services.get_by_key(db.session, RD_ECK).kind == "kreis"
    for key in ("", "0105809", "01058093 ", "0105809a", "1" * 10, "' OR 1=1 --", "01058095"):
        assert services.get_by_key(db.session, key) is None


# --- contacts --------------------------------------------------------------------------------


def test_contacts_are_checked_and_audited_with_their_tenant(world):
    set_scope(db.session, ALL)
    contact = MunicipalityContact(municipality=world["kiel"], role="OZG", email="ozg@kiel.example")
    services.save_contact(db.session, "test", contact, None)
    db.session.commit()
    before = services.contact_view(contact)
    contact.phone = "0431 123"
    services.save_contact(db.session, "test", contact, before)
    db.session.commit()
    services.delete_contact(db.session, "test", contact)
    db.session.commit()
    events = _events(entity="municipality_contact")
    assert [e.action for e in events] == ["create", "update", "delete"]
    assert {e.entity_id for e in events} == {str(contact.id)}
    assert events[0].after["tenant"] == KIEL and events[0].after["email"] == "ozg@kiel.example"
    assert (events[1].before, events[1].after) == (
        {"tenant": KIEL, "phone": ""},
        {"tenant": KIEL, "phone": "0431 123"},
    )
    assert events[2].before["role"] == "OZG"
    assert _count(MunicipalityContact) == 0


@pytest.mark.parametrize(
    ("field", "data"),
    [
        ("name", {}),
        ("name", {"address": "Rathaus"}),
        ("email", {"email": "no-at-sign"}),
        ("email", {"email": "a b@c"}),
    ],
)
def test_contact_rules(world, field, data):
    set_scope(db.session, ALL)
    contact = MunicipalityContact(municipality=world["kiel"], **data)
    _refused(field, services.save_contact, db.session, "test", contact, None)


# --- scope_for_user --------------------------------------------------------------------------


def test_scope_without_a_user_is_none(app):
    assert services.scope_for_user(db.session, None) is None
    assert services.scope_for_user(db.session, AnonymousUserMixin()) is None


@pytest.mark.parametrize("role", ["admin", "staff", "auditor"])
def test_federation_and_auditors_see_all(world, make_user, role):
    assert services.scope_for_user(db.session, make_user(role)) == ALL


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (KRUMMWISCH, {"krummwisch"}),  # a Gemeinde: itself
        (ALTENHOLZ, {"altenholz"}),  # an amtsfreie Gemeinde: itself
        (KIEL, {"kiel"}),  # a kreisfreie Stadt: itself
        (ACHTERWEHR, {"amt", "krummwisch", "felde"}),  # an Amt: itself and its Gemeinden
        (RD_ECK, {"kreis"}),  # a Kreis: the Kreis only, not its Gemeinden or Ämter
    ],
)
def test_municipality_users_see_their_tenant(world, make_user, tenant, expected):
    scope = services.scope_for_user(db.session, make_user("municipality", tenant))
    assert scope == frozenset(world[name].id for name in expected)
