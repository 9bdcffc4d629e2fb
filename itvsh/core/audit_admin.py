"""The audit trail in the admin: admins and auditors browse and filter it, nobody changes it."""

from __future__ import annotations

from flask_admin.contrib.sqla.filters import DateTimeBetweenFilter, FilterEqual, FilterLike
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from itvsh.auth.roles import Role
from itvsh.core.admin import SecureModelView
from itvsh.core.audit import AuditEvent


def _json_cell(view, context, model, name):
    value = getattr(model, name)
    if value is None:
        return ""
    return Markup("<code>{}</code>").format(escape(str(value)))


class AuditEventView(SecureModelView):
    allowed_roles = frozenset({Role.ADMIN, Role.AUDITOR})
    can_view_details = True
    column_default_sort = ("seq", True)
    column_list = ("seq", "occurred_at", "actor", "action", "entity", "entity_id", "address")
    column_details_list = (
        "seq",
        "occurred_at",
        "actor",
        "actor_id",
        "action",
        "entity",
        "entity_id",
        "before",
        "after",
        "address",
        "prev_hash",
        "hash",
    )
    column_export_list = (
        "seq",
        "occurred_at",
        "actor",
        "action",
        "entity",
        "entity_id",
        "before",
        "after",
        "address",
        "prev_hash",
        "hash",
    )
    column_searchable_list = ("actor", "action", "entity", "entity_id")
    column_filters = (
        FilterEqual(AuditEvent.action, _l("Action")),
        FilterEqual(AuditEvent.entity, _l("Entity")),
        FilterEqual(AuditEvent.entity_id, _l("Entity id")),
        FilterLike(AuditEvent.actor, _l("Actor")),
        DateTimeBetweenFilter(AuditEvent.occurred_at, _l("Time")),
    )
    column_labels = {
        "seq": _l("No."),
        "occurred_at": _l("Time (UTC)"),
        "actor": _l("Actor"),
        "actor_id": _l("Actor id"),
        "action": _l("Action"),
        "entity": _l("Entity"),
        "entity_id": _l("Entity id"),
        "before": _l("Before"),
        "after": _l("After"),
        "address": _l("Address"),
        "prev_hash": _l("Previous hash"),
        "hash": _l("Hash"),
    }
    column_formatters_detail = {"before": _json_cell, "after": _json_cell}


def register(admin) -> None:
    admin.add_view(
        AuditEventView(AuditEvent, name=_l("Audit trail"), endpoint="audit_events", category=_l("System"))
    )
