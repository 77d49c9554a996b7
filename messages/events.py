"""Events: declare the topology, relay the outbox to the broker, consume with an inbox.

- ``declare_topology``: the topic exchange ``<ns>.events``, the dead-letter exchange, and the
  event log, a stream queue bound to every routing key.
- ``OutboxRelay``: publishes unsent outbox rows with publisher confirms, then marks them sent.
  Woken right after each commit that wrote events, and polls as well, so it catches up after a
  broker outage or a restart. Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so two
  processes of one service never publish the same row at the same time.
- ``Subscriber``: a quorum queue per consuming service. Each event is handled in a database
  transaction that also records its id in the inbox, so a redelivery has no second effect;
  events of ``plain`` handlers that arrive together share one transaction (``apply_once``).
  A handler bug is retried by the broker up to ``x-delivery-limit`` times and then
  dead-lettered; a malformed event is dead-lettered at once; a database outage or a deadlock
  is retried in place (it does not use up deliveries).
- ``Listener``: a transient, per-process subscription with no inbox (the gateway's token
  revocations).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pydantic import ValidationError
from sqlalchemy import text

from messages import errors
from messages.broker import Broker, BrokerClient
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
        arguments=names.stream(**{"x-max-age": "30D"}))
    await log_queue.bind(exchange, routing_key="#")
    return exchange


class OutboxRelay(BrokerClient):
    """Publishes the outbox: rows claimed with ``FOR UPDATE SKIP LOCKED``, published with
    publisher confirms, marked sent in the same transaction. On plain asyncmy and the raw AMQP
    channel: it runs after every commit that wrote events, so its cost is paid per sale."""

    LINGER = 0.002  # after a nudge, let the commits of the same moment join the round

    def __init__(self, broker: Broker, names: Names, db: Database, poll: float = 1.0,
                 batch: int = 500) -> None:
        super().__init__(broker, names)  # _channel: the raw (aiormq) one, in confirm mode
        self._db = db
        self._poll = poll
        self._batch = batch

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, confirms=True)
        await declare_topology(channel, self._names)
        self._channel = await channel.get_underlay_channel()
        self._db.outbox_written.set()  # catch up on whatever waited for the broker

    async def run(self) -> None:
        cleaned = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._db.outbox_written.wait(), self._poll)
                await asyncio.sleep(self.LINGER)
            except TimeoutError:
                pass
            self._db.outbox_written.clear()
            if self._channel is None:
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
            except asyncio.CancelledError:
                # aiormq cancels the confirmations still pending when a connection dies
                # without a close (a broker frozen past the heartbeat): a CancelledError in a
                # task nobody cancelled. It used to end the relay for good, silently.
                if asyncio.current_task().cancelling():
                    raise
                log.warning("outbox relay round cut short by the lost broker connection; "
                            "will retry")
                await asyncio.sleep(0.5)

    async def publish_batch(self) -> int:
        channel = self._channel
        if channel is None:
            return 0
        exchange = self._names.events_exchange
        # Two round trips a round: BEGIN with the claim, the marking with the COMMIT.
        # READ COMMITTED: under REPEATABLE READ the claim's scan of ix_outbox_unpublished
        # took a gap lock just where every new row goes, so each commit that wrote events
        # waited for this round's broker confirms, and the marking UPDATE, which also read
        # past its rows, locked such a waiting commit's new row: a deadlock (issue 16 point
        # 7: a refund answered 503). Here only the claimed rows are locked.
        async with self._db.plain_transaction(begin_later=True, read_committed=True) as tx:
            rows = (await tx.execute(
                "SELECT id, event_id, routing_key, body FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED", {"n": self._batch})).all()
            if not rows:
                return 0
            # Each publish returns once the broker confirmed it; a nack raises DeliveryError.
            await asyncio.gather(*(
                channel.basic_publish(
                    row.body, exchange=exchange, routing_key=row.routing_key, timeout=10,
                    properties=Basic.Properties(
                        message_id=row.event_id, message_type=row.routing_key,
                        content_type="application/json", delivery_mode=2))
                for row in rows))
            tx.later("UPDATE outbox SET published_at = :now WHERE id IN :ids",
                     {"now": to_db(utcnow()), "ids": tuple(r.id for r in rows)})
        return len(rows)

    async def _clean(self) -> None:
        async with self._db.plain_transaction() as tx:
            await tx.execute(
                "DELETE FROM outbox WHERE published_at < NOW(6) - INTERVAL 1 DAY LIMIT 5000")


EventFn = Callable[[Any, Tx], Awaitable[None]]


@dataclass(slots=True)
class EventHandler:
    event: type[Event]
    fn: EventFn
    plain: bool = False  # fn takes a PlainTx, which it may share with other plain events


@dataclass(slots=True)
class Delivery:
    """An event off a queue (or the event log), parsed, with its handler; ``channel`` and
    ``tag`` settle it with the broker."""

    envelope: Envelope
    handler: EventHandler
    event: Event
    channel: Any = None
    tag: int = 0


INBOX_CLAIM = ("INSERT IGNORE INTO inbox (event_id, event_type, handled_at) "
               "VALUES (:id, :type, :now)")


class _AppliedBefore(Exception):
    """Some events of a batch are in the inbox already: claim them one at a time instead."""


async def apply_once(db: Database, batch: Sequence[Delivery]) -> int:
    """Apply plain events in one plain transaction, in their order, each once (the inbox);
    returns how many were new. Errors propagate: the caller tells a database failure or a
    deadlock (try again) from a handler bug.

    The batch's inbox rows are claimed by one multi-row INSERT IGNORE, sent with the first
    read of the handlers or of the work they deferred to the end of the batch
    (``PlainTx.later``, ``PlainTx.before_commit``: a batch of order events, one or many, is
    two round trips, its statements and the commit). When the claim inserted fewer rows than
    there are events (a redelivery, the same event twice), the transaction is rolled back and
    starts over claiming one event at a time, each claim telling whether its event is new."""
    try:
        return await _apply_once(db, batch, claim_together=True)
    except _AppliedBefore:
        return await _apply_once(db, batch, claim_together=False)


async def _apply_once(db: Database, batch: Sequence[Delivery], claim_together: bool) -> int:
    now = to_db(utcnow())
    claims = [{"id": d.envelope.id, "type": d.envelope.type, "now": now} for d in batch]
    async with db.plain_transaction(begin_later=True) as tx:
        if claim_together:
            claimed = tx.later(INBOX_CLAIM, rows=claims)
            for delivery in batch:
                await delivery.handler.fn(delivery.event, tx)
            await tx.finish()  # what the handlers deferred; its first read carries the claim
            if claimed.rowcount is None:
                await tx.flush()
            if claimed.rowcount < len(batch):
                raise _AppliedBefore
            return len(batch)
        applied = 0
        for delivery, claim in zip(batch, claims, strict=True):
            if (await tx.execute(INBOX_CLAIM, claim)).rowcount:
                await delivery.handler.fn(delivery.event, tx)
                applied += 1
    return applied


class Subscriber(BrokerClient):
    """Consumes one service's event queue, applying each event once (the inbox).

    Events of ``plain`` handlers share transactions: the events waiting when a transaction
    can start (``batches`` at a time) are applied in it, up to ``batch`` of them
    (``apply_once``: claim, apply in delivery order, one commit), then acked together. A lone
    event starts at once; under load, the events that arrive while a batch is being applied
    make the next one, so the busier the queue, the fewer transactions per event. One batch at
    a time by default: two at once deadlocked on each other's gap locks (sale rows of
    neighbouring reservations) about once per hundred events in a flood, for no CPU gained.
    Other handlers get a SQLAlchemy transaction of their own per event, as before.

    A database outage, and a deadlock (with another process, the replay), is retried in
    place, the whole batch again: it does not use up deliveries. Any other failure of a batch
    is a handler's bug: its events are applied again one per transaction, so that the good
    ones are applied (once) and acked, and only the bad one is nacked; the broker
    dead-letters it at the delivery limit. A malformed event is dead-lettered at once.
    """

    def __init__(self, broker: Broker, names: Names, db: Database, consumer: str,
                 handlers: dict[str, EventHandler], delivery_limit: int = 5,
                 prefetch: int = 32, batch: int = 32, batches: int = 1) -> None:
        super().__init__(broker, names)
        self._db = db
        self.consumer = consumer
        self._handlers = handlers
        self._delivery_limit = delivery_limit
        self._prefetch = prefetch
        self._batch = batch
        self._batches = batches
        self._unsettled: set[int] = set()  # delivery tags of the channel not acked yet
        self._waiting: list[Delivery] = []
        self._flush_scheduled = False
        self._applying = 0
        self._batch_tasks: set[asyncio.Task] = set()

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, prefetch=self._prefetch)
        exchange = await declare_topology(channel, self._names)
        dead = await channel.declare_queue(self._names.dead_letter_queue(self.consumer),
                                           durable=True, arguments=self._names.quorum())
        await dead.bind(self._names.dead_letter_exchange, routing_key=self.consumer)
        queue = await channel.declare_queue(
            self._names.event_queue(self.consumer), durable=True,
            arguments=self._names.quorum(**{
                "x-delivery-limit": self._delivery_limit,
                "x-dead-letter-exchange": self._names.dead_letter_exchange,
                "x-dead-letter-routing-key": self.consumer}))
        for routing_key in self._handlers:
            await queue.bind(exchange, routing_key=routing_key)
        # The AMQP channel itself (as RpcServer does): aio-pika's message wrapper and its
        # second task per message cost more than the rest of taking an event in.
        self._channel = await channel.get_underlay_channel()
        self._unsettled = set()
        await self._channel.basic_consume(queue.name, self._on_message)

    def _on_lost(self) -> None:
        super()._on_lost()
        self._unsettled = set()
        self._waiting.clear()  # never acked: the broker delivers them again

    async def _on_message(self, message: DeliveredMessage) -> None:
        channel, tag = message.channel, message.delivery.delivery_tag
        if channel is self._channel:
            self._unsettled.add(tag)  # before any await: see _ack
        try:
            envelope = Envelope.model_validate(orjson.loads(message.body))
            handler = self._handlers.get(envelope.type)
            event = handler.event.model_validate(envelope.data) if handler else None
        except (orjson.JSONDecodeError, ValidationError) as exc:
            log.error("dead-lettering malformed event %s: %s",
                      message.header.properties.message_id, exc)
            await self._settle(channel, tag, channel.basic_reject(tag, requeue=False))
            return
        if handler is None:
            await self._settle(channel, tag, channel.basic_ack(tag))
            return
        delivery = Delivery(envelope, handler, event, channel, tag)
        if not handler.plain:
            await self._deliver([delivery])
            return
        self._waiting.append(delivery)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Start batches in the next loop turn: after the other messages that came in the same
        read from the socket have been parsed too, and at once for a lone one."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._waiting and self._applying < self._batches:
            batch, self._waiting = self._waiting[:self._batch], self._waiting[self._batch:]
            self._applying += 1
            # Not a task of the channel, which would be cancelled with it: a transaction cut
            # off in mid-statement could hand its connection back to the pool unsure of its
            # state. A batch whose channel closes meanwhile commits, cannot be acked, and is
            # delivered again (the inbox skips it).
            task = asyncio.create_task(self._deliver(batch))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task) -> None:
        self._batch_tasks.discard(task)
        self._applying -= 1
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("applying a batch of events failed", exc_info=exc)
        if self._waiting:
            self._schedule_flush()

    async def _deliver(self, batch: list[Delivery]) -> None:
        """Apply, then ack; after a handler bug, one event per transaction."""
        try:
            await self._retrying(batch)
        except Exception:
            if len(batch) > 1:
                log.warning("a batch of %d events failed; applying them one at a time",
                            len(batch), exc_info=True)
                for delivery in batch:
                    await self._deliver([delivery])
                return
            delivery = batch[0]
            log.exception("handler for %s %s failed", delivery.envelope.type,
                          delivery.envelope.id)
            # Counted by the broker: dead-lettered at the delivery limit.
            await self._settle(delivery.channel, delivery.tag,
                               delivery.channel.basic_nack(delivery.tag, requeue=True))
            return
        await self._ack(batch)

    async def _ack(self, batch: list[Delivery]) -> None:
        """One ack for the whole batch (``multiple``: every delivery up to its last tag)
        when no other delivery of the channel below that tag is still unsettled; else one
        ack per event. Tags grow with each delivery and each is recorded as unsettled before
        its message handler first awaits, so none below the batch's last can be missed."""
        channel, tags = batch[0].channel, {d.tag for d in batch}
        last = max(tags)
        if (len(batch) > 1 and channel is self._channel
                and all(d.channel is channel for d in batch)
                and all(t in tags for t in self._unsettled if t <= last)):
            await self._settle(channel, tags, channel.basic_ack(last, multiple=True))
            return
        for d in batch:
            await self._settle(d.channel, d.tag, d.channel.basic_ack(d.tag))

    async def _settle(self, channel: Any, tags: int | set[int],
                      acknowledgement: Awaitable[None]) -> None:
        """An ack, nack or reject. On a channel already closed there is nothing to settle:
        the broker delivers the event again."""
        if channel is self._channel:
            if isinstance(tags, int):
                self._unsettled.discard(tags)
            else:
                self._unsettled -= tags
        try:
            await acknowledgement
        except Exception as exc:  # noqa: BLE001 - the channel is gone; redelivery follows
            log.warning("could not settle an event with the broker (%s)", exc)

    async def _retrying(self, batch: list[Delivery]) -> None:
        """Apply ``batch`` (plain: together; else its one event), again while the database is
        unavailable or the transaction lost a deadlock; a handler's bug is raised."""
        delay = 0.05
        while True:
            try:
                if batch[0].handler.plain:
                    await apply_once(self._db, batch)
                else:
                    await self.handle(batch[0].envelope, batch[0].handler, batch[0].event)
                return
            except Exception as exc:
                if errors.from_infrastructure(exc) is None:
                    raise
                log.warning("database unavailable or deadlocked handling %s%s (%s); retrying",
                            batch[0].envelope.id,
                            f" and {len(batch) - 1} more" if len(batch) > 1 else "", exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    async def handle(self, envelope: Envelope, handler: EventHandler, event: Event) -> bool:
        """Apply one event once (not plain: its own SQLAlchemy transaction). Returns False
        when the inbox says it was handled before."""
        async with self._db.transaction() as tx:
            claimed = await tx.execute(text(INBOX_CLAIM),
                                       {"id": envelope.id, "type": envelope.type,
                                        "now": to_db(utcnow())})
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
            self._queue, durable=True,
            arguments=self._names.transient(**{"x-expires": LISTENER_QUEUE_EXPIRES_MS}))
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
