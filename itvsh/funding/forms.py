"""Forms of the funding admin: fiscal years, budget categories and allocations.

They collect input and turn money text into cents in the user's locale (``1.234,56`` in German,
``1,234.56`` in English, see ``core/money.py``); every rule lives in ``funding.ledger``. Forms that
book carry a hidden idempotency key made when the form is shown, so a form submitted twice books
once.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from babel.numbers import format_decimal
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from itvsh.core.i18n import current_language
from itvsh.core.money import MoneyError, parse_money
from itvsh.funding.models import RECIPIENT_KIND_LABELS, RecipientKind

# "Kiel (01002000)" as offered by the member list, or the bare official key.
_KEY_IN_TEXT = re.compile(r"^(?:.*\()?\s*([0-9]{5,9})\s*\)?$")


def money_input(cents: int | None) -> str:
    """Cents as the user types them in a money field: ``1.500.000,00`` (de), ``1,500,000.00`` (en)."""
    if cents is None:
        return ""
    return format_decimal(Decimal(int(cents)).scaleb(-2), format="#,##0.00", locale=current_language())


def member_key(text: str | None) -> str | None:
    """The official key in what was typed into a member field (a key, or "Name (key)"), or None."""
    match = _KEY_IN_TEXT.match((text or "").strip())
    return match.group(1) if match else None


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class MoneyField(StringField):
    """An amount typed in the user's locale; after validation ``cents`` holds it as integer cents.
    Text that is not an amount (three decimals, NaN, an exponent, letters, absurd sizes, a minus)
    is refused here with the money parser's message; limits are the ledger's business."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(label, validators, **kwargs)
        self.cents: int | None = None

    def pre_validate(self, form) -> None:
        self.cents = None
        try:
            self.cents = parse_money(self.data or "", current_language())
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc


class FiscalYearForm(FlaskForm):
    """Change a year's appropriation (Ansatz) and note."""

    appropriation = MoneyField(
        _l("Appropriation"),
        description=_l("The Land's money for this year, in euros (e.g. 1.500.000,00)."),
    )
    note = TextAreaField(_l("Note"), validators=[Length(max=2000)])


class FiscalYearCreateForm(FiscalYearForm):
    year = IntegerField(_l("Year"), description=_l("The calendar year (Haushaltsjahr)."))
    default_categories = BooleanField(
        _l("Start with the default categories"),
        default=True,
        description=_l("Zuweisungen an Kommunen, Gemeinsame Projekte, Personal, Infrastruktur."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fields.move_to_end("year", last=False)


class CategoryForm(FlaskForm):
    """A budget category of one year with its planned amount."""

    code = StringField(_l("Code"), validators=[Length(max=40)], description=_l("A short, unique code."))
    name = StringField(_l("Name"), validators=[Length(max=200)])
    planned = MoneyField(_l("Planned amount"))
    position = IntegerField(
        _l("Position"),
        validators=[Optional(), NumberRange(min=0, max=10_000)],
        description=_l("Order in lists."),
    )


class CategoryCreateForm(CategoryForm):
    fiscal_year = SelectField(_l("Fiscal year"), choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fields.move_to_end("fiscal_year", last=False)


def _recipient_choices():
    return [(kind.value, label) for kind, label in RECIPIENT_KIND_LABELS.items()]


class AllocationForm(FlaskForm):
    """An allocation (Zuwendung). Its year is the year of the chosen category."""

    category_id = SelectField(_l("Budget category"), choices=[])
    recipient_kind = SelectField(_l("Recipient"), choices=_recipient_choices)
    member = StringField(
        _l("Member"),
        validators=[Length(max=260)],
        description=_l(
            "Official key (AGS, Amt or Kreis key) or a name from the list; empty for the federation itself."
        ),
        render_kw={"list": "itvsh-member-options", "autocomplete": "off"},
    )
    # Planned and running projects are offered; the ledger refuses any other (not checked here).
    project = SelectField(
        _l("Project"),
        choices=[],
        validate_choice=False,
        description=_l("For a shared project: the project that receives the money."),
    )
    purpose = StringField(_l("Purpose"), validators=[Length(max=500)])
    amount = MoneyField(_l("Amount"))
    decision_date = DateField(_l("Decision date"), validators=[Optional()])
    file_reference = StringField(_l("File reference (Aktenzeichen)"), validators=[Length(max=100)])
    proof_of_use_due = DateField(_l("Proof of use due"), validators=[Optional()])
    proof_of_use_received = DateField(_l("Proof of use received"), validators=[Optional()])
    note = TextAreaField(_l("Note"), validators=[Length(max=2000)])

    # Fixed once the allocation is approved: the ledger holds what was bound.
    LOCKED = ("category_id", "recipient_kind", "member", "project", "amount")

    def lock(self) -> None:
        """Drop the fields an approved allocation can no longer change."""
        for name in self.LOCKED:
            del self[name]

    def member_text(self) -> str:
        """What was typed into the member field."""
        return (self.member.data or "").strip()

    def project_id(self) -> str:
        """What was chosen in the project field (counts for shared projects only)."""
        return (self.project.data or "").strip()

    def recipient(self) -> tuple[str, str | None]:
        """(recipient kind, the member's key or None). The member field counts for members only."""
        kind = self.recipient_kind.data or ""
        if kind != RecipientKind.MEMBER:
            return kind, None
        return kind, member_key(self.member_text())


class AllocationCreateForm(AllocationForm):
    idempotency_key = HiddenField(default=new_idempotency_key)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self["proof_of_use_received"]  # a new allocation has no proof of use yet
