"""`itvsh audit verify`: prove to an auditor that the audit trail is intact."""

from __future__ import annotations

import click

from itvsh.core.audit import verify_chain
from itvsh.extensions import db


@click.group("audit", help="The audit trail.")
def audit_cli():
    pass


@audit_cli.command("verify")
def verify():
    """Check the whole hash chain; exit 0 with the head if intact, exit 1 naming the first bad event."""
    result = verify_chain(db.session)
    if result.ok:
        click.echo(f"audit trail intact: {result.count} events, chain head {result.head}")
        return
    click.echo(
        f"audit trail BROKEN at event #{result.bad_seq}: {result.problem} "
        f"({result.count} events verified before it)",
        err=True,
    )
    raise SystemExit(1)
