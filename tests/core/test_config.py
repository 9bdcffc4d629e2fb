"""Configuration from ITVSH_* variables: production refuses to start without a secret key,
development makes one and keeps it private, and ITVSH_PROXY_HOPS decides whether X-Forwarded-For
is believed (for throttling and the audit trail)."""

from __future__ import annotations

import os
import stat

import flask
import pytest
from sqlalchemy import select

from itvsh import create_app
from itvsh.config import ConfigError, load_config
from itvsh.core.access import public
from itvsh.core.audit import AuditEvent
from itvsh.extensions import db
from tests.conftest import csrf_token


@pytest.fixture
def clean_env(monkeypatch):
    """No ITVSH_* setting from the machine running the tests leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("ITVSH_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("env", ["production", "testing", None])
def test_outside_development_refuses_to_start_without_secret_key(clean_env, tmp_path, env):
    if env:
        clean_env.setenv("ITVSH_ENV", env)
    with pytest.raises(ConfigError, match="ITVSH_SECRET_KEY"):
        load_config(str(tmp_path))
    with pytest.raises(ConfigError, match="ITVSH_SECRET_KEY"):
        create_app()
    assert not (tmp_path / "secret_key").exists()


def test_production_with_secret_key_is_strict(clean_env, tmp_path):
    clean_env.setenv("ITVSH_ENV", "production")
    clean_env.setenv("ITVSH_SECRET_KEY", "k" * 64)
    config = load_config(str(tmp_path))
    assert config["SECRET_KEY"] == "k" * 64
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["DEBUG"] is False
    assert not (tmp_path / "secret_key").exists()


def test_development_generates_and_keeps_a_private_secret(clean_env, tmp_path):
    clean_env.setenv("ITVSH_ENV", "development")
    instance = tmp_path / "instance"
    config = load_config(str(instance))
    key_file = instance / "secret_key"
    assert len(config["SECRET_KEY"]) >= 32
    assert key_file.read_text().strip() == config["SECRET_KEY"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_config(str(instance))["SECRET_KEY"] == config["SECRET_KEY"]  # kept, not remade
    other = load_config(str(tmp_path / "elsewhere"))["SECRET_KEY"]
    assert other != config["SECRET_KEY"]
    assert config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ITVSH_PROXY_HOPS", "one"),
        ("ITVSH_PROXY_HOPS", "-1"),
        ("ITVSH_PROXY_HOPS", "1.5"),
        ("ITVSH_ENV", "staging"),
        ("ITVSH_DEFAULT_LOCALE", "fr"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(clean_env, tmp_path, name, value):
    clean_env.setenv("ITVSH_ENV", "development")
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as caught:
        load_config(str(tmp_path))
    assert value in str(caught.value)


def test_proxy_hops_is_read(clean_env, tmp_path):
    clean_env.setenv("ITVSH_ENV", "development")
    assert load_config(str(tmp_path))["ITVSH_PROXY_HOPS"] == 0
    clean_env.setenv("ITVSH_PROXY_HOPS", "2")
    assert load_config(str(tmp_path))["ITVSH_PROXY_HOPS"] == 2


@pytest.fixture(params=[0, 1], ids=["hops0", "hops1"])
def proxied(request, clean_env):
    """The per-test app (``app`` fixture), built after ITVSH_PROXY_HOPS was set in the environment."""
    clean_env.setenv("ITVSH_PROXY_HOPS", str(request.param))
    app = request.getfixturevalue("app")
    assert app.config["ITVSH_PROXY_HOPS"] == request.param

    @public
    def remote_addr():
        return flask.request.remote_addr or ""

    app.add_url_rule("/test-remote-addr", "test_remote_addr", remote_addr)
    return app, request.param


PROXY, CLIENT, SPOOFED = "10.0.0.5", "203.0.113.7", "198.51.100.66"


def test_client_address_behind_proxies(proxied):
    app, hops = proxied
    client = app.test_client()
    headers = {"X-Forwarded-For": f"{SPOOFED}, {CLIENT}"}
    environ = {"REMOTE_ADDR": PROXY}
    seen = client.get("/test-remote-addr", headers=headers, environ_base=environ).get_data(as_text=True)
    # one trusted hop: the address the proxy appended; none: the header is ignored. Never the
    # spoofable leftmost entry.
    expected = CLIENT if hops == 1 else PROXY
    assert seen == expected

    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": "nobody@test.example", "password": "wrong password!", "csrf_token": token},
        headers=headers,
        environ_base=environ,
    )
    assert response.status_code == 401
    event = (
        db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "login_failed").order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert event is not None
    assert event.address == expected
