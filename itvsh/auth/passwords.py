"""Password hashing with argon2id (argon2-cffi), parameters from the configuration."""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing megabytes of "password" is a denial-of-service vector

# ASVS 5 (V11.4.2 via OWASP Password Storage Cheat Sheet): argon2id, m >= 19 MiB, t >= 2, p >= 1.
ASVS_MIN_MEMORY_KIB = 19 * 1024
ASVS_MIN_TIME_COST = 2


def hasher() -> PasswordHasher:
    cfg = current_app.config
    key = "itvsh_password_hasher"
    ph = current_app.extensions.get(key)
    if ph is None:
        ph = PasswordHasher(
            time_cost=cfg["ITVSH_ARGON2_TIME_COST"],
            memory_cost=cfg["ITVSH_ARGON2_MEMORY_KIB"],
            parallelism=cfg["ITVSH_ARGON2_PARALLELISM"],
            type=Type.ID,
        )
        current_app.extensions[key] = ph
    return ph


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None. (Messages are translated by the caller.)"""
    if len(password) < MIN_LENGTH:
        return "too_short"
    if len(password) > MAX_LENGTH:
        return "too_long"
    if password.strip() == "":
        return "blank"
    return None


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash or len(password) > MAX_LENGTH:
        # Spend the same time as a real check so the answer does not reveal unknown accounts.
        _dummy_verify(password[:MAX_LENGTH])
        return False
    try:
        return hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)


def _dummy_verify(password: str) -> None:
    key = "itvsh_dummy_hash"
    dummy = current_app.extensions.get(key)
    if dummy is None:
        dummy = current_app.extensions[key] = hasher().hash("dummy password for timing")
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        hasher().verify(dummy, password)
