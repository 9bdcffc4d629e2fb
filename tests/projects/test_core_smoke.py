"""The core of projects and OZG end to end: status changes move the tallies, a rebuild agrees,
projects receive allocations and assignments."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.projects import ozg
from itvsh.projects import services as project_services
from itvsh.projects.models import OzgTally
from itvsh.staffing import services as staffing
from tests.projects.conftest import ACTOR, KIEL, KREIS_RD_ECK, KRUMMWISCH, LUEBECK, NON_MEMBER, category


def _tallies() -> dict:
    rows = db.session.execute(select(OzgTally)).scalars()
    return {
        (t.scope, t.scope_id, t.topic): (t.possible, t.level1, t.level2, t.level3, t.level4)
        for t in rows
        if t.level1 or t.level2 or t.level3 or t.level4
    }


def test_status_changes_move_the_tallies_and_a_rebuild_agrees(members, catalogue):
    ozg.recompute_tallies(db.session)
    kiel, krummwisch = members[KIEL], members[KRUMMWISCH]
    ozg.set_status(db.session, ACTOR, kiel, catalogue["10000"], maturity=3)
    ozg.set_status(db.session, ACTOR, krummwisch, catalogue["10169"], maturity=4)
    ozg.set_status(db.session, ACTOR, krummwisch, catalogue["10169"], maturity=2)  # back down
    ozg.set_status(db.session, ACTOR, krummwisch, catalogue["10999"], maturity=4)  # Land: not counted
    db.session.flush()
    kept = _tallies()
    land = kept[("land", 0, "")]
    assert land[1:] == (0, 1, 1, 0)
    assert land[0] == 1106 * 4  # every Gemeinde x the four municipal services
    assert kept[("kreis", kiel.id, "Familie & Kind")][1:] == (0, 0, 1, 0)  # a kreisfreie Stadt is its Kreis
    assert kept[("kreis", krummwisch.kreis_id, "Mobilität & Reisen")][1:] == (0, 1, 0, 0)
    ozg.recompute_tallies(db.session)
    assert _tallies() == kept


def test_bad_status_input_is_refused(members, catalogue):
    with pytest.raises(RuleViolation) as refused:
        ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10000"], maturity=5)
    assert refused.value.field == "maturity"
    with pytest.raises(RuleViolation) as refused:
        ozg.set_status(db.session, ACTOR, members[NON_MEMBER], catalogue["10000"], maturity=1)
    assert refused.value.field == "municipality"
    with pytest.raises(RuleViolation) as refused:
        ozg.set_status(db.session, ACTOR, members[KREIS_RD_ECK], catalogue["10000"], maturity=1)
    assert refused.value.field == "municipality"
    with pytest.raises(RuleViolation) as refused:
        ozg.set_status(
            db.session, ACTOR, members[LUEBECK], catalogue["10000"], maturity=1, url="javascript:x"
        )
    assert refused.value.field == "url"


def test_projects_receive_money_and_people(members, open_year, project, person, secondment):
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year, "projekte"),
        recipient_kind="project",
        municipality=None,
        project=project,
        purpose="Betrieb",
        amount_cents=10_000_00,
    )
    ledger.approve(db.session, ACTOR, allocation)
    ledger.disburse(db.session, ACTOR, allocation, 2_500_00)
    budget = project_services.project_budgets(db.session, [project.id])[project.id]
    assert (budget.allocated_cents, budget.committed_cents, budget.paid_cents) == (
        10_000_00,
        10_000_00,
        2_500_00,
    )
    assignment = staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2021, 12, 31),
        fte=500,
    )
    assert project_services.project_people(db.session, project) == [assignment]
    project_services.change_status(db.session, ACTOR, project, "completed")
    with pytest.raises(RuleViolation) as refused:
        staffing.create_assignment(
            db.session,
            ACTOR,
            staff_member=person,
            municipality=None,
            project=project,
            target_kind="project",
            starts_on=date(2022, 1, 1),
            ends_on=None,
            fte=100,
        )
    assert refused.value.field == "project"


def test_transitions_are_explicit(members, project):
    with pytest.raises(RuleViolation) as refused:
        project_services.change_status(db.session, ACTOR, project, "idea")
    assert refused.value.field == "status"
    with pytest.raises(RuleViolation) as refused:
        project_services.add_milestone(db.session, ACTOR, project, title="Start", due_on=date(2019, 6, 1))
    assert refused.value.field == "due_on"
