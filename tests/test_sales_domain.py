"""ticket_svc's rules without I/O: the sales cutoff, the refund window, seat order, the
hold's lifecycle; and the per-process helpers that spare the database work (seat turns, the
memory of ended holds), through their public names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from messages import errors
from messages.contracts.ticket import Seat
from ticket_svc import domain, expiry, queries
from ticket_svc.contention import SeatTurns
from ticket_svc.expiry import EndedHolds
from ticket_svc.state import ProcessState

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
    assert queries.seats_sql([(1, 2), (3, 1)]) == (
        "((seat_row = 1 AND seat_col = 2) OR (seat_row = 3 AND seat_col = 1))")


# -- holds for a same seat take turns within a process (contention.SeatTurns) ------------

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
    claims, log, decided = SeatTurns(), [], asyncio.Event()
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
    claims, log = SeatTurns(), []
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
    assert not len(claims)  # nothing left behind


async def test_a_turn_ends_even_when_its_hold_fails():
    claims = SeatTurns()
    with pytest.raises(RuntimeError):
        async with claims.turn(7, [(4, 4)]):
            raise RuntimeError("the database went away")
    async with claims.turn(7, [(4, 4)]) as claim:  # not left waiting for the failed one
        claim.won = True
    assert not len(claims)


# -- holds this process saw end cost no transaction when they come back due -----------------

class _NoDatabase:
    """Fails the test if anything touches the database."""

    def plain_transaction(self, **_):
        raise AssertionError("the database was used")


class _App:
    db = _NoDatabase()

    def __init__(self) -> None:
        self.state = ProcessState()


async def test_a_hold_this_process_ended_comes_back_due_without_a_transaction():
    app = _App()
    app.state.ended.add(987_654_321)
    await expiry.expire(app, 987_654_321)  # no database: nothing to do
    with pytest.raises(AssertionError, match="database was used"):
        await expiry.expire(app, 987_654_322)  # not known ended: the UPDATE decides


def test_the_memory_of_ended_holds_forgets_the_oldest_first():
    ended = EndedHolds(limit=3)
    for reservation_id in (1, 2, 3, 4):
        ended.add(reservation_id)
    assert 1 not in ended
    assert all(i in ended for i in (2, 3, 4))


# -- the hold's lifecycle ------------------------------------------------------------------

def test_a_hold_may_become_paid_expired_or_cancelled_and_then_never_changes():
    for end in (domain.PAID, domain.EXPIRED, domain.CANCELLED):
        assert domain.hold_may_become(domain.HELD, end)
        for again in (domain.HELD, domain.PAID, domain.EXPIRED, domain.CANCELLED):
            assert not domain.hold_may_become(end, again)
    assert not domain.hold_may_become(domain.HELD, domain.HELD)
    assert not domain.hold_may_become(domain.HELD, domain.REFUNDED)


def test_a_sold_ticket_may_be_refunded_once():
    assert domain.ticket_may_become(domain.SOLD, domain.REFUNDED)
    assert not domain.ticket_may_become(domain.REFUNDED, domain.REFUNDED)
    assert not domain.ticket_may_become(domain.REFUNDED, domain.SOLD)


def test_a_hold_expires_hold_seconds_after_it_was_made_and_is_due_from_then():
    expires_at = domain.hold_expires_at(START, 180)
    assert expires_at == START + timedelta(minutes=3)
    assert not domain.hold_is_due(expires_at, expires_at - timedelta(microseconds=1))
    assert domain.hold_is_due(expires_at, expires_at)
    assert domain.hold_is_due(expires_at, expires_at + timedelta(days=1))


def test_the_sql_of_the_lifecycle_is_built_from_the_same_names():
    assert domain.hold_is_due_sql() == "expires_at <= :now"
    assert domain.set_hold_status(domain.EXPIRED) == "status = 'expired'"
    with pytest.raises(ValueError):
        domain.set_hold_status(domain.REFUNDED)  # not a way a hold ends
    sql = str(queries.EXPIRE_HOLD)
    assert domain.still_held_sql() in sql and domain.hold_is_due_sql() in sql
    assert f"NOT {domain.hold_is_due_sql()}" in str(queries.MARK_PAID)
    assert domain.hold_is_due_sql(":due") in str(queries.DUE_HOLDS)
