"""Placeholder renderer (statement), replaced by the real one."""

from __future__ import annotations


def render(ctx, out) -> dict:
    ctx.progress(50)
    out.write(b"placeholder\n")
    return {}
