"""Money as integer cents: parsing what people type, formatting what they read.

Amounts live as ``int`` cents everywhere (``BigInteger`` columns, ``*_cents`` API fields); this
module is the only place that turns text into cents and back. Parsing follows the user's locale:
German ``1.234,56`` / ``1234,56``, English ``1,234.56`` / ``1234.56``, an optional ``€`` or ``EUR``.
It refuses a third decimal, NaN, infinity, exponents and absurd magnitudes, with a clear message.
"""

from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency
from flask_babel import gettext as _

# Ten billion euros: far beyond any budget of this federation, far below BigInteger's limit.
MAX_CENTS = 10_000_000_000_00

_SEPARATORS = {"de": (".", ","), "en": (",", ".")}  # (group, decimal)


class MoneyError(ValueError):
    """Text that is not an amount of money; the message says why, in the user's language."""


def _pattern(group: str, decimal: str) -> re.Pattern:
    g, d = re.escape(group), re.escape(decimal)
    # Either plain digits, or digits grouped in threes with the group separator.
    # [0-9], not \d: \d also matches other scripts' digits, which nobody types into an amount here.
    return re.compile(rf"^(?P<int>[0-9]+|[0-9]{{1,3}}(?:{g}[0-9]{{3}})+)(?:{d}(?P<frac>[0-9]+))?$")


_PATTERNS = {loc: _pattern(*seps) for loc, seps in _SEPARATORS.items()}


def parse_money(text: str, locale: str = "de", *, allow_negative: bool = False) -> int:
    """Parse ``text`` typed in ``locale`` into integer cents, or raise MoneyError."""
    if text is None:
        raise MoneyError(_("Please enter an amount."))
    raw = str(text).strip()
    lang = (locale or "de")[:2]
    if lang not in _PATTERNS:
        lang = "de"
    raw = raw.replace("\u00a0", " ").replace("\u202f", " ")
    negative = signed = False
    if raw[:1] in ("+", "-", "\u2212"):  # a sign before the currency symbol: "-€0.01" (English)
        negative, signed, raw = raw[0] != "+", True, raw[1:].strip()
    for symbol in ("€", "EUR"):
        if raw.endswith(symbol):
            raw = raw[: -len(symbol)].strip()
        elif raw.startswith(symbol):
            raw = raw[len(symbol) :].strip()
    raw = raw.replace(" ", "")
    if not raw:
        raise MoneyError(_("Please enter an amount."))
    if len(raw) > 40:
        raise MoneyError(_("This amount is too long to be an amount of money."))
    if raw[0] in "+-\u2212" and not signed:  # a second sign stays and fails the pattern below
        negative = raw[0] != "+"
        raw = raw[1:]
    lowered = raw.lower()
    if any(word in lowered for word in ("nan", "inf")):
        raise MoneyError(_("Please enter a number; “%(text)s” is not an amount.", text=text))
    if re.fullmatch(r"[\d.,]*\de[+-]?\d+", lowered):  # "1e5", not any text with an "e" ("12 Euro")
        raise MoneyError(_("Please write the amount without an exponent."))
    match = _PATTERNS[lang].match(raw)
    if match is None:
        group, decimal = _SEPARATORS[lang]
        raise MoneyError(
            _(
                "“%(text)s” is not an amount. Write e.g. %(example)s (“%(decimal)s” before the cents).",
                text=text,
                example=f"1{group}234{decimal}56",
                decimal=decimal,
            )
        )
    frac = match.group("frac") or ""
    if len(frac) > 2:
        raise MoneyError(_("An amount has at most two decimal places (whole cents)."))
    group = _SEPARATORS[lang][0]
    cents = int(match.group("int").replace(group, "")) * 100 + int(frac.ljust(2, "0") or "0")
    if cents > MAX_CENTS:
        raise MoneyError(
            _(
                "This amount is implausibly large (the limit is %(limit)s).",
                limit=format_money(MAX_CENTS, lang),
            )
        )
    if negative:
        if not allow_negative:
            raise MoneyError(_("The amount must not be negative."))
        cents = -cents
    return cents


def format_money(cents: int, locale: str = "de") -> str:
    """Format integer cents as euros in ``locale``: ``1.500.000,00 €`` (de), ``€1,500,000.00`` (en)."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"money is integer cents, not {type(cents).__name__}")
    return format_currency(Decimal(cents).scaleb(-2), "EUR", locale=locale or "de")
