"""An order's status and refund figures always follow the committed sale rows, however the
events of its reservation meet: handled at once by the live consumer (prefetch > 1), or applied
by a replay's catch-up inside a longer transaction while the live service commits a refund.

The handlers run here in this process against a real MariaDB database of the test namespace
with order_svc's tables (``<ns>_order_conc``, made like the order database and dropped after):
the events never reach the event log, so they must stay out of the live tables that the replay
tests rebuild from the log."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select

from messages import errors
from messages.contracts.base import Envelope
from messages.db import Database, PlainTx, run_on_server
from messages.events import Delivery, EventHandler, apply_once
from messages.service import App
from order_svc import domain, tools
from order_svc.handlers import handlers
from order_svc.tables import PROJECTION, orders, sales
from tests.test_orders import Sale, Show


@pytest.fixture(scope="module")
async def order_db(system):
    settings = system.settings
    live, scratch = (f"`{settings.database_name(s)}`" for s in ("order", "order_conc"))
    await run_on_server(settings, [
        f"DROP DATABASE IF EXISTS {scratch}",
        f"CREATE DATABASE {scratch} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        *(f"CREATE TABLE {scratch}.{t} LIKE {live}.{t}" for t in PROJECTION)])
    db = Database(settings, "order_conc")
    try:
        yield db
    finally:
        await db.dispose()
        await run_on_server(settings, [f"DROP DATABASE IF EXISTS {scratch}"])


@pytest.fixture(scope="module")
def app(system, order_db):
    return App("order", system.settings, order_db, None, None)


def delivery(app: App, envelope: Envelope) -> Delivery:
    """An event as the consumer hands it to ``apply_once``, its handler bound to ``app``."""
    handler = handlers.events[envelope.type]

    async def bound(event_, tx):
        await handler.fn(event_, tx, app)

    return Delivery(envelope, EventHandler(handler.event, bound),
                    handler.event.model_validate(envelope.data))


async def apply(db: Database, app: App, envelope: Envelope) -> None:
    """One event in its own transaction, as the live consumer applies a lone event (inbox
    included); a deadlock with another event is tried again, as the consumer does."""
    delay = 0.02
    while True:
        try:
            await apply_once(db, [delivery(app, envelope)])
            return
        except Exception as exc:
            if errors.from_infrastructure(exc) is None:
                raise
            await asyncio.sleep(delay * random.random())
            delay = min(delay * 2, 0.5)


async def order_against_sales(db: Database, reservation_id: int) -> tuple[tuple, tuple]:
    """(what the order row says, what its sale rows say): refunded count, money, status."""
    async with db.read() as conn:
        order = (await conn.execute(select(
            orders.c.refunded_count, orders.c.refunded_total, orders.c.status,
            orders.c.paid_at, orders.c.ticket_count, orders.c.release_reason)
            .where(orders.c.id == reservation_id))).one()
        n, money = (await conn.execute(select(
            func.count(), func.coalesce(func.sum(sales.c.price), 0))
            .where(sales.c.reservation_id == reservation_id,
                   sales.c.refunded.is_(True)))).one()
    status = domain.order_status(paid=order.paid_at is not None,
                                 ticket_count=order.ticket_count, refunded_count=n,
                                 release_reason=order.release_reason)
    return ((order.refunded_count, int(order.refunded_total), order.status),
            (n, int(money), status.value))


async def test_catch_up_batch_keeps_a_refund_committed_after_its_snapshot(
        system, order_db, app):
    """The chaos run's order 3045: the live service applied `sold`, then `refunded` while a
    replay's catch-up transaction (many events, REPEATABLE READ) was already open; the batch
    then applied the late `held` of the same reservation. The order must say refunded."""
    show = Show(price=3000)
    sale = Sale(show, 1, [(2, 3)])
    earlier = Sale(show, 1, [(2, 4)])  # another reservation, earlier in the same batch
    await apply(order_db, app, sale.sold())
    refund = sale.refunded()

    class CommitsARefundMeanwhile:
        """The first event of the batch, after which the live service commits the refund."""
        def __init__(self, real) -> None:
            self.real = real
            self.event = real.event

        async def fn(self, event, tx, app_):
            await self.real.fn(event, tx, app_)
            await apply(order_db, app, refund)  # another connection: committed now

    rebuilder = tools.Rebuilder(system.settings, order_db, tools.ReplayReport())
    first, late = earlier.held(), sale.held()
    batch = [(first, CommitsARefundMeanwhile(handlers.events[first.type]),
              handlers.events[first.type].event.model_validate(first.data)),
             (late, handlers.events[late.type],
              handlers.events[late.type].event.model_validate(late.data))]
    assert await asyncio.wait_for(rebuilder._apply(batch), 30) == 2

    said, facts = await order_against_sales(order_db, sale.id)
    assert facts == (1, 3000, "refunded")
    assert said == facts


@pytest.mark.parametrize("shape", ["one event per transaction", "batches"])
async def test_events_of_one_reservation_at_once_end_as_the_sales_say(
        system, order_db, app, shape):
    """held, sold and refunds of each reservation applied concurrently in random orders,
    the order row not existing yet; the catch-up shape also puts several reservations'
    events into one transaction. Every order ends exactly as its sale rows say."""
    rng = random.Random(9)
    show = Show(price=1000)
    reservations = []
    for _ in range(40):
        sale = Sale(show, 2, [(3, 1), (3, 2), (3, 3)])
        refunds = [sale.refunded(i) for i in range(rng.randint(0, 3))]
        reservations.append((sale, [sale.held(), sale.sold(), *refunds]))

    if shape == "one event per transaction":
        async def run(envelopes):
            envelopes = envelopes[:]
            rng.shuffle(envelopes)
            await asyncio.gather(*(apply(order_db, app, e) for e in envelopes))
        await asyncio.gather(*(run(envelopes) for _, envelopes in reservations))
    else:
        rebuilder = tools.Rebuilder(system.settings, order_db, tools.ReplayReport())
        everything = [e for _, envelopes in reservations for e in envelopes]
        rng.shuffle(everything)
        live, batched = everything[::2], everything[1::2]

        async def batches():
            for i in range(0, len(batched), 10):
                rebuilder._pending = [
                    (e, handlers.events[e.type],
                     handlers.events[e.type].event.model_validate(e.data))
                    for e in batched[i:i + 10]]
                await rebuilder.flush()

        async def live_service():
            for i in range(0, len(live), 8):  # the live consumer's prefetch
                await asyncio.gather(*(apply(order_db, app, e) for e in live[i:i + 8]))
        await asyncio.wait_for(asyncio.gather(batches(), live_service()), 120)

    for sale, envelopes in reservations:
        said, facts = await order_against_sales(order_db, sale.id)
        refunded = len(envelopes) - 2
        assert facts == (refunded, refunded * 1000, domain.order_status(
            paid=True, ticket_count=3, refunded_count=refunded, release_reason=None).value)
        assert said == facts, (sale.id, said, facts)


async def test_the_first_event_of_a_reservation_holds_back_the_others(order_db, app):
    """The live consumer handles a reservation's events at once (prefetch > 1). The first
    upsert creates the order row and keeps it locked to its commit; a second event's upsert of
    the same row waits for that, and then counts what the first committed."""
    sale = Sale(Show(price=2500), 3, [(4, 1), (4, 2)])
    sold, refund = sale.sold(), sale.refunded(1)
    handler = handlers.events[sold.type]
    async with order_db.plain_transaction() as tx:
        await handler.fn(handler.event.model_validate(sold.data), tx, app)
        assert (await tx.execute("SELECT COUNT(*) FROM orders WHERE id = :id",
                                 {"id": sale.id})).scalar() == 1
        second = asyncio.create_task(apply(order_db, app, refund))
        await asyncio.sleep(1.0)
        assert not second.done(), "the refund went ahead of the uncommitted sale"
    await asyncio.wait_for(second, 30)
    said, facts = await order_against_sales(order_db, sale.id)
    assert facts == (1, 2500, "partially_refunded")
    assert said == facts


async def test_a_batch_of_events_is_two_round_trips_however_many_it_holds(
        order_db, app, monkeypatch):
    """The statements of a batch's events, its inbox claim and one read of every order it
    touched go in one round trip; the derived figures and the commit in the second. (One
    read per event made a batch of n events n + 1 round trips.) Every order still ends as
    its sale rows say."""
    show = Show(price=1500)
    sold = [Sale(show, 4, [(6, col), (7, col)]) for col in range(1, 6)]
    envelopes = [e for sale in sold for e in (sale.held(), sale.sold())]
    envelopes += [sold[0].refunded(0), sold[1].refunded(0), sold[1].refunded(1)]
    trips: list[str] = []
    real_execute, real_flush = PlainTx.execute, PlainTx.flush

    async def execute(self, statement, params=None):
        trips.append("execute")
        return await real_execute(self, statement, params)

    async def flush(self):
        if self._later:
            trips.append("flush")
        await real_flush(self)

    monkeypatch.setattr(PlainTx, "execute", execute)
    monkeypatch.setattr(PlainTx, "flush", flush)
    applied = await apply_once(order_db, [delivery(app, e) for e in envelopes])
    monkeypatch.undo()
    assert applied == len(envelopes)
    assert trips == ["execute", "flush"]
    expected = {sold[0].id: (1, 1500, "partially_refunded"), sold[1].id: (2, 3000, "refunded")}
    for sale in sold:
        said, facts = await order_against_sales(order_db, sale.id)
        assert facts == expected.get(sale.id, (0, 0, "paid"))
        assert said == facts, (sale.id, said, facts)
