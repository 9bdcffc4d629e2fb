"""Liveness and readiness: /healthz answers while the process lives; /readyz checks the database
and, when configured, Redis, and answers 503 naming what is unreachable."""

from __future__ import annotations

from itvsh import create_app
from itvsh.core.health import redis_connection
from itvsh.extensions import db
from tests.conftest import TEST_REDIS_URL, require
from tests.conftest import test_config as config_for

CLOSED_PORT = "redis://127.0.0.1:1/0"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_without_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("not configured")


def test_readyz_with_unreachable_redis(app, client):
    app.config["ITVSH_REDIS_URL"] = CLOSED_PORT
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable")
    assert CLOSED_PORT not in response.get_data(as_text=True)  # no connection details to the public


def test_redis_client_gives_up_quickly():
    """A dead Redis must not hang the probe: connect and read time out within seconds."""
    kwargs = redis_connection(CLOSED_PORT).connection_pool.connection_kwargs
    assert 0 < kwargs["socket_connect_timeout"] <= 2
    assert 0 < kwargs["socket_timeout"] <= 2


def test_readyz_with_real_redis(app, client):
    require(TEST_REDIS_URL is not None, "ITVSH_TEST_REDIS_URL is not set (no Redis to test against)")
    app.config["ITVSH_REDIS_URL"] = TEST_REDIS_URL
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_with_unreachable_database(tmp_path):
    app = create_app(config_for(f"sqlite:///{tmp_path}/missing-dir/itvsh.db"))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("unreachable")
        assert str(tmp_path) not in response.get_data(as_text=True)
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        with app.app_context():
            db.engine.dispose()
