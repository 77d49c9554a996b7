"""ticket_svc's rules without I/O: the sales cutoff, the refund window, seat order."""

from __future__ import annotations

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
