"""Secrets: tokens and passwords.

Device and access tokens are long random values stored as SHA-256: fast to check on a
reconnect storm. Human passwords get argon2id, deliberately slow: monitor.edges.api.guards
runs it off the event loop that acknowledges devices, and limits failed logins.

The cost of a new hash is a setting (``PasswordHashing``), a choice between two published
profiles, never free numbers (docs/security.md, "Password hashing"). A hash records its own
parameters, so a stored password verifies at the cost it was made with, whatever the setting
is now."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordHashing(StrEnum):
    """argon2id profiles for new hashes (docs/security.md, "Password hashing")."""

    # RFC 9106 section 4, the second recommended option (argon2-cffi's default): t=3, 64 MiB,
    # 4 lanes; about 170 ms of CPU a hash on the 2-core reference box.
    RFC9106_LOW_MEMORY = "rfc9106-low-memory"
    # The OWASP Password Storage Cheat Sheet's minimum: t=2, 19 MiB, 1 lane; about 30 ms.
    OWASP_MINIMUM = "owasp-minimum"


_PROFILES: dict[PasswordHashing, PasswordHasher] = {
    PasswordHashing.RFC9106_LOW_MEMORY: PasswordHasher(
        time_cost=3, memory_cost=65536, parallelism=4
    ),
    PasswordHashing.OWASP_MINIMUM: PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1),
}
# Verifying reads the parameters from the stored hash; any profile's hasher does it.
_verifier = _PROFILES[PasswordHashing.RFC9106_LOW_MEMORY]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str, profile: PasswordHashing) -> str:
    return _PROFILES[profile].hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _verifier.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def dummy_password_hash(profile: PasswordHashing) -> str:
    """A hash to verify against when the user does not exist, so timing does not reveal
    names: made with the profile new passwords get, once, on the first login (not at import:
    every monitor and CLI start would pay for it)."""
    return hash_password(secrets.token_hex(8), profile)
