"""Liveness (/healthz) and readiness (/readyz: database and, when configured, Redis reachable)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from itvsh.core.access import public
from itvsh.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    return jsonify(status="ok")


def redis_connection(url: str):
    """A Redis client that gives up within two seconds, so no page hangs on a dead Redis."""
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


@bp.get("/readyz")
@public
def readyz():
    checks, ready = {}, True
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
        current_app.logger.warning("readiness: database unreachable: %s", exc)
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    finally:
        db.session.rollback()
    redis_url = current_app.config.get("ITVSH_REDIS_URL")
    if redis_url:
        try:
            redis_connection(redis_url).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            current_app.logger.warning("readiness: redis unreachable: %s", exc)
            checks["redis"] = f"unreachable: {type(exc).__name__}"
            ready = False
    else:
        checks["redis"] = "not configured (embedded job runner)"
    response = jsonify(status="ok" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    return response
