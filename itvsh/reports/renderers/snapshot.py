"""The monthly OZG snapshot as a job: stores the month's tallies (idempotent per month)."""

from __future__ import annotations

from datetime import date

from itvsh.projects.ozg import take_snapshot
from itvsh.reports.kinds import RenderContext


def run(ctx: RenderContext) -> dict:
    month = date.fromisoformat(f"{ctx.parameters['month']}-01")
    rows = take_snapshot(ctx.session, "job", month)
    return {"month": ctx.parameters["month"], "rows": rows, "already_stored": rows == 0}
