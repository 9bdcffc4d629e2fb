"""Account endpoints: who am I, and (admins) the users."""

from __future__ import annotations

from flask import abort, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from itvsh.api import bp, doc, json_body, paginate
from itvsh.auth import services
from itvsh.auth.models import User
from itvsh.auth.roles import ALL_ROLES, Role
from itvsh.auth.schemas import UserCreateSchema, UserSchema, UserUpdateSchema
from itvsh.core.access import roles_allowed
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db


def _me():
    return current_user._get_current_object()


@bp.get("/me")
@roles_allowed(ALL_ROLES)
@doc("The account making the request", response=UserSchema)
def me():
    return jsonify(UserSchema().dump(_me()))


@bp.get("/users")
@roles_allowed(Role.ADMIN)
@doc(
    "List accounts",
    response=UserSchema,
    paginated=True,
    params=[
        {"name": "role", "in": "query", "schema": {"type": "string"}},
        {"name": "active", "in": "query", "schema": {"type": "boolean"}},
    ],
)
def list_users():
    statement = select(User).order_by(User.email)
    role = request.args.get("role")
    if role:
        if role not in {r.value for r in Role}:
            raise RuleViolation(f"unknown role {role!r}", "role")
        statement = statement.where(User.role == role)
    if request.args.get("active") in ("true", "false"):
        statement = statement.where(User.active.is_(request.args["active"] == "true"))
    return paginate(db.session, statement, UserSchema())


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users/<int:user_id>")
@roles_allowed(Role.ADMIN)
@doc("One account", response=UserSchema)
def get_user(user_id: int):
    return jsonify(UserSchema().dump(_user_or_404(user_id)))


@bp.post("/users")
@roles_allowed(Role.ADMIN)
@doc("Create an account", body=UserCreateSchema, response=UserSchema, status=201)
def create_user():
    data = json_body(UserCreateSchema())
    user = services.create_user(
        db.session,
        _me(),
        email=data["email"],
        role=data["role"],
        password=data["password"],
        tenant_key=data["tenant"],
        locale=data["locale"],
    )
    db.session.commit()
    return jsonify(UserSchema().dump(user)), 201


@bp.patch("/users/<int:user_id>")
@roles_allowed(Role.ADMIN)
@doc("Change role, tenant, active flag or language of an account", body=UserUpdateSchema, response=UserSchema)
def update_user(user_id: int):
    user = _user_or_404(user_id)
    data = json_body(UserUpdateSchema())
    services.update_user(
        db.session,
        _me(),
        user,
        role=data.get("role"),
        tenant_key=data["tenant"] or "" if "tenant" in data else None,
        active=data.get("active"),
        locale=data.get("locale"),
    )
    db.session.commit()
    return jsonify(UserSchema().dump(user))
