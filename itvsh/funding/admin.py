"""Admin views of the funding domain: fiscal years, categories, allocations and the ledger."""

from __future__ import annotations

from flask_admin import Admin


def register(admin: Admin) -> None:
    """Add the funding model views (filled in by the funding admin work)."""
