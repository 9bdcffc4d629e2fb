"""`itvsh staff ...`: the staff register, secondments, assignments and capacity from the command line.

The CLI is the operator: every command works in the ALL tenant scope, acts as "cli" in the audit
trail and changes data only through the staffing services. A command commits once on success; a
refusal rolls back (nothing is written) and exits non-zero with the refused option and the reason.
Shares are typed in percent (``50``, ``33,3``), money as text in the app's default locale.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from itvsh.auth.services import normalize_email
from itvsh.core.money import MoneyError, format_money, parse_money
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services
from itvsh.staffing.models import COST_BEARER_LABELS, INSTRUMENT_LABELS, StaffMember, format_fte
from itvsh.tenants import services as tenant_services

CLI_ACTOR = "cli"
MAX_CAPACITY_MONTHS = 120  # ten years, as in the API

staff_cli = AppGroup("staff", help="Seconded staff, secondments and assignments.")

DAY = click.DateTime(["%Y-%m-%d"])


def _operator() -> None:
    set_scope(db.session, ALL)  # the CLI is the operator: every tenant


def _fail(exc: RuleViolation, options: dict[str, str]):
    """Roll the unit of work back and exit with the option (or field) at fault and the reason."""
    db.session.rollback()
    field = options.get(exc.field, exc.field) if exc.field else None
    raise click.ClickException(f"{field}: {exc.message}" if field else exc.message)


def _person(email: str) -> StaffMember:
    member = db.session.execute(
        select(StaffMember).where(StaffMember.work_email == normalize_email(email))
    ).scalar_one_or_none()
    if member is None:
        raise click.ClickException(f"EMAIL: no person in the staff register has the work email {email}")
    return member


def _percent(text: str, option: str = "--fte") -> int:
    """A share typed in percent (``50``, ``33,3``, ``12.5 %``) as per mille; the service checks 1..1000."""
    raw = (text or "").strip().removesuffix("%").strip().replace(",", ".")
    try:
        value = Decimal(raw) if len(raw) <= 10 else None
        whole = value is not None and value.is_finite() and (value * 10) % 1 == 0
    except InvalidOperation:
        whole = False
    if not whole:
        raise click.ClickException(f"{option}: “{text}” is not a share in percent (e.g. 50 or 33,3)")
    return int(value * 10)


def _day(value) -> date | None:
    return value.date() if value is not None else None


@staff_cli.command("list")
def list_staff():
    """List the staff register: id, name, work email, pseudonym, home authority, annual cost."""
    _operator()
    locale = current_app.config.get("BABEL_DEFAULT_LOCALE", "de")
    for member in db.session.execute(
        select(StaffMember).order_by(StaffMember.name, StaffMember.id)
    ).scalars():
        cost = format_money(member.annual_cost_cents, locale) if member.annual_cost_cents is not None else "-"
        click.echo(
            f"{member.id}\t{member.name}\t{member.work_email}\t{member.pseudonym}\t"
            f"{member.home_authority or '-'}\t{cost}"
        )


@staff_cli.command("add")
@click.argument("name")
@click.argument("email")
@click.option("--home-authority", default="", help="Stammdienststelle (home authority).")
@click.option("--annual-cost", default=None, help="Personnel cost of one full-time year, e.g. 80.000,00.")
def add_staff(name, email, home_authority, annual_cost):
    """Add a person to the staff register."""
    _operator()
    cents = None
    if annual_cost is not None:
        try:
            cents = parse_money(annual_cost, current_app.config.get("BABEL_DEFAULT_LOCALE", "de"))
        except MoneyError as exc:
            raise click.ClickException(f"--annual-cost: {exc}") from None
    try:
        member = services.create_staff_member(
            db.session,
            CLI_ACTOR,
            name=name,
            work_email=email,
            home_authority=home_authority,
            annual_cost_cents=cents,
        )
        db.session.commit()
    except RuleViolation as exc:
        _fail(exc, {"name": "NAME", "work_email": "EMAIL", "annual_cost_cents": "--annual-cost"})
    click.echo(f"added {member.name} <{member.work_email}> as {member.pseudonym} (id {member.id})")


@staff_cli.command("second")
@click.argument("email")
@click.option("--instrument", required=True, type=click.Choice([str(i) for i in INSTRUMENT_LABELS]))
@click.option("--from", "starts_on", required=True, type=DAY, help="First day (YYYY-MM-DD).")
@click.option("--to", "ends_on", default=None, type=DAY, help="Last day (YYYY-MM-DD); none: open end.")
@click.option("--fte", required=True, help="Share of full time in percent, e.g. 100 or 50.")
@click.option("--cost-bearer", required=True, type=click.Choice([str(c) for c in COST_BEARER_LABELS]))
@click.option("--legal-reference", default="", help="e.g. § 14 LBG.")
def second(email, instrument, starts_on, ends_on, fte, cost_bearer, legal_reference):
    """Record a secondment of a person (a person's secondments never overlap)."""
    _operator()
    member = _person(email)
    share = _percent(fte)
    try:
        secondment = services.create_secondment(
            db.session,
            CLI_ACTOR,
            staff_member=member,
            instrument=instrument,
            starts_on=_day(starts_on),
            ends_on=_day(ends_on),
            fte=share,
            cost_bearer=cost_bearer,
            legal_reference=legal_reference,
        )
        db.session.commit()
    except RuleViolation as exc:
        _fail(
            exc,
            {
                "starts_on": "--from",
                "ends_on": "--to",
                "fte": "--fte",
                "instrument": "--instrument",
                "cost_bearer": "--cost-bearer",
                "legal_reference": "--legal-reference",
                "staff_member": "EMAIL",
            },
        )
    click.echo(f"seconded: {secondment} [id {secondment.id}]")


@staff_cli.command("assign")
@click.argument("email")
@click.option("--to", "key", required=True, help="Official key of the member (AGS, Amt or Kreis key).")
@click.option("--from", "starts_on", required=True, type=DAY, help="First day (YYYY-MM-DD).")
@click.option("--until", "ends_on", default=None, type=DAY, help="Last day (YYYY-MM-DD); none: open end.")
@click.option("--fte", required=True, help="Share of full time in percent, e.g. 50.")
@click.option("--role", default="", help="Role or description of the work.")
def assign(email, key, starts_on, ends_on, fte, role):
    """Assign a person to a member (inside a secondment, never over the person's share)."""
    _operator()
    member = _person(email)
    municipality = tenant_services.get_by_key(db.session, key.strip())
    if municipality is None:
        raise click.ClickException(f"--to: there is no municipality with the key {key}")
    share = _percent(fte)
    try:
        assignment = services.create_assignment(
            db.session,
            CLI_ACTOR,
            staff_member=member,
            municipality=municipality,
            starts_on=_day(starts_on),
            ends_on=_day(ends_on),
            fte=share,
            role=role,
        )
        db.session.commit()
    except RuleViolation as exc:
        _fail(
            exc,
            {
                "municipality": "--to",
                "starts_on": "--from",
                "ends_on": "--until",
                "fte": "--fte",
                "role": "--role",
                "staff_member": "EMAIL",
            },
        )
    click.echo(f"assigned: {assignment} ({format_fte(assignment.fte)}) [id {assignment.id}]")


@staff_cli.command("capacity")
@click.argument("email")
@click.option("--from", "start", required=True, type=DAY, help="First month (YYYY-MM-DD).")
@click.option("--to", "end", required=True, type=DAY, help="Last month (YYYY-MM-DD).")
def capacity(email, start, end):
    """Print a person's capacity month by month: available, assigned, state."""
    _operator()
    member = _person(email)
    start, end = start.date(), end.date()
    for option, day in (("--from", start), ("--to", end)):
        if not services.MIN_DAY <= day <= services.MAX_DAY:
            raise click.ClickException(f"{option}: the day must lie between 2000 and 2100")
    if end < start:
        raise click.ClickException("--to: the last day cannot be before the first day")
    if (end.year - start.year) * 12 + end.month - start.month + 1 > MAX_CAPACITY_MONTHS:
        raise click.ClickException("--to: the range may cover at most ten years (120 months)")
    [person] = services.capacity(db.session, start, end, staff_members=[member])
    click.echo(f"{member.name} <{member.work_email}>")
    for month in person.months:
        click.echo(
            f"{month.month.strftime('%Y-%m')}\tavailable {format_fte(month.available)}\t"
            f"assigned {format_fte(month.assigned)}\t{month.state}"
        )
    db.session.rollback()  # read only: end the transaction
