"""Municipality endpoints: the public master data and membership of every tenant (any logged-in
role), their contacts as far as the caller's tenant scope reaches, and (staff, admins) creating
and changing municipalities and their membership.

Master data is public (ARCHITECTURE.md, "Public and tenant-private data"), so another tenant's key
answers 200 with its master data; its contacts are private and come from a plain ORM select that the
central tenant scope filters, so a municipality user gets none of another tenant's. Unknown and
malformed keys answer 404. The services check, audit and flush; each view commits once, and a
refused write rolls the session back so nothing of it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import not_, or_, select
from sqlalchemy.orm import aliased

from itvsh.api import bp, doc, json_body, paginate, refusal_writes_nothing
from itvsh.auth.roles import ALL_ROLES, Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.models import Municipality, MunicipalityContact, MunicipalityKind
from itvsh.tenants.schemas import (
    KINDS,
    Digits,
    MembershipChangeSchema,
    MunicipalityCreateSchema,
    MunicipalityDetailSchema,
    MunicipalitySchema,
    MunicipalityUpdateSchema,
)

WRITERS = (Role.STAFF, Role.ADMIN)
MAX_QUERY = 100
LIST_PARAMS = [
    {"name": "kreis", "in": "query", "description": "Kreis key (5 digits)", "schema": {"type": "string"}},
    {"name": "amt", "in": "query", "description": "Amt key (9 digits)", "schema": {"type": "string"}},
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": KINDS}},
    {"name": "member", "in": "query", "description": "a member today", "schema": {"type": "boolean"}},
    {
        "name": "q",
        "in": "query",
        "description": "part of the name (any case) or of the official key",
        "schema": {"type": "string", "maxLength": MAX_QUERY},
    },
]
# The service names the membership dates by their column; the API body calls both "on".
_MEMBERSHIP_FIELDS = {"joined_on": "on", "left_on": "on"}


@dataclass
class MunicipalityDetail:
    """What the detail answers: the municipality's own attributes, plus the contacts in scope."""

    municipality: Municipality
    contacts: list[MunicipalityContact]

    def __getattr__(self, name: str):
        return getattr(self.municipality, name)


def _me():
    return current_user._get_current_object()


def _municipality_or_404(key: str) -> Municipality:
    municipality = services.get_by_key(db.session, key)
    if municipality is None:
        abort(404)
    return municipality


def _detail(municipality: Municipality) -> dict:
    # No tenant condition here on purpose: the central scope (core/tenancy.py) filters the rows.
    contacts = (
        db.session.execute(
            select(MunicipalityContact)
            .where(MunicipalityContact.municipality_id == municipality.id)
            .order_by(MunicipalityContact.id)
        )
        .scalars()
        .all()
    )
    return MunicipalityDetailSchema().dump(MunicipalityDetail(municipality, list(contacts)))


def _key_arg(name: str, length: int) -> str | None:
    value = request.args.get(name, "")
    if not value:
        return None
    try:
        return Digits(length)(value)
    except ValidationError:
        raise RuleViolation(
            _("%(name)s must be an official key of %(length)d digits.", name=name, length=length), name
        ) from None


def _children_of(column, key: str, kind: MunicipalityKind):
    parent = aliased(Municipality)
    return column.in_(select(parent.id).where(parent.key == key, parent.kind == kind.value))


@bp.get("/municipalities")
@roles_allowed(ALL_ROLES)
@doc(
    "List municipalities (public master data)",
    response=MunicipalitySchema,
    paginated=True,
    params=LIST_PARAMS,
)
def list_municipalities():
    """A well-formed key of no Kreis or Amt filters to nothing; a malformed one is refused."""
    statement = select(Municipality).order_by(Municipality.key)
    if kreis := _key_arg("kreis", 5):
        statement = statement.where(_children_of(Municipality.kreis_id, kreis, MunicipalityKind.KREIS))
    if amt := _key_arg("amt", 9):
        statement = statement.where(_children_of(Municipality.amt_id, amt, MunicipalityKind.AMT))
    kind = request.args.get("kind", "")
    if kind:
        if kind not in KINDS:
            raise RuleViolation(_("Unknown kind %(kind)s.", kind=kind), "kind")
        statement = statement.where(Municipality.kind == kind)
    member = request.args.get("member", "")
    if member:
        if member not in ("true", "false"):
            raise RuleViolation(_("member must be true or false."), "member")
        statement = statement.where(
            Municipality.is_member if member == "true" else not_(Municipality.is_member)
        )
    q = request.args.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise RuleViolation(
            _("The search text is too long (at most %(max)d characters).", max=MAX_QUERY), "q"
        )
    if q:
        statement = statement.where(
            or_(
                Municipality.name.icontains(q, autoescape=True), Municipality.key.contains(q, autoescape=True)
            )
        )
    return paginate(db.session, statement, MunicipalitySchema())


@bp.get("/municipalities/<key>")
@roles_allowed(ALL_ROLES)
@tenant_params(key="municipality_key")
@doc(
    "One municipality: master data, membership history and the contacts you may see",
    response=MunicipalityDetailSchema,
)
def get_municipality(key: str):
    return jsonify(_detail(_municipality_or_404(key)))


@bp.post("/municipalities")
@roles_allowed(WRITERS)
@doc("Create a municipality", body=MunicipalityCreateSchema, response=MunicipalityDetailSchema, status=201)
def create_municipality():
    data = json_body(MunicipalityCreateSchema())
    with refusal_writes_nothing():
        municipality = services.create_municipality(db.session, _me(), **data)
    db.session.commit()
    location = url_for(".get_municipality", key=municipality.key)
    return jsonify(_detail(municipality)), 201, {"Location": location}


@bp.patch("/municipalities/<key>")
@roles_allowed(WRITERS)
@tenant_params(key="municipality_key")
@doc("Change master data (not the key)", body=MunicipalityUpdateSchema, response=MunicipalityDetailSchema)
def update_municipality(key: str):
    municipality = _municipality_or_404(key)
    data = json_body(MunicipalityUpdateSchema())
    with refusal_writes_nothing():
        services.update_municipality(db.session, _me(), municipality, **data)
    db.session.commit()
    return jsonify(_detail(municipality))


@bp.post("/municipalities/<key>/membership")
@roles_allowed(WRITERS)
@tenant_params(key="municipality_key")
@doc("Join or leave the federation", body=MembershipChangeSchema, response=MunicipalityDetailSchema)
def change_membership(key: str):
    municipality = _municipality_or_404(key)
    data = json_body(MembershipChangeSchema())
    change = services.join if data["action"] == "join" else services.leave
    with refusal_writes_nothing(_MEMBERSHIP_FIELDS):
        change(db.session, _me(), municipality, data["on"], data["note"])
    db.session.commit()
    return jsonify(_detail(municipality))
