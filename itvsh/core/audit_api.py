"""The audit trail in the API: admins and auditors read it and can ask for a verification."""

from __future__ import annotations

from flask import jsonify, request
from marshmallow import Schema, fields
from sqlalchemy import select

from itvsh.api import bp, doc, paginate
from itvsh.auth.roles import Role
from itvsh.core.access import roles_allowed
from itvsh.core.audit import AuditEvent, verify_chain
from itvsh.extensions import db

AUDIT_READERS = (Role.ADMIN, Role.AUDITOR)


class AuditEventSchema(Schema):
    seq = fields.Integer()
    occurred_at = fields.DateTime()
    actor = fields.String()
    actor_id = fields.Integer(allow_none=True)
    action = fields.String()
    entity = fields.String()
    entity_id = fields.String(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    address = fields.String()
    prev_hash = fields.String()
    hash = fields.String()


class ChainStatusSchema(Schema):
    ok = fields.Boolean()
    count = fields.Integer()
    head = fields.String()
    problem = fields.String()
    bad_seq = fields.Integer(allow_none=True)


@bp.get("/audit-events")
@roles_allowed(*AUDIT_READERS)
@doc(
    "Audit events, newest first",
    response=AuditEventSchema,
    paginated=True,
    params=[
        {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("action", "entity", "entity_id")
    ],
)
def list_audit_events():
    statement = select(AuditEvent).order_by(AuditEvent.seq.desc())
    for name in ("action", "entity", "entity_id"):
        value = request.args.get(name)
        if value:
            statement = statement.where(getattr(AuditEvent, name) == value)
    return paginate(db.session, statement, AuditEventSchema())


@bp.get("/audit-events/verify")
@roles_allowed(*AUDIT_READERS)
@doc("Verify the hash chain of the whole audit trail", response=ChainStatusSchema)
def verify_audit_chain():
    return jsonify(ChainStatusSchema().dump(verify_chain(db.session)))
