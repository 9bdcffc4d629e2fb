"""The municipality statement (Förderübersicht, kind ``municipality_statement``): the PDF's text shows
the member's name and key, its allocations, payments and totals (equal to the ledger's sums), its
projects and the people assigned to it — and nothing the member may not see: no other member's
allocation (a canary purpose and amount), no project budget, no personnel cost. The year filter
limits it to one fiscal year. A municipality user's request runs end to end to a finished file; its
request for another member's key reads exactly like one for an unknown key; a non-member is refused.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime

import pypdf
import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from itvsh.core.money import format_money
from itvsh.core.rules import RuleViolation
from itvsh.core.settings import AUDITORS_SEE_STAFF_NAMES, set_flag
from itvsh.core.tenancy import ALL, pop_scope, push_scope, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Booking
from itvsh.projects import services as project_services
from itvsh.reports import jobs, service, storage
from itvsh.reports.kinds import KINDS, MUNICIPALITY_STATEMENT, RenderContext
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.renderers import statement as renderer
from itvsh.staffing import services as staffing
from tests.funding.conftest import ACTOR, KIEL, KRUMMWISCH, NON_MEMBER, category
from tests.projects.conftest import members, open_year, person, project, secondment  # noqa: F401

CANARY = "krummwisch-canary-purpose"
CANARY_CENTS = 12_345_67
PROJECT_BUDGET_CENTS = 55_555_55
HEAD_HASH = "cd" * 32


def flat(text: str) -> str:
    """PDF text with every run of white space (line breaks, no-break spaces) as one space."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))


def euro(cents: int, locale: str = "en") -> str:
    return flat(format_money(cents, locale))


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return flat("\n".join(page.extract_text() for page in reader.pages))


@pytest.fixture
def funded(app, members, open_year, project, person, secondment):  # noqa: F811  (the fixtures, not the imports)
    """Kiel: an allocation last year (paid) and one this year (paid in part, a payment reversed, a
    repayment), a draft; a project it pilots; Anna assigned half-time for the first half of this
    year, her personnel cost booked. Krummwisch: a canary allocation, a project of its own, Anna a
    day a week there. The project: an allocation of its own (its budget)."""
    set_scope(db.session, ALL)
    this = open_year.year
    last = ledger.create_fiscal_year(db.session, ACTOR, this - 1)
    ledger.open_year(db.session, ACTOR, last)

    def allocation(year, key, purpose, cents, **kw):
        return ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=year,
            category=category(year, kw.pop("code", "zuweisungen")),
            recipient_kind=kw.pop("recipient_kind", "member"),
            municipality=members[key] if key else None,
            purpose=purpose,
            amount_cents=cents,
            file_reference=f"AZ-{purpose}",
            **kw,
        )

    made = {}
    made["last"] = a = allocation(last, KIEL, "kiel-last-year", 10_000_00)
    ledger.approve(db.session, ACTOR, a, on=date(last.year, 3, 1))
    ledger.disburse(db.session, ACTOR, a, 10_000_00, on=date(last.year, 5, 1))
    made["main"] = a = allocation(
        open_year, KIEL, "kiel-main", 100_000_00, proof_of_use_due=date(this + 1, 6, 30)
    )
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, 30_000_00, on=date(this, 1, 3))
    wrong = ledger.disburse(db.session, ACTOR, a, 20_000_00, on=date(this, 1, 4))
    ledger.reverse(db.session, ACTOR, wrong, note="wrong account", on=date(this, 1, 5))
    ledger.repay(db.session, ACTOR, a, 1_000_00, on=date(this, 1, 6))
    made["draft"] = allocation(open_year, KIEL, "kiel-draft-not-decided", 7_000_00)
    made["canary"] = a = allocation(open_year, KRUMMWISCH, CANARY, CANARY_CENTS)
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    ledger.disburse(db.session, ACTOR, a, CANARY_CENTS, on=date(this, 1, 7))
    made["project"] = a = allocation(
        open_year,
        None,
        "project-budget-canary",
        PROJECT_BUDGET_CENTS,
        code="projekte",
        recipient_kind="project",
        project=project,
    )
    ledger.approve(db.session, ACTOR, a, on=date(this, 1, 2))
    project_services.add_participant(
        db.session, ACTOR, project, members[KIEL], "pilot", joined_on=date(2020, 2, 1)
    )
    other = project_services.create_project(
        db.session, ACTOR, name="Krummwisch-Projekt-Canary", kind="portal"
    )
    project_services.add_participant(
        db.session, ACTOR, other, members[KRUMMWISCH], joined_on=date(2021, 1, 1)
    )
    staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=members[KIEL],
        starts_on=date(this, 1, 1),
        ends_on=date(this, 6, 30),
        fte=500,
        role="E-Akte-Einführung",
    )
    staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=members[KRUMMWISCH],
        starts_on=date(this, 1, 1),
        ends_on=date(this, 12, 31),
        fte=200,
        role="krummwisch-role-canary",
    )
    made.update(members=members, person=person, secondment=secondment)
    made["cost"] = staffing.book_staff_cost(db.session, ACTOR, secondment, this, on=date(this, 1, 2))
    db.session.commit()
    set_scope(db.session, ALL)
    return made


def context(municipality, parameters: dict, *, locale="en", report_id=None) -> RenderContext:
    return RenderContext(
        session=db.session,
        report_id=report_id,
        kind=MUNICIPALITY_STATEMENT,
        format="pdf",
        parameters=parameters,
        municipality_id=municipality.id,
        locale=locale,
        generated_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        audit_seq=4711,
        audit_hash=HEAD_HASH,
        requested_by="staff@test.example",
    )


def render(municipality, year=None, *, locale="en") -> tuple[str, dict]:
    """Render as the job does: the parameters validated, in the member's own tenant scope."""
    set_scope(db.session, ALL)
    raw = {"ags": municipality.key, **({"year": year} if year else {})}
    parameters, municipality_id = KINDS[MUNICIPALITY_STATEMENT].validate(db.session, raw, ALL)
    assert municipality_id == municipality.id
    out = io.BytesIO()
    previous = push_scope(db.session, {municipality.id})
    try:
        with force_locale(locale):
            summary = renderer.render(context(municipality, parameters, locale=locale), out)
    finally:
        pop_scope(db.session, previous)
    data = out.getvalue()
    assert data.startswith(b"%PDF")
    return pdf_text(data), summary


def ledger_sums(municipality, year=None) -> tuple[int, int]:
    """Committed and paid of the member's allocations (of one allocation year) straight from the ledger."""
    from itvsh.funding.models import Allocation, FiscalYear

    set_scope(db.session, ALL)
    stmt = (
        select(func.sum(Booking.committed_delta_cents), func.sum(Booking.paid_delta_cents))
        .join(Allocation, Allocation.id == Booking.allocation_id)
        .join(FiscalYear, FiscalYear.id == Allocation.fiscal_year_id)
        .where(Allocation.municipality_id == municipality.id)
    )
    if year is not None:
        stmt = stmt.where(FiscalYear.year == year)
    committed, paid = db.session.execute(stmt).one()
    return int(committed), int(paid)


def test_statement_shows_the_members_allocations_payments_totals_projects_and_people(funded):
    kiel = funded["members"][KIEL]
    text, summary = render(kiel)
    committed, paid = ledger_sums(kiel)
    assert (committed, paid) == (110_000_00, 39_000_00)
    assert summary["committed_cents"] == committed and summary["paid_cents"] == paid
    assert summary["payments_cents"] == paid  # the payments add up to what was paid
    assert summary["allocations"] == 2  # the draft is not a decision yet
    assert summary["payments"] == 5  # three disbursements, the reversal, the repayment
    this = date.today().year
    assert summary["by_year"] == {
        str(this - 1): {"allocations": 1, "committed_cents": 10_000_00, "paid_cents": 10_000_00},
        str(this): {"allocations": 1, "committed_cents": 100_000_00, "paid_cents": 29_000_00},
    }
    assert "Kiel" in text and KIEL in text
    for figure in (committed, paid, committed - paid, 29_000_00, 100_000_00, -20_000_00, -1_000_00):
        assert euro(figure) in text, figure
    assert "kiel-main" in text and "AZ-kiel-main" in text and "kiel-last-year" in text
    assert f"due {this + 1}-06-30" in text
    assert "Digitaler Bauantrag" in text and "pilot" in text and "2020-02-01" in text
    assert "Anna Beispiel" in text and "E-Akte-Einführung" in text and "50 %" in text
    assert f"{this}: 3.00" in text  # half-time for six months
    assert summary["fte_months"] == {str(this): "3.00"}
    assert summary["projects"] == 1 and summary["assignments"] == 1
    # The header block: parameters, the audit head; and page x of y.
    assert f"ags={KIEL}" in text and HEAD_HASH in text and "#4711" in text
    assert re.search(r"page 1 of \d+", text)


def test_statement_shows_nothing_the_member_may_not_see(funded):
    text, _summary = render(funded["members"][KIEL])
    # Another member's allocation, assignment and figures.
    assert CANARY not in text and "krummwisch" not in text.lower()
    assert euro(CANARY_CENTS) not in text
    # The project's budget.
    assert "project-budget-canary" not in text and euro(PROJECT_BUDGET_CENTS) not in text
    # Personnel cost: the annual figure, the booked cost and its allocation.
    cost = funded["cost"].amount_cents
    assert euro(80_000_00) not in text and euro(cost) not in text
    assert "Personal" not in text
    # The person's other data.
    assert (
        "itv-sh.example" not in text and "Ministerium" not in text and funded["person"].pseudonym not in text
    )
    # The draft.
    assert "kiel-draft-not-decided" not in text


def test_year_filter_limits_to_one_fiscal_year(funded):
    kiel = funded["members"][KIEL]
    this = date.today().year
    text, summary = render(kiel, this - 1)
    assert summary["year"] == this - 1
    assert (
        (summary["committed_cents"], summary["paid_cents"])
        == ledger_sums(kiel, this - 1)
        == (10_000_00, 10_000_00)
    )
    assert list(summary["by_year"]) == [str(this - 1)]
    assert "kiel-last-year" in text and "kiel-main" not in text
    assert f"Fiscal year {this - 1} only." in text
    assert "Anna Beispiel" not in text  # she worked for Kiel this year only
    text, summary = render(kiel, this)
    assert "kiel-main" in text and "kiel-last-year" not in text
    assert (summary["committed_cents"], summary["paid_cents"]) == ledger_sums(kiel, this)
    assert summary["fte_months"] == {str(this): "3.00"}


def test_german_statement_formats_money_the_german_way(funded):
    text, summary = render(funded["members"][KIEL], locale="de")
    assert euro(summary["committed_cents"], "de") in text  # 110.000,00 €
    assert "110.000,00 €" in text and euro(-20_000_00, "de") in text


def test_municipality_user_requests_and_gets_its_statement(funded, make_user):
    kiel = funded["members"][KIEL]
    user = make_user("municipality", KIEL)
    set_scope(db.session, {kiel.id})
    report = service.request_report(
        db.session, user, MUNICIPALITY_STATEMENT, {"ags": KIEL}, locale="en", scope={kiel.id}
    )
    db.session.commit()
    assert report.municipality_id == kiel.id
    assert jobs.dispatch(db.session, report)
    assert jobs.current_jobs().run_all() == ["finished"]
    set_scope(db.session, ALL)
    done = db.session.get(Report, report.id, populate_existing=True)
    assert done.status == ReportStatus.FINISHED
    assert done.file_name == f"municipality-statement-{KIEL}.pdf"
    data = storage.final_path(done.id, done.file_name).read_bytes()
    text = pdf_text(data)
    assert "Kiel" in text and euro(110_000_00) in text and "Anna Beispiel" in text
    assert CANARY not in text
    assert done.summary["committed_cents"] == 110_000_00 and done.summary["paid_cents"] == 39_000_00
    assert done.audit_hash in text


def test_auditor_sees_pseudonyms_unless_names_are_allowed(funded, make_user):
    auditor = make_user("auditor")

    def statement_text() -> str:
        set_scope(db.session, ALL)
        report = service.request_report(
            db.session, auditor, MUNICIPALITY_STATEMENT, {"ags": KIEL}, locale="en"
        )
        db.session.commit()
        assert jobs.dispatch(db.session, report)
        assert jobs.current_jobs().run_all() == ["finished"]
        set_scope(db.session, ALL)
        done = db.session.get(Report, report.id, populate_existing=True)
        return pdf_text(storage.final_path(done.id, done.file_name).read_bytes())

    text = statement_text()
    seconded = funded["person"]
    assert seconded.pseudonym in text and "Anna Beispiel" not in text
    set_scope(db.session, ALL)
    set_flag(db.session, ACTOR, AUDITORS_SEE_STAFF_NAMES, True)
    db.session.commit()
    text = statement_text()
    assert "Anna Beispiel" in text and seconded.pseudonym not in text


def test_another_members_key_reads_like_an_unknown_one(funded, make_user):
    kiel = funded["members"][KIEL]
    user = make_user("municipality", KIEL)
    set_scope(db.session, {kiel.id})
    before = db.session.execute(select(func.count(Report.id))).scalar_one()
    messages = {}
    with force_locale("en"):
        for key in (KRUMMWISCH, "01999999"):
            with pytest.raises(RuleViolation) as caught:
                service.request_report(
                    db.session, user, MUNICIPALITY_STATEMENT, {"ags": key}, scope={kiel.id}
                )
            assert caught.value.field == "ags"
            messages[key] = caught.value.message.replace(key, "KEY")
    assert messages[KRUMMWISCH] == messages["01999999"] == "There is no member with the key KEY."
    assert db.session.execute(select(func.count(Report.id))).scalar_one() == before


def test_a_non_member_is_refused(funded, make_user):
    staff = make_user("staff")
    set_scope(db.session, ALL)
    before = db.session.execute(select(func.count(Report.id))).scalar_one()
    with force_locale("en"), pytest.raises(RuleViolation) as caught:
        service.request_report(db.session, staff, MUNICIPALITY_STATEMENT, {"ags": NON_MEMBER})
    assert caught.value.field == "ags"
    assert "never been a member" in caught.value.message
    assert db.session.execute(select(func.count(Report.id))).scalar_one() == before
