"""ticket_svc's rules, without I/O: when sales and refunds are open, seat keys and prices, and
the lifecycle of a hold and of a ticket.

A hold (a reservation) is ``held`` until it is paid, expires or is cancelled, and never held
again; a sold ticket may be refunded, and that is its end::

    held ──▶ paid | expired | cancelled          sold ──▶ refunded

The SQL of ``ticket_svc.queries`` is built from the names and predicates here, so the rule
and the statements that apply it cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from messages import errors
from messages.contracts import ticket as c
from messages.contracts.ticket import Seat

SCHEDULED = "scheduled"

# -- the hold's lifecycle ----------------------------------------------------------------------

HELD, PAID, EXPIRED, CANCELLED = "held", "paid", "expired", "cancelled"
SOLD, REFUNDED = "sold", "refunded"

HOLD_TRANSITIONS: dict[str, frozenset[str]] = {
    HELD: frozenset({PAID, EXPIRED, CANCELLED}), PAID: frozenset(), EXPIRED: frozenset(),
    CANCELLED: frozenset()}
TICKET_TRANSITIONS: dict[str, frozenset[str]] = {SOLD: frozenset({REFUNDED}),
                                                 REFUNDED: frozenset()}


def hold_may_become(status: str, new_status: str) -> bool:
    """held → paid | expired | cancelled; an ended hold never changes again."""
    return new_status in HOLD_TRANSITIONS.get(status, frozenset())


def ticket_may_become(status: str, new_status: str) -> bool:
    """sold → refunded, once."""
    return new_status in TICKET_TRANSITIONS.get(status, frozenset())


def hold_expires_at(held_at: datetime, hold_seconds: float) -> datetime:
    """An unpaid hold lasts ``hold_seconds`` (``TTMS_HOLD_SECONDS``) from when it was made."""
    return held_at + timedelta(seconds=hold_seconds)


def hold_is_due(expires_at: datetime, now: datetime) -> bool:
    """Due from its expiry time on: it may no longer be paid, and is released."""
    return expires_at <= now


def hold_is_due_sql(now: str = ":now") -> str:
    """``hold_is_due`` as a SQL predicate over ``reservations.expires_at``."""
    return f"expires_at <= {now}"


def still_held_sql() -> str:
    """A hold that may still change: the condition of every UPDATE that ends one."""
    return f"status = '{HELD}'"


def set_hold_status(new_status: str) -> str:
    """The SET of an UPDATE ending a hold, refusing at build time a transition not above."""
    if not hold_may_become(HELD, new_status):
        raise ValueError(f"a hold cannot become {new_status}")
    return f"status = '{new_status}'"


# -- sales and refunds -------------------------------------------------------------------------

def check_sales_open(status: str, starts_at: datetime, now: datetime,
                     cutoff_minutes: int) -> None:
    """Sales close ``cutoff_minutes`` before the show, and for good when it is cancelled."""
    if status != SCHEDULED:
        raise errors.SalesClosed("the show was cancelled")
    if now >= starts_at - timedelta(minutes=cutoff_minutes):
        raise errors.SalesClosed(
            f"sales close {cutoff_minutes} minutes before the show starts")


def seat_price(zone: str | None, prices: dict[str, int], base: int) -> int:
    """A seat costs its zone's price, or the show's when its zone (or it) has none."""
    return prices.get(zone, base) if zone is not None else base


def zone_prices(stored: str | None) -> dict[str, int]:
    """A show's ``prices`` column → ``{zone: price}``."""
    return orjson.loads(stored) if stored else {}


def ticket_types(stored: str | None) -> dict[str, dict[str, Any]]:
    """A show's ``ticket_types`` column → ``{name: {name, percent | amount}}``."""
    return {t["name"]: t for t in orjson.loads(stored)} if stored else {}


def type_price(price: int, ticket_type: dict[str, Any] | None) -> int:
    """A seat's price as a ticket type: a share of it (rounded half up to the minor unit) or
    a fixed amount; the full price without a type."""
    if ticket_type is None:
        return price
    if ticket_type.get("amount") is not None:
        return int(ticket_type["amount"])
    return (price * int(ticket_type["percent"]) + 50) // 100


def unknown_types(wanted: dict[tuple[int, int], str],
                  offered: dict[str, Any]) -> list[dict[str, Any]]:
    """The seats held as a type the play does not offer, as the contract's ``errors``."""
    return [errors.invalid(["body", "seats", {"row": r, "col": c}, "type"], "ticket_type_unknown",
                           f"the play offers no ticket type {name!r}", name=name)
            for (r, c), name in sorted(wanted.items()) if name not in offered]


def check_refund_open(starts_at: datetime, now: datetime) -> None:
    if now >= starts_at:
        raise errors.RefundClosed("refunds close when the show starts")


def seat_keys(seats: list[Seat]) -> list[tuple[int, int]]:
    """The requested seats as (row, col), sorted: every transaction claims seats in the same
    order, so two overlapping holds wait for each other instead of deadlocking."""
    return sorted({(s.row, s.col) for s in seats})


NOTHING_HELD = c.NOTHING_HELD
seats_not_available = c.seats_not_available  # the gateway refuses with the same words


def sales_close_at(status: str, starts_at: datetime, cutoff_minutes: int) -> datetime | None:
    """When ``check_sales_open`` starts refusing (None: it refuses already, whatever the
    time)."""
    return starts_at - timedelta(minutes=cutoff_minutes) if status == SCHEDULED else None


def seats_unavailable(details: list[dict[str, Any]]) -> errors.SeatUnavailable:
    """The one refusal of a hold that cannot have every seat it asked for."""
    return errors.SeatUnavailable(NOTHING_HELD, details=details)


# -- the single-gap rule (a show's ``no_single_gaps``) -----------------------------------------

TAKEN = ("held", "sold")


def single_gaps(status: dict[tuple[int, int], str], keys: list[tuple[int, int]],
                ) -> list[tuple[int, int]]:
    """The free seats a hold of ``keys`` would leave alone: a free seat next to one of them
    whose other side is also taken, or an aisle, a broken seat or the row's end (``status``
    has no such position). ``status``: the seats of the hold's rows as they are now."""
    mine = set(keys)

    def blocked(k: tuple[int, int]) -> bool:
        return k in mine or status.get(k, "unavailable") != "available"

    lone = set()
    for r, col in keys:
        for near in ((r, col - 1), (r, col + 1)):
            if near not in mine and status.get(near) == "available" \
                    and blocked((r, near[1] - 1)) and blocked((r, near[1] + 1)):
                lone.add(near)
    return sorted(lone)


def single_gap_refusal(lone: list[tuple[int, int]]) -> errors.SingleSeatGap:
    return errors.SingleSeatGap(
        "the show allows no single seat left alone; this hold would leave one",
        details=[errors.invalid(["body", "seats", {"row": r, "col": col}], "lone_seat",
                                f"row {r} col {col} would be left alone", row=r, col=col)
                 for r, col in lone])


# -- the door --------------------------------------------------------------------------------

# When play_svc did not say when a show ends (a copy made before shows carried ends_at).
SHOW_LENGTH_WHEN_UNKNOWN = timedelta(hours=3)


def checkin_window(starts_at: datetime, ends_at: datetime | None,
                   opens_minutes: int) -> tuple[datetime, datetime]:
    """The door is open from ``opens_minutes`` (``TTMS_CHECKIN_OPENS_MINUTES``, 120) before the
    show until it ends."""
    return (starts_at - timedelta(minutes=opens_minutes),
            ends_at or starts_at + SHOW_LENGTH_WHEN_UNKNOWN)


def check_checkin_open(window: tuple[datetime, datetime], at: datetime) -> None:
    opens, closes = window
    if at < opens:
        raise errors.CheckinClosed(f"the door opens at {opens.isoformat()}")
    if at >= closes:
        raise errors.CheckinClosed("the show has ended")
