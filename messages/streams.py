"""Reading the event log: the stream queue ``<ns>.events.log`` that keeps a copy of every event
published to ``<ns>.events``.

Read over AMQP with ``x-stream-offset`` (``first``, an offset, or a time), a prefetch and
manual acks. The broker keeps no position for AMQP stream readers, so a reader keeps its own
(``LoggedEvent.offset``; the next read starts at ``offset + 1``) in its database.

A read ends at the end of the log as it was when the read began: before reading, a marker
message goes straight into the stream (through the default exchange, so no consumer of events
sees it), and the read stops at that marker. Readers skip every marker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from messages import broker
from messages.contracts.base import Envelope
from messages.events import declare_topology
from messages.settings import Settings

log = logging.getLogger("ttms.streams")

MARKER_TYPE = "ttms.log_marker"
SILENCE_SECONDS = 20.0  # a read that gets nothing for this long starts again
ATTEMPTS = 3
StreamStart = int | datetime | str  # an offset, a time, or "first" / "last" / "next"


@dataclass(slots=True)
class LoggedEvent:
    offset: int
    routing_key: str
    message_id: str | None
    body: bytes

    def envelope(self) -> Envelope:
        """The event; raises ValueError (orjson / pydantic) when the body is not one."""
        return Envelope.model_validate(orjson.loads(self.body))


class EventLog:
    """``async with EventLog(settings) as log: async for e in log.read("first"): ...``"""

    def __init__(self, settings: Settings, prefetch: int = 500) -> None:
        self._settings = settings
        self._names = settings.names
        self._prefetch = prefetch
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> EventLog:
        self._connection = await broker.connect(
            self._settings.amqp_url,
            client_properties={"connection_name": f"{self._names.ns}-event-log-reader"})
        channel = await self._connection.channel()
        await declare_topology(channel, self._names)
        await channel.close()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _mark_end(self) -> str:
        marker = uuid.uuid4().hex
        channel = await self._connection.channel(publisher_confirms=True)
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", message_id=marker, type=MARKER_TYPE,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=self._names.event_log)
        finally:
            await channel.close()
        return marker

    async def read(self, start: StreamStart = "first") -> AsyncIterator[LoggedEvent]:
        """Every event from ``start`` to the end of the log as it is now, in log order.

        A stream consumer that the broker stops feeding (seen in CI once: the consumer
        registered, nothing delivered, not even the marker) would wait for ever: after
        ``SILENCE_SECONDS`` with nothing delivered the read starts again, with a new marker,
        from where it was (offsets already given are skipped), at most ``ATTEMPTS`` times."""
        last = -1
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async for event in self._read_once(start):
                    if event.offset > last:
                        last = event.offset
                        yield event
                return
            except TimeoutError:
                log.warning("event log: nothing delivered for %ss (attempt %s of %s); "
                            "reading again from where it was", SILENCE_SECONDS, attempt,
                            ATTEMPTS)
                if last >= 0:
                    start = last + 1
        raise TimeoutError(f"the event log delivered nothing for {SILENCE_SECONDS}s, "
                           f"{ATTEMPTS} times")

    async def _read_once(self, start: StreamStart) -> AsyncIterator[LoggedEvent]:
        marker = await self._mark_end()
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self._names.event_log, ensure=False)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put, arguments={"x-stream-offset": start})
        try:
            while True:
                message = await asyncio.wait_for(inbox.get(), SILENCE_SECONDS)
                offset = int((message.headers or {}).get("x-stream-offset", -1))
                await message.ack()  # a stream consumer gets more only as it acks
                if message.type == MARKER_TYPE:
                    if message.message_id == marker:
                        return
                    continue
                yield LoggedEvent(offset, message.routing_key or message.type or "",
                                  message.message_id, message.body)
        finally:
            if not channel.is_closed:
                await queue.cancel(tag)
                await channel.close()
