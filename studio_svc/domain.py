"""Seat-map rules, without I/O: seat counts and bulk-edit checks."""

from __future__ import annotations

from typing import Any

from messages import errors
from messages.contracts.studio import Seat, SeatKind


def seat_count(rows: int, cols: int, not_seats: int) -> int:
    return rows * cols - not_seats


def edit_errors(rows: int, cols: int, seats: list[Seat]) -> list[dict[str, Any]]:
    """What is wrong with a bulk edit of a ``rows`` × ``cols`` map: places outside it, and
    places named twice (the answer would depend on their order)."""
    problems = []
    seen: set[tuple[int, int]] = set()
    for i, seat in enumerate(seats):
        if seat.row > rows or seat.col > cols:
            problems.append(errors.invalid(
                ["body", "seats", i], "seat_outside",
                f"row {seat.row}, col {seat.col} is outside the {rows}×{cols} map",
                row=seat.row, col=seat.col, rows=rows, cols=cols))
        elif (seat.row, seat.col) in seen:
            problems.append(errors.invalid(
                ["body", "seats", i], "seat_twice",
                f"row {seat.row}, col {seat.col} appears twice", row=seat.row, col=seat.col))
        seen.add((seat.row, seat.col))
    return problems


def split_edit(seats: list[Seat]) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    """A bulk edit → places that become plain seats, and places that become something else."""
    plain = [(s.row, s.col) for s in seats if s.kind is SeatKind.seat]
    other = [(s.row, s.col, s.kind.value) for s in seats if s.kind is not SeatKind.seat]
    return plain, other


def zone_edit(seats: list[Seat]) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    """A bulk edit → places whose zone is cleared (``zone: null``) and places given a zone;
    a place without ``zone`` keeps its own."""
    cleared = [(s.row, s.col) for s in seats if "zone" in s.model_fields_set and s.zone is None]
    zoned = [(s.row, s.col, s.zone) for s in seats if s.zone is not None]
    return cleared, zoned
