"""The money parser, property-based beyond tests/core/test_money.py: what it formats (negative too)
and what people type without grouping parses back to the same cents, and every generated form of
a third decimal, NaN, infinity, an exponent, text or an absurd magnitude is refused with its
reason -- never silently rounded or turned into a float."""

from __future__ import annotations

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itvsh.core.money import MAX_CENTS, MoneyError, format_money, parse_money

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LOCALES = st.sampled_from(["de", "en"])
DECIMAL = {"de": ",", "en": "."}
cents_strategy = st.integers(min_value=0, max_value=MAX_CENTS)


@pytest.fixture
def english(app):
    with app.test_request_context("/"), force_locale("en"):
        yield


def _refused(text: str, locale: str, **kwargs) -> str:
    with pytest.raises(MoneyError) as caught:
        parse_money(text, locale, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("locale", ["de", "en"])  # Babel writes English "-€1.00": sign before symbol
@PROPERTY
@given(cents=st.integers(min_value=-MAX_CENTS, max_value=MAX_CENTS))
def test_negative_amounts_round_trip_when_allowed(english, locale, cents):
    assert parse_money(format_money(cents, locale), locale, allow_negative=True) == cents


@PROPERTY
@given(cents=cents_strategy, locale=LOCALES, symbol=st.sampled_from(["", " €", "€ ", " EUR", "EUR "]))
def test_plain_typing_round_trips(english, cents, locale, symbol):
    """``1234567,89`` (no grouping), with or without the currency, and one decimal or none."""
    euros, rest = divmod(cents, 100)
    text = f"{euros}{DECIMAL[locale]}{rest:02d}"
    typed = f"{text}{symbol}" if symbol.startswith(" ") else f"{symbol}{text}"
    assert parse_money(typed, locale) == cents
    if rest % 10 == 0:
        assert parse_money(f"{euros}{DECIMAL[locale]}{rest // 10}", locale) == cents
    if rest == 0:
        assert parse_money(str(euros), locale) == cents


@PROPERTY
@given(
    euros=st.integers(min_value=0, max_value=10**9),
    decimals=st.text(alphabet="0123456789", min_size=3, max_size=8),
    locale=LOCALES,
)
def test_three_or_more_decimals_are_refused(english, euros, decimals, locale):
    message = _refused(f"{euros}{DECIMAL[locale]}{decimals}", locale)
    assert message == "An amount has at most two decimal places (whole cents)."


@PROPERTY
@given(
    mantissa=st.from_regex(r"\A[0-9]{1,6}([.,][0-9]{1,3})?\Z"),
    marker=st.sampled_from(["e", "E"]),
    sign=st.sampled_from(["", "+", "-"]),
    exponent=st.integers(min_value=0, max_value=400),
    locale=LOCALES,
)
def test_exponents_are_refused(english, mantissa, marker, sign, exponent, locale):
    assert "without an exponent" in _refused(f"{mantissa}{marker}{sign}{exponent}", locale)


@PROPERTY
@given(
    word=st.sampled_from(["nan", "inf", "infinity", "snan", "NaN(1)"]),
    case=st.sampled_from([str.lower, str.upper, str.title]),
    sign=st.sampled_from(["", "+", "-", "\u2212"]),
    symbol=st.sampled_from(["", " €", "EUR "]),
    locale=LOCALES,
)
def test_nan_and_infinity_are_refused(english, word, case, sign, symbol, locale):
    typed = f"{sign}{case(word)}"
    typed = f"{typed}{symbol}" if symbol.startswith(" ") else f"{symbol}{typed}"
    message = _refused(typed, locale, allow_negative=True)
    assert "is not an amount" in message


@PROPERTY
@given(cents=st.integers(min_value=MAX_CENTS + 1, max_value=2**63 - 1), locale=LOCALES)  # BigInteger
def test_absurd_magnitudes_are_refused(english, cents, locale):
    for typed in (format_money(cents, locale), f"{cents // 100}{DECIMAL[locale]}{cents % 100:02d}"):
        message = _refused(typed, locale, allow_negative=True)
        assert "implausibly large" in message or "too long" in message, (typed, message)


@PROPERTY
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="0123456789"),
        min_size=1,
        max_size=20,
    ),
    locale=LOCALES,
)
def test_text_without_digits_is_never_an_amount(english, text, locale):
    with pytest.raises(MoneyError):
        parse_money(text, locale, allow_negative=True)


@PROPERTY
@given(cents=st.integers(min_value=1, max_value=MAX_CENTS), locale=LOCALES)
def test_negative_text_is_refused_unless_allowed(english, cents, locale):
    euros, rest = divmod(cents, 100)
    for sign in ("-", "\u2212"):
        typed = f"{sign}{euros}{DECIMAL[locale]}{rest:02d}"
        assert _refused(typed, locale) == "The amount must not be negative."
    assert _refused(format_money(-cents, locale), locale) == "The amount must not be negative."


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1.5, 1e5])
def test_floats_are_not_formatted(value):
    with pytest.raises(TypeError):
        format_money(value, "de")
