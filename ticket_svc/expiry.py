"""How a hold expires.

Each hold goes into a delay queue (``messages.delay``: one waiting queue per hold length, its
TTL dead-letters the hold back here when due, ``domain.hold_expires_at``); ``expire`` then
releases it if it is still held and due (``domain.hold_is_due``). Holds this process saw end
are remembered (``EndedHolds``), so their return costs nothing. A sweep every
``TTMS_SWEEP_INTERVAL_SECONDS`` releases holds overdue by more than ``SWEEP_GRACE_SECONDS``
that the broker never returned. Paying checks the expiry itself (``ticket_svc.payments``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, text

from messages.contracts.base import utcnow
from messages.db import to_db
from messages.delay import Delay
from messages.service import App
from ticket_svc import idempotency, queries
from ticket_svc.domain import EXPIRED
from ticket_svc.payments import free_seats, release

log = logging.getLogger("ttms.ticket")

SWEEP_GRACE_SECONDS = 1.0  # the sweep takes holds overdue by more than this
PURGE_KEYS_EVERY_SECONDS = 600


class EndedHolds:
    """Holds this process saw end (paid, cancelled, expired), so that their return from the
    delay queue costs no transaction. A hold that ended never becomes held again, so the
    memory can only be out of date by missing a hold (another process ended it, or this one
    restarted, or it was forgotten to stay small): then the UPDATE runs as before and
    changes nothing. The database still decides every hold."""

    LIMIT = 200_000  # the oldest are forgotten first; each is an int

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, reservation_id: int) -> None:
        self._ids[reservation_id] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def __contains__(self, reservation_id: int) -> bool:
        return reservation_id in self._ids


def enqueue(app: App, reservation_id: int) -> None:
    """Hand a new hold to the delay queue in the background: the buyer's answer does not
    wait for the broker's confirm, and a broker that is away costs the hold nothing (the
    sweep releases it instead)."""
    delay = app.state.expiry
    if delay is None:
        return
    app.state.background.start(_publish(delay, reservation_id))


async def _publish(delay: Delay, reservation_id: int) -> None:
    try:
        await delay.put({"reservation_id": reservation_id})
    except Exception as exc:  # noqa: BLE001 - the sweep is the fallback for this hold
        log.warning("could not put hold %s into the delay queue (%s)", reservation_id, exc)


async def expire(app: App, reservation_id: int) -> None:
    """A hold came back from the delay queue: release it if it is still unpaid and due.
    Usually it was paid or cancelled meanwhile: by this process (nothing to do) or by another
    (one UPDATE that changes nothing, one round trip with its BEGIN)."""
    ended = app.state.ended
    if reservation_id in ended:
        return
    now = utcnow()
    async with app.db.plain_transaction(begin_later=True) as tx:
        done = await tx.execute(queries.EXPIRE_HOLD, {"id": reservation_id, "now": to_db(now)})
        if done.rowcount == 1:
            row = (await tx.execute(queries.RESERVATION, {"id": reservation_id})).first()
            await free_seats(tx, row, row.play_id, EXPIRED, now)
    if done.rowcount == 1:
        ended.add(reservation_id)


async def consume_due_holds(app: App) -> None:
    """Consume the holds the delay queue brings back when due."""

    async def due(payload: dict[str, Any]) -> None:
        await expire(app, int(payload["reservation_id"]))

    delay = Delay(app.broker, app.settings.names, "ticket.holds", app.settings.hold_seconds,
                  due)
    app.state.expiry = delay
    await delay.start()


async def sweep_forever(app: App) -> None:
    """Release overdue holds the broker never returned (lost with a broker, or a process that
    died before queueing them), and purge day-old idempotency keys."""
    interval = app.settings.sweep_interval_seconds
    purged = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            while await sweep_once(app) > 0:
                pass
            if loop.time() - purged > PURGE_KEYS_EVERY_SECONDS:
                purged = loop.time()
                await idempotency.purge(app)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try next round
            log.warning("sweep failed (%s); will retry", exc)
        await asyncio.sleep(interval)


async def sweep_once(app: App, batch: int = 200) -> int:
    """Release up to ``batch`` holds overdue by more than SWEEP_GRACE_SECONDS: the delay queue
    releases holds when due; the sweep leaves it that moment, so the two rarely race."""
    now = utcnow()
    async with app.db.transaction() as tx:
        due = (await tx.execute(queries.DUE_HOLDS, {
            "due": to_db(now - timedelta(seconds=SWEEP_GRACE_SECONDS)), "n": batch})).all()
        if not due:
            return 0
        plays = {r.id: r.play_id for r in (await tx.execute(text(
            "SELECT id, play_id FROM schedules WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)),
            {"ids": sorted({r.schedule_id for r in due})})).all()}
        for row in due:
            await release(tx, row, plays.get(row.schedule_id, 0), EXPIRED, EXPIRED, now)
    if due:
        log.info("swept %d overdue holds", len(due))
    return len(due)
