"""`itvsh tenants ...`: import the official list, and membership from the command line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.importer import TenantImportError, import_municipalities

CLI_ACTOR = "cli"


@click.group("tenants", help="Member municipalities.")
def tenants_cli():
    set_scope(db.session, ALL)  # the CLI is the operator: every tenant


@tenants_cli.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(csv_file: Path):
    """Import (upsert) the official municipality list; all or nothing, every bad line named."""
    try:
        result = import_municipalities(db.session, CLI_ACTOR, csv_file.read_bytes(), source=csv_file.name)
    except TenantImportError as exc:
        db.session.rollback()
        for line in exc.errors:
            click.echo(line, err=True)
        raise click.ClickException(
            f"{csv_file}: {len(exc.errors)} bad line(s); nothing was imported"
        ) from None
    db.session.commit()
    click.echo(f"{csv_file}: {result.summary()}")


def _change_membership(change, key: str, day, done: str) -> None:
    """Run one membership service (join or leave) for ``key`` on ``day`` (default today), commit once."""
    municipality = services.get_by_key(db.session, key)
    if municipality is None:
        raise click.ClickException(f"no municipality has the key {key}")
    try:
        change(db.session, CLI_ACTOR, municipality, day.date() if day else date.today())
        db.session.commit()
    except RuleViolation as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    click.echo(f"{key} {done}")


ON_OPTION = click.option(
    "--on", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Date (default: today)."
)


@tenants_cli.command("join")
@click.argument("key")
@ON_OPTION
def join_command(key, day):
    """Record that a municipality joined the federation."""
    _change_membership(services.join, key, day, "joined")


@tenants_cli.command("leave")
@click.argument("key")
@ON_OPTION
def leave_command(key, day):
    """Record that a municipality left the federation."""
    _change_membership(services.leave, key, day, "left")
