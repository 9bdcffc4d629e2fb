"""Forms of the tenant admin: master data (the Kreis and Amt chosen from the Kreise and Ämter),
the CSV upload, contacts. They collect input; the rules live in ``tenants.services``."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from itvsh.tenants.models import KIND_LABELS, MunicipalityKind


def _kind_choices():
    return [(kind.value, label) for kind, label in KIND_LABELS.items()]


class MunicipalityForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=_kind_choices)
    ars = StringField(
        _l("ARS (12 digits)"),
        validators=[Optional(), Length(max=12)],
        description=_l("Amtlicher Regionalschlüssel; only for Gemeinden and Städte."),
    )
    kreis_key = SelectField(_l("Kreis"), choices=[])
    amt_key = SelectField(_l("Amt"), choices=[])
    population = IntegerField(
        _l("Population"),
        validators=[Optional()],
        description=_l("Only for Gemeinden and Städte; an Amt's or Kreis's is the sum of its Gemeinden."),
    )
    population_date = DateField(_l("Population as of"), validators=[Optional()])
    area_km2 = DecimalField(_l("Area (km²)"), places=2, validators=[Optional(), NumberRange(min=0)])
    postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=5)])

    def set_parent_choices(self, options: dict[str, list[tuple[str, str]]]) -> None:
        none = [("", "—")]
        self.kreis_key.choices = none + options[MunicipalityKind.KREIS]
        self.amt_key.choices = none + options[MunicipalityKind.AMT]

    def master_data(self) -> dict:
        return {
            "name": self.name.data,
            "kind": self.kind.data,
            "ars": (self.ars.data or "").strip() or None,
            "kreis": self.kreis_key.data or None,
            "amt": self.amt_key.data or None,
            "population": self.population.data,
            "population_date": self.population_date.data,
            "area_km2": self.area_km2.data,
            "postcode": (self.postcode.data or "").strip() or None,
        }


class MunicipalityCreateForm(MunicipalityForm):
    key = StringField(
        _l("Official key"),
        validators=[DataRequired(), Length(max=9)],
        description=_l("AGS (8 digits), Amt (9 digits) or Kreis (5 digits), beginning with 01."),
    )


class ImportForm(FlaskForm):
    file = FileField(
        _l("Municipality list (CSV, UTF-8)"),
        validators=[FileRequired(_l("Please choose a file."))],
        description=_l("The Destatis list in the shape of the shipped sh_municipalities.csv."),
    )


class ContactForm(FlaskForm):
    role = StringField(_l("Role"), validators=[Length(max=120)])
    name = StringField(_l("Name"), validators=[Length(max=200)])
    email = StringField(_l("Email"), validators=[Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Length(max=60)])
    address = TextAreaField(_l("Postal address"), validators=[Length(max=2000)])
    website = StringField(_l("Website"), validators=[Length(max=300)])


class ContactCreateForm(ContactForm):
    municipality_key = StringField(
        _l("Municipality (official key)"),
        validators=[DataRequired(), Length(max=9)],
        description=_l("AGS, Amt or Kreis key."),
    )


CONTACT_FORM_FIELDS = ("role", "name", "email", "phone", "address", "website")
