"""Passwords: argon2id hashing and checking."""

from __future__ import annotations

import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from messages.settings import Settings


class Passwords:
    """argon2id hashing. The calls are slow on purpose: run them in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                      memory_cost=settings.argon2_memory_kib,
                                      parallelism=settings.argon2_parallelism)
        # Verified against when the user does not exist, so both answers take as long.
        started = time.perf_counter()
        self.decoy = self._hasher.hash("not-a-real-password")
        self.measured_cost = time.perf_counter() - started  # seconds per hash, here

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """True for a hash made with other parameters than today's (or not argon2id)."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True
