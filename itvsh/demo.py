"""`itvsh demo`: demo data from the real, shipped reference data, loaded idempotently.

All 1,201 tenants from the Destatis list (through the real importer), memberships for most of
them since the federation's founding, a few contacts, and one login per role — for the
municipality role a kreisfreie Stadt, a small Gemeinde, an Amt and a Kreis. It refuses to run
in production: the demo passwords are public.
"""

from __future__ import annotations

from datetime import date
from importlib import resources

import click
from flask import current_app
from sqlalchemy import func, select

from itvsh.auth import services as auth_services
from itvsh.core.tenancy import ALL, set_scope
from itvsh.tenants import services as tenant_services
from itvsh.tenants.importer import import_municipalities
from itvsh.tenants.models import Membership, Municipality, MunicipalityContact

DEMO_ACTOR = "demo"
FOUNDED = date(2019, 1, 1)
DEMO_LOGINS = (
    ("admin@itvsh.example", "admin", None, "demo-admin-passwort"),
    ("staff@itvsh.example", "staff", None, "demo-staff-passwort"),
    ("auditor@itvsh.example", "auditor", None, "demo-auditor-passwort"),
    ("kiel@itvsh.example", "municipality", "01002000", "demo-kiel-passwort"),  # kreisfreie Stadt
    ("krummwisch@itvsh.example", "municipality", "01058093", "demo-krummwisch-passwort"),  # small Gemeinde
    ("achterwehr@itvsh.example", "municipality", "010585803", "demo-achterwehr-passwort"),  # Amt
    ("rd-eck@itvsh.example", "municipality", "01058", "demo-rd-eck-passwort"),  # Kreis
)
# Not (yet) members in the demo, so the difference shows: every 12th Gemeinde by key, and one that
# left and rejoined.
REJOINED = "01058126"  # Ottendorf


def shipped_list() -> bytes:
    return resources.files("itvsh.data").joinpath("sh_municipalities.csv").read_bytes()


def ensure_municipality(session, key: str) -> tuple[Municipality, bool]:
    """The tenant with ``key``, importing the shipped list first if it is not there yet."""
    municipality = tenant_services.get_by_key(session, key)
    if municipality is not None:
        return municipality, False
    import_municipalities(session, DEMO_ACTOR, shipped_list(), source="sh_municipalities.csv")
    municipality = tenant_services.get_by_key(session, key)
    if municipality is None:
        raise click.ClickException(f"{key} is not in the shipped municipality list")
    return municipality, True


def load_demo(session) -> list[str]:
    """Create what is missing; return what was created (empty on a second run)."""
    set_scope(session, ALL)
    created = []
    if session.execute(select(func.count()).select_from(Municipality)).scalar_one() < 1201:
        result = import_municipalities(session, DEMO_ACTOR, shipped_list(), source="sh_municipalities.csv")
        created.append(f"{result.created} municipalities")
    if session.execute(select(func.count()).select_from(Membership)).scalar_one() == 0:
        municipalities = session.execute(select(Municipality).order_by(Municipality.key)).scalars().all()
        founders = [
            m
            for index, m in enumerate(municipalities)
            if not (m.is_local and index % 12 == 5 and m.key != "01002000")
        ]
        joined = tenant_services.join_many(session, DEMO_ACTOR, founders, FOUNDED)
        ottendorf = tenant_services.get_by_key(session, REJOINED)
        tenant_services.leave(session, DEMO_ACTOR, ottendorf, date(2021, 1, 1))
        tenant_services.join(session, DEMO_ACTOR, ottendorf, date(2023, 7, 1))
        created.append(f"{joined} memberships")
    if session.execute(select(func.count()).select_from(MunicipalityContact)).scalar_one() == 0:
        for key, role, name, email in (
            ("01002000", "OZG-Koordination", "Digitalisierungsbüro Kiel", "ozg@kiel.example"),
            ("01058093", "Bürgermeisterin", "Gemeinde Krummwisch", "buergermeisterin@krummwisch.example"),
            (
                "010585803",
                "Amtsverwaltung",
                "Amt Achterwehr, Digitalisierung",
                "digital@amt-achterwehr.example",
            ),
            ("01058", "Kreisverwaltung", "Kreis Rendsburg-Eckernförde, IT", "it@kreis-rd.example"),
        ):
            municipality = tenant_services.get_by_key(session, key)
            contact = MunicipalityContact(municipality=municipality, role=role, name=name, email=email)
            tenant_services.save_contact(session, DEMO_ACTOR, contact, None)
        created.append("4 contacts")
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
    click.echo(f"demo data: {', '.join(created) if created else 'nothing to do (all there)'}")
    click.echo("demo logins (email / password / role):")
    for email, role, tenant, password in DEMO_LOGINS:
        click.echo(f"  {email:<26} {password:<26} {role}{' ' + tenant if tenant else ''}")
