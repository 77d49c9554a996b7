"""ticket_svc: seats for sale, holds (reservations), payment, tickets, refunds.

Reservation ids are integers; order_svc uses the reservation id as the order id.
Money is integer minor units with ``currency``; times are UTC.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from messages import errors
from messages.contracts.base import Actor, Command, Event, JsonBool, PageQuery, Strict, UtcDatetime

MAX_SEATS_PER_HOLD = 10

Position = Annotated[int, Field(ge=1, le=100)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class SeatStatus(StrEnum):
    available = "available"
    held = "held"
    sold = "sold"
    unavailable = "unavailable"  # aisle or broken: not a seat


class ReservationStatus(StrEnum):
    """A hold ends once: ``held``, then ``paid``, ``expired`` (not paid in time) or
    ``cancelled``."""

    held = "held"
    paid = "paid"
    expired = "expired"
    cancelled = "cancelled"


class TicketStatus(StrEnum):
    """A ticket is ``sold`` when its hold is paid, and may then be ``refunded``."""

    sold = "sold"
    refunded = "refunded"


# -- shapes in answers and events ----------------------------------------------------------

# One of the play's ticket types (issue 20.2); absent: the full price.
TicketTypeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                  max_length=40)]


class Seat(Strict):
    row: Position
    col: Position
    type: TicketTypeName | None = None


class PricedSeat(BaseModel):
    row: int
    col: int
    price: int
    # The ticket type it was held as; listed only then (absent: full price).
    type: str | None = Field(None, exclude_if=lambda v: v is None)


class SeatForSale(BaseModel):
    row: int
    col: int
    status: SeatStatus
    price: int  # the price of the seat's zone, or the show's
    zone: str | None = None


class SeatsForSale(BaseModel):
    """``GET /schedules/{id}/seats``."""

    schedule_id: int
    rows: int
    cols: int
    available: int
    seats: list[SeatForSale]
    # The show's seat-map version this answer shows (raised by every change of its seats);
    # the ETag is made from it.
    version: int = 0
    # The show's rule for holds (``PATCH /schedules/{id}/seat-rules``): no seat left alone.
    no_single_gaps: bool = False


SEAT_CODES = {"a": "available", "h": "held", "s": "sold", "x": "unavailable"}


class SeatSnapshot(BaseModel):
    """``ticket.seat_snapshot``: a show's seats at one version, one character per position,
    row by row (``SEAT_CODES``; ``-`` where the seat map has no position)."""

    schedule_id: int
    rows: int
    cols: int
    price: int
    version: int
    codes: str
    no_single_gaps: bool = False
    # Price zones: each zone's positions (``(row-1) * cols + col-1``) and each zone's price; a
    # seat in no zone, or in a zone the show gives no price, costs ``price``.
    zones: dict[str, list[int]] = {}
    prices: dict[str, int] = {}
    # When holds start being refused as ``sales_closed`` (None: closed already, or cancelled):
    # until then the gateway may refuse a hold of seats it knows are taken by itself.
    sales_close_at: UtcDatetime | None = None


NOTHING_HELD = "some of the seats are not available; nothing was held"


def seats_not_available(found: dict[tuple[int, int], str | None],
                        keys: list[tuple[int, int]]) -> list[dict]:
    """The requested seats (``keys``: sorted (row, col)) that are not available, as the
    ``errors`` of a ``seat_unavailable`` refusal: ticket_svc's and the gateway's, word for
    word."""
    details = []
    for r, col in keys:
        status = found.get((r, col), "not a seat")
        if status == "unavailable":
            status = "not a seat"
        if status != "available":
            details.append(seat_not_available(r, col, status))
    return details


def seat_not_available(row: int, col: int, status: str) -> dict:
    """One seat of a ``seat_unavailable`` refusal's ``errors``; ``status`` says why (``held``,
    ``sold`` or ``not a seat``)."""
    return errors.invalid(["body", "seats", {"row": row, "col": col}], "seat_unavailable",
                          f"row {row} col {col}: {status}", row=row, col=col, status=status)


class Ticket(BaseModel):
    id: int
    reservation_id: int
    schedule_id: int
    user_id: int
    row: int
    col: int
    price: int
    status: TicketStatus
    type: str | None = None  # the ticket type sold; null: full price
    sold_at: UtcDatetime
    refunded_at: UtcDatetime | None = None
    seats_version: int | None = None  # as in Reservation


class Reservation(BaseModel):
    id: int
    schedule_id: int
    user_id: int
    seats: list[PricedSeat]
    total: int
    currency: str
    status: ReservationStatus
    expires_at: UtcDatetime
    created_at: UtcDatetime
    paid_at: UtcDatetime | None = None
    tickets: list[Ticket] = []  # filled once paid
    # The show's seat-map version after this change (absent when nothing changed now):
    # the gateway's next seat map of the show is at least this new (read your writes).
    seats_version: int | None = None


class SalesActivityLine(BaseModel):
    schedule_id: int
    held: int   # seats currently held (unexpired holds)
    sold: int   # tickets currently sold (not refunded)


class SalesActivity(BaseModel):
    schedules: list[SalesActivityLine]


class LedgerLine(BaseModel):
    schedule_id: int
    play_id: int
    studio_id: int
    tickets_sold: int      # every sale ever made, including tickets refunded later
    tickets_refunded: int
    gross: int             # sum of the prices of tickets_sold
    refunded: int          # sum of the prices of tickets_refunded


class Ledger(BaseModel):
    schedules: list[LedgerLine]


# -- request bodies, as API.md has them ----------------------------------------------------

class HoldBody(Strict):
    """Named ``seats`` (each with its ticket ``type``, or none), or ``quantity`` (and
    ``together``, and one ``type`` for them all): ticket_svc picks the best available
    (``ticket_svc.best``); exactly one of the two."""

    schedule_id: Id
    seats: list[Seat] | None = Field(None, min_length=1, max_length=MAX_SEATS_PER_HOLD,
                                     json_schema_extra={"uniqueItems": True})  # distinct
    quantity: Annotated[int, Field(ge=1, le=MAX_SEATS_PER_HOLD)] | None = None
    together: JsonBool = True  # with quantity: adjacent in one row, nothing between them
    # With quantity: the ticket type of every seat picked. (Left out of the dump when absent,
    # so that an Idempotency-Key's fingerprint of a body without it is what it always was.)
    type: TicketTypeName | None = Field(None, exclude_if=lambda v: v is None)
    customer_id: Id | None = None  # clerk+ only: sell on a customer's account

    @field_validator("seats")
    @classmethod
    def _distinct(cls, seats: list[Seat] | None) -> list[Seat] | None:
        if seats and len(seats) > 1 and len({(s.row, s.col) for s in seats}) != len(seats):
            raise PydanticCustomError("seats_distinct", "seats must be distinct")
        return seats

    @model_validator(mode="after")
    def _seats_or_quantity(self) -> HoldBody:
        if (self.seats is None) == (self.quantity is None):
            raise PydanticCustomError("seats_or_quantity", "give either seats or quantity")
        if self.type is not None and self.seats is not None:
            raise PydanticCustomError("type_with_quantity",
                                     "type goes with quantity; name each seat's type in seats")
        return self


class SeatRulesBody(Strict):
    # A hold may not leave one free seat alone between taken seats, or between a taken seat
    # and an aisle or the row's end (409 single_seat_gap); best-available never leaves one.
    no_single_gaps: JsonBool


class SeatRules(BaseModel):
    """``PATCH /schedules/{id}/seat-rules``."""

    schedule_id: int
    no_single_gaps: bool
    # The show's seat-map version after the change (the seat map carries the rule); for the
    # gateway's read-your-writes, taken out of the answer there.
    seats_version: int | None = None


class PayBody(Strict):
    payment_ref: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class TicketQuery(PageQuery):
    user_id: Id | None = None       # clerk+ only
    schedule_id: Id | None = None


IdempotencyKey = Annotated[str, Field(min_length=1, max_length=100)]


# -- commands ------------------------------------------------------------------------------

class GetSeats(Command, name="ticket.seats"):
    """Anyone: → SeatsForSale, every seat of the show with its status and price; 404 if
    there is no such show."""

    id: int  # schedule id


class SetSeatRules(SeatRulesBody, Command, name="ticket.set_seat_rules"):
    """Manager: → SeatRules. A rule that changed raises the seat-map version and publishes
    ``ticket.show_changed``."""

    id: int  # schedule id


class GetSeatSnapshot(Command, name="ticket.seat_snapshot"):
    """The gateway's seat maps start from this (then follow the ``ticket.*`` events)."""

    id: int  # schedule id


class Hold(HoldBody, Command, name="ticket.hold"):
    """Signed in (a ``customer_id``: clerk, and 422 unless it names an enabled account):
    → Reservation, all the seats held or none, until ``expires_at``. 409 ``seat_unavailable``
    naming each seat taken, ``single_seat_gap``, ``limit_reached`` or ``sales_closed``; 404
    if there is no such show. The same Idempotency-Key gets the first answer. Publishes
    ``ticket.held``."""

    idempotency_key: IdempotencyKey | None = None


class GetReservation(Command, name="ticket.get_reservation"):
    """Its buyer or a clerk: → Reservation, with its tickets once paid (a hold past its
    ``expires_at`` reads as expired at once); 404 if none."""

    id: int


class Pay(PayBody, Command, name="ticket.pay"):
    """Its buyer or a clerk: → Reservation, paid, with one ticket a seat. 409
    ``hold_expired`` once the hold expired or was cancelled, ``sales_closed`` once the show
    is near. Paying again answers the paid reservation. Publishes ``ticket.sold``."""

    id: int
    idempotency_key: IdempotencyKey | None = None


class CancelReservation(Command, name="ticket.cancel"):
    """Its buyer or a clerk: the held seats become available (a hold already ended: nothing
    changes); 409 once paid (refund its tickets instead). → the show and its new seat-map
    version, for the gateway (which answers 204). Publishes ``ticket.released``."""

    id: int


class ListTickets(TicketQuery, Command, name="ticket.list_tickets"):
    """Signed in: → a page of one's own tickets, newest first. A clerk may name another
    account (``user_id``) or a show (``schedule_id``: every ticket of it)."""


class Refund(Command, name="ticket.refund"):
    """Its buyer or a clerk: → Ticket, refunded, its seat available again. 409
    ``refund_closed`` once the show has started; 409 when it was checked in. Refunding again
    answers the refunded ticket. Publishes ``ticket.refunded``."""

    id: int  # ticket id


class GetSalesActivity(Command, name="ticket.sales_activity"):
    """Held and sold seats per schedule (play_svc refuses show edits once any exist)."""

    schedule_ids: list[int] = Field(max_length=10_000)


class BeginShowEdit(Command, name="ticket.begin_show_edit"):
    """Service to service (play_svc, before it edits a show): → SalesActivityLine. When the
    show has nothing held or sold, records ``version`` as the show version holds must wait
    for, in the same transaction (the show's row lock) that counted; holds take that row's
    shared lock, so no hold slips between the count and the edit."""

    schedule_id: int
    version: int = Field(ge=1)


class GetLedger(Command, name="ticket.ledger"):
    """Sales and refunds per schedule, for order_svc's reconciliation."""


# -- events --------------------------------------------------------------------------------

class SoldTicket(BaseModel):
    ticket_id: int
    row: int
    col: int
    price: int
    code: str | None = None  # its check-in code (e-ticket), for the buyer's mail
    type: str | None = None


class ReservationEvent(Event):
    """The first fields of ``ticket.held`` and ``ticket.sold``: whose reservation, of which
    show."""

    reservation_id: int
    user_id: int
    schedule_id: int
    play_id: int
    play_name: str
    studio_id: int
    starts_at: UtcDatetime


class TicketHeld(ReservationEvent, type="ticket.held"):
    seats: list[PricedSeat]
    total: int
    currency: str
    expires_at: UtcDatetime
    created_at: UtcDatetime
    # The show's seat-map version this change made (``ticket_svc.versions``); every ticket.*
    # event has one (None only from a ticket_svc older than it). Its seats: ``seats`` here.
    seats_version: int | None = None
    actor: Actor | None = None  # a clerk's sale on the account: the clerk (audit log)


class TicketSold(ReservationEvent, type="ticket.sold"):
    tickets: list[SoldTicket]
    total: int
    currency: str
    paid_at: UtcDatetime
    seats_version: int | None = None  # its seats: those of ``tickets``


class TicketReleased(Event, type="ticket.released"):
    """A hold ended unpaid; its seats are available again."""

    reservation_id: int
    user_id: int
    schedule_id: int
    play_id: int
    seats: list[PricedSeat]
    reason: Literal["expired", "cancelled", "show_cancelled"]
    released_at: UtcDatetime
    seats_version: int | None = None  # its seats: ``seats``


class TicketShowChanged(Event, type="ticket.show_changed"):
    """ticket_svc took an edit of the show (its price may be new) or a change of its seat
    rules: a new seat-map version with no seat changed. For the gateway's seat maps."""

    schedule_id: int
    price: int
    seats_version: int


class SoldTicketEvent(Event):
    """The first fields of the events of one sold ticket (``ticket.refunded``,
    ``ticket.checked_in``): which ticket, whose, of which show, which seat at what price."""

    ticket_id: int
    reservation_id: int
    user_id: int
    schedule_id: int
    play_id: int
    studio_id: int
    row: int
    col: int
    price: int


class RemindedTicket(BaseModel):
    ticket_id: int
    row: int
    col: int


class ShowReminder(Event, type="ticket.reminder"):
    """One buyer's tickets of a show that starts within ``TTMS_REMINDER_MINUTES``, bought before
    then: for the reminder mail. One per buyer and show, once."""

    user_id: int
    schedule_id: int
    play_name: str
    starts_at: UtcDatetime
    tickets: list[RemindedTicket]


class TicketRefunded(SoldTicketEvent, type="ticket.refunded"):
    """One event per refunded ticket."""

    currency: str
    reason: Literal["requested", "show_cancelled"]
    ticket_type: str | None = None  # the ticket type it was sold as
    actor: Actor | None = None  # who refunded, when not the buyer (audit log)
    refunded_at: UtcDatetime
    seats_version: int | None = None  # its seat: ``row``, ``col``


# -- the waiting list (issue 20.4) --------------------------------------------------------------

class WaitlistStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"   # seats held for the customer (``reservation_id``) until it expires
    lapsed = "lapsed"     # the offer ended unpaid; the next in line was offered the seats
    passed = "passed"     # seats came back, but the account had reached the show's cap
    left = "left"         # the customer (or a clerk for them) left the line while waiting


class WaitlistEntry(BaseModel):
    id: int
    schedule_id: int
    user_id: int
    quantity: int
    status: WaitlistStatus
    position: int | None = None  # among those still waiting, 1 = next; None once offered
    reservation_id: int | None = None
    joined_at: UtcDatetime
    offered_at: UtcDatetime | None = None


class JoinWaitlistBody(Strict):
    quantity: Annotated[int, Field(ge=1, le=MAX_SEATS_PER_HOLD)]
    customer_id: Id | None = None  # clerk+ only: put a customer in line (the box office)


class WaitlistQuery(PageQuery):
    user_id: Id | None = None  # clerk+ only: another account's entries


class JoinWaitlist(JoinWaitlistBody, Command, name="ticket.join_waitlist"):
    """Signed in: → WaitlistEntry, at the end of the show's line; a clerk puts the account
    ``customer_id`` in line (403 for a customer; 422 ``customer_inactive`` when it is disabled
    or unknown). 409 while enough seats are available and no one waits, or when the account
    already waits for the show; ``sales_closed``; ``limit_reached`` when the account has no
    room under the show's cap for what it asks."""

    id: int  # schedule id


class ListWaitlist(WaitlistQuery, Command, name="ticket.waitlist"):
    """Signed in: → a page of the caller's own entries, newest first; a clerk may name another
    account (``user_id``)."""


class LeaveWaitlist(Command, name="ticket.leave_waitlist"):
    """Its account or a clerk: → WaitlistEntry, ``left``; the others behind move up. Leaving
    again answers the same. 409 once seats were offered (cancel that hold instead) or the
    entry ended otherwise."""

    id: int  # waitlist entry id


class WaitlistOffered(Event, type="waitlist.offered"):
    """Seats came back and were held for the first in line: pay the reservation before
    ``expires_at`` or they pass to the next."""

    entry_id: int
    user_id: int
    schedule_id: int
    reservation_id: int
    seats: list[PricedSeat]
    expires_at: UtcDatetime
