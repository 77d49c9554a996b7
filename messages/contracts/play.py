"""play_svc: plays and their shows (schedules)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from messages.contracts.base import (
    NOT_BLANK,
    UNCHANGED,
    Actor,
    Command,
    Event,
    IsoDate,
    IsoDatetime,
    JsonBool,
    PageQuery,
    Strict,
    UtcDatetime,
)
from messages.contracts.studio import Seat, ZoneName

PlayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=200),
                     Field(json_schema_extra=NOT_BLANK)]
Area = Annotated[str, Field(max_length=100)]
Description = Annotated[str, Field(max_length=4000)]
Duration = Annotated[int, Field(ge=1, le=600)]
Price = Annotated[int, Field(ge=0, le=1_000_000_000)]  # integer minor units
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]  # fits the database's BIGINT
# The most tickets one account may hold or buy for a show (issue 20.3); null: no cap.
TicketCap = Annotated[int, Field(ge=1, le=10_000)]
# A show's price per zone of its seat map (issue 20.1); a seat of another zone, or of none,
# costs the show's price.
ZonePrices = Annotated[dict[ZoneName, Price], Field(max_length=50)]


class TicketType(Strict):
    """A concession a play offers (issue 20.2): a share of the seat's price (``percent``,
    e.g. Child 50) or a fixed ``amount``, exactly one of them. A seat held without a type
    costs its full price."""

    name: ZoneName
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    amount: Price | None = None

    @model_validator(mode="after")
    def _one_price(self):
        if (self.percent is None) == (self.amount is None):
            raise PydanticCustomError("percent_or_amount",
                                     "a ticket type has either percent or amount")
        return self


def _distinct_types(types: list[TicketType] | None) -> list[TicketType] | None:
    if types and len({t.name for t in types}) != len(types):
        raise PydanticCustomError("types_distinct", "ticket type names must be distinct")
    return types


TicketTypes = Annotated[list[TicketType], Field(max_length=20)]

_EARLIEST, _LATEST = datetime(2000, 1, 1), datetime(9000, 1, 1)


def _in_time(value: datetime) -> datetime:
    # Far from datetime's limits, so adding a show's duration or moving to UTC cannot overflow.
    # Judged on the time as written (its year), which the document's pattern can say.
    if not _EARLIEST <= value.replace(tzinfo=None) < _LATEST:
        raise PydanticCustomError("year_range", "must be in the years 2000 to 8999")
    return value


ShowTime = Annotated[IsoDatetime, AfterValidator(_in_time), WithJsonSchema({
    "type": "string", "format": "date-time", "pattern": "^[2-8][0-9]{3}-",
    "description": "RFC 3339 with an offset, in the years 2000 to 8999"})]


class PlayKind(StrEnum):
    movie = "movie"
    drama = "drama"
    opera = "opera"
    concert = "concert"
    other = "other"


class Rating(StrEnum):
    """Who the play is for (told to buyers; no sale checks it)."""

    all = "all"
    child = "child"
    teen = "teen"
    adult = "adult"


class ScheduleStatus(StrEnum):
    """A show is ``scheduled`` until a manager cancels it, or its play is deleted. A cancelled
    show stays listed, as cancelled, and cannot be edited or scheduled again."""

    scheduled = "scheduled"
    cancelled = "cancelled"


class Play(BaseModel):
    id: int
    name: str
    kind: PlayKind
    area: str | None
    rating: Rating
    duration_minutes: int
    description: str | None
    starts_on: date
    ends_on: date
    price: int
    ticket_types: list[TicketType] = []


class Schedule(BaseModel):
    """One show. ``play_name`` and ``studio_name`` are the current names."""

    id: int
    play_id: int
    studio_id: int
    play_name: str
    studio_name: str
    starts_at: UtcDatetime
    ends_at: UtcDatetime  # starts_at + the play's duration
    price: int
    status: ScheduleStatus
    max_tickets_per_customer: int | None = None  # null: no cap
    prices: dict[str, int] = {}  # per zone; a seat of another zone or none costs `price`
    ticket_types: list[TicketType] = []  # the play's


class ScheduleInventory(BaseModel):
    """A show and the seat map of its studio as it was when the show was created."""

    schedule: Schedule
    rows: int
    cols: int
    seats: list[Seat]  # every place, row by row, each `seat`, `aisle` or `broken`
    version: int = 0  # the show's edit count (see UpdateSchedule, GetScheduleInventory)
    no_single_gaps: bool = False  # the seat rule the show was created with


class UpcomingCount(BaseModel):
    count: int


# Request bodies, as API.md has them.
class CreatePlayBody(Strict):
    name: PlayName
    kind: PlayKind
    area: Area | None = None
    rating: Rating
    duration_minutes: Duration
    description: Description | None = None
    starts_on: IsoDate
    ends_on: IsoDate
    price: Price
    ticket_types: TicketTypes = []

    _types = field_validator("ticket_types")(_distinct_types)

    @model_validator(mode="after")
    def _run_in_order(self):
        if self.starts_on > self.ends_on:
            raise PydanticCustomError("run_order", "starts_on must not be after ends_on")
        return self


class UpdatePlayBody(Strict):
    """A field left out stays as it is; ``area`` and ``description`` may be null (none)."""

    name: PlayName = UNCHANGED
    kind: PlayKind = UNCHANGED
    area: Area | None = None
    rating: Rating = UNCHANGED
    duration_minutes: Duration = UNCHANGED
    description: Description | None = None
    starts_on: IsoDate = UNCHANGED
    ends_on: IsoDate = UNCHANGED
    price: Price = UNCHANGED
    ticket_types: TicketTypes = UNCHANGED

    _types = field_validator("ticket_types")(_distinct_types)


class PlayQuery(PageQuery):
    q: Annotated[str, Field(min_length=1, max_length=200)] | None = None  # name contains
    kind: PlayKind | None = None


class CreateScheduleBody(Strict):
    play_id: Id
    studio_id: Id
    starts_at: ShowTime
    price: Price | None = None  # the play's price when absent
    max_tickets_per_customer: TicketCap | None = None  # no cap when absent
    prices: ZonePrices | None = None  # {zone: price}; none when absent
    # The seat rule the show starts with; from then on ticket_svc's (PATCH …/seat-rules).
    no_single_gaps: JsonBool = False


class UpdateScheduleBody(Strict):
    """A field left out stays as it is; ``max_tickets_per_customer`` null: no cap; ``prices``
    null or {}: none."""

    starts_at: ShowTime = UNCHANGED
    price: Price = UNCHANGED
    max_tickets_per_customer: TicketCap | None = None
    prices: ZonePrices | None = None


class _ScheduleFilters(PageQuery):
    play_id: Id | None = None
    studio_id: Id | None = None
    status: ScheduleStatus | None = None


# `from` is a Python keyword, so the query model is built with create_model: the field names
# are the query parameters themselves (the gateway passes on exactly the declared names).
# Read them with ``getattr(query, "from")``. Shows starting at or after `from` and before `to`.
ScheduleQuery = create_model(
    "ScheduleQuery", __base__=_ScheduleFilters,
    **{"from": (ShowTime | None, None), "to": (ShowTime | None, None)})


# Commands.
class CreatePlay(CreatePlayBody, Command, name="play.create"):
    """Manager: → Play. Publishes ``play.created``."""


class ListPlays(PlayQuery, Command, name="play.list"):
    """Anyone: → a page of the plays not deleted, by id."""


class GetPlay(Command, name="play.get"):
    """Anyone: → Play; 404 if there is none or it was deleted."""

    id: int


class UpdatePlay(UpdatePlayBody, Command, name="play.update"):
    """Manager: → Play; 422 if the run would end before it starts. Publishes ``play.updated``
    with the fields that changed (order_svc's audit log records a change of price or ticket
    types). Shows already made keep their times; their ``play_name`` follows a rename."""

    id: int


class DeletePlay(Command, name="play.delete"):
    """Manager: 409 while an upcoming show of the play has tickets sold (ticket_svc is asked).
    Otherwise publishes ``schedule.cancelled`` for each upcoming show, then ``play.deleted``."""

    id: int


class CreateSchedule(CreateScheduleBody, Command, name="play.create_schedule"):
    """Manager: → Schedule. The show keeps a copy of its studio's seat map as it is now
    (asked of studio_svc). 422 outside the play's run, 409 ``schedule_conflict`` on an
    overlap. Publishes ``schedule.created``, from which ticket_svc makes the show's seats."""


class ListSchedules(ScheduleQuery, Command, name="play.list_schedules"):
    """Anyone: → a page of shows, by start time."""


class GetSchedule(Command, name="play.get_schedule"):
    """Anyone: → Schedule, cancelled ones too; 404 if there is none."""

    id: int


class UpdateSchedule(UpdateScheduleBody, Command, name="play.update_schedule"):
    """Manager: moves or re-prices a show → Schedule. 409 once any ticket of it is held or
    sold (ticket_svc counts them and holds wait for the edit), or if it is cancelled.
    Publishes ``schedule.updated`` with the show's new version."""

    id: int


class CancelSchedule(Command, name="play.cancel_schedule"):
    """Manager: publishes ``schedule.cancelled``; ticket_svc then releases the show's holds
    and refunds its tickets. A show already cancelled: nothing happens."""

    id: int


class GetScheduleInventory(Command, name="play.schedule_inventory"):
    """Service to service (ticket_svc): → ScheduleInventory; 404 if no such schedule.

    With ``at_least`` above the show's version, first waits for an edit of the show in flight
    (its row lock) and then raises the version to it: an edit that ticket_svc allowed but that
    never committed can no longer commit, and the answer is the show as it stays."""

    id: int
    at_least: int = Field(0, ge=0)


class StudioUpcoming(Command, name="play.studio_upcoming"):
    """Service to service (studio_svc): → UpcomingCount, scheduled shows not yet ended."""

    studio_id: int


class StudioChange(Command, name="play.studio_change"):
    """Service to service (studio_svc, before a resize or a delete): → UpcomingCount. When no
    show is upcoming in the studio, records ``layout_version`` as the least version a new
    show's seat map must carry, in the same transaction (under the studio's lock row) that
    counted: from then on no show is made from a map read before the change."""

    studio_id: int
    name: str
    layout_version: int = Field(ge=1)


# Events.
class PlayCreated(Event, type="play.created"):
    play: Play


class PlayUpdated(Event, type="play.updated"):
    play: Play
    changed: list[str] = []     # the fields the edit changed
    actor: Actor | None = None  # the staff member, for the audit log (issue 20.6)


class PlayDeleted(Event, type="play.deleted"):
    play_id: int


class ScheduleCreated(Event, type="schedule.created"):
    """What the sales side needs to create the show's inventory: the show (times, price) and
    its studio's full seat map at creation time."""

    schedule: Schedule
    rows: int
    cols: int
    seats: list[Seat]
    no_single_gaps: bool = False  # the seat rule the show starts with


class ScheduleUpdated(Event, type="schedule.updated"):
    """Moved or re-priced (only before any ticket was held or sold)."""

    schedule: Schedule
    schedule_version: int = 0  # the show's edit count after this edit
    actor: Actor | None = None  # the staff member, for the audit log (issue 20.6)


class ScheduleCancelled(Event, type="schedule.cancelled"):
    """The sales side releases the show's holds and refunds its sold tickets."""

    schedule: Schedule
    actor: Actor | None = None  # the staff member, for the audit log (issue 20.6)
