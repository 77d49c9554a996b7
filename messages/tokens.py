"""Access tokens: minted by user_svc at login, verified by the gateway on every request.

HS256 with the key from ``TTMS_JWT_SECRET``. Claims: ``sub`` (user id), ``role``, ``tv`` (the
account's token version when issued; see user_svc), ``iat``, ``exp``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from messages.contracts.base import Role
from messages.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    role: Role
    token_version: int
    expires_at: float


def mint(settings: Settings, user_id: int, role: Role, token_version: int) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "role": role.value, "tv": token_version,
              "iat": now, "exp": now + settings.jwt_ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify(settings: Settings, token: str) -> Claims:
    """Raises jwt.InvalidTokenError (or ValueError) for anything but a valid, unexpired token."""
    claims = jwt.decode(token, settings.jwt_secret.get_secret_value(), algorithms=[ALGORITHM],
                        options={"require": ["sub", "exp", "iat"]})
    return Claims(int(claims["sub"]), Role(claims["role"]), int(claims.get("tv", 0)),
                  float(claims["exp"]))
