"""Seats for sale, holds, tickets (API.md § Seats for sale, holds, tickets) → ticket_svc.

Ownership ("owner or clerk+") is checked by ticket_svc, which knows the owner: another user's
reservation or ticket is 403 ``forbidden``; one that does not exist is 404.
"""

from gateway import seatmaps, seatstreams
from gateway.routes.base import Route, Who
from messages.contracts import ticket as c
from messages.contracts.base import Page

TAG = "Seats for sale, holds, tickets"
# One event of the seat-map stream, as a client's SSE parser sees it: its data is JSON (the
# seat map for `snapshot`, `{version, seats}` for `changes`), its id the version.
SEAT_STREAM_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"enum": ["snapshot", "changes"]},
                   "data": {"type": "string", "contentMediaType": "application/json"},
                   "id": {"type": "string", "pattern": "^[0-9]+$"},
                   "retry": {"type": "integer"}}}
SEAT_WRITE = {"seat_write": True}  # the answer's seats_version feeds read-your-writes
SEATS_FREED = {"seat_write": "frees"}  # and it may have made seats available again

ROUTES = [
    # The most-read page of an on-sale rush: answered from the gateway's memory (seatmaps).
    Route("GET", "/schedules/{id}/seats", c.GetSeats, Who.anyone,
          "A show's seats with their status, price and seat-map version, from the gateway's "
          "live copy (never older than your own last write through it); `ETag` from the "
          "version (304 to `If-None-Match`), br or gzip when asked", TAG, response=c.SeatsForSale,
          extra={"local": seatmaps.seat_map}),
    Route("GET", "/schedules/{id}/seats/stream", c.GetSeatSnapshot, Who.anyone,
          "A show's seat map as it changes (Server-Sent Events): a `snapshot` event, then "
          "`changes` events `{version, seats: [{row, col, status}]}` at most every 100 ms, "
          "each with the version as its `id`; a comment every 15 s keeps it open", TAG,
          rules="`Last-Event-ID` (a version) resumes with the changes since when the gateway "
                "still has them, else with a snapshot. A request whose `Accept` does not "
                "name `text/event-stream` gets the `snapshot` event alone.",
          extra={"local": seatstreams.seat_stream, "content_type": "text/event-stream",
                 "content_schema": SEAT_STREAM_EVENT}),
    Route("PATCH", "/schedules/{id}/seat-rules", c.SetSeatRules, Who.manager,
          "A show's rules for holds: `no_single_gaps` refuses a hold that would leave one "
          "seat alone (409 `single_seat_gap`); the seat map shows the rule", TAG,
          body=c.SeatRulesBody, response=c.SeatRules, extra=SEAT_WRITE),
    Route("POST", "/reservations", c.Hold, Who.signed_in,
          "Hold 1..10 named seats of a show, or the best `quantity` available (`together`: "
          "adjacent in one row), all or nothing (clerks: customer_id sells on a customer's "
          "account); honours Idempotency-Key", TAG, body=c.HoldBody,
          response=c.Reservation, status=201, idempotency_key=True,
          rules="Exactly one of `seats` and `quantity` (422 otherwise); `type` goes with "
                "`quantity` (the ticket type of every seat picked; with `seats`, 422: each "
                "seat names its own). "
                "`seats` must be distinct (422). `customer_id` is for clerks and above "
                "(403 otherwise) and must name an existing, enabled account (422 "
                "`validation_error`). An `Idempotency-Key` already used with a different "
                "request is 422 `idempotency_key_reused`. When any seat is held, sold or not "
                "a seat nothing is held: "
                "409 `seat_unavailable`, one `errors` item per seat with `loc` "
                "`[\"body\", \"seats\", {\"row\": R, \"col\": C}]`. Best available "
                "(`quantity`) with no such seats free: 409 `seat_unavailable`, `errors: []`; "
                "every pick lost to concurrent buyers 8 times: 409 `conflict`. A show with "
                "`no_single_gaps`: a hold that would leave one seat alone is 409 "
                "`single_seat_gap`, one `errors` item per such seat. A hold that would "
                "take the account (the buyer's, or `customer_id`'s) past the show's "
                "`max_tickets_per_customer` is 409 `limit_reached`. A seat's `type` "
                "must be one of the play's ticket types (422 `validation_error`).",
          links=(("GET /orders/{id}", "$response.body#/id"),),
          extra={**SEAT_WRITE, "refuse_taken": True}),
    Route("GET", "/reservations/{id}", c.GetReservation, Who.signed_in,
          "A reservation (owner or clerk+)", TAG, response=c.Reservation),
    Route("POST", "/reservations/{id}/pay", c.Pay, Who.signed_in,
          "Pay a hold: its seats become tickets (owner or clerk+); honours Idempotency-Key",
          TAG, body=c.PayBody, response=c.Reservation, idempotency_key=True,
          rules="An `Idempotency-Key` already used with a different request (another "
                "reservation, body or route) is 422 `idempotency_key_reused`.",
          links=(("POST /tickets/{id}/refund", "$response.body#/tickets/0/id"),
                 ("GET /reservations/{id}", "$response.body#/id")), extra=SEAT_WRITE),
    Route("DELETE", "/reservations/{id}", c.CancelReservation, Who.signed_in,
          "Cancel a hold; its seats are available again (owner or clerk+)", TAG, status=204,
          extra=SEATS_FREED),
    Route("GET", "/tickets", c.ListTickets, Who.signed_in,
          "Tickets: your own; clerks and above may pass ?user_id= and ?schedule_id=", TAG,
          query=c.TicketQuery, response=Page[c.Ticket]),
    Route("POST", "/tickets/{id}/refund", c.Refund, Who.signed_in,
          "Refund a ticket until the show starts (owner or clerk+)", TAG,
          response=c.Ticket, extra=SEATS_FREED),
    Route("POST", "/schedules/{id}/waitlist", c.JoinWaitlist, Who.signed_in,
          "Join a sold-out show's waiting list: seats that come back are held for the first "
          "in line (waitlist.offered), who pays the reservation before it expires", TAG,
          body=c.JoinWaitlistBody, response=c.WaitlistEntry, status=201,
          rules="409 `conflict` while the show has that many seats available and nobody "
                "waiting, or when the account already waits for it; 409 `sales_closed` as "
                "for a hold. `customer_id` (clerk+ only) puts that account in line: 422 "
                "`customer_inactive` when it is disabled or names no account."),
    Route("GET", "/waitlist", c.ListWaitlist, Who.signed_in,
          "Your waiting-list entries, newest first, with your place in line and any offer; "
          "clerks and above may pass ?user_id=", TAG,
          query=c.WaitlistQuery, response=Page[c.WaitlistEntry]),
    Route("DELETE", "/waitlist/{id}", c.LeaveWaitlist, Who.signed_in,
          "Leave a show's waiting list (owner or clerk+); those behind move up", TAG,
          response=c.WaitlistEntry,
          rules="409 `conflict` once seats were offered (cancel that hold instead)."),
]
