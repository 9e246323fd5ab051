"""API tokens: made with :func:`secrets.token_urlsafe`, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["ROLES", "hash_token", "new_token", "role_allows"]

#: Roles, weakest first: a ``reviewer`` reads and labels, an ``admin`` also promotes models.
ROLES = ("reviewer", "admin")


def new_token() -> str:
    """A new random API token (``secrets.token_urlsafe(32)``: 43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the ``users.token_hash`` column holds: ``"sha256:" + hex digest`` of the token.

    >>> hash_token("abc")[:15]
    'sha256:ba7816bf'
    """
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (admin may do everything).

    >>> role_allows("admin", "reviewer"), role_allows("reviewer", "admin")
    (True, False)
    """
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)
