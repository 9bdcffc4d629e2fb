"""The funding admin through the client: fiscal years (create with money text, edit through the
ledger, open, reopen by admins with a reason), budget categories, allocations (create, edit, the
detail page with its bookings and the actions approve, disburse, release, repay, reverse, cancel,
settle) and the read-only ledger with its filters and exports.

Every figure on a page is compared with the ledger's own sums; every refused input must leave the
bookings, allocations and audit trail as they were; auditors read everything and write nothing;
municipality users never get in; the allocation list costs the same, small number of statements
whatever the size of the ledger."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.money import MAX_CENTS, format_money
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    AllocationStatus,
    Booking,
    BookingKind,
    BudgetCategory,
    FiscalYear,
    IdempotencyKey,
    YearStatus,
)
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.auth.helpers import translated
from tests.conftest import csrf_token
from tests.funding.conftest import ACTOR, AMT_ACHTERWEHR, KIEL, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER, category

YEARS = "/admin/funding/years/"
CATEGORIES = "/admin/funding/categories/"
ALLOCATIONS = "/admin/funding/allocations/"
BOOKINGS = "/admin/funding/bookings/"
LIST_LIMIT = 4  # the user, the filter options, the count, the page with its sums


# --- helpers ------------------------------------------------------------------------------------


def euros(cents: int) -> str:
    """Money as a German page shows it."""
    return format_money(cents, "de")


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def token(client) -> str:
    return csrf_token(client, "/logout")


def post(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={"csrf_token": token(client), **(data or {})}, **kwargs)


def scoped():
    set_scope(db.session, ALL)
    return db.session


def count(model, *where) -> int:
    statement = select(func.count()).select_from(model)
    for clause in where:
        statement = statement.where(clause)
    return scoped().execute(statement).scalar_one()


def state() -> tuple[int, int, int, int, int]:
    """What a refused request must leave unchanged."""
    return (
        count(Booking),
        count(Allocation),
        count(AuditEvent),
        count(FiscalYear),
        count(BudgetCategory),
    )


def flashes(response) -> str:
    return " ".join(
        re.sub(r"<[^>]+>|&times;", "", m).strip()
        for m in re.findall(
            r'<div class="alert alert-\w+ alert-dismissable">(.*?)</div>', text_of(response), re.S
        )
    )


def cells(response) -> list[dict[str, str]]:
    """The rows of a Flask-Admin list as {column: text}."""
    rows = []
    body = text_of(response)
    for row in body.split("<tr")[1:]:
        found = dict(re.findall(r'<td class="col-(\w+)">(.*?)</td>', row, re.S))
        if found:
            rows.append({k: re.sub(r"<[^>]+>", "", v).strip() for k, v in found.items()})
    return rows


def field_errors(response, field: str) -> str:
    """The error messages Flask-Admin shows under a form field."""
    body = text_of(response)
    if f'id="{field}"' not in body:
        return ""
    group = body.split(f'id="{field}"', 1)[1].split('<div class="form-group', 1)[0]
    match = re.search(r'<div class="invalid-feedback">\s*<ul[^>]*>(.*?)</ul>', group, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)).strip() if match else ""


def not_an_amount(app, text: str) -> str:
    return translated(
        app,
        "“%(text)s” is not an amount. Write e.g. %(example)s (“%(decimal)s” before the cents).",
        text=text,
        example="1.234,56",
        decimal=",",
    )


def list_count(response) -> int:
    match = re.search(r'class="nav-link active">[^<]*?\((\d+)\)', response.get_data(as_text=True))
    return int(match.group(1)) if match else 0


def figure(response, name: str) -> str:
    match = re.search(rf'class="[^"]*itvsh-figure-{name}">(.*?)</dd>', text_of(response), re.S)
    assert match, name
    return match.group(1).strip()


def get(model, id_):
    return scoped().get(model, id_)


def fresh(obj):
    scoped().refresh(obj)
    return obj


def new_allocation(members, year, key=KIEL, amount=1_000_000, *, approve=False, code="zuweisungen", **kwargs):
    session = scoped()
    allocation = ledger.create_allocation(
        session,
        ACTOR,
        fiscal_year=year,
        category=category(year, code),
        recipient_kind="member" if key else "federation",
        municipality=members[key] if key else None,
        purpose=kwargs.pop("purpose", f"Digitalisierung {key or 'ITV-SH'}"),
        amount_cents=amount,
        **kwargs,
    )
    if approve:
        ledger.approve(session, ACTOR, allocation)
    session.commit()
    scoped()
    return allocation


def details(client, allocation):
    return client.get(f"{ALLOCATIONS}details/?id={allocation.id}")


def key_of(response, action: str) -> str:
    """The idempotency key the page rendered into an action form."""
    form = text_of(response).split(f"itvsh-action-{action}")[1].split("</form>")[0]
    return re.search(r'name="idempotency_key" value="([^"]+)"', form)[1]


@pytest.fixture
def staff(client, login_as, open_year):
    return login_as("staff")


# --- fiscal years ---------------------------------------------------------------------------------


def test_staff_creates_a_year_with_money_text_and_default_categories(app, client, staff, open_year):
    form = client.get(YEARS + "new/")
    assert form.status_code == 200
    assert 'value="1.500.000,00"' in form.get_data(as_text=True)
    events = count(AuditEvent)
    response = post(
        client,
        YEARS + "new/",
        {"year": "2031", "appropriation": "1.234.567,89 €", "default_categories": "y", "note": "Nachtrag"},
    )
    assert response.status_code == 302, flashes(client.get(YEARS))
    year = scoped().execute(select(FiscalYear).where(FiscalYear.year == 2031)).scalar_one()
    assert (year.appropriation_cents, year.status, year.note) == (123_456_789, "planning", "Nachtrag")
    assert response.headers["Location"].endswith(f"{YEARS}details/?id={year.id}")
    codes = scoped().execute(select(BudgetCategory.code).where(BudgetCategory.fiscal_year_id == year.id))
    assert set(codes.scalars()) == {"zuweisungen", "projekte", "personal", "infrastruktur"}
    assert count(AuditEvent) == events + 5  # the year and its four categories
    page = client.get(response.headers["Location"])
    assert figure(page, "appropriation") == euros(123_456_789)
    assert figure(page, "free") == euros(123_456_789)


def test_year_list_shows_the_ledger_figures(client, staff, members, open_year):
    first = new_allocation(members, open_year, KIEL, 2_000_000, approve=True)
    ledger.disburse(scoped(), ACTOR, first, 750_000)
    new_allocation(members, open_year, None, 300_000, approve=True, code="personal")
    scoped().commit()
    rows = {row["year"]: row for row in cells(client.get(YEARS))}
    figures = ledger.year_figures(scoped(), fresh(open_year))
    row = rows[str(open_year.year)]
    assert row["committed"] == euros(figures.committed_cents) == euros(2_300_000)
    assert row["paid"] == euros(figures.paid_cents) == euros(750_000)
    assert row["free"] == euros(figures.free_cents) == euros(150_000_000 - 2_300_000)
    assert row["available"] == euros(figures.available_cents)
    assert row["appropriation"] == euros(150_000_000)
    page = client.get(f"{YEARS}details/?id={open_year.id}")
    for name in ("committed", "paid", "free", "available", "open"):
        assert figure(page, name) == euros(getattr(figures, f"{name}_cents")), name


YEAR_REFUSALS = [
    ("-5,00", "The amount must not be negative."),
    ("1.000,005", "An amount has at most two decimal places (whole cents)."),
    ("NaN", "Please enter a number; “%(text)s” is not an amount."),
    ("inf", "Please enter a number; “%(text)s” is not an amount."),
    ("1e5", "Please write the amount without an exponent."),
    ("viel Geld", None),
    ("99.999.999.999,00", "This amount is implausibly large (the limit is %(limit)s)."),
    ("", "Please enter an amount."),
]


def expected_money_error(app, text: str, message: str | None) -> str:
    if message is None:
        return not_an_amount(app, text)
    return translated(app, message, text=text, limit=euros(MAX_CENTS))


@pytest.mark.parametrize(("text", "message"), YEAR_REFUSALS)
def test_year_create_refuses_what_is_not_an_amount(client, staff, text, message):
    before = state()
    response = post(
        client, YEARS + "new/", {"year": "2032", "appropriation": text, "default_categories": "y"}
    )
    assert response.status_code == 200
    assert expected_money_error(client.application, text, message) in field_errors(response, "appropriation")
    assert state() == before


def test_year_create_refuses_a_year_out_of_range_or_twice(client, staff, open_year):
    before = state()
    for year, message in (
        ("1999", "The year must lie between %(a)s and %(b)s."),
        (str(open_year.year), "The fiscal year %(year)s exists already."),
    ):
        response = post(client, YEARS + "new/", {"year": year, "appropriation": "1,00"})
        expected = translated(client.application, message, a=2000, b=2100, year=open_year.year)
        assert expected in field_errors(response, "year"), year
    assert field_errors(post(client, YEARS + "new/", {"year": "zwei", "appropriation": "1,00"}), "year")
    assert state() == before


def test_year_edit_goes_through_the_ledger(client, staff, open_year):
    url = f"{YEARS}edit/?id={open_year.id}"
    assert 'value="1.500.000,00"' in client.get(url).get_data(as_text=True)
    before = state()
    refused = post(client, url, {"appropriation": "1.000,00", "note": ""})
    assert refused.status_code == 200
    planned = euros(150_000_000)  # the default plans use up the whole appropriation
    assert translated(
        client.application,
        "The category plans add up to %(planned)s; the appropriation cannot be lower.",
        planned=planned,
    ) in flashes(refused)
    assert state() == before and fresh(open_year).appropriation_cents == 150_000_000
    done = post(client, url, {"appropriation": "1.600.000,00", "note": "Nachtragshaushalt"})
    assert done.status_code == 302
    year = fresh(open_year)
    assert (year.appropriation_cents, year.note) == (160_000_000, "Nachtragshaushalt")
    assert count(AuditEvent) == before[2] + 1


def test_open_and_reopen_a_year(client, login_as, open_year, members):
    planning = ledger.create_fiscal_year(scoped(), ACTOR, 2035, default_categories=False)
    scoped().commit()
    login_as("staff")
    page = client.get(f"{YEARS}details/?id={planning.id}")
    assert "itvsh-open-year" in page.get_data(as_text=True)
    assert post(client, YEARS + "open/", {"id": planning.id}).status_code == 302
    assert fresh(planning).status == YearStatus.OPEN
    again = post(client, YEARS + "open/", {"id": planning.id}, follow_redirects=True)
    assert translated(client.application, "Only a year in planning can be opened.") in flashes(again)

    ledger.close_year(scoped(), ACTOR, fresh(open_year))
    scoped().commit()
    page = client.get(f"{YEARS}details/?id={open_year.id}").get_data(as_text=True)
    assert "itvsh-reopen-year" not in page  # staff may not
    assert post(client, YEARS + "reopen/", {"id": open_year.id, "reason": "Fehler"}).status_code == 403
    assert fresh(open_year).status == YearStatus.CLOSED

    login_as("admin")
    assert "itvsh-reopen-year" in client.get(f"{YEARS}details/?id={open_year.id}").get_data(as_text=True)
    before = state()
    no_reason = post(client, YEARS + "reopen/", {"id": open_year.id, "reason": "  "}, follow_redirects=True)
    assert translated(client.application, "Please give a reason for reopening the year.") in flashes(
        no_reason
    )
    assert fresh(open_year).status == YearStatus.CLOSED and state() == before
    post(client, YEARS + "reopen/", {"id": open_year.id, "reason": "Buchungsfehler korrigieren"})
    assert fresh(open_year).status == YearStatus.OPEN
    event = scoped().execute(select(AuditEvent).where(AuditEvent.action == "reopen")).scalar_one()
    assert "Buchungsfehler korrigieren" in str(event.after)


def test_the_year_page_links_to_the_close_screen(client, staff, open_year):
    page = client.get(f"{YEARS}details/?id={open_year.id}").get_data(as_text=True)
    assert f'href="/admin/funding/close/?year={open_year.id}"' in page


def test_no_year_or_category_can_be_deleted(client, staff, open_year):
    cat = category(open_year)
    before = state()
    assert post(client, YEARS + "delete/", {"id": open_year.id}).status_code == 302
    assert post(client, CATEGORIES + "delete/", {"id": cat.id}).status_code == 302
    assert post(client, CATEGORIES + "action/", {"action": "delete", "rowid": cat.id}).status_code == 302
    assert state() == before
    assert "/delete/" not in client.get(YEARS).get_data(as_text=True)


# --- budget categories ----------------------------------------------------------------------------


def test_categories_list_per_year_with_ledger_figures(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 5_000_000, approve=True)
    ledger.disburse(scoped(), ACTOR, allocation, 1_000_000)
    scoped().commit()
    other = ledger.create_fiscal_year(scoped(), ACTOR, 2036)
    scoped().commit()
    page = client.get(CATEGORIES + f"?flt0_year={open_year.id}")
    assert list_count(page) == 4
    rows = {row["code"]: row for row in cells(page)}
    cat = category(open_year)
    committed = ledger.category_committed(scoped(), fresh(open_year), cat)
    assert rows["zuweisungen"]["committed"] == euros(committed) == euros(5_000_000)
    assert rows["zuweisungen"]["paid"] == euros(1_000_000)
    assert rows["zuweisungen"]["planned"] == euros(cat.planned_cents)
    assert rows["zuweisungen"]["plan_left"] == euros(cat.planned_cents - committed)
    assert rows["personal"]["committed"] == euros(0)
    assert list_count(client.get(CATEGORIES + f"?flt0_year={other.id}")) == 4
    assert list_count(client.get(CATEGORIES)) == 8


def test_category_create_and_edit_through_the_ledger(client, staff, open_year):
    before = state()
    too_much = post(
        client,
        CATEGORIES + "new/",
        {"fiscal_year": str(open_year.id), "code": "extra", "name": "Extra", "planned": "10,00"},
    )
    assert too_much.status_code == 200
    assert "The plans would add up to" in flashes(too_much) or "Die Pläne" in flashes(too_much)
    assert state() == before
    done = post(
        client,
        CATEGORIES + "new/",
        {
            "fiscal_year": str(open_year.id),
            "code": "extra",
            "name": "Extra",
            "planned": "0,00",
            "position": "9",
        },
    )
    assert done.status_code == 302
    extra = category(open_year, "extra")
    assert (extra.name, extra.planned_cents, extra.position) == ("Extra", 0, 9)
    personal = category(open_year, "personal")
    edited = post(
        client,
        f"{CATEGORIES}edit/?id={personal.id}",
        {"code": "personal", "name": "Personal (abgeordnet)", "planned": "100.000,00", "position": "2"},
    )
    assert edited.status_code == 302
    personal = fresh(personal)
    assert (personal.name, personal.planned_cents) == ("Personal (abgeordnet)", 10_000_000)
    assert count(AuditEvent) == before[2] + 2


# --- allocations: create and edit -----------------------------------------------------------------


def allocation_form(open_year, **overrides) -> dict:
    data = {
        "category_id": str(category(open_year).id),
        "recipient_kind": "member",
        "member": "Kiel (01002000)",
        "purpose": "E-Akte",
        "amount": "12.345,67",
        "decision_date": "",
        "file_reference": "ITV-4-2025/17",
        "proof_of_use_due": "",
        "note": "",
        "idempotency_key": "create-1",
    }
    data.update(overrides)
    return data


def test_staff_creates_an_allocation(client, staff, members, open_year):
    page = client.get(ALLOCATIONS + "new/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'list="itvsh-member-options"' in body and 'value="Krummwisch (01058093)"' in body
    assert f'value="Nichtmitglied ({NON_MEMBER})"' not in body and f"({NON_MEMBER})" not in body
    assert 'name="idempotency_key"' in body
    response = post(client, ALLOCATIONS + "new/", allocation_form(open_year, proof_of_use_due="2031-06-30"))
    assert response.status_code == 302, flashes(client.get(ALLOCATIONS))
    allocation = scoped().execute(select(Allocation)).scalar_one()
    assert response.headers["Location"].endswith(f"{ALLOCATIONS}details/?id={allocation.id}")
    assert allocation.municipality_id == members[KIEL].id
    assert (allocation.amount_cents, allocation.status, allocation.file_reference) == (
        1_234_567,
        AllocationStatus.DRAFT,
        "ITV-4-2025/17",
    )
    assert allocation.proof_of_use_due == date(2031, 6, 30)
    assert allocation.fiscal_year_id == open_year.id and count(Booking) == 0
    # the same form again (double click): the same allocation, nothing new
    again = post(client, ALLOCATIONS + "new/", allocation_form(open_year, proof_of_use_due="2031-06-30"))
    assert again.status_code == 302 and count(Allocation) == 1


def test_recipient_by_bare_key_by_name_and_the_federation(client, staff, members, open_year):
    post(
        client,
        ALLOCATIONS + "new/",
        allocation_form(open_year, member=AMT_ACHTERWEHR, idempotency_key="a"),
    )
    post(
        client,
        ALLOCATIONS + "new/",
        allocation_form(open_year, member="krummwisch", idempotency_key="b"),
    )
    post(
        client,
        ALLOCATIONS + "new/",
        allocation_form(
            open_year,
            recipient_kind="federation",
            member="",
            category_id=str(category(open_year, "personal").id),
            idempotency_key="c",
        ),
    )
    rows = scoped().execute(
        select(Allocation.municipality_id, Allocation.recipient_kind).order_by(Allocation.id)
    )
    assert rows.all() == [
        (members[AMT_ACHTERWEHR].id, "member"),
        (members[KRUMMWISCH].id, "member"),
        (None, "federation"),
    ]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        *YEAR_REFUSALS,
        ("0,00", "The amount must be greater than zero."),
        ("12.345.678.901,00", YEAR_REFUSALS[6][1]),
    ],
)
def test_allocation_amount_refusals(client, staff, members, open_year, amount, message):
    before = state()
    response = post(client, ALLOCATIONS + "new/", allocation_form(open_year, amount=amount))
    assert response.status_code == 200
    assert expected_money_error(client.application, amount, message) in field_errors(response, "amount")
    assert state() == before


def test_allocation_to_a_non_member_is_refused(client, staff, members, open_year):
    before = state()
    response = post(client, ALLOCATIONS + "new/", allocation_form(open_year, member=NON_MEMBER))
    assert response.status_code == 200
    expected = translated(
        client.application,
        "%(name)s is not a member of the federation on %(day)s.",
        name=members[NON_MEMBER].name,
        day=date.today().isoformat(),
    )
    assert expected in flashes(response) and expected in field_errors(response, "member")
    assert state() == before


def test_allocation_to_an_unknown_key_or_without_member_is_refused(client, staff, members, open_year):
    before = state()
    unknown = post(client, ALLOCATIONS + "new/", allocation_form(open_year, member="01999999"))
    assert translated(
        client.application, "There is no municipality with the key %(key)s.", key="01999999"
    ) in flashes(unknown)
    missing = post(client, ALLOCATIONS + "new/", allocation_form(open_year, member=""))
    assert translated(
        client.application, "Please choose the member that receives the allocation."
    ) in flashes(missing)
    no_category = post(client, ALLOCATIONS + "new/", allocation_form(open_year, category_id=""))
    assert translated(client.application, "Please choose a budget category.") in flashes(no_category)
    assert state() == before


def test_edit_a_draft_and_an_approved_allocation(client, staff, members, open_year):
    draft = new_allocation(members, open_year, KIEL, 100_000)
    url = f"{ALLOCATIONS}edit/?id={draft.id}"
    form = client.get(url).get_data(as_text=True)
    assert 'value="1.000,00"' in form and f'value="{members[KIEL].name} (01002000)"' in form
    data = allocation_form(open_year, member=KRUMMWISCH, amount="2.000,00", purpose="Neu")
    del data["idempotency_key"]
    assert post(client, url, data).status_code == 302
    draft = fresh(draft)
    assert (draft.municipality_id, draft.amount_cents, draft.purpose) == (
        members[KRUMMWISCH].id,
        200_000,
        "Neu",
    )

    approved = new_allocation(members, open_year, KIEL, 100_000, approve=True)
    url = f"{ALLOCATIONS}edit/?id={approved.id}"
    form = client.get(url).get_data(as_text=True)
    assert 'name="amount"' not in form and "itvsh-locked" in form
    response = post(
        client,
        url,
        {
            "purpose": "Umbenannt",
            "file_reference": "AZ-9",
            "decision_date": "",
            "proof_of_use_due": "",
            "note": "",
            "proof_of_use_received": "",
            "amount": "1,00",
        },
    )
    assert response.status_code == 302
    approved = fresh(approved)
    assert (approved.purpose, approved.file_reference, approved.amount_cents) == (
        "Umbenannt",
        "AZ-9",
        100_000,
    )


def _project(name: str, status: str):
    """A project (idea, or moved on to ``status``) for allocations to shared projects."""
    from itvsh.projects import services as project_services

    session = scoped()
    project = project_services.create_project(
        session, ACTOR, name=name, kind="shared_service", starts_on=date(2020, 1, 1)
    )
    for step in {"idea": (), "planned": ("planned",), "running": ("planned", "running")}[status]:
        project_services.change_status(session, ACTOR, project, step)
    session.commit()
    scoped()
    return project


def test_staff_allocate_to_a_shared_project_through_the_form(client, staff, members, open_year):
    running = _project("Digitaler Bauantrag", "running")
    idea = _project("Ideenskizze", "idea")
    form = text_of(client.get(ALLOCATIONS + "new/"))
    assert f'<option value="{running.id}">Digitaler Bauantrag</option>' in form
    assert "Ideenskizze" not in form  # only planned and running projects are offered
    projekte = str(category(open_year, "projekte").id)
    data = allocation_form(
        open_year, recipient_kind="project", member="", project=str(running.id), category_id=projekte
    )
    response = post(client, ALLOCATIONS + "new/", data)
    assert response.status_code == 302, flashes(client.get(ALLOCATIONS))
    allocation = scoped().execute(select(Allocation)).scalar_one()
    assert (allocation.recipient_kind, allocation.project_id, allocation.municipality_id) == (
        "project",
        running.id,
        None,
    )
    rows = cells(client.get(ALLOCATIONS + f"?flt0_project={running.id}"))
    assert [(r["recipient"], r["kreis"]) for r in rows] == [("Digitaler Bauantrag", "")]
    page = text_of(details(client, allocation))
    assert f'class="itvsh-recipient-project" href="/admin/projects/details/?id={running.id}"' in page
    edit = text_of(client.get(f"{ALLOCATIONS}edit/?id={allocation.id}"))
    assert f'<option selected value="{running.id}">' in edit

    before = state()
    refused = post(
        client, ALLOCATIONS + "new/", {**data, "project": str(idea.id), "idempotency_key": "create-idea"}
    )
    message = translated(
        client.application,
        "The project %(name)s is %(status)s; only planned or running projects receive money.",
        name="Ideenskizze",
        status=translated(client.application, "idea"),
    )
    assert refused.status_code == 200 and message in field_errors(refused, "project")
    for value, msgid in (
        ("", "Please choose the project that receives the allocation."),
        ("999999", "There is no such project."),
        ("abc", "There is no such project."),
    ):
        refused = post(
            client, ALLOCATIONS + "new/", {**data, "project": value, "idempotency_key": f"k{value}"}
        )
        assert translated(client.application, msgid) in field_errors(refused, "project"), value
    assert state() == before


# --- allocations: the detail page and its actions ---------------------------------------------------


def test_the_whole_lifecycle_through_the_admin(client, staff, members, open_year):
    post(client, ALLOCATIONS + "new/", allocation_form(open_year, amount="10.000,00"))
    allocation = scoped().execute(select(Allocation)).scalar_one()
    page = details(client, allocation)
    assert "itvsh-action-approve" in page.get_data(as_text=True)
    assert "itvsh-action-disburse" not in page.get_data(as_text=True)

    approved = post(
        client, ALLOCATIONS + "approve/", {"id": allocation.id, "idempotency_key": key_of(page, "approve")}
    )
    assert approved.status_code == 302
    assert fresh(allocation).status == AllocationStatus.APPROVED
    page = details(client, allocation)
    assert figure(page, "committed") == euros(1_000_000) and figure(page, "open") == euros(1_000_000)

    paid = post(
        client,
        ALLOCATIONS + "disburse/",
        {
            "id": allocation.id,
            "amount": "4.000,00",
            "on": date.today().isoformat(),
            "note": "1. Rate",
            "idempotency_key": key_of(page, "disburse"),
        },
        follow_redirects=True,
    )
    assert translated(
        client.application, "A disbursement of %(amount)s was booked.", amount=euros(400_000)
    ) in flashes(paid)
    assert fresh(allocation).status == AllocationStatus.PARTIALLY_PAID
    figures = ledger.allocation_figures(scoped(), allocation)
    assert (figures.committed_cents, figures.paid_cents) == (1_000_000, 400_000)
    assert figure(paid, "paid") == euros(figures.paid_cents)
    assert figure(paid, "open") == euros(figures.open_cents)

    disbursement = (
        scoped().execute(select(Booking).where(Booking.kind == BookingKind.DISBURSEMENT)).scalar_one()
    )
    reversed_ = post(
        client,
        ALLOCATIONS + "reverse/",
        {"booking_id": disbursement.id, "note": "falscher Betrag", "idempotency_key": "rev-1"},
        follow_redirects=True,
    )
    reversal = scoped().execute(select(Booking).where(Booking.kind == BookingKind.REVERSAL)).scalar_one()
    assert reversal.reverses_id == disbursement.id
    assert f"reversed by booking {reversal.id}" in text_of(reversed_) or str(reversal.id) in text_of(
        reversed_
    )
    assert figure(reversed_, "paid") == euros(0)
    assert fresh(allocation).status == AllocationStatus.APPROVED

    page = details(client, allocation)
    cancelled = post(
        client,
        ALLOCATIONS + "cancel/",
        {"id": allocation.id, "reason": "Projekt entfällt", "idempotency_key": key_of(page, "cancel")},
        follow_redirects=True,
    )
    assert translated(client.application, "The allocation was cancelled.") in flashes(cancelled)
    assert fresh(allocation).status == AllocationStatus.CANCELLED
    figures = ledger.allocation_figures(scoped(), allocation)
    assert (figures.committed_cents, figures.paid_cents) == (0, 0)
    assert figure(cancelled, "committed") == euros(0)
    kinds = scoped().execute(select(Booking.kind).order_by(Booking.id)).scalars().all()
    assert kinds == ["commitment", "disbursement", "reversal", "release"]
    assert "itvsh-action-" not in cancelled.get_data(as_text=True)  # nothing left to do


def test_release_repay_and_settle(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    released = post(
        client, ALLOCATIONS + "release/", {"id": allocation.id, "amount": "2.000,00", "idempotency_key": "r1"}
    )
    assert released.status_code == 302
    post(
        client,
        ALLOCATIONS + "disburse/",
        {"id": allocation.id, "amount": "8.000,00", "idempotency_key": "d1"},
    )
    assert fresh(allocation).status == AllocationStatus.PAID
    post(client, ALLOCATIONS + "repay/", {"id": allocation.id, "amount": "500,00", "idempotency_key": "p1"})
    figures = ledger.allocation_figures(scoped(), allocation)
    assert (figures.committed_cents, figures.paid_cents) == (800_000, 750_000)
    post(
        client, ALLOCATIONS + "disburse/", {"id": allocation.id, "amount": "500,00", "idempotency_key": "d2"}
    )
    settled = post(
        client,
        ALLOCATIONS + "settle/",
        {"id": allocation.id, "received_on": date.today().isoformat()},
        follow_redirects=True,
    )
    allocation = fresh(allocation)
    assert allocation.status == AllocationStatus.SETTLED and allocation.proof_of_use_received == date.today()
    assert figure(settled, "paid") == euros(800_000) and figure(settled, "open") == euros(0)


def test_paying_more_than_committed_is_refused_naming_what_is_open(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    before = state()
    response = post(
        client,
        ALLOCATIONS + "disburse/",
        {"id": allocation.id, "amount": "10.000,01", "idempotency_key": "too-much"},
        follow_redirects=True,
    )
    expected = translated(
        client.application,
        "That is more than is committed: %(left)s of the allocation are still open for payment.",
        left=euros(1_000_000),
    )
    assert expected in flashes(response)
    assert state() == before and count(IdempotencyKey) == 0
    assert fresh(allocation).status == AllocationStatus.APPROVED


@pytest.mark.parametrize(
    "amount", ["-1,00", "0", "0,001", "NaN", "1e5", "Betrag", "99.999.999.999.999,00", ""]
)
def test_bad_amounts_on_the_action_forms_change_nothing(client, staff, members, open_year, amount):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    before = state()
    for action in ("disburse", "release", "repay"):
        response = post(
            client,
            ALLOCATIONS + f"{action}/",
            {"id": allocation.id, "amount": amount, "idempotency_key": f"bad-{action}"},
            follow_redirects=True,
        )
        assert response.status_code == 200
        message = flashes(response)
        assert message and "alert-danger" in text_of(response), (action, amount)
        assert (
            translated(client.application, "Amount") in message
            or translated(client.application, "The amount must be greater than zero.") in message
        ), message
    assert state() == before


def test_a_bad_date_changes_nothing(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    before = state()
    response = post(
        client,
        ALLOCATIONS + "disburse/",
        {"id": allocation.id, "amount": "1,00", "on": "31.12.2025", "idempotency_key": "k"},
        follow_redirects=True,
    )
    assert "JJJJ-MM-TT" in flashes(response)  # the German UI names the date format in German
    assert state() == before


def test_booking_into_a_closed_year_is_refused(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    disbursement = ledger.disburse(scoped(), ACTOR, allocation, 100_000)
    ledger.close_year(scoped(), ACTOR, fresh(open_year), {allocation.id: "release"})
    scoped().commit()
    assert fresh(allocation).status == AllocationStatus.PAID  # its money stays in the closed year
    before = state()
    expected = translated(
        client.application,
        "The fiscal year %(year)s is closed; nothing can be booked into it.",
        year=open_year.year,
    )
    repaid = post(
        client,
        ALLOCATIONS + "repay/",
        {"id": allocation.id, "amount": "1,00", "idempotency_key": "closed"},
        follow_redirects=True,
    )
    assert expected in flashes(repaid)
    reversed_ = post(
        client,
        ALLOCATIONS + "reverse/",
        {"booking_id": disbursement.id, "note": "zu spät", "idempotency_key": "closed-2"},
        follow_redirects=True,
    )
    assert expected in flashes(reversed_)
    assert state() == before


def test_reversing_twice_is_refused(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    disbursement = ledger.disburse(scoped(), ACTOR, allocation, 100_000)
    scoped().commit()
    first = post(
        client, ALLOCATIONS + "reverse/", {"booking_id": disbursement.id, "note": "x", "idempotency_key": "1"}
    )
    assert first.status_code == 302
    reversal = scoped().execute(select(Booking).where(Booking.reverses_id == disbursement.id)).scalar_one()
    page = details(client, allocation).get_data(as_text=True)
    row = page.split(f'data-booking="{disbursement.id}"')[1].split("</tr>")[0]
    assert "itvsh-reverse" not in row  # no button once reversed
    before = state()
    second = post(
        client,
        ALLOCATIONS + "reverse/",
        {"booking_id": disbursement.id, "note": "nochmal", "idempotency_key": "2"},
        follow_redirects=True,
    )
    expected = translated(
        client.application,
        "Booking %(id)s has already been reversed (by booking %(by)s).",
        id=disbursement.id,
        by=reversal.id,
    )
    assert expected in flashes(second)
    without_reason = post(
        client,
        ALLOCATIONS + "reverse/",
        {"booking_id": reversal.id, "note": "", "idempotency_key": "3"},
        follow_redirects=True,
    )
    assert translated(client.application, "Please give the reason for the reversal.") in flashes(
        without_reason
    )
    assert state() == before


def test_cancel_needs_a_reason_and_is_refused_after_payments(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    before = state()
    no_reason = post(
        client, ALLOCATIONS + "cancel/", {"id": allocation.id, "reason": ""}, follow_redirects=True
    )
    assert translated(client.application, "Please give the reason for the cancellation.") in flashes(
        no_reason
    )
    ledger.disburse(scoped(), ACTOR, allocation, 1)
    scoped().commit()
    before = state()
    paid = post(
        client, ALLOCATIONS + "cancel/", {"id": allocation.id, "reason": "weg"}, follow_redirects=True
    )
    assert flashes(paid) and fresh(allocation).status == AllocationStatus.PARTIALLY_PAID
    assert state() == before


def test_approval_beyond_the_category_plan_names_the_limit(client, staff, members, open_year):
    plan = category(open_year, "infrastruktur").planned_cents
    allocation = new_allocation(members, open_year, None, plan + 1, code="infrastruktur")
    before = state()
    response = post(
        client,
        ALLOCATIONS + "approve/",
        {"id": allocation.id, "idempotency_key": "big"},
        follow_redirects=True,
    )
    message = flashes(response)
    assert "Infrastruktur" in message and euros(plan) in message
    assert state() == before and fresh(allocation).status == AllocationStatus.DRAFT


def test_a_double_submitted_disbursement_books_once(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    page = details(client, allocation)
    data = {
        "id": allocation.id,
        "amount": "1.000,00",
        "on": date.today().isoformat(),
        "note": "Rate",
        "idempotency_key": key_of(page, "disburse"),
    }
    first = post(client, ALLOCATIONS + "disburse/", data)
    second = post(client, ALLOCATIONS + "disburse/", data)
    assert first.status_code == second.status_code == 302
    assert count(Booking, Booking.kind == BookingKind.DISBURSEMENT) == 1
    assert ledger.allocation_figures(scoped(), allocation).paid_cents == 100_000
    # a fresh page gives a fresh key: a second payment on purpose is booked
    data["idempotency_key"] = key_of(details(client, allocation), "disburse")
    assert data["idempotency_key"] != key_of(page, "disburse")
    post(client, ALLOCATIONS + "disburse/", data)
    assert count(Booking, Booking.kind == BookingKind.DISBURSEMENT) == 2


def test_unknown_ids_answer_404(client, staff, members, open_year):
    before = state()
    for url in (
        f"{ALLOCATIONS}details/?id=999999",
        f"{ALLOCATIONS}details/?id=abc",
        f"{ALLOCATIONS}details/?id=99999999999999999999",
        f"{ALLOCATIONS}edit/?id=999999",
        f"{YEARS}details/?id=999999",
        f"{YEARS}edit/?id=999999",
        f"{CATEGORIES}edit/?id=999999",
    ):
        assert client.get(url).status_code == 404, url
    for action in ("approve", "disburse", "release", "repay", "cancel", "settle"):
        response = post(client, ALLOCATIONS + f"{action}/", {"id": "999999", "amount": "1,00", "reason": "x"})
        assert response.status_code == 404, action
    assert post(client, ALLOCATIONS + "reverse/", {"booking_id": "999999", "note": "x"}).status_code == 404
    assert post(client, YEARS + "open/", {"id": "999999"}).status_code == 404
    assert state() == before


def test_crafted_posts_get_a_message_never_an_error(client, staff, members, open_year):
    draft = new_allocation(members, open_year, KIEL, 100_000)
    approved = new_allocation(members, open_year, KRUMMWISCH, 100_000, approve=True)
    before = state()
    # an edit that leaves out the member field keeps the member; one without an amount is refused
    partial = post(client, f"{ALLOCATIONS}edit/?id={draft.id}", {"purpose": "Nur Zweck"})
    assert partial.status_code == 200 and field_errors(partial, "amount")
    too_long = post(
        client,
        ALLOCATIONS + "disburse/",
        {"id": approved.id, "amount": "1,00", "note": "x" * 501, "idempotency_key": "n"},
        follow_redirects=True,
    )
    assert translated(client.application, "At most %(n)s characters.", n=500) in flashes(too_long)
    long_key = post(
        client,
        ALLOCATIONS + "disburse/",
        {"id": approved.id, "amount": "1,00", "idempotency_key": "k" * 101},
        follow_redirects=True,
    )
    assert translated(client.application, "The idempotency key must be 1 to 100 characters long.") in flashes(
        long_key
    )
    cat = category(open_year, "personal")
    position = post(
        client,
        f"{CATEGORIES}edit/?id={cat.id}",
        {"code": "personal", "name": "Personal", "planned": "1,00", "position": "99999999999"},
    )
    assert position.status_code == 200 and field_errors(position, "position")
    year = post(client, YEARS + "new/", {"year": "99999999999999", "appropriation": "1,00"})
    assert year.status_code == 200 and field_errors(year, "year")
    wrong_category = post(client, ALLOCATIONS + "new/", allocation_form(open_year, category_id="abc"))
    assert wrong_category.status_code == 200 and field_errors(wrong_category, "category_id")
    assert state() == before
    assert fresh(draft).purpose != "Nur Zweck"


def test_a_post_without_csrf_is_refused(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000)
    before = state()
    response = client.post(ALLOCATIONS + "approve/", data={"id": allocation.id})
    assert response.status_code == 400
    assert state() == before and fresh(allocation).status == AllocationStatus.DRAFT


# --- the allocation list ------------------------------------------------------------------------------


def test_allocation_list_figures_equal_the_ledger(client, staff, members, open_year):
    kiel = new_allocation(members, open_year, KIEL, 1_000_000, approve=True, file_reference="AZ-KIEL")
    ledger.disburse(scoped(), ACTOR, kiel, 250_000)
    ledger.release(scoped(), ACTOR, kiel, 100_000)
    amt = new_allocation(members, open_year, AMT_ACHTERWEHR, 500_000, approve=True)
    ledger.disburse(scoped(), ACTOR, amt, 500_000)
    draft = new_allocation(members, open_year, KRUMMWISCH, 70_000)
    federation = new_allocation(members, open_year, None, 90_000, approve=True, code="personal")
    scoped().commit()
    rows = {int(row["id"]): row for row in cells(client.get(ALLOCATIONS))}
    assert set(rows) == {kiel.id, amt.id, draft.id, federation.id}
    for allocation in (kiel, amt, draft, federation):
        figures = ledger.allocation_figures(scoped(), allocation)
        row = rows[allocation.id]
        assert row["committed"] == euros(figures.committed_cents), allocation.id
        assert row["paid"] == euros(figures.paid_cents), allocation.id
        assert row["open"] == euros(figures.open_cents), allocation.id
        assert row["amount"] == euros(allocation.amount_cents)
    assert rows[kiel.id]["committed"] == euros(900_000) and rows[kiel.id]["open"] == euros(650_000)
    assert rows[amt.id]["kreis"] == "Rendsburg-Eckernförde" and rows[kiel.id]["kreis"] == ""
    assert rows[federation.id]["recipient"] == translated(client.application, "the federation itself")
    assert rows[kiel.id]["file_reference"] == "AZ-KIEL"


def test_allocation_list_filters_and_search(client, staff, members, open_year):
    kiel = new_allocation(members, open_year, KIEL, 100_000, approve=True, file_reference="AZ-77")
    amt = new_allocation(members, open_year, AMT_ACHTERWEHR, 100_000)
    gemeinde = new_allocation(members, open_year, KRUMMWISCH, 100_000, approve=True)
    kreis = new_allocation(members, open_year, KREIS_RD_ECK, 100_000)
    federation = new_allocation(members, open_year, None, 100_000, code="personal")
    following = ledger.create_fiscal_year(scoped(), ACTOR, open_year.year + 1)
    ledger.open_year(scoped(), ACTOR, following)
    scoped().commit()
    later = new_allocation(members, following, KIEL, 100_000)

    def ids(query: str) -> set[int]:
        response = client.get(ALLOCATIONS + query)
        assert response.status_code == 200, query
        return {int(row["id"]) for row in cells(response)}

    assert ids(f"?flt0_year={open_year.id}") == {kiel.id, amt.id, gemeinde.id, kreis.id, federation.id}
    assert ids(f"?flt0_year={following.id}") == {later.id}
    assert ids(f"?flt0_category={category(open_year, 'personal').id}") == {federation.id}
    assert ids("?flt0_status=approved") == {kiel.id, gemeinde.id}
    assert ids("?flt0_recipient_kind=federation") == {federation.id}
    assert ids(f"?flt0_kreis={KREIS_RD_ECK}") == {amt.id, gemeinde.id, kreis.id}
    assert ids(f"?flt0_member={KIEL}") == {kiel.id, later.id}
    assert ids(f"?flt0_member={KIEL}&flt1_year={open_year.id}") == {kiel.id}
    assert ids("?search=AZ-77") == {kiel.id}
    assert ids(f"?search={KRUMMWISCH}") == {gemeinde.id}
    assert ids("?search=Achterwehr") == {amt.id}
    assert ids("?search=Digitalisierung ITV-SH") == {federation.id}
    # nonsense filter values are ignored, never an error
    for query in ("?flt0_year=abc", "?flt0_year=99999999999999", "?flt0_kreis=x", "?flt0_status=nope"):
        assert client.get(ALLOCATIONS + query).status_code == 200, query


def _grow(year_id: int, allocations: int, extra_bookings: int) -> None:
    """Approved allocations with payments, to make the ledger larger."""
    session = scoped()
    year = session.get(FiscalYear, year_id)
    gemeinden = session.execute(
        select(Municipality)
        .where(Municipality.kind == "gemeinde", Municipality.key != NON_MEMBER)
        .order_by(Municipality.key)
        .limit(allocations)
    ).scalars()
    for n, municipality in enumerate(gemeinden):
        allocation = ledger.create_allocation(
            session,
            ACTOR,
            fiscal_year=year,
            category=category(year),
            recipient_kind="member",
            municipality=municipality,
            purpose=f"Wachstum {n}",
            amount_cents=100_000,
        )
        ledger.approve(session, ACTOR, allocation)
        for _ in range(extra_bookings):
            ledger.disburse(session, ACTOR, allocation, 1_000)
    session.commit()
    scoped()


def statements(client, url: str) -> tuple[int, str]:
    scoped().expunge_all()  # a cold session, as a new request has
    with recorded_statements() as seen:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(seen), response.get_data(as_text=True)


def test_the_allocation_list_runs_the_same_few_statements_however_large_the_ledger(
    client, staff, members, open_year
):
    year_id = open_year.id
    pages = (
        ALLOCATIONS + "?page_size=100",
        ALLOCATIONS
        + f"?page_size=100&flt0_year={open_year.id}&flt1_kreis={KREIS_RD_ECK}&flt2_status=partially_paid",
        ALLOCATIONS + "?page_size=100&search=Wachstum",
        BOOKINGS + "?page_size=100",
        YEARS,
        CATEGORIES,
    )
    _grow(year_id, 3, 1)
    small = {url: statements(client, url) for url in pages}
    _grow(year_id, 120, 3)
    large = {url: statements(client, url) for url in pages}
    # not vacuous: the large ledger really lists many more rows
    assert list_count(client.get(pages[0])) == 123 and list_count(client.get(BOOKINGS)) == 3 * 2 + 120 * 4
    assert len(cells(client.get(pages[0]))) == 100
    counts = {url: (small[url][0], large[url][0]) for url in pages}
    print("\nSQL statements per page (small / large ledger):")
    for url, (at_small, at_large) in counts.items():
        print(f"  {url:<100} {at_small:>2} / {at_large:>2}")
    assert all(a == b for a, b in counts.values()), counts
    for url in pages[:3]:
        assert 0 < counts[url][0] <= LIST_LIMIT, (url, counts[url])


def test_the_counter_notices_a_query_per_row(client, staff, members, open_year, monkeypatch):
    """Proves the measurement can fail: a column that sums each row's bookings itself costs one
    statement per listed row."""
    year_id = open_year.id
    _grow(year_id, 10, 1)
    view = client.application.extensions["itvsh_admin_views"]["funding_allocations"]

    def per_row(v, c, m, n):
        return ledger.allocation_figures(db.session, m).paid_cents

    monkeypatch.setattr(view, "column_formatters", {**view.column_formatters, "paid": per_row})
    counted, _ = statements(client, ALLOCATIONS)
    assert counted == LIST_LIMIT + 10


# --- the ledger view -----------------------------------------------------------------------------------


def test_the_ledger_lists_filters_and_exports(client, staff, members, open_year):
    kiel = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    ledger.disburse(scoped(), ACTOR, kiel, 200_000, note='=HYPERLINK("x")')
    other = new_allocation(members, open_year, KRUMMWISCH, 500_000, approve=True)
    scoped().commit()
    page = client.get(BOOKINGS)
    assert list_count(page) == 3
    rows = cells(page)
    assert {row["kind"] for row in rows} == {
        translated(client.application, "commitment"),
        translated(client.application, "disbursement"),
    }

    def ids(query: str) -> set[int]:
        return {int(row["id"]) for row in cells(client.get(BOOKINGS + query))}

    bookings = {b.id: b for b in scoped().execute(select(Booking)).scalars()}
    assert ids(f"?flt0_allocation={kiel.id}") == {
        b.id for b in bookings.values() if b.allocation_id == kiel.id
    }
    assert ids("?flt0_kind=disbursement") == {b.id for b in bookings.values() if b.kind == "disbursement"}
    assert ids(f"?flt0_member={KRUMMWISCH}") == {
        b.id for b in bookings.values() if b.allocation_id == other.id
    }
    assert ids(f"?flt0_year={open_year.id}") == set(bookings)
    assert ids(f"?flt0_category={category(open_year, 'personal').id}") == set()
    events = count(AuditEvent, AuditEvent.action == "export")
    exported = client.get(BOOKINGS + "export/csv/")
    assert exported.status_code == 200
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert len(table) == 3
    amount = translated(client.application, "Amount (cents)")
    assert sorted(int(row[amount]) for row in table) == [200_000, 500_000, 1_000_000]
    note = translated(client.application, "Note")
    assert '\'=HYPERLINK("x")' in [row[note] for row in table]
    assert client.get(BOOKINGS + "export/xlsx/").status_code == 200
    assert count(AuditEvent, AuditEvent.action == "export") == events + 2
    assert client.get(ALLOCATIONS + "export/csv/").status_code == 200


def test_the_ledger_has_no_write_urls(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    booking = scoped().execute(select(Booking)).scalar_one()
    before = state()
    assert client.get(BOOKINGS + "new/").status_code == 302
    assert client.get(f"{BOOKINGS}edit/?id={booking.id}").status_code == 302
    assert post(client, BOOKINGS + "new/", {"amount_cents": "1"}).status_code == 302
    assert post(client, f"{BOOKINGS}edit/?id={booking.id}", {"amount_cents": "1"}).status_code == 302
    assert post(client, BOOKINGS + "delete/", {"id": booking.id}).status_code == 302
    assert post(client, BOOKINGS + "action/", {"action": "delete", "rowid": booking.id}).status_code == 302
    assert post(client, ALLOCATIONS + "delete/", {"id": allocation.id}).status_code == 302
    assert (
        post(client, ALLOCATIONS + "action/", {"action": "delete", "rowid": allocation.id}).status_code == 302
    )
    assert state() == before
    page = client.get(BOOKINGS).get_data(as_text=True)
    assert BOOKINGS + "new/" not in page and BOOKINGS + "edit/" not in page


# --- roles -----------------------------------------------------------------------------------------------


def _write_requests(year, cat, allocation, booking) -> list[tuple[str, str, dict]]:
    return [
        ("GET", YEARS + "new/", {}),
        ("POST", YEARS + "new/", {"year": "2040", "appropriation": "1,00"}),
        ("GET", f"{YEARS}edit/?id={year.id}", {}),
        ("POST", f"{YEARS}edit/?id={year.id}", {"appropriation": "1.600.000,00"}),
        ("POST", YEARS + "open/", {"id": year.id}),
        ("POST", YEARS + "reopen/", {"id": year.id, "reason": "x"}),
        ("GET", CATEGORIES + "new/", {}),
        ("POST", CATEGORIES + "new/", {"fiscal_year": year.id, "code": "x", "name": "x", "planned": "0"}),
        ("POST", f"{CATEGORIES}edit/?id={cat.id}", {"code": "x", "name": "x", "planned": "0"}),
        ("GET", ALLOCATIONS + "new/", {}),
        (
            "POST",
            ALLOCATIONS + "new/",
            {"category_id": cat.id, "recipient_kind": "federation", "amount": "1,00"},
        ),
        ("GET", f"{ALLOCATIONS}edit/?id={allocation.id}", {}),
        ("POST", f"{ALLOCATIONS}edit/?id={allocation.id}", {"purpose": "HACKED"}),
        ("POST", ALLOCATIONS + "approve/", {"id": allocation.id}),
        ("POST", ALLOCATIONS + "disburse/", {"id": allocation.id, "amount": "1,00"}),
        ("POST", ALLOCATIONS + "release/", {"id": allocation.id, "amount": "1,00"}),
        ("POST", ALLOCATIONS + "repay/", {"id": allocation.id, "amount": "1,00"}),
        ("POST", ALLOCATIONS + "cancel/", {"id": allocation.id, "reason": "x"}),
        ("POST", ALLOCATIONS + "settle/", {"id": allocation.id, "received_on": "2020-01-01"}),
        ("POST", ALLOCATIONS + "reverse/", {"booking_id": booking.id, "note": "x"}),
        ("POST", ALLOCATIONS + "delete/", {"id": allocation.id}),
        ("POST", BOOKINGS + "delete/", {"id": booking.id}),
    ]


def _read_urls(year, allocation) -> list[str]:
    return [
        YEARS,
        f"{YEARS}details/?id={year.id}",
        CATEGORIES,
        ALLOCATIONS,
        f"{ALLOCATIONS}details/?id={allocation.id}",
        BOOKINGS,
        BOOKINGS + "export/csv/",
        ALLOCATIONS + "export/xlsx/",
        YEARS + "export/csv/",
    ]


def test_auditors_read_everything_and_write_nothing(client, login_as, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    ledger.disburse(scoped(), ACTOR, allocation, 100_000)
    scoped().commit()
    booking = scoped().execute(select(Booking).where(Booking.kind == "disbursement")).scalar_one()
    cat = category(open_year)
    login_as("auditor")
    for url in _read_urls(open_year, allocation):
        assert client.get(url).status_code == 200, url
    page = client.get(f"{ALLOCATIONS}details/?id={allocation.id}").get_data(as_text=True)
    assert "itvsh-action-" not in page and "itvsh-reverse" not in page and "/edit/" not in page
    assert figure(client.get(f"{ALLOCATIONS}details/?id={allocation.id}"), "paid") == euros(100_000)
    assert "/new/" not in client.get(ALLOCATIONS).get_data(as_text=True)
    assert "itvsh-open-year" not in client.get(f"{YEARS}details/?id={open_year.id}").get_data(as_text=True)
    before = state()
    for method, url, data in _write_requests(open_year, cat, allocation, booking):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before  # no booking, allocation, year, category or audit event
    assert fresh(allocation).purpose != "HACKED"


def test_municipality_users_get_403_everywhere_in_the_funding_admin(client, login_as, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000_000, approve=True)
    booking = scoped().execute(select(Booking)).scalar_one()
    cat = category(open_year)
    login_as("municipality", KIEL)
    before = state()
    for url in _read_urls(open_year, allocation):
        assert client.get(url).status_code == 403, url
    for method, url, data in _write_requests(open_year, cat, allocation, booking):
        response = client.get(url) if method == "GET" else post(client, url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    assert state() == before


def test_the_funding_menu(client, staff):
    page = re.sub(r"<!--.*?-->", "", client.get(ALLOCATIONS).get_data(as_text=True), flags=re.S)
    funding = translated(client.application, "Funding")
    # one "Funding" menu, shared with the dashboard's pages
    assert len(re.findall(rf"dropdown-toggle[^>]*>\s*{re.escape(funding)}\b", page)) == 1
    for url in (YEARS, CATEGORIES, ALLOCATIONS, BOOKINGS):
        assert f'href="{url}"' in page, url


def test_text_from_users_is_escaped(client, staff, members, open_year):
    allocation = new_allocation(members, open_year, KIEL, 1_000, approve=True, purpose="<b>fett</b>")
    ledger.disburse(scoped(), ACTOR, allocation, 100, note="<script>x</script>")
    scoped().commit()
    for url in (ALLOCATIONS, BOOKINGS, f"{ALLOCATIONS}details/?id={allocation.id}"):
        body = client.get(url).get_data(as_text=True)
        assert "<b>fett</b>" not in body and "<script>x</script>" not in body, url
        assert "&lt;b&gt;fett&lt;/b&gt;" in body, url
