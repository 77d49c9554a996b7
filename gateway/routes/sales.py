"""Seats for sale, holds, tickets (API.md § Seats for sale, holds, tickets) → ticket_svc.

Ownership ("owner or clerk+") is checked by ticket_svc, which knows the owner: another user's
reservation or ticket is 403 ``forbidden``; one that does not exist is 404.
"""

from gateway.routes.base import Route, Who
from messages.contracts import ticket as c
from messages.contracts.base import Page, PageQuery

TAG = "Seats for sale, holds, tickets"

ROUTES = [
    # The most-read page of an on-sale rush: one answer per show is shared for 0.25 s.
    Route("GET", "/schedules/{id}/seats", c.GetSeats, Who.anyone,
          "A show's seats with their status and price (may be up to 0.25 s old; a hold is "
          "always decided against the live seats)", TAG, response=c.SeatsForSale,
          cache_seconds=0.25),
    Route("POST", "/reservations", c.Hold, Who.signed_in,
          "Hold 1..10 seats of a show, all or nothing (clerks: customer_id sells on a "
          "customer's account); honours Idempotency-Key", TAG, body=c.HoldBody,
          response=c.Reservation, status=201, idempotency_key=True,
          rules="`seats` must be distinct (422). `customer_id` is for clerks and above "
                "(403 otherwise) and must name an existing, enabled account (422 "
                "`validation_error`). An `Idempotency-Key` already used with a different "
                "request is 422 `idempotency_key_reused`. When any seat is held, sold or not "
                "a seat nothing is held: "
                "409 `seat_unavailable`, one `errors` item per seat with `loc` "
                "`[\"body\", \"seats\", {\"row\": R, \"col\": C}]`. A hold that would "
                "take the account (the buyer's, or `customer_id`'s) past the show's "
                "`max_tickets_per_customer` is 409 `limit_reached`. A seat's `type` "
                "must be one of the play's ticket types (422 `validation_error`).",
          links=(("GET /orders/{id}", "$response.body#/id"),)),
    Route("GET", "/reservations/{id}", c.GetReservation, Who.signed_in,
          "A reservation (owner or clerk+)", TAG, response=c.Reservation),
    Route("POST", "/reservations/{id}/pay", c.Pay, Who.signed_in,
          "Pay a hold: its seats become tickets (owner or clerk+); honours Idempotency-Key",
          TAG, body=c.PayBody, response=c.Reservation, idempotency_key=True,
          rules="An `Idempotency-Key` already used with a different request (another "
                "reservation, body or route) is 422 `idempotency_key_reused`.",
          links=(("POST /tickets/{id}/refund", "$response.body#/tickets/0/id"),
                 ("GET /reservations/{id}", "$response.body#/id"))),
    Route("DELETE", "/reservations/{id}", c.CancelReservation, Who.signed_in,
          "Cancel a hold; its seats are available again (owner or clerk+)", TAG, status=204),
    Route("GET", "/tickets", c.ListTickets, Who.signed_in,
          "Tickets: your own; clerks and above may pass ?user_id= and ?schedule_id=", TAG,
          query=c.TicketQuery, response=Page[c.Ticket]),
    Route("POST", "/tickets/{id}/refund", c.Refund, Who.signed_in,
          "Refund a ticket until the show starts (owner or clerk+)", TAG,
          response=c.Ticket),
    Route("POST", "/schedules/{id}/waitlist", c.JoinWaitlist, Who.signed_in,
          "Join a sold-out show's waiting list: seats that come back are held for the first "
          "in line (waitlist.offered), who pays the reservation before it expires", TAG,
          body=c.JoinWaitlistBody, response=c.WaitlistEntry, status=201,
          rules="409 `conflict` while the show has that many seats available and nobody "
                "waiting, or when the caller already waits for it; 409 `sales_closed` as "
                "for a hold."),
    Route("GET", "/waitlist", c.ListWaitlist, Who.signed_in,
          "Your waiting-list entries, newest first, with your place in line and any offer",
          TAG, query=PageQuery, response=Page[c.WaitlistEntry]),
]
