"""Orders and box office from real sales: shows made through play_svc and studio_svc, seats
held, paid, cancelled, expired and refunded through ticket_svc, all over HTTP; order_svc must
follow with exact figures, also when it was stopped during the sales, and agree with
ticket_svc's own ledger (`ttms-orders reconcile`)."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from order_svc import tools
from tests.catalogue import make_show
from tests.test_sales import HOLD_SECONDS, hold
from tests.waiting import eventually


async def order_of(client, reservation_id: int, status: str) -> dict:
    answer = await client.get(f"/orders/{reservation_id}")
    assert answer.status == 200, answer.body
    assert answer.body["status"] == status, answer.body
    return answer.body


async def box_office(manager, show: dict) -> dict:
    answer = await manager.get(f"/box-office/plays/{show['play_id']}")
    assert answer.status == 200, answer.body
    return answer.body


async def assert_figures(manager, show: dict, sold: int, refunded: int) -> dict:
    body = await box_office(manager, show)
    price = show["price"]
    assert (body["tickets_sold"], body["tickets_refunded"], body["gross"], body["refunded"],
            body["net"]) == (sold, refunded, sold * price, refunded * price,
                             (sold - refunded) * price), body
    return body


async def assert_agrees_with_ledger(system, *shows: dict) -> None:
    """The shows of this test agree with ticket_svc (other tests publish made-up sales that
    the ledger rightly does not know, so other lines may differ)."""
    ids = {show["id"] for show in shows}

    async def agree():
        ledger = await tools.ticket_ledger(system.settings)
        ours = await tools.box_office_by_show(system.settings)
        assert ids <= ledger.keys()
        assert tools.differences({k: v for k, v in ours.items() if k in ids},
                                 {k: v for k, v in ledger.items() if k in ids}) == []

    await eventually(agree)


async def test_orders_and_box_office_follow_real_sales(system, manager, clerk, customer):
    show = await make_show(manager, rows=3, cols=4, price=4000,
                           not_seats=((1, 1, "broken"), (1, 2, "broken")))
    paid = await hold(customer, show, (2, 1), (2, 2))
    assert paid.status == 201, paid.body
    order = await eventually(lambda: order_of(customer, paid.body["id"], "held"))
    assert order["seats"] == paid.body["seats"] and order["total"] == 8000
    assert order["play_name"] and order["starts_at"] == show["starts_at"]

    answer = await customer.post(f"/reservations/{paid.body['id']}/pay", {})
    assert answer.status == 200, answer.body
    await eventually(lambda: order_of(customer, paid.body["id"], "paid"))
    ticket = answer.body["tickets"][0]
    assert (await customer.post(f"/tickets/{ticket['id']}/refund")).status == 200
    order = await eventually(lambda: order_of(customer, paid.body["id"],
                                              "partially_refunded"))
    assert order["refunded_total"] == 4000 and order["paid_at"] is not None

    cancelled = await hold(customer, show, (3, 1))
    assert (await customer.delete(f"/reservations/{cancelled.body['id']}")).status == 204
    await eventually(lambda: order_of(customer, cancelled.body["id"], "cancelled"))
    # A clerk sells at the box office on the customer's account: the customer's order.
    at_desk = await clerk.post("/reservations", {"schedule_id": show["id"], "customer_id":
                                                 customer.user["id"],
                                                 "seats": [{"row": 3, "col": 4}]})
    assert at_desk.status == 201, at_desk.body
    assert (await clerk.post(f"/reservations/{at_desk.body['id']}/pay", {})).status == 200
    await eventually(lambda: order_of(customer, at_desk.body["id"], "paid"))

    body = await eventually(lambda: assert_figures(manager, show, 3, 1))
    [line] = body["schedules"]
    assert line["schedule_id"] == show["id"] and line["studio_id"] == show["studio_id"]
    assert (line["sold"], line["refunded"], line["net"]) == (3, 1, 8000)
    assert line["occupancy"] == round(2 / 10, 4)  # 12 places, 2 broken
    mine = await customer.get("/orders", params={"status": "paid"})
    assert [o["id"] for o in mine.body["items"]] == [at_desk.body["id"]]
    await assert_agrees_with_ledger(system, show)


async def test_totals_exact_after_200_random_operations_from_concurrent_clients(
        system, manager, new_user):
    show = await make_show(manager, rows=6, cols=6, price=3500)
    buyers = [await new_user() for _ in range(8)]
    rng = random.Random(200)
    expected: dict[int, dict] = {}  # reservation id -> {"status", "tickets", "refunded"}
    operations = itertools.count()

    def record(client, answer) -> int:
        expected[answer.body["id"]] = {"status": "held", "tickets": [], "refunded": set(),
                                       "client": client}
        return answer.body["id"]

    def record_paid(r: int, answer) -> None:
        expected[r].update(status="paid", tickets=[t["id"] for t in answer.body["tickets"]])

    async def steer(index: int, client) -> None:
        """Every ending by construction: buyer ``index`` holds two seats of its own (rows 1-3)
        and pays, cancels, leaves them to expire, or pays and refunds one ticket."""
        row, col = 1 + index // 3, 1 + 2 * (index % 3)
        answer = await hold(client, show, (row, col), (row, col + 1))
        assert answer.status == 201, answer.body
        r = record(client, answer)
        ending = ("paid", "cancelled", "expired", "partially_refunded")[index % 4]
        if ending in ("paid", "partially_refunded"):
            answer = await client.post(f"/reservations/{r}/pay", {})
            assert answer.status == 200, answer.body
            record_paid(r, answer)
        if ending == "partially_refunded":
            t = expected[r]["tickets"][0]
            assert (await client.post(f"/tickets/{t}/refund")).status == 200
            expected[r]["refunded"].add(t)
        elif ending == "cancelled":
            assert (await client.delete(f"/reservations/{r}")).status == 204
            expected[r]["status"] = "gone"

    async def buyer(client) -> None:
        mine: list[int] = []  # the steered reservations are not in it: their ending stays
        while next(operations) < 200:
            choice = rng.random()
            held = [r for r in mine if expected[r]["status"] == "held"]
            sold = [(r, t) for r in mine for t in expected[r]["tickets"]
                    if t not in expected[r]["refunded"]]
            if choice < 0.45 or not mine:
                pairs = {(rng.randint(1, 6), rng.randint(1, 6)) for _ in range(rng.randint(1, 3))}
                answer = await hold(client, show, *pairs)
                if answer.status == 201:
                    mine.append(record(client, answer))
                else:
                    assert answer.code == "seat_unavailable", answer.body
            elif choice < 0.7 and held:
                r = rng.choice(held)
                answer = await client.post(f"/reservations/{r}/pay", {})
                if answer.status == 200:
                    record_paid(r, answer)
                else:
                    assert answer.code == "hold_expired", answer.body
                    expected[r]["status"] = "gone"
            elif choice < 0.8 and held:
                r = rng.choice(held)
                answer = await client.delete(f"/reservations/{r}")
                assert answer.status in (204, 409), answer.body
                expected[r]["status"] = "gone"  # cancelled, or expired just before
            elif sold:
                r, t = rng.choice(sold)
                answer = await client.post(f"/tickets/{t}/refund")
                assert answer.status == 200, answer.body
                expected[r]["refunded"].add(t)
            # else: leave the holds alone; some will expire

    await asyncio.gather(*(steer(i, client) for i, client in enumerate(buyers)))
    await asyncio.gather(*(buyer(client) for client in buyers))
    sold = sum(len(e["tickets"]) for e in expected.values())
    refunded = sum(len(e["refunded"]) for e in expected.values())
    assert sold > 10 and refunded > 2 and len(expected) >= 20  # the mix did happen
    await asyncio.sleep(HOLD_SECONDS + 2)  # every hold left unpaid runs out

    # ticket_svc says how each hold ended; the order must say the same.
    ended = {}
    for r, e in expected.items():
        client = e["client"]
        reservation = await client.get(f"/reservations/{r}")
        assert reservation.status == 200, reservation.body
        status = reservation.body["status"]
        if status == "paid" and e["refunded"]:
            status = ("refunded" if len(e["refunded"]) == len(e["tickets"])
                      else "partially_refunded")
        ended[r] = status
    assert set(ended.values()) >= {"paid", "expired", "cancelled"}  # every ending is tried
    assert set(ended.values()) & {"refunded", "partially_refunded"}

    async def orders_exact():
        seen = {}
        for client in buyers:
            mine = await client.get("/orders", params={"page_size": 100})
            seen.update({o["id"]: o["status"] for o in mine.body["items"]})
        assert {r: seen.get(r) for r in expected} == ended

    await eventually(lambda: assert_figures(manager, show, sold, refunded), timeout=20)
    await eventually(orders_exact, timeout=20)
    await assert_agrees_with_ledger(system, show)


@pytest.mark.slow
async def test_order_service_stopped_during_sales_catches_up(system, manager, customer):
    show = await make_show(manager, rows=4, cols=4, price=2000)
    first = await hold(customer, show, (1, 1))
    assert (await customer.post(f"/reservations/{first.body['id']}/pay", {})).status == 200
    await eventually(lambda: assert_figures(manager, show, 1, 0))
    system.kill("order_svc")
    try:
        reservations = []
        for row in (2, 3, 4):
            held = await hold(customer, show, (row, 1), (row, 2))
            assert held.status == 201, held.body
            paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
            assert paid.status == 200, paid.body
            reservations.append(paid.body)
        refund = reservations[0]["tickets"][0]["id"]
        assert (await customer.post(f"/tickets/{refund}/refund")).status == 200
    finally:
        system.start("order_svc")
    await eventually(lambda: assert_figures(manager, show, 7, 1), timeout=30)
    await eventually(lambda: order_of(customer, reservations[0]["id"], "partially_refunded"))
    await assert_agrees_with_ledger(system, show)
