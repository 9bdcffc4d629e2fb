"""`itvsh users ...`: accounts from the command line (audited with the actor "cli")."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from itvsh.auth import services
from itvsh.auth.models import User
from itvsh.auth.roles import Role
from itvsh.core.rules import RuleViolation
from itvsh.extensions import db

CLI_ACTOR = "cli"


@click.group("users", help="Manage accounts.")
def users_cli():
    pass


def _fail(exc: RuleViolation):
    db.session.rollback()
    field = f"{exc.field}: " if exc.field else ""
    raise click.ClickException(f"{field}{exc.message}")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--tenant", "tenant_key", default=None, help="Official key of the municipality (municipality role)."
)
@click.option(
    "--password-stdin",
    is_flag=True,
    required=True,
    help="Read the password from standard input (first line), so it never shows in the process list.",
)
def create_user(email, role, tenant_key, password_stdin):
    """Create an account."""
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = services.create_user(
            db.session, CLI_ACTOR, email=email, role=role, password=password, tenant_key=tenant_key
        )
        db.session.commit()
    except RuleViolation as exc:
        _fail(exc)
    click.echo(
        f"created {user.email} ({user.role}{', ' + user.municipality.key if user.municipality else ''})"
    )


@users_cli.command("list")
def list_users():
    """List accounts: email, role, tenant, active."""
    users = db.session.execute(select(User).order_by(User.email)).scalars()
    for user in users:
        tenant = user.municipality.key if user.municipality else "-"
        click.echo(f"{user.email}\t{user.role}\t{tenant}\t{'active' if user.active else 'deactivated'}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate(email):
    """Deactivate an account: it cannot log in, its sessions and tokens end."""
    try:
        user = services.get_user(db.session, email)
        services.deactivate_user(db.session, CLI_ACTOR, user)
        db.session.commit()
    except RuleViolation as exc:
        _fail(exc)
    click.echo(f"deactivated {user.email}")


@users_cli.command("token")
@click.argument("email")
def token(email):
    """Issue a new API token and print it once (only its hash is stored)."""
    try:
        user = services.get_user(db.session, email)
        value = services.issue_token(db.session, CLI_ACTOR, user)
        db.session.commit()
    except RuleViolation as exc:
        _fail(exc)
    click.echo(value)


@users_cli.command("revoke-tokens")
@click.argument("email")
def revoke_tokens(email):
    """Revoke every API token of an account."""
    try:
        user = services.get_user(db.session, email)
        count = services.revoke_tokens(db.session, CLI_ACTOR, user)
        db.session.commit()
    except RuleViolation as exc:
        _fail(exc)
    click.echo(f"revoked {count} token(s) of {user.email}")
