"""Idempotency-Keys (``ticket_svc.idempotency``) against the test system's own ticket
database: what a keyed request writes, counted statement by statement. A keyed hold refused
by the early read (most of an on-sale rush) writes its key once, already answered, where it
used to take the key and then record the refusal: one commit, not two; and the key's first
answer still stands whatever comes after it."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import orjson
import pytest

from messages import errors
from messages.contracts import ticket as c
from tests.conftest import service_database
from ticket_svc import domain, idempotency


@pytest.fixture
async def ctx(system):
    async with service_database("ticket") as db:
        writes: list[str] = []
        autocommit = db.autocommit

        async def counted(sql, args=None):
            words = getattr(sql, "text", sql).split()
            writes.append(f"{words[0]} {words[1]}")
            return await autocommit(sql, args)

        db.autocommit = counted
        yield SimpleNamespace(app=SimpleNamespace(db=db), writes=writes)


def _hold(key: str, col: int = 1) -> c.Hold:
    return c.Hold(schedule_id=1, seats=[{"row": 1, "col": col}], idempotency_key=key)


async def _refused() -> None:
    raise domain.seats_unavailable([{"loc": ["body", "seats", 0], "msg": "seat 1-1 is sold"}])


async def _never(idem) -> None:
    raise AssertionError("a request refused early is not run")


async def test_a_keyed_hold_refused_early_writes_its_key_once_and_its_answer_stands(ctx):
    user, key = 900_000 + os.getpid() % 1000, f"early-{os.getpid()}"
    with pytest.raises(errors.SeatUnavailable) as first:
        await idempotency.once_per_key(ctx, "hold", user, _hold(key), _never, _refused)
    assert ctx.writes == ["INSERT IGNORE"]  # the key with its answer, one statement
    # Again: the early read refuses again, the key is there, and its answer is given.
    ctx.writes.clear()
    with pytest.raises(errors.SeatUnavailable) as again:
        await idempotency.once_per_key(ctx, "hold", user, _hold(key), _never, _refused)
    assert again.value.to_wire() == first.value.to_wire()
    # Another request with the same key is refused whatever the early read says.
    with pytest.raises(errors.IdempotencyKeyReused):
        await idempotency.once_per_key(ctx, "hold", user, _hold(key, col=2), _never, _refused)


async def test_a_key_answered_first_by_a_hold_is_not_overwritten_by_a_later_refusal(ctx):
    """The first answer was a hold; the same request again now finds its seat taken (by that
    very hold): the key's first answer, the hold, is given again."""
    user, key = 910_000 + os.getpid() % 1000, f"won-{os.getpid()}"

    async def won(idem):
        return {"id": 1, "status": "held"}

    async def open_seats() -> None:
        return None

    assert await idempotency.once_per_key(ctx, "hold", user, _hold(key), won,
                                          open_seats) == {"id": 1, "status": "held"}
    assert ctx.writes == ["INSERT IGNORE", "UPDATE idempotency_keys"]  # take, then record
    assert await idempotency.once_per_key(ctx, "hold", user, _hold(key), _never,
                                          _refused) == {"id": 1, "status": "held"}


def test_a_hold_body_without_a_type_keeps_the_fingerprint_it_had_before_type_existed():
    """A key taken before best-available holds had ``type`` still matches the same request
    retried after the upgrade (a body with a type is another request)."""
    before = {"schedule_id": 1, "seats": None, "quantity": 2, "together": True,
              "customer_id": None}
    expected = hashlib.sha256(orjson.dumps(["hold", before], option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()
    assert idempotency.fingerprint("hold", c.Hold(schedule_id=1, quantity=2)) == expected
    assert idempotency.fingerprint(
        "hold", c.Hold(schedule_id=1, quantity=2, type="Child")) != expected
