"""ticket_svc's SQL text and its rows turned into contract models.

The sale path is plain SQL through ``text()`` (it is the hot path, and each command is a few
statements). The hold's lifecycle in these statements comes from ``ticket_svc.domain``
(``HELD``, ``hold_is_due_sql``, ``set_hold_status``), so the rule is written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from messages.contracts import ticket as c
from messages.db import as_utc
from ticket_svc import domain
from ticket_svc.domain import EXPIRED, PAID, REFUNDED, SOLD


def seats_sql(keys: list[tuple[int, int]]) -> str:
    """``((seat_row = r AND seat_col = c) OR …)``: the seats by full primary key. Not the row
    constructor ``(seat_row, seat_col) IN ((r, c))``: with a single pair MariaDB 10.11 reads
    (and under REPEATABLE READ locks) every seat of the show. The values are validated ints."""
    return "(" + " OR ".join(f"(seat_row = {int(r)} AND seat_col = {int(c)})"
                             for r, c in keys) + ")"


# -- statements ----------------------------------------------------------------------------

# One statement, so one consistent read: the seats and the version they are at.
SEAT_MAP = text(
    "SELECT sc.seat_rows, sc.seat_cols, sc.price, sc.prices, sc.no_single_gaps, "
    "sc.starts_at, sc.status AS show_status, "
    "COALESCE(v.version, 0) AS version, "
    "s.seat_row, s.seat_col, s.status, s.zone "
    "FROM schedules sc LEFT JOIN seat_versions v ON v.schedule_id = sc.id "
    "LEFT JOIN seats s ON s.schedule_id = sc.id "
    "WHERE sc.id = :id ORDER BY s.seat_row, s.seat_col")

SHOW_SHARED = text("SELECT id FROM schedules WHERE id = :id LOCK IN SHARE MODE")

INSERT_RESERVATION = text(
    "INSERT INTO reservations (schedule_id, user_id, status, seats, total, currency, "
    f"expires_at, created_at) VALUES (:schedule_id, :user_id, '{domain.HELD}', :seats, :total, "
    ":currency, :expires_at, :created_at)")

RESERVATION = text(
    "SELECT r.id, r.schedule_id, r.user_id, r.status, r.seats, r.total, r.currency, "
    "r.expires_at, r.created_at, r.paid_at, s.play_id, s.play_name, s.studio_id, s.starts_at, "
    "s.status AS schedule_status "
    "FROM reservations r JOIN schedules s ON s.id = r.schedule_id WHERE r.id = :id")

# One reservation by its primary key: FORCE INDEX because with no hint MariaDB 10.11 reads
# these through ix_reservations_due (status, expires_at, id), a range over every live hold,
# and under REPEATABLE READ locks it all: a payment, a cancel and an expiry then locked each
# other's holds (and the gap where new holds go) and deadlocked (issue 16 point 7).
MARK_PAID = text(
    f"UPDATE reservations FORCE INDEX (PRIMARY) SET {domain.set_hold_status(PAID)}, "
    "paid_at = :now, "
    f"payment_ref = :ref WHERE id = :id AND {domain.still_held_sql()} "
    f"AND NOT {domain.hold_is_due_sql()}")

# ``:status`` is expired or cancelled (``domain.set_hold_status`` checks the callers' names)
END_HOLD = text(
    "UPDATE reservations FORCE INDEX (PRIMARY) SET status = :status, released_at = :now "
    f"WHERE id = :id AND {domain.still_held_sql()}")

EXPIRE_HOLD = text(
    f"UPDATE reservations FORCE INDEX (PRIMARY) SET {domain.set_hold_status(EXPIRED)}, "
    "released_at = :now "
    f"WHERE id = :id AND {domain.still_held_sql()} AND {domain.hold_is_due_sql()}")

# SKIP LOCKED: two processes sweeping at once take different holds.
DUE_HOLDS = text(
    "SELECT id, schedule_id, user_id, seats FROM reservations "
    f"WHERE {domain.still_held_sql()} AND {domain.hold_is_due_sql(':due')} "
    "ORDER BY expires_at LIMIT :n FOR UPDATE SKIP LOCKED")

HOLDS_OF_SHOW = text(
    "SELECT id, schedule_id, user_id, seats FROM reservations "
    f"WHERE schedule_id = :id AND {domain.still_held_sql()} FOR UPDATE")

TICKETS_OF_RESERVATION = text(
    "SELECT id, reservation_id, schedule_id, user_id, seat_row, seat_col, price, ticket_type, "
    "status, sold_at, refunded_at FROM tickets WHERE reservation_id = :id ORDER BY id")

TICKET = text(
    "SELECT t.id, t.reservation_id, t.schedule_id, t.user_id, t.seat_row, t.seat_col, t.price, "
    "t.ticket_type, t.status, t.sold_at, t.refunded_at, t.checked_in_at, s.play_id, "
    "s.studio_id, s.starts_at "
    "FROM tickets t JOIN schedules s ON s.id = t.schedule_id WHERE t.id = :id")

TICKET_LOCKED = text(TICKET.text + " FOR UPDATE")  # a locking read sees the latest commit

MARK_REFUNDED = text(
    f"UPDATE tickets SET status = '{REFUNDED}', refunded_at = :now "
    f"WHERE id = :id AND status = '{SOLD}' AND checked_in_at IS NULL")

FREE_SOLD_SEAT = text(
    "UPDATE seats SET status = 'available', reservation_id = NULL "
    "WHERE schedule_id = :schedule_id AND seat_row = :row AND seat_col = :col "
    f"AND status = '{SOLD}' AND reservation_id = :reservation_id")


def seats_of_hold(assignment: str, seats: list[dict[str, int]]):
    """UPDATE the seats a hold owns, found by primary key in key order (as a hold claims
    them), never through an index range: a range lock there would make holds and payments
    of neighbouring reservations deadlock."""
    keys = sorted((s["row"], s["col"]) for s in seats)
    return text(f"UPDATE seats SET {assignment} WHERE schedule_id = :sid AND "
                f"{seats_sql(keys)} AND reservation_id = :id AND status = '{domain.HELD}'")


# -- rows → contract models ------------------------------------------------------------------

def seats_of(row) -> list[dict[str, int]]:
    seats = row.seats
    return orjson.loads(seats) if isinstance(seats, str | bytes) else seats


def ticket_of(row) -> c.Ticket:
    return c.Ticket(id=row.id, reservation_id=row.reservation_id, schedule_id=row.schedule_id,
                    user_id=row.user_id, row=row.seat_row, col=row.seat_col, price=row.price,
                    type=row.ticket_type, status=row.status, sold_at=as_utc(row.sold_at),
                    refunded_at=as_utc(row.refunded_at))


def reservation_of(row, status: str | None = None, paid_at: datetime | None = None,
                   tickets: list[c.Ticket] | None = None) -> c.Reservation:
    return c.Reservation(
        id=row.id, schedule_id=row.schedule_id, user_id=row.user_id,
        seats=[c.PricedSeat(**s) for s in seats_of(row)], total=row.total,
        currency=row.currency, status=status or row.status, expires_at=as_utc(row.expires_at),
        created_at=as_utc(row.created_at), paid_at=paid_at or as_utc(row.paid_at),
        tickets=tickets or [])


def ticket_refunded(row, play_id: int, studio_id: int, currency: str, reason: str,
                    now: datetime, seats_version: int | None = None) -> c.TicketRefunded:
    """The one way a ``ticket.refunded`` event is built, from a ticket's row."""
    return c.TicketRefunded(
        ticket_id=row.id, reservation_id=row.reservation_id, user_id=row.user_id,
        schedule_id=row.schedule_id, play_id=play_id, studio_id=studio_id,
        row=row.seat_row, col=row.seat_col, price=row.price, currency=currency,
        reason=reason, refunded_at=now, seats_version=seats_version,
        ticket_type=row.ticket_type)


def plain(result: Any) -> Any:
    """A reply as JSON data (a model, or data already)."""
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result
