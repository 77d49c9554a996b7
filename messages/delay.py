"""A delay queue: hand a payload to the broker now, get it back in a handler ``seconds`` later.

How: a durable *waiting* queue per delay length, with a queue-level ``x-message-ttl`` and a
dead-letter exchange (``<ns>.delay``, direct). A message that has waited its TTL is dead-lettered
to that exchange and routed to the *due* queue, which this process (and every other process of
the same service) consumes. RabbitMQ expires messages only at the head of a queue, which is why
the TTL is set on the queue and never per message: in a queue where every message has the same
TTL, the head is always the first one due. A different length gets a different waiting queue.

    expiry = Delay(broker, names, "ticket.holds", 180, on_due)
    await expiry.start()
    await expiry.put({"reservation_id": 42})   # on_due({"reservation_id": 42}) in ~180 s

Delivery is at least once and may be late or, if the broker loses the message, missing: the
handler must be idempotent and the service must have a fallback (a periodic sweep).
A handler that raises is logged and the message dropped (the fallback catches it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractConnection
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from messages.broker import Broker
from messages.settings import Names

log = logging.getLogger("ttms.delay")

DueHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Delay:
    def __init__(self, broker: Broker, names: Names, name: str, seconds: float,
                 handler: DueHandler, prefetch: int = 64) -> None:
        self._broker = broker
        self._names = names
        self._handler = handler
        self._prefetch = prefetch
        self.ttl_ms = max(1, int(seconds * 1000))
        self.routing_key = name
        self.waiting_queue = f"{names.ns}.{name}.wait.{self.ttl_ms}ms"
        self.due_queue = f"{names.ns}.{name}.due"
        # The raw (aiormq) channel, in confirm mode: one message per hold each way, so
        # aio-pika's per-message objects were a measurable part of a sale's cost.
        self._channel = None

    async def start(self) -> None:
        """Declare the queues and consume, now (if connected) and after every reconnect."""
        self._broker.on_connect(self._setup)
        self._broker.on_lost(self._on_lost)
        connection = self._broker.connection
        if connection is not None:
            try:
                await self._setup(connection)
            except Exception as exc:  # noqa: BLE001 - the next connection sets it up again
                log.warning("delay queue %s not set up yet (%s)", self.due_queue, exc)

    async def _setup(self, connection: AbstractConnection) -> None:
        channel = await self._broker.channel(connection, confirms=True, prefetch=self._prefetch)
        exchange = await channel.declare_exchange(
            self._names.delay_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        await channel.declare_queue(self.waiting_queue, durable=True,
                                    arguments=self._names.transient(**{
                                        "x-message-ttl": self.ttl_ms,
                                        "x-dead-letter-exchange": self._names.delay_exchange,
                                        "x-dead-letter-routing-key": self.routing_key,
                                    }))
        due = await channel.declare_queue(self.due_queue, durable=True,
                                          arguments=self._names.transient())
        await due.bind(exchange, routing_key=self.routing_key)
        raw = await channel.get_underlay_channel()
        await raw.basic_consume(self.due_queue, self._on_message)
        self._channel = raw

    def _on_lost(self) -> None:
        self._channel = None

    async def put(self, payload: dict[str, Any]) -> None:
        """Publish ``payload`` (JSON) to come back when due; raises if the broker is away."""
        channel = self._channel
        if channel is None or channel.is_closed:
            raise ConnectionError("the message broker is unreachable")
        # Returns once the broker confirmed it (a nack raises).
        await channel.basic_publish(orjson.dumps(payload), routing_key=self.waiting_queue,
                                    properties=_PROPERTIES, timeout=5)

    async def _on_message(self, message: DeliveredMessage) -> None:
        channel, tag = message.channel, message.delivery.delivery_tag
        try:
            await self._handler(orjson.loads(message.body))
        except Exception:
            log.exception("delayed message on %s failed; dropping it", self.due_queue)
            settle = channel.basic_reject(tag, requeue=False)
        else:
            settle = channel.basic_ack(tag)
        try:
            await settle
        except Exception as exc:  # noqa: BLE001 - channel gone: the broker delivers it again
            log.warning("could not settle a delayed message on %s (%s)", self.due_queue, exc)


_PROPERTIES = Basic.Properties(content_type="application/json", delivery_mode=2)
