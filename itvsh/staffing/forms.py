"""Forms of the staffing admin: a person in the staff register, a secondment, an assignment.

They only collect input and turn text into numbers: a personnel cost typed in the user's locale
into cents (empty: none on record), a share typed in percent with at most one decimal into per
mille (``50`` -> 500, ``33,3`` -> 333). Every rule (ranges, overlaps, capacity) lives in
``staffing.services``, which names the field it refuses.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional, ValidationError

from itvsh.core.i18n import current_language
from itvsh.core.money import MoneyError, parse_money
from itvsh.staffing.models import COST_BEARER_LABELS, INSTRUMENT_LABELS, TARGET_KIND_LABELS, TargetKind

# "50", "33,3", "33.3", "50 %", "-5" (a sign is kept, so that the service names the range).
_SHARE = re.compile(r"^([-+\u2212]?)\s*([0-9]{1,4})(?:[.,]([0-9]+))?\s*%?$")


def parse_share(text: str | None) -> int:
    """A share of full time typed in percent as per mille, or ValueError with the reason."""
    raw = (text or "").strip()
    if not raw:
        raise ValueError(_("Please enter the share in percent, e.g. 50 or 33,3."))
    match = _SHARE.match(raw)
    if match is None:
        raise ValueError(_('"%(text)s" is not a share in percent. Write e.g. 50 or 33,3.', text=raw[:20]))
    sign, whole, tenth = match.groups()
    if tenth is not None and len(tenth) > 1:
        raise ValueError(_("A share has at most one decimal place (e.g. 33,3)."))
    permille = int(whole) * 10 + int(tenth or 0)
    return -permille if sign in ("-", "\u2212") else permille


def share_input(permille: int | None) -> str:
    """Per mille as the user types a share: ``500`` -> ``50``, ``333`` -> ``33,3`` (``33.3`` in English)."""
    if permille is None:
        return ""
    whole, tenth = divmod(int(permille), 10)
    if tenth == 0:
        return str(whole)
    return f"{whole}{'.' if current_language() == 'en' else ','}{tenth}"


class ShareField(StringField):
    """A share typed in percent; after validation ``permille`` holds it (range checks: the service)."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(label, validators, **kwargs)
        self.permille: int | None = None

    def pre_validate(self, form) -> None:
        self.permille = None
        try:
            self.permille = parse_share(self.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class OptionalMoneyField(StringField):
    """An amount in the user's locale, or nothing; after validation ``cents`` holds it (or None).
    A minus is let through so that the service refuses it with its own message."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {"inputmode": "decimal", "autocomplete": "off"})
        super().__init__(label, validators, **kwargs)
        self.cents: int | None = None

    def pre_validate(self, form) -> None:
        self.cents = None
        if not (self.data or "").strip():
            return
        try:
            self.cents = parse_money(self.data, current_language(), allow_negative=True)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc


class StaffMemberForm(FlaskForm):
    """A person in the staff register (minimal personal data)."""

    name = StringField(_l("Name"))
    work_email = StringField(_l("Work email"), render_kw={"type": "email", "autocomplete": "off"})
    home_authority = StringField(_l("Home authority (Stammdienststelle)"))
    notes = TextAreaField(_l("Notes"), description=_l("Work-related notes only; no private data."))
    annual_cost = OptionalMoneyField(
        _l("Personnel cost per full-time year"),
        description=_l(
            "The employer's gross cost of one full-time year in euros (e.g. 80.000,00); empty if unknown. "
            "Visible to federation staff and auditors only."
        ),
    )


def _instrument_choices():
    return [(str(kind.value), label) for kind, label in INSTRUMENT_LABELS.items()]


def _cost_bearer_choices():
    return [(str(kind.value), label) for kind, label in COST_BEARER_LABELS.items()]


class SecondmentForm(FlaskForm):
    """A secondment of one person (the person is fixed once it exists)."""

    staff_member = SelectField(_l("Person"), choices=[])
    instrument = SelectField(_l("Instrument"), choices=_instrument_choices)
    starts_on = DateField(_l("First day"))
    ends_on = DateField(_l("Last day"), validators=[Optional()], description=_l("Empty for an open end."))
    fte = ShareField(_l("Share of full time in percent"), description=_l("In percent, e.g. 100, 50 or 33,3."))
    cost_bearer = SelectField(_l("Cost borne by"), choices=_cost_bearer_choices)
    legal_reference = StringField(_l("Legal reference"))
    note = TextAreaField(_l("Note"))


def _target_kind_choices():
    return [(str(kind.value), label) for kind, label in TARGET_KIND_LABELS.items()]


class AssignmentForm(FlaskForm):
    """An assignment (Einsatz) of one person to a member or to a shared project (the person and the
    kind of target are fixed once it exists). Choices of kind and project are not checked here:
    the service refuses what is not offered (only planned or running projects are)."""

    staff_member = SelectField(_l("Person"), choices=[])
    target_kind = SelectField(
        _l("Works for"), choices=_target_kind_choices, default=TargetKind.MEMBER.value, validate_choice=False
    )
    member = StringField(
        _l("Member"),
        description=_l("Official key (AGS, Amt or Kreis key) or a name from the list."),
        render_kw={"list": "itvsh-staffing-member-options", "autocomplete": "off"},
    )
    project = SelectField(
        _l("Project"), choices=[], validate_choice=False, description=_l("For a shared project only.")
    )
    starts_on = DateField(_l("First day"))
    ends_on = DateField(_l("Last day"), validators=[Optional()], description=_l("Empty for an open end."))
    fte = ShareField(_l("Share of full time in percent"), description=_l("In percent, e.g. 100, 50 or 33,3."))
    role = StringField(_l("Role / task"))
