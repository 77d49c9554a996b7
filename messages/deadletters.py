"""Dead letters: events a consumer could not handle (malformed, or failing up to the delivery
limit), kept in its quorum queue ``<ns>.<consumer>.events.dead``.

``DeadLetters`` lists them without taking them away (fetched unacknowledged, then handed back
when its channel closes) and re-drives chosen ones: published again with publisher confirms,
then acknowledged, so a crash in between leaves a copy in the dead-letter queue rather than
none. A re-driven event keeps its id, so consumers that handled it already ignore it (inbox).
By default it goes back to the events exchange with its original routing key (so the event log
records it as well); ``to_queue`` sends it only to the consumer's own queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from messages import broker
from messages.settings import SERVICES, Settings

log = logging.getLogger("ttms.deadletters")

LIST_LIMIT = 10_000


@dataclass
class DeadLetter:
    id: str                   # the event id (message id); "" when the message had none
    consumer: str
    routing_key: str          # where it was first published
    reason: str               # rejected (malformed), delivery_limit, expired, …
    deaths: int
    died_at: datetime | None
    queue: str                # the queue it died in
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _describe(consumer: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    deaths = headers.get("x-death") or [{}]
    first = deaths[-1] if isinstance(deaths, list) and deaths else {}
    keys = first.get("routing-keys") or []
    died_at = first.get("time")
    if isinstance(died_at, datetime) and died_at.tzinfo is None:
        died_at = died_at.replace(tzinfo=UTC)
    return DeadLetter(
        id=message.message_id or "", consumer=consumer,
        routing_key=_text(keys[0]) if keys else (message.type or ""),
        reason=_text(first.get("reason", "?")),
        deaths=sum(int(d.get("count", 1)) for d in deaths if isinstance(d, dict)),
        died_at=died_at if isinstance(died_at, datetime) else None,
        queue=_text(first.get("queue", "")), body=message.body, headers=headers)


class DeadLetters:
    """``async with DeadLetters(settings) as dead: await dead.list()``"""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._names = settings.names
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> DeadLetters:
        self._connection = await broker.connect(
            self._settings.amqp_url,
            client_properties={"connection_name": f"{self._names.ns}-dead-letters"})
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def consumers(self) -> list[str]:
        """Consumers that have a dead-letter queue."""
        found = []
        for consumer in SERVICES:
            channel = await self._connection.channel()
            try:
                await channel.declare_queue(self._names.dead_letter_queue(consumer),
                                            passive=True)
                found.append(consumer)
            except aio_pika.exceptions.ChannelClosed:
                continue  # no such queue: the broker closed this channel
            finally:
                if not channel.is_closed:
                    await channel.close()
        return found

    async def _fetch(self, channel: AbstractChannel,
                     consumer: str) -> list[AbstractIncomingMessage]:
        queue = await channel.declare_queue(self._names.dead_letter_queue(consumer), passive=True)
        messages = []
        while len(messages) < LIST_LIMIT:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            messages.append(message)
        return messages

    async def list(self, consumers: list[str] | None = None) -> list[DeadLetter]:
        letters = []
        for consumer in consumers or await self.consumers():
            channel = await self._connection.channel()
            try:
                letters += [_describe(consumer, m) for m in await self._fetch(channel, consumer)]
            finally:
                await channel.close()  # unacknowledged: every message stays in its queue
        return letters

    async def redrive(self, consumers: list[str] | None = None, ids: set[str] | None = None,
                      *, to_queue: bool = False,
                      bodies: dict[str, bytes] | None = None) -> list[DeadLetter]:
        """Re-drive the dead letters with these ids (all when ``ids`` is None), each with its
        replacement body from ``bodies`` if any. Returns what was re-driven."""
        bodies = bodies or {}
        done = []
        for consumer in consumers or await self.consumers():
            channel = await self._connection.channel(publisher_confirms=True)
            try:
                exchange = await channel.get_exchange(self._names.events_exchange, ensure=False)
                for message in await self._fetch(channel, consumer):
                    letter = _describe(consumer, message)
                    if ids is not None and letter.id not in ids:
                        continue
                    # x-death stays, so the broker counts on if it dies again.
                    headers = {k: v for k, v in letter.headers.items()
                               if k == "x-death" or not k.startswith("x-")}
                    copy = aio_pika.Message(
                        bodies.get(letter.id, letter.body), message_id=message.message_id,
                        type=letter.routing_key, content_type=message.content_type,
                        headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                    if to_queue:
                        await channel.default_exchange.publish(
                            copy, routing_key=self._names.event_queue(consumer))
                    else:
                        await exchange.publish(copy, routing_key=letter.routing_key)
                    await message.ack()
                    done.append(letter)
            finally:
                await channel.close()  # the ones not chosen go back to their queue
        return done
