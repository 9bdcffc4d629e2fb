"""Money as integer cents: parsing what people type in German or English, refusing what is not an
amount with a clear message, and formatting that parses back to the same cents."""

from __future__ import annotations

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itvsh.core.money import MAX_CENTS, MoneyError, format_money, parse_money


@pytest.mark.parametrize(
    ("text", "locale", "cents"),
    [
        ("1.234,56", "de", 123456),
        ("1234,56", "de", 123456),
        ("1.500.000,00 €", "de", 150000000),
        ("1.500.000,00\xa0€", "de", 150000000),
        ("€ 12", "de", 1200),
        ("12 EUR", "de", 1200),
        ("  7,5 ", "de", 750),
        ("0,01", "de", 1),
        ("0", "de", 0),
        ("1.234", "de", 123400),  # German: the dot groups thousands
        ("1,234.56", "en", 123456),
        ("1234.56", "en", 123456),
        ("€1,500,000.00", "en", 150000000),
        ("1,234", "en", 123400),  # English: the comma groups thousands
        ("12.5", "en", 1250),
        ("100.000.000,00", "de_DE", 10000000000),
    ],
)
def test_parses_what_people_type(app, text, locale, cents):
    assert parse_money(text, locale) == cents


def _refusal(text: str, locale: str = "de", **kwargs) -> str:
    with pytest.raises(MoneyError) as caught:
        parse_money(text, locale, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        ("1,234", "de", "höchstens zwei Nachkommastellen"),
        ("1.234,567", "de", "höchstens zwei Nachkommastellen"),
        ("1.234.567", "en", "Schreiben Sie z. B. 1,234.56"),
        ("NaN", "de", "„NaN“ ist kein Betrag"),
        ("nan", "en", "ist kein Betrag"),
        ("inf", "de", "„inf“ ist kein Betrag"),
        ("-Infinity", "de", "ist kein Betrag"),
        ("1e5", "de", "ohne Exponenten"),
        ("1E5", "en", "ohne Exponenten"),
        ("1,5e-3", "de", "ohne Exponenten"),
        ("1.2.3", "de", "„1.2.3“ ist kein Betrag. Schreiben Sie z. B. 1.234,56"),
        ("12.34.567,00", "de", "ist kein Betrag"),
        ("1234.56", "de", "ist kein Betrag"),
        ("1234,56", "en", "Schreiben Sie z. B. 1,234.56"),
        (",50", "de", "ist kein Betrag"),
        ("5,", "de", "ist kein Betrag"),
        ("12 Euro", "de", "„12 Euro“ ist kein Betrag"),  # not "without an exponent"
        ("0x10", "de", "ist kein Betrag"),
        ("10.000.000.000,01", "de", "unplausibel hoch (die Obergrenze liegt bei 10.000.000.000,00\xa0€)"),
        ("99999999999999999999", "de", "unplausibel hoch"),
        ("9" * 41, "de", "zu lang"),
        ("", "de", "Bitte geben Sie einen Betrag ein."),
        ("   ", "de", "Bitte geben Sie einen Betrag ein."),
        ("€", "de", "Bitte geben Sie einen Betrag ein."),
        ("-5", "de", "darf nicht negativ sein"),
        ("\u22125,00", "de", "darf nicht negativ sein"),
    ],
)
def test_refuses_with_a_clear_message(app, text, locale, message):
    assert message in _refusal(text, locale)


def test_none_is_refused(app):
    assert "Bitte geben Sie einen Betrag ein." in _refusal(None)


def test_messages_follow_the_language(app):
    with app.test_request_context("/"), force_locale("en"):
        assert _refusal("1,234") == "An amount has at most two decimal places (whole cents)."
        assert _refusal("-1", "en") == "The amount must not be negative."
        assert "without an exponent" in _refusal("1e5", "en")


def test_negative_amounts_only_when_allowed(app):
    assert parse_money("-1.234,56", "de", allow_negative=True) == -123456
    assert parse_money("\u221212", "de", allow_negative=True) == -1200
    assert parse_money("+12", "de") == 1200
    assert "unplausibel hoch" in _refusal("-10.000.000.000,01", allow_negative=True)


def test_the_bound_itself_is_accepted(app):
    assert parse_money("10.000.000.000,00", "de") == MAX_CENTS
    assert parse_money("10,000,000,000.00", "en") == MAX_CENTS


def test_format_money_exact_babel_output():
    assert format_money(150000000, "de") == "1.500.000,00\xa0€"
    assert format_money(150000000, "en") == "€1,500,000.00"
    assert format_money(0, "de") == "0,00\xa0€"
    assert format_money(1, "de") == "0,01\xa0€"
    assert format_money(-123456, "de") == "-1.234,56\xa0€"


@pytest.mark.parametrize("value", [1.5, 150000000.0, True, "100", None])
def test_format_money_refuses_anything_but_int_cents(value):
    with pytest.raises(TypeError, match="integer cents"):
        format_money(value, "de")


@settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.integers(min_value=0, max_value=MAX_CENTS), locale=st.sampled_from(["de", "en"]))
def test_format_then_parse_round_trips(app, cents, locale):
    assert parse_money(format_money(cents, locale), locale) == cents
