"""The OZG status services: report a municipality's status of a service (staff for anyone, a
municipality user for its own), mark a service's responsibility, keep the tallies current, and
store the monthly snapshots for the trend.

Which municipalities: Gemeinden, Städte and kreisfreie Städte (the 1,106 of the official list) —
they offer the services; a status can be reported for a current member only. A kreisfreie Stadt is
its own Kreis in the figures. Which services: the municipal ones (``responsibility`` municipal);
a service of the Land or the Bund does not count in municipal progress.

The tallies (``OzgTally``) count status rows per maturity level 1..4 for the Land (scope id 0),
each Kreis and each municipality, over all services (topic "") and per Themenfeld, with the number
of possible (municipality, service) pairs. :func:`set_status` moves one count per tally row in the
same transaction as the change (six rows: municipality, Kreis, Land x all, Themenfeld);
:func:`recompute_tallies` rebuilds them all from the status rows (after an import, a change of
responsibility or a bulk load).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from itvsh.auth.roles import Role
from itvsh.core import audit
from itvsh.core.audit import actor_label
from itvsh.core.db import utcnow
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import in_scope
from itvsh.projects.models import (
    COMPLIANT_FROM,
    MATURITY_RANGE,
    MAX_LEVEL,
    MaturityModel,
    OzgService,
    OzgSnapshot,
    OzgStatus,
    OzgStatusChange,
    OzgTally,
    Project,
    Responsibility,
    TallyScope,
)
from itvsh.tenants.models import LOCAL_KINDS, Municipality, MunicipalityKind
from itvsh.tenants.services import require_current_member

LAND_ID = 0
LEVELS = tuple(range(1, MAX_LEVEL + 1))
LOCAL_KIND_VALUES = tuple(kind.value for kind in LOCAL_KINDS)


def kreis_id_of(municipality: Municipality) -> int | None:
    """The Kreis a municipality counts in (a kreisfreie Stadt is its own)."""
    if municipality.kind == MunicipalityKind.KREISFREIE_STADT:
        return municipality.id
    return municipality.kreis_id


def _tally_keys(municipality: Municipality, topic: str) -> list[tuple[str, int, str]]:
    keys = []
    for scope, scope_id in (
        (TallyScope.LAND.value, LAND_ID),
        (TallyScope.KREIS.value, kreis_id_of(municipality)),
        (TallyScope.MUNICIPALITY.value, municipality.id),
    ):
        if scope_id is None:
            continue
        keys.append((scope, scope_id, ""))
        keys.append((scope, scope_id, topic))
    return keys


def may_report(session: Session, user, municipality: Municipality) -> bool:
    """Staff and admins report for anyone; a municipality user for the municipalities in its scope."""
    role = getattr(user, "role", None)
    if role in (Role.ADMIN, Role.STAFF):
        return True
    return role == Role.MUNICIPALITY and in_scope(session, municipality.id)


def _check_url(url) -> str:
    if url is not None and not isinstance(url, str):
        raise RuleViolation(_("Please enter a web address."), "url")
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if len(url) > 500 or parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise RuleViolation(
            _("Please enter a full web address starting with https:// (at most 500 characters)."), "url"
        )
    return url


def _check_maturity(maturity, model: str) -> int:
    if model not in {m.value for m in MaturityModel}:
        raise RuleViolation(_("Unknown maturity model."), "maturity_model")
    low, high = MATURITY_RANGE[MaturityModel(model)]
    if isinstance(maturity, bool) or not isinstance(maturity, int) or not low <= maturity <= high:
        raise RuleViolation(
            _("The maturity must be a whole number from %(low)s to %(high)s.", low=low, high=high), "maturity"
        )
    return maturity


@dataclass
class StatusResult:
    status: OzgStatus | None  # None: nothing known any more (the row was removed)
    changed: bool


def set_status(
    session: Session,
    actor,
    municipality: Municipality,
    service: OzgService,
    *,
    maturity: int,
    maturity_model: str = MaturityModel.V1.value,
    online_since: date | None = None,
    url: str = "",
    project: Project | None = None,
    efa: bool = False,
) -> StatusResult:
    """Record what is known of ``municipality``'s ``service``; keeps history and tallies current
    and audits the change. Maturity 0 with nothing else known removes the row (no row = 0)."""
    if not isinstance(municipality, Municipality) or municipality.kind not in LOCAL_KIND_VALUES:
        raise RuleViolation(_("OZG status is reported for Gemeinden and Städte."), "municipality")
    if not isinstance(service, OzgService):
        raise RuleViolation(_("Unknown OZG service."), "service")
    if getattr(actor, "role", None) is not None and not may_report(session, actor, municipality):
        raise RuleViolation(_("You may report the status of your own municipality only."), "municipality")
    require_current_member(session, municipality)
    maturity = _check_maturity(maturity, maturity_model)
    url = _check_url(url)
    if online_since is not None and (
        not isinstance(online_since, date) or not date(2000, 1, 1) <= online_since <= date.today()
    ):
        raise RuleViolation(_("Online since must be a day between 2000 and today."), "online_since")
    if project is not None and not isinstance(project, Project):
        raise RuleViolation(_("Unknown project."), "project")
    if not isinstance(efa, bool):
        raise RuleViolation(_("Please answer yes or no."), "efa")
    row = session.execute(
        select(OzgStatus)
        .where(OzgStatus.municipality_id == municipality.id, OzgStatus.service_id == service.id)
        .with_for_update()
    ).scalar_one_or_none()
    before = row.audit_view() if row is not None else None
    old_level = row.maturity if row is not None else 0
    values = {
        "maturity": maturity,
        "maturity_model": maturity_model,
        "online_since": online_since,
        "url": url,
        "project_id": getattr(project, "id", None),
        "efa": efa,
    }
    known = maturity > 0 or online_since is not None or url or project is not None or efa
    if row is not None and all(getattr(row, name) == value for name, value in values.items()):
        return StatusResult(row, False)
    if row is None and not known:
        return StatusResult(None, False)
    stamp = {
        "changed_by_id": getattr(actor, "id", None),
        "changed_by": actor_label(actor),
        "changed_at": utcnow(),
    }
    if not known:
        session.delete(row)
        row = None
    elif row is None:
        row = OzgStatus(municipality_id=municipality.id, service_id=service.id, **values, **stamp)
        session.add(row)
    else:
        for name, value in {**values, **stamp}.items():
            setattr(row, name, value)
    session.add(OzgStatusChange(municipality_id=municipality.id, service_id=service.id, **values, **stamp))
    if service.is_municipal and old_level != maturity:
        _move(session, municipality, service.topic, old_level, maturity)
    session.flush()
    audit.record(
        session,
        actor,
        "ozg_status",
        "ozg_status",
        f"{municipality.key}/{service.ozg_id}",
        before=before,
        after={"municipality_id": municipality.id, "service_id": service.id, **values},
    )
    return StatusResult(row, True)


def _level_column(level: int):
    return getattr(OzgTally, f"level{min(level, MAX_LEVEL)}")


def _move(session: Session, municipality: Municipality, topic: str, old: int, new: int) -> None:
    """One count from level ``old`` to level ``new`` in each of the municipality's tally rows."""
    keys = _tally_keys(municipality, topic)
    _ensure_rows(session, keys)
    changes = {}
    if old > 0:
        column = _level_column(old)
        changes[column.key] = column - 1
    if new > 0:
        column = _level_column(new)
        changes[column.key] = changes.get(column.key, column) + 1
    for scope, scope_id, row_topic in keys:
        session.execute(
            update(OzgTally)
            .where(OzgTally.scope == scope, OzgTally.scope_id == scope_id, OzgTally.topic == row_topic)
            .values(**changes, updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )


def _ensure_rows(session: Session, keys) -> None:
    """Create the tally rows a change needs that do not exist yet (a new Themenfeld or place), with
    their number of possible pairs. Concurrent writers may race to create the same row: the insert
    skips rows that exist by then (ON CONFLICT DO NOTHING)."""
    existing = set(
        session.execute(
            select(OzgTally.scope, OzgTally.scope_id, OzgTally.topic).where(
                OzgTally.scope.in_({k[0] for k in keys}),
                OzgTally.scope_id.in_({k[1] for k in keys}),
                OzgTally.topic.in_({k[2] for k in keys}),
            )
        ).all()
    )
    missing = [k for k in keys if k not in existing]
    if not missing:
        return
    services = _municipal_services_per_topic(session)
    places = {}
    for scope, scope_id, _topic in missing:
        if (scope, scope_id) not in places:
            places[(scope, scope_id)] = _places(session, scope, scope_id)
    rows = [
        {"scope": s, "scope_id": i, "topic": t, "possible": places[(s, i)] * services.get(t, 0)}
        for s, i, t in missing
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(OzgTally).on_conflict_do_nothing(), rows)


def _places(session: Session, scope: str, scope_id: int) -> int:
    """How many Gemeinden and Städte a tally scope covers."""
    if scope == TallyScope.MUNICIPALITY:
        return 1
    query = select(func.count()).select_from(Municipality).where(Municipality.kind.in_(LOCAL_KIND_VALUES))
    if scope == TallyScope.KREIS:
        query = query.where(
            (Municipality.kreis_id == scope_id)
            | ((Municipality.id == scope_id) & (Municipality.kind == MunicipalityKind.KREISFREIE_STADT.value))
        )
    return session.execute(query).scalar_one()


# --- whole rebuilds -------------------------------------------------------------------------------


def _local_municipalities(session: Session) -> list[tuple[int, int | None]]:
    """(id, Kreis id) of every Gemeinde and Stadt (a kreisfreie Stadt is its own Kreis)."""
    rows = session.execute(
        select(Municipality.id, Municipality.kind, Municipality.kreis_id).where(
            Municipality.kind.in_(LOCAL_KIND_VALUES)
        )
    ).all()
    return [(mid, mid if kind == MunicipalityKind.KREISFREIE_STADT else kreis) for mid, kind, kreis in rows]


def _municipal_services_per_topic(session: Session) -> dict[str, int]:
    counts = dict(
        session.execute(
            select(OzgService.topic, func.count())
            .where(OzgService.responsibility == Responsibility.MUNICIPAL.value)
            .group_by(OzgService.topic)
        ).all()
    )
    counts[""] = sum(counts.values())
    return counts


def recompute_possible(session: Session) -> None:
    """Set every tally row's number of possible (municipality, service) pairs."""
    services = _municipal_services_per_topic(session)
    places: dict[tuple[str, int], int] = defaultdict(int)
    for municipality_id, kreis_id in _local_municipalities(session):
        places[(TallyScope.LAND.value, LAND_ID)] += 1
        places[(TallyScope.MUNICIPALITY.value, municipality_id)] = 1
        if kreis_id is not None:
            places[(TallyScope.KREIS.value, kreis_id)] += 1
    rows = session.execute(select(OzgTally.id, OzgTally.scope, OzgTally.scope_id, OzgTally.topic)).all()
    updates = [
        {"tally_id": tally_id, "possible": places.get((scope, scope_id), 0) * services.get(topic, 0)}
        for tally_id, scope, scope_id, topic in rows
    ]
    if updates:
        from sqlalchemy import bindparam

        session.execute(
            update(OzgTally.__table__).where(OzgTally.__table__.c.id == bindparam("tally_id")),
            updates,
        )


def recompute_tallies(session: Session) -> int:
    """Rebuild every tally row from the status rows (one grouped query, Core inserts). Returns
    the number of rows written. Rows exist for the Land, every Kreis and every municipality, overall
    and per Themenfeld of the municipal services."""
    kreis_of = dict(_local_municipalities(session))
    topics = ["", *sorted(t for t in _municipal_services_per_topic(session) if t)]
    counts: dict[tuple[str, int, str], list[int]] = {}
    scopes = [(TallyScope.LAND.value, LAND_ID)]
    scopes += [(TallyScope.KREIS.value, k) for k in sorted({k for k in kreis_of.values() if k is not None})]
    scopes += [(TallyScope.MUNICIPALITY.value, m) for m in sorted(kreis_of)]
    for scope, scope_id in scopes:
        for topic in topics:
            counts[(scope, scope_id, topic)] = [0] * (MAX_LEVEL + 1)
    grouped = session.execute(
        select(OzgStatus.municipality_id, OzgService.topic, OzgStatus.maturity, func.count())
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .where(OzgService.responsibility == Responsibility.MUNICIPAL.value, OzgStatus.maturity > 0)
        .group_by(OzgStatus.municipality_id, OzgService.topic, OzgStatus.maturity)
    )
    for municipality_id, topic, maturity, number in grouped:
        if municipality_id not in kreis_of:
            continue
        level = min(maturity, MAX_LEVEL)
        kreis_id = kreis_of[municipality_id]
        for scope, scope_id in (
            (TallyScope.LAND.value, LAND_ID),
            (TallyScope.KREIS.value, kreis_id),
            (TallyScope.MUNICIPALITY.value, municipality_id),
        ):
            if scope_id is None:
                continue
            for row_topic in ("", topic):
                counts[(scope, scope_id, row_topic)][level] += number
    session.execute(delete(OzgTally))
    now = utcnow()
    rows = [
        {
            "scope": scope,
            "scope_id": scope_id,
            "topic": topic,
            "possible": 0,
            "updated_at": now,
            **{f"level{level}": levels[level] for level in LEVELS},
        }
        for (scope, scope_id, topic), levels in counts.items()
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(OzgTally), rows[start : start + 5000])
    recompute_possible(session)
    return len(rows)


def set_responsibility(session: Session, actor, service: OzgService, responsibility: str) -> OzgService:
    """Mark who provides a service (municipalities, the Land, the Bund); the tallies follow."""
    if responsibility not in {r.value for r in Responsibility}:
        raise RuleViolation(_("Please choose one of the offered values."), "responsibility")
    if service.responsibility == responsibility:
        return service
    before = service.audit_view()
    service.responsibility = responsibility
    session.flush()
    recompute_tallies(session)
    audit.record(session, actor, "update", "ozg_service", service, before=before, after=service.audit_view())
    return service


# --- snapshots ------------------------------------------------------------------------------------


def take_snapshot(session: Session, actor, month: date | None = None) -> int:
    """Store the Land's and the Kreise's tallies as the snapshot of ``month`` (its first day;
    default: this month). Idempotent: a month already stored is left as it is. Returns the rows."""
    month = (month or date.today()).replace(day=1)
    if session.execute(select(OzgSnapshot.id).where(OzgSnapshot.month == month).limit(1)).first():
        return 0
    tallies = session.execute(
        select(OzgTally).where(OzgTally.scope.in_([TallyScope.LAND.value, TallyScope.KREIS.value]))
    ).scalars()
    rows = [
        {
            "month": month,
            "scope": t.scope,
            "scope_id": t.scope_id,
            "topic": t.topic,
            "possible": t.possible,
            **{f"level{level}": getattr(t, f"level{level}") for level in LEVELS},
        }
        for t in tallies
    ]
    if rows:
        session.execute(insert(OzgSnapshot), rows)
    audit.record(session, actor, "snapshot", "ozg_snapshot", month.isoformat(), after={"rows": len(rows)})
    return len(rows)


def compliant_share(tally) -> float | None:
    """The share of possible (municipality, service) pairs at maturity >= 3 (None without any)."""
    if not tally.possible:
        return None
    return (tally.level3 + tally.level4) / tally.possible


__all__ = [
    "COMPLIANT_FROM",
    "LAND_ID",
    "StatusResult",
    "compliant_share",
    "kreis_id_of",
    "may_report",
    "recompute_possible",
    "recompute_tallies",
    "set_responsibility",
    "set_status",
    "take_snapshot",
]
