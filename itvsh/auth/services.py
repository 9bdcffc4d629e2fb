"""Account rules: creating and changing users, passwords, logins, sessions and API tokens.

Every function takes the session and the acting user (or a system label such as ``"cli"``),
flushes, never commits, and writes its audit event.
"""

from __future__ import annotations

import re
import secrets

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from itvsh.auth import passwords
from itvsh.auth.models import ApiToken, User
from itvsh.auth.roles import Role
from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.core.rules import RuleViolation
from itvsh.tenants.models import Municipality

# No control characters: PostgreSQL refuses NUL in text, and none belongs in an address.
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
TOKEN_PREFIX = "itvsh_"  # noqa: S105 (a marker, not a secret)


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def _check_email(email: str) -> str:
    email = normalize_email(email)
    if not email:
        raise RuleViolation(_("Please enter an email address."), "email")
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise RuleViolation(_("This is not a valid email address."), "email")
    return email


def _check_password(password: str) -> None:
    problem = passwords.password_problem(password or "")
    if problem == "too_short":
        raise RuleViolation(
            _("The password must be at least %(n)d characters long.", n=passwords.MIN_LENGTH), "password"
        )
    if problem == "too_long":
        raise RuleViolation(
            _("The password must be at most %(n)d characters long.", n=passwords.MAX_LENGTH), "password"
        )
    if problem:
        raise RuleViolation(_("The password must not consist of spaces only."), "password")


def _check_role_and_tenant(session: Session, role: str, tenant_key: str | None) -> Municipality | None:
    try:
        role = Role(role)
    except ValueError:
        raise RuleViolation(
            _("Unknown role %(role)s; choose admin, staff, auditor or municipality.", role=role), "role"
        ) from None
    tenant_key = (tenant_key or "").strip() or None
    if role is Role.MUNICIPALITY:
        if not tenant_key:
            raise RuleViolation(_("A municipality account must be bound to a municipality."), "tenant")
        tenant = (
            None  # no key has NUL, and PostgreSQL would refuse the query (a 500)
            if "\x00" in tenant_key
            else session.execute(
                select(Municipality).where(Municipality.key == tenant_key)
            ).scalar_one_or_none()
        )
        if tenant is None:
            raise RuleViolation(_("No municipality has the key %(key)s.", key=tenant_key), "tenant")
        return tenant
    if tenant_key:
        raise RuleViolation(_("Only municipality accounts are bound to a municipality."), "tenant")
    return None


def find_user(session: Session, email: str) -> User | None:
    email = normalize_email(email)
    if "\x00" in email:  # no account has one, and PostgreSQL would refuse the query (a 500)
        return None
    return session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise RuleViolation(_("No account has the email address %(email)s.", email=email), "email")
    return user


def create_user(
    session: Session,
    actor,
    *,
    email: str,
    role: str,
    password: str,
    tenant_key: str | None = None,
    locale: str | None = None,
) -> User:
    """Create an account; refuses duplicates (case-insensitive), weak passwords and role/tenant mismatches."""
    email = _check_email(email)
    tenant = _check_role_and_tenant(session, role, tenant_key)
    _check_password(password)
    if locale not in (None, "de", "en"):
        raise RuleViolation(_("Language must be de or en."), "locale")
    if find_user(session, email) is not None:
        raise RuleViolation(_("An account with this email address exists already."), "email")
    user = User(
        email=email,
        role=str(Role(role)),
        municipality=tenant,
        password_hash=passwords.hash_password(password),
        password_changed_at=utcnow(),
        active=True,
        session_version=1,
        locale=locale,
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "create", "user", user, after=user.audit_view())
    return user


def update_user(
    session: Session,
    actor,
    user: User,
    *,
    role: str | None = None,
    tenant_key: str | None = None,
    active: bool | None = None,
    locale: str | None = None,
) -> User:
    """Change role, tenant, active flag or language. A role or tenant change ends the user's sessions."""
    before = user.audit_view()
    new_role = role if role is not None else user.role
    key = tenant_key if tenant_key is not None else (user.municipality.key if user.municipality else None)
    if role is not None and new_role != Role.MUNICIPALITY and tenant_key is None:
        key = None  # leaving the municipality role drops the binding
    tenant = _check_role_and_tenant(session, new_role, key)
    if actor is not None and getattr(actor, "id", None) == user.id:
        if new_role != user.role:
            raise RuleViolation(_("You cannot change your own role."), "role")
        if active is False:
            raise RuleViolation(_("You cannot deactivate your own account."), "active")
    if locale not in (None, "de", "en"):
        raise RuleViolation(_("Language must be de or en."), "locale")
    access_changed = new_role != user.role or tenant is not user.municipality
    user.role = str(Role(new_role))
    user.municipality = tenant
    if locale is not None:
        user.locale = locale
    if active is not None and active != user.active:
        access_changed = True
        user.active = active
        if not active:
            _revoke(session, user)
    if access_changed:
        user.session_version += 1
    after = user.audit_view()
    if after != before:
        session.flush()
        audit.record(session, actor, "update", "user", user, before=before, after=after)
    return user


def deactivate_user(session: Session, actor, user: User) -> User:
    """Deactivate: the account can no longer log in; its sessions and tokens end at once."""
    return update_user(session, actor, user, active=False)


def set_password(session: Session, actor, user: User, password: str) -> None:
    """Set a new password (admin or the user); ends every session of that user."""
    _check_password(password)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    user.session_version += 1
    session.flush()
    audit.record(session, actor, "password_set", "user", user)


def change_own_password(session: Session, user: User, current: str, new: str) -> None:
    """A logged-in user changes their password; the current one must be right."""
    if not passwords.verify_password(user.password_hash, current or ""):
        raise RuleViolation(_("The current password is not correct."), "current_password")
    if current == new:
        raise RuleViolation(_("The new password must differ from the current one."), "new_password")
    try:
        set_password(session, user, user, new)
    except RuleViolation as exc:
        raise RuleViolation(exc.message, "new_password") from None


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Check a login. Success and failure both land in the audit trail; the caller commits.

    The answer never tells whether the account exists.
    """
    user = find_user(session, email) if len(email or "") <= 254 else None
    ok = passwords.verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.active:
        reason = "unknown_account" if user is None else ("inactive" if not user.active else "wrong_password")
        audit.record(session, user, "login_failed", "user", user, after={"reason": reason})
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_login_at = utcnow()
    audit.record(session, user, "login", "user", user)
    return user


def logout(session: Session, user: User) -> None:
    """End every session of this user (also those on other devices)."""
    user.session_version += 1
    audit.record(session, user, "logout", "user", user)


def load_session_user(session: Session, session_id: str) -> User | None:
    """The user for a session's "id:version", if the account is active and the version current."""
    try:
        user_id, version = (int(part) for part in session_id.split(":", 1))
    except ValueError:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def issue_token(session: Session, actor, user: User) -> str:
    """Create an API token for ``user``; returns it in clear text once (only its hash is kept)."""
    if not user.active:
        raise RuleViolation(_("This account is deactivated."), "email")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user=user, token_hash=ApiToken.digest(token), prefix=token[:12])
    session.add(record)
    session.flush()
    audit.record(
        session, actor, "token_issued", "user", user, after={"token_id": record.id, "prefix": record.prefix}
    )
    return token


def _revoke(session: Session, user: User) -> int:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount or 0


def revoke_tokens(session: Session, actor, user: User) -> int:
    """Revoke every API token of ``user``; returns how many were live."""
    count = _revoke(session, user)
    audit.record(session, actor, "tokens_revoked", "user", user, after={"revoked": count})
    return count


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a live token belongs to, or None (unknown, revoked, malformed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    record = session.execute(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.digest(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if record is None or not record.user.active:
        return None
    return record.user


def count_users(session: Session) -> int:
    return session.execute(select(func.count()).select_from(User)).scalar_one()


def revoke_token(session: Session, actor, token: ApiToken) -> None:
    """Revoke one API token (the record stays, marked revoked)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            session,
            actor,
            "token_revoked",
            "user",
            token.user_id,
            after={"token_id": token.id, "prefix": token.prefix},
        )
