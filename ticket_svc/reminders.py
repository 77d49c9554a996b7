"""Reminder mail: a show's buyers hear of it ``TTMS_REMINDER_MINUTES`` before it starts.

Every sweep interval each ticket_svc process looks for the shows on sale that start within that
time and whose reminder has not gone out. A conditional UPDATE of the show's ``reminded_at``
makes one process the one that sends it, and in that transaction it emits one
``ticket.reminder`` per buyer with their tickets still valid that were bought before the
reminder time (a ticket bought later was bought knowing the time). user_svc mails it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from itertools import groupby

from sqlalchemy import text

from messages.contracts import ticket as c
from messages.contracts.base import utcnow
from messages.db import as_utc, to_db
from messages.service import App
from ticket_svc.domain import SOLD

log = logging.getLogger("ttms.ticket.reminders")

_DUE = text(
    "SELECT id FROM schedules WHERE reminded_at IS NULL AND status = 'scheduled' "
    "AND starts_at > :now AND starts_at <= :horizon ORDER BY starts_at LIMIT 100")
_CLAIM = text(
    "UPDATE schedules SET reminded_at = :now WHERE id = :id AND reminded_at IS NULL")
_SHOW = text("SELECT play_name, starts_at FROM schedules WHERE id = :id")
_TICKETS = text(
    "SELECT id, user_id, seat_row, seat_col FROM tickets WHERE schedule_id = :id "
    f"AND status = '{SOLD}' AND sold_at <= :bought_by ORDER BY user_id, seat_row, seat_col")


async def remind_forever(app: App) -> None:
    if not app.settings.reminder_minutes:
        return
    while True:
        await asyncio.sleep(app.settings.sweep_interval_seconds)
        try:
            await remind_due(app)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try next round
            log.warning("sending show reminders failed (%s); will retry", exc)


async def remind_due(app: App) -> int:
    """Send the reminders of the shows due now → how many shows this process reminded."""
    now = utcnow()
    ahead = timedelta(minutes=app.settings.reminder_minutes)
    async with app.db.read() as conn:
        due = list((await conn.execute(_DUE, {"now": to_db(now),
                                              "horizon": to_db(now + ahead)})).scalars())
    sent = 0
    for schedule_id in due:
        async with app.db.transaction() as tx:
            if (await tx.execute(_CLAIM, {"id": schedule_id, "now": to_db(now)})).rowcount != 1:
                continue  # another process has it
            show = (await tx.execute(_SHOW, {"id": schedule_id})).first()
            starts_at = as_utc(show.starts_at)
            rows = (await tx.execute(_TICKETS, {"id": schedule_id,
                                                "bought_by": to_db(starts_at - ahead)})).all()
            for user_id, tickets in groupby(rows, key=lambda r: r.user_id):
                tx.emit(c.ShowReminder(
                    user_id=user_id, schedule_id=schedule_id, play_name=show.play_name,
                    starts_at=starts_at, tickets=[c.RemindedTicket(
                        ticket_id=t.id, row=t.seat_row, col=t.seat_col) for t in tickets]))
        sent += 1
    return sent
