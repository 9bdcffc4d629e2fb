"""The funding API: fiscal years with their figures, the allocation lifecycle through the actions,
the bookings of the ledger, distributions -- every figure equal to its ledger sum; bad input (the
issue's list) refused with a problem+json naming the field or limit and nothing changed; the
Idempotency-Key; who may write; what a municipality user sees; the OpenAPI document; and lists
whose SQL statement count does not grow with the number of bookings."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import (
    Allocation,
    Booking,
    BudgetCategory,
    Distribution,
    FiscalYear,
    IdempotencyKey,
)
from itvsh.tenants import services as tenant_services
from tests.api.helpers import assert_problem, field_errors
from tests.api.test_query_count import recorded_statements
from tests.funding.conftest import (
    ACTOR,
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    NON_MEMBER,
    category,
    local_member_count,
)

TODAY = date.today()
YEAR = TODAY.year
LUEBECK = "01003000"
RENDSBURG = "01058135"  # a Stadt in Kreis Rendsburg-Eckernförde, in no Amt
WESTENSEE = "01058171"  # a Gemeinde of Amt Achterwehr
ZUWEISUNGEN_PLAN = 90_000_000  # 600 per mille of 1,500,000.00 €


@pytest.fixture
def as_user(client, csrf, login_as):
    """Log in as a new user of ``role``; returns the headers a cookie-session write needs."""
    token = csrf()

    def login(role: str, tenant: str | None = None) -> dict[str, str]:
        login_as(role, tenant)
        set_scope(db.session, ALL)
        return {"X-CSRFToken": token}

    return login


@pytest.fixture
def staff(as_user, open_year):
    return as_user("staff")


def make_allocation(
    year: FiscalYear,
    recipient: str | None = KIEL,
    amount: int = 1_000_000,
    *,
    code: str = "zuweisungen",
    approve: bool = False,
    paid: int = 0,
) -> Allocation:
    """An allocation made through the services (optionally approved and partly paid); committed."""
    set_scope(db.session, ALL)
    municipality = tenant_services.get_by_key(db.session, recipient) if recipient else None
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=year,
        category=category(year, code),
        recipient_kind="member" if recipient else "federation",
        municipality=municipality,
        purpose=f"Zuwendung {recipient or 'Verbund'}",
        amount_cents=amount,
    )
    if approve:
        ledger.approve(db.session, ACTOR, allocation)
    if paid:
        ledger.disburse(db.session, ACTOR, allocation, paid)
    db.session.commit()
    set_scope(db.session, ALL)
    return allocation


def state() -> tuple:
    """Everything a write could change; unchanged after every refusal. Commits first, so whatever a
    refused request left in the (test-shared) session would be written and show."""
    db.session.commit()
    set_scope(db.session, ALL)
    counts = tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (
            Booking,
            Allocation,
            AuditEvent,
            IdempotencyKey,
            Distribution,
            FiscalYear,
            BudgetCategory,
        )
    )
    sums = tuple(
        db.session.execute(
            select(
                func.coalesce(func.sum(Booking.committed_delta_cents), 0),
                func.coalesce(func.sum(Booking.paid_delta_cents), 0),
            )
        ).one()
    )
    allocations = [
        (
            a.id,
            a.status,
            a.amount_cents,
            a.purpose,
            a.municipality_id,
            a.category_id,
            a.note,
            a.file_reference,
        )
        for a in db.session.execute(select(Allocation).order_by(Allocation.id)).scalars()
    ]
    years = [
        (y.year, y.appropriation_cents, y.status, y.note)
        for y in db.session.execute(select(FiscalYear).order_by(FiscalYear.year)).scalars()
    ]
    planned = [
        (c.id, c.planned_cents)
        for c in db.session.execute(select(BudgetCategory).order_by(BudgetCategory.id)).scalars()
    ]
    return counts, sums, allocations, years, planned


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:800])
    set_scope(db.session, ALL)
    return response.get_json()


def get(client, url: str) -> dict:
    return ok(client.get(url))


def post(client, url: str, headers: dict, body: dict | None = None, key: str | None = None):
    extra = {"Idempotency-Key": key} if key is not None else {}
    response = client.post(url, json={} if body is None else body, headers={**headers, **extra})
    set_scope(db.session, ALL)
    return response


def patch(client, url: str, headers: dict, body: dict, key: str | None = None):
    extra = {"Idempotency-Key": key} if key is not None else {}
    response = client.patch(url, json=body, headers={**headers, **extra})
    set_scope(db.session, ALL)
    return response


def ledger_year(year: FiscalYear) -> ledger.YearFigures:
    set_scope(db.session, ALL)
    return ledger.year_figures(db.session, db.session.get(FiscalYear, year.id))


def all_items(client, url: str) -> list[dict]:
    body = get(client, url + ("&" if "?" in url else "?") + "per_page=500")
    assert body["meta"]["pages"] == 1
    return body["items"]


NEW_ALLOCATION = {
    "year": YEAR,
    "category": "zuweisungen",
    "recipient": KIEL,
    "purpose": "Digitalisierung Bürgerbüro",
    "amount_cents": 10_000_000,
    "decision_date": TODAY.isoformat(),
    "file_reference": "AZ 4-2/2025",
    "proof_of_use_due": (TODAY + timedelta(days=365)).isoformat(),
}


# --- the whole lifecycle through the API ----------------------------------------------------------


def test_full_lifecycle_with_figures_matching_the_ledger(client, staff, open_year):
    year_url = f"/api/v1/fiscal-years/{YEAR}"
    created = ok(post(client, "/api/v1/allocations", staff, NEW_ALLOCATION), 201)
    url = f"/api/v1/allocations/{created['id']}"
    assert created["status"] == "draft"
    assert (created["recipient"], created["recipient_kind"], created["kreis"]) == (KIEL, "member", None)
    assert created["recipient_name"] == "Kiel, Landeshauptstadt"
    assert (created["year"], created["current_year"], created["category"]) == (YEAR, YEAR, "zuweisungen")
    assert (created["committed_cents"], created["paid_cents"], created["open_cents"]) == (0, 0, 0)
    assert created["bookings"] == []
    assert created["file_reference"] == "AZ 4-2/2025"
    assert get(client, year_url)["free_cents"] == 150_000_000

    def figures() -> tuple:
        body = get(client, url)
        return body["status"], body["committed_cents"], body["paid_cents"], body["open_cents"]

    commitment = ok(post(client, f"{url}/approve", staff), 201)
    assert (commitment["kind"], commitment["amount_cents"], commitment["committed_delta_cents"]) == (
        "commitment",
        10_000_000,
        10_000_000,
    )
    assert (commitment["allocation_id"], commitment["year"], commitment["recipient"]) == (
        created["id"],
        YEAR,
        KIEL,
    )
    assert figures() == ("approved", 10_000_000, 0, 10_000_000)

    payment = {"amount_cents": 4_000_000, "booked_on": TODAY.isoformat(), "note": "1. Rate"}
    first = ok(post(client, f"{url}/disburse", staff, payment), 201)
    assert (first["kind"], first["paid_delta_cents"], first["note"]) == ("disbursement", 4_000_000, "1. Rate")
    assert figures() == ("partially_paid", 10_000_000, 4_000_000, 6_000_000)

    released = ok(post(client, f"{url}/release", staff, {"amount_cents": 1_000_000}), 201)
    assert (released["kind"], released["committed_delta_cents"]) == ("release", -1_000_000)
    assert figures() == ("partially_paid", 9_000_000, 4_000_000, 5_000_000)

    repaid = ok(post(client, f"{url}/repay", staff, {"amount_cents": 500_000}), 201)
    assert (repaid["kind"], repaid["paid_delta_cents"]) == ("repayment", -500_000)
    assert figures() == ("partially_paid", 9_000_000, 3_500_000, 5_500_000)

    storno = ok(post(client, f"/api/v1/bookings/{repaid['id']}/reverse", staff, {"note": "Irrtum"}), 201)
    assert (storno["kind"], storno["reverses_id"], storno["paid_delta_cents"]) == (
        "reversal",
        repaid["id"],
        500_000,
    )
    assert figures() == ("partially_paid", 9_000_000, 4_000_000, 5_000_000)

    ok(post(client, f"{url}/disburse", staff, {"amount_cents": 5_000_000}), 201)
    assert figures() == ("paid", 9_000_000, 9_000_000, 0)

    settled = ok(post(client, f"{url}/settle", staff, {"proof_of_use_received": TODAY.isoformat()}))
    assert (settled["status"], settled["proof_of_use_received"]) == ("settled", TODAY.isoformat())
    assert [b["kind"] for b in settled["bookings"]] == [
        "commitment",
        "disbursement",
        "release",
        "repayment",
        "reversal",
        "disbursement",
    ]
    # The allocation's figures are the sums of its bookings.
    assert settled["committed_cents"] == sum(b["committed_delta_cents"] for b in settled["bookings"])
    assert settled["paid_cents"] == sum(b["paid_delta_cents"] for b in settled["bookings"])

    # A second allocation: approved, then cancelled (its commitment released).
    other = ok(post(client, "/api/v1/allocations", staff, {**NEW_ALLOCATION, "amount_cents": 2_000_000}), 201)
    ok(post(client, f"/api/v1/allocations/{other['id']}/approve", staff), 201)
    assert get(client, year_url)["committed_cents"] == 11_000_000
    cancelled = ok(post(client, f"/api/v1/allocations/{other['id']}/cancel", staff, {"reason": "Verzicht"}))
    assert (cancelled["status"], cancelled["committed_cents"]) == ("cancelled", 0)
    assert [b["kind"] for b in cancelled["bookings"]] == ["commitment", "release"]

    year = get(client, year_url)
    expected = ledger_year(open_year)
    assert (year["committed_cents"], year["paid_cents"], year["free_cents"]) == (
        9_000_000,
        9_000_000,
        141_000_000,
    )
    assert year["committed_cents"] == expected.committed_cents
    assert year["paid_cents"] == expected.paid_cents
    assert year["available_cents"] == expected.available_cents == 150_000_000
    assert year["open_cents"] == 0
    zuweisungen = next(c for c in year["categories"] if c["code"] == "zuweisungen")
    assert (zuweisungen["planned_cents"], zuweisungen["committed_cents"], zuweisungen["paid_cents"]) == (
        ZUWEISUNGEN_PLAN,
        9_000_000,
        9_000_000,
    )
    assert zuweisungen["free_cents"] == ZUWEISUNGEN_PLAN - 9_000_000
    assert [c["code"] for c in year["categories"]] == ["zuweisungen", "projekte", "personal", "infrastruktur"]
    # Every booking an audit event; the chain still verifies.
    set_scope(db.session, ALL)
    bookings = db.session.execute(select(func.count()).select_from(Booking)).scalar_one()
    events = db.session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "booking")
    ).scalar_one()
    assert bookings == events == 8
    assert verify_chain(db.session).ok


def test_a_draft_is_changed_and_cancelled_and_a_federation_allocation_made(client, staff, open_year):
    created = ok(post(client, "/api/v1/allocations", staff, NEW_ALLOCATION), 201)
    url = f"/api/v1/allocations/{created['id']}"
    changed = ok(
        patch(
            client,
            url,
            staff,
            {"amount_cents": 3_000_000, "purpose": "Neu", "category": "projekte", "recipient": KRUMMWISCH},
        )
    )
    assert (changed["amount_cents"], changed["purpose"], changed["category"]) == (
        3_000_000,
        "Neu",
        "projekte",
    )
    assert (changed["recipient"], changed["kreis"]) == (KRUMMWISCH, KREIS_RD_ECK)
    to_federation = ok(patch(client, url, staff, {"recipient_kind": "federation"}))
    assert (to_federation["recipient_kind"], to_federation["recipient"], to_federation["kreis"]) == (
        "federation",
        None,
        None,
    )
    cancelled = ok(post(client, f"{url}/cancel", staff, {}))
    assert (cancelled["status"], cancelled["bookings"]) == ("cancelled", [])

    federation = {**NEW_ALLOCATION, "recipient_kind": "federation", "category": "personal"}
    del federation["recipient"]
    own = ok(post(client, "/api/v1/allocations", staff, federation), 201)
    assert (own["recipient_kind"], own["recipient"], own["recipient_name"]) == ("federation", None, None)


def test_approved_allocation_keeps_its_amount_but_takes_a_new_purpose(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True)
    url = f"/api/v1/allocations/{allocation.id}"
    before = state()
    errors = field_errors(patch(client, url, staff, {"amount_cents": 5, "purpose": "anders"}))
    assert set(errors) == {"amount_cents"}
    assert set(field_errors(patch(client, url, staff, {"recipient": LUEBECK}))) == {"recipient"}
    assert set(field_errors(patch(client, url, staff, {"category": "projekte"}))) == {"category"}
    assert state() == before
    body = ok(patch(client, url, staff, {"purpose": "anders", "note": "geprüft"}))
    assert (body["purpose"], body["note"], body["amount_cents"]) == ("anders", "geprüft", 1_000_000)


# --- fiscal years ----------------------------------------------------------------------------------


def test_fiscal_years_are_listed_with_their_figures_in_one_grouped_query(client, staff, open_year):
    set_scope(db.session, ALL)
    previous = ledger.create_fiscal_year(db.session, ACTOR, YEAR - 1, 120_000_000)
    ledger.open_year(db.session, ACTOR, previous)
    db.session.commit()
    make_allocation(previous, KIEL, 3_000_000, approve=True, paid=1_000_000)
    make_allocation(open_year, LUEBECK, 2_000_000, approve=True, paid=500_000)
    set_scope(db.session, ALL)
    ledger.close_year(db.session, ACTOR, db.session.get(FiscalYear, previous.id))  # carries 2,000,000
    db.session.commit()

    body = get(client, "/api/v1/fiscal-years")
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}
    current, last = body["items"]
    assert (current["year"], last["year"]) == (YEAR, YEAR - 1)
    assert current == {
        "year": YEAR,
        "status": "open",
        "note": "",
        "closed_at": None,
        "appropriation_cents": 150_000_000,
        "carried_in_cents": 2_000_000,
        "available_cents": 152_000_000,
        "committed_cents": 4_000_000,
        "paid_cents": 500_000,
        "open_cents": 3_500_000,
        "free_cents": 148_000_000,
    }
    assert (last["status"], last["committed_cents"], last["paid_cents"], last["free_cents"]) == (
        "closed",
        1_000_000,
        1_000_000,
        119_000_000,
    )
    assert last["closed_at"]
    for item, year in ((current, open_year), (last, previous)):
        figures = ledger_year(year)
        assert (
            item["committed_cents"],
            item["paid_cents"],
            item["carried_in_cents"],
            item["free_cents"],
        ) == (
            figures.committed_cents,
            figures.paid_cents,
            figures.carried_in_cents,
            figures.free_cents,
        )


def test_staff_create_and_change_a_fiscal_year(client, staff, open_year):
    created = client.post(
        "/api/v1/fiscal-years", json={"year": YEAR + 1, "appropriation_cents": 160_000_000}, headers=staff
    )
    body = ok(created, 201)
    assert created.headers["Location"].endswith(f"/api/v1/fiscal-years/{YEAR + 1}")
    assert (body["status"], body["appropriation_cents"], body["free_cents"]) == (
        "planning",
        160_000_000,
        160_000_000,
    )
    assert [(c["code"], c["planned_cents"]) for c in body["categories"]] == [
        ("zuweisungen", 96_000_000),
        ("projekte", 40_000_000),
        ("personal", 16_000_000),
        ("infrastruktur", 8_000_000),
    ]
    bare = ok(
        post(client, "/api/v1/fiscal-years", staff, {"year": YEAR + 2, "default_categories": False}), 201
    )
    assert (bare["appropriation_cents"], bare["categories"]) == (150_000_000, [])

    changed = ok(
        patch(client, f"/api/v1/fiscal-years/{YEAR + 1}", staff, {"appropriation_cents": 170_000_000})
    )
    assert (changed["appropriation_cents"], changed["available_cents"]) == (170_000_000, 170_000_000)
    noted = ok(patch(client, f"/api/v1/fiscal-years/{YEAR + 1}", staff, {"note": "Nachtrag"}))
    assert (noted["note"], noted["appropriation_cents"]) == ("Nachtrag", 170_000_000)
    set_scope(db.session, ALL)
    events = db.session.execute(
        select(AuditEvent.action).where(AuditEvent.entity == "fiscal_year").order_by(AuditEvent.seq)
    ).scalars()
    assert list(events) == ["create", "open", "create", "create", "update", "update"]


BAD_YEARS = [
    ({"year": YEAR}, "year"),  # exists
    ({"year": 1999}, "year"),
    ({"year": "2030"}, "year"),
    ({"year": 2030.0}, "year"),
    ({}, "year"),
    ({"year": 2030, "appropriation_cents": -1}, "appropriation_cents"),
    ({"year": 2030, "appropriation_cents": 1.5}, "appropriation_cents"),
    ({"year": 2030, "appropriation_cents": 10**15}, "appropriation_cents"),
    ({"year": 2030, "default_categories": "yes"}, "default_categories"),
    ({"year": 2030, "status": "open"}, "status"),
]


def test_create_fiscal_year_refuses_bad_input(client, staff):
    before = state()
    for body, field in BAD_YEARS:
        assert set(field_errors(post(client, "/api/v1/fiscal-years", staff, body))) == {field}, body
    assert state() == before


def test_fiscal_year_appropriation_cannot_drop_below_plans_or_commitments(client, staff, open_year):
    make_allocation(open_year, KIEL, 50_000_000, approve=True)
    url = f"/api/v1/fiscal-years/{YEAR}"
    before = state()
    errors = field_errors(patch(client, url, staff, {"appropriation_cents": 100_000_000, "note": "x"}))
    assert set(errors) == {"appropriation_cents"}
    assert "1.500.000,00" in errors["appropriation_cents"][0]  # the plans' sum: the limit
    assert set(field_errors(patch(client, url, staff, {"appropriation_cents": "150000000"}))) == {
        "appropriation_cents"
    }
    assert set(field_errors(patch(client, url, staff, {"year": 2031}))) == {"year"}
    assert state() == before
    assert_problem(client.get("/api/v1/fiscal-years/1990"), 404)
    assert_problem(patch(client, "/api/v1/fiscal-years/2099", staff, {"note": "x"}), 404)


# --- the issue's list of bad input ------------------------------------------------------------------


BAD_AMOUNTS = [
    ("-1", "negative"),
    ("0", "zero"),
    ("12.345", "three-decimals"),
    ("1000.0", "float"),
    ('"NaN"', "NaN-text"),
    ("NaN", "NaN-literal"),
    ("Infinity", "infinity"),
    ("1e5", "exponent"),
    ('"abc"', "text"),
    ('"100"', "number-as-text"),
    (str(10**15), "absurdly-large"),
    (str(10**12 + 1), "just-above-the-limit"),
    ("true", "boolean"),
    ("null", "null"),
    ("[100]", "list"),
]


def test_bad_amounts_are_refused_naming_the_field(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True)
    before = state()
    for amount, case in BAD_AMOUNTS:
        refuse_amount(client, staff, allocation, amount, case)
    assert state() == before


def refuse_amount(client, staff, allocation, amount: str, case: str) -> None:
    for url, extra in (
        (f"/api/v1/allocations/{allocation.id}/disburse", ""),
        (f"/api/v1/allocations/{allocation.id}/release", ', "note": "x"'),
        (
            "/api/v1/allocations",
            f', "year": {YEAR}, "category": "zuweisungen", "recipient": "{KIEL}", "purpose": "p"',
        ),
    ):
        response = client.post(
            url, data=f'{{"amount_cents": {amount}{extra}}}', content_type="application/json", headers=staff
        )
        set_scope(db.session, ALL)
        errors = field_errors(response)
        assert set(errors) == {"amount_cents"}, (case, url, errors)
    response = client.post(
        "/api/v1/distributions/preview",
        data=f'{{"year": {YEAR}, "category": "zuweisungen", "method": "equal", "selection": "all", '
        f'"total_cents": {amount}}}',
        content_type="application/json",
        headers=staff,
    )
    assert set(field_errors(response)) == {"total_cents"}, case


def test_the_amount_limits_are_named(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True)
    url = f"/api/v1/allocations/{allocation.id}/disburse"
    [message] = field_errors(post(client, url, staff, {"amount_cents": 0}))["amount_cents"]
    assert "1 to 1000000000000" in message
    [message] = field_errors(post(client, url, staff, {"amount_cents": 12.345}))["amount_cents"]
    assert "whole number of cents" in message
    # The largest valid amount passes the schema and meets the ledger's limit instead.
    [message] = field_errors(post(client, url, staff, {"amount_cents": 10**12}))["amount_cents"]
    assert "10.000,00" in message  # what is still open for payment


def test_paying_more_than_committed_says_what_is_left(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True, paid=900_000)
    before = state()
    errors = field_errors(
        post(client, f"/api/v1/allocations/{allocation.id}/disburse", staff, {"amount_cents": 100_001})
    )
    assert set(errors) == {"amount_cents"}
    assert "1.000,00" in errors["amount_cents"][0]  # 1,000.00 € are still open
    errors = field_errors(
        post(client, f"/api/v1/allocations/{allocation.id}/release", staff, {"amount_cents": 100_001})
    )
    assert set(errors) == {"amount_cents"}
    errors = field_errors(
        post(client, f"/api/v1/allocations/{allocation.id}/repay", staff, {"amount_cents": 900_001})
    )
    assert set(errors) == {"amount_cents"}
    assert state() == before
    ok(post(client, f"/api/v1/allocations/{allocation.id}/disburse", staff, {"amount_cents": 100_000}), 201)


def test_committing_more_than_is_free_is_refused(client, staff, open_year):
    make_allocation(open_year, KIEL, ZUWEISUNGEN_PLAN - 1_000, approve=True)
    draft = make_allocation(open_year, LUEBECK, 1_001)
    before = state()
    errors = field_errors(post(client, f"/api/v1/allocations/{draft.id}/approve", staff))
    assert set(errors) == {"amount_cents"}
    assert "10,00" in errors["amount_cents"][0]  # 10.00 € left of the category's plan
    assert state() == before


BAD_ALLOCATIONS = [
    ({"recipient": NON_MEMBER}, "recipient"),  # not a member
    ({"recipient": "01099000"}, "recipient"),  # no such municipality
    ({"recipient": "0100200"}, "recipient"),
    ({"recipient": None}, "recipient"),  # a member recipient needs a key
    ({"recipient_kind": "federation"}, "recipient"),  # the federation has no key
    ({"recipient_kind": "project"}, "project"),  # a project recipient needs its project
    ({"recipient_kind": "consortium"}, "recipient_kind"),
    ({"year": YEAR + 5}, "year"),  # no such year
    ({"year": "2025"}, "year"),
    ({"category": "sonstiges"}, "category"),
    ({"category": ""}, "category"),
    ({"purpose": ""}, "purpose"),
    ({"purpose": "   "}, "purpose"),
    ({"purpose": "x" * 501}, "purpose"),
    ({"purpose": "a\x00b"}, "purpose"),
    ({"file_reference": "x" * 101}, "file_reference"),
    ({"decision_date": "31.12.2025"}, "decision_date"),
    ({"proof_of_use_due": (TODAY - timedelta(days=1)).isoformat()}, "proof_of_use_due"),
    ({"status": "approved"}, "status"),  # unknown fields
    ({"id": 7}, "id"),
    ({"committed_cents": 5}, "committed_cents"),
    ({"municipality_id": 1}, "municipality_id"),
]


def test_create_allocation_refuses_bad_input(client, staff):
    before = state()
    for change, field in BAD_ALLOCATIONS:
        errors = field_errors(post(client, "/api/v1/allocations", staff, {**NEW_ALLOCATION, **change}))
        assert set(errors) == {field}, (change, errors)
    assert state() == before


def test_nothing_is_booked_into_a_closed_year(client, staff, open_year):
    set_scope(db.session, ALL)
    last = ledger.create_fiscal_year(db.session, ACTOR, YEAR - 1)
    ledger.open_year(db.session, ACTOR, last)
    db.session.commit()
    allocation = make_allocation(last, KIEL, 1_000_000, approve=True, paid=400_000)
    set_scope(db.session, ALL)
    ledger.close_year(db.session, ACTOR, db.session.get(FiscalYear, last.id), {allocation.id: ledger.RELEASE})
    db.session.commit()
    set_scope(db.session, ALL)
    payment = db.session.execute(
        select(Booking).where(Booking.allocation_id == allocation.id, Booking.kind == "disbursement")
    ).scalar_one()
    before = state()
    url = f"/api/v1/allocations/{allocation.id}"
    errors = field_errors(post(client, f"{url}/repay", staff, {"amount_cents": 100}))
    assert set(errors) == {"year"}
    assert str(YEAR - 1) in errors["year"][0]
    assert set(
        field_errors(post(client, f"/api/v1/bookings/{payment.id}/reverse", staff, {"note": "x"}))
    ) == {"year"}
    created = field_errors(post(client, "/api/v1/allocations", staff, {**NEW_ALLOCATION, "year": YEAR - 1}))
    assert set(created) == {"year"}
    assert set(
        field_errors(patch(client, f"/api/v1/fiscal-years/{YEAR - 1}", staff, {"appropriation_cents": 1}))
    ) == {"appropriation_cents"}
    assert state() == before


def test_a_booking_is_reversed_at_most_once(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True, paid=300_000)
    set_scope(db.session, ALL)
    payment = db.session.execute(
        select(Booking).where(Booking.allocation_id == allocation.id, Booking.kind == "disbursement")
    ).scalar_one()
    url = f"/api/v1/bookings/{payment.id}/reverse"
    reversal = ok(post(client, url, staff, {"note": "falsches Konto"}), 201)
    before = state()
    errors = field_errors(post(client, url, staff, {"note": "nochmal"}))
    assert set(errors) == {"booking"}
    assert str(reversal["id"]) in errors["booking"][0]  # names the reversal that exists
    assert set(
        field_errors(post(client, f"/api/v1/bookings/{reversal['id']}/reverse", staff, {"note": "x"}))
    ) == {"booking"}
    assert set(field_errors(post(client, url, staff, {}))) == {"note"}
    assert set(field_errors(post(client, url, staff, {"note": ""}))) == {"note"}
    assert state() == before
    assert_problem(post(client, "/api/v1/bookings/999999/reverse", staff, {"note": "x"}), 404)


BAD_ACTIONS = [
    ("disburse", {"amount_cents": 100, "colour": "blue"}, {"colour"}),
    ("disburse", {"amount_cents": 100, "allocation_id": 1}, {"allocation_id"}),
    ("disburse", {"amount_cents": 100, "booked_on": "2025-02-30"}, {"booked_on"}),
    ("disburse", {"amount_cents": 100, "note": "x" * 501}, {"note"}),
    ("disburse", {}, {"amount_cents"}),
    ("release", {"amount": 100}, {"amount", "amount_cents"}),
    ("repay", {"amount_cents": 100, "kind": "disbursement"}, {"kind"}),
    ("approve", {"amount_cents": 100}, {"amount_cents"}),
    ("cancel", {"why": "x"}, {"why"}),
    ("cancel", {"reason": 5}, {"reason"}),
    ("settle", {"received": TODAY.isoformat()}, {"received"}),
    ("settle", {"proof_of_use_received": "morgen"}, {"proof_of_use_received"}),
]


def test_actions_refuse_unknown_fields_and_bad_values(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True)
    before = state()
    for action, body, fields in BAD_ACTIONS:
        errors = field_errors(post(client, f"/api/v1/allocations/{allocation.id}/{action}", staff, body))
        assert set(errors) == fields, (action, body, errors)
    assert state() == before


def test_transitions_out_of_order_are_refused(client, staff, open_year):
    draft = make_allocation(open_year)
    paid = make_allocation(open_year, LUEBECK, approve=True, paid=1_000_000)
    before = state()
    draft_url, paid_url = f"/api/v1/allocations/{draft.id}", f"/api/v1/allocations/{paid.id}"
    assert set(field_errors(post(client, f"{draft_url}/disburse", staff, {"amount_cents": 1}))) == {"status"}
    assert set(field_errors(post(client, f"{draft_url}/settle", staff, {}))) == {"status"}
    assert set(field_errors(post(client, f"{paid_url}/approve", staff))) == {"status"}
    assert set(field_errors(post(client, f"{paid_url}/cancel", staff, {"reason": "x"}))) == {"status"}
    assert set(field_errors(post(client, f"{paid_url}/settle", staff, {}))) == {"proof_of_use_received"}
    future = (TODAY + timedelta(days=1)).isoformat()
    assert set(
        field_errors(post(client, f"{paid_url}/settle", staff, {"proof_of_use_received": future}))
    ) == {"proof_of_use_received"}
    assert state() == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("not json", "application/json"), ("[1, 2]", "application/json"), ('{"amount_cents": 1}', "text/plain")],
)
def test_a_body_that_is_no_json_object_answers_400(client, staff, open_year, data, content_type):
    allocation = make_allocation(open_year, approve=True)
    before = state()
    for url in (
        f"/api/v1/allocations/{allocation.id}/disburse",
        "/api/v1/allocations",
        "/api/v1/distributions",
    ):
        assert_problem(client.post(url, data=data, content_type=content_type, headers=staff), 400)
    assert state() == before


def test_unknown_and_absurd_ids_answer_404(client, staff, open_year):
    for url in (
        "/api/v1/allocations/999999",
        f"/api/v1/allocations/{2**31}",
        "/api/v1/allocations/99999999999999999999",
    ):
        assert_problem(client.get(url), 404)
        assert_problem(post(client, f"{url}/approve", staff), 404)
    assert_problem(client.get("/api/v1/allocations/-1"), 404)


ODD_VALUES = [
    {"nested": {"deeper": [1, 2]}},
    [1, 2, 3],
    "x" * 10_000,
    "\u00fc\u20ac\U0001f4b6",
    "a\x00b",
    -(10**30),
    1e308,
    None,
    True,
    "",
]
ODD_RAW = [
    '{"amount_cents": 1e400}',
    '{"amount_cents": -0}',
    '{"amount_cents": 1' + "0" * 5000 + "}",
    "{" * 5000,
]


def test_odd_input_never_answers_500(client, staff, open_year):
    """Every write endpoint, every field, odd values: always a 4xx problem, never a 500."""
    allocation = make_allocation(open_year, approve=True, paid=100)
    set_scope(db.session, ALL)
    booking_id = (
        db.session.execute(select(Booking.id).where(Booking.allocation_id == allocation.id)).scalars().first()
    )
    url = f"/api/v1/allocations/{allocation.id}"
    preview = preview_body(selection="amt", parameters={"key": AMT_ACHTERWEHR})
    writes = [
        ("post", "/api/v1/fiscal-years", {"year": YEAR + 1, "appropriation_cents": 1, "note": "n"}),
        ("patch", f"/api/v1/fiscal-years/{YEAR}", {"appropriation_cents": 150_000_000, "note": "n"}),
        ("post", "/api/v1/allocations", NEW_ALLOCATION),
        ("patch", url, {"purpose": "p", "recipient": KIEL, "proof_of_use_received": None}),
        ("post", f"{url}/approve", {"booked_on": TODAY.isoformat()}),
        ("post", f"{url}/disburse", {"amount_cents": 1, "booked_on": TODAY.isoformat(), "note": "n"}),
        ("post", f"{url}/release", {"amount_cents": 1, "note": "n"}),
        ("post", f"{url}/repay", {"amount_cents": 1, "note": "n"}),
        ("post", f"{url}/cancel", {"reason": "r"}),
        ("post", f"{url}/settle", {"proof_of_use_received": TODAY.isoformat()}),
        ("post", f"/api/v1/bookings/{booking_id}/reverse", {"note": "n", "booked_on": TODAY.isoformat()}),
        ("post", "/api/v1/distributions/preview", preview),
        ("post", "/api/v1/distributions", {**preview, "purpose": "p", "file_reference": "f"}),
    ]
    for method, target, valid in writes:
        for name in valid:
            for value in ODD_VALUES:
                response = getattr(client, method)(target, json={**valid, name: value}, headers=staff)
                set_scope(db.session, ALL)
                # A few odd values are valid somewhere (an empty reason, null for an optional date).
                if response.status_code not in (200, 201):
                    assert_problem(response, response.status_code)
                    assert response.status_code < 500, (target, name, value)
        for raw in ODD_RAW:
            response = getattr(client, method)(
                target, data=raw, content_type="application/json", headers=staff
            )
            set_scope(db.session, ALL)
            assert 400 <= assert_problem(response, response.status_code)["status"] < 500, (target, raw[:40])


# --- idempotency --------------------------------------------------------------------------------


def test_the_same_idempotency_key_books_once_and_answers_the_same(client, staff, open_year):
    allocation = make_allocation(open_year, approve=True)
    url = f"/api/v1/allocations/{allocation.id}/disburse"
    first = post(client, url, staff, {"amount_cents": 250_000, "note": "Rate"}, key="pay-1")
    after_first = state()
    second = post(client, url, staff, {"amount_cents": 250_000, "note": "Rate"}, key="pay-1")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json() == second.get_json()
    assert state() == after_first  # no second booking, no audit event, no key
    assert get(client, f"/api/v1/allocations/{allocation.id}")["paid_cents"] == 250_000

    # The same key with another body, or for another action, is refused and changes nothing.
    errors = field_errors(post(client, url, staff, {"amount_cents": 250_001, "note": "Rate"}, key="pay-1"))
    assert set(errors) == {"Idempotency-Key"}
    errors = field_errors(
        post(
            client,
            url.replace("disburse", "release"),
            staff,
            {"amount_cents": 250_000, "note": "Rate"},
            key="pay-1",
        )
    )
    assert set(errors) == {"Idempotency-Key"}
    assert state() == after_first
    # Without a key, the same request is another payment.
    ok(post(client, url, staff, {"amount_cents": 250_000, "note": "Rate"}), 201)
    assert get(client, f"/api/v1/allocations/{allocation.id}")["paid_cents"] == 500_000


@pytest.mark.parametrize("key", ["", "   ", "k" * 101])
def test_an_unusable_idempotency_key_is_refused(client, staff, open_year, key):
    allocation = make_allocation(open_year, approve=True)
    before = state()
    errors = field_errors(
        post(client, f"/api/v1/allocations/{allocation.id}/disburse", staff, {"amount_cents": 1}, key=key)
    )
    assert set(errors) == {"Idempotency-Key"}
    errors = field_errors(post(client, f"/api/v1/allocations/{allocation.id}/cancel", staff, {}, key=key))
    assert set(errors) == {"Idempotency-Key"}
    assert state() == before


def test_every_write_replays_under_its_key(client, staff, open_year):
    """Create, approve, change, reverse, cancel, settle, year create/change, distribution: the same key
    twice answers the same status and body and writes nothing the second time."""
    created = post(client, "/api/v1/allocations", staff, NEW_ALLOCATION, key="create-1")
    allocation_id = ok(created, 201)["id"]
    url = f"/api/v1/allocations/{allocation_id}"
    paid_draft = make_allocation(open_year, LUEBECK, 100_000, approve=True, paid=100_000)
    set_scope(db.session, ALL)
    payment_id = db.session.execute(
        select(Booking.id).where(Booking.allocation_id == paid_draft.id, Booking.kind == "disbursement")
    ).scalar_one()
    to_cancel = make_allocation(open_year, RENDSBURG, 100_000)
    distribution = {
        "year": YEAR,
        "category": "zuweisungen",
        "method": "per_capita",
        "selection": "amt",
        "parameters": {"key": AMT_ACHTERWEHR},
        "total_cents": 1_000_000,
        "purpose": "Schlüsselzuweisung",
    }
    cancel_url = f"/api/v1/allocations/{to_cancel.id}/cancel"
    # (method, url, body, key, status, and the same key with other parameters: url, body)
    requests = [
        (
            "post",
            "/api/v1/allocations",
            NEW_ALLOCATION,
            "create-1",
            201,
            None,
            {**NEW_ALLOCATION, "purpose": "b"},
        ),
        ("patch", url, {"purpose": "Neuer Zweck"}, "patch-1", 200, None, {"purpose": "Anderer Zweck"}),
        ("post", f"{url}/approve", {}, "approve-1", 201, f"/api/v1/allocations/{to_cancel.id}/approve", {}),
        (
            "post",
            f"{url}/disburse",
            {"amount_cents": 10_000_000},
            "pay-1",
            201,
            None,
            {"amount_cents": 9_000_000},
        ),
        (
            "post",
            f"{url}/settle",
            {"proof_of_use_received": TODAY.isoformat()},
            "settle-1",
            200,
            None,
            {"proof_of_use_received": (TODAY - timedelta(days=1)).isoformat()},
        ),
        (
            "post",
            f"/api/v1/bookings/{payment_id}/reverse",
            {"note": "Storno"},
            "reverse-1",
            201,
            None,
            {"note": "b"},
        ),
        ("post", cancel_url, {"reason": "weg"}, "cancel-1", 200, None, {"reason": "anders"}),
        ("post", "/api/v1/fiscal-years", {"year": YEAR + 1}, "year-1", 201, None, {"year": YEAR + 2}),
        (
            "patch",
            f"/api/v1/fiscal-years/{YEAR + 1}",
            {"note": "Entwurf"},
            "year-2",
            200,
            None,
            {"note": "b"},
        ),
        (
            "post",
            "/api/v1/distributions",
            distribution,
            "dist-1",
            201,
            None,
            {**distribution, "total_cents": 7},
        ),
    ]
    send = {"post": post, "patch": patch}
    for method, target, body, key, status, other_target, other_body in requests:
        first = send[method](client, target, staff, body, key=key)
        assert first.status_code == status, (target, first.get_json())
        after = state()
        again = send[method](client, target, staff, body, key=key)
        assert again.status_code == status, (target, again.get_json())
        assert again.get_json() == first.get_json(), target
        assert state() == after, target
        # The same key with other parameters: refused, nothing written.
        other = send[method](client, other_target or target, staff, other_body, key=key)
        assert set(field_errors(other)) == {"Idempotency-Key"}, target
        assert state() == after, target
    # Without a key a repeated create is refused by the rules (the year exists) or makes another row.
    assert set(field_errors(post(client, "/api/v1/fiscal-years", staff, {"year": YEAR + 1}))) == {"year"}


# --- who may write --------------------------------------------------------------------------------


def write_requests(allocation_id: int, booking_id: int) -> list[tuple[str, str, dict]]:
    url = f"/api/v1/allocations/{allocation_id}"
    return [
        ("post", "/api/v1/fiscal-years", {"year": YEAR + 1}),
        ("patch", f"/api/v1/fiscal-years/{YEAR}", {"appropriation_cents": 1}),
        ("post", "/api/v1/allocations", NEW_ALLOCATION),
        ("patch", url, {"purpose": "gekapert"}),
        ("post", f"{url}/approve", {}),
        ("post", f"{url}/disburse", {"amount_cents": 1}),
        ("post", f"{url}/release", {"amount_cents": 1}),
        ("post", f"{url}/repay", {"amount_cents": 1}),
        ("post", f"{url}/cancel", {"reason": "x"}),
        ("post", f"{url}/settle", {"proof_of_use_received": TODAY.isoformat()}),
        ("post", f"/api/v1/bookings/{booking_id}/reverse", {"note": "x"}),
        (
            "post",
            "/api/v1/distributions/preview",
            {
                "year": YEAR,
                "category": "zuweisungen",
                "method": "equal",
                "selection": "all",
                "total_cents": 100_000,
            },
        ),
        (
            "post",
            "/api/v1/distributions",
            {
                "year": YEAR,
                "category": "zuweisungen",
                "method": "equal",
                "selection": "all",
                "total_cents": 100_000_000,
                "purpose": "x",
            },
        ),
    ]


@pytest.mark.parametrize(
    ("role", "tenant"), [("auditor", None), ("municipality", KIEL), ("municipality", AMT_ACHTERWEHR)]
)
def test_auditors_and_municipality_users_may_not_write(client, as_user, open_year, role, tenant):
    allocation = make_allocation(open_year, KIEL, approve=True, paid=1_000)
    set_scope(db.session, ALL)
    booking_id = (
        db.session.execute(select(Booking.id).where(Booking.allocation_id == allocation.id)).scalars().first()
    )
    headers = as_user(role, tenant)
    before = state()
    for method, url, body in write_requests(allocation.id, booking_id):
        response = getattr(client, method)(
            url, json=body, headers={**headers, "Idempotency-Key": f"{role}-{url}"}
        )
        set_scope(db.session, ALL)
        assert_problem(response, 403)
    assert state() == before


def test_anonymous_gets_401_and_a_session_write_needs_a_csrf_token(client, as_user, open_year):
    allocation = make_allocation(open_year, approve=True)
    for url in (
        "/api/v1/fiscal-years",
        "/api/v1/allocations",
        f"/api/v1/allocations/{allocation.id}",
        "/api/v1/bookings",
    ):
        assert_problem(client.get(url), 401)
    before = state()
    assert_problem(
        client.post(f"/api/v1/allocations/{allocation.id}/disburse", json={"amount_cents": 1}), 401
    )
    assert state() == before
    as_user("staff")
    before = state()
    response = client.post(f"/api/v1/allocations/{allocation.id}/disburse", json={"amount_cents": 1})
    assert_problem(response, 400)
    assert state() == before


def test_a_bearer_token_writes_without_csrf(client, make_user, open_year):
    allocation = make_allocation(open_year, approve=True)
    token = auth_services.issue_token(db.session, "test", make_user("admin"))
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    body = ok(
        client.post(
            f"/api/v1/allocations/{allocation.id}/disburse", json={"amount_cents": 7}, headers=headers
        ),
        201,
    )
    assert (body["amount_cents"], body["booked_by"].startswith("admin")) == (7, True)


# --- what a municipality user sees -----------------------------------------------------------------


@pytest.fixture
def spread(open_year):
    """Allocations to Kiel, Lübeck, Krummwisch (in Amt Achterwehr), Rendsburg and the federation,
    each approved and partly paid."""
    made = {}
    for key, amount in (
        (KIEL, 1_000_000),
        (LUEBECK, 2_000_000),
        (KRUMMWISCH, 300_000),
        (RENDSBURG, 400_000),
        (None, 500_000),
    ):
        code = "personal" if key is None else "zuweisungen"
        made[key or "federation"] = make_allocation(
            open_year, key, amount, code=code, approve=True, paid=amount // 2
        )
    return made


def test_a_municipality_user_sees_only_its_own_allocations_and_bookings(client, as_user, spread, open_year):
    as_user("staff")
    staff_year = get(client, f"/api/v1/fiscal-years/{YEAR}")
    assert len(all_items(client, "/api/v1/allocations")) == 5
    as_user("municipality", KIEL)
    items = all_items(client, "/api/v1/allocations")
    assert [(i["id"], i["recipient"]) for i in items] == [(spread[KIEL].id, KIEL)]
    assert (items[0]["committed_cents"], items[0]["paid_cents"]) == (1_000_000, 500_000)
    bookings = all_items(client, "/api/v1/bookings")
    assert {b["allocation_id"] for b in bookings} == {spread[KIEL].id}
    assert [b["kind"] for b in bookings] == ["commitment", "disbursement"]
    for other in ("federation", LUEBECK, KRUMMWISCH):
        assert_problem(client.get(f"/api/v1/allocations/{spread[other].id}"), 404)
        assert all_items(client, f"/api/v1/bookings?allocation={spread[other].id}") == []
    assert all_items(client, f"/api/v1/allocations?recipient={LUEBECK}") == []
    assert all_items(client, "/api/v1/allocations?recipient=federation") == []
    own = get(client, f"/api/v1/allocations/{spread[KIEL].id}")
    assert own["recipient"] == KIEL
    assert [b["amount_cents"] for b in own["bookings"]] == [1_000_000, 500_000]
    # Who at the federation booked is the staff member's personal data: not shown to members.
    assert all("booked_by" not in b for b in bookings + own["bookings"])
    # The year's totals are public money: the same for everyone.
    assert get(client, f"/api/v1/fiscal-years/{YEAR}") == staff_year
    assert staff_year["committed_cents"] == 4_200_000
    assert get(client, "/api/v1/fiscal-years")["items"][0]["committed_cents"] == 4_200_000


def test_an_amt_user_sees_the_amt_and_its_gemeinden(client, as_user, spread):
    as_user("municipality", AMT_ACHTERWEHR)
    assert [i["recipient"] for i in all_items(client, "/api/v1/allocations")] == [KRUMMWISCH]
    assert {b["recipient"] for b in all_items(client, "/api/v1/bookings")} == {KRUMMWISCH}
    assert_problem(client.get(f"/api/v1/allocations/{spread[RENDSBURG].id}"), 404)


# --- list filters -----------------------------------------------------------------------------------


def test_allocation_filters(client, as_user, spread, open_year):
    as_user("auditor")
    draft = make_allocation(open_year, WESTENSEE, 50_000, code="projekte")

    def recipients(query: str) -> list:
        return [i["recipient"] for i in all_items(client, f"/api/v1/allocations?{query}")]

    assert recipients(f"year={YEAR}") == [KIEL, LUEBECK, KRUMMWISCH, RENDSBURG, None, WESTENSEE]
    assert recipients(f"year={YEAR - 1}") == []
    assert recipients("status=draft") == [WESTENSEE]
    assert recipients("status=partially_paid") == [KIEL, LUEBECK, KRUMMWISCH, RENDSBURG, None]
    assert recipients(f"recipient={KIEL}") == [KIEL]
    assert recipients("recipient=federation") == [None]
    assert recipients("recipient=01099000") == []
    assert recipients("category=projekte") == [WESTENSEE]
    assert recipients("category=personal") == [None]
    assert recipients(f"kreis={KREIS_RD_ECK}") == [KRUMMWISCH, RENDSBURG, WESTENSEE]
    assert recipients(f"kreis={KREIS_RD_ECK}&status=draft&category=projekte") == [WESTENSEE]
    assert recipients("kreis=01099") == []
    assert all_items(client, "/api/v1/allocations?status=draft")[0]["id"] == draft.id


def test_booking_filters(client, as_user, spread, open_year):
    as_user("staff")
    set_scope(db.session, ALL)
    payment = db.session.execute(
        select(Booking).where(Booking.allocation_id == spread[LUEBECK].id, Booking.kind == "disbursement")
    ).scalar_one()
    ledger.reverse(db.session, ACTOR, payment, note="Storno")
    db.session.commit()

    def kinds(query: str) -> list:
        return [(b["recipient"], b["kind"]) for b in all_items(client, f"/api/v1/bookings?{query}")]

    assert len(kinds("")) == 11
    assert len(kinds(f"year={YEAR}")) == 11
    assert kinds(f"year={YEAR + 1}") == []
    assert kinds(f"recipient={LUEBECK}") == [
        (LUEBECK, "commitment"),
        (LUEBECK, "disbursement"),
        (LUEBECK, "reversal"),
    ]
    assert kinds("recipient=federation") == [(None, "commitment"), (None, "disbursement")]
    assert kinds("kind=reversal") == [(LUEBECK, "reversal")]
    assert kinds(f"kind=disbursement&recipient={KIEL}") == [(KIEL, "disbursement")]
    assert kinds(f"allocation={spread[KRUMMWISCH].id}") == [
        (KRUMMWISCH, "commitment"),
        (KRUMMWISCH, "disbursement"),
    ]
    [reversal] = all_items(client, "/api/v1/bookings?kind=reversal")
    assert (reversal["reverses_id"], reversal["paid_delta_cents"], reversal["note"]) == (
        payment.id,
        -1_000_000,
        "Storno",
    )
    assert (reversal["year"], reversal["category"], reversal["booked_by"]) == (YEAR, "zuweisungen", ACTOR)
    # The bookings' sums are the year's figures.
    every = all_items(client, "/api/v1/bookings")
    year = get(client, f"/api/v1/fiscal-years/{YEAR}")
    assert sum(b["committed_delta_cents"] for b in every) == year["committed_cents"]
    assert sum(b["paid_delta_cents"] for b in every) == year["paid_cents"]


BAD_FILTERS = [
    ("/api/v1/allocations?year=abc", "year"),
    ("/api/v1/allocations?year=20250", "year"),
    ("/api/v1/allocations?year=1999", "year"),
    ("/api/v1/allocations?status=paied", "status"),
    ("/api/v1/allocations?recipient=Kiel", "recipient"),
    ("/api/v1/allocations?recipient=0100200", "recipient"),
    ("/api/v1/allocations?kreis=010580", "kreis"),
    ("/api/v1/allocations?distribution=x", "distribution"),
    ("/api/v1/bookings?kind=payment", "kind"),
    ("/api/v1/bookings?allocation=-1", "allocation"),
    ("/api/v1/bookings?allocation=99999999999", "allocation"),
    ("/api/v1/bookings?year=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%95", "year"),  # full-width digits
    ("/api/v1/bookings?recipient=federation%0A", "recipient"),
]


def test_bad_filters_are_refused_naming_the_parameter(client, as_user, open_year):
    as_user("staff")
    for url, field in BAD_FILTERS:
        assert set(field_errors(client.get(url))) == {field}, url


# --- distributions --------------------------------------------------------------------------------


def preview_body(**change) -> dict:
    return {
        "year": YEAR,
        "category": "zuweisungen",
        "method": "per_capita",
        "selection": "all",
        "total_cents": 150_000_000,
        **change,
    }


def test_a_per_capita_preview_over_all_members_sums_exactly_and_writes_nothing(client, staff, open_year):
    before = state()
    body = ok(post(client, "/api/v1/distributions/preview", staff, preview_body()))
    assert state() == before
    rows = body["rows"]
    assert len(rows) == local_member_count() == 1105  # all Gemeinden but the one non-member
    assert sum(r["amount_cents"] for r in rows) == 150_000_000
    assert body["totals"] == {
        "recipients": 1105,
        "population": sum(r["population"] for r in rows),
        "amount_cents": 150_000_000,
    }
    assert NON_MEMBER not in {r["key"] for r in rows}
    kiel = next(r for r in rows if r["key"] == KIEL)
    assert (kiel["name"], kiel["population"]) == ("Kiel, Landeshauptstadt", 246794)
    exact = 150_000_000 * kiel["population"] / body["totals"]["population"]
    assert abs(kiel["amount_cents"] - exact) < 1
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)
    assert set(rows[0]) == {"key", "name", "population", "amount_cents"}
    assert (body["year"], body["category"], body["method"], body["selection"]) == (
        YEAR,
        "zuweisungen",
        "per_capita",
        "all",
    )
    assert body["population_date"] == "2019-12-31"


@pytest.mark.parametrize(
    ("change", "count"),
    [
        ({"selection": "kreis", "parameters": {"key": KREIS_RD_ECK}}, 165),
        ({"selection": "amt", "parameters": {"key": AMT_ACHTERWEHR}}, 8),
        ({"selection": "list", "parameters": {"keys": [KIEL, KRUMMWISCH, LUEBECK]}, "method": "equal"}, 3),
        (
            {
                "selection": "amt",
                "parameters": {"key": AMT_ACHTERWEHR},
                "method": "base_plus_per_capita",
                "base_cents": 1_000_000,
            },
            8,
        ),
    ],
)
def test_previews_of_a_selection_sum_exactly(client, staff, open_year, change, count):
    body = ok(
        post(client, "/api/v1/distributions/preview", staff, preview_body(total_cents=12_345_679, **change))
    )
    assert len(body["rows"]) == count
    assert sum(r["amount_cents"] for r in body["rows"]) == 12_345_679 == body["totals"]["amount_cents"]
    if change.get("method") == "equal":
        assert {r["amount_cents"] for r in body["rows"]} == {4_115_226, 4_115_227}
    if "base_cents" in change:
        assert min(r["amount_cents"] for r in body["rows"]) > 1_000_000


BAD_PREVIEWS = [
    ({"selection": "kreis", "parameters": {"key": "01099"}}, "parameters.key"),
    ({"selection": "kreis", "parameters": {"key": AMT_ACHTERWEHR}}, "parameters.key"),
    ({"selection": "kreis", "parameters": {"key": "abc"}}, "parameters.key"),
    ({"selection": "list", "parameters": {"keys": [KIEL, NON_MEMBER]}}, "parameters.keys"),
    ({"selection": "list", "parameters": {"keys": [KIEL, KIEL]}}, "parameters.keys"),
    ({"selection": "list", "parameters": {"keys": []}}, "parameters.keys"),
    ({"selection": "list", "parameters": {"keys": ["0100200"]}}, "parameters.keys.0"),
    ({"selection": "list", "parameters": {}}, "parameters.keys"),
    ({"parameters": {"kreis": KREIS_RD_ECK}}, "parameters.kreis"),
    ({"parameters": "all"}, "parameters"),
    ({"selection": "everyone"}, "selection"),
    ({"method": "by_area"}, "method"),
    ({"base_cents": 100}, "base_cents"),  # a base only with base_plus_per_capita
    ({"method": "base_plus_per_capita", "base_cents": 200_000}, "base_cents"),  # 1,105 bases > total
    ({"method": "equal", "total_cents": 1_000}, "total_cents"),  # less than a cent each
    ({"total_cents": 0}, "total_cents"),
    ({"year": YEAR + 3}, "year"),
    ({"category": "nope"}, "category"),
    ({"purpose": "p"}, "purpose"),  # unknown to the preview
]


def test_preview_refuses_bad_input(client, staff, open_year):
    before = state()
    for change, field in BAD_PREVIEWS:
        errors = field_errors(post(client, "/api/v1/distributions/preview", staff, preview_body(**change)))
        assert set(errors) == {field}, (change, errors)
    assert state() == before


def test_a_distribution_creates_its_draft_allocations(client, staff, open_year):
    body = {
        **preview_body(selection="kreis", parameters={"key": KREIS_RD_ECK}, total_cents=10_000_000),
        "purpose": "Schlüsselzuweisung RD-Eck",
        "file_reference": "AZ 7",
        "decision_date": TODAY.isoformat(),
    }
    request = {k: v for k, v in body.items() if k not in ("purpose", "file_reference", "decision_date")}
    preview = ok(post(client, "/api/v1/distributions/preview", staff, request))
    made = ok(post(client, "/api/v1/distributions", staff, body), 201)
    assert made["allocation_count"] == len(made["allocation_ids"]) == made["recipients"] == 165
    assert (made["method"], made["selection"], made["parameters"]) == (
        "per_capita",
        "kreis",
        {"key": KREIS_RD_ECK},
    )
    assert (made["total_cents"], made["base_cents"], made["population_date"]) == (10_000_000, 0, "2019-12-31")
    items = all_items(client, f"/api/v1/allocations?distribution={made['id']}")
    assert sorted(i["id"] for i in items) == made["allocation_ids"]
    assert {(i["status"], i["purpose"], i["file_reference"], i["kreis"]) for i in items} == {
        ("draft", "Schlüsselzuweisung RD-Eck", "AZ 7", KREIS_RD_ECK)
    }
    assert {i["recipient"]: i["amount_cents"] for i in items} == {
        r["key"]: r["amount_cents"] for r in preview["rows"]
    }
    assert sum(i["amount_cents"] for i in items) == 10_000_000
    assert get(client, f"/api/v1/fiscal-years/{YEAR}")["committed_cents"] == 0  # drafts bind nothing


def test_a_refused_distribution_writes_nothing(client, staff, open_year):
    before = state()
    body = {**preview_body(selection="list", parameters={"keys": [KIEL, NON_MEMBER]}), "purpose": "x"}
    assert set(field_errors(post(client, "/api/v1/distributions", staff, body))) == {"parameters.keys"}
    assert set(field_errors(post(client, "/api/v1/distributions", staff, {**body, "purpose": ""}))) == {
        "purpose"
    }
    assert set(field_errors(post(client, "/api/v1/distributions", staff, preview_body()))) == {"purpose"}
    assert state() == before


# --- the OpenAPI document ---------------------------------------------------------------------------


def test_the_openapi_document_describes_the_funding_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    expected = {
        "/api/v1/fiscal-years": {"get", "post"},
        "/api/v1/fiscal-years/{year}": {"get", "patch"},
        "/api/v1/allocations": {"get", "post"},
        "/api/v1/allocations/{allocation_id}": {"get", "patch"},
        "/api/v1/bookings": {"get"},
        "/api/v1/bookings/{booking_id}/reverse": {"post"},
        "/api/v1/distributions/preview": {"post"},
        "/api/v1/distributions": {"post"},
    }
    for action in ("approve", "disburse", "release", "repay", "cancel", "settle"):
        expected[f"/api/v1/allocations/{{allocation_id}}/{action}"] = {"post"}
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    assert paths["/api/v1/allocations"]["post"]["description"] == "Roles: admin, staff"
    assert "municipality" in paths["/api/v1/allocations"]["get"]["description"]
    filters = {p["name"] for p in paths["/api/v1/allocations"]["get"]["parameters"]}
    assert {"year", "status", "recipient", "category", "kreis", "page", "per_page"} <= filters
    assert {"year", "recipient", "kind", "allocation"} <= {
        p["name"] for p in paths["/api/v1/bookings"]["get"]["parameters"]
    }
    disburse = paths["/api/v1/allocations/{allocation_id}/disburse"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in disburse["parameters"] if p["in"] == "header"}
    assert disburse["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Payment")

    schemas = spec["components"]["schemas"]
    funding = [
        "FiscalYear",
        "FiscalYearDetail",
        "FiscalYearCreate",
        "FiscalYearUpdate",
        "Category",
        "Allocation",
        "AllocationDetail",
        "AllocationCreate",
        "AllocationUpdate",
        "Booking",
        "Payment",
        "DistributionPreviewRequest",
        "DistributionCreate",
        "DistributionPreview",
        "PreviewRow",
        "PreviewTotals",
        "Distribution",
    ]
    cents_fields = 0
    for name in funding:
        for prop, spec_ in schemas[name]["properties"].items():
            if prop.endswith("_cents"):
                cents_fields += 1
                assert spec_["type"] == "integer", (name, prop)
                assert "integer cents" in spec_["description"], (name, prop)
    assert cents_fields > 40
    for name in ("FiscalYear", "Allocation"):
        assert {"committed_cents", "paid_cents"} <= set(schemas[name]["properties"])
    assert {"appropriation_cents", "carried_in_cents", "available_cents", "free_cents"} <= set(
        schemas["FiscalYear"]["properties"]
    )
    amount = schemas["Payment"]["properties"]["amount_cents"]
    assert (amount["minimum"], amount["maximum"]) == (1, 10**12)
    assert schemas["FiscalYearCreate"]["properties"]["appropriation_cents"]["minimum"] == 0
    for name in (
        "FiscalYearCreate",
        "AllocationCreate",
        "AllocationUpdate",
        "Payment",
        "Reverse",
        "DistributionCreate",
    ):
        assert schemas[name]["additionalProperties"] is False, name
    assert set(schemas["AllocationCreate"]["required"]) == {"year", "category", "purpose", "amount_cents"}


# --- SQL statements: as many for many bookings as for few ----------------------------------------------


def statements_for(client, url: str) -> tuple[list[str], dict]:
    db.session.expunge_all()  # a cold session, as a new request in production has
    with recorded_statements() as statements:
        response = client.get(url)
    set_scope(db.session, ALL)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return statements, response.get_json()


def test_list_statement_counts_do_not_grow_with_bookings(client, as_user, open_year):
    year_id = open_year.id
    as_user("staff")
    keys = [KIEL, LUEBECK, KRUMMWISCH, RENDSBURG, WESTENSEE, None]
    for key in keys:
        make_allocation(
            open_year,
            key,
            1_000_000,
            code="personal" if key is None else "zuweisungen",
            approve=True,
            paid=1_000,
        )
    urls = [
        "/api/v1/allocations?per_page=100",
        "/api/v1/bookings?per_page=500",
        "/api/v1/fiscal-years",
        f"/api/v1/fiscal-years/{YEAR}",
    ]
    small = {url: statements_for(client, url) for url in urls}
    assert small["/api/v1/allocations?per_page=100"][1]["meta"]["total"] == 6

    set_scope(db.session, ALL)
    open_year = db.session.get(FiscalYear, year_id)  # the session was emptied meanwhile
    for allocation in db.session.execute(select(Allocation)).scalars().all():
        for _ in range(10):
            ledger.disburse(db.session, ACTOR, allocation, 1_000)
    # Recipients in four more Kreise: each Kreis is named on the page, without a query of its own.
    for key in keys * 2 + ["01053002", "01054001", "01055001", "01056001", "01057001", "01058001"]:
        make_allocation(
            open_year, key, 10_000, code="personal" if key is None else "zuweisungen", approve=True, paid=100
        )
    db.session.commit()
    large = {url: statements_for(client, url) for url in urls}
    allocations = large["/api/v1/allocations?per_page=100"][1]
    assert allocations["meta"]["total"] == 24
    assert allocations["items"][0]["paid_cents"] == 11_000
    assert len(large["/api/v1/bookings?per_page=500"][1]["items"]) == 6 * 12 + 18 * 2
    for url in urls:
        assert small[url][0], url  # the listener does see the endpoint's statements
        assert len(large[url][0]) == len(small[url][0]), (url, small[url][0], large[url][0])
    assert {i["kreis"] for i in allocations["items"]} >= {
        "01053",
        "01054",
        "01055",
        "01056",
        "01057",
        "01058",
    }
    # The allocation list: the logged-in user, the count, the page (with its years, categories,
    # recipients and their Kreise), the page's sums.
    assert len(large["/api/v1/allocations?per_page=100"][0]) == 4
    print("\n" + "; ".join(f"{url}: {len(large[url][0])} statements" for url in urls))


# --- shared projects as recipients ------------------------------------------------------------------


def new_project(name: str = "Digitaler Bauantrag", *, running: bool = True):
    """A shared project from 2020 to 2030 (running, or still an idea); committed."""
    from itvsh.projects import services as project_services

    set_scope(db.session, ALL)
    project = project_services.create_project(
        db.session,
        ACTOR,
        name=name,
        kind="shared_service",
        starts_on=date(2020, 1, 1),
        ends_on=date(2030, 12, 31),
    )
    if running:
        project_services.change_status(db.session, ACTOR, project, "planned")
        project_services.change_status(db.session, ACTOR, project, "running")
    db.session.commit()
    set_scope(db.session, ALL)
    return project


def recipients_on_record() -> list[tuple]:
    """Each allocation's kind of recipient, member and project (what ``state`` leaves out)."""
    set_scope(db.session, ALL)
    return db.session.execute(
        select(
            Allocation.id, Allocation.recipient_kind, Allocation.municipality_id, Allocation.project_id
        ).order_by(Allocation.id)
    ).all()


def test_an_allocation_goes_to_a_project_and_shows_it(client, staff, open_year):
    project = new_project()
    body = {**NEW_ALLOCATION, "category": "projekte", "recipient_kind": "project", "project": project.id}
    del body["recipient"]
    created = ok(post(client, "/api/v1/allocations", staff, body), 201)
    assert (created["recipient_kind"], created["recipient"], created["recipient_name"]) == (
        "project",
        None,
        None,
    )
    assert (created["project"], created["project_name"], created["kreis"]) == (
        project.id,
        "Digitaler Bauantrag",
        None,
    )
    member = make_allocation(open_year, KIEL)
    assert (get(client, f"/api/v1/allocations/{member.id}")["project"]) is None
    listed = all_items(client, f"/api/v1/allocations?project={project.id}")
    assert [(a["id"], a["project_name"]) for a in listed] == [(created["id"], "Digitaler Bauantrag")]
    assert all_items(client, "/api/v1/allocations?project=999999") == []
    assert "project" in field_errors(client.get("/api/v1/allocations?project=abc"))
    # A draft moves from the project to a member and back.
    url = f"/api/v1/allocations/{created['id']}"
    to_member = ok(patch(client, url, staff, {"recipient": KIEL}))
    assert (to_member["recipient_kind"], to_member["recipient"], to_member["project"]) == (
        "member",
        KIEL,
        None,
    )
    back = ok(patch(client, url, staff, {"project": project.id}))
    assert (back["recipient_kind"], back["recipient"], back["project"]) == ("project", None, project.id)
    to_federation = ok(patch(client, url, staff, {"recipient_kind": "federation"}))
    assert (to_federation["recipient"], to_federation["project"]) == (None, None)
    ok(patch(client, url, staff, {"recipient_kind": "project", "project": project.id}))
    approved = ok(post(client, f"{url}/approve", staff), 201)
    assert approved["recipient_kind"] == "project"
    # The project's budget is the ledger sum of its allocations.
    from itvsh.projects.services import project_budgets

    set_scope(db.session, ALL)
    assert project_budgets(db.session, [project.id])[project.id].committed_cents == body["amount_cents"]


def test_bad_project_recipients_are_refused_naming_the_field(client, staff, open_year):
    project, idea = new_project(), new_project("Nur eine Idee", running=False)
    draft = make_allocation(open_year, KIEL)
    body = {**NEW_ALLOCATION, "category": "projekte", "recipient_kind": "project", "project": project.id}
    del body["recipient"]
    before, on_record = state(), recipients_on_record()
    for change, field in (
        ({"project": 999999}, "project"),
        ({"project": idea.id}, "project"),  # only planned or running projects receive money
        ({"project": None}, "project"),
        ({"project": 0}, "project"),
        ({"project": "1"}, "project"),
        ({"project": True}, "project"),
        ({"project": 2**31}, "project"),
        ({"recipient": KIEL}, "recipient"),  # a project allocation has no member
        ({"recipient_kind": "member"}, "recipient"),  # a member allocation names its member ...
        ({"recipient_kind": "member", "recipient": KIEL}, "project"),  # ... and no project
        ({"recipient_kind": "federation"}, "project"),
    ):
        errors = field_errors(post(client, "/api/v1/allocations", staff, {**body, **change}))
        assert set(errors) == {field}, (change, errors)
    assert (
        "999999"
        in field_errors(post(client, "/api/v1/allocations", staff, {**body, "project": 999999}))["project"][0]
    )
    url = f"/api/v1/allocations/{draft.id}"
    for change, field in (
        ({"project": 999999}, "project"),
        ({"project": idea.id}, "project"),
        ({"recipient_kind": "project"}, "project"),
        ({"project": project.id, "recipient": KIEL}, "project"),  # a member names no project
    ):
        errors = field_errors(patch(client, url, staff, change))
        assert set(errors) == {field}, (change, errors)
    assert state() == before
    assert recipients_on_record() == on_record
    # Once approved, the recipient is fixed.
    approved = make_allocation(open_year, LUEBECK, approve=True)
    before, on_record = state(), recipients_on_record()
    assert set(
        field_errors(patch(client, f"/api/v1/allocations/{approved.id}", staff, {"project": project.id}))
    ) <= {
        "project",
        "recipient_kind",
        "recipient",
    }
    assert state() == before
    assert recipients_on_record() == on_record


def test_a_member_never_sees_an_allocation_to_a_project(client, as_user, open_year):
    project = new_project()
    set_scope(db.session, ALL)
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=open_year,
        category=category(open_year, "projekte"),
        recipient_kind="project",
        municipality=None,
        project=project,
        purpose="Betrieb des Bauantrags",
        amount_cents=1_000_00,
    )
    ledger.approve(db.session, ACTOR, allocation)
    db.session.commit()
    own = make_allocation(open_year, KIEL)
    as_user("municipality", KIEL)
    assert [a["id"] for a in all_items(client, "/api/v1/allocations")] == [own.id]
    assert_problem(client.get(f"/api/v1/allocations/{allocation.id}"), 404)
    assert "Bauantrag" not in client.get("/api/v1/bookings?per_page=500").get_data(as_text=True)
    set_scope(db.session, ALL)
    as_user("auditor")
    assert {a["project"] for a in all_items(client, "/api/v1/allocations")} == {None, project.id}
