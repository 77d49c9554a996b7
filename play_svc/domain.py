"""Show rules, without I/O: when a show ends, whether it fits the play's run, and the compact
form of the seat-map snapshot a show keeps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from messages.contracts.studio import full_map


def ends_at(starts_at: datetime, duration_minutes: int) -> datetime:
    return starts_at + timedelta(minutes=duration_minutes)


def in_run(starts_at: datetime, starts_on: date, ends_on: date) -> bool:
    """A show must start on a day (UTC) of the play's run."""
    return starts_on <= starts_at.astimezone(UTC).date() <= ends_on


def snapshot(seat_map: dict[str, Any], no_single_gaps: bool = False) -> dict[str, Any]:
    """A full seat map (as studio.seat_map answers) → what a show stores: its size, the
    places that are not plain seats, the places with a price zone, and the seat rule it was
    created with when that is on (ticket_svc's copy is the rule from then on)."""
    stored = {"rows": seat_map["rows"], "cols": seat_map["cols"],
              "not_seats": [[s["row"], s["col"], s["kind"]] for s in seat_map["seats"]
                            if s["kind"] != "seat"],
              "zones": [[s["row"], s["col"], s["zone"]] for s in seat_map["seats"]
                        if s.get("zone")]}
    if no_single_gaps:
        stored["no_single_gaps"] = True
    return stored


def expand(stored: dict[str, Any]) -> dict[str, Any]:
    """What a show stores → ``{rows, cols, seats, no_single_gaps}`` with every place."""
    kinds = {(r, c): kind for r, c, kind in stored["not_seats"]}
    zones = {(r, c): zone for r, c, zone in stored.get("zones", ())}  # none before issue 20
    return {"rows": stored["rows"], "cols": stored["cols"],
            "seats": full_map(stored["rows"], stored["cols"], kinds, zones),
            "no_single_gaps": stored.get("no_single_gaps", False)}
