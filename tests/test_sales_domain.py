"""ticket_svc's rules without I/O: the sales cutoff, the refund window, seat order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from messages import errors
from messages.contracts.ticket import Seat
from ticket_svc import domain

START = datetime(2030, 5, 1, 19, 30, tzinfo=UTC)


def test_sales_close_cutoff_minutes_before_the_show():
    domain.check_sales_open("scheduled", START, START - timedelta(minutes=10, seconds=1), 10)
    with pytest.raises(errors.SalesClosed):
        domain.check_sales_open("scheduled", START, START - timedelta(minutes=10), 10)
    with pytest.raises(errors.SalesClosed):
        domain.check_sales_open("scheduled", START, START + timedelta(hours=1), 10)


def test_a_cancelled_show_sells_nothing():
    with pytest.raises(errors.SalesClosed):
        domain.check_sales_open("cancelled", START, START - timedelta(days=3), 10)


def test_refunds_close_when_the_show_starts():
    domain.check_refund_open(START, START - timedelta(microseconds=1))
    with pytest.raises(errors.RefundClosed):
        domain.check_refund_open(START, START)


def test_seats_are_claimed_in_key_order():
    seats = [Seat(row=3, col=1), Seat(row=1, col=9), Seat(row=1, col=2)]
    assert domain.seat_keys(seats) == [(1, 2), (1, 9), (3, 1)]
    assert domain.seats_sql([(1, 2), (3, 1)]) == (
        "((seat_row = 1 AND seat_col = 2) OR (seat_row = 3 AND seat_col = 1))")


# -- holds for a same seat take turns within a process (ticket_svc._Claims) -----------------

async def _hold_in_turn(claims, keys, outcome: asyncio.Event, wins: bool, log: list) -> str:
    try:
        async with claims.turn(7, keys) as claim:
            log.append(("in", keys))
            await outcome.wait()
            claim.won = wins
        return "won" if wins else "lost"
    except errors.SeatUnavailable as exc:
        return "refused: " + "; ".join(d["msg"] for d in exc.details)


async def test_when_the_first_hold_wins_the_seat_the_others_are_refused_without_a_turn():
    from ticket_svc.handlers import _Claims

    claims, log, decided = _Claims(), [], asyncio.Event()
    first = asyncio.create_task(_hold_in_turn(claims, [(1, 1), (1, 2)], decided, True, log))
    await asyncio.sleep(0)
    others = [asyncio.create_task(_hold_in_turn(claims, [(1, 2)], asyncio.Event(), True, log))
              for _ in range(5)]
    other_seat = asyncio.create_task(_hold_in_turn(claims, [(3, 3)], decided, True, log))
    await asyncio.sleep(0.01)
    assert log == [("in", [(1, 1), (1, 2)]), ("in", [(3, 3)])]  # a free seat does not wait
    decided.set()
    assert await first == "won" and await other_seat == "won"
    assert [await o for o in others] == ["refused: row 1 col 2: held"] * 5


async def test_when_the_first_hold_loses_the_next_one_takes_its_turn():
    from ticket_svc.handlers import _Claims

    claims, log = _Claims(), []
    first_done, second_done = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_hold_in_turn(claims, [(2, 1)], first_done, False, log))
    await asyncio.sleep(0)
    second = asyncio.create_task(_hold_in_turn(claims, [(2, 1)], second_done, True, log))
    await asyncio.sleep(0.01)
    assert len(log) == 1  # the second waits for the first's outcome
    first_done.set()
    await asyncio.sleep(0.01)
    assert len(log) == 2
    second_done.set()
    assert (await first, await second) == ("lost", "won")
    assert not claims._turns  # nothing left behind


async def test_a_turn_ends_even_when_its_hold_fails():
    from ticket_svc.handlers import _Claims

    claims = _Claims()
    with pytest.raises(RuntimeError):
        async with claims.turn(7, [(4, 4)]):
            raise RuntimeError("the database went away")
    async with claims.turn(7, [(4, 4)]) as claim:  # not left waiting for the failed one
        claim.won = True
    assert not claims._turns


# -- holds this process saw end cost no transaction when they come back due -----------------

class _NoDatabase:
    """Fails the test if anything touches the database."""

    def plain_transaction(self, **_):
        raise AssertionError("the database was used")


class _App:
    db = _NoDatabase()


async def test_a_hold_this_process_ended_comes_back_due_without_a_transaction():
    from ticket_svc import handlers

    handlers._ended.add(987_654_321)
    await handlers._expire(_App(), 987_654_321)  # no database: nothing to do
    with pytest.raises(AssertionError, match="database was used"):
        await handlers._expire(_App(), 987_654_322)  # not known ended: the UPDATE decides


def test_the_memory_of_ended_holds_forgets_the_oldest_first():
    from ticket_svc.handlers import _EndedHolds

    ended = _EndedHolds()
    ended.LIMIT = 3
    for reservation_id in (1, 2, 3, 4):
        ended.add(reservation_id)
    assert 1 not in ended
    assert all(i in ended for i in (2, 3, 4))
