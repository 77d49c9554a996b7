"""Orders and box office (API.md § Orders and box office) → order_svc.

Ownership is checked by order_svc: a customer asking for another user's order, or passing
another user's ``user_id``, gets 403 ``forbidden``; an order that does not exist is 404.
"""

from pydantic import BaseModel

from gateway.exports import BOX_OFFICE, PLAY_REPORT, Exporter
from gateway.routes.base import Route, Who
from messages.contracts import order as c
from messages.contracts.base import Command, Page

TAG = "Orders and box office"


def report(path: str, command: type[Command], summary: str, query: type[BaseModel],
           response: type[BaseModel], exports: Exporter, rules: str = "") -> Route:
    """A manager's box-office report, also given as a file (issue 20.5): its description says
    the route's own rules, then what its exporter gives."""
    return Route("GET", path, command, Who.manager, summary, TAG, query=query,
                 response=response, extra={"exports": exports},
                 rules=" ".join(part for part in (rules, exports.described) if part))


ROUTES = [
    Route("GET", "/orders", c.ListOrders, Who.signed_in,
          "Orders: your own; clerks and above may pass ?user_id=", TAG, query=c.OrderQuery,
          response=Page[c.Order]),
    Route("GET", "/orders/{id}", c.GetOrder, Who.signed_in, "An order (owner or clerk+)", TAG,
          response=c.Order),
    report("/box-office/plays/{id}", c.GetPlayBoxOffice, "A play's takings, show by show",
           c.PlayReportQuery, c.PlayBoxOffice, PLAY_REPORT),
    report("/box-office", c.GetBoxOffice, "Takings grouped by play, studio or day of the show",
           c.BoxOfficeQuery, c.BoxOfficeReport, BOX_OFFICE,
           rules="`from` and `to` are dates `YYYY-MM-DD` (the show's day, UTC), both "
                 "included; `from` after `to` is 422."),
    Route("GET", "/audit", c.ListAudit, Who.admin,
          "The audit log: staff actions on money and access, newest first (read-only)", TAG,
          query=c.AuditQuery, response=Page[c.AuditEntry]),
]
