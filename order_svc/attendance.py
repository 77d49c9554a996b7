"""Attendance: ``ticket.checked_in`` marks the ticket's sale row as checked in at the door.

Like every event here it may arrive before the sale it belongs to (then it writes the sale
row, whose ``sold_at`` the ``ticket.sold`` event fills in later) and more than once (the
first check-in time stays). Box office counts per show the tickets ``checked_in`` and, once
the show has ended, the ``no_show``s: sold, not refunded, never checked in.
"""

from __future__ import annotations

from messages.contracts import door as d
from messages.db import PlainTx, to_db
from messages.service import App

CHECKED_IN = (
    "INSERT INTO sales (reservation_id, ticket_id, schedule_id, play_id, studio_id, seat_row, "
    "seat_col, price, sold_at, refunded, checked_in_at) VALUES (:reservation_id, :ticket_id, "
    ":schedule_id, :play_id, :studio_id, :row, :col, :price, NULL, FALSE, :checked_in_at) "
    "ON DUPLICATE KEY UPDATE checked_in_at = COALESCE(checked_in_at, VALUES(checked_in_at))")


async def checked_in(event: d.TicketCheckedIn, tx: PlainTx, app: App) -> None:
    tx.later(CHECKED_IN, {
        "reservation_id": event.reservation_id, "ticket_id": event.ticket_id,
        "schedule_id": event.schedule_id, "play_id": event.play_id,
        "studio_id": event.studio_id, "row": event.row, "col": event.col,
        "price": event.price, "checked_in_at": to_db(event.checked_in_at)})
