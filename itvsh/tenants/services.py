"""Rules for tenants: the scope a user may see, membership (join, leave, the current-member check
later issues call), master data changes, and contacts. Functions flush, never commit, and audit."""

from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core import audit
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL
from itvsh.tenants.models import (
    LOCAL_KINDS,
    Membership,
    Municipality,
    MunicipalityContact,
    MunicipalityKind,
    key_problem,
)


def scope_for_user(session: Session, user) -> object:
    """What a user may see of tenants' private data: ALL for the federation and auditors; a
    municipality user its tenant, an Amt user the Amt and its Gemeinden, a Kreis user the Kreis only."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if user.role != Role.MUNICIPALITY:
        return ALL
    tenant = user.municipality
    ids = {tenant.id}
    if tenant.kind == MunicipalityKind.AMT:
        ids.update(session.execute(select(Municipality.id).where(Municipality.amt_id == tenant.id)).scalars())
    return frozenset(ids)


def get_by_key(session: Session, key: str) -> Municipality | None:
    if not key or len(key) > 9 or not key.isascii() or not key.isdigit():
        return None
    return session.execute(select(Municipality).where(Municipality.key == key)).scalar_one_or_none()


# --- membership -------------------------------------------------------------------------------


def current_members_query(on: date | None = None):
    """A subquery of the ids of the municipalities that are members on ``on`` (default today)."""
    day = on or date.today()
    return (
        select(Membership.municipality_id)
        .where(Membership.joined_on <= day)
        .where((Membership.left_on.is_(None)) | (Membership.left_on > day))
    )


def current_membership(session: Session, municipality_id: int, on: date | None = None) -> Membership | None:
    day = on or date.today()
    return session.execute(
        select(Membership)
        .where(Membership.municipality_id == municipality_id, Membership.joined_on <= day)
        .where((Membership.left_on.is_(None)) | (Membership.left_on > day))
    ).scalar_one_or_none()


def is_current_member(session: Session, municipality_id: int, on: date | None = None) -> bool:
    return current_membership(session, municipality_id, on) is not None


def require_current_member(session: Session, municipality: Municipality, on: date | None = None) -> None:
    """The one check later issues call before an allocation, a project participation or an assignment."""
    if not is_current_member(session, municipality.id, on):
        raise RuleViolation(
            _(
                "%(name)s is not a member of the federation on %(day)s.",
                name=municipality.name,
                day=(on or date.today()).isoformat(),
            ),
            "municipality",
        )


def join(session: Session, actor, municipality: Municipality, on: date, note: str = "") -> Membership:
    """Open a membership period on ``on``; refused while one is open or if it would overlap history."""
    periods = list(
        session.execute(select(Membership).where(Membership.municipality_id == municipality.id)).scalars()
    )
    for period in periods:
        if period.left_on is None:
            raise RuleViolation(
                _(
                    "%(name)s is a member already (since %(day)s).",
                    name=municipality.name,
                    day=period.joined_on.isoformat(),
                ),
                "joined_on",
            )
        if on < period.left_on:
            raise RuleViolation(
                _(
                    "The new membership must begin on or after %(day)s, when the last one ended.",
                    day=period.left_on.isoformat(),
                ),
                "joined_on",
            )
    membership = Membership(municipality=municipality, joined_on=on, note=(note or "")[:500])
    session.add(membership)
    session.flush()
    audit.record(
        session,
        actor,
        "join",
        "municipality",
        municipality.key,
        after={"joined_on": on.isoformat(), "note": membership.note},
    )
    return membership


def join_many(session: Session, actor, municipalities: list[Municipality], on: date, note: str = "") -> int:
    """Open memberships for many non-members at once (a founding, a bulk admission): one audit event
    with the keys, not one per row. Members already in are refused like :func:`join` refuses them."""
    ids = [m.id for m in municipalities]
    open_ids = set(
        session.execute(
            select(Membership.municipality_id).where(
                Membership.municipality_id.in_(ids), Membership.left_on.is_(None)
            )
        ).scalars()
    )
    if open_ids:
        names = ", ".join(sorted(m.key for m in municipalities if m.id in open_ids)[:10])
        raise RuleViolation(_("Already members: %(keys)s.", keys=names), "joined_on")
    for municipality in municipalities:
        session.add(Membership(municipality=municipality, joined_on=on, note=(note or "")[:500]))
    session.flush()
    audit.record(
        session,
        actor,
        "join",
        "municipalities",
        None,
        after={"joined_on": on.isoformat(), "count": len(ids), "keys": sorted(m.key for m in municipalities)},
    )
    return len(ids)


def leave(session: Session, actor, municipality: Municipality, on: date, note: str = "") -> Membership:
    """Close the open membership period on ``on`` (the first day no longer a member)."""
    open_period = session.execute(
        select(Membership).where(Membership.municipality_id == municipality.id, Membership.left_on.is_(None))
    ).scalar_one_or_none()
    if open_period is None:
        raise RuleViolation(_("%(name)s is not a member.", name=municipality.name), "left_on")
    if on < open_period.joined_on:
        raise RuleViolation(
            _("Leaving must not be before joining (%(day)s).", day=open_period.joined_on.isoformat()),
            "left_on",
        )
    open_period.left_on = on
    if note:
        open_period.note = note[:500]
    session.flush()
    audit.record(
        session,
        actor,
        "leave",
        "municipality",
        municipality.key,
        before={"joined_on": open_period.joined_on.isoformat()},
        after={"left_on": on.isoformat()},
    )
    return open_period


# --- master data ------------------------------------------------------------------------------

MASTER_FIELDS = (
    "name",
    "kind",
    "ars",
    "kreis",
    "amt",
    "population",
    "population_date",
    "area_km2",
    "postcode",
)


def _parent(session: Session, key: str | None, kind: MunicipalityKind, field: str) -> Municipality | None:
    if not key:
        return None
    parent = get_by_key(session, key)
    if parent is None or parent.kind != kind:
        label = _("Kreis") if kind == MunicipalityKind.KREIS else _("Amt")
        raise RuleViolation(_("There is no %(kind)s with the key %(key)s.", kind=label, key=key), field)
    return parent


def _apply(session: Session, municipality: Municipality, data: dict) -> None:
    kind = MunicipalityKind(data.get("kind", municipality.kind))
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name:
            raise RuleViolation(_("Please enter a name."), "name")
        municipality.name = name
    municipality.kind = kind.value
    if "ars" in data:
        ars = data["ars"] or None
        if ars is not None and (
            not ars.isascii()
            or not ars.isdigit()
            or len(ars) != 12
            or not ars.startswith(municipality.key[:5])
        ):
            raise RuleViolation(_("The ARS has 12 digits and begins with the Kreis key."), "ars")
        if (
            ars is not None
            and ars != municipality.ars
            and session.execute(select(Municipality.id).where(Municipality.ars == ars)).first()
        ):
            raise RuleViolation(_("Another municipality has the ARS %(ars)s.", ars=ars), "ars")
        municipality.ars = ars
    if "kreis" in data:
        municipality.kreis = _parent(session, data["kreis"], MunicipalityKind.KREIS, "kreis")
    if "amt" in data:
        municipality.amt = _parent(session, data["amt"], MunicipalityKind.AMT, "amt")
    if kind in (MunicipalityKind.KREIS, MunicipalityKind.KREISFREIE_STADT) and municipality.kreis is not None:
        raise RuleViolation(_("A Kreis or kreisfreie Stadt belongs to no Kreis."), "kreis")
    if kind not in LOCAL_KINDS and municipality.amt is not None:
        raise RuleViolation(_("Only a Gemeinde or Stadt belongs to an Amt."), "amt")
    if "population" in data:
        population = data["population"]
        if population is not None and kind not in LOCAL_KINDS:
            raise RuleViolation(
                _("Population belongs to Gemeinden; an Amt's or Kreis's is their sum."), "population"
            )
        if population is not None and population < 0:
            raise RuleViolation(_("The population must not be negative."), "population")
        municipality.population = population
    for field in ("population_date", "area_km2", "postcode"):
        if field in data:
            setattr(municipality, field, data[field])
    if municipality.postcode and (not municipality.postcode.isdigit() or len(municipality.postcode) != 5):
        raise RuleViolation(_("A postcode has five digits."), "postcode")


def create_municipality(session: Session, actor, *, key: str, kind: str, name: str, **data) -> Municipality:
    """Create a tenant by hand (the import creates the official ones)."""
    try:
        kind = MunicipalityKind(kind)
    except ValueError:
        raise RuleViolation(_("Unknown kind %(kind)s.", kind=kind), "kind") from None
    problem = key_problem(key or "", kind)
    if problem:
        raise RuleViolation(_("The official key is not valid: %(problem)s.", problem=problem), "key")
    if get_by_key(session, key) is not None:
        raise RuleViolation(_("A municipality with the key %(key)s exists already.", key=key), "key")
    municipality = Municipality(key=key, kind=kind.value, name="")
    _apply(session, municipality, {"name": name, "kind": kind.value, **data})
    session.add(municipality)
    session.flush()
    audit.record(session, actor, "create", "municipality", key, after=municipality.public_view())
    return municipality


def update_municipality(session: Session, actor, municipality: Municipality, **data) -> Municipality:
    """Change master data (not the key: it is the identity)."""
    unknown = set(data) - set(MASTER_FIELDS)
    if unknown:
        raise RuleViolation(
            _("These fields cannot be changed: %(fields)s.", fields=", ".join(sorted(unknown))),
            sorted(unknown)[0],
        )
    if "kind" in data:
        try:
            kind = MunicipalityKind(data["kind"])
        except ValueError:
            raise RuleViolation(_("Unknown kind %(kind)s.", kind=data["kind"]), "kind") from None
        if key_problem(municipality.key, kind):
            raise RuleViolation(
                _("The kind does not fit the official key %(key)s.", key=municipality.key), "kind"
            )
    before = municipality.public_view()
    _apply(session, municipality, data)
    session.flush()
    after = municipality.public_view()
    if after != before:
        changed = {k for k in after if after[k] != before[k]}
        audit.record(
            session,
            actor,
            "update",
            "municipality",
            municipality.key,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return municipality


# --- contacts (tenant-owned) ------------------------------------------------------------------

CONTACT_FIELDS = ("role", "name", "email", "phone", "address", "website")


def contact_view(contact: MunicipalityContact) -> dict:
    return {field: getattr(contact, field) for field in CONTACT_FIELDS}


def save_contact(session: Session, actor, contact: MunicipalityContact, before: dict | None) -> None:
    """Check and audit a contact whose fields a form has set; ``before`` is None for a new one."""
    if not (contact.name or contact.email or contact.phone or contact.role):
        raise RuleViolation(
            _("A contact needs at least a name, a role, an email address or a phone number."), "name"
        )
    if contact.email and ("@" not in contact.email or " " in contact.email.strip()):
        raise RuleViolation(_("This is not a valid email address."), "email")
    if before is None:
        session.add(contact)
    session.flush()
    tenant = {"tenant": contact.municipality.key}
    after = contact_view(contact)
    if before is None:
        audit.record(session, actor, "create", "municipality_contact", contact, after={**tenant, **after})
    elif after != before:
        changed = [k for k in after if after[k] != before[k]]
        audit.record(
            session,
            actor,
            "update",
            "municipality_contact",
            contact,
            before={**tenant, **{k: before[k] for k in changed}},
            after={**tenant, **{k: after[k] for k in changed}},
        )


def delete_contact(session: Session, actor, contact: MunicipalityContact) -> None:
    audit.record(
        session,
        actor,
        "delete",
        "municipality_contact",
        contact.id,
        before={"tenant": contact.municipality.key, **contact_view(contact)},
    )
    session.delete(contact)
    session.flush()
