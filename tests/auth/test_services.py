"""The account rules in ``itvsh.auth.services``, tested without HTTP: creating and changing users,
passwords, logins (and their audit events), API tokens and session versions; and the production
argon2id parameters against the OWASP ASVS minimum."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import Type, extract_parameters
from sqlalchemy import inspect, select

from itvsh import create_app
from itvsh.auth import passwords, services
from itvsh.auth.models import ApiToken, User
from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from tests.auth.helpers import PASSWORD, audit_events
from tests.conftest import test_config as config_for

KIEL = "01002000"
LUEBECK = "01003000"


def _create(email="new@test.example", role="staff", password="a long enough password", tenant=None, **kw):
    return services.create_user(
        db.session, "test", email=email, role=role, password=password, tenant_key=tenant, **kw
    )


def _refused(field: str, call, *args, **kwargs) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        call(*args, **kwargs)
    assert caught.value.field == field, caught.value.message
    assert caught.value.message
    db.session.rollback()
    return caught.value


def _reload(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


# --- create_user -----------------------------------------------------------------------------


def test_create_user_normalises_email_and_hashes_password(app):
    user = _create(email="  Jane.Doe@Example.ORG ")
    db.session.commit()
    user = _reload(user)
    assert user.email == "jane.doe@example.org"
    assert user.role == "staff"
    assert user.municipality is None
    assert user.active is True
    assert user.session_version == 1
    assert user.password_hash.startswith("$argon2id$")
    assert "a long enough password" not in user.password_hash
    assert passwords.verify_password(user.password_hash, "a long enough password")
    [event] = audit_events(action="create", entity="user")
    assert event.actor == "test"
    assert event.entity_id == str(user.id)
    assert event.after == {
        "email": "jane.doe@example.org",
        "role": "staff",
        "tenant": None,
        "active": True,
        "locale": None,
    }
    assert "argon2" not in event.payload


def test_email_is_unique_regardless_of_case(app):
    _create(email="dup@test.example")
    db.session.commit()
    _refused("email", _create, email="DUP@Test.Example")
    _refused("email", _create, email=" dup@test.example ")
    assert db.session.execute(select(User)).scalars().all()[0].email == "dup@test.example"
    assert services.count_users(db.session) == 1


@pytest.mark.parametrize(
    "email", ["", "   ", "no-at-sign.example", "a@b", "two@@x.example", "x" * 250 + "@t.de"]
)
def test_invalid_email_is_refused(app, email):
    _refused("email", _create, email=email)
    assert services.count_users(db.session) == 0


def test_password_shorter_than_12_characters_is_refused(app):
    _refused("password", _create, password="elevenchars")
    _refused("password", _create, password=" " * 20)
    _refused("password", _create, password="x" * (passwords.MAX_LENGTH + 1))
    assert services.count_users(db.session) == 0
    assert len(audit_events()) == 0
    user = _create(password="twelve chars")
    assert passwords.verify_password(user.password_hash, "twelve chars")


def test_municipality_needs_an_existing_tenant(app):
    _refused("tenant", _create, role="municipality")
    _refused("tenant", _create, role="municipality", tenant="99999999")
    ensure_municipality(db.session, KIEL)
    user = _create(role="municipality", tenant=KIEL)
    db.session.commit()
    user = _reload(user)
    assert user.municipality.key == KIEL
    assert user.municipality.name.startswith("Kiel")


@pytest.mark.parametrize("role", ["admin", "staff", "auditor"])
def test_other_roles_must_not_have_a_tenant(app, role):
    ensure_municipality(db.session, KIEL)
    db.session.commit()
    _refused("tenant", _create, role=role, tenant=KIEL)
    assert services.count_users(db.session) == 0


def test_unknown_role_is_refused(app):
    violation = _refused("role", _create, role="superuser")
    assert "superuser" in violation.message
    _refused("role", _create, role="")


def test_unknown_locale_is_refused(app):
    _refused("locale", _create, locale="fr")
    assert _create(locale="en").locale == "en"


# --- update_user ------------------------------------------------------------------------------


def test_role_change_bumps_session_version_and_is_audited(app, make_user):
    admin = make_user("admin")
    user = make_user("staff")
    services.update_user(db.session, admin, user, role="auditor")
    db.session.commit()
    user = _reload(user)
    assert (user.role, user.session_version) == ("auditor", 2)
    [event] = audit_events(action="update", entity="user", entity_id=str(user.id))
    assert (event.actor, event.actor_id) == (admin.email, admin.id)
    assert event.before["role"] == "staff"
    assert event.after["role"] == "auditor"


def test_tenant_change_bumps_session_version(app, make_user):
    admin = make_user("admin")
    user = make_user("municipality", KIEL)
    ensure_municipality(db.session, LUEBECK)
    services.update_user(db.session, admin, user, tenant_key=LUEBECK)
    db.session.commit()
    user = _reload(user)
    assert user.municipality.key == LUEBECK
    assert user.session_version == 2
    [event] = audit_events(action="update", entity_id=str(user.id))
    assert (event.before["tenant"], event.after["tenant"]) == (KIEL, LUEBECK)


def test_leaving_the_municipality_role_drops_the_tenant(app, make_user):
    admin = make_user("admin")
    user = make_user("municipality", KIEL)
    services.update_user(db.session, admin, user, role="staff")
    db.session.commit()
    user = _reload(user)
    assert (user.role, user.municipality, user.session_version) == ("staff", None, 2)


def test_becoming_a_municipality_user_needs_a_tenant(app, make_user):
    admin = make_user("admin")
    user = make_user("staff")
    _refused("tenant", services.update_user, db.session, admin, user, role="municipality")
    _refused("tenant", services.update_user, db.session, admin, user, role="municipality", tenant_key="0")
    _refused("tenant", services.update_user, db.session, admin, user, tenant_key=KIEL)
    user = _reload(user)
    assert (user.role, user.session_version) == ("staff", 1)


def test_update_to_unknown_role_is_refused(app, make_user):
    admin = make_user("admin")
    user = make_user("municipality")
    _refused("role", services.update_user, db.session, admin, user, role="superuser")
    user = _reload(user)
    assert (user.role, user.municipality.key, user.session_version) == ("municipality", KIEL, 1)


def test_language_change_keeps_sessions(app, make_user):
    user = make_user("staff")
    services.update_user(db.session, user, user, locale="en")
    db.session.commit()
    user = _reload(user)
    assert (user.locale, user.session_version) == ("en", 1)


def test_no_change_writes_no_audit_event(app, make_user):
    admin = make_user("admin")
    user = make_user("staff")
    before = len(audit_events())
    services.update_user(db.session, admin, user, role="staff", active=True)
    db.session.commit()
    assert len(audit_events()) == before
    assert _reload(user).session_version == 1


def test_cannot_change_own_role_or_deactivate_self(app, make_user):
    admin = make_user("admin")
    _refused("role", services.update_user, db.session, admin, admin, role="staff")
    admin = _reload(admin)
    _refused("active", services.update_user, db.session, admin, admin, active=False)
    admin = _reload(admin)
    _refused("active", services.deactivate_user, db.session, admin, admin)
    admin = _reload(admin)
    assert (admin.role, admin.active, admin.session_version) == ("admin", True, 1)


# --- passwords --------------------------------------------------------------------------------


def test_set_password_replaces_hash_and_ends_sessions(app, make_user):
    admin = make_user("admin")
    user = make_user("staff")
    services.set_password(db.session, admin, user, "a brand new password")
    db.session.commit()
    user = _reload(user)
    assert passwords.verify_password(user.password_hash, "a brand new password")
    assert not passwords.verify_password(user.password_hash, PASSWORD)
    assert user.session_version == 2
    [event] = audit_events(action="password_set")
    assert (event.actor, event.entity_id) == (admin.email, str(user.id))
    assert "a brand new password" not in event.payload
    assert user.password_hash not in event.payload


def test_set_password_refuses_short_password(app, make_user):
    user = make_user("staff")
    old_hash = user.password_hash
    _refused("password", services.set_password, db.session, "test", user, "too short")
    user = _reload(user)
    assert (user.password_hash, user.session_version) == (old_hash, 1)


def test_change_own_password(app, make_user):
    user = make_user("staff")
    services.change_own_password(db.session, user, PASSWORD, "my new secret phrase")
    db.session.commit()
    user = _reload(user)
    assert passwords.verify_password(user.password_hash, "my new secret phrase")
    assert user.session_version == 2
    [event] = audit_events(action="password_set")
    assert event.actor == user.email


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("wrong password!", "my new secret phrase", "current_password"),
        ("", "my new secret phrase", "current_password"),
        (PASSWORD, PASSWORD, "new_password"),
        (PASSWORD, "short", "new_password"),
    ],
)
def test_change_own_password_refusals(app, make_user, current, new, field):
    user = make_user("staff")
    old_hash = user.password_hash
    _refused(field, services.change_own_password, db.session, user, current, new)
    user = _reload(user)
    assert (user.password_hash, user.session_version) == (old_hash, 1)


# --- deactivation and tokens ------------------------------------------------------------------


def test_deactivate_revokes_tokens_and_ends_sessions(app, make_user):
    admin = make_user("admin")
    user = make_user("staff")
    first = services.issue_token(db.session, admin, user)
    second = services.issue_token(db.session, admin, user)
    db.session.commit()
    services.deactivate_user(db.session, admin, user)
    db.session.commit()
    user = _reload(user)
    assert user.active is False
    assert user.session_version == 2
    tokens = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalars().all()
    assert len(tokens) == 2
    assert all(token.revoked_at is not None for token in tokens)
    assert services.user_for_token(db.session, first) is None
    assert services.user_for_token(db.session, second) is None
    assert services.load_session_user(db.session, f"{user.id}:2") is None
    [event] = audit_events(action="update", entity_id=str(user.id))
    assert (event.before["active"], event.after["active"]) == (True, False)


def test_issue_token_stores_only_its_sha256(app, make_user):
    user = make_user("staff")
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    assert token.startswith(services.TOKEN_PREFIX)
    assert len(token) > 40
    [record] = db.session.execute(select(ApiToken)).scalars().all()
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    columns = {c.key: getattr(record, c.key) for c in inspect(ApiToken).mapper.column_attrs}
    assert not any(isinstance(value, str) and token in value for value in columns.values())
    assert token.startswith(record.prefix) and len(record.prefix) < len(token) // 2
    [event] = audit_events(action="token_issued")
    assert token not in event.payload
    assert event.after == {"token_id": record.id, "prefix": record.prefix}
    assert services.user_for_token(db.session, token).id == user.id


def test_tokens_are_different_each_time(app, make_user):
    user = make_user("staff")
    tokens = {services.issue_token(db.session, "test", user) for _ in range(3)}
    assert len(tokens) == 3


@pytest.mark.parametrize(
    "token",
    [
        "",
        "itvsh_",
        "not-a-token",
        "Bearer itvsh_abc",
        "itvsh_" + "A" * 43,  # well-formed, never issued
        "itvsh_" + "x" * 200,  # oversized
        "itvsh_\x00",
    ],
)
def test_malformed_or_unknown_token_gives_none(app, make_user, token):
    user = make_user("staff")
    services.issue_token(db.session, "test", user)
    db.session.commit()
    assert services.user_for_token(db.session, token) is None


def test_revoked_token_gives_none(app, make_user):
    user = make_user("staff")
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    assert services.revoke_tokens(db.session, "test", user) == 1
    db.session.commit()
    assert services.user_for_token(db.session, token) is None
    assert services.revoke_tokens(db.session, "test", user) == 0
    db.session.commit()
    events = audit_events(action="tokens_revoked")
    assert [e.after for e in events] == [{"revoked": 1}, {"revoked": 0}]
    # revoking tokens does not end browser sessions
    assert _reload(user).session_version == 1


def test_revoke_tokens_leaves_other_users_tokens(app, make_user):
    one, two = make_user("staff"), make_user("staff")
    token_one = services.issue_token(db.session, "test", one)
    token_two = services.issue_token(db.session, "test", two)
    db.session.commit()
    services.revoke_tokens(db.session, "test", one)
    db.session.commit()
    assert services.user_for_token(db.session, token_one) is None
    assert services.user_for_token(db.session, token_two).id == two.id


def test_token_of_inactive_user_gives_none(app, make_user):
    user = make_user("staff")
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    # Even a token that escaped revocation must not work for a deactivated account.
    user.active = False
    db.session.commit()
    assert services.user_for_token(db.session, token) is None


def test_no_token_for_inactive_user(app, make_user):
    user = make_user("staff")
    services.deactivate_user(db.session, "test", user)
    db.session.commit()
    _refused("email", services.issue_token, db.session, "test", user)
    assert db.session.execute(select(ApiToken)).scalars().all() == []


# --- sessions ---------------------------------------------------------------------------------


def test_load_session_user(app, make_user):
    user = make_user("staff")
    assert user.get_id() == f"{user.id}:1"
    assert services.load_session_user(db.session, user.get_id()).id == user.id
    services.set_password(db.session, "test", user, "another long password")
    db.session.commit()
    assert services.load_session_user(db.session, f"{user.id}:1") is None
    assert services.load_session_user(db.session, f"{user.id}:2").id == user.id


@pytest.mark.parametrize("session_id", ["", "abc", "1", "1:x", "x:1", "1:1:1", "999999:1"])
def test_load_session_user_refuses_malformed_ids(app, make_user, session_id):
    make_user("staff")
    assert services.load_session_user(db.session, session_id) is None


def test_logout_ends_every_session(app, make_user):
    user = make_user("staff")
    services.logout(db.session, user)
    db.session.commit()
    assert services.load_session_user(db.session, f"{user.id}:1") is None
    [event] = audit_events(action="logout")
    assert event.actor == user.email


# --- authenticate -----------------------------------------------------------------------------


def test_authenticate_success_is_audited(app, make_user):
    user = make_user("staff", email="login@test.example")
    assert user.last_login_at is None
    found = services.authenticate(db.session, " LOGIN@Test.Example", PASSWORD)
    db.session.commit()
    assert found.id == user.id
    assert _reload(user).last_login_at is not None
    [event] = audit_events(action="login")
    assert (event.actor, event.actor_id, event.entity, event.entity_id) == (
        "login@test.example",
        user.id,
        "user",
        str(user.id),
    )
    assert audit_events(action="login_failed") == []


def test_authenticate_wrong_password_is_audited(app, make_user):
    user = make_user("staff")
    assert services.authenticate(db.session, user.email, "wrong password here") is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "wrong_password"}
    assert (event.entity_id, event.actor_id) == (str(user.id), user.id)
    assert "wrong password here" not in event.payload
    assert _reload(user).last_login_at is None


def test_authenticate_deactivated_account_is_refused_and_audited(app, make_user):
    user = make_user("staff")
    services.deactivate_user(db.session, "test", user)
    db.session.commit()
    assert services.authenticate(db.session, user.email, PASSWORD) is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "inactive"}
    assert event.entity_id == str(user.id)


def test_authenticate_unknown_account_does_not_store_the_typed_email(app, make_user):
    make_user("staff")
    typed = "Nobody.Here@Unknown.example"
    assert services.authenticate(db.session, typed, PASSWORD) is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "unknown_account"}
    assert (event.actor, event.actor_id, event.entity_id) == ("system", None, None)
    for text in (typed, typed.lower(), "nobody.here", "unknown.example"):
        assert text not in event.payload.lower()


@pytest.mark.parametrize(("email", "password"), [("x" * 10_000 + "@t.de", PASSWORD), (None, None)])
def test_authenticate_oversized_or_missing_input(app, make_user, email, password):
    make_user("staff")
    assert services.authenticate(db.session, email, password) is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "unknown_account"}


def test_authenticate_oversized_password_for_real_account(app, make_user):
    user = make_user("staff")
    assert services.authenticate(db.session, user.email, PASSWORD + "x" * 5000) is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "wrong_password"}


def test_authenticate_rehashes_with_stronger_parameters(app, make_user):
    user = make_user("staff")
    assert extract_parameters(user.password_hash).time_cost == 1
    app.config["ITVSH_ARGON2_TIME_COST"] = 2
    app.extensions.pop("itvsh_password_hasher", None)
    assert services.authenticate(db.session, user.email, PASSWORD).id == user.id
    db.session.commit()
    user = _reload(user)
    assert extract_parameters(user.password_hash).time_cost == 2
    assert passwords.verify_password(user.password_hash, PASSWORD)


def test_audit_events_of_logins_are_kept_only_on_commit(app, make_user):
    user = make_user("staff")
    services.authenticate(db.session, user.email, "wrong password here")
    db.session.rollback()
    assert audit_events(action="login_failed") == []
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "login")).first() is None


# --- production password hashing --------------------------------------------------------------


def test_production_argon2_parameters_meet_owasp_asvs(database_url, monkeypatch):
    """The defaults in itvsh/config.py (not the cheap test overrides) meet ASVS 5 / OWASP:
    argon2id, memory >= 19 MiB, time cost >= 2, parallelism >= 1."""
    for name in ("ITVSH_ARGON2_TIME_COST", "ITVSH_ARGON2_MEMORY_KIB", "ITVSH_ARGON2_PARALLELISM"):
        monkeypatch.delenv(name, raising=False)
    config = config_for(database_url)
    for name in ("ITVSH_ARGON2_TIME_COST", "ITVSH_ARGON2_MEMORY_KIB", "ITVSH_ARGON2_PARALLELISM"):
        del config[name]
    production = create_app(config)
    with production.app_context():
        encoded = passwords.hash_password("a production password")
        assert passwords.verify_password(encoded, "a production password")
        db.engine.dispose()
    # $argon2id$v=19$m=65536,t=3,p=1$salt$hash
    algorithm, version, params = encoded.split("$")[1:4]
    values = dict(part.split("=") for part in params.split(","))
    assert algorithm == "argon2id"
    assert version == "v=19"
    assert int(values["m"]) >= 19 * 1024
    assert int(values["t"]) >= 2
    assert int(values["p"]) >= 1
    parsed = extract_parameters(encoded)
    assert parsed.type is Type.ID
    assert parsed.memory_cost == int(values["m"])
    assert parsed.time_cost == int(values["t"])


def test_asvs_constants_are_the_owasp_minimum():
    assert passwords.ASVS_MIN_MEMORY_KIB == 19 * 1024
    assert passwords.ASVS_MIN_TIME_COST == 2
    assert passwords.MIN_LENGTH == 12


# --- NUL bytes (PostgreSQL refuses them in text: they must be refused before any query) --------


def test_nul_bytes_in_email_or_tenant_are_refused(app, make_user):
    make_user("staff", email="real@test.example")
    _refused("email", _create, email="nul\x00@test.example")
    _refused("email", _create, email="tab\t@test.example")
    _refused("tenant", _create, role="municipality", tenant="0100\x002000")
    assert services.find_user(db.session, "real@test.example\x00") is None
    _refused("email", services.get_user, db.session, "real\x00@test.example")
    assert services.authenticate(db.session, "real@test.example\x00", PASSWORD) is None
    db.session.commit()
    [event] = audit_events(action="login_failed")
    assert event.after == {"reason": "unknown_account"}
    assert services.count_users(db.session) == 1


def test_nul_byte_in_password(app, make_user):
    user = make_user("staff")
    assert services.authenticate(db.session, user.email, "correct horse\x00battery") is None
    services.set_password(db.session, "test", user, "nul\x00 inside the password")
    db.session.commit()
    assert services.authenticate(db.session, user.email, "nul\x00 inside the password").id == user.id
    assert services.authenticate(db.session, user.email, "nul") is None
