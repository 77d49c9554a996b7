"""Orders and box office from events: the sales events are published straight onto the events
exchange of the test namespace (as ticket_svc's outbox relay would), and the answers are read
through the gateway. Redeliveries, any order of arrival and a stopped consumer must all end in
the same exact figures."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika
import orjson
import pytest

from messages.contracts import play as p
from messages.contracts import studio as st
from messages.contracts import ticket as t
from messages.contracts.base import Envelope, Event
from tests.waiting import eventually

_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)
NOW = datetime.now(UTC).replace(microsecond=0)


def new_id() -> int:
    return next(_ids)


# -- publishing events as their producers would -----------------------------------------------

class Bus:
    """Publishes envelopes onto ``<ns>.events`` with the routing key = the event type."""

    def __init__(self, url: str, exchange_name: str) -> None:
        self.url = url
        self.exchange_name = exchange_name
        self._connection = None
        self._exchange = None

    async def _ready(self):
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self.url)
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        return self._exchange

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str) -> None:
        exchange = await self._ready()
        await exchange.publish(aio_pika.Message(
            body, message_id=message_id, type=routing_key, content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=routing_key)

    async def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            await self.publish_raw(envelope.type, orjson.dumps(envelope.model_dump(mode="json")),
                                   envelope.id)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


@pytest.fixture(scope="session")
async def bus(system):
    bus = Bus(system.settings.amqp_url, system.settings.names.events_exchange)
    yield bus
    await bus.close()


def wrap(event: Event, producer: str = "ticket") -> Envelope:
    return Envelope.wrap(event, producer)


# -- a show and its sales, as events --------------------------------------------------------

@dataclass
class Show:
    play_id: int = field(default_factory=new_id)
    studio_id: int = field(default_factory=new_id)
    schedule_id: int = field(default_factory=new_id)
    play_name: str = "Hamlet"
    studio_name: str = "Hall"
    starts_at: datetime = field(default_factory=lambda: NOW + timedelta(days=3))
    price: int = 4500
    rows: int = 4
    cols: int = 5
    not_seats: tuple[tuple[int, int], ...] = ((1, 1), (1, 2))  # aisle places

    def catalogue(self) -> list[Envelope]:
        play = p.Play(id=self.play_id, name=self.play_name, kind="drama", area=None,
                      rating="all", duration_minutes=120, description=None,
                      starts_on=self.starts_at.date() - timedelta(days=30),
                      ends_on=self.starts_at.date() + timedelta(days=30), price=self.price)
        studio = st.Studio(id=self.studio_id, name=self.studio_name, rows=self.rows,
                           cols=self.cols, seat_count=self.seat_count, description=None,
                           created_at=NOW)
        seats = [st.Seat(row=r, col=c, kind="aisle" if (r, c) in self.not_seats else "seat")
                 for r in range(1, self.rows + 1) for c in range(1, self.cols + 1)]
        return [wrap(p.PlayCreated(play=play), "play"),
                wrap(st.StudioCreated(studio=studio), "studio"),
                wrap(p.ScheduleCreated(schedule=self.schedule(), rows=self.rows, cols=self.cols,
                                       seats=seats), "play")]

    def schedule(self, status: str = "scheduled") -> p.Schedule:
        return p.Schedule(id=self.schedule_id, play_id=self.play_id, studio_id=self.studio_id,
                          play_name=self.play_name, studio_name=self.studio_name,
                          starts_at=self.starts_at, ends_at=self.starts_at + timedelta(hours=2),
                          price=self.price, status=status)

    @property
    def seat_count(self) -> int:
        return self.rows * self.cols - len(self.not_seats)


@dataclass
class Sale:
    """One reservation of a show: builds its events and knows its expected figures."""

    show: Show
    user_id: int
    seats: list[tuple[int, int]]
    id: int = field(default_factory=new_id)
    ticket_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ticket_ids = [new_id() for _ in self.seats]

    @property
    def priced(self) -> list[t.PricedSeat]:
        return [t.PricedSeat(row=r, col=c, price=self.show.price) for r, c in self.seats]

    @property
    def total(self) -> int:
        return self.show.price * len(self.seats)

    def _common(self) -> dict:
        return {"reservation_id": self.id, "user_id": self.user_id,
                "schedule_id": self.show.schedule_id, "play_id": self.show.play_id}

    def held(self) -> Envelope:
        s = self.show
        return wrap(t.TicketHeld(**self._common(), play_name=s.play_name, studio_id=s.studio_id,
                                 starts_at=s.starts_at, seats=self.priced, total=self.total,
                                 currency="CNY", expires_at=NOW + timedelta(minutes=3),
                                 created_at=NOW))

    def sold(self) -> Envelope:
        s = self.show
        tickets = [t.SoldTicket(ticket_id=tid, row=r, col=c, price=s.price)
                   for tid, (r, c) in zip(self.ticket_ids, self.seats, strict=True)]
        return wrap(t.TicketSold(**self._common(), play_name=s.play_name, studio_id=s.studio_id,
                                 starts_at=s.starts_at, tickets=tickets, total=self.total,
                                 currency="CNY", paid_at=NOW + timedelta(seconds=30)))

    def released(self, reason: str = "expired") -> Envelope:
        return wrap(t.TicketReleased(**self._common(), seats=self.priced, reason=reason,
                                     released_at=NOW + timedelta(minutes=3)))

    def refunded(self, index: int = 0) -> Envelope:
        r, c = self.seats[index]
        return wrap(t.TicketRefunded(**self._common(), ticket_id=self.ticket_ids[index],
                                     studio_id=self.show.studio_id, row=r, col=c,
                                     price=self.show.price, currency="CNY", reason="requested",
                                     refunded_at=NOW + timedelta(hours=1)))


async def figures(manager, play_id: int) -> dict:
    answer = await manager.get(f"/box-office/plays/{play_id}")
    assert answer.status == 200, answer.body
    return answer.body


# -- orders -----------------------------------------------------------------------------------

async def test_order_follows_hold_pay_and_refunds(bus, manager, clerk, customer, new_user):
    show = Show()
    sale = Sale(show, customer.user["id"], [(2, 1), (2, 2)])
    await bus.publish(*show.catalogue(), sale.held())

    async def held():
        answer = await customer.get(f"/orders/{sale.id}")
        assert answer.status == 200, answer.body
        assert answer.body["status"] == "held"
        return answer.body

    order = await eventually(held)
    assert order == {
        "id": sale.id, "user_id": customer.user["id"], "schedule_id": show.schedule_id,
        "play_id": show.play_id, "play_name": "Hamlet",
        "starts_at": show.starts_at.isoformat().replace("+00:00", "Z"),
        "seats": [{"row": 2, "col": 1, "price": 4500}, {"row": 2, "col": 2, "price": 4500}],
        "total": 9000, "currency": "CNY", "status": "held",
        "created_at": NOW.isoformat().replace("+00:00", "Z"), "paid_at": None,
        "refunded_total": 0}

    await bus.publish(sale.sold())
    await eventually(lambda: _status(customer, sale.id, "paid"))
    await bus.publish(sale.refunded(0))
    order = await eventually(lambda: _status(customer, sale.id, "partially_refunded"))
    assert order["refunded_total"] == 4500
    await bus.publish(sale.refunded(1))
    order = await eventually(lambda: _status(customer, sale.id, "refunded"))
    assert order["refunded_total"] == 9000 and order["paid_at"] is not None

    # Who sees what: the owner and clerks; another customer is refused; unknown is 404.
    other = await new_user()
    assert (await other.get(f"/orders/{sale.id}")).code == "forbidden"
    assert (await clerk.get(f"/orders/{sale.id}")).status == 200
    assert (await customer.get(f"/orders/{new_id()}")).status == 404
    mine = await customer.get("/orders")
    assert [o["id"] for o in mine.body["items"]] == [sale.id] and mine.body["total"] == 1
    assert (await other.get("/orders")).body["items"] == []
    refused = await other.get("/orders", params={"user_id": customer.user["id"]})
    assert refused.status == 403 and refused.code == "forbidden"
    by_clerk = await clerk.get("/orders", params={"user_id": customer.user["id"],
                                                  "status": "refunded"})
    assert [o["id"] for o in by_clerk.body["items"]] == [sale.id]
    none = await clerk.get("/orders", params={"user_id": customer.user["id"], "status": "paid"})
    assert none.body["total"] == 0
    bad = await clerk.get("/orders", params={"status": "lost"})
    assert bad.status == 422 and bad.code == "validation_error"
    assert (await customer.get("/box-office/plays/1")).status == 403


async def _status(client, order_id: int, status: str) -> dict:
    answer = await client.get(f"/orders/{order_id}")
    assert answer.status == 200, answer.body
    assert answer.body["status"] == status, answer.body
    return answer.body


async def test_released_holds_end_expired_or_cancelled(bus, customer):
    show = Show()
    expired, cancelled, show_cancelled = (Sale(show, customer.user["id"], [(3, n)])
                                          for n in (1, 2, 3))
    await bus.publish(expired.held(), expired.released("expired"))
    # The release before its hold: the order still ends cancelled, with its seats.
    await bus.publish(cancelled.released("cancelled"), cancelled.held())
    await bus.publish(show_cancelled.released("show_cancelled"))
    await eventually(lambda: _status(customer, expired.id, "expired"))
    order = await eventually(lambda: _status(customer, cancelled.id, "cancelled"))
    assert order["seats"] == [{"row": 3, "col": 2, "price": 4500}] and order["total"] == 4500
    assert order["created_at"] == NOW.isoformat().replace("+00:00", "Z")  # the hold's
    await eventually(lambda: _status(customer, show_cancelled.id, "cancelled"))


async def test_refund_before_sale_and_redeliveries_end_exact(bus, manager, customer):
    show = Show()
    sale = Sale(show, customer.user["id"], [(4, 1), (4, 2), (4, 3)])
    held, sold, refund = sale.held(), sale.sold(), sale.refunded(1)
    # Everything backwards, and every event twice (a redelivery has the same id).
    await bus.publish(refund, refund, sold, *show.catalogue(), sold, held, refund, held)

    async def exact():
        order = await _status(customer, sale.id, "partially_refunded")
        assert order["refunded_total"] == 4500 and order["total"] == 13500
        assert len(order["seats"]) == 3
        body = await figures(manager, show.play_id)
        assert (body["tickets_sold"], body["tickets_refunded"]) == (3, 1)
        assert (body["gross"], body["refunded"], body["net"]) == (13500, 4500, 9000)
        assert body["schedules"] == [{
            "schedule_id": show.schedule_id,
            "starts_at": show.starts_at.isoformat().replace("+00:00", "Z"),
            "studio_id": show.studio_id, "sold": 3, "refunded": 1, "net": 9000,
            "occupancy": round(2 / show.seat_count, 4), "checked_in": 0, "no_show": None}]

    await eventually(exact)
    await asyncio.sleep(0.5)  # late duplicates change nothing
    await exact()


# -- box office -----------------------------------------------------------------------------

async def test_box_office_by_play_studio_and_day(bus, manager, clerk, customer):
    day = NOW + timedelta(days=40)
    a = Show(play_name="Medea", studio_name="Small hall", starts_at=day, price=3000)
    b = Show(play_id=a.play_id, play_name="Medea", studio_id=new_id(), studio_name="Big hall",
             starts_at=day + timedelta(days=1), price=5000)
    c = Show(play_name="Faust", studio_id=a.studio_id, studio_name="Small hall",
             starts_at=day, price=7000)
    sales = [Sale(a, customer.user["id"], [(2, 1), (2, 2)]),
             Sale(b, customer.user["id"], [(3, 3)]),
             Sale(c, customer.user["id"], [(4, 4)])]
    never_paid = Sale(a, customer.user["id"], [(3, 1)])
    await bus.publish(*a.catalogue(), *b.catalogue()[1:], *c.catalogue(),
                      *(e for s in sales for e in (s.held(), s.sold())),
                      never_paid.held(), sales[0].refunded(0))
    start, end = day.date().isoformat(), (day + timedelta(days=1)).date().isoformat()

    async def report(group_by: str, **extra) -> list[dict]:
        answer = await manager.get("/box-office", params={"group_by": group_by, "from": start,
                                                          "to": end, **extra})
        assert answer.status == 200, answer.body
        return answer.body["items"]

    async def exact():
        play = await figures(manager, a.play_id)
        assert play["play_name"] == "Medea"
        assert (play["tickets_sold"], play["tickets_refunded"], play["gross"],
                play["refunded"], play["net"]) == (3, 1, 11000, 3000, 8000)
        assert [(s["schedule_id"], s["sold"], s["refunded"], s["net"], s["occupancy"])
                for s in play["schedules"]] == [
            (a.schedule_id, 2, 1, 3000, round(1 / a.seat_count, 4)),
            (b.schedule_id, 1, 0, 5000, round(1 / b.seat_count, 4))]
        assert await report("play") == sorted([
            {"key": a.play_id, "label": "Medea", "tickets_sold": 3, "tickets_refunded": 1,
             "gross": 11000, "refunded": 3000, "net": 8000, "checked_in": 0, "no_show": 0},
            {"key": c.play_id, "label": "Faust", "tickets_sold": 1, "tickets_refunded": 0,
             "gross": 7000, "refunded": 0, "net": 7000, "checked_in": 0, "no_show": 0}],
            key=lambda i: i["key"])
        studios = {i["key"]: i for i in await report("studio")}
        assert studios[a.studio_id]["label"] == "Small hall"
        assert (studios[a.studio_id]["gross"], studios[a.studio_id]["net"]) == (13000, 10000)
        assert studios[b.studio_id]["net"] == 5000 and len(studios) == 2
        assert await report("day") == [
            {"key": start, "label": start, "tickets_sold": 3, "tickets_refunded": 1,
             "gross": 13000, "refunded": 3000, "net": 10000, "checked_in": 0, "no_show": 0},
            {"key": end, "label": end, "tickets_sold": 1, "tickets_refunded": 0,
             "gross": 5000, "refunded": 0, "net": 5000, "checked_in": 0, "no_show": 0}]
        assert [i["key"] for i in await report("day", to=start)] == [start]

    await eventually(exact)
    assert (await clerk.get("/box-office")).code == "forbidden"
    assert (await clerk.get(f"/box-office/plays/{a.play_id}")).code == "forbidden"
    assert (await manager.get(f"/box-office/plays/{new_id()}")).status == 404
    bad = await manager.get("/box-office", params={"group_by": "month"})
    assert bad.status == 422 and bad.code == "validation_error"
    backwards = await manager.get("/box-office", params={"from": end, "to": start})
    assert backwards.status == 422
    assert (await manager.get("/box-office", params={"from": "soon"})).status == 422


# -- many concurrent clients; a stopped consumer ------------------------------------------------

def random_sales(show: Show, users: list[int], operations: int, rng: random.Random):
    """``operations`` random holds, payments, expiries and refunds on one show; returns the
    events in the order they happened and the expected (sold, refunded, gross, refunded money)."""
    free = [(r, c) for r in range(1, show.rows + 1) for c in range(1, show.cols + 1)
            if (r, c) not in show.not_seats]
    rng.shuffle(free)
    held: list[Sale] = []
    paid: list[tuple[Sale, int]] = []  # (sale, ticket index) not yet refunded
    events: list[Envelope] = []
    sold = refunded = 0
    for _ in range(operations):
        choice = rng.random()
        if choice < 0.4 and free:
            n = min(len(free), rng.randint(1, 3))
            sale = Sale(show, rng.choice(users), [free.pop() for _ in range(n)])
            held.append(sale)
            events.append(sale.held())
        elif choice < 0.65 and held:
            sale = held.pop(rng.randrange(len(held)))
            events.append(sale.sold())
            sold += len(sale.seats)
            paid += [(sale, i) for i in range(len(sale.seats))]
        elif choice < 0.8 and held:
            sale = held.pop(rng.randrange(len(held)))
            events.append(sale.released(rng.choice(["expired", "cancelled"])))
            free += sale.seats
        elif paid:
            sale, index = paid.pop(rng.randrange(len(paid)))
            events.append(sale.refunded(index))
            refunded += 1
            free.append(sale.seats[index])  # the seat is for sale again, as a new ticket
    return events, (sold, refunded, sold * show.price, refunded * show.price)


async def _publish_concurrently(system, events: list[Envelope], clients: int,
                                rng: random.Random) -> None:
    """Several publishers at once; each event goes out once, a fifth of them twice."""
    events = events + rng.sample(events, len(events) // 5)
    buses = [Bus(system.settings.amqp_url, system.settings.names.events_exchange)
             for _ in range(clients)]
    try:
        await asyncio.gather(*(bus.publish(*events[i::clients])
                               for i, bus in enumerate(buses)))
    finally:
        await asyncio.gather(*(bus.close() for bus in buses))


async def exact(manager, show: Show, expected: tuple[int, int, int, int]) -> None:
    body = await figures(manager, show.play_id)
    assert (body["tickets_sold"], body["tickets_refunded"], body["gross"],
            body["refunded"]) == expected, body
    assert body["net"] == expected[2] - expected[3]


async def test_totals_exact_after_200_random_operations_from_concurrent_clients(
        system, bus, manager):
    rng = random.Random(5)
    show = Show(rows=10, cols=10, price=3300)
    await bus.publish(*show.catalogue())
    events, expected = random_sales(show, list(range(9000, 9020)), 200, rng)
    assert expected[0] > 20 and expected[1] > 5  # the mix really sells and refunds
    await _publish_concurrently(system, events, 8, rng)
    await eventually(lambda: exact(manager, show, expected), timeout=20)


@pytest.mark.slow
async def test_stopped_order_service_catches_up_to_exact_totals(system, bus, manager):
    rng = random.Random(7)
    show = Show(rows=8, cols=8, price=2500)
    events, expected = random_sales(show, list(range(9100, 9110)), 120, rng)
    await bus.publish(*show.catalogue(), *events[:40])
    await eventually(lambda: exact(manager, show, _expected_of(show, events[:40])))
    system.kill("order_svc")
    try:
        await _publish_concurrently(system, events[40:], 4, rng)
    finally:
        system.start("order_svc")
    await eventually(lambda: exact(manager, show, expected), timeout=30)


def _expected_of(show: Show, events: list[Envelope]) -> tuple[int, int, int, int]:
    sold = sum(len(e.data["tickets"]) for e in events if e.type == "ticket.sold")
    refunded = sum(1 for e in events if e.type == "ticket.refunded")
    return sold, refunded, sold * show.price, refunded * show.price
