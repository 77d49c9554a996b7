"""Orders and box office (API.md § Orders and box office) → order_svc.

Ownership is checked by order_svc: a customer asking for another user's order, or passing
another user's ``user_id``, gets 403 ``forbidden``; an order that does not exist is 404.
"""

from gateway.exports import BOX_OFFICE, PLAY_REPORT
from gateway.routes.base import Route, Who
from messages.contracts import order as c
from messages.contracts.base import Page

TAG = "Orders and box office"

ROUTES = [
    Route("GET", "/orders", c.ListOrders, Who.signed_in,
          "Orders: your own; clerks and above may pass ?user_id=", TAG, query=c.OrderQuery,
          response=Page[c.Order]),
    Route("GET", "/orders/{id}", c.GetOrder, Who.signed_in, "An order (owner or clerk+)", TAG,
          response=c.Order),
    Route("GET", "/box-office/plays/{id}", c.GetPlayBoxOffice, Who.manager,
          "A play's takings, show by show", TAG, query=c.PlayReportQuery,
          response=c.PlayBoxOffice, extra={"exports": PLAY_REPORT},
          rules="`?format=csv` (or `Accept: text/csv`): the shows as CSV; `?format=xlsx` (or "
                "the xlsx media type): a workbook with the shows, the play's totals and the "
                "ticket types. Amounts as decimal money with a currency column, times in UTC "
                "with the offset written out."),
    Route("GET", "/box-office", c.GetBoxOffice, Who.manager,
          "Takings grouped by play, studio or day of the show", TAG, query=c.BoxOfficeQuery,
          response=c.BoxOfficeReport, extra={"exports": BOX_OFFICE},
          rules="`from` and `to` are dates `YYYY-MM-DD` (the show's day, UTC), both "
                "included; `from` after `to` is 422. `?format=csv` (or `Accept: text/csv`): "
                "the lines as CSV, amounts as decimal money with a currency column; "
                "`xlsx` is 422 here."),
    Route("GET", "/audit", c.ListAudit, Who.admin,
          "The audit log: staff actions on money and access, newest first (read-only)", TAG,
          query=c.AuditQuery, response=Page[c.AuditEntry]),
]
