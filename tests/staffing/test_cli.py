"""`itvsh staff ...`: the register, secondments, assignments and capacity from the command line --
happy paths write through the services as "cli"; every refusal exits non-zero naming the option
and writes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing.models import Assignment, Secondment, StaffMember
from tests.staffing.conftest import KIEL, KRUMMWISCH, NON_MEMBER
from tests.staffing.test_api import assign, state

ANNA = "anna.beispiel@itv-sh.example"


def run(runner, *args: str):
    result = runner.invoke(args=["staff", *args])
    set_scope(db.session, ALL)
    return result


def succeeds(runner, *args: str) -> str:
    result = run(runner, *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.output


def fails(runner, *args: str, option: str, before: tuple, contains: str | None = None) -> str:
    """The command exits non-zero, names ``option`` and writes nothing."""
    result = run(runner, *args)
    assert result.exit_code != 0, result.output
    assert option in result.output, result.output
    assert "Traceback" not in result.output
    if contains is not None:
        assert contains in result.output, result.output
    assert state() == before
    return result.output


def test_add_and_list(runner, members):
    output = succeeds(
        runner,
        "add",
        "Bernd Muster",
        "Bernd.Muster@ITV-SH.example",
        "--home-authority",
        "Staatskanzlei",
        "--annual-cost",
        "72.500,00",
    )
    assert "bernd.muster@itv-sh.example" in output
    member = db.session.execute(select(StaffMember)).scalar_one()
    assert (member.name, member.work_email, member.home_authority, member.annual_cost_cents) == (
        "Bernd Muster",
        "bernd.muster@itv-sh.example",
        "Staatskanzlei",
        72_500_00,
    )
    assert member.pseudonym in output
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "staff_member", AuditEvent.action == "create")
    ).scalar_one()
    assert event.actor == "cli"
    succeeds(runner, "add", "Carla Test", "carla@itv-sh.example")
    lines = succeeds(runner, "list").splitlines()
    assert [line.split("\t")[1] for line in lines] == ["Bernd Muster", "Carla Test"]
    assert "72.500,00" in lines[0] and lines[1].endswith("\t-")


def test_add_refusals_write_nothing(runner, person):
    before = state()
    fails(runner, "add", "X", "no-email", option="EMAIL", before=before)
    fails(runner, "add", "X", ANNA.upper(), option="EMAIL", before=before)
    fails(runner, "add", "   ", "x@itv-sh.example", option="NAME", before=before)
    for cost in ("12,345", "-5", "1e5", "NaN", "viel"):
        fails(
            runner,
            "add",
            "X",
            "x@itv-sh.example",
            "--annual-cost",
            cost,
            option="--annual-cost",
            before=before,
        )
    fails(
        runner,
        "add",
        "X",
        "x@itv-sh.example",
        "--home-authority",
        "h" * 201,
        option="home_authority",
        before=before,
    )


SECOND = ["--instrument", "abordnung", "--from", "2019-01-01", "--fte", "100", "--cost-bearer", "federation"]


def test_second_records_a_secondment(runner, person):
    output = succeeds(runner, "second", ANNA, *SECOND, "--legal-reference", "§ 14 LBG")
    secondment = db.session.execute(select(Secondment)).scalar_one()
    assert (
        secondment.staff_member_id,
        secondment.starts_on,
        secondment.ends_on,
        secondment.fte,
        secondment.cost_bearer,
        secondment.legal_reference,
    ) == (person.id, date(2019, 1, 1), None, 1000, "federation", "§ 14 LBG")
    assert f"id {secondment.id}" in output
    succeeds(
        runner,
        "second",
        ANNA,
        "--instrument",
        "zuweisung",
        "--from",
        "2015-01-01",
        "--to",
        "2015-12-31",
        "--fte",
        "33,3",
        "--cost-bearer",
        "land",
    )
    earlier = db.session.execute(
        select(Secondment).where(Secondment.starts_on == date(2015, 1, 1))
    ).scalar_one()
    assert (earlier.fte, earlier.ends_on, earlier.instrument) == (333, date(2015, 12, 31), "zuweisung")


def test_second_refusals_write_nothing(runner, person, secondment):
    before = state()
    fails(runner, "second", ANNA, *SECOND, option="--from", before=before, contains="2019-01-01")  # overlaps
    earlier = ["--instrument", "abordnung", "--from", "2015-06-01", "--cost-bearer", "land"]
    fails(runner, "second", ANNA, *earlier, "--to", "2015-05-31", "--fte", "50", option="--to", before=before)
    for share in ("150", "0", "-10", "abc", "12,34", "inf", "1" * 30):
        fails(runner, "second", ANNA, *earlier, "--fte", share, option="--fte", before=before)
    fails(runner, "second", "nobody@itv-sh.example", *earlier, "--fte", "50", option="EMAIL", before=before)
    fails(
        runner,
        "second",
        ANNA,
        *earlier,
        "--fte",
        "50",
        "--from",
        "1999-01-01",
        option="--from",
        before=before,
    )
    # click itself refuses unknown choices and malformed dates (usage errors, exit code 2).
    result = run(runner, "second", ANNA, *earlier, "--fte", "50", "--instrument", "leihe")
    assert result.exit_code == 2 and "--instrument" in result.output
    result = run(runner, "second", ANNA, *earlier, "--fte", "50", "--from", "01.06.2015")
    assert result.exit_code == 2 and "--from" in result.output
    assert state() == before


def test_assign_records_an_assignment(runner, person, secondment):
    output = succeeds(
        runner, "assign", ANNA, "--to", KIEL, "--from", "2020-01-01", "--until", "2020-06-30", "--fte", "60"
    )
    assignment = db.session.execute(select(Assignment)).scalar_one()
    assert (assignment.municipality.key, assignment.starts_on, assignment.ends_on, assignment.fte) == (
        KIEL,
        date(2020, 1, 1),
        date(2020, 6, 30),
        600,
    )
    assert f"id {assignment.id}" in output
    succeeds(
        runner, "assign", ANNA, "--to", KRUMMWISCH, "--from", "2020-01-01", "--fte", "40", "--role", "Amt"
    )
    other = db.session.execute(select(Assignment).where(Assignment.id != assignment.id)).scalar_one()
    assert (other.ends_on, other.fte, other.role) == (None, 400, "Amt")
    event = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "assignment").order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert (event.action, event.actor) == ("create", "cli")


def test_assign_refusals_write_nothing(runner, person, secondment):
    first = assign(person, KIEL, date(2020, 1, 1), date(2020, 6, 30), 600)
    before = state()
    base = ["--from", "2020-06-01", "--until", "2020-06-30"]
    output = fails(
        runner, "assign", ANNA, "--to", KRUMMWISCH, *base, "--fte", "50", option="--fte", before=before
    )
    assert "2020-06-01" in output and f"#{first.id}" in output
    fails(runner, "assign", ANNA, "--to", NON_MEMBER, *base, "--fte", "10", option="--to", before=before)
    fails(runner, "assign", ANNA, "--to", "01002999", *base, "--fte", "10", option="--to", before=before)
    fails(runner, "assign", ANNA, "--to", "Kiel", *base, "--fte", "10", option="--to", before=before)
    fails(
        runner,
        "assign",
        ANNA,
        "--to",
        KRUMMWISCH,
        "--from",
        "2020-06-01",
        "--until",
        "2020-05-31",
        "--fte",
        "10",
        option="--until",
        before=before,
    )
    fails(
        runner,
        "assign",
        ANNA,
        "--to",
        KRUMMWISCH,
        "--from",
        "2018-12-01",
        "--fte",
        "10",
        option="--from",
        before=before,
    )
    fails(runner, "assign", ANNA, "--to", KRUMMWISCH, *base, "--fte", "101", option="--fte", before=before)
    fails(
        runner,
        "assign",
        "nobody@itv-sh.example",
        "--to",
        KIEL,
        *base,
        "--fte",
        "1",
        option="EMAIL",
        before=before,
    )


def test_capacity_prints_months(runner, person, secondment):
    assign(person, KIEL, date(2020, 1, 1), date(2020, 1, 31), 500)
    lines = succeeds(runner, "capacity", ANNA, "--from", "2019-12-01", "--to", "2020-02-29").splitlines()
    assert lines[0] == f"Anna Beispiel <{ANNA}>"
    assert lines[1:] == [
        "2019-12\tavailable 100 %\tassigned 0 %\tfree",
        "2020-01\tavailable 100 %\tassigned 50 %\tplanned",
        "2020-02\tavailable 100 %\tassigned 0 %\tfree",
    ]


@pytest.mark.parametrize(
    ("start", "end", "option"),
    [
        ("2020-06-01", "2020-05-31", "--to"),
        ("2020-01-01", "2030-01-01", "--to"),
        ("1999-01-01", "2000-01-01", "--from"),
    ],
)
def test_capacity_refuses_bad_ranges(runner, person, secondment, start, end, option):
    before = state()
    fails(runner, "capacity", ANNA, "--from", start, "--to", end, option=option, before=before)
