"""order_svc: orders (one per reservation) and box-office figures, both built from events.

Order ids are reservation ids. Money is integer minor units; times are UTC.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, create_model

from messages.contracts.base import Command, IsoDate, PageQuery, Strict, UtcDatetime
from messages.contracts.ticket import Id, PricedSeat


class OrderStatus(StrEnum):
    held = "held"
    paid = "paid"
    expired = "expired"
    cancelled = "cancelled"
    refunded = "refunded"
    partially_refunded = "partially_refunded"


class GroupBy(StrEnum):
    play = "play"
    studio = "studio"
    day = "day"


# -- shapes in answers ---------------------------------------------------------------------

class Order(BaseModel):
    id: int  # the reservation id
    user_id: int
    schedule_id: int
    play_id: int
    play_name: str | None
    starts_at: UtcDatetime | None
    seats: list[PricedSeat]
    total: int
    currency: str
    status: OrderStatus
    created_at: UtcDatetime
    paid_at: UtcDatetime | None
    refunded_total: int


class ShowFigures(BaseModel):
    schedule_id: int
    starts_at: UtcDatetime | None
    studio_id: int | None
    sold: int             # tickets ever sold for the show, refunded ones included
    refunded: int         # tickets refunded
    net: int              # money: gross - refunded
    occupancy: float | None  # tickets sold and not refunded / seats of the show (None: unknown)
    checked_in: int = 0   # tickets admitted at the door
    no_show: int | None = None  # once the show ended: sold, not refunded, never checked in


class TypeFigures(BaseModel):
    """A play's tickets and takings of one ticket type (issue 20.2); type null: full price."""

    type: str | None
    tickets_sold: int
    tickets_refunded: int
    gross: int
    refunded: int
    net: int


class PlayBoxOffice(BaseModel):
    play_id: int
    play_name: str | None
    tickets_sold: int
    tickets_refunded: int
    gross: int
    refunded: int
    net: int
    schedules: list[ShowFigures]
    by_type: list[TypeFigures] = []


class BoxOfficeLine(BaseModel):
    key: int | str  # play id, studio id, or the show day (YYYY-MM-DD, UTC)
    label: str | None
    tickets_sold: int
    tickets_refunded: int
    gross: int
    refunded: int
    net: int
    checked_in: int = 0  # tickets admitted at the door
    no_show: int = 0     # of the shows that have ended: sold, not refunded, never checked in


class BoxOfficeReport(BaseModel):
    items: list[BoxOfficeLine]


# -- queries -------------------------------------------------------------------------------

class OrderQuery(PageQuery):
    user_id: Id | None = None  # clerk+ only; a customer always sees their own
    status: OrderStatus | None = None


class ExportFormat(StrEnum):
    """How a box-office answer is wanted (issue 20.5); the gateway lays the files out."""

    json = "json"
    csv = "csv"
    xlsx = "xlsx"  # a play's report only


class PlayReportQuery(Strict):
    format: ExportFormat | None = None  # json (default), csv or xlsx; or an Accept header


class _BoxOfficeFilters(Strict):
    group_by: GroupBy = GroupBy.play
    format: ExportFormat | None = None  # json (default) or csv; or an Accept header


# `from` is a Python keyword: the field names are the query parameters themselves (the gateway
# passes on exactly the declared names). Days of the shows' start (UTC), both inclusive.
BoxOfficeQuery = create_model(
    "BoxOfficeQuery", __base__=_BoxOfficeFilters,
    **{"from": (IsoDate | None, None), "to": (IsoDate | None, None)})


# -- commands ------------------------------------------------------------------------------

class ListOrders(OrderQuery, Command, name="order.list"):
    """Signed in: → a page of one's own orders, newest first; a clerk sees everyone's, or
    one account's (``user_id``)."""


class GetOrder(Command, name="order.get"):
    """Its buyer or a clerk: → Order; 404 if none."""

    id: int


class GetPlayBoxOffice(PlayReportQuery, Command, name="order.box_office_play"):
    """Manager: → PlayBoxOffice, a play's sales and refunds show by show."""

    id: int  # play id


class GetBoxOffice(BoxOfficeQuery, Command, name="order.box_office"):
    """Manager: → BoxOfficeReport, the figures grouped by play, studio or day."""


# -- the audit log (issue 20.6) --------------------------------------------------------------

class AuditAction(StrEnum):
    clerk_sale = "clerk_sale"              # a hold made by staff on a customer's account
    refund = "refund"                      # a ticket refunded by someone other than its buyer
    show_cancelled = "show_cancelled"
    show_changed = "show_changed"          # a show moved or re-priced (prices, cap)
    play_repriced = "play_repriced"        # a play's price or ticket types changed
    user_changed = "user_changed"          # an account's role, disabled flag or email, by an admin
    user_deleted = "user_deleted"
    code_reissued = "code_reissued"        # a ticket's check-in code replaced by staff


class AuditEntry(BaseModel):
    id: int
    at: UtcDatetime                        # when the action happened (its event's time)
    action: AuditAction
    actor_id: int | None
    actor_role: str | None
    address: str | None                   # the client address the gateway saw
    subject: str                           # "reservation 12", "ticket 7", "schedule 3", "user 9"
    details: dict[str, Any]


class AuditQuery(PageQuery):
    action: AuditAction | None = None
    actor_id: Id | None = None


class ListAudit(AuditQuery, Command, name="order.audit"):
    """Admin: → a page of AuditEntry, the staff actions recorded from the events."""
