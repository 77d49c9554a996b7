"""Who is calling: JWTs verified here, with no RPC per request.

Revocation: user_svc raises an account's token version whenever its access changes (role,
password, disabled, deleted) and announces it as ``user.access_changed``. Every gateway
process listens for that event and loads the full list from user_svc at start, so a revoked
token stops working as soon as the event arrives (milliseconds), without asking user_svc.
"""

from __future__ import annotations

import asyncio
import logging
import time

from messages import errors, tokens
from messages.contracts import user as user_contracts
from messages.contracts.base import Envelope
from messages.rpc import RpcClient
from messages.settings import Settings

log = logging.getLogger("ttms.gateway.auth")
ANONYMOUS = {"user_id": None, "role": None}


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._access: dict[int, tuple[int, bool]] = {}  # user id → (token version, active)
        # Verified tokens, so a signature is checked once per token, not once per request.
        self._verified: dict[str, tokens.Claims] = {}
        self.loaded = False

    def caller(self, authorization: str | None) -> dict | None:
        """The verified caller for an ``Authorization`` header, None when there is none."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("use an Authorization: Bearer <token> header")
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= time.time():
            try:
                claims = tokens.verify(self._settings, token.strip())
            except Exception:  # noqa: BLE001 - any decoding problem is the same 401
                raise errors.Unauthorized("the token is invalid or expired") from None
            if not 0 < claims.user_id < 2**63:  # an id no account has (nor the wire carries)
                raise errors.Unauthorized("the token is invalid or expired")
            if len(self._verified) >= 50_000:
                self._verified.clear()
            self._verified[token] = claims
        if not self.loaded:
            raise errors.ServiceUnavailable("the gateway is still loading revoked tokens",
                                            retry_after=1)
        access = self._access.get(claims.user_id)
        if access is not None and (not access[1] or claims.token_version < access[0]):
            raise errors.Unauthorized("the token was revoked")
        return {"user_id": claims.user_id, "role": claims.role.value}

    def apply(self, user_id: int, token_version: int, active: bool) -> None:
        current = self._access.get(user_id)
        if current is None or token_version >= current[0]:
            self._access[user_id] = (token_version, active)

    def on_event(self, envelope: Envelope) -> None:
        change = user_contracts.AccessChanged.model_validate(envelope.data)
        self.apply(change.user_id, change.token_version, change.active)

    async def load(self, rpc: RpcClient) -> None:
        """Load the revocation list from user_svc, retrying until it answers. Called after
        the listener is bound, so no change can fall between the two."""
        delay = 0.2
        while True:
            try:
                reply = await rpc.ask(user_contracts.AccessList(), ANONYMOUS, timeout=5)
                for entry in reply["entries"]:
                    self.apply(entry["user_id"], entry["token_version"], entry["active"])
                self.loaded = True
                log.info("loaded %d token revocations", len(reply["entries"]))
                return
            except errors.ServiceError as exc:
                log.warning("cannot load token revocations yet (%s)", exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)


class RateLimiter:
    """Token buckets by key (client address, username): ``rate`` per second, up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """None if allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens_left, last = self._buckets.get(key, (self.burst, now))
        tokens_left = min(self.burst, tokens_left + (now - last) * self.rate)
        if tokens_left < 1:
            self._buckets[key] = (tokens_left, now)
            return (1 - tokens_left) / self.rate
        self._buckets[key] = (tokens_left - 1, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return None

    def _forget_full(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
