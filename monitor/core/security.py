"""Secrets: tokens and passwords.

Device and access tokens are long random values stored as SHA-256: fast to check on a
reconnect storm. Human passwords get argon2, deliberately slow: monitor.edges.api.guards runs
it off the event loop that acknowledges devices, and limits failed logins."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so timing does not reveal names.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_hex(8))
