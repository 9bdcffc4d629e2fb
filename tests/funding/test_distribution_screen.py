"""The distribution screen through the client: the preview shows shares that add up exactly to the
total and writes nothing; "create" makes the draft allocations once (the hidden idempotency key
makes a second submission a no-op); bad input is named at its field and writes nothing; amounts
are read in the user's language; auditors and municipality users are refused."""

from __future__ import annotations

import html
import re

import pytest
from flask_babel import force_locale, ngettext
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding.models import Allocation, Booking, Distribution, IdempotencyKey
from itvsh.tenants.models import LOCAL_KINDS, Municipality
from tests.auth.helpers import translated
from tests.conftest import csrf_token
from tests.funding.conftest import AMT_ACHTERWEHR, KREIS_RD_ECK, KRUMMWISCH, NON_MEMBER, category

URL = "/admin/funding/distribution/"
HUNDRED_THOUSAND = 10_000_000  # cents


def counts() -> dict[str, int]:
    set_scope(db.session, ALL)
    return {
        model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Allocation, Distribution, Booking, AuditEvent, IdempotencyKey)
    }


def form(fiscal_year, **changes) -> dict[str, str]:
    data = {
        "year": str(fiscal_year.id),
        "category": str(category(fiscal_year).id),
        "method": "per_capita",
        "selection": "kreis",
        "kreis": KREIS_RD_ECK,
        "amt": "",
        "keys": "",
        "total": "100.000,00",
        "base": "",
        "purpose": "Digitalisierung der Gemeinden",
        "decision_date": "",
        "file_reference": "ITV 10-2 / 7",
        "proof_of_use_due": "",
    }
    data.update(changes)
    return data


def post(client, data: dict, action: str = "preview"):
    response = client.post(URL, data={**data, "action": action, "csrf_token": csrf_token(client, "/logout")})
    set_scope(db.session, ALL)
    return response


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def shares(body: str) -> dict[str, int]:
    return {
        key: int(cents)
        for key, cents in re.findall(
            r'<tr class="itvsh-share" data-key="(\d+)">.*?data-cents="(-?\d+)"', body, re.S
        )
    }


def field_errors(body: str) -> dict[str, str]:
    return {
        name: re.sub(r"<[^>]+>", " ", inner).strip()
        for name, inner in re.findall(r'data-field="(\w+)" role="alert">(.*?)</div>\s*</div>', body, re.S)
    }


def create_form(body: str) -> dict[str, str]:
    """The hidden fields of the create form on a preview page (what a browser sends)."""
    part = re.search(r'<form [^>]*class="mb-3 itvsh-create-form">(.*?)</form>', body, re.S)[1]
    return {name: value for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', part)}


def member_gemeinden(parent_key: str) -> dict[str, int]:
    """{key: population} of the member Gemeinden of a Kreis or Amt."""
    set_scope(db.session, ALL)
    parent = db.session.execute(select(Municipality).where(Municipality.key == parent_key)).scalar_one()
    column = Municipality.kreis_id if parent.kind == "kreis" else Municipality.amt_id
    rows = db.session.execute(
        select(Municipality.key, Municipality.population).where(
            column == parent.id,
            Municipality.kind.in_([k.value for k in LOCAL_KINDS]),
            Municipality.key != NON_MEMBER,
        )
    ).all()
    return dict(rows)


@pytest.fixture
def staff(client, login_as, open_year):
    return login_as("staff")  # German: amounts typed as 1.234,56


# --- preview --------------------------------------------------------------------------------------


def test_the_form_offers_years_categories_kreise_and_amter(client, staff, open_year):
    response = client.get(URL)
    assert response.status_code == 200
    body = text(response)
    assert f'<option value="{open_year.id}" selected>{open_year.year}</option>' in body
    assert f'value="{category(open_year).id}"' in body
    assert f'<option value="{KREIS_RD_ECK}">' in body and f'<option value="{AMT_ACHTERWEHR}">' in body
    assert "itvsh-preview-table" not in body


def test_preview_shows_shares_that_add_up_to_the_total_and_writes_nothing(client, staff, open_year):
    before = counts()
    response = post(client, form(open_year))
    assert response.status_code == 200
    body = text(response)
    assert counts() == before
    expected = member_gemeinden(KREIS_RD_ECK)
    shown = shares(body)
    assert set(shown) == set(expected) and len(shown) > 100
    assert sum(shown.values()) == HUNDRED_THOUSAND
    total = re.search(
        r'itvsh-preview-totals.*?itvsh-population-total">([^<]*)<.*?data-cents="(\d+)"', body, re.S
    )
    assert int(total[2]) == HUNDRED_THOUSAND
    assert int(total[1].replace(".", "")) == sum(expected.values())
    # per capita: each share within a cent of its exact quota
    population = sum(expected.values())
    for key, cents in shown.items():
        assert abs(cents - HUNDRED_THOUSAND * expected[key] / population) < 1, key
    assert f'data-key="{KRUMMWISCH}"' in body
    hidden = create_form(body)
    assert len(hidden["idempotency_key"]) == 36 and hidden["total"] == "100.000,00"


def test_every_preview_carries_a_new_idempotency_key(client, staff, open_year):
    first = create_form(text(post(client, form(open_year))))["idempotency_key"]
    second = create_form(text(post(client, form(open_year))))["idempotency_key"]
    assert first != second


def test_equal_shares_and_base_plus_per_capita_over_an_amt_and_a_list(client, staff, open_year):
    achterwehr = member_gemeinden(AMT_ACHTERWEHR)
    equal = shares(
        text(
            post(
                client, form(open_year, method="equal", selection="amt", amt=AMT_ACHTERWEHR, total="1.000,01")
            )
        )
    )
    assert set(equal) == set(achterwehr) and sum(equal.values()) == 100_001
    assert sorted(equal.values()) == [12_500] * 7 + [12_501]
    based = shares(
        text(
            post(
                client,
                form(
                    open_year,
                    method="base_plus_per_capita",
                    selection="amt",
                    amt=AMT_ACHTERWEHR,
                    total="10.000,00",
                    base="500,00",
                ),
            )
        )
    )
    assert sum(based.values()) == 1_000_000 and min(based.values()) > 50_000
    picked = sorted(achterwehr)[:3]
    listed = shares(text(post(client, form(open_year, selection="list", keys=",\n".join(picked)))))
    assert sorted(listed) == picked and sum(listed.values()) == HUNDRED_THOUSAND


def test_amounts_are_read_in_the_users_language(client, login_as, open_year):
    login_as("staff", locale="en")
    body = text(post(client, form(open_year, total="1,500.50")))
    assert sum(shares(body).values()) == 150_050
    errors = field_errors(text(post(client, form(open_year, total="1.500,50"))))
    assert set(errors) == {"total"}


# --- create ---------------------------------------------------------------------------------------


def test_create_makes_the_drafts_once(client, staff, open_year):
    preview = text(post(client, form(open_year)))
    hidden = create_form(preview)
    rows = shares(preview)
    before = counts()
    response = post(client, hidden, action="create")
    assert response.status_code == 302
    made = db.session.execute(select(Distribution)).scalar_one()
    allocations = (
        db.session.execute(select(Allocation).where(Allocation.distribution_id == made.id)).scalars().all()
    )
    assert len(allocations) == len(rows)
    assert {a.municipality.key: a.amount_cents for a in allocations} == rows
    assert {a.status for a in allocations} == {"draft"}
    assert {a.purpose for a in allocations} == {"Digitalisierung der Gemeinden"}
    assert {a.file_reference for a in allocations} == {"ITV 10-2 / 7"}
    assert (made.method, made.selection, made.parameters) == ("per_capita", "kreis", {"key": KREIS_RD_ECK})
    assert made.total_cents == HUNDRED_THOUSAND and made.population_date is not None
    after = counts()
    assert after["Allocation"] == before["Allocation"] + len(rows) and after["Booking"] == before["Booking"]
    with client.application.test_request_context(), force_locale("de"):
        message = ngettext(
            "Distribution %(id)s: %(num)d draft allocation was created.",
            "Distribution %(id)s: %(num)d draft allocations were created.",
            len(rows),
            id=made.id,
        )
    assert message in text(client.get(response.headers["Location"]))

    again = post(client, hidden, action="create")  # the same submission again
    assert again.status_code == 302
    assert counts() == after


def test_the_same_key_for_other_parameters_is_refused(client, staff, open_year):
    hidden = create_form(text(post(client, form(open_year))))
    assert post(client, hidden, action="create").status_code == 302
    before = counts()
    response = post(client, {**hidden, "purpose": "something else"}, action="create")
    assert response.status_code == 200
    assert counts() == before
    assert translated(
        client.application, "This idempotency key was already used for a different request."
    ) in text(response)


def test_create_without_an_idempotency_key_is_refused(client, staff, open_year):
    before = counts()
    response = post(client, form(open_year), action="create")
    assert response.status_code == 200 and counts() == before
    assert 'class="alert alert-danger itvsh-form-error"' in text(response)


# --- bad input ------------------------------------------------------------------------------------------

BAD = {
    "unknown Kreis": ({"kreis": "01999"}, "kreis", "01999"),
    "an Amt key as Kreis": ({"kreis": AMT_ACHTERWEHR}, "kreis", AMT_ACHTERWEHR),
    "unknown Amt": ({"selection": "amt", "amt": "010589999"}, "amt", "010589999"),
    "a non-member in the list": (
        {"selection": "list", "keys": f"{KRUMMWISCH} {NON_MEMBER}"},
        "keys",
        NON_MEMBER,
    ),
    "a key listed twice": ({"selection": "list", "keys": f"{KRUMMWISCH} {KRUMMWISCH}"}, "keys", KRUMMWISCH),
    "an empty list": ({"selection": "list", "keys": " , "}, "keys", ""),
    "base amounts above the total": (
        {
            "method": "base_plus_per_capita",
            "selection": "amt",
            "amt": AMT_ACHTERWEHR,
            "total": "1.000,00",
            "base": "200,00",
        },
        "base",
        "",
    ),
    "a base amount for per capita": ({"base": "5,00"}, "base", ""),
    "three decimals": ({"total": "1.000,123"}, "total", ""),
    "negative": ({"total": "-5,00"}, "total", ""),
    "zero": ({"total": "0,00"}, "total", ""),
    "NaN": ({"total": "NaN"}, "total", ""),
    "an exponent": ({"total": "1e5"}, "total", ""),
    "text": ({"total": "viel Geld"}, "total", ""),
    "absurdly large": ({"total": "99.999.999.999.999,00"}, "total", ""),
    "nothing": ({"total": ""}, "total", ""),
    "a negative base": ({"method": "base_plus_per_capita", "base": "-1,00"}, "base", ""),
    "no year": ({"year": "abc"}, "year", ""),
    "an unknown category": ({"category": "99999999"}, "category", ""),
    "an unknown method": ({"method": "lottery"}, "method", ""),
    "an unknown selection": ({"selection": "everyone"}, "selection", ""),
    "no purpose": ({"purpose": "  "}, "purpose", ""),
    "a bad date": ({"decision_date": "2025-13-01"}, "decision_date", ""),
    "proof due before the decision": (
        {"decision_date": "2025-06-01", "proof_of_use_due": "2025-01-01"},
        "proof_of_use_due",
        "",
    ),
}


@pytest.mark.parametrize("action", ["preview", "create"])
def test_bad_input_is_named_at_its_field_and_writes_nothing(client, staff, open_year, action):
    """Every case of ``BAD`` (one test per action: the shipped tenants are imported once)."""
    before = counts()
    for case, (changes, field, mentioned) in BAD.items():
        data = form(open_year, **changes)
        if action == "create":
            data["idempotency_key"] = "a6f3c7c2-0000-4000-8000-000000000001"
        response = post(client, data, action=action)
        assert response.status_code == 200, case
        assert counts() == before, case
        body = text(response)
        errors = field_errors(body)
        assert list(errors) == [field], (case, errors)
        assert mentioned in errors[field], case
        assert "itvsh-preview-table" not in body and "itvsh-create-form" not in body, case
        assert re.search(rf'id="{field}" name="{field}"[^>]*aria-invalid="true"', body), case


def test_a_category_of_another_year_is_refused(client, staff, open_year):
    from itvsh.funding import ledger
    from tests.funding.conftest import ACTOR

    other = ledger.create_fiscal_year(db.session, ACTOR, open_year.year + 1)
    db.session.commit()
    before = counts()
    errors = field_errors(text(post(client, form(open_year, category=str(category(other).id)))))
    assert list(errors) == ["category"] and counts() == before


# --- who may ----------------------------------------------------------------------------------------------


def test_auditors_may_neither_see_nor_preview_nor_create(client, login_as, open_year):
    login_as("auditor")
    before = counts()
    assert client.get(URL).status_code == 403
    token = csrf_token(client, "/logout")
    data = {**form(open_year), "csrf_token": token, "idempotency_key": "a6f3c7c2-0000-4000-8000-000000000002"}
    for action in ("preview", "create"):
        assert client.post(URL, data={**data, "action": action}).status_code == 403
    assert counts() == before


def test_municipality_users_are_refused(client, login_as, open_year):
    login_as("municipality", KRUMMWISCH)
    assert client.get(URL).status_code == 403
    data = {**form(open_year), "csrf_token": csrf_token(client, "/logout"), "action": "preview"}
    assert client.post(URL, data=data).status_code == 403
