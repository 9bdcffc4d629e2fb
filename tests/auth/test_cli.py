"""`itvsh users ...`: creating, listing and deactivating accounts, issuing and revoking API tokens
from the command line -- refusals exit non-zero with a clear message, and every change is audited
with the actor "cli"."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from itvsh.auth import passwords, services
from itvsh.auth.models import ApiToken, User
from itvsh.core.audit import AuditEvent
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from tests.auth.helpers import PASSWORD, audit_events, translated

KIEL = "01002000"


def _create(runner, email, role, password, *extra):
    return runner.invoke(
        args=["users", "create", email, "--role", role, *extra, "--password-stdin"], input=password + "\n"
    )


def _counts() -> tuple[int, int]:
    return tuple(
        db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (User, AuditEvent)
    )


def _user(email: str) -> User | None:
    db.session.expire_all()
    return services.find_user(db.session, email)


def test_create_user(runner):
    result = _create(runner, "Cli.User@Test.Example", "staff", "a long enough password")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created cli.user@test.example (staff)"
    user = _user("cli.user@test.example")
    assert (user.role, user.municipality, user.active) == ("staff", None, True)
    assert passwords.verify_password(user.password_hash, "a long enough password")
    [event] = audit_events(action="create", entity="user")
    assert (event.actor, event.actor_id, event.entity_id) == ("cli", None, str(user.id))
    assert "a long enough password" not in result.output


def test_create_municipality_user(runner):
    ensure_municipality(db.session, KIEL)
    db.session.commit()
    result = _create(runner, "kiel@test.example", "municipality", "a long enough password", "--tenant", KIEL)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"created kiel@test.example (municipality, {KIEL})"
    assert _user("kiel@test.example").municipality.key == KIEL


def test_password_is_read_from_the_first_line_only(runner):
    result = runner.invoke(
        args=["users", "create", "lines@test.example", "--role", "auditor", "--password-stdin"],
        input="first line password\r\nsecond line\n",
    )
    assert result.exit_code == 0, result.output
    user = _user("lines@test.example")
    assert passwords.verify_password(user.password_hash, "first line password")


@pytest.mark.parametrize(
    ("args", "password", "field", "msgid", "variables"),
    [
        (
            ["short@test.example", "--role", "staff"],
            "elevenchars",
            "password",
            "The password must be at least %(n)d characters long.",
            {"n": 12},
        ),
        (
            ["nokey@test.example", "--role", "municipality"],
            PASSWORD,
            "tenant",
            "A municipality account must be bound to a municipality.",
            {},
        ),
        (
            ["ghost@test.example", "--role", "municipality", "--tenant", "99999999"],
            PASSWORD,
            "tenant",
            "No municipality has the key %(key)s.",
            {"key": "99999999"},
        ),
        (
            ["bound@test.example", "--role", "staff", "--tenant", KIEL],
            PASSWORD,
            "tenant",
            "Only municipality accounts are bound to a municipality.",
            {},
        ),
        (["not-an-address", "--role", "staff"], PASSWORD, "email", "This is not a valid email address.", {}),
    ],
)
def test_create_refusals(app, runner, args, password, field, msgid, variables):
    ensure_municipality(db.session, KIEL)
    db.session.commit()
    before = _counts()
    result = runner.invoke(args=["users", "create", *args, "--password-stdin"], input=password + "\n")
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: {field}: {translated(app, msgid, **variables)}"
    assert _counts() == before


def test_create_refuses_empty_stdin(runner):
    before = _counts()
    result = runner.invoke(
        args=["users", "create", "empty@test.example", "--role", "staff", "--password-stdin"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: password: ")
    assert _counts() == before


def test_create_refuses_duplicate_email(app, runner, make_user):
    make_user("staff", email="taken@test.example")
    before = _counts()
    result = _create(runner, "TAKEN@test.example", "auditor", "a long enough password")
    assert result.exit_code == 1
    expected = translated(app, "An account with this email address exists already.")
    assert result.output.strip() == f"Error: email: {expected}"
    assert _counts() == before
    assert _user("taken@test.example").role == "staff"


@pytest.mark.parametrize(
    "args",
    [
        ["users", "create", "x@test.example", "--role", "superuser", "--password-stdin"],
        ["users", "create", "x@test.example", "--password-stdin"],
        ["users", "create", "x@test.example", "--role", "staff"],
    ],
)
def test_create_usage_errors(runner, args):
    before = _counts()
    result = runner.invoke(args=args, input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert "Error" in result.output
    assert _counts() == before


def test_list_users(runner, make_user):
    make_user("staff", email="b-staff@test.example")
    make_user("municipality", email="a-kiel@test.example")
    gone = make_user("auditor", email="c-gone@test.example")
    services.deactivate_user(db.session, "test", gone)
    db.session.commit()
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"a-kiel@test.example\tmunicipality\t{KIEL}\tactive",
        "b-staff@test.example\tstaff\t-\tactive",
        "c-gone@test.example\tauditor\t-\tdeactivated",
    ]


def test_deactivate(app, runner, make_user):
    user = make_user("staff", email="leaving@test.example")
    token = services.issue_token(db.session, "test", user)
    db.session.commit()
    result = runner.invoke(args=["users", "deactivate", "LEAVING@test.example"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "deactivated leaving@test.example"
    user = _user("leaving@test.example")
    assert (user.active, user.session_version) == (False, 2)
    assert services.user_for_token(db.session, token) is None
    [event] = audit_events(action="update", entity_id=str(user.id))
    assert (event.actor, event.after["active"]) == ("cli", False)


def test_unknown_email_is_refused(app, runner):
    before = _counts()
    for command in ("deactivate", "token", "revoke-tokens"):
        result = runner.invoke(args=["users", command, "nobody@test.example"])
        assert result.exit_code == 1, (command, result.output)
        expected = translated(app, "No account has the email address %(email)s.", email="nobody@test.example")
        assert result.output.strip() == f"Error: email: {expected}"
    assert _counts() == before


def test_token_works_as_bearer_until_revoked(app, runner, make_user):
    user = make_user("municipality", email="script@test.example")
    result = runner.invoke(args=["users", "token", "script@test.example"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith(services.TOKEN_PREFIX)
    assert len(result.output.splitlines()) == 1
    [record] = db.session.execute(select(ApiToken)).scalars().all()
    assert record.token_hash == ApiToken.digest(token)
    assert record.user_id == user.id
    [issued] = audit_events(action="token_issued")
    assert (issued.actor, issued.entity_id) == ("cli", str(user.id))
    assert token not in issued.payload

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["email"] == "script@test.example"
    assert response.get_json()["tenant"] == KIEL

    result = runner.invoke(args=["users", "revoke-tokens", "script@test.example"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "revoked 1 token(s) of script@test.example"
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    [revoked] = audit_events(action="tokens_revoked")
    assert (revoked.actor, revoked.after) == ("cli", {"revoked": 1})


def test_each_token_is_new_and_revoke_counts_live_ones(runner, make_user):
    make_user("staff", email="two@test.example")
    first = runner.invoke(args=["users", "token", "two@test.example"]).output.strip()
    second = runner.invoke(args=["users", "token", "two@test.example"]).output.strip()
    assert first != second
    result = runner.invoke(args=["users", "revoke-tokens", "two@test.example"])
    assert result.output.strip() == "revoked 2 token(s) of two@test.example"
    result = runner.invoke(args=["users", "revoke-tokens", "two@test.example"])
    assert result.output.strip() == "revoked 0 token(s) of two@test.example"


def test_no_token_for_deactivated_account(app, runner, make_user):
    user = make_user("staff", email="inactive@test.example")
    services.deactivate_user(db.session, "test", user)
    db.session.commit()
    result = runner.invoke(args=["users", "token", "inactive@test.example"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: email: {translated(app, 'This account is deactivated.')}"
    assert db.session.execute(select(ApiToken)).scalars().all() == []


def test_every_cli_change_is_audited_as_cli(runner):
    _create(runner, "audited@test.example", "staff", PASSWORD)
    runner.invoke(args=["users", "token", "audited@test.example"])
    runner.invoke(args=["users", "revoke-tokens", "audited@test.example"])
    runner.invoke(args=["users", "deactivate", "audited@test.example"])
    events = audit_events(actor="cli")
    assert [event.action for event in events] == ["create", "token_issued", "tokens_revoked", "update"]
    user = _user("audited@test.example")
    assert {event.entity_id for event in events} == {str(user.id)}
    assert {event.address for event in events} == {""}
