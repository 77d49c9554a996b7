"""studio_svc: studios (theaters) and their seat maps."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from messages.contracts.base import (
    NOT_BLANK,
    UNCHANGED,
    Command,
    Event,
    PageQuery,
    Strict,
    UtcDatetime,
)

MAX_SIDE = 100  # rows and cols are 1..100

StudioName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=100),
                       Field(json_schema_extra=NOT_BLANK)]
Description = Annotated[str, Field(max_length=2000)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
# A price zone of a seat map (issue 20.1): "Stalls", "Balcony", …
ZoneName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
                     Field(json_schema_extra=NOT_BLANK)]


class SeatKind(StrEnum):
    seat = "seat"
    aisle = "aisle"
    broken = "broken"


class Seat(Strict):
    """One place of a seat map; rows and cols count from 1. ``zone``: its price zone, listed
    only when it has one; in an edit, absent leaves the zone as it is and null clears it."""

    row: Side
    col: Side
    kind: SeatKind
    zone: ZoneName | None = None


def full_map(rows: int, cols: int, kinds: dict[tuple[int, int], str],
             zones: dict[tuple[int, int], str] | None = None) -> list[dict[str, Any]]:
    """Every place of a ``rows`` × ``cols`` map, row by row, as the contracts list them;
    ``kinds`` holds only the places that are not a plain `seat`, ``zones`` only the places
    that have a zone."""
    places = [{"row": r, "col": c, "kind": kinds.get((r, c), "seat")}
              for r in range(1, rows + 1) for c in range(1, cols + 1)]
    if zones:
        for place in places:
            zone = zones.get((place["row"], place["col"]))
            if zone is not None:
                place["zone"] = zone
    return places


class Studio(BaseModel):
    id: int
    name: str
    rows: int
    cols: int
    seat_count: int  # places of kind `seat`
    description: str | None
    created_at: UtcDatetime


class SeatMap(BaseModel):
    """Every place of the studio, row by row. ``name`` is the studio's (an addition to API.md
    that lets play_svc snapshot a map and its studio's name in one call)."""

    studio_id: int
    name: str
    rows: int
    cols: int
    seats: list[Seat]


# Request bodies, as API.md has them.
class CreateStudioBody(Strict):
    name: StudioName
    rows: Side
    cols: Side
    description: Description | None = None


class UpdateStudioBody(Strict):
    """A field left out stays as it is; ``description`` may be null (none). A resize drops the
    kinds and zones of the places outside the new size."""

    name: StudioName = UNCHANGED
    description: Description | None = None
    rows: Side = UNCHANGED
    cols: Side = UNCHANGED


class EditSeatsBody(Strict):
    # At most 1,000 places a request: more would not fit TTMS_MAX_BODY_BYTES (64 KiB).
    seats: Annotated[list[Seat], Field(min_length=1, max_length=1000)]


class StudioQuery(PageQuery):
    q: Annotated[str, Field(min_length=1, max_length=100)] | None = None


# Commands.
class CreateStudio(CreateStudioBody, Command, name="studio.create"):
    """Manager: → Studio, every place a seat; 409 if the name is taken. Publishes
    ``studio.created``."""


class ListStudios(StudioQuery, Command, name="studio.list"):
    """Signed in (the gateway checks): → a page of studios, by id."""


class GetStudio(Command, name="studio.get"):
    """Signed in (the gateway checks): → Studio; 404 if there is none."""

    id: int


class UpdateStudio(UpdateStudioBody, Command, name="studio.update"):
    """Manager: → Studio; 409 if the name is taken. A resize is first allowed by play_svc
    (``play.studio_change``: 409 while the studio has upcoming shows) and drops the places
    outside the new size. Publishes ``studio.updated`` when anything changed."""

    id: int


class DeleteStudio(Command, name="studio.delete"):
    """Manager: allowed by play_svc as a resize is (409 while it has upcoming shows).
    Publishes ``studio.deleted``."""

    id: int


class GetSeatMap(Command, name="studio.seat_map"):
    """Also asked by play_svc (caller without a role) to snapshot a map; 404 if no studio."""

    id: int


class GetLayout(Command, name="studio.layout"):
    """Service to service (play_svc, to make a show): the seat map as ``studio.seat_map`` has
    it, plus ``layout_version``. With ``at_least`` above the studio's version, first waits for
    a change of the studio in flight (its row lock) and then raises the version to it, so a
    change that play_svc allowed but that never committed here can no longer commit (see
    studio_svc.handlers). 404 if no studio."""

    id: int
    at_least: int = Field(0, ge=0)


class EditSeats(EditSeatsBody, Command, name="studio.edit_seats"):
    """Manager: sets the kind and zone of some places → SeatMap; 422 naming each place
    outside the map. Shows already made keep their copy. Publishes ``studio.updated``."""

    id: int




# Events.
class StudioCreated(Event, type="studio.created"):
    studio: Studio


class StudioUpdated(Event, type="studio.updated"):
    """Any change: name, description, size or seat kinds (seat_count then changes)."""

    studio: Studio


class StudioDeleted(Event, type="studio.deleted"):
    studio_id: int
