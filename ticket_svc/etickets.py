"""E-tickets: the signed check-in code of a sold ticket.

Scheme: **Ed25519** (RFC 8032, through the ``cryptography`` package). ticket_svc alone holds
the private key (``TTMS_TICKET_SIGNING_KEY``, a 32-byte seed in base64url); anyone with the
public key — a door device that lost its connection — can tell a code TTMS issued from a forged
or altered one without asking the server (an HMAC key would have to be given to every device,
and then every device could mint tickets). What a signature cannot say — refunded since,
already checked in — the server decides at ``POST /checkins``, and a device offline learns it
from ``GET /schedules/{id}/checkin-list`` (the refunded and checked-in ticket ids).

A code is ``TT1.`` + base64url(payload ‖ signature), 115 characters, one QR code of version 6
or so. The payload is 22 bytes, big-endian: ticket id (8), show id (8), row (1), col (1), the
ticket's code version (4). A seat sold again after a refund is a new ticket row, so a new id
and a new code; a refunded ticket's code stays well signed but is refused by its status.
"""

from __future__ import annotations

import base64
import binascii
import struct
import sys
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from messages import errors

PREFIX = "TT1."
FIRST_CODE_VERSION = 1  # tickets.code_version's default: the version of a code at sale
ALGORITHM = "Ed25519"
_PAYLOAD = struct.Struct(">QQBBI")
_SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class CodeFacts:
    """What a valid code says."""

    ticket_id: int
    schedule_id: int
    row: int
    col: int
    version: int


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@lru_cache(maxsize=4)
def private_key(seed: str) -> Ed25519PrivateKey:
    try:
        raw = _b64decode(seed.strip())
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes")
    except (ValueError, binascii.Error) as exc:
        raise SystemExit(
            f"TTMS_TICKET_SIGNING_KEY must be 32 bytes in base64url ({exc})") from None
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_text(seed: str) -> str:
    """The public key as a device wants it: the 32 raw bytes in base64url."""
    return _b64encode(private_key(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign(seed: str, facts: CodeFacts) -> str:
    payload = _PAYLOAD.pack(facts.ticket_id, facts.schedule_id, facts.row, facts.col,
                            facts.version)
    return PREFIX + _b64encode(payload + private_key(seed).sign(payload))


def verify(public_key: Ed25519PublicKey, code: str) -> CodeFacts:
    """The facts of a code signed by this key, or ``InvalidCode`` (garbage, altered, forged)."""
    if not isinstance(code, str) or not code.startswith(PREFIX) or len(code) > 200:
        raise errors.InvalidCode("not a TTMS check-in code")
    try:
        raw = _b64decode(code[len(PREFIX):])
    except (ValueError, binascii.Error):
        raise errors.InvalidCode("not a TTMS check-in code") from None
    if len(raw) != _PAYLOAD.size + _SIGNATURE_BYTES:
        raise errors.InvalidCode("not a TTMS check-in code")
    payload, signature = raw[:_PAYLOAD.size], raw[_PAYLOAD.size:]
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise errors.InvalidCode("the code's signature is not TTMS's") from None
    return CodeFacts(*_PAYLOAD.unpack(payload))


def unverified(code: str) -> tuple[int, int, int, int, int]:
    """The payload of a code, signature NOT checked (to name a refused scan's ticket)."""
    try:
        raw = _b64decode(code[len(PREFIX):])
    except (ValueError, binascii.Error) as exc:
        raise ValueError("not a code") from exc
    if not code.startswith(PREFIX) or len(raw) != _PAYLOAD.size + _SIGNATURE_BYTES:
        raise ValueError("not a code")
    return _PAYLOAD.unpack(raw[:_PAYLOAD.size])


def verify_with(seed: str, code: str) -> CodeFacts:
    return verify(private_key(seed).public_key(), code)


def new_key() -> str:
    """A fresh signing key for ``TTMS_TICKET_SIGNING_KEY``."""
    return _b64encode(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption()))


if __name__ == "__main__":  # python -m ticket_svc.etickets new-key
    if sys.argv[1:] != ["new-key"]:
        raise SystemExit("usage: python -m ticket_svc.etickets new-key")
    print(new_key())
