"""marshmallow schemas for tenants in the API: the public master data, the membership history, the
contacts (private: only what the caller's tenant scope admits reaches them), and the write bodies.

Write bodies refuse unknown fields (``unknown = RAISE``) and check the shape of every official key
here; whether a Kreis or Amt exists and whether a key fits its kind are rules of the services.
"""

from __future__ import annotations

import re
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from itvsh.tenants.models import MunicipalityKind

KINDS = [k.value for k in MunicipalityKind]
MAX_AREA = 9_999_999.99  # Numeric(9, 2); a float, so the OpenAPI document shows a number
MAX_POPULATION = 2**31 - 1  # Integer column
_DIGITS = re.compile("[0-9]+")


class Digits(validate.Validator):
    """Exactly ``lengths`` ASCII digits, nothing around them (``re.fullmatch``: a trailing newline
    slips through ``Regexp``'s ``$``)."""

    def __init__(self, *lengths: int):
        self.lengths = lengths

    def __call__(self, value: str) -> str:
        if not (_DIGITS.fullmatch(value) and len(value) in self.lengths):
            raise ValidationError(self.message())
        return value

    def message(self) -> str:
        counts = " or ".join(str(n) for n in self.lengths)
        return f"Must consist of {counts} digits."

    @property
    def pattern(self) -> str:
        return "^(" + "|".join(f"[0-9]{{{n}}}" for n in self.lengths) + ")$"


def _digits_field(*lengths: int, **kwargs) -> fields.String:
    validator = Digits(*lengths)
    return fields.String(validate=validator, metadata={"pattern": validator.pattern}, **kwargs)


def _two_decimals(value: Decimal) -> None:
    if value.as_tuple().exponent < -2:
        raise ValidationError("At most two decimal places.")


class MembershipSchema(Schema):
    """One membership period; ``left_on`` is the first day no longer a member (null while open)."""

    joined_on = fields.Date(dump_only=True)
    left_on = fields.Date(dump_only=True, allow_none=True)
    note = fields.String(dump_only=True)


class MunicipalityContactSchema(Schema):
    id = fields.Integer(dump_only=True)
    role = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    email = fields.String(dump_only=True)
    phone = fields.String(dump_only=True)
    address = fields.String(dump_only=True)
    website = fields.String(dump_only=True)


class MunicipalitySchema(Schema):
    """Public master data of one tenant (what every logged-in user may see)."""

    key = fields.String(dump_only=True, metadata={"description": "official key: AGS, Amt or Kreis key"})
    ars = fields.String(dump_only=True, allow_none=True)
    name = fields.String(dump_only=True)
    kind = fields.String(dump_only=True, validate=validate.OneOf(KINDS))
    kreis = fields.Function(
        lambda m: m.kreis.key if m.kreis is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "key of the Kreis it belongs to"},
    )
    amt = fields.Function(
        lambda m: m.amt.key if m.amt is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "key of the Amt it belongs to"},
    )
    population = fields.Integer(dump_only=True, allow_none=True)
    total_population = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "own population, or for an Amt or Kreis the sum of its Gemeinden"},
    )
    population_date = fields.Date(dump_only=True, allow_none=True)
    area_km2 = fields.Decimal(
        as_string=True, dump_only=True, allow_none=True, metadata={"type": "string", "example": "118.65"}
    )
    postcode = fields.String(dump_only=True, allow_none=True)
    member = fields.Boolean(
        attribute="is_member", dump_only=True, metadata={"description": "a member of the federation today"}
    )


class MunicipalityDetailSchema(MunicipalitySchema):
    """Master data, the membership history and the contacts the caller may see: all of them for
    staff, admins and auditors; a municipality user's own tenant's (and an Amt's Gemeinden's); none
    of other tenants (their master data is public, their contacts are not)."""

    memberships = fields.List(fields.Nested(MembershipSchema), dump_only=True)
    contacts = fields.List(
        fields.Nested(MunicipalityContactSchema),
        dump_only=True,
        metadata={"description": "private: only the contacts of tenants in your scope (all for staff)"},
    )


class _MasterDataSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(min=1, max=200))
    kind = fields.String(validate=validate.OneOf(KINDS))
    ars = _digits_field(12, allow_none=True)
    kreis = _digits_field(5, allow_none=True)
    amt = _digits_field(9, allow_none=True)
    population = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=MAX_POPULATION)
    )
    population_date = fields.Date(allow_none=True)
    area_km2 = fields.Decimal(
        allow_none=True,
        validate=[validate.Range(min=0, max=MAX_AREA), _two_decimals],
        metadata={
            "description": "square kilometres, at most two decimals (a string or a number)",
            # apispec would copy the range as Decimal objects, which are no JSON numbers.
            "minimum": 0,
            "maximum": MAX_AREA,
        },
    )
    postcode = _digits_field(5, allow_none=True)


class MunicipalityCreateSchema(_MasterDataSchema):
    key = _digits_field(5, 8, 9, required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))


class MunicipalityUpdateSchema(_MasterDataSchema):
    """Any subset of the master data; the key is the identity and cannot change."""


class MembershipChangeSchema(Schema):
    class Meta:
        unknown = RAISE

    action = fields.String(required=True, validate=validate.OneOf(["join", "leave"]))
    on = fields.Date(
        required=True,
        metadata={"description": "join: the first day as a member; leave: the first day no longer one"},
    )
    note = fields.String(load_default="", validate=validate.Length(max=500))
