"""The member portal's funding page: a municipality's own allocations and payments over the years."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("funding_portal", __name__, url_prefix="/portal/funding")

from itvsh.funding import models  # noqa: E402, F401  (the portal page lands with the funding views)
