"""The staffing services (itvsh/staffing/services.py): every rule and every bad input of issue 5.

Each refusal is checked three ways (like tests/funding/test_ledger.py): the field and what the
message names, nothing pending in the session when it is raised, and -- after the rollback the
views do -- no row and no audit event changed. Then the register, secondments, assignments and
their capacity rule, the personnel cost in the budget, the audit trail of every change (without a
cost figure), the auditors' names switch, the effort per target and the capacity months (with a
statement count that does not grow with the number of people)."""

from __future__ import annotations

import re
from datetime import date
from fractions import Fraction

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.money import MAX_CENTS
from itvsh.core.rules import RuleViolation
from itvsh.core.settings import Setting
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding.models import Allocation, BudgetCategory
from itvsh.staffing import services
from itvsh.staffing.models import Assignment, Secondment, StaffCost, StaffMember
from itvsh.tenants import services as tenant_services
from tests.api.test_query_count import recorded_statements
from tests.staffing.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER

D = date


@pytest.fixture(autouse=True)
def english(app):
    """Messages in English (the German catalogue is added separately)."""
    with app.test_request_context("/"), force_locale("en"):
        yield


@pytest.fixture
def anna(app) -> StaffMember:
    """Anna Beispiel as in tests/staffing/conftest.py, without the 1,201 municipalities: for the
    tests that need no member (they run several times faster)."""
    set_scope(db.session, ALL)
    member = services.create_staff_member(
        db.session,
        ACTOR,
        name="Anna Beispiel",
        work_email="anna.beispiel@itv-sh.example",
        home_authority="Ministerium für Digitalisierung",
        annual_cost_cents=80_000_00,
    )
    commit()
    return member


@pytest.fixture
def annas_secondment(anna) -> Secondment:
    return second(anna, D(2019, 1, 1), None, 1000, cost_bearer="federation")


# --- helpers --------------------------------------------------------------------------------------


def commit() -> None:
    db.session.commit()
    set_scope(db.session, ALL)


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def last_seq() -> int:
    return db.session.execute(select(func.coalesce(func.max(AuditEvent.seq), 0))).scalar_one()


def events_after(seq: int) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)).scalars()
    )


def state() -> dict:
    """Everything a refused call must leave as it was."""
    set_scope(db.session, ALL)
    return {
        "staff": db.session.execute(
            select(
                StaffMember.id,
                StaffMember.name,
                StaffMember.work_email,
                StaffMember.home_authority,
                StaffMember.notes,
                StaffMember.annual_cost_cents,
                StaffMember.pseudonym,
            ).order_by(StaffMember.id)
        ).all(),
        "secondments": db.session.execute(
            select(
                Secondment.id,
                Secondment.instrument,
                Secondment.starts_on,
                Secondment.ends_on,
                Secondment.fte,
                Secondment.cost_bearer,
                Secondment.legal_reference,
                Secondment.note,
            ).order_by(Secondment.id)
        ).all(),
        "assignments": db.session.execute(
            select(
                Assignment.id,
                Assignment.secondment_id,
                Assignment.municipality_id,
                Assignment.starts_on,
                Assignment.ends_on,
                Assignment.fte,
                Assignment.role,
            ).order_by(Assignment.id)
        ).all(),
        "costs": db.session.execute(
            select(StaffCost.id, StaffCost.amount_cents).order_by(StaffCost.id)
        ).all(),
        "allocations": count(Allocation),
        "settings": db.session.execute(select(Setting.key, Setting.value).order_by(Setting.key)).all(),
        "events": count(AuditEvent),
    }


def refused(service, *args, field: str | None, **kwargs) -> RuleViolation:
    """Call ``service(db.session, *args, **kwargs)``, expect a RuleViolation on ``field``, and prove
    that nothing was pending when it was raised and nothing at all remains after the rollback."""
    before = state()
    with pytest.raises(RuleViolation) as caught:
        service(db.session, *args, **kwargs)
    refusal = caught.value
    assert not db.session.new and not db.session.deleted, "an object was added before the refusal"
    assert not [o for o in db.session.dirty if db.session.is_modified(o)], "an object was changed"
    assert state() == before, "something was flushed before the refusal"
    db.session.rollback()
    db.session.commit()  # would write any audit event still pending: there must be none
    assert state() == before
    set_scope(db.session, ALL)
    assert refusal.field == field, refusal.message
    assert refusal.as_errors() == {field or "_schema": [refusal.message]}
    return refusal


def assign(person, municipality, start, end, fte, role="") -> Assignment:
    assignment = services.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=municipality,
        starts_on=start,
        ends_on=end,
        fte=fte,
        role=role,
    )
    commit()
    return assignment


def second(person, start, end, fte=1000, *, cost_bearer="land", instrument="abordnung") -> Secondment:
    secondment = services.create_secondment(
        db.session,
        ACTOR,
        staff_member=person,
        instrument=instrument,
        starts_on=start,
        ends_on=end,
        fte=fte,
        cost_bearer=cost_bearer,
    )
    commit()
    return secondment


def new_person(name="Ben Muster", email="ben.muster@itv-sh.example", cost=None) -> StaffMember:
    member = services.create_staff_member(
        db.session, ACTOR, name=name, work_email=email, home_authority="Landesamt", annual_cost_cents=cost
    )
    commit()
    return member


def assignment_kwargs(person, municipality, start, end, fte, **extra) -> dict:
    return dict(
        staff_member=person, municipality=municipality, starts_on=start, ends_on=end, fte=fte, **extra
    )


def ids_named(message: str) -> set[int]:
    return {int(n) for n in re.findall(r"#(\d+)", message)}


# --- secondments ----------------------------------------------------------------------------------


def test_secondments_never_overlap_open_ends_included(anna, annas_secondment):
    person = anna

    def secondment_of(start, end):
        return dict(staff_member=person, instrument="zuweisung", starts_on=start, ends_on=end, fte=500)

    refusal = refused(
        services.create_secondment, ACTOR, **secondment_of(D(2030, 1, 1), None), field="starts_on"
    )
    assert "Anna Beispiel" in refusal.message and "2019-01-01" in refusal.message
    assert "open end" in refusal.message
    refused(services.create_secondment, ACTOR, **secondment_of(D(2010, 1, 1), None), field="starts_on")
    # sharing one day (the open secondment's first) is an overlap ...
    refused(
        services.create_secondment, ACTOR, **secondment_of(D(2018, 6, 1), D(2019, 1, 1)), field="starts_on"
    )
    # ... ending the day before is none
    earlier = second(person, D(2018, 1, 1), D(2018, 12, 31), 500)
    refused(
        services.create_secondment, ACTOR, **secondment_of(D(2018, 3, 1), D(2018, 3, 31)), field="starts_on"
    )
    refused(services.update_secondment, ACTOR, earlier, ends_on=D(2019, 1, 1), field="starts_on")
    refused(services.update_secondment, ACTOR, earlier, ends_on=None, field="starts_on")
    assert [(s.starts_on, s.ends_on) for s in services._secondments_of(db.session, person.id)] == [
        (D(2018, 1, 1), D(2018, 12, 31)),
        (D(2019, 1, 1), None),
    ]


BAD_SECONDMENTS = [
    ({"fte": 1001}, "fte", "above 100 %"),
    ({"fte": 0}, "fte", "above 0 %"),
    ({"fte": -500}, "fte", "above 0 %"),
    ({"fte": 500.0}, "fte", "whole number"),
    ({"fte": "500"}, "fte", "whole number"),
    ({"fte": True}, "fte", "whole number"),
    ({"fte": None}, "fte", "whole number"),
    ({"ends_on": D(2019, 12, 31)}, "ends_on", "before the first day"),
    ({"starts_on": "2020-01-01"}, "starts_on", "first day"),
    ({"starts_on": None}, "starts_on", "first day"),
    ({"ends_on": "2020-12-31"}, "ends_on", "not a date"),
    ({"starts_on": D(1999, 12, 31)}, "starts_on", "between 2000 and 2100"),
    ({"ends_on": D(2101, 1, 1)}, "ends_on", "between 2000 and 2100"),
    ({"instrument": "leihe"}, "instrument", "offered values"),
    ({"cost_bearer": "kreis"}, "cost_bearer", "offered values"),
    ({"legal_reference": "x" * 301}, "legal_reference", "300"),
    ({"note": "x" * 5001}, "note", "5000"),
    ({"note": 42}, "note", "text"),
]


@pytest.mark.parametrize(("change", "field", "said"), BAD_SECONDMENTS)
def test_bad_secondments_are_refused(anna, change, field, said):
    person = anna
    values = dict(instrument="abordnung", starts_on=D(2020, 1, 1), ends_on=D(2020, 12, 31), fte=500)
    refusal = refused(
        services.create_secondment, ACTOR, staff_member=person, **(values | change), field=field
    )
    assert said in refusal.message


@pytest.mark.parametrize(("change", "field", "said"), BAD_SECONDMENTS)
def test_bad_secondment_changes_are_refused(annas_secondment, change, field, said):
    secondment = annas_secondment
    if change == {"ends_on": D(2019, 12, 31)}:  # fine for this secondment (from 2019-01-01)
        change = {"ends_on": D(2018, 12, 31)}
    refusal = refused(services.update_secondment, ACTOR, secondment, **change, field=field)
    assert said in refusal.message


def test_a_secondment_change_must_keep_its_assignments(members, person, secondment):
    year = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 12, 31), 600)
    refusal = refused(services.update_secondment, ACTOR, secondment, ends_on=D(2020, 6, 30), field="ends_on")
    assert f"#{year.id}" in refusal.message and "2020-01-01" in refusal.message
    refusal = refused(
        services.update_secondment, ACTOR, secondment, starts_on=D(2020, 2, 1), field="starts_on"
    )
    assert f"#{year.id}" in refusal.message
    refusal = refused(services.update_secondment, ACTOR, secondment, fte=500, field="fte")
    assert ids_named(refusal.message) == {year.id}
    assert (
        refusal.message.startswith("On 2020-01-01 ")
        and "60 %" in refusal.message
        and "50 %" in refusal.message
    )
    # exactly enough is enough; the period may shrink to the assignment's
    seq = last_seq()
    services.update_secondment(
        db.session, ACTOR, secondment, fte=600, ends_on=D(2020, 12, 31), note="befristet"
    )
    commit()
    [event] = events_after(seq)
    assert (event.action, event.entity, event.entity_id) == ("update", "secondment", str(secondment.id))
    assert (event.before["fte"], event.after["fte"]) == (1000, 600)
    assert (event.before["ends_on"], event.after["ends_on"]) == (None, "2020-12-31")
    # an unchanged secondment writes no event; an unknown field is refused
    services.update_secondment(db.session, ACTOR, secondment, fte=600)
    commit()
    assert events_after(seq) == [event]
    refused(services.update_secondment, ACTOR, secondment, staff_member_id=99, field=None)


def test_an_open_assignment_needs_an_open_secondment(members, person, secondment):
    open_ = assign(person, members[KIEL], D(2021, 1, 1), None, 200)
    refusal = refused(services.update_secondment, ACTOR, secondment, ends_on=D(2099, 12, 31), field="ends_on")
    assert f"#{open_.id}" in refusal.message and "open end" in refusal.message


def test_a_secondment_with_assignments_or_booked_cost_stays(members, person, secondment, open_year):
    work = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 500)
    refusal = refused(services.delete_secondment, ACTOR, secondment, field="secondment")
    assert "assignments" in refusal.message
    services.delete_assignment(db.session, ACTOR, work)
    commit()
    services.book_staff_cost(db.session, ACTOR, secondment, open_year.year)
    commit()
    refusal = refused(services.delete_secondment, ACTOR, secondment, field="secondment")
    assert "booked" in refusal.message


def test_a_secondment_entered_by_mistake_is_deleted_and_audited(anna):
    person = anna
    mistake = second(person, D(2020, 1, 1), D(2020, 12, 31))
    seq, mistake_id = last_seq(), mistake.id
    services.delete_secondment(db.session, ACTOR, mistake)
    commit()
    assert db.session.get(Secondment, mistake_id) is None
    [event] = events_after(seq)
    assert (event.action, event.entity, event.entity_id) == ("delete", "secondment", str(mistake_id))
    assert event.before["starts_on"] == "2020-01-01" and event.after is None


# --- assignments: the capacity rule ---------------------------------------------------------------


def test_an_over_planned_day_is_refused_naming_conflicts_and_the_first_day(members, person, secondment):
    first = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 6, 30), 600)
    second_ = assign(person, members[KRUMMWISCH], D(2020, 3, 1), None, 300)
    unrelated = assign(person, members[AMT_ACHTERWEHR], D(2020, 8, 1), D(2020, 8, 31), 100)
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KREIS_RD_ECK], D(2020, 2, 1), D(2020, 12, 31), 200),
        field="fte",
    )
    # February: 600 + 200 fits; on 1 March 600 + 300 + 200 = 110 %
    assert refusal.message.startswith("On 2020-03-01 Anna Beispiel would be planned at 110 %")
    assert "above the secondment's 100 %" in refusal.message
    assert ids_named(refusal.message) == {first.id, second_.id}  # not the unrelated one
    assert unrelated.id not in ids_named(refusal.message)
    assert "2020-01-01" in refusal.message and "2020-06-30" in refusal.message  # their periods
    assert "Nothing was changed." in refusal.message
    # 100 % exactly is fine
    assign(person, members[KREIS_RD_ECK], D(2020, 2, 1), D(2020, 12, 31), 100)


def test_ending_the_day_before_fits_ending_the_same_day_does_not(members, person, secondment):
    first = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 6, 30), 1000)
    assign(person, members[KRUMMWISCH], D(2020, 7, 1), D(2020, 12, 31), 1000)
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KREIS_RD_ECK], D(2020, 6, 30), D(2020, 6, 30), 1),
        field="fte",
    )
    assert refusal.message.startswith("On 2020-06-30 ") and ids_named(refusal.message) == {first.id}
    assert "100,1 %" in refusal.message


def test_a_one_day_assignment(members, person, secondment):
    day = D(2024, 2, 29)
    single = assign(person, members[KIEL], day, day, 1000)
    assert (single.starts_on, single.ends_on, single.secondment_id) == (day, day, secondment.id)
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KRUMMWISCH], D(2024, 2, 1), None, 1),
        field="fte",
    )
    assert refusal.message.startswith("On 2024-02-29 ") and ids_named(refusal.message) == {single.id}
    assign(person, members[KRUMMWISCH], D(2024, 2, 1), D(2024, 2, 28), 1000)
    assign(person, members[KRUMMWISCH], D(2024, 3, 1), None, 1000)


def test_open_ended_assignments_meet_in_the_future(members, person, secondment):
    forever = assign(person, members[KIEL], D(2020, 1, 1), None, 600)
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KRUMMWISCH], D(2030, 1, 1), D(2030, 12, 31), 500),
        field="fte",
    )
    assert refusal.message.startswith("On 2030-01-01 ") and ids_named(refusal.message) == {forever.id}
    assert "open end" in refusal.message  # the conflicting assignment's period
    assign(person, members[KRUMMWISCH], D(2025, 1, 1), None, 400)
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KREIS_RD_ECK], D(2099, 12, 31), D(2099, 12, 31), 1),
        field="fte",
    )


BAD_SHARES = [
    (1001, "above 100 %"),
    (2000, "above 100 %"),
    (0, "above 0 %"),
    (-1, "above 0 %"),
    (500.0, "whole number"),
    ("500", "whole number"),
    (True, "whole number"),
    (False, "whole number"),
    (None, "whole number"),
]
BAD_DAYS = [
    (D(2020, 1, 31), D(2020, 1, 1), "ends_on", "before the first day"),
    ("2020-01-01", None, "starts_on", "first day"),
    (None, None, "starts_on", "first day"),
    (D(2020, 1, 1), "2020-01-31", "ends_on", "not a date"),
    (D(2020, 1, 1), D(2101, 1, 1), "ends_on", "between 2000 and 2100"),
]


def test_bad_shares_and_days_are_refused(members, person, secondment):
    """One test for all cases (the members fixture is the slow part); each refusal is checked."""
    kiel = members[KIEL]
    work = assign(person, kiel, D(2020, 1, 1), D(2020, 1, 31), 500)
    for fte, said in BAD_SHARES:
        refusal = refused(
            services.create_assignment,
            ACTOR,
            **assignment_kwargs(person, kiel, D(2020, 2, 1), D(2020, 2, 29), fte),
            field="fte",
        )
        assert said in refusal.message, fte
        refusal = refused(services.update_assignment, ACTOR, work, fte=fte, field="fte")
        assert said in refusal.message, fte
    for start, end, field, said in BAD_DAYS:
        refusal = refused(
            services.create_assignment, ACTOR, **assignment_kwargs(person, kiel, start, end, 500), field=field
        )
        assert said in refusal.message, (start, end)
        refusal = refused(services.update_assignment, ACTOR, work, starts_on=start, ends_on=end, field=field)
        assert said in refusal.message, (start, end)


def test_an_unknown_person_is_refused(members, person, secondment):
    refusal = refused(services.lock_staff_member, 987_654, field="staff_member")
    assert "not in the staff register" in refusal.message
    ghost = StaffMember(id=987_654, name="Niemand", work_email="niemand@itv-sh.example")
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(ghost, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 500),
        field="staff_member",
    )
    refused(
        services.create_secondment,
        ACTOR,
        staff_member=ghost,
        instrument="abordnung",
        starts_on=D(2020, 1, 1),
        ends_on=None,
        fte=1000,
        field="staff_member",
    )
    assert ghost not in db.session


def test_the_target_must_be_a_current_member(members, person, secondment):
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[NON_MEMBER], D(2020, 1, 1), D(2020, 1, 31), 100),
        field="municipality",
    )
    assert members[NON_MEMBER].name in refusal.message and "2020-01-01" in refusal.message
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, None, D(2020, 1, 1), D(2020, 1, 31), 100),
        field="municipality",
    )
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KIEL].id, D(2020, 1, 1), D(2020, 1, 31), 100),
        field="municipality",
    )
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 100, target_kind="kreis"),
        field="target_kind",
    )


def test_a_member_that_leaves_during_the_assignment(members, person, secondment):
    krummwisch = members[KRUMMWISCH]
    tenant_services.leave(db.session, ACTOR, krummwisch, D(2021, 1, 1))
    commit()
    for end in (D(2021, 6, 30), D(2021, 1, 1), None):
        refusal = refused(
            services.create_assignment,
            ACTOR,
            **assignment_kwargs(person, krummwisch, D(2020, 6, 1), end, 500),
            field="ends_on",
        )
        assert krummwisch.name in refusal.message and "2021-01-01" in refusal.message
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, krummwisch, D(2021, 2, 1), D(2021, 2, 28), 500),
        field="municipality",
    )
    assert "not a member" in refusal.message
    last_day = assign(person, krummwisch, D(2020, 6, 1), D(2020, 12, 31), 500)  # its last member day
    refused(services.update_assignment, ACTOR, last_day, ends_on=None, field="ends_on")


def test_an_assignment_lies_inside_one_secondment(members):
    person = new_person()
    first = second(person, D(2020, 1, 1), D(2020, 6, 30), 1000)
    then = second(person, D(2020, 7, 1), D(2020, 12, 31), 500)
    later = second(person, D(2021, 2, 1), None, 800)
    kiel = members[KIEL]
    # before any secondment, in the gap, and across two adjacent secondments
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, kiel, D(2019, 12, 31), None, 100),
        field="starts_on",
    )
    assert "Ben Muster is not seconded to the federation on 2019-12-31" in refusal.message
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, kiel, D(2021, 1, 15), D(2021, 3, 1), 100),
        field="starts_on",
    )
    assert "2021-01-15" in refusal.message
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, kiel, D(2020, 6, 1), D(2020, 7, 31), 100),
        field="ends_on",
    )
    assert "2020-06-30" in refusal.message and "Ben Muster" in refusal.message
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, kiel, D(2020, 7, 1), None, 100),
        field="ends_on",
    )
    # each secondment is its own limit
    refusal = refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, kiel, D(2020, 9, 1), D(2020, 9, 30), 600),
        field="fte",
    )
    assert "above the secondment's 50 %" in refusal.message and refusal.message.startswith("On 2020-09-01 ")
    assert [
        assign(person, kiel, D(2020, 1, 1), D(2020, 6, 30), 1000).secondment_id,
        assign(person, kiel, D(2020, 7, 1), D(2020, 12, 31), 500).secondment_id,
        assign(person, kiel, D(2021, 2, 1), None, 800).secondment_id,
    ] == [first.id, then.id, later.id]


def test_assignments_are_changed_under_the_same_rules(members, person, secondment):
    mine = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 6, 30), 600, role="Fachverfahren")
    other = assign(person, members[KRUMMWISCH], D(2020, 4, 1), D(2020, 12, 31), 400)
    # its own old share does not count against it
    services.update_assignment(db.session, ACTOR, mine, fte=600, starts_on=D(2020, 1, 2))
    commit()
    refusal = refused(services.update_assignment, ACTOR, mine, fte=700, field="fte")
    assert refusal.message.startswith("On 2020-04-01 ") and ids_named(refusal.message) == {other.id}
    refused(services.update_assignment, ACTOR, other, starts_on=D(2020, 1, 1), fte=500, field="fte")
    refused(services.update_assignment, ACTOR, mine, ends_on=D(2019, 12, 31), field="ends_on")
    refused(services.update_assignment, ACTOR, mine, starts_on=D(2018, 1, 1), field="starts_on")
    refused(services.update_assignment, ACTOR, mine, fte=0, field="fte")
    refused(services.update_assignment, ACTOR, mine, municipality=members[NON_MEMBER], field="municipality")
    refused(services.update_assignment, ACTOR, mine, role="x" * 301, field="role")
    refused(services.update_assignment, ACTOR, mine, staff_member=person, field=None)
    # a real change is audited with before and after; no change writes nothing
    seq = last_seq()
    services.update_assignment(
        db.session, ACTOR, mine, municipality=members[AMT_ACHTERWEHR], ends_on=D(2020, 3, 31), role="Amt"
    )
    commit()
    [event] = events_after(seq)
    assert (event.action, event.entity, event.entity_id) == ("update", "assignment", str(mine.id))
    assert event.before["municipality_id"] == members[KIEL].id
    assert event.after["municipality_id"] == members[AMT_ACHTERWEHR].id
    assert (event.before["ends_on"], event.after["ends_on"]) == ("2020-06-30", "2020-03-31")
    assert (event.before["role"], event.after["role"]) == ("Fachverfahren", "Amt")
    assert mine.municipality_id == members[AMT_ACHTERWEHR].id and mine.target_label.startswith("Achterwehr")
    # now there is room for 60 % from April on
    services.update_assignment(db.session, ACTOR, other, fte=1000, starts_on=D(2020, 4, 1))
    commit()
    services.update_assignment(db.session, ACTOR, mine, ends_on=D(2020, 3, 31))
    commit()
    assert len(events_after(seq)) == 2


def test_an_assignment_entered_by_mistake_is_deleted_and_audited(members, person, secondment):
    work = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 500)
    seq, work_id = last_seq(), work.id
    services.delete_assignment(db.session, ACTOR, work)
    commit()
    assert db.session.get(Assignment, work_id) is None
    [event] = events_after(seq)
    assert (event.action, event.entity, event.entity_id) == ("delete", "assignment", str(work_id))
    assert event.before["fte"] == 500 and event.before["municipality_id"] == members[KIEL].id
    # the freed time can be planned again
    assign(person, members[KRUMMWISCH], D(2020, 1, 1), D(2020, 1, 31), 1000)


def test_a_refused_change_names_only_the_other_assignments(members, person, secondment):
    """The changed assignment is not its own conflict (nor named with its old share)."""
    mine = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 6, 30), 600)
    other = assign(person, members[KRUMMWISCH], D(2020, 4, 1), D(2020, 12, 31), 400)
    refusal = refused(services.update_assignment, ACTOR, mine, fte=700, field="fte")
    assert ids_named(refusal.message) == {other.id}


def test_a_too_long_role_is_refused(members, person, secondment):
    refused(
        services.create_assignment,
        ACTOR,
        **assignment_kwargs(person, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 500, role="x" * 301),
        field="role",
    )
    assert assign(person, members[KIEL], D(2020, 1, 1), D(2020, 1, 31), 500, role="  x ").role == "x"


# --- the staff register ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 7}, "name"),
        ({"work_email": ""}, "work_email"),
        ({"work_email": "not-an-email"}, "work_email"),
        ({"work_email": "a@b"}, "work_email"),
        ({"work_email": "two@at@itv-sh.example"}, "work_email"),
        ({"work_email": "x" * 250 + "@itv-sh.example"}, "work_email"),
        ({"work_email": None}, "work_email"),
        ({"work_email": "ANNA.Beispiel@ITV-SH.example "}, "work_email"),  # Anna's, in other case
        ({"annual_cost_cents": -1}, "annual_cost_cents"),
        ({"annual_cost_cents": 100.5}, "annual_cost_cents"),
        ({"annual_cost_cents": "8000000"}, "annual_cost_cents"),
        ({"annual_cost_cents": True}, "annual_cost_cents"),
        ({"annual_cost_cents": MAX_CENTS + 1}, "annual_cost_cents"),
        ({"home_authority": "x" * 201}, "home_authority"),
        ({"notes": "x" * 5001}, "notes"),
    ],
)
def test_bad_staff_register_input_is_refused(anna, change, field):
    person = anna
    values = dict(name="Ben Muster", work_email="ben.muster@itv-sh.example", annual_cost_cents=None)
    refused(services.create_staff_member, ACTOR, **(values | change), field=field)
    email = change.get("work_email")
    if not (isinstance(email, str) and email.strip().lower() == person.work_email):  # hers is fine for her
        refused(services.update_staff_member, ACTOR, person, **change, field=field)


def test_the_register_keeps_emails_unique_and_normalised(anna):
    person = anna
    ben = new_person(email="  Ben.Muster@ITV-SH.example ")
    assert ben.work_email == "ben.muster@itv-sh.example"
    assert re.fullmatch(r"MA-[A-Z2-9]{6}", ben.pseudonym) and ben.pseudonym != person.pseudonym
    refusal = refused(
        services.update_staff_member,
        ACTOR,
        ben,
        work_email="anna.beispiel@itv-sh.example",
        field="work_email",
    )
    assert "Another person" in refusal.message
    services.update_staff_member(
        db.session, ACTOR, ben, work_email="BEN.MUSTER@itv-sh.example", name="Ben M."
    )
    commit()
    assert (ben.work_email, ben.name) == ("ben.muster@itv-sh.example", "Ben M.")
    refused(services.update_staff_member, ACTOR, ben, pseudonym="MA-AAAAAA", field=None)
    assert count(StaffMember) == 2


def test_no_cost_figure_and_no_notes_in_the_staff_audit_trail(anna):
    person = anna
    seq = last_seq()
    services.update_staff_member(
        db.session, ACTOR, person, annual_cost_cents=91_234_56, notes="Vertraulich: Teilzeit wegen Pflege"
    )
    commit()
    services.update_staff_member(db.session, ACTOR, person, annual_cost_cents=None)
    commit()
    services.update_staff_member(db.session, ACTOR, person, annual_cost_cents=None)  # no change
    commit()
    changes = events_after(seq)
    assert [(e.action, e.entity) for e in changes] == [("update", "staff_member")] * 2
    assert changes[0].after["annual_cost_changed"] is True
    assert (changes[1].before["annual_cost_set"], changes[1].after["annual_cost_set"]) == (True, False)
    everything = (
        db.session.execute(select(AuditEvent).where(AuditEvent.entity == "staff_member")).scalars().all()
    )
    assert everything[0].action == "create"
    for event in everything:
        for figure in ("8000000", "80000", "9123456", "91234", "annual_cost_cents", "Vertraulich"):
            assert figure not in event.payload, (event.action, figure)
    assert verify_chain(db.session).ok


def test_sensitive_reads_are_recorded_without_values(anna):
    person = anna
    seq = last_seq()
    services.record_sensitive_read(db.session, ACTOR, person, "admin details")
    commit()
    [event] = events_after(seq)
    assert (event.action, event.entity, event.entity_id) == ("sensitive_read", "staff_member", str(person.id))
    assert event.after == {"view": "admin details"} and event.before is None
    assert "Anna" not in event.payload and "anna.beispiel" not in event.payload


def test_names_are_visible_to_auditors_only_when_allowed(make_user, anna):
    person = anna
    admin, staff, auditor, municipal = (
        make_user("admin"),
        make_user("staff"),
        make_user("auditor"),
        make_user("municipality"),
    )
    set_scope(db.session, ALL)
    assert [services.names_visible(db.session, u) for u in (admin, staff, auditor, municipal, None)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert services.shown_name(person, False) == person.pseudonym
    assert services.shown_name(person, True) == "Anna Beispiel"
    seq = last_seq()
    services.allow_auditors_names(db.session, admin, True)
    commit()
    services.allow_auditors_names(db.session, admin, True)  # no change, no event
    commit()
    assert services.names_visible(db.session, auditor) and services.names_visible(db.session, staff)
    assert not services.names_visible(db.session, municipal)
    services.allow_auditors_names(db.session, admin, False)
    commit()
    assert not services.names_visible(db.session, auditor)
    changes = events_after(seq)
    assert [(e.action, e.entity, e.actor, e.before, e.after) for e in changes] == [
        ("update", "setting", admin.email, {"value": None}, {"value": True}),
        ("update", "setting", admin.email, {"value": True}, {"value": False}),
    ]


# --- every change is audited ----------------------------------------------------------------------


def test_every_change_writes_one_audit_event(members, open_year):
    seq = last_seq()
    person = new_person(cost=60_000_00)
    services.update_staff_member(db.session, ACTOR, person, home_authority="Staatskanzlei")
    commit()
    first = second(person, D(2019, 1, 1), None, 1000, cost_bearer="federation")
    services.update_secondment(db.session, ACTOR, first, legal_reference="§ 27 BeamtStG")
    commit()
    work = assign(person, members[KIEL], D(2020, 1, 1), D(2020, 12, 31), 500)
    services.update_assignment(db.session, ACTOR, work, fte=400)
    commit()
    services.delete_assignment(db.session, ACTOR, work)
    commit()
    services.update_secondment(db.session, ACTOR, first, ends_on=D(2020, 12, 31))
    commit()
    mistake = second(person, D(2021, 1, 1), D(2021, 12, 31), 500)
    services.delete_secondment(db.session, ACTOR, mistake)
    commit()
    services.record_sensitive_read(db.session, ACTOR, person, "api")
    commit()
    services.update_secondment(db.session, ACTOR, first, ends_on=None)
    commit()
    services.book_staff_cost(db.session, ACTOR, first, open_year.year)
    commit()
    staffing = [
        (e.action, e.entity)
        for e in events_after(seq)
        if e.entity in ("staff_member", "secondment", "assignment", "setting")
    ]
    assert staffing == [
        ("create", "staff_member"),
        ("update", "staff_member"),
        ("create", "secondment"),
        ("update", "secondment"),
        ("create", "assignment"),
        ("update", "assignment"),
        ("delete", "assignment"),
        ("update", "secondment"),
        ("create", "secondment"),
        ("delete", "secondment"),
        ("sensitive_read", "staff_member"),
        ("update", "secondment"),
        ("book_cost", "secondment"),
    ]
    assert all(e.actor == ACTOR for e in events_after(seq))
    assert verify_chain(db.session).ok


# --- personnel cost in the budget -----------------------------------------------------------------


def test_a_land_borne_secondment_has_no_cost_to_book(open_year, person):
    land = second(person, D(2019, 1, 1), None, 1000, cost_bearer="land")
    refusal = refused(services.book_staff_cost, ACTOR, land, open_year.year, field="cost_bearer")
    assert "Land" in refusal.message


def test_no_cost_on_record_no_year_or_no_days_in_it(open_year, members):
    person = new_person()
    federation = second(person, D(2019, 1, 1), None, 1000, cost_bearer="federation")
    refusal = refused(services.book_staff_cost, ACTOR, federation, open_year.year, field="annual_cost_cents")
    assert "Ben Muster has no personnel cost on record" in refusal.message
    services.update_staff_member(db.session, ACTOR, person, annual_cost_cents=0)
    commit()
    refused(services.book_staff_cost, ACTOR, federation, open_year.year, field="year")  # nothing to book
    services.update_staff_member(db.session, ACTOR, person, annual_cost_cents=60_000_00)
    commit()
    refusal = refused(services.book_staff_cost, ACTOR, federation, 1999, field="year")
    assert "no fiscal year 1999" in refusal.message
    refused(services.book_staff_cost, ACTOR, federation, str(open_year.year), field="year")
    services.update_secondment(db.session, ACTOR, federation, ends_on=D(open_year.year - 1, 12, 31))
    commit()
    refusal = refused(services.book_staff_cost, ACTOR, federation, open_year.year, field="year")
    assert "does not fall into" in refusal.message


def test_pro_rata_cost_from_mid_year_at_half_time_is_booked_once(open_year, members):
    year = open_year.year
    person = new_person(cost=60_000_00)
    start = D(year, 7, 1)
    half = second(person, start, None, 500, cost_bearer="federation")
    days_in_year = (D(year, 12, 31) - D(year, 1, 1)).days + 1
    exact = Fraction(60_000_00 * 500, 1000) * Fraction((D(year, 12, 31) - start).days + 1, days_in_year)
    expected = int(exact + Fraction(1, 2))  # half up
    assert services.staff_cost_cents(half, year) == expected
    assert services.staff_cost_cents(half, year - 1) == 0
    seq = last_seq()
    cost = services.book_staff_cost(db.session, ACTOR, half, year, on=D(year, 7, 15))
    commit()
    assert cost.amount_cents == expected
    allocation = db.session.get(Allocation, cost.allocation_id)
    category = db.session.get(BudgetCategory, allocation.category_id)
    assert (category.code, allocation.recipient_kind, allocation.status) == (
        "personal",
        "federation",
        "approved",
    )
    assert (allocation.amount_cents, allocation.municipality_id) == (expected, None)
    assert person.pseudonym in allocation.purpose and "Ben" not in allocation.purpose
    assert "50 %" in allocation.purpose and f"{year}-07-01" in allocation.purpose
    assert allocation.file_reference == f"STAFF-{half.id}-{year}"
    booked = [e for e in events_after(seq) if e.entity == "secondment"]
    assert [(e.action, e.after) for e in booked] == [
        ("book_cost", {"year": year, "allocation_id": allocation.id, "amount_cents": expected})
    ]
    refusal = refused(services.book_staff_cost, ACTOR, half, year, field="year")
    assert f"already booked (allocation {allocation.id})" in refusal.message
    assert count(StaffCost) == 1


# --- effort per target ----------------------------------------------------------------------------


def test_effort_by_target_counts_fte_months_per_member_and_kreis(members, person, secondment):
    kiel, krummwisch, amt, kreis = (
        members[KIEL],
        members[KRUMMWISCH],
        members[AMT_ACHTERWEHR],
        members[KREIS_RD_ECK],
    )
    assert krummwisch.kreis_id == kreis.id and amt.kreis_id == kreis.id and kiel.kreis_id is None
    ben = new_person()
    second(ben, D(2019, 1, 1), None, 500)
    assign(person, kiel, D(2020, 1, 1), D(2020, 6, 30), 500)  # 3 FTE-months, Kiel its own Kreis
    assign(person, krummwisch, D(2019, 12, 1), D(2020, 1, 31), 500)  # 0.5 in 2019, 0.5 in 2020
    assign(person, amt, D(2020, 8, 1), D(2020, 9, 30), 500)  # 1
    assign(person, kreis, D(2020, 10, 1), D(2020, 12, 31), 250)  # 0.75, the Kreis's own
    assign(ben, krummwisch, D(2020, 2, 1), D(2020, 2, 29), 500)  # 0.5
    assign(ben, kiel, D(2020, 12, 17), None, 500)  # 15/31 of a half month in 2020
    effort = services.effort_by_target(db.session, 2020)
    late = Fraction(500 * 15, 1000 * 31)
    assert effort.by_municipality == {
        kiel.id: 3 + late,
        krummwisch.id: Fraction(1),
        amt.id: Fraction(1),
        kreis.id: Fraction(3, 4),
    }
    assert effort.by_kreis == {kiel.id: 3 + late, kreis.id: Fraction(11, 4)}
    assert effort.total == Fraction(23, 4) + late
    assert effort.year == 2020
    assert services.effort_by_target(db.session, 2019).by_kreis == {kreis.id: Fraction(1, 2)}
    assert services.effort_by_target(db.session, 2021).by_municipality == {kiel.id: Fraction(6)}
    assert services.effort_by_target(db.session, 2018).total == 0


# --- capacity -------------------------------------------------------------------------------------


def _states(person_capacity) -> list[tuple[str, int, int, str]]:
    return [(m.month.isoformat()[:7], m.available, m.assigned, m.state) for m in person_capacity.months]


def test_capacity_states_per_month(members, person, secondment):
    kiel = members[KIEL]
    assign(person, kiel, D(2020, 2, 1), D(2020, 2, 29), 500)
    assign(person, kiel, D(2020, 3, 1), D(2020, 3, 31), 1000)
    assign(person, kiel, D(2020, 4, 1), D(2020, 4, 15), 1000)  # half the month
    part = new_person()
    second(part, D(2019, 6, 1), D(2020, 3, 15), 500)
    assign(part, kiel, D(2020, 1, 1), D(2020, 1, 31), 500)
    result = services.capacity(db.session, D(2018, 12, 1), D(2020, 4, 30))
    assert [p.staff_member.name for p in result] == ["Anna Beispiel", "Ben Muster"]
    anna, ben = (_states(p) for p in result)
    assert len(anna) == len(ben) == 17
    assert anna[0] == ("2018-12", 0, 0, "none")
    assert anna[1] == ("2019-01", 1000, 0, "free")
    assert anna[-4:] == [
        ("2020-01", 1000, 0, "free"),
        ("2020-02", 1000, 500, "planned"),
        ("2020-03", 1000, 1000, "full"),
        ("2020-04", 1000, 500, "planned"),  # 15 of 30 days
    ]
    assert ben[5] == ("2019-05", 0, 0, "none")
    assert ben[6] == ("2019-06", 500, 0, "free")
    assert ben[-4:] == [
        ("2020-01", 500, 500, "full"),
        ("2020-02", 500, 0, "free"),
        ("2020-03", 242, 0, "free"),  # 15 of 31 days at 50 %: 241.9 -> 242
        ("2020-04", 0, 0, "none"),
    ]
    assert [m.free for m in result[0].months[-4:]] == [1000, 500, 0, 500]
    # only the people asked for
    [only] = services.capacity(db.session, D(2020, 1, 1), D(2020, 1, 31), staff_members=[part])
    assert _states(only) == [("2020-01", 500, 500, "full")]


def test_capacity_shows_over_planned_days_it_did_not_allow(members, person, secondment):
    """Data that bypassed the service (an import, an old migration) shows as over-planned."""
    kiel = members[KIEL]
    assign(person, kiel, D(2020, 5, 1), D(2020, 5, 31), 1000)
    db.session.add(
        Assignment(
            staff_member_id=person.id,
            secondment_id=secondment.id,
            target_kind="member",
            municipality_id=members[KRUMMWISCH].id,
            starts_on=D(2020, 5, 31),
            ends_on=D(2020, 6, 1),
            fte=100,
        )
    )
    commit()
    [row] = services.capacity(db.session, D(2020, 4, 1), D(2020, 7, 31))
    assert [m.state for m in row.months] == ["free", "over", "planned", "free"]
    assert row.months[1].assigned == 1003  # 1000 + 100 on one of 31 days, averaged
    assert (row.months[2].assigned, row.months[2].free) == (3, 997)  # 1 June alone is within


def _fill(people: int) -> None:
    """``people`` more people, each seconded with three assignments."""
    targets = [tenant_services.get_by_key(db.session, key) for key in (KIEL, KRUMMWISCH, AMT_ACHTERWEHR)]
    for n in range(people):
        member = new_person(name=f"Person {n:02d}", email=f"person{n}@itv-sh.example", cost=50_000_00)
        second(member, D(2019, 1, 1), None, 800)
        for k, target in enumerate(targets):
            assign(member, target, D(2019 + k, 1, 1), D(2019 + k, 12, 31) if k < 2 else None, 200 + 100 * k)


def _capacity_statements(**kwargs) -> tuple[int, int]:
    db.session.expunge_all()  # a cold session, as a new request has
    set_scope(db.session, ALL)
    with recorded_statements() as statements:
        result = services.capacity(db.session, D(2019, 1, 1), D(2028, 12, 31), **kwargs)
    assert all(len(p.months) == 120 for p in result)
    return len(statements), len(result)


def test_capacity_costs_the_same_statements_for_1_and_30_people(members, person, secondment):
    assign(person, members[KIEL], D(2019, 1, 1), None, 300)
    small, people = _capacity_statements()
    assert people == 1
    _fill(29)
    large, people = _capacity_statements()
    assert people == 30
    assert small == large
    assert 3 <= large <= 4, large
    # the same when the caller passes the people
    db.session.expunge_all()
    set_scope(db.session, ALL)
    chosen = list(db.session.execute(select(StaffMember).order_by(StaffMember.id)).scalars())
    with recorded_statements() as statements:
        services.capacity(db.session, D(2019, 1, 1), D(2028, 12, 31), staff_members=chosen)
    assert len(statements) == 2
    with recorded_statements() as statements:
        services.capacity(db.session, D(2019, 1, 1), D(2028, 12, 31), staff_members=chosen[:1])
    assert len(statements) == 2
