"""The OZG status services (``itvsh.projects.ozg``) without HTTP: the rules and bad input of
``set_status`` (each refusal names the field and changes nothing), its history and audit trail;
the tallies -- kept incrementally, they always equal a rebuild and a brute-force count (a property
test over random status changes); ``set_responsibility`` moving a service out of and into the
counts; the monthly snapshot; and on PostgreSQL, concurrent reports in one Kreis that all land
with exact tallies."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import date, timedelta
from importlib import resources

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from itvsh import create_app
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.catalogue import import_catalogue
from itvsh.projects.models import OzgService, OzgSnapshot, OzgStatus, OzgStatusChange, OzgTally
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind
from tests.conftest import TEST_DATABASE_URL, drop_database, migrated_database
from tests.conftest import test_config as config_for
from tests.projects.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    LUEBECK,
    NON_MEMBER,
    SMALL_CATALOGUE,
)

FELDE = "01058050"  # a Gemeinde in Kreis Rendsburg-Eckernförde, Amt Achterwehr (as Krummwisch)
ARKEBEK = "01051002"  # a Gemeinde in Kreis Dithmarschen
LOCAL = tuple(kind.value for kind in LOCAL_KINDS)


@pytest.fixture
def english(app):
    with app.test_request_context("/"), force_locale("en"):
        yield


@pytest.fixture
def tallied(members, catalogue):
    """The members and the small catalogue with the tallies built (all zero), committed."""
    ozg.recompute_tallies(db.session)
    db.session.commit()
    set_scope(db.session, ALL)
    return members, catalogue


def tallies() -> dict[tuple[str, int, str], tuple[int, ...]]:
    """Every tally row as (possible, level1..level4)."""
    db.session.expire_all()
    return {
        (t.scope, t.scope_id, t.topic): (t.possible, t.level1, t.level2, t.level3, t.level4)
        for t in db.session.execute(select(OzgTally)).scalars()
    }


def brute_force(maturities: dict[tuple[int, int], int], responsibility: dict[int, str]) -> dict:
    """The tallies as they must be, counted from scratch: every local municipality and every
    municipal service, a kreisfreie Stadt being its own Kreis; ``maturities`` by (municipality id,
    service id) (absent = 0), ``responsibility`` by service id."""
    places = db.session.execute(
        select(Municipality.id, Municipality.kind, Municipality.kreis_id).where(Municipality.kind.in_(LOCAL))
    ).all()
    topic_of = dict(db.session.execute(select(OzgService.id, OzgService.topic)).all())
    municipal = [sid for sid, who in responsibility.items() if who == "municipal"]
    services_in: dict[str, int] = defaultdict(int)
    for sid in municipal:
        services_in[""] += 1
        services_in[topic_of[sid]] += 1
    scopes_of = {}
    members_in: dict[tuple[str, int], int] = defaultdict(int)
    for mid, kind, kreis_id in places:
        kreis = mid if kind == MunicipalityKind.KREISFREIE_STADT else kreis_id
        scopes_of[mid] = [("land", 0), ("kreis", kreis), ("municipality", mid)]
        for scope in scopes_of[mid]:
            members_in[scope] += 1
    topics = ["", *sorted({topic_of[sid] for sid in municipal})]
    expected = {
        (scope, scope_id, topic): [members * services_in[topic], 0, 0, 0, 0]
        for (scope, scope_id), members in members_in.items()
        for topic in topics
    }
    for (mid, sid), maturity in maturities.items():
        if maturity > 0 and responsibility[sid] == "municipal":
            for scope, scope_id in scopes_of[mid]:
                for topic in ("", topic_of[sid]):
                    expected[(scope, scope_id, topic)][maturity] += 1
    return {key: tuple(values) for key, values in expected.items()}


def stored_maturities() -> dict[tuple[int, int], int]:
    return dict(
        ((mid, sid), maturity)
        for mid, sid, maturity in db.session.execute(
            select(OzgStatus.municipality_id, OzgStatus.service_id, OzgStatus.maturity)
        )
    )


def responsibilities() -> dict[int, str]:
    return dict(db.session.execute(select(OzgService.id, OzgService.responsibility)).all())


def state() -> tuple:
    """Everything a status write could change. Commits first, so that whatever a refused call left
    in the session would be written and show."""
    db.session.commit()
    set_scope(db.session, ALL)
    statuses = db.session.execute(
        select(
            OzgStatus.id,
            OzgStatus.municipality_id,
            OzgStatus.service_id,
            OzgStatus.maturity,
            OzgStatus.online_since,
            OzgStatus.url,
            OzgStatus.project_id,
            OzgStatus.efa,
        ).order_by(OzgStatus.id)
    ).all()
    history = db.session.execute(select(func.count()).select_from(OzgStatusChange)).scalar_one()
    events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    services = db.session.execute(
        select(OzgService.id, OzgService.responsibility).order_by(OzgService.id)
    ).all()
    return statuses, history, events, services, tallies()


def refused(field: str, *args, scope=ALL, **kwargs) -> RuleViolation:
    """``set_status(*args, **kwargs)`` is refused naming ``field`` (in tenant ``scope``); nothing
    changed."""
    before = state()
    set_scope(db.session, scope)
    with pytest.raises(RuleViolation) as caught:
        ozg.set_status(db.session, *args, **kwargs)
    assert caught.value.field == field, (caught.value.field, caught.value.message)
    assert state() == before
    return caught.value


# --- set_status: rules and bad input --------------------------------------------------------------


@pytest.mark.parametrize("maturity", [-1, 5, 7, 100, "3", 3.0, None, True, False])
def test_maturity_must_be_a_whole_number_of_the_model(english, tallied, maturity):
    members, catalogue = tallied
    violation = refused("maturity", ACTOR, members[KIEL], catalogue["10000"], maturity=maturity)
    assert violation.message == "The maturity must be a whole number from 0 to 4."


@pytest.mark.parametrize("model", ["2.0", "", "1", None])
def test_an_unknown_maturity_model_is_refused(tallied, model):
    members, catalogue = tallied
    refused("maturity_model", ACTOR, members[KIEL], catalogue["10000"], maturity=2, maturity_model=model)


@pytest.mark.parametrize("key", [NON_MEMBER, AMT_ACHTERWEHR, KREIS_RD_ECK])
def test_only_member_gemeinden_and_staedte_report(tallied, key):
    members, catalogue = tallied
    refused("municipality", ACTOR, members[key], catalogue["10000"], maturity=2)


def test_a_member_that_left_reports_no_more(tallied):
    members, catalogue = tallied
    tenant_services.leave(db.session, ACTOR, members[ARKEBEK], date.today() - timedelta(days=1))
    refused("municipality", ACTOR, members[ARKEBEK], catalogue["10000"], maturity=2)


def test_municipality_and_service_must_be_what_they_say(tallied):
    members, catalogue = tallied
    refused("municipality", ACTOR, KIEL, catalogue["10000"], maturity=2)
    refused("service", ACTOR, members[KIEL], "10000", maturity=2)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://kiel.de/antrag",
        "https://",
        "kiel.de/antrag",
        "https://kiel.de/ein antrag",
        "https://kiel.de/" + "a" * 490,
        42,
    ],
)
def test_a_bad_url_is_refused(tallied, url):
    members, catalogue = tallied
    refused("url", ACTOR, members[KIEL], catalogue["10000"], maturity=3, url=url)


@pytest.mark.parametrize(
    "online_since", [date.today() + timedelta(days=1), date(1999, 12, 31), "2020-01-01", date(2099, 1, 1)]
)
def test_online_since_must_be_a_day_up_to_today(tallied, online_since):
    members, catalogue = tallied
    refused("online_since", ACTOR, members[KIEL], catalogue["10000"], maturity=3, online_since=online_since)


def test_project_and_efa_are_checked(tallied):
    members, catalogue = tallied
    refused("project", ACTOR, members[KIEL], catalogue["10000"], maturity=3, project="Bauantrag")
    refused("efa", ACTOR, members[KIEL], catalogue["10000"], maturity=3, efa="yes")


def test_a_municipality_user_reports_for_its_own_only(tallied, make_user):
    members, catalogue = tallied
    kiel_user = make_user("municipality", KIEL)
    amt_user = make_user("municipality", AMT_ACHTERWEHR)
    auditor = make_user("auditor")

    def as_user(user, key: str, field: str | None = None):
        scope = tenant_services.scope_for_user(db.session, user)
        if field is not None:
            return refused(field, user, members[key], catalogue["10000"], maturity=2, scope=scope)
        set_scope(db.session, scope)
        try:
            return ozg.set_status(db.session, user, members[key], catalogue["10000"], maturity=2)
        finally:
            set_scope(db.session, ALL)

    as_user(kiel_user, LUEBECK, "municipality")  # another municipality
    as_user(kiel_user, KRUMMWISCH, "municipality")
    as_user(amt_user, KIEL, "municipality")
    as_user(auditor, KIEL, "municipality")  # auditors read only
    assert as_user(kiel_user, KIEL).changed
    assert as_user(amt_user, KRUMMWISCH).changed  # the Amt's Gemeinden are in its scope
    assert as_user(amt_user, FELDE).changed
    db.session.commit()
    set_scope(db.session, ALL)
    changes = db.session.execute(
        select(OzgStatusChange.changed_by_id, OzgStatusChange.changed_by).order_by(OzgStatusChange.id)
    ).all()
    assert changes == [
        (kiel_user.id, kiel_user.email),
        (amt_user.id, amt_user.email),
        (amt_user.id, amt_user.email),
    ]


# --- set_status: what it writes ------------------------------------------------------------------


def test_a_change_is_stored_with_its_history_and_audited(tallied, project):
    members, catalogue = tallied
    kiel, service = members[KIEL], catalogue["10169"]
    first = ozg.set_status(db.session, ACTOR, kiel, service, maturity=2, url=" https://kiel.de/fs ")
    assert first.changed and first.status.url == "https://kiel.de/fs"
    second = ozg.set_status(
        db.session,
        ACTOR,
        kiel,
        service,
        maturity=4,
        online_since=date(2022, 5, 1),
        url="https://kiel.de/fs",
        project=project,
        efa=True,
    )
    assert second.changed and second.status.id == first.status.id
    again = ozg.set_status(
        db.session,
        ACTOR,
        kiel,
        service,
        maturity=4,
        online_since=date(2022, 5, 1),
        url="https://kiel.de/fs",
        project=project,
        efa=True,
    )
    assert not again.changed  # nothing new: no history row, no event
    db.session.commit()
    set_scope(db.session, ALL)
    row = db.session.execute(select(OzgStatus)).scalar_one()
    assert (row.maturity, row.maturity_model, row.online_since, row.project_id, row.efa, row.changed_by) == (
        4,
        "1.x",
        date(2022, 5, 1),
        project.id,
        True,
        ACTOR,
    )
    history = db.session.execute(
        select(OzgStatusChange.maturity, OzgStatusChange.url, OzgStatusChange.efa).order_by(
            OzgStatusChange.id
        )
    ).all()
    assert history == [(2, "https://kiel.de/fs", False), (4, "https://kiel.de/fs", True)]
    events = db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "ozg_status").order_by(AuditEvent.seq)
    ).scalars()
    events = list(events)
    assert [(e.actor, e.entity_id) for e in events] == [(ACTOR, f"{KIEL}/10169")] * 2
    assert events[0].before is None and events[0].after["maturity"] == 2
    assert events[1].before["maturity"] == 2 and events[1].after["maturity"] == 4
    assert events[1].after["online_since"] == "2022-05-01" and events[1].after["efa"] is True


def test_maturity_0_with_nothing_else_removes_the_row(tallied):
    members, catalogue = tallied
    krummwisch, service = members[KRUMMWISCH], catalogue["10000"]
    nothing = ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=0)
    assert (nothing.status, nothing.changed) == (None, False)  # no row, nothing known: nothing to do
    ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=3)
    assert stored_maturities() == {(krummwisch.id, service.id): 3}
    kept = ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=0, url="https://amt.de/geburt")
    assert kept.changed and kept.status is not None  # something is known: the row stays, at level 0
    assert stored_maturities() == {(krummwisch.id, service.id): 0}
    assert tallies()[("land", 0, "")][1:] == (0, 0, 0, 0)
    gone = ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=0)
    assert (gone.status, gone.changed) == (None, True)
    assert stored_maturities() == {}
    db.session.commit()
    set_scope(db.session, ALL)
    assert db.session.execute(
        select(OzgStatusChange.maturity).order_by(OzgStatusChange.id)
    ).scalars().all() == [
        3,
        0,
        0,
    ]
    events = db.session.execute(
        select(AuditEvent.before, AuditEvent.after).where(AuditEvent.entity == "ozg_status")
    ).all()
    assert len(events) == 3
    assert tallies() == brute_force({}, responsibilities())


def test_a_service_of_the_land_is_stored_but_not_counted(tallied):
    members, catalogue = tallied
    before = tallies()
    result = ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10999"], maturity=4)
    assert result.changed and stored_maturities() == {(members[KIEL].id, catalogue["10999"].id): 4}
    assert tallies() == before


def test_the_tallies_count_kreisfreie_staedte_as_their_own_kreis(tallied):
    members, catalogue = tallied
    kiel, krummwisch, felde = members[KIEL], members[KRUMMWISCH], members[FELDE]
    ozg.set_status(db.session, ACTOR, kiel, catalogue["10000"], maturity=3)
    ozg.set_status(db.session, ACTOR, krummwisch, catalogue["10169"], maturity=4)
    ozg.set_status(db.session, ACTOR, felde, catalogue["10170"], maturity=1)
    kept = tallies()
    assert kept[("land", 0, "")] == (1106 * 4, 1, 0, 1, 1)
    assert kept[("kreis", kiel.id, "")] == (4, 0, 0, 1, 0)
    assert kept[("kreis", kiel.id, "Familie & Kind")] == (2, 0, 0, 1, 0)
    rd_eck = krummwisch.kreis_id
    gemeinden_rd_eck = db.session.execute(
        select(func.count()).where(Municipality.kreis_id == rd_eck, Municipality.kind.in_(LOCAL))
    ).scalar_one()
    assert kept[("kreis", rd_eck, "Mobilität & Reisen")] == (gemeinden_rd_eck * 2, 1, 0, 0, 1)
    assert kept[("municipality", felde.id, "")] == (4, 1, 0, 0, 0)
    assert kept == brute_force(stored_maturities(), responsibilities())


def test_every_change_of_level_moves_one_count(tallied):
    """All 25 (old, new) level pairs on one Gemeinde's service, each checked against brute force."""
    members, catalogue = tallied
    krummwisch, service = members[KRUMMWISCH], catalogue["10170"]
    who = responsibilities()
    for old in range(5):
        for new in range(5):
            ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=old)
            ozg.set_status(db.session, ACTOR, krummwisch, service, maturity=new)
            expected = {(krummwisch.id, service.id): new} if new else {}
            assert tallies() == brute_force(expected, who), (old, new)


# --- the tallies against a rebuild and brute force (property) ------------------------------------

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PLACES = (KIEL, KRUMMWISCH, FELDE, ARKEBEK)  # a kreisfreie Stadt, two in one Kreis, one in another
OZG_IDS = tuple(ozg_id for ozg_id, *_ in SMALL_CATALOGUE)  # incl. 10999 of the Land

# One step reports a few successive values for one (municipality, service) pair -- so that levels
# go up, down and back to nothing -- or changes who provides a service.
report = st.tuples(st.integers(0, 4), st.sampled_from(["", "", "https://service.example/antrag"]))
status_change = st.tuples(
    st.just("status"),
    st.sampled_from(PLACES),
    st.sampled_from(OZG_IDS),
    st.lists(report, min_size=1, max_size=4),
)
responsibility_change = st.tuples(
    st.just("responsibility"), st.sampled_from(OZG_IDS), st.sampled_from(["municipal", "land", "bund"])
)
changes = st.lists(st.one_of(status_change, status_change, status_change, responsibility_change), max_size=10)


@PROPERTY
@given(steps=changes)
def test_kept_tallies_equal_a_rebuild_and_a_brute_force_count(tallied, steps):
    members, catalogue = tallied
    savepoint = db.session.begin_nested()  # every example starts from the same committed state
    try:
        set_scope(db.session, ALL)
        model: dict[tuple[int, int], int] = {}  # what is known, as the calls made it
        who = {service.id: service.responsibility for service in catalogue.values()}
        for step in steps:
            if step[0] == "responsibility":
                _, ozg_id, responsibility = step
                ozg.set_responsibility(db.session, ACTOR, catalogue[ozg_id], responsibility)
                who[catalogue[ozg_id].id] = responsibility
                continue
            _, key, ozg_id, reports = step
            place, service = members[key], catalogue[ozg_id]
            for maturity, url in reports:
                before = model.get((place.id, service.id))
                counted = "" if who[service.id] == "municipal" else ", not counted"
                event(f"level {before or 0} to {maturity}{' (url)' if url else ''}{counted}")
                ozg.set_status(db.session, ACTOR, place, service, maturity=maturity, url=url)
                if maturity == 0 and not url:
                    model.pop((place.id, service.id), None)
                else:
                    model[(place.id, service.id)] = maturity
        kept = tallies()
        assert stored_maturities() == model
        assert kept == brute_force(model, who)
        ozg.recompute_tallies(db.session)
        assert tallies() == kept
    finally:
        savepoint.rollback()


# --- responsibility ------------------------------------------------------------------------------


def test_set_responsibility_moves_a_service_out_of_and_into_the_counts(tallied):
    members, catalogue = tallied
    elterngeld = catalogue["10000"]
    ozg.set_status(db.session, ACTOR, members[KIEL], elterngeld, maturity=4)
    ozg.set_status(db.session, ACTOR, members[KRUMMWISCH], catalogue["10003"], maturity=3)
    assert tallies()[("land", 0, "")] == (1106 * 4, 0, 0, 1, 1)
    ozg.set_responsibility(db.session, ACTOR, elterngeld, "bund")
    kept = tallies()
    assert kept[("land", 0, "")] == (1106 * 3, 0, 0, 1, 0)
    assert kept[("land", 0, "Familie & Kind")] == (1106 * 1, 0, 0, 1, 0)
    assert kept == brute_force(stored_maturities(), responsibilities())
    # a status reported meanwhile is kept but not counted
    ozg.set_status(db.session, ACTOR, members[LUEBECK], elterngeld, maturity=3)
    assert tallies() == kept
    ozg.set_responsibility(db.session, ACTOR, elterngeld, "municipal")
    assert tallies()[("land", 0, "")] == (1106 * 4, 0, 0, 2, 1)
    assert tallies() == brute_force(stored_maturities(), responsibilities())
    # a Themenfeld with no municipal service left has no tally rows
    for ozg_id in ("10000", "10003"):
        ozg.set_responsibility(db.session, ACTOR, catalogue[ozg_id], "land")
    assert {topic for _, _, topic in tallies()} == {"", "Mobilität & Reisen"}
    db.session.commit()
    set_scope(db.session, ALL)
    events = db.session.execute(
        select(AuditEvent.before, AuditEvent.after).where(AuditEvent.entity == "ozg_service")
    ).all()
    assert [(b["responsibility"], a["responsibility"]) for b, a in events] == [
        ("municipal", "bund"),
        ("bund", "municipal"),
        ("municipal", "land"),
        ("municipal", "land"),
    ]


def test_set_responsibility_refuses_unknown_values_and_ignores_no_change(tallied):
    _members, catalogue = tallied
    before = state()
    for value in ("kreis", "", None, "Municipal"):
        with pytest.raises(RuleViolation) as caught:
            ozg.set_responsibility(db.session, ACTOR, catalogue["10000"], value)
        assert caught.value.field == "responsibility"
    ozg.set_responsibility(db.session, ACTOR, catalogue["10000"], "municipal")
    assert state() == before


# --- snapshots -----------------------------------------------------------------------------------


def test_take_snapshot_stores_the_land_and_kreis_tallies_once_per_month(tallied):
    members, catalogue = tallied
    ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10000"], maturity=3)
    ozg.set_status(db.session, ACTOR, members[FELDE], catalogue["10169"], maturity=1)
    rows = ozg.take_snapshot(db.session, ACTOR, date(2024, 3, 17))
    kept = {key: values for key, values in tallies().items() if key[0] in ("land", "kreis")}
    assert rows == len(kept) == 16 * 3
    ozg.set_status(db.session, ACTOR, members[LUEBECK], catalogue["10000"], maturity=4)
    assert ozg.take_snapshot(db.session, ACTOR, date(2024, 3, 1)) == 0  # the month is stored
    snapshot = {
        (s.scope, s.scope_id, s.topic): (s.possible, s.level1, s.level2, s.level3, s.level4)
        for s in db.session.execute(
            select(OzgSnapshot).where(OzgSnapshot.month == date(2024, 3, 1))
        ).scalars()
    }
    assert snapshot == kept
    assert ozg.take_snapshot(db.session, ACTOR) == 16 * 3  # default: this month, with today's figures
    this_month = db.session.execute(
        select(OzgSnapshot).where(
            OzgSnapshot.month == date.today().replace(day=1),
            OzgSnapshot.scope == "land",
            OzgSnapshot.topic == "",
        )
    ).scalar_one()
    assert (this_month.level3, this_month.level4) == (1, 1)
    db.session.commit()
    set_scope(db.session, ALL)
    events = db.session.execute(
        select(AuditEvent.entity_id, AuditEvent.after).where(AuditEvent.entity == "ozg_snapshot")
    ).all()
    assert events == [("2024-03-01", {"rows": 48}), (date.today().replace(day=1).isoformat(), {"rows": 48})]


# --- concurrency (PostgreSQL) --------------------------------------------------------------------

CATALOGUE_CSV = "\n".join(
    ["id,name,themenfeld,lebenslage,leika_keys"]
    + [f"{ozg_id},{name},{topic},," for ozg_id, name, topic, _ in SMALL_CATALOGUE]
).encode()
WRITERS = (KRUMMWISCH, FELDE)  # one Kreis (Rendsburg-Eckernförde), one Amt


@pytest.fixture
def race(tmp_path_factory):
    """A committed PostgreSQL database: the shipped municipalities (Krummwisch and Felde members),
    the small catalogue imported, the tallies built."""
    if TEST_DATABASE_URL is None:
        pytest.skip(
            "PostgreSQL only (set ITVSH_TEST_DATABASE_URL): on SQLite a unit of work takes the write "
            "lock when it begins (BEGIN IMMEDIATE), so no two writers ever run side by side"
        )
    url = migrated_database(tmp_path_factory, "ozg_race")
    app = create_app(config_for(url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 8, "max_overflow": 0}))
    with app.app_context():
        set_scope(db.session, ALL)
        shipped = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()
        import_municipalities(db.session, ACTOR, shipped, source="test")
        writers = (
            db.session.execute(select(Municipality).where(Municipality.key.in_(WRITERS))).scalars().all()
        )
        tenant_services.join_many(db.session, ACTOR, writers, date(2019, 1, 1))
        import_catalogue(db.session, ACTOR, CATALOGUE_CSV, source="small.csv")
        db.session.commit()
        set_scope(db.session, ALL)
        ids = {m.key: m.id for m in writers}
        services = dict(db.session.execute(select(OzgService.ozg_id, OzgService.id)).all())
        db.session.remove()
    try:
        yield app, ids, services
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(url)


def _report_together(app, reports: list[tuple[int, int, int]]) -> None:
    """Each (municipality id, service id, maturity) reported in its own thread, app context and
    connection, all released at once, each committed."""
    start = threading.Barrier(len(reports))
    errors: list[BaseException] = []

    def writer(municipality_id: int, service_id: int, maturity: int) -> None:
        try:
            with app.app_context():
                set_scope(db.session, ALL)
                municipality = db.session.get(Municipality, municipality_id)
                service = db.session.get(OzgService, service_id)
                db.session.commit()  # loaded; now all start their unit of work together
                set_scope(db.session, ALL)
                start.wait(timeout=60)
                try:
                    ozg.set_status(db.session, ACTOR, municipality, service, maturity=maturity)
                    db.session.commit()
                finally:
                    db.session.remove()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=report) for report in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hangs"
    assert errors == [], errors


def test_concurrent_reports_in_one_kreis_all_land_and_the_tallies_stay_exact(race):
    app, ids, services = race
    krummwisch, felde = ids[KRUMMWISCH], ids[FELDE]
    rounds = [
        [(krummwisch, services["10000"], 3), (felde, services["10169"], 4)],
        [(krummwisch, services["10169"], 2), (felde, services["10000"], 1)],
        [(krummwisch, services["10000"], 4), (felde, services["10169"], 0)],
        [(krummwisch, services["10003"], 1), (felde, services["10170"], 3)],
        [  # four at once, two per municipality
            (krummwisch, services["10170"], 4),
            (krummwisch, services["10003"], 2),
            (felde, services["10003"], 3),
            (felde, services["10000"], 2),
        ],
    ]
    expected: dict[tuple[int, int], int] = {}
    for reports in rounds:
        _report_together(app, reports)
        for municipality_id, service_id, maturity in reports:
            if maturity:
                expected[(municipality_id, service_id)] = maturity
            else:
                expected.pop((municipality_id, service_id), None)
        with app.app_context():
            set_scope(db.session, ALL)
            assert stored_maturities() == expected
            assert tallies() == brute_force(expected, responsibilities())
            db.session.remove()
    with app.app_context():
        set_scope(db.session, ALL)
        kept = tallies()
        ozg.recompute_tallies(db.session)
        assert tallies() == kept
        db.session.rollback()
        audited = db.session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "ozg_status")
        ).scalar_one()
        assert audited == sum(len(reports) for reports in rounds)  # every report changed something
        assert verify_chain(db.session).ok
        db.session.remove()
