"""`itvsh ozg ...`: import the OZG catalogue, store the monthly snapshot of the tallies (until the
scheduled job of the Reports issue takes over) and rebuild the tallies.

The CLI is the operator: every command works in the ALL tenant scope, acts as "cli" in the audit
trail and commits once on success; a refusal rolls back (nothing is written) and exits non-zero.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from itvsh.core import audit
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.catalogue import CatalogueImportError, import_catalogue
from itvsh.projects.models import OzgSnapshot

CLI_ACTOR = "cli"


@click.group("ozg", cls=AppGroup, help="The OZG catalogue, status and monitoring snapshots.")
def ozg_cli():
    set_scope(db.session, ALL)  # the CLI is the operator: every tenant


@ozg_cli.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(csv_file: Path):
    """Import (upsert) the OZG catalogue; all or nothing, every bad line named."""
    try:
        result = import_catalogue(db.session, CLI_ACTOR, csv_file.read_bytes(), source=csv_file.name)
    except CatalogueImportError as exc:
        db.session.rollback()
        for line in exc.errors:
            click.echo(line, err=True)
        raise click.ClickException(
            f"{csv_file}: {len(exc.errors)} bad line(s); nothing was imported"
        ) from None
    db.session.commit()
    click.echo(f"{csv_file}: {result.summary()}")


@ozg_cli.command("snapshot")
@click.option(
    "--month",
    type=click.DateTime(["%Y-%m"]),
    default=None,
    help="The month to store, YYYY-MM (default: this month). A month already stored is kept.",
)
def snapshot_command(month):
    """Store the Land's and the Kreise's tallies as the snapshot of a month (idempotent)."""
    first = (month.date() if month else date.today()).replace(day=1)
    if first > date.today():
        raise click.ClickException(f"--month: {first:%Y-%m} lies in the future")
    if db.session.execute(select(OzgSnapshot.id).where(OzgSnapshot.month == first).limit(1)).first():
        click.echo(f"{first:%Y-%m}: a snapshot is stored already; nothing changed")
        return
    rows = ozg.take_snapshot(db.session, CLI_ACTOR, first)
    db.session.commit()
    click.echo(f"{first:%Y-%m}: snapshot stored ({rows} rows)")


@ozg_cli.command("recompute")
def recompute_command():
    """Rebuild every tally from the status rows (after a bulk change or to repair drift)."""
    rows = ozg.recompute_tallies(db.session)
    audit.record(db.session, CLI_ACTOR, "recompute", "ozg_tallies", None, after={"rows": rows})
    db.session.commit()
    click.echo(f"{rows} tally rows rebuilt")
