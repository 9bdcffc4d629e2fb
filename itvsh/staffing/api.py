"""Staffing endpoints of the JSON API (on the API blueprint)."""

from itvsh.staffing import models  # noqa: F401
