"""The member portal: a municipality user's home — its master data, membership, contacts and the
sections later issues fill. An Amt user also opens the pages of its member Gemeinden; any other
key answers 404 (the central tenant scope decides, see core/tenancy.py)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed, tenant_params
from itvsh.core.tenancy import in_scope
from itvsh.extensions import db
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact, MunicipalityKind
from itvsh.tenants.services import get_by_key

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
@roles_allowed(Role.MUNICIPALITY)
def index():
    return _page(current_user.municipality, home=True)


@bp.get("/municipalities/<key>")
@roles_allowed(Role.MUNICIPALITY)
@tenant_params(key="municipality_key")
def municipality(key: str):
    subject = get_by_key(db.session, key)
    if subject is None or not in_scope(db.session, subject.id):
        abort(404)
    return _page(subject, home=subject.id == current_user.municipality_id)


def _page(subject: Municipality, home: bool):
    memberships = db.session.execute(
        select(Membership).where(Membership.municipality_id == subject.id).order_by(Membership.joined_on)
    ).scalars()
    # No tenant filter here on purpose: the central scope limits contacts to what this user may see
    # (its tenant; for an Amt also its Gemeinden). A page of one Gemeinde shows that Gemeinde's only.
    contacts = select(MunicipalityContact).options(joinedload(MunicipalityContact.municipality))
    if not home:
        contacts = contacts.where(MunicipalityContact.municipality_id == subject.id)
    contacts = db.session.execute(
        contacts.order_by(MunicipalityContact.municipality_id, MunicipalityContact.id)
    ).scalars()
    members = []
    if subject.kind == MunicipalityKind.AMT:
        members = db.session.execute(
            select(Municipality).where(Municipality.amt_id == subject.id).order_by(Municipality.name)
        ).scalars()
    return render_template(
        "portal/index.html",
        municipality=subject,
        home=home,
        memberships=list(memberships),
        contacts=list(contacts),
        members=list(members),
    )
