"""Best-available holds: ``{schedule_id, quantity, together}`` instead of named seats.

The rule (written down in the README too): the best seats are in the row closest to a third of
the way back from the stage (row 1 is nearest the stage; the target row is
``1 + (rows - 1) / 3``), then closest to the centre of the row (the distance of the block's
middle from ``(cols + 1) / 2``), then the lower row, then the lower column. ``together``: the
``quantity`` seats are adjacent in one row with no aisle, broken seat or taken seat between
them, ranked as a block by its middle; not together: the ``quantity`` best single seats.
A show with ``no_single_gaps``: no choice that would leave a single seat alone
(``domain.single_gaps``).

The chosen seats are held exactly as named seats are (``ticket_svc.holds``: all or nothing,
decided by the database). A pick that loses a race to another buyer is made again from a
fresh read of the show's seats (shared by the picks waiting for it: ``ShowReads``), at
most ``ROUNDS`` times; seats that holds of this process are
claiming right now (``contention.SeatTurns``) are left to them, so buyers in one process pick
different blocks instead of fighting over the same one. When no such block exists the answer
is 409 ``seat_unavailable`` with ``errors: []``; when every round lost its race (other
processes' buyers took each block first) it is 409 ``conflict`` with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import NamedTuple

from messages import errors
from messages.contracts.base import Caller
from messages.service import App
from ticket_svc import domain, holds, inventory
from ticket_svc.contention import OneReadAtATime
from ticket_svc.idempotency import Key

ROUNDS = 8

Key2 = tuple[int, int]


def _rank(rows: int, cols: int, row: int, middle: float) -> tuple[float, float, int, float]:
    target = 1 + (rows - 1) / 3
    return (abs(row - target), abs(middle - (cols + 1) / 2), row, middle)


def blocks(cols: int, free: set[Key2], quantity: int, rows: Iterable[int]) -> Iterable[list[Key2]]:
    """Every run of ``quantity`` adjacent free seats in one of ``rows``."""
    for row in rows:
        run = 0
        for col in range(1, cols + 1):
            run = run + 1 if (row, col) in free else 0
            if run >= quantity:
                yield [(row, c) for c in range(col - quantity + 1, col + 1)]


def _row_groups(rows: int) -> Iterable[list[int]]:
    """The rows in the rule's first order: those equally far from the target row together,
    the nearest first. Every choice in an earlier group ranks before any in a later one, so a
    pick looks no further than the first group where it finds one (on a 50-row house, a row
    or two instead of every free block of the show)."""
    target = 1 + (rows - 1) / 3
    order = sorted(range(1, rows + 1), key=lambda r: (abs(r - target), r))
    for _, group in groupby(order, key=lambda r: abs(r - target)):
        yield list(group)


def pick(rows: int, cols: int, free: set[Key2], quantity: int, together: bool,
         allowed=None) -> list[Key2] | None:
    """The best seats by the rule above among ``free``, or None. ``allowed(keys)``: a further
    test of a choice (the show's single-gap rule)."""
    if together:
        for group in _row_groups(rows):
            ranked = sorted(blocks(cols, free, quantity, group),
                            key=lambda b: _rank(rows, cols, b[0][0], (b[0][1] + b[-1][1]) / 2))
            for block in ranked:
                if allowed is None or allowed(block):
                    return block
        return None
    chosen: list[Key2] = []
    for group in _row_groups(rows):
        in_group = [(r, c) for r in group for c in range(1, cols + 1) if (r, c) in free]
        chosen += sorted(in_group, key=lambda k: _rank(rows, cols, k[0], k[1]))
        if len(chosen) >= quantity:
            break
    if len(chosen) < quantity:
        return None
    chosen = sorted(chosen[:quantity])
    if allowed is not None and not allowed(chosen):
        return None
    return chosen


class Picks:
    """Seats that best-available holds of this process have picked and are claiming now.
    A pick and its entry here are made with no ``await`` between them, so buyers arriving
    together pick different blocks (the database still decides each)."""

    def __init__(self) -> None:
        self._seats: dict[int, dict[Key2, int]] = {}

    def taken(self, schedule_id: int) -> set[Key2]:
        return set(self._seats.get(schedule_id, ()))

    def add(self, schedule_id: int, keys: list[Key2]) -> None:
        seats = self._seats.setdefault(schedule_id, {})
        for k in keys:
            seats[k] = seats.get(k, 0) + 1

    def remove(self, schedule_id: int, keys: list[Key2]) -> None:
        seats = self._seats[schedule_id]
        for k in keys:
            seats[k] -= 1
            if not seats[k]:
                del seats[k]
        if not seats:
            del self._seats[schedule_id]


READ = ("SELECT sc.seat_rows, sc.seat_cols, sc.no_single_gaps, s.seat_row, s.seat_col, "
        "s.status FROM schedules sc LEFT JOIN seats s ON s.schedule_id = sc.id "
        "WHERE sc.id = %s")


class Seating(NamedTuple):
    """A show's size, its single-gap rule, its seats' status and its free seats, as one read
    found them. Shared by the picks that waited for that read: read only."""

    rows: int
    cols: int
    no_single_gaps: bool
    status: dict[Key2, str]
    free: frozenset[Key2]


async def _read(app: App, schedule_id: int) -> Seating:
    """The show's size, its single-gap rule and its seats, in one plain read (a hall's rows
    through SQLAlchemy cost several times the query itself)."""
    rows = await app.db.fetch(READ, (schedule_id,))
    if not rows:
        await inventory.fetch(app, schedule_id)  # its event is still on its way
        rows = await app.db.fetch(READ, (schedule_id,))
        if not rows:
            raise errors.NotFound("no such show")
    first = rows[0]
    status = {(r[3], r[4]): r[5] for r in rows if r[3] is not None}
    return Seating(first[0], first[1], bool(first[2]), status,
                   frozenset(k for k, s in status.items() if s == "available"))


class ShowReads(OneReadAtATime):
    """The reads of best-available picks, one at a time per show (``OneReadAtATime``): a
    sell-out of thousands of buyers reads a 5,000-seat house back to back instead of once per
    buyer (a pick that loses its race reads again)."""

    async def _fetch(self, app: App, schedule_id: int, keys: set[Key2]) -> Seating:
        return await _read(app, schedule_id)


async def hold_best(app: App, caller: Caller, schedule_id: int, buyer: int,
                    customer_id: int | None, quantity: int, together: bool,
                    idem: Key | None, ticket_type: str | None = None):
    if customer_id is not None:
        await holds.check_customer(app, caller, customer_id)
    picks: Picks = app.state.picks
    for _ in range(ROUNDS):
        rows, cols, no_gaps, status, free = await app.state.show_reads.look(app, schedule_id)
        claimed = app.state.turns.busy(schedule_id) | picks.taken(schedule_id)
        allowed = None
        if no_gaps:
            def allowed(keys, status=status):
                return not domain.single_gaps(status, keys)
        keys = pick(rows, cols, free - claimed, quantity, together, allowed)
        if keys is None and claimed:  # only seats others are claiming now: contend for them
            keys = pick(rows, cols, free, quantity, together, allowed)
        if keys is None:
            raise domain.seats_unavailable([])
        picks.add(schedule_id, keys)
        try:
            types = {key: ticket_type for key in keys} if ticket_type is not None else None
            return await holds.hold(app, caller, schedule_id, buyer, None, keys, idem, types)
        except (errors.SeatUnavailable, errors.SingleSeatGap):
            continue  # another buyer was first: the next-best block, from a fresh read
        except errors.ValidationFailed:  # the one a claim raises: a type the play lacks
            raise errors.ValidationFailed("a ticket type asked for is not offered", [
                errors.invalid(["body", "type"], "ticket_type_unknown",
                               f"the play offers no ticket type {ticket_type!r}",
                               name=ticket_type)]) from None
        finally:
            picks.remove(schedule_id, keys)
    raise errors.Conflict("other buyers took each block first; try again", retry_after=1)
