"""Events: declare the topology, relay the outbox to the broker, consume with an inbox.

- ``declare_topology``: the topic exchange ``<ns>.events``, the dead-letter exchange, and the
  event log, a stream queue bound to every routing key.
- ``OutboxRelay``: publishes unsent outbox rows with publisher confirms, then marks them sent.
  Woken right after each commit that wrote events, and polls as well, so it catches up after a
  broker outage or a restart. Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so two
  processes of one service never publish the same row at the same time.
- ``Subscriber``: a quorum queue per consuming service. Each event is handled in one database
  transaction that also records its id in the inbox, so a redelivery has no second effect.
  A handler bug is retried by the broker up to ``x-delivery-limit`` times and then
  dead-lettered; a malformed event is dead-lettered at once; a database outage is retried in
  place (it does not use up deliveries).
- ``Listener``: a transient, per-process subscription with no inbox (the gateway's token
  revocations).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy import bindparam, text

from messages import errors
from messages.broker import Broker
from messages.contracts.base import Envelope, Event, utcnow
from messages.db import Database, Tx, to_db
from messages.settings import Names

log = logging.getLogger("ttms.events")


async def declare_topology(channel: AbstractChannel,
                           names: Names) -> aio_pika.abc.AbstractExchange:
    exchange = await channel.declare_exchange(
        names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.dead_letter_exchange, aio_pika.ExchangeType.DIRECT,
                                   durable=True)
    log_queue = await channel.declare_queue(
        names.event_log, durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": "30D"})
    await log_queue.bind(exchange, routing_key="#")
    return exchange


class OutboxRelay:
    def __init__(self, broker: Broker, names: Names, db: Database, poll: float = 1.0,
                 batch: int = 500) -> None:
        self._broker = broker
        self._names = names
        self._db = db
        self._poll = poll
        self._batch = batch
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        broker.on_connect(self._setup)
        broker.on_lost(self._on_lost)

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, confirms=True)
        self._exchange = await declare_topology(channel, self._names)
        self._db.outbox_written.set()  # catch up on whatever waited for the broker

    def _on_lost(self) -> None:
        self._exchange = None

    async def run(self) -> None:
        cleaned = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._db.outbox_written.wait(), self._poll)
            except TimeoutError:
                pass
            self._db.outbox_written.clear()
            if self._exchange is None:
                continue
            try:
                while await self.publish_batch() == self._batch:
                    pass
                if loop.time() - cleaned > 60:
                    cleaned = loop.time()
                    await self._clean()
            except Exception as exc:  # noqa: BLE001 - rows stay unsent; next round retries
                log.warning("outbox relay round failed (%s); will retry", exc)
                await asyncio.sleep(0.5)

    async def publish_batch(self) -> int:
        exchange = self._exchange
        if exchange is None:
            return 0
        async with self._db.engine.begin() as conn:
            rows = (await conn.execute(text(
                "SELECT id, event_id, routing_key, body FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"), {"n": self._batch})).all()
            if not rows:
                return 0
            await asyncio.gather(*(
                exchange.publish(
                    aio_pika.Message(row.body, message_id=row.event_id, type=row.routing_key,
                                     content_type="application/json",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=row.routing_key, mandatory=False, timeout=10)
                for row in rows))
            await conn.execute(
                text("UPDATE outbox SET published_at = :now WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)),
                {"now": to_db(utcnow()), "ids": [r.id for r in rows]})
        return len(rows)

    async def _clean(self) -> None:
        async with self._db.engine.begin() as conn:
            await conn.execute(text(
                "DELETE FROM outbox WHERE published_at < NOW(6) - INTERVAL 1 DAY LIMIT 5000"))


EventFn = Callable[[Any, Tx], Awaitable[None]]


@dataclass(slots=True)
class EventHandler:
    event: type[Event]
    fn: EventFn


class Subscriber:
    def __init__(self, broker: Broker, names: Names, db: Database, consumer: str,
                 handlers: dict[str, EventHandler], delivery_limit: int = 5,
                 prefetch: int = 32) -> None:
        self._broker = broker
        self._names = names
        self._db = db
        self.consumer = consumer
        self._handlers = handlers
        self._delivery_limit = delivery_limit
        self._prefetch = prefetch
        broker.on_connect(self._setup)

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, prefetch=self._prefetch)
        exchange = await declare_topology(channel, self._names)
        dead = await channel.declare_queue(self._names.dead_letter_queue(self.consumer),
                                           durable=True, arguments={"x-queue-type": "quorum"})
        await dead.bind(self._names.dead_letter_exchange, routing_key=self.consumer)
        queue = await channel.declare_queue(
            self._names.event_queue(self.consumer), durable=True,
            arguments={"x-queue-type": "quorum",
                       "x-delivery-limit": self._delivery_limit,
                       "x-dead-letter-exchange": self._names.dead_letter_exchange,
                       "x-dead-letter-routing-key": self.consumer})
        for routing_key in self._handlers:
            await queue.bind(exchange, routing_key=routing_key)
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate(orjson.loads(message.body))
            handler = self._handlers.get(envelope.type)
            event = handler.event.model_validate(envelope.data) if handler else None
        except (orjson.JSONDecodeError, ValidationError) as exc:
            log.error("dead-lettering malformed event %s: %s", message.message_id, exc)
            await message.reject(requeue=False)
            return
        if handler is None:
            await message.ack()
            return
        delay = 0.2
        while True:
            try:
                await self.handle(envelope, handler, event)
                break
            except Exception as exc:
                if errors.from_infrastructure(exc) is None:
                    log.exception("handler for %s %s failed", envelope.type, envelope.id)
                    await message.nack(requeue=True)  # counted; dead-lettered at the limit
                    return
                log.warning("database unavailable handling %s (%s); retrying", envelope.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await message.ack()

    async def handle(self, envelope: Envelope, handler: EventHandler, event: Event) -> bool:
        """Apply one event once. Returns False when the inbox says it was handled before."""
        async with self._db.transaction() as tx:
            claimed = await tx.execute(text(
                "INSERT IGNORE INTO inbox (event_id, event_type, handled_at) "
                "VALUES (:id, :type, :now)"),
                {"id": envelope.id, "type": envelope.type, "now": to_db(utcnow())})
            if claimed.rowcount == 0:
                return False
            await handler.fn(event, tx)
            return True


# How long a Listener's queue outlives its last consumer (a broker outage, a dead process).
LISTENER_QUEUE_EXPIRES_MS = 5 * 60 * 1000


class Listener:
    """A subscription that lives as long as its process, with no inbox.

    Its queue is its own (``<ns>.listener.<random>``) but not exclusive: durable, deleted by
    the broker once unused for ``LISTENER_QUEUE_EXPIRES_MS``. An exclusive queue died with
    each connection, so events published while the connection was rebuilt (a broker restart,
    a dropped connection) never arrived, and a gateway missed token revocations for good.
    """

    def __init__(self, broker: Broker, names: Names, routing_keys: list[str],
                 callback: Callable[[Envelope], Awaitable[None] | None]) -> None:
        self._broker = broker
        self._names = names
        self._keys = routing_keys
        self._callback = callback
        self._queue = f"{names.ns}.listener.{uuid.uuid4().hex[:16]}"
        broker.on_connect(self._setup)

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, prefetch=64)
        exchange = await declare_topology(channel, self._names)
        queue = await channel.declare_queue(
            self._queue, durable=True, arguments={"x-expires": LISTENER_QUEUE_EXPIRES_MS})
        for key in self._keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            result = self._callback(Envelope.model_validate(orjson.loads(message.body)))
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("listener failed on an event")
