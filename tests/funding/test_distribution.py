"""Distribution keys (Verteilungsschlüssel): the largest-remainder split is exact, fair to the cent,
deterministic and blind to the order of its input (hypothesis); the shipped list of 1,106
municipalities splits 1,500,000.00 € to the cent; the preview selects the right Gemeinden and
refuses what it must; creating a distribution makes its drafts once and keeps the key."""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from fractions import Fraction
from importlib import resources

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.distribution import create_distribution as _create_distribution
from itvsh.funding.distribution import largest_remainder, preview, split
from itvsh.funding.models import Allocation, AllocationStatus, Booking, Distribution, YearStatus
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import LOCAL_KINDS, Municipality
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

TOTAL = 150_000_000  # 1,500,000.00 €

# --- the arithmetic, property-based -------------------------------------------------------------

# Distinct keys like AGS (eight digits, so string order is numeric order) with integer weights.
weights_strategy = st.dictionaries(
    st.integers(min_value=1_000_000, max_value=1_999_999).map(lambda n: f"{n:08d}"),
    st.integers(min_value=0, max_value=2_000_000),
    min_size=1,
    max_size=60,
).map(lambda d: list(d.items()))
totals = st.integers(min_value=0, max_value=10**12)
PROPERTY = settings(max_examples=300, deadline=None, derandomize=True)


def _check_largest_remainder(total: int, weights: list[tuple[str, int]], shares: dict[str, int]) -> None:
    """The definition: floor of the exact quota for each, the cents left over one each to the
    largest remainders, ties to the lower key."""
    weight_sum = sum(w for _k, w in weights)
    assert set(shares) == {k for k, _w in weights}
    assert sum(shares.values()) == total
    rounded_up, rounded_down = [], []
    for key, weight in weights:
        quota = Fraction(total * weight, weight_sum)
        assert abs(shares[key] - quota) < 1, (key, shares[key], quota)
        assert shares[key] in (math.floor(quota), math.floor(quota) + 1)
        remainder = quota - math.floor(quota)
        if remainder == 0:
            assert shares[key] == quota  # an exact quota is never rounded
        (rounded_up if shares[key] > math.floor(quota) else rounded_down).append((-remainder, key))
    if rounded_up and rounded_down:
        assert max(rounded_up) < min(rounded_down)


@PROPERTY
@given(total=totals, weights=weights_strategy)
def test_largest_remainder_is_exact_and_fair(total, weights):
    assume(sum(w for _k, w in weights) > 0)
    _check_largest_remainder(total, weights, largest_remainder(total, weights))


@PROPERTY
@given(total=totals, weights=weights_strategy, data=st.data())
def test_result_is_deterministic_and_independent_of_order(total, weights, data):
    assume(sum(w for _k, w in weights) > 0)
    shuffled = data.draw(st.permutations(weights))
    first = largest_remainder(total, weights)
    assert largest_remainder(total, weights) == first
    assert largest_remainder(total, list(shuffled)) == first
    for method in ("equal", "per_capita"):
        assert split(method, total, 0, list(shuffled)) == split(method, total, 0, weights)


@PROPERTY
@given(
    n=st.integers(min_value=1, max_value=40),
    per_head=st.integers(min_value=0, max_value=10**6),
    left=st.integers(min_value=0, max_value=39),
    data=st.data(),
)
def test_equal_remainders_go_to_the_lower_keys(n, per_head, left, data):
    assume(left < n)
    keys = data.draw(
        st.lists(st.integers(10_000_000, 99_999_999).map(str), min_size=n, max_size=n, unique=True)
    )
    shares = largest_remainder(n * per_head + left, [(k, 7) for k in keys])
    winners = sorted(keys)[:left]
    assert shares == {k: per_head + (1 if k in winners else 0) for k in keys}


def test_tie_example():
    assert largest_remainder(10, [("01002000", 1), ("01001000", 1), ("01003000", 1)]) == {
        "01001000": 4,
        "01002000": 3,
        "01003000": 3,
    }
    # 2 cents over weights 1:1:1:1 with remainders 1/2 each: the two lowest keys
    assert largest_remainder(2, [("d", 5), ("b", 5), ("c", 5), ("a", 5)]) == {"a": 1, "b": 1, "c": 0, "d": 0}
    # a larger remainder beats a lower key: 10 over 1:2 is 3.33 / 6.67
    assert largest_remainder(10, [("a", 1), ("b", 2)]) == {"a": 3, "b": 7}


@PROPERTY
@given(total=totals, weights=weights_strategy)
def test_split_per_capita_and_equal(total, weights):
    assume(sum(w for _k, w in weights) > 0)
    per_capita = split("per_capita", total, 0, weights)
    _check_largest_remainder(total, weights, per_capita)
    equal = split("equal", total, 0, weights)
    _check_largest_remainder(total, [(k, 1) for k, _w in weights], equal)
    assert max(equal.values()) - min(equal.values()) <= 1


@PROPERTY
@given(total=totals, base=st.integers(min_value=0, max_value=10**9), weights=weights_strategy)
def test_split_base_plus_per_capita(total, base, weights):
    assume(sum(w for _k, w in weights) > 0)
    assume(base * len(weights) <= total)
    shares = split("base_plus_per_capita", total, base, weights)
    assert sum(shares.values()) == total
    rest = total - base * len(weights)
    weight_sum = sum(w for _k, w in weights)
    for key, weight in weights:
        assert shares[key] >= base
        assert abs(shares[key] - (base + Fraction(rest * weight, weight_sum))) < 1
    _check_largest_remainder(rest, weights, {k: v - base for k, v in shares.items()})


def test_arithmetic_refuses_nonsense():
    with pytest.raises(ValueError, match="negative"):
        largest_remainder(-1, [("a", 1)])
    with pytest.raises(ValueError, match="more than zero"):
        largest_remainder(100, [("a", 0), ("b", 0)])
    with pytest.raises(ValueError, match="more than zero"):
        largest_remainder(100, [])
    with pytest.raises(ValueError, match="negative"):
        largest_remainder(100, [("a", 5), ("b", -1)])
    with pytest.raises(ValueError, match="no recipients"):
        split("equal", 100, 0, [])
    with pytest.raises(ValueError, match="unknown method"):
        split("lottery", 100, 0, [("a", 1)])
    with pytest.raises(ValueError, match="exceed"):
        split("base_plus_per_capita", 100, 51, [("a", 1), ("b", 1)])


# --- the real list --------------------------------------------------------------------------------


def _shipped_populations() -> list[tuple[str, int]]:
    text = resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_text(encoding="utf-8")
    return [(row["ags"], int(row["population"])) for row in csv.DictReader(io.StringIO(text))]


def test_the_shipped_list_splits_exactly():
    """All 1,106 municipalities of the shipped list, per capita: exactly 150,000,000 cents."""
    populations = _shipped_populations()
    assert len(populations) == 1106
    assert len({key for key, _p in populations}) == 1106
    shares = split("per_capita", TOTAL, 0, populations)
    assert len(shares) == 1106
    assert sum(shares.values()) == TOTAL
    _check_largest_remainder(TOTAL, populations, shares)
    # the same whatever the order of the file
    assert split("per_capita", TOTAL, 0, list(reversed(populations))) == shares
    assert split("per_capita", TOTAL, 0, sorted(populations, key=lambda kp: (kp[1], kp[0]))) == shares
    assert split("equal", TOTAL, 0, populations)["01001000"] in (TOTAL // 1106, TOTAL // 1106 + 1)
    assert sum(split("base_plus_per_capita", TOTAL, 50_000, populations).values()) == TOTAL


@pytest.fixture(autouse=True)
def english(app):
    """Messages in English (the German catalogue is added separately)."""
    with app.test_request_context("/"), force_locale("en"):
        yield


def test_preview_of_all_member_gemeinden(open_year):
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="per_capita",
        selection="all",
        total_cents=TOTAL,
    )
    populations = dict(_shipped_populations())
    assert len(table.rows) == local_member_count() == 1105  # every Gemeinde but NON_MEMBER
    assert NON_MEMBER not in {row.key for row in table.rows}
    assert [row.key for row in table.rows] == sorted(row.key for row in table.rows)
    assert table.allocated_cents == sum(row.amount_cents for row in table.rows) == TOTAL
    assert table.population == sum(populations.values()) - populations[NON_MEMBER]
    assert table.population_date == date(2019, 12, 31)
    weights = [(row.key, row.population) for row in table.rows]
    assert all(row.population == populations[row.key] for row in table.rows)
    _check_largest_remainder(TOTAL, weights, {row.key: row.amount_cents for row in table.rows})
    # the arithmetic the preview showed is the plain split of the same populations
    assert {row.key: row.amount_cents for row in table.rows} == split("per_capita", TOTAL, 0, weights)
    kiel = next(row for row in table.rows if row.key == KIEL)
    assert kiel.name.startswith("Kiel")
    assert table.share_per_mille(kiel) == kiel.amount_cents * 1000 // TOTAL
    # nothing is written by a preview
    assert db.session.execute(select(func.count()).select_from(Allocation)).scalar_one() == 0


def _member_gemeinden(column, parent_key: str, members) -> set[str]:
    parent = members[parent_key]
    return set(
        db.session.execute(
            select(Municipality.key).where(
                column == parent.id,
                Municipality.kind.in_([k.value for k in LOCAL_KINDS]),
                Municipality.key != NON_MEMBER,
            )
        ).scalars()
    )


@pytest.mark.parametrize(
    ("selection", "parent", "column"),
    [("kreis", KREIS_RD_ECK, Municipality.kreis_id), ("amt", AMT_ACHTERWEHR, Municipality.amt_id)],
)
def test_preview_of_a_kreis_or_an_amt(open_year, members, selection, parent, column):
    expected = _member_gemeinden(column, parent, members)
    assert KRUMMWISCH in expected and len(expected) > 1
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="equal",
        selection=selection,
        parameters={"key": parent},
        total_cents=1_000_000,
    )
    assert {row.key for row in table.rows} == expected
    assert table.allocated_cents == 1_000_000
    amounts = [row.amount_cents for row in table.rows]
    assert max(amounts) - min(amounts) <= 1
    assert table.parameters == {"key": parent}


def test_preview_of_a_list_base_plus_per_capita(open_year, members):
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="base_plus_per_capita",
        selection="list",
        parameters={"keys": [KRUMMWISCH, KIEL]},
        total_cents=10_000_000,
        base_cents=1_000_000,
    )
    assert [row.key for row in table.rows] == [KIEL, KRUMMWISCH]
    assert table.allocated_cents == 10_000_000
    population = members[KIEL].population + members[KRUMMWISCH].population
    for row in table.rows:
        exact = 1_000_000 + Fraction(8_000_000 * members[row.key].population, population)
        assert abs(row.amount_cents - exact) < 1
        assert row.municipality_id == members[row.key].id
        assert row.population == members[row.key].population


def _refusal(open_year, **kwargs) -> RuleViolation:
    arguments = {
        "fiscal_year": open_year,
        "category": category(open_year),
        "method": "per_capita",
        "selection": "all",
        "total_cents": TOTAL,
        **kwargs,
    }
    with pytest.raises(RuleViolation) as caught:
        preview(db.session, **arguments)
    return caught.value


# (arguments changed from a valid preview, the field named, a part of the message)
PREVIEW_REFUSALS = [
    (
        {"selection": "kreis", "parameters": {"key": "01099"}},
        "key",
        "There is no Kreis with the key “01099”.",
    ),
    (
        {"selection": "kreis", "parameters": {"key": AMT_ACHTERWEHR}},
        "key",
        f"There is no Kreis with the key “{AMT_ACHTERWEHR}”.",
    ),
    ({"selection": "kreis", "parameters": {}}, "key", "There is no Kreis with the key “”."),
    (
        {"selection": "amt", "parameters": {"key": KREIS_RD_ECK}},
        "key",
        f"There is no Amt with the key “{KREIS_RD_ECK}”.",
    ),
    (
        {"selection": "list", "parameters": {"keys": [KIEL, NON_MEMBER]}},
        "keys",
        f"Not a current member Gemeinde: {NON_MEMBER}",
    ),
    (
        {"selection": "list", "parameters": {"keys": [KIEL, KREIS_RD_ECK, "99999999"]}},
        "keys",
        f"Not a current member Gemeinde: {KREIS_RD_ECK}, 99999999",
    ),
    (
        {"selection": "list", "parameters": {"keys": [KIEL, KRUMMWISCH, KIEL, KRUMMWISCH]}},
        "keys",
        f"Listed twice: {KIEL}, {KRUMMWISCH}",
    ),
    ({"selection": "list", "parameters": {"keys": []}}, "keys", "Please list the official keys"),
    ({"selection": "list", "parameters": {"keys": ["0"] * 2001}}, "keys", "At most 2000 Gemeinden"),
    ({"selection": "everybody"}, "selection", "Unknown selection."),
    ({"method": "lottery"}, "method", "Unknown method."),
    (
        {"method": "base_plus_per_capita", "base_cents": 135_747},
        "base_cents",
        "1105 base amounts of €1,357.47 add up to more than the total.",
    ),
    ({"base_cents": 100}, "base_cents", "A base amount belongs only to “base amount plus per capita”."),
    ({"base_cents": -1, "method": "base_plus_per_capita"}, "base_cents", "greater than zero"),
    ({"total_cents": 0}, "total_cents", "The amount must be greater than zero."),
    ({"total_cents": -100}, "total_cents", "The amount must be greater than zero."),
    ({"total_cents": 1500.0}, "total_cents", "The amount must be a whole number of cents."),
    ({"total_cents": True}, "total_cents", "The amount must be a whole number of cents."),
    ({"total_cents": 10**13}, "total_cents", "implausibly large"),
    ({"method": "equal", "total_cents": 1104}, "total_cents", "too small to give every Gemeinde"),
]


def test_preview_refuses(open_year):
    """Each refusal names its field and says why (one test: the member list is imported once)."""
    for kwargs, field, message in PREVIEW_REFUSALS:
        refusal = _refusal(open_year, **kwargs)
        assert (refusal.field, message in refusal.message) == (field, True), (kwargs, refusal.message)


def test_base_amounts_that_just_fit(open_year):
    # 1105 x 1,357.46 € = 1,499,993.30 €: fits, the rest per capita
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="base_plus_per_capita",
        selection="all",
        total_cents=TOTAL,
        base_cents=135_746,
    )
    assert table.allocated_cents == TOTAL
    assert min(row.amount_cents for row in table.rows) >= 135_746


def test_preview_refuses_a_category_of_another_year(open_year):
    other = ledger.create_fiscal_year(db.session, ACTOR, open_year.year + 1)
    refusal = _refusal(open_year, category=category(other))
    assert (refusal.field, refusal.message) == ("category", "The category belongs to another year.")


def test_zero_or_unknown_population(open_year, members):
    for key in (KIEL, KRUMMWISCH):
        tenant_services.update_municipality(db.session, ACTOR, members[key], population=0)
    refusal = _refusal(open_year, selection="list", parameters={"keys": [KIEL, KRUMMWISCH]})
    assert refusal.field == "method"
    assert refusal.message == "The selected Gemeinden have no population to distribute by."
    refusal = _refusal(
        open_year, method="base_plus_per_capita", selection="list", parameters={"keys": [KIEL, KRUMMWISCH]}
    )
    assert refusal.message == "The selected Gemeinden have no population to distribute by."
    # equal shares need no population
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="equal",
        selection="list",
        parameters={"keys": [KIEL, KRUMMWISCH]},
        total_cents=101,
    )
    assert [row.amount_cents for row in table.rows] == [51, 50]  # the odd cent to the lower key
    tenant_services.update_municipality(db.session, ACTOR, members[KIEL], population=None)
    refusal = _refusal(open_year, selection="list", parameters={"keys": [KIEL, KRUMMWISCH]})
    assert (refusal.field, refusal.message) == ("method", f"No population is known for: {KIEL}")


def test_a_former_member_is_not_selected(open_year, members):
    tenant_services.leave(db.session, ACTOR, members[KRUMMWISCH], date.today())
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="per_capita",
        selection="amt",
        parameters={"key": AMT_ACHTERWEHR},
        total_cents=TOTAL,
    )
    assert KRUMMWISCH not in {row.key for row in table.rows}
    assert table.allocated_cents == TOTAL
    refusal = _refusal(open_year, selection="list", parameters={"keys": [KRUMMWISCH]})
    assert refusal.message == f"Not a current member Gemeinde: {KRUMMWISCH}"


# --- creating a distribution ------------------------------------------------------------------------


def _counts() -> tuple[int, int, int, int]:
    set_scope(db.session, ALL)
    return (
        db.session.execute(select(func.count()).select_from(Distribution)).scalar_one(),
        db.session.execute(select(func.count()).select_from(Allocation)).scalar_one(),
        db.session.execute(select(func.count()).select_from(Booking)).scalar_one(),
        db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


def create(open_year, **kwargs) -> Distribution:
    arguments = {
        "fiscal_year": open_year,
        "category": category(open_year),
        "method": "per_capita",
        "selection": "kreis",
        "parameters": {"key": KREIS_RD_ECK},
        "total_cents": 20_000_000,
        "purpose": "Digitalisierungspauschale",
        "file_reference": "AZ 4-711",
        **kwargs,
    }
    return _create_distribution(db.session, ACTOR, **arguments)


def test_create_distribution_makes_the_drafts(open_year, members):
    before = _counts()
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method="per_capita",
        selection="kreis",
        parameters={"key": KREIS_RD_ECK},
        total_cents=20_000_000,
    )
    distribution = create(open_year, decision_date=date(open_year.year, 3, 1), idempotency_key="dist-1")
    db.session.commit()
    set_scope(db.session, ALL)
    after = _counts()
    assert after[0] == before[0] + 1
    assert after[1] == before[1] + len(table.rows)
    assert after[2] == before[2]  # drafts bind no money: no booking
    assert after[3] == before[3] + 1  # one audit event with the shares
    assert distribution.method == "per_capita"
    assert distribution.selection == "kreis"
    assert distribution.parameters == {"key": KREIS_RD_ECK}
    assert distribution.total_cents == 20_000_000
    assert distribution.base_cents == 0
    assert distribution.population_date == date(2019, 12, 31)
    assert distribution.recipients == len(table.rows)
    assert distribution.category_id == category(open_year).id
    drafts = (
        db.session.execute(select(Allocation).where(Allocation.distribution_id == distribution.id))
        .scalars()
        .all()
    )
    assert {a.municipality.key: a.amount_cents for a in drafts} == {r.key: r.amount_cents for r in table.rows}
    assert sum(a.amount_cents for a in drafts) == 20_000_000
    for allocation in drafts:
        assert allocation.status == AllocationStatus.DRAFT
        assert allocation.recipient_kind == "member"
        assert allocation.fiscal_year_id == allocation.current_year_id == open_year.id
        assert allocation.purpose == "Digitalisierungspauschale"
        assert allocation.file_reference == "AZ 4-711"
        assert allocation.decision_date == date(open_year.year, 3, 1)
    event = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.entity == "distribution").order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert event.action == "create"
    assert event.entity_id == str(distribution.id)
    assert event.after["method"] == "per_capita"
    assert event.after["population_date"] == "2019-12-31"
    assert sorted(event.after["shares"]) == sorted([r.key, r.amount_cents] for r in table.rows)

    # the same submission again: the same distribution, nothing new
    again = create(open_year, decision_date=date(open_year.year, 3, 1), idempotency_key="dist-1")
    db.session.commit()
    assert again.id == distribution.id
    assert _counts() == after
    # the key with other parameters is refused
    with pytest.raises(RuleViolation) as caught:
        create(open_year, total_cents=20_000_001, idempotency_key="dist-1")
    assert caught.value.field == "idempotency_key"
    db.session.rollback()
    db.session.commit()
    assert _counts() == after
    # without a key, a second submission is a second distribution
    create(open_year, decision_date=date(open_year.year, 3, 1))
    db.session.commit()
    assert _counts()[0] == after[0] + 1


def test_create_distribution_keeps_base_and_list(open_year, members):
    distribution = create(
        open_year,
        method="base_plus_per_capita",
        selection="list",
        parameters={"keys": [KRUMMWISCH, KIEL]},
        total_cents=3_000_000,
        base_cents=500_000,
    )
    db.session.commit()
    set_scope(db.session, ALL)
    assert (distribution.method, distribution.selection) == ("base_plus_per_capita", "list")
    assert distribution.parameters == {"keys": [KRUMMWISCH, KIEL]}
    assert distribution.base_cents == 500_000
    amounts = db.session.execute(
        select(func.sum(Allocation.amount_cents), func.min(Allocation.amount_cents)).where(
            Allocation.distribution_id == distribution.id
        )
    ).one()
    assert (amounts[0], amounts[1] >= 500_000) == (3_000_000, True)


CREATE_REFUSALS = [
    ({"selection": "list", "parameters": {"keys": [KIEL, NON_MEMBER]}}, "keys"),
    ({"selection": "list", "parameters": {"keys": [KIEL, KIEL]}}, "keys"),
    ({"selection": "kreis", "parameters": {"key": "01099"}}, "key"),
    ({"method": "base_plus_per_capita", "base_cents": 10_000_000}, "base_cents"),
    ({"purpose": "   "}, "purpose"),
    ({"file_reference": "x" * 101}, "file_reference"),
    ({"total_cents": 0}, "total_cents"),
    ({"decision_date": date(2030, 5, 1), "proof_of_use_due": date(2030, 4, 1)}, "proof_of_use_due"),
]


def test_create_distribution_refuses_and_writes_nothing(open_year):
    before = _counts()
    for kwargs, field in CREATE_REFUSALS:
        with pytest.raises(RuleViolation) as caught:
            create(open_year, **kwargs)
        assert caught.value.field == field, (kwargs, caught.value.message)
        db.session.rollback()
        db.session.commit()
        assert _counts() == before, kwargs


def test_no_distribution_into_a_closed_year(open_year):
    ledger.close_year(db.session, ACTOR, open_year)
    db.session.commit()
    set_scope(db.session, ALL)
    assert open_year.status == YearStatus.CLOSED
    before = _counts()
    with pytest.raises(RuleViolation) as caught:
        create(open_year)
    assert (caught.value.field, caught.value.message) == (
        "fiscal_year",
        f"The fiscal year {open_year.year} is closed.",
    )
    db.session.rollback()
    db.session.commit()
    assert _counts() == before


def test_drafts_of_a_distribution_can_be_approved(open_year):
    distribution = create(open_year, selection="amt", parameters={"key": AMT_ACHTERWEHR}, total_cents=100_000)
    db.session.commit()
    set_scope(db.session, ALL)
    drafts = (
        db.session.execute(select(Allocation).where(Allocation.distribution_id == distribution.id))
        .scalars()
        .all()
    )
    for allocation in drafts:
        ledger.approve(db.session, ACTOR, allocation)
    db.session.commit()
    set_scope(db.session, ALL)
    figures = ledger.year_figures(db.session, open_year)
    assert figures.committed_cents == 100_000
    assert ledger.category_committed(db.session, open_year, category(open_year)) == 100_000


@settings(
    deadline=None,
    max_examples=25,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(total=st.integers(min_value=1105, max_value=10**11), method=st.sampled_from(["equal", "per_capita"]))
def test_preview_of_all_always_sums(open_year, total, method):
    table = preview(
        db.session,
        fiscal_year=open_year,
        category=category(open_year),
        method=method,
        selection="all",
        total_cents=total,
    )
    assert table.allocated_cents == total
