"""order_svc's rules, without I/O: an order's status from the facts known about it, and the
box-office arithmetic."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from messages.contracts.order import OrderStatus


def order_status(*, paid: bool, ticket_count: int | None, refunded_count: int,
                 release_reason: str | None) -> OrderStatus:
    """The status that follows from the facts, whatever order they arrived in.

    A sale outranks a release (a paid hold is never released); refunds decide between paid,
    partially and fully refunded. A refund known before its sale still means the order was
    paid: it counts as partially refunded until ``ticket.sold`` says how many tickets there are.
    """
    if paid or refunded_count:
        if refunded_count == 0:
            return OrderStatus.paid
        if ticket_count is not None and refunded_count >= ticket_count:
            return OrderStatus.refunded
        return OrderStatus.partially_refunded
    if release_reason == "expired":
        return OrderStatus.expired
    if release_reason is not None:
        return OrderStatus.cancelled  # cancelled by the buyer, or the show was cancelled
    return OrderStatus.held


def seat_count(seats: Iterable[Any]) -> int:
    """Places of kind ``seat`` in a seat-map snapshot."""
    return sum(1 for s in seats if str(getattr(s, "kind", "seat")) == "seat")


def no_shows(sold: int, refunded: int, checked_in: int) -> int:
    """After a show: the tickets sold and kept whose holder never came."""
    return max(0, sold - refunded - checked_in)


def occupancy(sold: int, refunded: int, seats: int | None) -> float | None:
    """Tickets sold and not refunded per seat of the show, 4 decimals; None if seats unknown."""
    if not seats:
        return None
    return round((sold - refunded) / seats, 4)
