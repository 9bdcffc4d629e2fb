"""Funding screens beyond model lists: the per-year dashboard, the multi-year overview, the
distribution preview and the year-end close."""

from __future__ import annotations

from flask_admin import Admin


def register(admin: Admin) -> None:
    """Add the funding dashboard, distribution and year-close pages."""
