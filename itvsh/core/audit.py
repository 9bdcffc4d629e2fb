"""The audit trail: an append-only, SHA-256 hash-chained log of every change, login and export.

Services call :func:`record` while they work. The events are chained when the unit of work
commits: a ``before_commit`` hook locks the chain head (``SELECT ... FOR UPDATE`` on PostgreSQL;
on SQLite the transaction already holds the write lock, see ``core/db.py``), numbers the events
and links each to the previous hash. Holding the head lock only during commit keeps it short and
always taken last, so it cannot deadlock with domain locks. :func:`verify_chain` proves that no
event was altered, removed or inserted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from itvsh.core.db import utcnow
from itvsh.core.net import client_address
from itvsh.extensions import db

GENESIS_HASH = "0" * 64
_PENDING = "itvsh_audit_pending"


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(64), index=True)
    entity_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    address: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def __repr__(self) -> str:
        return f"<AuditEvent #{self.seq} {self.action} {self.entity}:{self.entity_id}>"


class AuditChainHead(db.Model):
    """One row (id 1): the last sequence number and hash; locked to append, checked to verify."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


@dataclass
class _Pending:
    occurred_at: datetime
    actor_id: int | None
    actor: str
    action: str
    entity: str
    entity_ref: Any
    before: dict | None
    after: dict | None
    address: str


def actor_label(actor) -> str:
    """How an actor appears in the trail: a user's email, or a named system actor such as ``cli``."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.email


def record(
    session: Session,
    actor,
    action: str,
    entity: str,
    entity_ref: Any = None,
    *,
    before: dict | None = None,
    after: dict | None = None,
    address: str | None = None,
) -> None:
    """Note an audit event; it is chained and written when the unit of work commits.

    ``actor`` is a User, a system label (``"cli"``, ``"job"``) or None. ``entity_ref`` is an id, a
    key, or a model instance whose primary key is read at commit (so new objects get their id).
    """
    session.info.setdefault(_PENDING, []).append(
        _Pending(
            occurred_at=utcnow(),
            actor_id=getattr(actor, "id", None),
            actor=actor_label(actor),
            action=action,
            entity=entity,
            entity_ref=entity_ref,
            before=before,
            after=after,
            address=client_address() if address is None else address,
        )
    )


def _ref_to_id(ref: Any) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, (str, int)):
        return str(ref)
    return str(ref.id)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_payload(
    *, seq, occurred_at, actor_id, actor, action, entity, entity_id, before, after, address
) -> str:
    """The canonical JSON text of an event: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        {
            "seq": seq,
            "occurred_at": _iso(occurred_at),
            "actor_id": actor_id,
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "before": before,
            "after": after,
            "address": address,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def chain_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


def _lock_head(session: Session) -> AuditChainHead:
    head = session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)  # the row as it is now, not as this session saw it
    ).scalar_one_or_none()
    if head is None:  # the initial migration creates it; a fresh table gets it here
        head = AuditChainHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
    return head


def _write_pending(session: Session) -> None:
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # new objects named by entity_ref get their ids
    head = _lock_head(session)
    seq, prev = head.last_seq, head.last_hash
    for item in pending:
        seq += 1
        # JSON round trip so the stored columns equal what the payload says (e.g. dates as text)
        before = json.loads(json.dumps(item.before, default=str)) if item.before is not None else None
        after = json.loads(json.dumps(item.after, default=str)) if item.after is not None else None
        entity_id = _ref_to_id(item.entity_ref)
        payload = canonical_payload(
            seq=seq,
            occurred_at=item.occurred_at,
            actor_id=item.actor_id,
            actor=item.actor,
            action=item.action,
            entity=item.entity,
            entity_id=entity_id,
            before=before,
            after=after,
            address=item.address,
        )
        digest = chain_hash(prev, payload)
        session.add(
            AuditEvent(
                seq=seq,
                occurred_at=item.occurred_at,
                actor_id=item.actor_id,
                actor=item.actor,
                action=item.action,
                entity=item.entity,
                entity_id=entity_id,
                before=before,
                after=after,
                address=item.address,
                payload=payload,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    head.last_seq, head.last_hash = seq, prev
    session.flush()


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_pending(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, _previous_transaction) -> None:
    session.info.pop(_PENDING, None)


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head: str
    problem: str = ""
    bad_seq: int | None = None


def verify_chain(session: Session, batch: int = 1000) -> VerifyResult:
    """Walk the whole chain in order; report the first event that was altered, removed or inserted."""
    # The head is read before and after the walk: under READ COMMITTED (PostgreSQL) writers may
    # append meanwhile. The walk sees at least what the first read names; the second covers what it saw.
    head_seq_before = _read_head(session)[0]
    with session.execute(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch)
    ).scalars() as rows:  # closes PostgreSQL's server-side cursor on an early return too
        return _walk(session, rows, head_seq_before)


def _read_head(session: Session) -> tuple[int, str]:
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)


def _walk(session: Session, rows, head_seq_before: int) -> VerifyResult:
    """Check each event's number, link, fields and hash in order, then the chain's end against the head."""
    expected_seq, prev, last_prev, count = 1, GENESIS_HASH, GENESIS_HASH, 0
    for ev in rows:
        if ev.seq != expected_seq:
            return VerifyResult(
                False, count, prev, f"event #{expected_seq} is missing (found #{ev.seq})", expected_seq
            )
        if ev.prev_hash != prev:
            return VerifyResult(
                False, count, prev, f"event #{ev.seq} does not link to the event before it", ev.seq
            )
        payload = canonical_payload(
            seq=ev.seq,
            occurred_at=ev.occurred_at,
            actor_id=ev.actor_id,
            actor=ev.actor,
            action=ev.action,
            entity=ev.entity,
            entity_id=ev.entity_id,
            before=ev.before,
            after=ev.after,
            address=ev.address,
        )
        if payload != ev.payload:
            return VerifyResult(
                False,
                count,
                prev,
                f"event #{ev.seq} was altered (its fields differ from its recorded text)",
                ev.seq,
            )
        if chain_hash(prev, ev.payload) != ev.hash:
            return VerifyResult(False, count, prev, f"event #{ev.seq} was altered (hash mismatch)", ev.seq)
        last_prev, prev = prev, ev.hash
        expected_seq += 1
        count += 1
    last_seq, last_hash = _read_head(session)
    if count < head_seq_before:
        return VerifyResult(
            False,
            count,
            prev,
            f"the chain head names event #{head_seq_before}, but the chain ends "
            f"at #{count}: events were removed from its end",
            count + 1,
        )
    if count > last_seq:
        return VerifyResult(
            False,
            last_seq,
            last_hash,
            f"event #{last_seq + 1} lies beyond the chain head (#{last_seq}): it was inserted",
            last_seq + 1,
        )
    if count == last_seq and last_hash != prev:
        return VerifyResult(
            False,
            count - 1,
            last_prev,
            f"event #{count} is not the one the chain head names: it was replaced",
            count,
        )
    # count < last_seq: writers appended after the walk; everything up to #count is proven
    return VerifyResult(True, count, prev)
