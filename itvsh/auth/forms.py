"""Forms for login, password change and account management (CSRF through Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from itvsh.auth.passwords import MAX_LENGTH
from itvsh.auth.roles import ROLE_LABELS


def role_choices():
    return [(role.value, label) for role, label in ROLE_LABELS.items()]


class LoginForm(FlaskForm):
    email = StringField(
        _l("Email"), validators=[DataRequired(_l("Please enter your email address.")), Length(max=254)]
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(_l("Please enter your password.")), Length(max=MAX_LENGTH)]
    )


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=MAX_LENGTH)]
    )
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=MAX_LENGTH)])
    confirm_password = PasswordField(
        _l("Repeat new password"), validators=[DataRequired(), Length(max=MAX_LENGTH)]
    )


class UserCreateForm(FlaskForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    role = SelectField(_l("Role"), choices=role_choices)
    tenant_key = StringField(
        _l("Municipality (official key)"),
        validators=[Optional(), Length(max=9)],
        description=_l("Only for municipality accounts: AGS, Amt or Kreis key."),
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=MAX_LENGTH)],
        description=_l("At least 12 characters."),
    )


class UserEditForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices)
    tenant_key = StringField(
        _l("Municipality (official key)"),
        validators=[Optional(), Length(max=9)],
        description=_l("Only for municipality accounts: AGS, Amt or Kreis key."),
    )
    active = BooleanField(_l("Active"))
    new_password = PasswordField(
        _l("New password"),
        validators=[Optional(), Length(max=MAX_LENGTH)],
        description=_l("Leave empty to keep the password."),
    )
