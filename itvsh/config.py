"""Settings from ITVSH_* environment variables (and a `.env` file).

Three environments: ``development`` (what ``make run`` uses: embedded SQLite, a generated secret
kept in the instance folder), ``testing`` and ``production`` (the default, so a deployment that
forgets to say what it is gets the strict settings and refuses to start without a secret key).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ENVIRONMENTS = ("development", "testing", "production")


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says which setting and why."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _dev_secret(instance_path: Path) -> str:
    """A random development secret, made once and kept in the instance folder (never in code)."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load_config(instance_path: str, overrides: dict | None = None) -> dict:
    """Read the environment into a Flask config mapping; raise ConfigError if it cannot work.

    ``overrides`` (tests) may set ``ITVSH_ENV`` and ``SECRET_KEY`` before they are checked.
    """
    overrides = overrides or {}
    env = (overrides.get("ITVSH_ENV") or os.environ.get("ITVSH_ENV", "production")).strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"ITVSH_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    instance = Path(instance_path)
    database_url = (
        overrides.get("SQLALCHEMY_DATABASE_URI")
        or os.environ.get("ITVSH_DATABASE_URL")
        or f"sqlite:///{instance / 'itvsh.db'}"
    )
    secret_key = overrides.get("SECRET_KEY") or os.environ.get("ITVSH_SECRET_KEY", "")
    if not secret_key:
        if env != "development":
            raise ConfigError(
                "ITVSH_SECRET_KEY is not set. Outside development the app refuses to start without it; "
                "set it to a long random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        secret_key = _dev_secret(instance)
    redis_url = os.environ.get("ITVSH_REDIS_URL") or None
    locale = os.environ.get("ITVSH_DEFAULT_LOCALE", "de")
    if locale not in ("de", "en"):
        raise ConfigError(f"ITVSH_DEFAULT_LOCALE must be 'de' or 'en', got {locale!r}")
    secure = env == "production"
    settings = {
        "ITVSH_ENV": env,
        "DEBUG": False,
        "TESTING": env == "testing",
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "ITVSH_REDIS_URL": redis_url,
        "ITVSH_REPORTS_DIR": os.environ.get("ITVSH_REPORTS_DIR") or str(instance / "reports"),
        "ITVSH_PROXY_HOPS": _int("ITVSH_PROXY_HOPS", 0),
        # Jobs: rq with Redis, else an in-process thread ("embedded"); ITVSH_JOBS forces one.
        "ITVSH_JOBS": os.environ.get("ITVSH_JOBS") or None,
        # A running report renews its lease as it goes; a lease that ran out means its worker died.
        "ITVSH_REPORT_LEASE_SECONDS": _int("ITVSH_REPORT_LEASE_SECONDS", 60),
        # How often the one scheduler runs the schedule and the sweeper.
        "ITVSH_SCHEDULER_SECONDS": _int("ITVSH_SCHEDULER_SECONDS", 30),
        "BABEL_DEFAULT_LOCALE": locale,
        "BABEL_DEFAULT_TIMEZONE": "Europe/Berlin",
        # argon2id; RFC 9106 "second recommended" profile, above the OWASP ASVS 5 minimum
        # (m >= 19 MiB, t >= 2, p = 1).
        "ITVSH_ARGON2_TIME_COST": _int("ITVSH_ARGON2_TIME_COST", 3),
        "ITVSH_ARGON2_MEMORY_KIB": _int("ITVSH_ARGON2_MEMORY_KIB", 65536),
        "ITVSH_ARGON2_PARALLELISM": _int("ITVSH_ARGON2_PARALLELISM", 1),
        # Login throttling: per client address and per account (failed attempts only).
        "ITVSH_LOGIN_LIMIT_ADDRESS": os.environ.get("ITVSH_LOGIN_LIMIT_ADDRESS", "30 per 10 minutes"),
        "ITVSH_LOGIN_LIMIT_ACCOUNT": os.environ.get("ITVSH_LOGIN_LIMIT_ACCOUNT", "5 per 15 minutes"),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Redis down must not stop logins: the limiter falls back to per-process memory meanwhile.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": False,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_NAME": "itvsh_session",
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "REMEMBER_COOKIE_DURATION": 0,
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "ITVSH_HSTS": secure,
    }
    settings.update(overrides)
    return settings
