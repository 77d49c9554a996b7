"""Tickets per account (issue 20.3): a show's ``max_tickets_per_customer``, counted over holds,
payments and clerk sales on the account, decided in the hold's transaction."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.catalogue import make_show
from tests.processes import second_ticket_svc
from tests.test_sales import hold


async def capped_show(manager, cap: int | None, **kw) -> dict:
    show = await make_show(manager, **kw)
    answer = await manager.patch(f"/schedules/{show['id']}", {"max_tickets_per_customer": cap})
    assert answer.status == 200, answer.body
    assert answer.body["max_tickets_per_customer"] == cap
    return answer.body


async def test_a_show_keeps_its_cap_and_null_clears_it(api, manager):
    show = await capped_show(manager, 4)
    assert (await api.get(f"/schedules/{show['id']}")).body["max_tickets_per_customer"] == 4
    cleared = await manager.patch(f"/schedules/{show['id']}", {"max_tickets_per_customer": None})
    assert cleared.status == 200 and cleared.body["max_tickets_per_customer"] is None
    for bad in (0, -1, 10_001, "two"):
        refused = await manager.patch(f"/schedules/{show['id']}",
                                      {"max_tickets_per_customer": bad})
        assert refused.status == 422 and refused.code == "validation_error", refused.body


async def test_holds_past_the_cap_are_limit_reached(manager, customer, new_user):
    show = await capped_show(manager, 3)
    first = await hold(customer, show, (1, 1), (1, 2))
    assert first.status == 201, first.body
    over = await hold(customer, show, (2, 1), (2, 2))
    assert over.status == 409 and over.code == "limit_reached", over.body
    assert (await hold(customer, show, (2, 1))).status == 201  # exactly the cap
    assert (await hold(customer, show, (3, 1))).code == "limit_reached"
    # another account has its own count
    other = await new_user()
    assert (await hold(other, show, (4, 1), (4, 2), (4, 3))).status == 201
    # once held, the show cannot be re-capped
    again = await manager.patch(f"/schedules/{show['id']}", {"max_tickets_per_customer": 10})
    assert again.status == 409 and again.code == "conflict"


async def test_paid_and_clerk_sold_tickets_count_and_give_back_when_ended(
        manager, clerk, new_user):
    show = await capped_show(manager, 2)
    buyer = await new_user()
    held = await hold(buyer, show, (1, 1))
    assert held.status == 201, held.body
    paid = await buyer.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    # a clerk's sale on the account counts toward the same cap
    sold = await hold(clerk, show, (2, 1), customer_id=buyer.user["id"])
    assert sold.status == 201, sold.body
    assert (await hold(buyer, show, (3, 1))).code == "limit_reached"
    assert (await hold(clerk, show, (3, 1), customer_id=buyer.user["id"])).code == \
        "limit_reached"
    # a cancelled hold gives its seat back, and so does a refunded ticket
    cancelled = await clerk.delete(f"/reservations/{sold.body['id']}")
    assert cancelled.status == 204, cancelled.body
    again = await hold(buyer, show, (3, 1))
    assert again.status == 201, again.body
    assert (await hold(buyer, show, (3, 2))).code == "limit_reached"
    ticket = paid.body["tickets"][0]
    assert (await buyer.post(f"/tickets/{ticket['id']}/refund")).status == 200
    assert (await hold(buyer, show, (3, 2))).status == 201
    assert (await hold(buyer, show, (3, 3))).code == "limit_reached"


async def test_a_show_without_a_cap_sells_without_limit(manager, customer):
    show = await capped_show(manager, None)
    for row in range(1, 4):
        answer = await hold(customer, show, *[(row, c) for c in range(1, 6)])
        assert answer.status == 201, answer.body


@pytest.mark.slow
async def test_two_ticket_processes_cannot_pass_one_accounts_cap_together(
        system, manager, new_user, service_rpc):
    """Concurrent holds of one account, on distinct seats, spread over two ticket_svc
    processes: the account's row lock counts them one after another."""
    cap = 3
    async with second_ticket_svc(system, service_rpc):
        for _ in range(4):
            show = await capped_show(manager, cap, rows=4, cols=10)
            buyer = await new_user()
            seats = [(r, c) for r in range(1, 5) for c in range(1, 11)]
            random.shuffle(seats)

            answers = await asyncio.gather(*(_later(hold(buyer, show, s)) for s in seats[:16]))
            assert all(a.status in (201, 409) for a in answers), [a.body for a in answers]
            won = [a for a in answers if a.status == 201]
            assert len(won) == cap, [a.body for a in answers]
            assert {a.code for a in answers if a.status == 409} == {"limit_reached"}


async def _later(request):
    await asyncio.sleep(random.random() * 0.05)  # in several AMQP messages, to both processes
    return await request
