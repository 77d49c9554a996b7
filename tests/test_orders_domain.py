"""order_svc's rules without I/O: an order's status from whatever facts arrived so far."""

from __future__ import annotations

import pytest

from messages.contracts.studio import Seat
from order_svc.domain import occupancy, order_status, seat_count


@pytest.mark.parametrize(("paid", "tickets", "refunds", "released", "status"), [
    (False, None, 0, None, "held"),
    (False, None, 0, "expired", "expired"),
    (False, None, 0, "cancelled", "cancelled"),
    (False, None, 0, "show_cancelled", "cancelled"),
    (True, 3, 0, None, "paid"),
    (True, 3, 1, None, "partially_refunded"),
    (True, 3, 3, None, "refunded"),
    (False, None, 1, None, "partially_refunded"),  # a refund before its sale: paid, surely
    (True, 1, 1, "show_cancelled", "refunded"),    # a sale outranks a release
])
def test_status_follows_the_facts(paid, tickets, refunds, released, status):
    assert order_status(paid=paid, ticket_count=tickets, refunded_count=refunds,
                        release_reason=released) == status


def test_occupancy_counts_only_seats():
    seats = [Seat(row=1, col=c, kind=k) for c, k in enumerate(["seat", "aisle", "broken",
                                                               "seat"], start=1)]
    assert seat_count(seats) == 2
    assert occupancy(sold=3, refunded=1, seats=4) == 0.5
    assert occupancy(sold=2, refunded=0, seats=3) == 0.6667
    assert occupancy(sold=1, refunded=0, seats=None) is None
