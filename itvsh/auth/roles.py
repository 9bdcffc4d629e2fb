"""The four roles and the role sets views and endpoints declare."""

from enum import StrEnum

from flask_babel import lazy_gettext as _l


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    AUDITOR = "auditor"
    MUNICIPALITY = "municipality"


ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.STAFF: _l("Federation staff"),
    Role.AUDITOR: _l("Auditor (ministry)"),
    Role.MUNICIPALITY: _l("Municipality"),
}

ALL_ROLES = frozenset(Role)
FEDERATION = frozenset({Role.ADMIN, Role.STAFF})
ADMIN_UI = frozenset({Role.ADMIN, Role.STAFF, Role.AUDITOR})
READ_ONLY = frozenset({Role.AUDITOR})
