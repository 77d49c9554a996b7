"""Idempotency-Keys: the first answer to a keyed hold or pay, given again to a retry.

A key is taken for a request (``take``), its answer recorded (``Key.record`` with the
transaction's effect, or ``Key.record_alone``), forgotten when the request failed without an
answer (``forget``), and purged after ``KEY_LIFETIME`` by the sweep (``purge``). On plain
asyncmy: a keyed request costs a round trip more than an unkeyed one (taking the key), and a
refusal two. ("Claim" is kept for seats: see ``ticket_svc.holds``.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import asyncmy.errors
import orjson
from sqlalchemy import text

from messages import errors
from messages.contracts.base import Command, utcnow
from messages.db import PlainTx, as_utc, to_db
from messages.service import App, Context
from ticket_svc.queries import plain

STALE_PENDING_SECONDS = 30  # a key left pending this long was orphaned by a crash
KEY_LIFETIME = timedelta(hours=24)

RECORD_KEY = text(
    "UPDATE idempotency_keys SET state = 'done', ok = :ok, answer = :answer "
    "WHERE user_id = :user_id AND command = :command AND idem_key = :key")


class Key:
    """One Idempotency-Key of one user, and the request it came with. The first answer is
    recorded in the same transaction as the effect when there is one, so a crash never
    separates them. The key is the user's whatever the command: the same key with another
    request (``fingerprint``) is refused, 422."""

    __slots__ = ("user_id", "command", "key", "fingerprint", "recorded")

    def __init__(self, user_id: int, command: str, key: str, fingerprint: str) -> None:
        self.user_id, self.command, self.key = user_id, command, key
        self.fingerprint = fingerprint
        self.recorded = False

    def _args(self, *first: Any) -> tuple[Any, ...]:
        return (*first, self.user_id, self.command, self.key)

    def _answer(self, ok: bool, answer: Any) -> dict[str, Any]:
        return {"ok": 1 if ok else 0, "answer": orjson.dumps(answer).decode(),
                "user_id": self.user_id, "command": self.command, "key": self.key}

    def record(self, tx: PlainTx, ok: bool, answer: Any,
               finish: Callable[[str], str] | None = None) -> None:
        """Record the answer with the transaction's effect (it travels with the commit).
        ``finish``: what the answer's JSON text becomes in the statement (a figure the server
        sets at the commit, ``ticket_svc.versions.Raised.into``)."""
        params = self._answer(ok, answer)
        if finish is not None:
            params["answer"] = finish(params["answer"])
        tx.later(RECORD_KEY, params)
        self.recorded = True

    async def record_alone(self, db, ok: bool, answer: Any) -> None:
        """Record an answer that had no effect to commit with (a refusal, or a read)."""
        await db.autocommit(RECORD_KEY, self._answer(ok, answer))
        self.recorded = True

    def rolled_back(self) -> None:
        """The transaction that recorded the answer was rolled back, and the answer with it."""
        self.recorded = False


def rolled_back(key: Key | None) -> Callable[[], None] | None:
    """``retry_deadlocks``' ``before_retry`` for a request with or without a key."""
    return None if key is None else key.rolled_back


Keyed = Callable[[Key | None], Awaitable[Any]]


def fingerprint(command: str, cmd: Command) -> str:
    """The request a key came with: its route (the command stands for the method and the
    path's template, ``id`` for the path's id) and its body, as canonical JSON (validated
    values, keys sorted), hashed."""
    request = cmd.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps([command, request], option=orjson.OPT_SORT_KEYS)
                          ).hexdigest()


async def once_per_key(ctx: Context, command: str, user_id: int, cmd: Command,
                       run: Keyed, refuse_early: Callable[[], Awaitable[None]] | None = None
                       ) -> Any:
    """``run`` the request, or give the first answer to the same key again.

    ``refuse_early``: a check without effect that may refuse the request (a hold of seats
    already taken: most of an on-sale rush). A keyed request it refuses writes its key once,
    already answered (``record_refusal``), instead of taking it and then recording the answer:
    one commit, not two. A key already there is answered as usual."""
    key = cmd.idempotency_key
    if key is None:
        return await run(None)
    idem = Key(user_id, command, key, fingerprint(command, cmd))
    if refuse_early is not None:
        try:
            await refuse_early()
        except errors.ServiceError as exc:
            if exc.status >= 500 or await record_refusal(ctx.app.db, idem, exc):
                raise
            # The key was there already: its first answer stands, given below.
    first = await take(ctx.app, idem)
    if first is not None:
        if first.fingerprint is not None and first.fingerprint != idem.fingerprint:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; nothing was done",
                details=[errors.invalid(["header", "Idempotency-Key"], "key_reused",
                                        "already used with another method, path or body")])
        if first.state != "done":
            raise errors.Conflict("a request with this Idempotency-Key is still being handled",
                                  retry_after=1)
        answer = orjson.loads(first.answer)
        if first.ok:
            return answer
        raise errors.ServiceError.from_wire(answer)
    db = ctx.app.db
    try:
        result = await run(idem)
    except errors.ServiceError as exc:
        if exc.status < 500:  # a refusal is an answer too; a failure may be retried
            await idem.record_alone(db, False, exc.to_wire())
        else:
            await forget(db, idem)
        raise
    except BaseException:
        await forget(db, idem)
        raise
    if not idem.recorded:
        await idem.record_alone(db, True, plain(result))
    return result


async def record_refusal(db, idem: Key, refusal: errors.ServiceError) -> bool:
    """Write the key with its answer, a refusal, in one statement; False if the key was there
    already (its first answer stands: the caller goes the usual way, through ``take``)."""
    return bool(await db.autocommit(
        "INSERT IGNORE INTO idempotency_keys (user_id, command, idem_key, fingerprint, state, "
        "ok, answer, created_at) VALUES (%s, %s, %s, %s, 'done', 0, %s, %s)",
        (*idem._args(), idem.fingerprint, orjson.dumps(refusal.to_wire()).decode(),
         to_db(utcnow()))))


class KeyRow(NamedTuple):
    state: str
    ok: int | None
    answer: str | None
    created_at: datetime
    fingerprint: str | None  # None: recorded before fingerprints were


class _Busy:
    fingerprint = None
    state = "pending"


_BUSY = _Busy()


async def take(app: App, idem: Key) -> KeyRow | _Busy | None:
    """Take the key for this request: None if taken, else the row that holds it.

    Each step is a statement by itself (autocommit) and only the first and the rare take-over
    write: concurrent duplicates then never lock each other into a deadlock."""
    now = utcnow()
    db = app.db
    taken = await db.autocommit(
        "INSERT IGNORE INTO idempotency_keys (user_id, command, idem_key, fingerprint, state, "
        "created_at) VALUES (%s, %s, %s, %s, 'pending', %s)",
        (*idem._args(), idem.fingerprint, to_db(now)))
    if taken:
        return None
    found = await db.fetch(
        "SELECT state, ok, answer, created_at, fingerprint FROM idempotency_keys "
        "WHERE user_id = %s AND idem_key = %s", (idem.user_id, idem.key))
    first = KeyRow(*found[0]) if found else None
    expired = first is not None and as_utc(first.created_at) < now - KEY_LIFETIME
    orphaned = first is not None and first.state == "pending" and as_utc(
        first.created_at) < now - timedelta(seconds=STALE_PENDING_SECONDS) and (
        first.fingerprint in (None, idem.fingerprint))  # another request's key stays refused
    if first is None or not (expired or orphaned):
        return first or _BUSY
    # Expired, or left pending by a crash: take it over, if nobody else does it first.
    try:
        taken = await db.autocommit(
            "UPDATE idempotency_keys SET state = 'pending', ok = NULL, answer = NULL, "
            "command = %s, fingerprint = %s, created_at = %s WHERE user_id = %s "
            "AND idem_key = %s AND created_at = %s",
            (idem.command, idem.fingerprint, to_db(now), idem.user_id, idem.key,
             first.created_at))
    except asyncmy.errors.Error:
        taken = 0
    return None if taken else _BUSY


async def forget(db, idem: Key) -> None:
    await db.autocommit(
        "DELETE FROM idempotency_keys WHERE user_id = %s AND command = %s AND idem_key = %s "
        "AND state = 'pending'", idem._args())


async def purge(app: App) -> None:
    """Forget keys older than ``KEY_LIFETIME`` (a few thousand at a time)."""
    async with app.db.transaction() as tx:
        await tx.execute(text(
            "DELETE FROM idempotency_keys WHERE created_at < :before LIMIT 5000"),
            {"before": to_db(utcnow() - KEY_LIFETIME)})
