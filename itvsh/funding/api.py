"""Funding endpoints of the JSON API (on the API blueprint)."""

from __future__ import annotations
