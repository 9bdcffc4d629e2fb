"""The central tenant scope (``itvsh.core.tenancy``): with a scope of tenant A, every ORM read of a
tenant-owned model -- selects, ``session.get``, aggregates, joins, subqueries -- sees A's rows only;
no scope means no rows, ALL means all; ORM bulk UPDATE/DELETE outside ALL and unit-of-work writes to
another tenant's rows raise ScopeError; and a request sets the scope from its user and restores the
previous one afterwards (also when the view fails)."""

from __future__ import annotations

import pytest
from flask import abort, jsonify
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import aliased

from itvsh.auth.roles import ALL_ROLES
from itvsh.core.access import roles_allowed
from itvsh.core.tenancy import ALL, ScopeError, clear_scope, current_scope, pop_scope, push_scope, set_scope
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.models import Municipality, MunicipalityContact

RD_ECK, ACHTERWEHR, KRUMMWISCH, FELDE, KIEL = "01058", "010585803", "01058093", "01058050", "01002000"


class World:
    """Five real tenants (Kreis, Amt, two of its Gemeinden, a kreisfreie Stadt) and their contacts:
    A = Krummwisch (two contacts), B = Kiel (one), Felde and the Amt and Kreis one each."""

    def __init__(self):
        set_scope(db.session, ALL)
        make = services.create_municipality
        self.kreis = make(db.session, "test", key=RD_ECK, kind="kreis", name="Rendsburg-Eckernförde")
        self.amt = make(db.session, "test", key=ACHTERWEHR, kind="amt", name="Achterwehr", kreis=RD_ECK)
        self.a = make(
            db.session, "test", key=KRUMMWISCH, kind="gemeinde", name="Krummwisch", kreis=RD_ECK,
            amt=ACHTERWEHR, population=681,
        )  # fmt: skip
        self.felde = make(
            db.session, "test", key=FELDE, kind="gemeinde", name="Felde", kreis=RD_ECK, amt=ACHTERWEHR,
            population=2121,
        )  # fmt: skip
        self.b = make(db.session, "test", key=KIEL, kind="kreisfreie_stadt", name="Kiel", population=246794)
        self.contacts: dict[str, list[int]] = {}
        for tenant, names in (
            (self.a, ["A one", "A two"]),
            (self.b, ["B secret"]),
            (self.felde, ["Felde one"]),
            (self.amt, ["Amt one"]),
            (self.kreis, ["Kreis one"]),
        ):
            for name in names:
                contact = MunicipalityContact(municipality_id=tenant.id, name=name, email="x@test.example")
                services.save_contact(db.session, "test", contact, None)
                self.contacts.setdefault(tenant.key, []).append(contact.id)
        db.session.commit()
        # Plain ids: every test starts a new unit of work, which detaches these objects.
        for name in ("kreis", "amt", "a", "felde", "b"):
            setattr(self, name, getattr(self, name).id)
        self.b_contact = self.contacts[KIEL][0]
        self.a_contacts = self.contacts[KRUMMWISCH]

    def fresh(self, scope) -> None:
        """Start a new unit of work with ``scope`` (an empty identity map, as every request has)."""
        db.session.expunge_all()
        if scope is None:
            clear_scope(db.session)
        else:
            set_scope(db.session, scope)


@pytest.fixture
def world(app):
    return World()


def _names(statement=None) -> list[str]:
    statement = statement if statement is not None else select(MunicipalityContact)
    return sorted(c.name for c in db.session.execute(statement).scalars())


def _all_names() -> list[str]:
    previous = push_scope(db.session, ALL)
    try:
        db.session.expunge_all()
        return _names()
    finally:
        pop_scope(db.session, previous)


# --- reads -----------------------------------------------------------------------------------


def test_select_returns_only_the_scoped_tenants_rows(world):
    world.fresh({world.a})
    assert _names() == ["A one", "A two"]
    assert _names(select(MunicipalityContact).where(MunicipalityContact.name == "B secret")) == []
    # Selecting columns only (no entity) is filtered as well.
    assert sorted(db.session.execute(select(MunicipalityContact.name)).scalars()) == ["A one", "A two"]
    # The legacy Query API goes through the same hook.
    assert sorted(c.name for c in db.session.query(MunicipalityContact)) == ["A one", "A two"]


def test_session_get_of_another_tenants_row_is_none(world):
    world.fresh({world.a})
    assert db.session.get(MunicipalityContact, world.b_contact) is None
    assert db.session.get(MunicipalityContact, world.a_contacts[0]).name == "A one"


def test_aggregates_count_only_the_scoped_rows(world):
    world.fresh({world.a})
    assert db.session.execute(select(func.count(MunicipalityContact.id))).scalar_one() == 2
    assert db.session.execute(select(func.count()).select_from(MunicipalityContact)).scalar_one() == 2
    assert (
        db.session.execute(
            select(func.count()).select_from(select(MunicipalityContact).subquery())
        ).scalar_one()
        == 2
    )
    per_tenant = db.session.execute(
        select(MunicipalityContact.municipality_id, func.count()).group_by(
            MunicipalityContact.municipality_id
        )
    ).all()
    assert per_tenant == [(world.a, 2)]


def test_joins_and_aliases_do_not_leak_other_tenants_rows(world):
    world.fresh({world.a})
    joined = db.session.execute(
        select(Municipality.key, MunicipalityContact.name)
        .join(MunicipalityContact, MunicipalityContact.municipality_id == Municipality.id)
        .order_by(MunicipalityContact.name)
    ).all()
    assert joined == [(KRUMMWISCH, "A one"), (KRUMMWISCH, "A two")]
    # An outer join keeps every municipality but none of the others' contacts.
    outer = db.session.execute(
        select(Municipality.key, MunicipalityContact.name).outerjoin(
            MunicipalityContact, MunicipalityContact.municipality_id == Municipality.id
        )
    ).all()
    assert {name for key, name in outer if key != KRUMMWISCH} == {None}
    alias = aliased(MunicipalityContact)
    assert sorted(db.session.execute(select(alias.name)).scalars()) == ["A one", "A two"]
    # Through the relationship from the contact side, with the municipality loaded eagerly.
    contacts = db.session.execute(
        select(MunicipalityContact).join(MunicipalityContact.municipality).where(Municipality.key == KIEL)
    ).scalars()
    assert list(contacts) == []
    # A subquery in WHERE is filtered as well.
    keys = db.session.execute(
        select(Municipality.key).where(
            Municipality.id.in_(select(MunicipalityContact.municipality_id).scalar_subquery())
        )
    ).scalars()
    assert list(keys) == [KRUMMWISCH]


def test_relationship_load_of_a_contacts_municipality_is_public(world):
    """The contact's municipality (public master data) loads; the contact list stays scoped."""
    world.fresh({world.a})
    contact = db.session.get(MunicipalityContact, world.a_contacts[0])
    assert contact.municipality.key == KRUMMWISCH
    assert db.session.get(Municipality, world.b).key == KIEL  # master data is public


def test_no_scope_means_no_rows(world):
    world.fresh(None)
    assert current_scope(db.session) is None
    assert _names() == []
    assert db.session.get(MunicipalityContact, world.a_contacts[0]) is None
    assert db.session.execute(select(func.count(MunicipalityContact.id))).scalar_one() == 0
    # An empty scope is not "everything" either.
    world.fresh(set())
    assert _names() == []
    # Public master data is not affected.
    assert db.session.execute(select(func.count()).select_from(Municipality)).scalar_one() == 5


def test_all_scope_sees_every_row(world):
    world.fresh(ALL)
    assert _names() == ["A one", "A two", "Amt one", "B secret", "Felde one", "Kreis one"]
    assert db.session.get(MunicipalityContact, world.b_contact).name == "B secret"


def test_scope_of_several_tenants(world):
    world.fresh({world.a, world.b})
    assert _names() == ["A one", "A two", "B secret"]
    world.fresh({world.b})
    assert _names() == ["B secret"]


# --- writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["a", "none"])
def test_bulk_update_and_delete_outside_all_raise(world, scope):
    world.fresh({world.a} if scope == "a" else None)
    statements = [
        update(MunicipalityContact).values(name="changed"),
        update(MunicipalityContact).where(MunicipalityContact.id == world.b_contact).values(name="changed"),
        delete(MunicipalityContact),
        delete(MunicipalityContact).where(MunicipalityContact.municipality_id == world.a),
    ]
    for statement in statements:
        with pytest.raises(ScopeError):
            db.session.execute(statement)
    with pytest.raises(ScopeError):
        db.session.query(MunicipalityContact).update({"name": "changed"})
    with pytest.raises(ScopeError):
        db.session.query(MunicipalityContact).delete()
    db.session.commit()
    assert _all_names() == ["A one", "A two", "Amt one", "B secret", "Felde one", "Kreis one"]


def test_bulk_update_with_all_scope_works(world):
    world.fresh(ALL)
    db.session.execute(
        update(MunicipalityContact).where(MunicipalityContact.id == world.b_contact).values(name="B renamed")
    )
    db.session.commit()
    assert "B renamed" in _all_names()


def test_adding_another_tenants_row_raises_on_flush(world):
    world.fresh({world.a})
    db.session.add(MunicipalityContact(municipality_id=world.b, name="planted"))
    with pytest.raises(ScopeError) as caught:
        db.session.flush()
    assert f"{{{world.b}}}" in str(caught.value)
    db.session.rollback()
    assert "planted" not in _all_names()


def test_adding_through_the_relationship_is_checked_too(world):
    world.fresh({world.a})
    kiel = db.session.get(Municipality, world.b)
    db.session.add(MunicipalityContact(municipality=kiel, name="planted"))
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    assert "planted" not in _all_names()


def test_adding_own_row_through_the_relationship_works(world):
    world.fresh({world.a})
    own = db.session.get(Municipality, world.a)
    contact = MunicipalityContact(municipality=own, name="A three")
    services.save_contact(db.session, "test", contact, None)
    db.session.commit()
    assert _names() == ["A one", "A three", "A two"]


def test_changing_or_deleting_another_tenants_row_raises_on_flush(world):
    world.fresh(ALL)
    b_contact = db.session.get(MunicipalityContact, world.b_contact)
    set_scope(db.session, {world.a})  # the scope narrows while B's row is still in the session
    b_contact.name = "changed"
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    set_scope(db.session, ALL)
    b_contact = db.session.get(MunicipalityContact, world.b_contact)
    set_scope(db.session, {world.a})
    db.session.delete(b_contact)
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    assert "B secret" in _all_names()


@pytest.mark.parametrize("how", ["column", "relationship"])
def test_moving_own_row_to_another_tenant_raises(world, how):
    world.fresh({world.a})
    contact = db.session.get(MunicipalityContact, world.a_contacts[0])
    if how == "column":
        contact.municipality_id = world.b
    else:
        contact.municipality = db.session.get(Municipality, world.b)
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    world.fresh({world.b})
    assert _names() == ["B secret"]


@pytest.mark.parametrize("how", ["column", "relationship"])
def test_taking_over_another_tenants_row_raises(world, how):
    world.fresh(ALL)
    b_contact = db.session.get(MunicipalityContact, world.b_contact)
    own = db.session.get(Municipality, world.a)
    set_scope(db.session, {world.a})
    if how == "column":
        b_contact.municipality_id = world.a
    else:
        b_contact.municipality = own
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    world.fresh({world.b})
    assert _names() == ["B secret"]


def test_changing_own_row_works(world):
    world.fresh({world.a})
    contact = db.session.get(MunicipalityContact, world.a_contacts[0])
    before = services.contact_view(contact)
    contact.name = "A renamed"
    services.save_contact(db.session, "test", contact, before)
    db.session.commit()
    assert _names() == ["A renamed", "A two"]


def test_no_scope_refuses_every_write(world):
    world.fresh(None)
    db.session.add(MunicipalityContact(municipality_id=world.a, name="nobody's"))
    with pytest.raises(ScopeError):
        db.session.flush()
    db.session.rollback()
    assert "nobody's" not in _all_names()


# --- the scope of a request ------------------------------------------------------------------


@pytest.fixture
def scope_probe(app):
    """A test view reporting the scope it ran under and the contacts it could see."""

    @roles_allowed(ALL_ROLES)
    def probe():
        scope = current_scope(db.session)
        names = sorted(c.name for c in db.session.execute(select(MunicipalityContact)).scalars())
        return jsonify(scope=scope if scope in (None, ALL) else sorted(scope), names=names)

    @roles_allowed(ALL_ROLES)
    def failing():
        abort(404)

    @roles_allowed(ALL_ROLES)
    def crashing():
        raise RuntimeError("boom")

    app.add_url_rule("/test-scope", "test_scope", probe)
    app.add_url_rule("/test-scope-404", "test_scope_404", failing)
    app.add_url_rule("/test-scope-500", "test_scope_500", crashing)


@pytest.mark.parametrize("previous", [ALL, None, "other"])
def test_request_as_municipality_user_restores_the_previous_scope(
    world, scope_probe, client, login_as, previous
):
    login_as("municipality", KRUMMWISCH)
    before = {world.felde} if previous == "other" else previous
    world.fresh(before)
    expected_before = current_scope(db.session)
    response = client.get("/test-scope")
    assert response.get_json() == {"scope": [world.a], "names": ["A one", "A two"]}
    assert current_scope(db.session) == expected_before
    assert client.get("/test-scope-404").status_code == 404
    assert current_scope(db.session) == expected_before


def test_request_that_crashes_restores_the_scope(world, scope_probe, app, client, login_as):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login_as("municipality", KRUMMWISCH)
    world.fresh(ALL)
    assert client.get("/test-scope-500").status_code == 500
    assert current_scope(db.session) == ALL


@pytest.mark.parametrize(
    ("role", "tenant", "scope", "names"),
    [
        ("municipality", KIEL, "b", ["B secret"]),
        ("municipality", ACHTERWEHR, "amt", ["A one", "A two", "Amt one", "Felde one"]),
        ("municipality", RD_ECK, "kreis", ["Kreis one"]),
        ("staff", None, ALL, ["A one", "A two", "Amt one", "B secret", "Felde one", "Kreis one"]),
        ("auditor", None, ALL, ["A one", "A two", "Amt one", "B secret", "Felde one", "Kreis one"]),
        ("admin", None, ALL, ["A one", "A two", "Amt one", "B secret", "Felde one", "Kreis one"]),
    ],
)
def test_request_scope_follows_the_user(world, scope_probe, client, login_as, role, tenant, scope, names):
    login_as(role, tenant)
    world.fresh(None)
    expected = {
        "b": [world.b],
        "amt": sorted([world.amt, world.a, world.felde]),
        "kreis": [world.kreis],
        ALL: ALL,
    }[scope]
    assert client.get("/test-scope").get_json() == {"scope": expected, "names": names}
    assert current_scope(db.session) is None


def test_anonymous_request_has_no_scope(world, app, client):
    from itvsh.core.access import public

    @public
    def open_probe():
        return jsonify(scope=current_scope(db.session), count=db.session.query(MunicipalityContact).count())

    app.add_url_rule("/test-open-scope", "test_open_scope", open_probe)
    world.fresh(ALL)
    assert client.get("/test-open-scope").get_json() == {"scope": None, "count": 0}
    assert current_scope(db.session) == ALL
