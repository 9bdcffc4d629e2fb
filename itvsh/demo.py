"""`itvsh demo`: demo data from the real, shipped reference data, loaded idempotently.

It creates one login per role. It refuses to run in production: the demo passwords are public.
"""

from __future__ import annotations

import csv
from importlib import resources

import click
from flask import current_app
from sqlalchemy import select

from itvsh.auth import services as auth_services
from itvsh.core import audit
from itvsh.tenants.models import Municipality, MunicipalityKind

DEMO_ACTOR = "demo"
DEMO_TENANT_AGS = "01002000"  # Kiel, Landeshauptstadt
DEMO_LOGINS = (
    ("admin@itvsh.example", "admin", None, "demo-admin-passwort"),
    ("staff@itvsh.example", "staff", None, "demo-staff-passwort"),
    ("auditor@itvsh.example", "auditor", None, "demo-auditor-passwort"),
    ("kiel@itvsh.example", "municipality", DEMO_TENANT_AGS, "demo-kiel-passwort"),
)
_KIND = {
    "kreisfreie Stadt": MunicipalityKind.KREISFREIE_STADT,
    "Stadt": MunicipalityKind.STADT,
    "Gemeinde": MunicipalityKind.GEMEINDE,
}


def shipped_municipality_rows():
    """Rows of the shipped Destatis list (itvsh/data/sh_municipalities.csv)."""
    with resources.files("itvsh.data").joinpath("sh_municipalities.csv").open(encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def ensure_municipality(session, ags: str) -> tuple[Municipality, bool]:
    existing = session.execute(select(Municipality).where(Municipality.key == ags)).scalar_one_or_none()
    if existing is not None:
        return existing, False
    row = next((r for r in shipped_municipality_rows() if r["ags"] == ags), None)
    if row is None:
        raise click.ClickException(f"AGS {ags} is not in the shipped municipality list")
    municipality = Municipality(key=row["ags"], name=row["name"], kind=_KIND[row["gemeindetyp"]].value)
    session.add(municipality)
    session.flush()
    audit.record(
        session,
        DEMO_ACTOR,
        "create",
        "municipality",
        municipality,
        after={"key": municipality.key, "name": municipality.name, "kind": municipality.kind},
    )
    return municipality, True


def load_demo(session) -> list[str]:
    """Create what is missing; return what was created (empty on a second run)."""
    created = []
    _, new = ensure_municipality(session, DEMO_TENANT_AGS)
    if new:
        created.append(f"municipality {DEMO_TENANT_AGS}")
    for email, role, tenant, password in DEMO_LOGINS:
        if auth_services.find_user(session, email) is None:
            auth_services.create_user(
                session, DEMO_ACTOR, email=email, role=role, password=password, tenant_key=tenant
            )
            created.append(f"user {email}")
    return created


@click.command("demo")
@click.option("--allow-production", is_flag=True, help="Load the demo even with ITVSH_ENV=production.")
def demo_command(allow_production):
    """Load demo data (idempotent) and print the demo logins."""
    from itvsh.extensions import db

    if current_app.config["ITVSH_ENV"] == "production" and not allow_production:
        raise click.ClickException(
            "refusing to load demo accounts with public passwords in production "
            "(ITVSH_ENV=production); pass --allow-production if you mean it"
        )
    created = load_demo(db.session)
    db.session.commit()
    click.echo(
        f"demo data: {len(created)} created" + (f" ({', '.join(created)})" if created else ", nothing to do")
    )
    click.echo("demo logins (email / password / role):")
    for email, role, tenant, password in DEMO_LOGINS:
        click.echo(f"  {email:<24} {password:<24} {role}{' ' + tenant if tenant else ''}")
