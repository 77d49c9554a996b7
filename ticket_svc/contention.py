"""Holds that compete inside one ticket_svc process: same-seat turns and shared early reads.

Neither decides a seat (the database does, in ``ticket_svc.holds``); both only spare the
database work whose outcome is already known. Their state lives in ``ticket_svc.state``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import asynccontextmanager
from typing import Any

from messages.contracts.ticket import seat_not_available
from messages.service import App
from ticket_svc import domain
from ticket_svc.queries import seats_sql


class Background:
    """Tasks a command starts and does not wait for (they must not be garbage-collected
    while they run)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future] = set()

    def start(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)


class Turn:
    __slots__ = ("won",)

    def __init__(self) -> None:
        self.won = False


class SeatTurns:
    """Holds in this process that want a same seat of a show go to the database one at a
    time. When a seat comes free in a rush, every hold that read it free at that moment
    would open a transaction only to lose it; instead the first goes and the others wait for
    its outcome: refused at once if it won (the seat is held: a fact, not a guess), on in
    turn if it did not. Holds in other processes are not seen here: between them, the
    database decides, as always."""

    def __init__(self) -> None:
        self._turns: dict[tuple[int, int, int], asyncio.Future] = {}

    def __len__(self) -> int:
        """Seats with a hold in its turn now."""
        return len(self._turns)

    def busy(self, schedule_id: int) -> set[tuple[int, int]]:
        """The show's seats that a hold of this process is claiming now."""
        return {(r, col) for s, r, col in self._turns if s == schedule_id}

    @asynccontextmanager
    async def turn(self, schedule_id: int, keys: list[tuple[int, int]]):
        while pending := {f for k in keys if (f := self._turns.get((schedule_id, *k)))}:
            for future in pending:
                won = await asyncio.shield(future)
                taken = [k for k in keys if k in won]
                if taken:
                    raise domain.seats_unavailable(
                        [seat_not_available(r, col, "held") for r, col in taken])
        mine = asyncio.get_running_loop().create_future()
        for k in keys:
            self._turns[(schedule_id, *k)] = mine
        turn = Turn()
        try:
            yield turn
        finally:
            for k in keys:
                if self._turns.get((schedule_id, *k)) is mine:
                    del self._turns[(schedule_id, *k)]
            mine.set_result(frozenset(keys) if turn.won else frozenset())


class _Batch:
    __slots__ = ("keys", "future", "started")

    def __init__(self, future: asyncio.Future) -> None:
        self.keys: set[tuple[int, int]] = set()
        self.future = future
        self.started = False


class OneReadAtATime:
    """One read of a show at a time, shared: the callers that arrive while none is under way
    (those of one batched RPC message, or of messages read together) share one read, made on
    the next turn; those that arrive while one is under way share the one after it, started
    as soon as it ends. Each caller gets a read begun after it arrived, as fresh as one of its
    own. A subclass says what a read is (``_fetch``), of the union of the callers' keys."""

    MAX_KEYS = 400  # keys per read; a full batch is read at once, beside the one under way

    def __init__(self, background: Background) -> None:
        self._open: dict[int, _Batch] = {}    # the batch the next callers of a show join
        self._reading: dict[int, int] = {}    # reads under way, by show
        self._background = background

    async def _fetch(self, app: App, schedule_id: int, keys: set[tuple[int, int]]) -> Any:
        raise NotImplementedError

    def look(self, app: App, schedule_id: int,
             keys: list[tuple[int, int]] = ()) -> asyncio.Future:
        batch = self._open.get(schedule_id)
        loop = asyncio.get_running_loop()
        if batch is not None and len(batch.keys) + len(keys) > self.MAX_KEYS:
            loop.call_soon(self._start, app, schedule_id, batch)  # full: read it now
            batch = None
        if batch is None:
            batch = self._open[schedule_id] = _Batch(loop.create_future())
            if not self._reading.get(schedule_id):
                loop.call_soon(self._start, app, schedule_id, batch)
        batch.keys.update(keys)
        # shield: a waiter that is cancelled must not cancel the read for the others
        return asyncio.shield(batch.future)

    def _start(self, app: App, schedule_id: int, batch: _Batch) -> None:
        if self._open.get(schedule_id) is batch:
            del self._open[schedule_id]
        if batch.started:
            return
        batch.started = True
        self._reading[schedule_id] = self._reading.get(schedule_id, 0) + 1
        self._background.start(self._read_then_next(app, schedule_id, batch))

    async def _read_then_next(self, app: App, schedule_id: int, batch: _Batch) -> None:
        try:
            result = await self._fetch(app, schedule_id, batch.keys)
        except Exception as exc:  # noqa: BLE001 - each waiting caller gets the failure
            if not batch.future.done():
                batch.future.set_exception(exc)
        else:
            if not batch.future.done():
                batch.future.set_result(result)
        finally:
            left = self._reading.pop(schedule_id) - 1
            if left:
                self._reading[schedule_id] = left
            waiting = self._open.get(schedule_id)
            if waiting is not None and not left:  # callers arrived meanwhile: their read, now
                self._start(app, schedule_id, waiting)


class SeatReads(OneReadAtATime):
    """The early reads of holds (``OneReadAtATime``), of the union of their seats: a rush of
    many buyers on a few seats costs a round trip at a time instead of one per buyer. The
    answer is a read of committed rows, exactly as one query per hold would give:
    (show status and start, or None if unknown) and {(row, col): seat status}."""

    async def _fetch(self, app: App, schedule_id: int, keys: set[tuple[int, int]]) -> Any:
        rows = await app.db.fetch(
            "SELECT sc.status, sc.starts_at, s.seat_row, s.seat_col, s.status "
            "FROM schedules sc LEFT JOIN seats s ON s.schedule_id = sc.id AND "
            + seats_sql(sorted(keys)) + " WHERE sc.id = %s", (schedule_id,))
        return (rows[0][:2], {(r[2], r[3]): r[4] for r in rows}) if rows else (None, {})
