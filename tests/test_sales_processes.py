"""Sales with more than one ticket_svc process, across a crash, and the commands other services
call (ticket.sales_activity, ticket.ledger) and the delay queue, seen from the broker."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.catalogue import make_show
from tests.processes import second_ticket_svc
from tests.test_sales import HOLD_SECONDS, hold, seat_status
from tests.waiting import wait_for

SERVICE = {"user_id": None, "role": None}


async def tickets_of(clerk, show: dict) -> list[dict]:
    """Every ticket of the show, sold or refunded, from all pages of GET /tickets."""
    tickets, page = [], 1
    while True:
        answer = await clerk.get("/tickets", params={"schedule_id": show["id"],
                                                     "page_size": 100, "page": page})
        assert answer.status == 200, answer.body
        tickets += answer.body["items"]
        if len(tickets) >= answer.body["total"]:
            return tickets
        page += 1


@pytest.mark.slow
async def test_two_ticket_processes_sell_each_seat_once(system, api, manager, new_user,
                                                        service_rpc):
    async with second_ticket_svc(system, service_rpc):
        show = await make_show(manager, rows=2, cols=6)
        buyers = await asyncio.gather(*(new_user() for _ in range(40)))
        wanted = [[(1 + i % 2, 1 + (i + k) % 6) for k in range(1 + i % 3)] for i in range(40)]
        answers = await asyncio.gather(*(hold(b, show, *w)
                                         for b, w in zip(buyers, wanted, strict=True)))
        assert all(a.status in (201, 409) for a in answers), [a.body for a in answers]
        winners = [a.body for a in answers if a.status == 201]
        claimed = [(s["row"], s["col"]) for r in winners for s in r["seats"]]
        assert winners and len(claimed) == len(set(claimed))
        status = await seat_status(api, show)
        assert {k for k, v in status.items() if v == "held"} == set(claimed)
        # Both processes pay; paying the same hold from both at once sells it once.
        owner, target = next((b, a.body) for b, a in zip(buyers, answers, strict=True)
                             if a.status == 201)
        paid = await asyncio.gather(*(owner.post(f"/reservations/{target['id']}/pay", {})
                                      for _ in range(6)))
        assert {p.status for p in paid} == {200}, [p.body for p in paid]
        assert len({tuple(t["id"] for t in p.body["tickets"]) for p in paid}) == 1
        sold = await service_rpc.call("ticket.sales_activity", {"schedule_ids": [show["id"]]},
                                      SERVICE)
        assert sold["schedules"][0]["sold"] == len(target["seats"])


@pytest.mark.slow
async def test_ticket_svc_killed_between_hold_and_pay(system, api, manager, customer):
    show = await make_show(manager)
    to_pay = await hold(customer, show, (1, 1), (1, 2))
    to_expire = await hold(customer, show, (2, 1))
    assert to_pay.status == to_expire.status == 201
    system.kill("ticket_svc")  # SIGKILL
    system.start("ticket_svc")

    async def up():
        return (await api.get(f"/schedules/{show['id']}/seats")).status == 200

    await wait_for(up, timeout=30)
    for _ in range(50):  # the gateway may still count no ticket_svc consumer for a second
        paid = await customer.post(f"/reservations/{to_pay.body['id']}/pay", {})
        if paid.status != 503:
            break
        await asyncio.sleep(0.1)
    expires_at = datetime.fromisoformat(to_pay.body["expires_at"])
    if paid.status == 200:
        assert paid.body["status"] == "paid" and len(paid.body["tickets"]) == 2
        status = await seat_status(api, show)
        assert status[(1, 1)] == status[(1, 2)] == "sold"
    else:  # the restart took longer than the hold
        assert paid.code == "hold_expired" and datetime.now(UTC) >= expires_at

    async def released():
        return (await seat_status(api, show))[(2, 1)] == "available"

    await wait_for(released, timeout=HOLD_SECONDS + 10)
    after = await customer.get(f"/reservations/{to_expire.body['id']}")
    assert after.body["status"] == "expired"


async def _holds_work(customer, show) -> bool:
    """True once ticket_svc answers holds again (after a restart in an earlier test)."""
    return (await hold(customer, show, (1, 1))).status != 503


async def test_each_hold_waits_in_the_delay_queue(system, manager, customer):
    names = system.settings.names
    waiting = f"{names.ns}.ticket.holds.wait.{HOLD_SECONDS * 1000}ms"
    show = await make_show(manager)
    await wait_for(lambda: _holds_work(customer, show))
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(waiting, passive=True)
        before = queue.declaration_result.message_count
        assert (await hold(customer, show, (2, 1))).status == 201
        assert (await hold(customer, show, (2, 2))).status == 201
        queue = await channel.declare_queue(waiting, passive=True)
        assert queue.declaration_result.message_count >= before + 2 - 1  # one may be due


async def test_sales_activity_and_ledger(manager, customer, service_rpc):
    show = await make_show(manager, price=1000)
    paid = (await hold(customer, show, (1, 1), (1, 2))).body
    answer = await customer.post(f"/reservations/{paid['id']}/pay", {})
    assert answer.status == 200
    assert (await hold(customer, show, (2, 1))).status == 201
    refund = await customer.post(f"/tickets/{answer.body['tickets'][0]['id']}/refund")
    assert refund.status == 200

    activity = await service_rpc.call("ticket.sales_activity",
                              {"schedule_ids": [show["id"], 999999999]}, SERVICE)
    assert activity == {"schedules": [
        {"schedule_id": show["id"], "held": 1, "sold": 1},
        {"schedule_id": 999999999, "held": 0, "sold": 0}]}
    ledger = await service_rpc.call("ticket.ledger", {}, SERVICE)
    line = next(s for s in ledger["schedules"] if s["schedule_id"] == show["id"])
    assert line == {"schedule_id": show["id"], "play_id": show["play_id"],
                    "studio_id": show["studio_id"], "tickets_sold": 2, "tickets_refunded": 1,
                    "gross": 2000, "refunded": 1000}


@pytest.mark.slow
async def test_holds_payments_cancels_and_refunds_at_once_stay_consistent(api, manager, clerk,
                                                                        new_user):
    """Buyers hold overlapping seats while others pay, cancel and refund on the same show:
    nothing fails (no deadlock surfaces as a 5xx) and seats agree with tickets afterwards."""
    show = await make_show(manager, rows=2, cols=8)
    places = [(r, c) for r in (1, 2) for c in range(1, 9)]
    buyers = await asyncio.gather(*(new_user() for _ in range(20)))
    statuses: list[int] = []

    async def buyer(client, n: int) -> None:
        rnd = random.Random(n)
        for _ in range(15):
            held = await hold(client, show, *rnd.sample(places, rnd.randint(1, 4)))
            statuses.append(held.status)
            if held.status != 201:
                continue
            if rnd.random() < 0.4:
                statuses.append((await client.delete(f"/reservations/{held.body['id']}")).status)
                continue
            paid = await client.post(f"/reservations/{held.body['id']}/pay", {})
            statuses.append(paid.status)
            if paid.status == 200 and rnd.random() < 0.5:
                for ticket in paid.body["tickets"]:
                    statuses.append((await client.post(f"/tickets/{ticket['id']}/refund")).status)

    await asyncio.gather(*(buyer(b, n) for n, b in enumerate(buyers)))
    assert set(statuses) <= {200, 201, 204, 409}, sorted(set(statuses))
    tickets = await tickets_of(clerk, show)
    sold_seats = [(t["row"], t["col"]) for t in tickets if t["status"] == "sold"]
    assert len(sold_seats) == len(set(sold_seats))  # never sold twice
    status = await seat_status(api, show)
    assert {k for k, v in status.items() if v == "sold"} == set(sold_seats)


async def test_paying_an_overdue_hold_is_refused_before_any_sweep(system, api, manager,
                                                                 customer):
    """Pay checks expires_at itself: a hold past its time is expired even if neither the delay
    queue nor the sweep has released it yet (here: its expiry moved into the past directly in
    the database, half a second ago, so neither has had a reason to look at it)."""
    show = await make_show(manager)
    r = (await hold(customer, show, (5, 1))).body
    engine = create_async_engine(system.settings.database_url("ticket"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "UPDATE reservations SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 0.5 SECOND "
                "WHERE id = :id"), {"id": r["id"]})
    finally:
        await engine.dispose()
    pay = await customer.post(f"/reservations/{r['id']}/pay", {})
    assert pay.status == 409 and pay.code == "hold_expired"
    assert (await seat_status(api, show))[(5, 1)] == "available"
    assert (await customer.get(f"/reservations/{r['id']}")).body["status"] == "expired"


async def test_an_idempotency_key_left_pending_or_a_day_old_is_taken_over(system, manager,
                                                                          customer):
    """A key whose request died with its process stays 'pending': after a while the same
    request with it runs as new; any request with a key older than its day does too. Until
    then the key answers with the first answer (test_sales.py)."""
    show = await make_show(manager)
    key = {"Idempotency-Key": f"taken-over-{os.getpid()}-{random.random()}"}
    first = await hold(customer, show, (5, 2), headers=key)
    assert first.status == 201, first.body

    async def age_key(sql: str) -> None:
        engine = create_async_engine(system.settings.database_url("ticket"))
        try:
            async with engine.begin() as conn:
                changed = await conn.execute(text(
                    f"UPDATE idempotency_keys SET {sql} WHERE idem_key = :key"),
                    {"key": key["Idempotency-Key"]})
                assert changed.rowcount == 1
        finally:
            await engine.dispose()

    # As if ticket_svc died while handling it, a minute ago (its hold was cancelled since):
    # the same request runs again; another request with that key is still refused.
    assert (await customer.delete(f"/reservations/{first.body['id']}")).status == 204
    await age_key("state = 'pending', ok = NULL, answer = NULL, "
                  "created_at = UTC_TIMESTAMP(6) - INTERVAL 60 SECOND")
    other = await hold(customer, show, (5, 3), headers=key)
    assert other.status == 422 and other.code == "idempotency_key_reused", other.body
    second = await hold(customer, show, (5, 2), headers=key)
    assert second.status == 201, second.body
    assert second.body["id"] != first.body["id"]
    again = await hold(customer, show, (5, 2), headers=key)
    assert again.status == 201 and again.body == second.body  # the new first answer

    await age_key("created_at = UTC_TIMESTAMP(6) - INTERVAL 25 HOUR")
    third = await hold(customer, show, (5, 4), headers=key)
    assert third.status == 201, third.body
    assert third.body["id"] not in (first.body["id"], second.body["id"])


@pytest.mark.slow
async def test_refunds_holds_and_payments_of_the_same_seats_at_once_never_answer_503(
        system, api, manager, clerk, new_user, service_rpc):
    """Issue 16 point 7: many buyers, two ticket_svc processes, six seats: each buyer holds,
    pays, cancels or lets the hold expire, and refunds what it paid at once, so refunds free
    seats that holds and payments are fighting for. No answer is a 5xx (a deadlock is
    retried, not answered 503), and afterwards seats agree with tickets and the ledger."""
    async with second_ticket_svc(system, service_rpc):
        show = await make_show(manager, rows=1, cols=6)
        places = [(1, c) for c in range(1, 7)]
        buyers = await asyncio.gather(*(new_user() for _ in range(64)))
        answers: dict[str, list] = {"hold": [], "pay": [], "cancel": [], "refund": []}
        loop = asyncio.get_running_loop()
        until = loop.time() + 12

        async def buyer(client, n: int) -> None:
            rnd = random.Random(n)
            while loop.time() < until:
                held = await hold(client, show, *rnd.sample(places, rnd.randint(1, 2)))
                answers["hold"].append(held)
                if held.status != 201:
                    await asyncio.sleep(rnd.random() * 0.02)
                    continue
                choice = rnd.random()
                if choice < 0.1:  # left to expire: the delay queue and the sweep end it
                    continue
                if choice < 0.4:
                    answers["cancel"].append(
                        await client.delete(f"/reservations/{held.body['id']}"))
                    continue
                paid = await client.post(f"/reservations/{held.body['id']}/pay", {})
                answers["pay"].append(paid)
                if paid.status == 200:
                    answers["refund"] += await asyncio.gather(*(
                        client.post(f"/tickets/{t['id']}/refund")
                        for t in paid.body["tickets"]))

        await asyncio.gather(*(buyer(b, n) for n, b in enumerate(buyers)))
    failed = [(kind, a.status, a.body) for kind, got in answers.items() for a in got
              if a.status >= 500]
    assert not failed, failed[:5]
    assert {a.status for got in answers.values() for a in got} <= {200, 201, 204, 409}
    refunded = sum(a.status == 200 for a in answers["refund"])
    assert refunded >= 10, {k: len(v) for k, v in answers.items()}
    tickets = await tickets_of(clerk, show)
    sold = [(t["row"], t["col"]) for t in tickets if t["status"] == "sold"]
    assert len(sold) == len(set(sold))  # never sold twice
    assert sum(t["status"] == "refunded" for t in tickets) == refunded
    status = await seat_status(api, show)
    assert {k for k, v in status.items() if v == "sold"} == set(sold)
    ledger = await service_rpc.call("ticket.ledger", {}, SERVICE)
    line = next(s for s in ledger["schedules"] if s["schedule_id"] == show["id"])
    assert (line["tickets_sold"], line["tickets_refunded"]) == (len(tickets), refunded)


@pytest.mark.slow
async def test_only_holds_naming_a_customer_ask_user_svc(system, api, manager, clerk,
                                                         customer):
    """Issue 16 point 4: the account check is one RPC to user_svc, made only when a hold
    names a customer_id. With user_svc stopped, holds without one are served as before
    (they never ask it), while a box-office sale on an account cannot be checked: 503."""
    show = await make_show(manager)
    system.kill("user_svc")
    try:
        await asyncio.sleep(1.5)  # the gateway and ticket_svc see no user_svc consumer
        plain = await hold(customer, show, (1, 1))
        assert plain.status == 201, plain.body
        by_clerk = await hold(clerk, show, (1, 2))
        assert by_clerk.status == 201, by_clerk.body
        unchecked = await hold(clerk, show, (1, 3), customer_id=customer.user["id"])
        assert unchecked.status in (503, 504), unchecked.body
    finally:
        system.start("user_svc")

        async def ready():
            return (await api.get("/readyz")).status == 200

        await wait_for(ready, timeout=60, interval=0.5)

    async def sold_on_account():
        answer = await hold(clerk, show, (1, 3), customer_id=customer.user["id"])
        return answer.status == 201

    await wait_for(sold_on_account, timeout=60, interval=0.5)
    assert (await seat_status(api, show))[(1, 3)] == "held"


@pytest.mark.parametrize("step", ["refund", "cancel"])
async def test_a_refund_or_cancel_chosen_as_a_deadlock_victim_is_run_again(system, manager,
                                                                           customer, step):
    """Issue 16 point 7, made certain: a transaction of the test's own locks the seat first,
    then the row the refund (the ticket) or the cancel (the reservation) has just locked:
    MariaDB finds the deadlock and rolls back the lighter side, the refund or cancel. It is
    run again (after the test's transaction ends) instead of answering 503."""
    show = await make_show(manager)
    held = await hold(customer, show, (2, 3))
    assert held.status == 201, held.body
    if step == "refund":
        paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
        assert paid.status == 200, paid.body
        row_sql = f"SELECT id FROM tickets WHERE id = {int(paid.body['tickets'][0]['id'])}"
        request = customer.post(f"/tickets/{paid.body['tickets'][0]['id']}/refund")
    else:
        row_sql = f"SELECT id FROM reservations WHERE id = {int(held.body['id'])}"
        request = customer.delete(f"/reservations/{held.body['id']}")
    database = system.settings.database_name("ticket")
    engine = create_async_engine(system.settings.database_url("ticket"))
    try:
        async with engine.connect() as watcher, engine.connect() as conn:
            rival = await conn.begin()
            # The show's other seats make the test's transaction the heavier (MariaDB rolls
            # back the lighter one); then the seat the refund or cancel will want.
            await conn.execute(text(
                "UPDATE seats SET reservation_id = 0 WHERE schedule_id = :id "
                "AND status = 'available'"), {"id": show["id"]})
            await conn.execute(text(
                "SELECT status FROM seats WHERE schedule_id = :id AND seat_row = 2 "
                "AND seat_col = 3 FOR UPDATE"), {"id": show["id"]})
            answer = asyncio.ensure_future(request)

            async def waits_for_the_seat():
                await watcher.rollback()  # a fresh read each time
                return (await watcher.execute(text(
                    "SELECT COUNT(*) FROM information_schema.INNODB_TRX t "
                    "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                    "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = :db "
                    "AND t.trx_query LIKE '%UPDATE seats%'"), {"db": database})).scalar()

            # interval > 0.1 s: InnoDB refreshes INNODB_TRX only when unread for 0.1 s
            await wait_for(waits_for_the_seat, timeout=10, interval=0.25)
            await conn.execute(text(row_sql + " FOR UPDATE"))  # the deadlock: it loses
            await asyncio.sleep(0.3)
            await rival.rollback()
            done = await asyncio.wait_for(answer, 10)
    finally:
        await engine.dispose()
    assert done.status in (200, 204), done.body
    if step == "refund":
        assert done.body["status"] == "refunded"
    else:
        after = await customer.get(f"/reservations/{held.body['id']}")
        assert after.body["status"] == "cancelled"


@pytest.mark.slow
async def test_two_holds_never_leave_a_single_seat_together(system, api, manager, new_user,
                                                             service_rpc):
    """Issue 14: ``no_single_gaps`` is decided in the database. In each 3-seat row two buyers
    at once hold the two ends, through two ticket_svc processes: each alone leaves no lone
    seat, both together would leave the middle one alone, so at most one of them (here: exactly
    one) holds, the other is 409 ``single_seat_gap``. (When the rule read without locking,
    both could pass and leave the gap.)"""
    rows = 16
    async with second_ticket_svc(system, service_rpc):
        show = await make_show(manager, rows=rows, cols=3)
        on = await manager.patch(f"/schedules/{show['id']}/seat-rules",
                                 {"no_single_gaps": True})
        assert on.status == 200, on.body
        buyers = await asyncio.gather(*(new_user() for _ in range(8)))
        wanted = [(r, col) for r in range(1, rows + 1) for col in (1, 3)]
        answers = await asyncio.gather(*(hold(buyers[i % len(buyers)], show, k)
                                         for i, k in enumerate(wanted)))
        assert all(a.status == 201 or a.code == "single_seat_gap" for a in answers), \
            [a.body for a in answers if a.status != 201]
        held = {k for k, a in zip(wanted, answers, strict=True) if a.status == 201}
        both = sorted(r for r in range(1, rows + 1) if {(r, 1), (r, 3)} <= held)
        assert not both, f"rows left with a single seat: {both}"
        assert len(held) == rows, sorted(held)  # one end of each row
        status = await seat_status(api, show)
        assert {k for k, v in status.items() if v == "held"} == held
