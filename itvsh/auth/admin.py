"""Account management in the admin (admins only): create, change role and tenant, deactivate,
set a new password, revoke API tokens. Every change goes through ``auth.services`` and is audited."""

from __future__ import annotations

from flask import flash
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from itvsh.auth import services
from itvsh.auth.forms import UserCreateForm, UserEditForm
from itvsh.auth.models import ApiToken, User
from itvsh.auth.roles import ROLE_LABELS, Role
from itvsh.core.admin import SecureModelView
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db


def _actor():
    return current_user._get_current_object()


def _show_violation(form, exc: RuleViolation) -> None:
    field = {
        "password": "new_password" if hasattr(form, "new_password") else "password",
        "tenant": "tenant_key",
        "email": "email",
        "role": "role",
        "active": "active",
    }.get(exc.field or "")
    if field and hasattr(form, field):
        getattr(form, field).errors = [*getattr(form, field).errors, exc.message]
    flash(exc.message, "error")


class UserView(SecureModelView):
    allowed_roles = frozenset({Role.ADMIN})
    allow_create = True
    allow_edit = True
    column_list = ("email", "role", "municipality", "active", "last_login_at", "created_at")
    column_details_list = (
        "email",
        "role",
        "municipality",
        "active",
        "locale",
        "created_at",
        "last_login_at",
        "password_changed_at",
    )
    column_export_list = column_details_list
    column_searchable_list = ("email",)
    column_default_sort = "email"
    column_filters = (
        FilterEqual(User.role, _l("Role"), options=[(r.value, label) for r, label in ROLE_LABELS.items()]),
        FilterEqual(User.active, _l("Active"), options=[("1", _l("yes")), ("0", _l("no"))]),
    )
    column_labels = {
        "email": _l("Email"),
        "role": _l("Role"),
        "municipality": _l("Municipality"),
        "active": _l("Active"),
        "last_login_at": _l("Last login"),
        "created_at": _l("Created"),
        "locale": _l("Language"),
        "password_changed_at": _l("Password changed"),
    }
    column_formatters = {"role": lambda v, c, m, n: m.role_label}

    def create_form(self, obj=None):
        return UserCreateForm()

    def edit_form(self, obj=None):
        form = UserEditForm(obj=obj)
        if obj is not None and not form.is_submitted():
            form.tenant_key.data = obj.municipality.key if obj.municipality else ""
        return form

    def create_model(self, form):
        try:
            user = services.create_user(
                db.session,
                _actor(),
                email=form.email.data,
                role=form.role.data,
                password=form.password.data,
                tenant_key=form.tenant_key.data,
            )
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            _show_violation(form, exc)
            return False
        return user

    def update_model(self, form, model):
        try:
            services.update_user(
                db.session,
                _actor(),
                model,
                role=form.role.data,
                tenant_key=form.tenant_key.data or "",
                active=form.active.data,
            )
            if form.new_password.data:
                services.set_password(db.session, _actor(), model, form.new_password.data)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            _show_violation(form, exc)
            return False
        return True

    def _users(self, ids) -> list[User]:
        return list(db.session.execute(select(User).where(User.id.in_(self.selected_ids(ids)))).scalars())

    @action(
        "deactivate", _l("Deactivate"), _l("Deactivate the selected accounts? They are logged out at once.")
    )
    def action_deactivate(self, ids):
        users = self._users(ids)
        try:
            for user in users:
                services.deactivate_user(db.session, _actor(), user)
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return
        flash(
            ngettext("%(num)d account was deactivated.", "%(num)d accounts were deactivated.", len(users)),
            "success",
        )

    @action("revoke_tokens", _l("Revoke API tokens"), _l("Revoke all API tokens of the selected accounts?"))
    def action_revoke_tokens(self, ids):
        revoked = sum(services.revoke_tokens(db.session, _actor(), user) for user in self._users(ids))
        db.session.commit()
        flash(ngettext("%(num)d token was revoked.", "%(num)d tokens were revoked.", revoked), "success")


class ApiTokenView(SecureModelView):
    """Issued tokens (never their value). "Delete" revokes: the record stays for the audit."""

    allowed_roles = frozenset({Role.ADMIN})
    allow_delete = True
    delete_confirmation = _l("Revoke this token? Scripts using it stop working at once.")
    delete_title = _l("Revoke token")
    action_disallowed_list = ["delete"]
    column_list = ("user", "prefix", "created_at", "revoked_at")
    column_default_sort = ("created_at", True)
    column_searchable_list = ("prefix",)
    column_labels = {
        "user": _l("Account"),
        "prefix": _l("Token begins with"),
        "created_at": _l("Issued"),
        "revoked_at": _l("Revoked"),
    }

    def delete_model(self, model):
        if model.revoked_at is None:
            services.revoke_token(db.session, _actor(), model)
            db.session.commit()
        return True


def register(admin) -> None:
    admin.add_view(UserView(User, name=_l("Accounts"), endpoint="users", category=_l("System")))
    admin.add_view(
        ApiTokenView(ApiToken, name=_l("API tokens"), endpoint="api_tokens", category=_l("System"))
    )
