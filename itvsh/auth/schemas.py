"""marshmallow schemas for accounts in the API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from itvsh.auth.passwords import MAX_LENGTH
from itvsh.auth.roles import Role

ROLES = [r.value for r in Role]


class UserSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    tenant = fields.Function(
        lambda u: u.municipality.key if u.municipality else None,
        dump_only=True,
        metadata={"description": "official key of the municipality (municipality role)"},
    )
    active = fields.Boolean(dump_only=True)
    locale = fields.String(allow_none=True, validate=validate.OneOf(["de", "en"]))
    created_at = fields.DateTime(dump_only=True)
    last_login_at = fields.DateTime(dump_only=True)


class UserCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    tenant = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=9))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=12, max=MAX_LENGTH))
    locale = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["de", "en"]))


class UserUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(validate=validate.OneOf(ROLES))
    tenant = fields.String(allow_none=True, validate=validate.Length(max=9))
    active = fields.Boolean()
    locale = fields.String(validate=validate.OneOf(["de", "en"]))
