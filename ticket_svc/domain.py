"""ticket_svc's rules, without I/O: when sales and refunds are open, seat keys and prices."""

from __future__ import annotations

from datetime import datetime, timedelta

from messages import errors
from messages.contracts.ticket import Seat

SCHEDULED = "scheduled"


def check_sales_open(status: str, starts_at: datetime, now: datetime,
                     cutoff_minutes: int) -> None:
    """Sales close ``cutoff_minutes`` before the show, and for good when it is cancelled."""
    if status != SCHEDULED:
        raise errors.SalesClosed("the show was cancelled")
    if now >= starts_at - timedelta(minutes=cutoff_minutes):
        raise errors.SalesClosed(
            f"sales close {cutoff_minutes} minutes before the show starts")


def check_refund_open(starts_at: datetime, now: datetime) -> None:
    if now >= starts_at:
        raise errors.RefundClosed("refunds close when the show starts")


def seat_keys(seats: list[Seat]) -> list[tuple[int, int]]:
    """The requested seats as (row, col), sorted: every transaction claims seats in the same
    order, so two overlapping holds wait for each other instead of deadlocking."""
    return sorted({(s.row, s.col) for s in seats})


def seats_sql(keys: list[tuple[int, int]]) -> str:
    """``((seat_row = r AND seat_col = c) OR …)``: the seats by full primary key. Not the row
    constructor ``(seat_row, seat_col) IN ((r, c))``: with a single pair MariaDB 10.11 reads
    (and under REPEATABLE READ locks) every seat of the show. The values are validated ints."""
    return "(" + " OR ".join(f"(seat_row = {int(r)} AND seat_col = {int(c)})"
                             for r, c in keys) + ")"
