"""The tenant scope: which members' private data a unit of work may see — set once, applied to
every ORM query in one place.

A unit of work (a request, a CLI command, a job) sets its scope on the session with
:func:`set_scope`: :data:`ALL` (federation staff, auditors, admins, the CLI) or a set of tenant
ids (a municipality user: its own tenant; an Amt user: the Amt and its Gemeinden). A
``do_orm_execute`` hook adds ``municipality_id IN (scope)`` to every ORM SELECT that touches a
:class:`TenantOwned` model — including relationship loads, ``session.get`` and aggregates — and
refuses ORM bulk UPDATE/DELETE on them outside the ALL scope. No scope set means no rows (fail
closed). Core statements and ``text()`` are not covered: tenant code uses ORM selects only.
PostgreSQL row-level security can mirror :func:`scope_ids` later from this one place.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, event, false, inspect
from sqlalchemy.orm import (
    MANYTOONE,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

ALL = "all"
_KEY = "itvsh_tenant_scope"


class TenantOwned:
    """Mixin for models whose rows belong to one tenant (``municipality_id``) and are private to it."""

    __abstract__ = True

    # The scope's with_loader_criteria lambda is first called with this mixin itself, so the mixin
    # must have the column (a model may redeclare it; each mapped subclass gets its own copy).
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )

    @declared_attr.directive
    def __tenant_owned__(cls) -> bool:
        return True


class ScopeError(RuntimeError):
    """A write to tenant-owned rows that the current scope does not allow."""


def set_scope(session: Session, scope) -> None:
    """Set the scope of this unit of work: ALL, or an iterable of tenant (municipality) ids."""
    session.info[_KEY] = ALL if scope == ALL else frozenset(int(i) for i in scope)


def clear_scope(session: Session) -> None:
    session.info.pop(_KEY, None)


def current_scope(session: Session):
    """ALL, a frozenset of tenant ids, or None (nothing set: no tenant-owned rows)."""
    return session.info.get(_KEY)


def push_scope(session: Session, scope) -> object:
    """Set ``scope`` and return the previous one, for :func:`pop_scope` (a request inside a test
    session, a job inside a worker)."""
    previous = session.info.get(_KEY)
    set_scope(session, scope) if scope is not None else clear_scope(session)
    return previous


def pop_scope(session: Session, previous) -> None:
    if previous is None:
        clear_scope(session)
    else:
        session.info[_KEY] = previous


def in_scope(session: Session, municipality_id: int | None) -> bool:
    scope = current_scope(session)
    return scope == ALL or (scope is not None and municipality_id in scope)


def scope_ids(session: Session) -> frozenset[int] | None:
    """The tenant ids of a restricted scope (None for ALL or unset) — what RLS would be given."""
    scope = current_scope(session)
    return scope if isinstance(scope, frozenset) else None


@event.listens_for(Session, "do_orm_execute")
def _apply_scope(state: ORMExecuteState) -> None:
    scope = state.session.info.get(_KEY)
    if scope == ALL:
        return
    if state.is_select:
        if scope:
            ids = tuple(sorted(scope))
            criteria = with_loader_criteria(
                TenantOwned, lambda cls: cls.municipality_id.in_(ids), include_aliases=True
            )
        else:
            criteria = with_loader_criteria(TenantOwned, lambda cls: false(), include_aliases=True)
        state.statement = state.statement.options(criteria)
    elif state.is_update or state.is_delete:
        mapper = state.bind_mapper
        if mapper is not None and issubclass(mapper.class_, TenantOwned):
            raise ScopeError("bulk UPDATE/DELETE of tenant-owned rows needs the ALL scope")


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, _flush_context, _instances) -> None:
    """Unit-of-work writes to tenant-owned rows must lie inside the scope, too."""
    scope = session.info.get(_KEY)
    if scope == ALL:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantOwned):
            tenants = _tenants_written(obj)
            if not (scope and tenants <= scope):
                raise ScopeError(f"{type(obj).__name__} of tenant(s) {tenants} is outside the scope")


def _tenants_written(obj) -> set:
    """The tenants a write touches: the row's tenant before (a change or delete) and after it. A
    many-to-one relationship set in this unit of work decides the new tenant, as the flush copies
    its id into ``municipality_id`` only later."""
    state = inspect(obj)
    history = state.attrs.municipality_id.load_history()
    old = {*history.deleted, *history.unchanged} if state.key is not None else set()
    new = {*history.added, *history.unchanged}
    for rel in state.mapper.relationships:
        if rel.direction is MANYTOONE and state.mapper.c.municipality_id in rel.local_columns:
            added = state.attrs[rel.key].history.added
            if added:
                new = {getattr(added[0], "id", None)}
    return (old | new) or {None}
