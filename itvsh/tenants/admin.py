"""Municipalities in the admin (the Tenants issue adds import, hierarchy and the detail page)."""

from __future__ import annotations

from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l

from itvsh.core.admin import SecureModelView
from itvsh.tenants.models import KIND_LABELS, Municipality


class MunicipalityView(SecureModelView):
    column_list = ("key", "name", "kind")
    column_searchable_list = ("key", "name")
    column_default_sort = "key"
    column_filters = (
        FilterEqual(Municipality.kind, _l("Kind"), options=[(k.value, v) for k, v in KIND_LABELS.items()]),
    )
    column_labels = {
        "key": _l("Official key"),
        "name": _l("Name"),
        "kind": _l("Kind"),
        "created_at": _l("Created"),
    }
    column_formatters = {"kind": lambda v, c, m, n: m.kind_label}


def register(admin) -> None:
    admin.add_view(MunicipalityView(Municipality, name=_l("Municipalities"), endpoint="municipalities"))
